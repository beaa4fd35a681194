"""The Ollama backend: requests for a real Ollama (the Vision Ollama) passed on untouched."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import orjson

from adapter.backends.base import Relayed
from adapter.backends.httpclient import public_url
from adapter.backends.modellist import ModelList
from adapter.backends.passthrough import Passthrough, forward
from adapter.backends.upstream import upstream_for
from adapter.clock import Clock
from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.framing import Framing
from adapter.metrics import Metrics
from adapter.ollama_api.models import ModelEntry, display_name, ordered_capabilities
from adapter.ollama_api.requests import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
)
from adapter.ollama_api.responses import error_line

log = logging.getLogger("adapter.ollama")

#: Ollama's own streams: NDJSON lines, ended by an ``{"error": ...}`` line when they break.
NDJSON = Framing(b"\n", error_line)


class OllamaBackend(Passthrough):
    """Serves the models a real Ollama has (llava, nomic-embed-text) by passing requests on:
    the body as the client sent it, the answer as Ollama gives it (``Backend``)."""

    kind: Literal["ollama"] = "ollama"
    title = "the Vision Ollama"
    essential = False
    derives = False

    def __init__(self, url: str, settings: Settings, metrics: Metrics, clock: Clock) -> None:
        self.name = "ollama"
        self.url = public_url(url)
        self.upstream = upstream_for("Ollama", self.name, url, settings, metrics, clock)
        self._models = ModelList(self._fetch, ttl=settings.models_cache_ttl, now=clock.monotonic)

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def models(self, *, refresh: bool = False) -> list[ModelEntry]:
        """Ollama's ``/api/tags`` models, cached as vLLM's list is (``ModelList``)."""
        return await self._models.get(refresh=refresh)

    async def _fetch(self) -> list[ModelEntry]:
        status, content = await self.upstream.fetch("GET", "/api/tags")
        if status != 200:
            raise OllamaError(502, f"Ollama at {self.url} answered {status} to /api/tags")
        try:
            cards = orjson.loads(content).get("models") or []
        except (orjson.JSONDecodeError, AttributeError):
            raise OllamaError(
                502, f"Ollama at {self.url} answered /api/tags with what is not its JSON"
            ) from None
        return [
            self._entry(m)
            for m in cards
            if isinstance(m, dict) and (m.get("model") or m.get("name"))
        ]

    def _entry(self, card: Mapping[str, Any]) -> ModelEntry:
        name = str(card.get("model") or card.get("name"))
        caps = card.get("capabilities")
        return ModelEntry(
            name=display_name(name),
            served=name,
            backend=self.name,
            max_model_len=(card.get("details") or {}).get("context_length"),
            capabilities=ordered_capabilities(frozenset(caps) if caps else {"completion"}),
            info=dict(card),
        )

    async def health(self) -> dict[str, Any]:
        try:
            models = await self.models(refresh=True)
        except OllamaError as exc:
            return {"url": self.url, "reachable": False, "error": exc.message}
        return {"url": self.url, "reachable": True, "models": [e.served for e in models]}

    async def _forward(self, path: str, raw: bytes, *, stream: bool) -> Relayed:
        return await forward(self.upstream, "POST", path, raw, stream=stream, framing=NDJSON)

    async def chat(self, req: ChatRequest, entry: ModelEntry, raw: bytes) -> Relayed:
        return await self._forward("/api/chat", raw, stream=req.stream is not False)

    async def generate(self, req: GenerateRequest, entry: ModelEntry, raw: bytes) -> Relayed:
        return await self._forward("/api/generate", raw, stream=req.stream is not False)

    async def embed(self, req: EmbedRequest, entry: ModelEntry, raw: bytes) -> Relayed:
        return await self._forward("/api/embed", raw, stream=False)

    async def embeddings(self, req: EmbeddingsRequest, entry: ModelEntry, raw: bytes) -> Relayed:
        return await self._forward("/api/embeddings", raw, stream=False)

    async def show(
        self, entry: ModelEntry, raw: bytes, modified_at: datetime, basename: str | None
    ) -> Relayed:
        reply = await self._forward("/api/show", raw, stream=False)
        if basename is None or reply.status != 200 or not isinstance(reply.body, bytes):
            return reply
        # An Ollama older than 0.18.3 does not echo the name for Copilot: do it here.
        body = orjson.loads(reply.body)
        body.setdefault("model_info", {})["general.basename"] = basename
        return Relayed(reply.status, reply.content_type, orjson.dumps(body))
