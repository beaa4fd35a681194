"""The Ollama backend: forwards requests to a real Ollama (Vision Ollama) untouched."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson

from adapter.backends.passthrough import RawRelay, forward
from adapter.config import Settings
from adapter.errors import OllamaError, UpstreamUnavailable
from adapter.metrics import Metrics

log = logging.getLogger("adapter.ollama")


class OllamaBackend:
    """Serves the models a real Ollama has (llava, nomic-embed-text) by passing requests on."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = "ollama"
        self.url = url
        self._metrics = metrics
        self._cache_ttl = settings.models_cache_ttl
        self._models: list[dict[str, Any]] | None = None
        self._models_at = 0.0
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=settings.max_connections),
            transport=transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _error(self, exc: httpx.HTTPError) -> OllamaError:
        self._metrics.upstream_errors.labels(self.name, type(exc).__name__).inc()
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return UpstreamUnavailable(503, f"Ollama at {self.url} is unreachable: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamUnavailable(504, f"Ollama at {self.url} did not answer in time")
        return UpstreamUnavailable(502, f"connection to Ollama at {self.url} failed: {exc!r}")

    async def models(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Ollama's ``/api/tags`` models, cached like vLLM's list."""
        max_age = 0.5 if refresh else self._cache_ttl
        if self._models is not None and time.monotonic() - self._models_at < max_age:
            return self._models
        try:
            resp = await self.client.get("/api/tags")
        except httpx.HTTPError as exc:
            raise self._error(exc) from None
        if resp.status_code != 200:
            raise OllamaError(502, f"Ollama at {self.url} answered {resp.status_code} to /api/tags")
        models = orjson.loads(resp.content).get("models") or []
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
            self.client, method, path, content, stream=stream, on_error=self._error
        )
