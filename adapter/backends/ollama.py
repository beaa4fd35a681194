"""The Ollama backend: forwards requests to a real Ollama (Vision Ollama) untouched."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from adapter.backends.httpclient import public_url
from adapter.backends.upstream import RawRelay, Upstream, forward
from adapter.backends.vllm.translate import error_line
from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.metrics import Metrics

log = logging.getLogger("adapter.ollama")


class OllamaBackend:
    """Serves the models a real Ollama has (llava, nomic-embed-text) by passing requests on."""

    def __init__(self, url: str, settings: Settings, metrics: Metrics) -> None:
        self.name = "ollama"
        self.url = public_url(url)
        self._cache_ttl = settings.models_cache_ttl
        self._models: list[dict[str, Any]] | None = None
        self._models_at = 0.0
        self.upstream = Upstream(
            "Ollama",
            url,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.request_timeout,
            max_connections=settings.max_connections,
            on_error=lambda kind: metrics.upstream_errors.labels("ollama", kind).inc(),
        )

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def models(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Ollama's ``/api/tags`` models, cached like vLLM's list."""
        max_age = 0.5 if refresh else self._cache_ttl
        if self._models is not None and time.monotonic() - self._models_at < max_age:
            return self._models
        status, content = await self.upstream.fetch("GET", "/api/tags")
        if status != 200:
            raise OllamaError(502, f"Ollama at {self.url} answered {status} to /api/tags")
        models = orjson.loads(content).get("models") or []
        self._models = [
            m for m in models if isinstance(m, dict) and (m.get("model") or m.get("name"))
        ]
        self._models_at = time.monotonic()
        return self._models

    async def forward(
        self, method: str, path: str, body: bytes | dict[str, Any] | None, *, stream: bool
    ) -> tuple[int, str, RawRelay | bytes]:
        """Send the client's request on; answer the status, content type and body (or a relay)."""
        content = orjson.dumps(body) if isinstance(body, dict) else body
        return await forward(
            self.upstream, method, path, content, stream=stream, error_line=error_line
        )
