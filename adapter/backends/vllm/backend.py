"""The vLLM backend: Ollama requests translated to vLLM's OpenAI-compatible API and back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import orjson

from adapter.backends.base import Relayed, Reply
from adapter.backends.httpclient import Response, public_url
from adapter.backends.upstream import TRANSPORT_ERRORS, Upstream, forward
from adapter.backends.vllm import requests as rq
from adapter.backends.vllm import responses as rs
from adapter.backends.vllm.relay import NDJSONRelay
from adapter.backends.vllm.stream import StreamTranslator
from adapter.clock import Clock
from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.metrics import Metrics
from adapter.ollama_api.durations import keep_alive_seconds
from adapter.ollama_api.models import ModelEntry, display_name, ordered_capabilities, show
from adapter.ollama_api.requests import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
)
from adapter.ollama_api.responses import EmbedResponse, load_response
from adapter.openai_api import sse_error

log = logging.getLogger("adapter.vllm")


class VLLMBackend:
    """Serves Ollama requests from one vLLM server (``Backend``)."""

    kind: Literal["vllm"] = "vllm"

    def __init__(
        self, name: str, url: str, settings: Settings, metrics: Metrics, clock: Clock
    ) -> None:
        self.name = name
        self.url = public_url(url)
        self.clock = clock
        self._metrics = metrics
        self._probe = settings.probe_capabilities
        self.features: frozenset[str] | None = None
        headers = {}
        if settings.vllm_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.vllm_api_key.get_secret_value()}"
        self.upstream = Upstream(
            "vLLM",
            url,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.request_timeout,
            max_connections=settings.max_connections,
            headers=headers,
            on_error=lambda kind: metrics.upstream_errors.labels(name, kind).inc(),
            on_resend=metrics.upstream_resends.labels(name).inc,
        )
        self._cache_ttl = settings.models_cache_ttl
        self._entries: list[ModelEntry] | None = None
        self._models_at = float("-inf")
        self._models_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.upstream.aclose()

    # ------------------------------------------------------------------ transport

    async def post(self, path: str, body: dict[str, Any], *, model: str | None) -> dict[str, Any]:
        """POST a JSON body and return the decoded answer, or raise Ollama's error."""
        status, content = await self.upstream.fetch("POST", path, orjson.dumps(body))
        if status != 200:
            raise self._status_error(status, content, model)
        result: dict[str, Any] = orjson.loads(content)
        return result

    def _status_error(self, status: int, content: bytes, model: str | None) -> OllamaError:
        self._metrics.upstream_errors.labels(self.name, f"http_{status}").inc()
        err = rs.upstream_error(status, content, model)
        log.warning("vLLM answered %d (mapped to %d)", status, err.status)
        return err

    async def open_stream(self, path: str, body: dict[str, Any], *, model: str | None) -> Response:
        """Start a streaming request; errors before the first byte are raised as Ollama's."""
        resp = await self.upstream.send("POST", path, orjson.dumps(body))
        if resp.status != 200:
            try:
                content = await resp.read()
            except TRANSPORT_ERRORS as exc:
                resp.close()
                raise self.upstream.error(exc) from None
            finally:
                resp.release()
            raise self._status_error(resp.status, content, model)
        return resp

    async def passthrough(self, path: str, body: dict[str, Any], *, stream: bool) -> Relayed:
        """Pass an OpenAI-compatible request on as it is (``/v1/*``)."""
        return await forward(
            self.upstream, "POST", path, orjson.dumps(body), stream=stream, error_line=sse_error
        )

    # ------------------------------------------------------------------ models

    async def models(self, *, refresh: bool = False) -> list[ModelEntry]:
        """The models vLLM serves, cached for ``models_cache_ttl`` seconds.

        ``refresh`` asks again (a name was not found), but at most twice a second, so a
        client repeating an unknown name cannot turn each request into two.
        """
        now = self.clock.monotonic
        max_age = 0.5 if refresh else self._cache_ttl
        if self._entries is not None and now() - self._models_at < max_age:
            return self._entries
        async with self._models_lock:
            if self._entries is not None and now() - self._models_at < max_age:
                return self._entries
            status, content = await self.upstream.fetch("GET", "/v1/models")
            if status != 200:
                raise self._status_error(status, content, None)
            data = orjson.loads(content).get("data") or []
            cards = [m for m in data if isinstance(m, dict) and m.get("id")]
            if self.features is None and cards:
                self.features = await self._discover(str(cards[0]["id"]))
            entries = [self._entry(card) for card in cards]
            if self._entries is None or entries != self._entries:
                self._entries = entries
            self._models_at = now()
            return self._entries

    def _entry(self, card: Mapping[str, Any]) -> ModelEntry:
        served = str(card["id"])
        return ModelEntry(
            name=display_name(served),
            served=served,
            backend=self.name,
            max_model_len=card.get("max_model_len"),
            root=card.get("root"),
            capabilities=ordered_capabilities(self.features or frozenset({"completion"})),
        )

    async def _discover(self, model: str) -> frozenset[str]:
        """What this server does, asked once: vLLM runs one kind of model per server, and its
        routes and tool-parser checks tell which (a pooling model has ``/v1/embeddings``, a
        server without ``--tool-call-parser`` rejects ``tool_choice: auto`` before generating).
        """
        if not self._probe:
            return frozenset({"completion"})
        probe = orjson.dumps({"model": model, "input": "probe"})
        status, _ = await self.upstream.fetch("POST", "/v1/embeddings", probe)
        if status == 200:
            return frozenset({"embedding"})
        probe_tool = {
            "type": "function",
            "function": {"name": "probe", "parameters": {"type": "object"}},
        }
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "probe"}],
            "tools": [probe_tool],
            "tool_choice": "auto",
            "max_tokens": 1,
        }
        status, _ = await self.upstream.fetch("POST", "/v1/chat/completions", orjson.dumps(body))
        features = {"completion"}
        if status == 200:
            features.add("tools")
        log.info("vLLM at %s: %s", self.url, ", ".join(sorted(features)))
        return frozenset(features)

    async def health(self) -> dict[str, Any]:
        """Whether vLLM answers ``/health`` and which models it serves."""
        try:
            status, _ = await self.upstream.fetch("GET", "/health")
            ok = status == 200
            models = [e.served for e in await self.models(refresh=True)] if ok else []
            return {"url": self.url, "reachable": ok, "status": status, "models": models}
        except OllamaError as exc:
            return {"url": self.url, "reachable": False, "error": exc.message, "models": []}

    async def show(self, entry: ModelEntry, raw: bytes, modified_at: datetime) -> Reply:
        return show(entry, modified_at, backend_url=self.url)

    # ------------------------------------------------------------------ chat and generate

    def _count(self, answer: Mapping[str, Any]) -> None:
        self._metrics.count_tokens(self.name, answer)

    def _count_usage(self, usage: Mapping[str, Any] | None) -> None:
        self._metrics.count_usage(self.name, usage)

    async def chat(self, req: ChatRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """An Ollama chat answer: a dict, or a relay of NDJSON lines when streaming."""
        clock = self.clock
        unload = keep_alive_seconds(req.keep_alive) == 0
        if not req.messages:
            return load_response(req.model, chat=True, unload=unload, now_ns=clock.wall_ns())
        _require(entry, req.model, "completion", "chat")
        stream = req.stream is not False
        timings = rs.Timings(start=clock.perf_ns())
        body = rq.chat_body(
            req, entry.served, stream=stream, max_model_len=entry.max_model_len, clock=clock
        )
        path = "/v1/chat/completions"
        if stream:
            translator = StreamTranslator(req.model, timings, clock=clock, chat=True)
            return await self._relay(path, body, req.model, translator)
        timings.sent = clock.perf_ns()
        resp = await self.post(path, body, model=req.model)
        timings.finish(resp, clock.perf_ns())
        out = rs.chat_response(resp, req.model, timings, clock=clock)
        self._count(out)
        return out

    async def generate(self, req: GenerateRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """An Ollama generate answer: a dict, or a relay of NDJSON lines when streaming."""
        clock = self.clock
        unload = keep_alive_seconds(req.keep_alive) == 0
        if not req.prompt and not req.suffix and not req.images:
            return load_response(req.model, chat=False, unload=unload, now_ns=clock.wall_ns())
        _require(entry, req.model, "completion", "generate")
        stream = req.stream is not False
        timings = rs.Timings(start=clock.perf_ns())
        path, body = rq.generate_body(
            req, entry.served, stream=stream, max_model_len=entry.max_model_len
        )
        completions = path == "/v1/completions"
        context: bool | list[int] = not completions
        if rq.uses_context(req):
            context = await self._continuation_prompt(req, body)
            path, completions = "/v1/completions", True
            body = rq.continuation_body(
                req, entry.served, context, stream=stream, max_model_len=entry.max_model_len
            )
        if stream:
            translator = StreamTranslator(
                req.model,
                timings,
                clock=clock,
                chat=False,
                completions=completions,
                context=context,
            )
            return await self._relay(path, body, req.model, translator)
        timings.sent = clock.perf_ns()
        resp = await self.post(path, body, model=req.model)
        timings.finish(resp, clock.perf_ns())
        out = rs.generate_response(resp, req.model, timings, completions=completions, clock=clock)
        if isinstance(context, list):
            choice = (resp.get("choices") or [{}])[0]
            out["context"] = context + list(choice.get("token_ids") or [])
        self._count(out)
        return out

    async def _continuation_prompt(self, req: GenerateRequest, body: dict[str, Any]) -> list[int]:
        """The earlier answer's ``context`` followed by the new turn as vLLM templates it."""
        tokenize: dict[str, Any] = {
            "model": body["model"],
            "messages": body["messages"],
            "add_generation_prompt": True,
        }
        if "chat_template_kwargs" in body:
            tokenize["chat_template_kwargs"] = body["chat_template_kwargs"]
        resp = await self.post("/tokenize", tokenize, model=req.model)
        return [*(req.context or []), *resp["tokens"]]

    async def _relay(
        self, path: str, body: dict[str, Any], model: str, translator: StreamTranslator
    ) -> NDJSONRelay:
        translator.timings.sent = self.clock.perf_ns()
        resp = await self.open_stream(path, body, model=model)
        return NDJSONRelay(self.upstream, resp, translator, self.clock, self._count_usage)

    # ------------------------------------------------------------------ embeddings

    async def _vectors(
        self, entry: ModelEntry, model: str, inputs: list[str], truncate: bool
    ) -> tuple[list[list[float]], int]:
        body = rq.embed_body(entry.served, inputs, truncate=truncate)
        resp = await self.post("/v1/embeddings", body, model=model)
        usage = resp.get("usage") or {}
        return rs.embeddings_out(resp), int(usage.get("prompt_tokens") or 0)

    async def embed(self, req: EmbedRequest, entry: ModelEntry, raw: bytes) -> Reply:
        start = self.clock.perf_ns()
        _require(entry, req.model, "embedding", "embeddings")
        inputs = [req.input] if isinstance(req.input, str) else list(req.input or [])
        inputs = [i for i in inputs if i != ""] if len(inputs) == 1 else inputs
        if not inputs:
            return EmbedResponse(model=req.model, embeddings=[])
        if req.dimensions is not None and req.dimensions < 1:
            raise OllamaError(400, "dimensions must be a positive integer")
        try:
            vectors, tokens = await self._vectors(
                entry, req.model, inputs, req.truncate is not False
            )
        except OllamaError as exc:
            if exc.status == 400 and "context length" in exc.message:
                raise OllamaError(400, "the input length exceeds the context length") from None
            raise
        return EmbedResponse(
            model=req.model,
            embeddings=[rs.normalized(v, req.dimensions) for v in vectors],
            total_duration=self.clock.perf_ns() - start,
            load_duration=1,
            prompt_eval_count=tokens,
        )

    async def embeddings(self, req: EmbeddingsRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """The legacy endpoint: one prompt, one vector, not normalised."""
        _require(entry, req.model, "embedding", "embeddings")
        if not req.prompt:
            return {"embedding": []}
        vectors, _ = await self._vectors(entry, req.model, [req.prompt], True)
        return {"embedding": vectors[0] if vectors else []}


def _require(entry: ModelEntry, name: str, capability: str, what: str) -> None:
    if capability not in entry.capabilities:
        raise OllamaError(400, f'"{name}" does not support {what}')
