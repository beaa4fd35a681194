"""The real client packages against a live adapter in front of the real vLLM server on CPU."""
