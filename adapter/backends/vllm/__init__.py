"""The vLLM backend: Ollama requests translated to vLLM's OpenAI-compatible API.

``requests`` (Ollama -> OpenAI bodies), ``responses`` (OpenAI answers -> Ollama's),
``stream`` (chunks -> NDJSON lines) are pure; ``relay`` and ``backend`` do the I/O.
"""

from adapter.backends.vllm.backend import VLLMBackend

__all__ = ["VLLMBackend"]
