"""Backends: where a model's requests are served (vLLM translated, Ollama passed through)."""
