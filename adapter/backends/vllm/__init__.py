"""The vLLM backend: Ollama requests translated to vLLM's OpenAI-compatible API.

``to_openai`` (Ollama -> OpenAI bodies), ``from_openai`` (OpenAI answers -> Ollama's),
``stream`` (chunks -> NDJSON lines) are pure; ``relay`` and ``backend`` do the I/O.
"""

from adapter.backends.vllm.backend import VLLMBackend

__all__ = ["VLLMBackend"]
