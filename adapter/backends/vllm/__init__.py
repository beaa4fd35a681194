"""The vLLM backend: Ollama requests translated to vLLM's OpenAI-compatible API."""

from adapter.backends.vllm.client import VLLMBackend

__all__ = ["VLLMBackend"]
