"""Helpers shared by the test suites (the real vLLM server on CPU)."""
