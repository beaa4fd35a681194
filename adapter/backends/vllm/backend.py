"""The vLLM backend: Ollama requests translated to vLLM's OpenAI-compatible API and back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from adapter.backends.base import Reply
from adapter.backends.httpclient import Response, public_url
from adapter.backends.modellist import ModelList
from adapter.backends.passthrough import Passthrough
from adapter.backends.upstream import TRANSPORT_ERRORS, upstream_for
from adapter.backends.vllm import from_openai, to_openai, truncate
from adapter.backends.vllm.catalogue import Catalogue
from adapter.backends.vllm.relay import NDJSONRelay, collect
from adapter.backends.vllm.stream import StreamTranslator
from adapter.clock import Clock
from adapter.config import Settings
from adapter.errors import ContextOverflow, OllamaError
from adapter.metrics import Metrics
from adapter.ollama_api.durations import keep_alive_seconds
from adapter.ollama_api.models import ModelEntry, show
from adapter.ollama_api.options import OLLAMA_SAMPLING
from adapter.ollama_api.requests import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
)
from adapter.ollama_api.responses import EmbedResponse, load_response
from adapter.requestctx import current

log = logging.getLogger("adapter.vllm")


class VLLMBackend(Passthrough):
    """Serves Ollama requests from one vLLM server (``Backend``)."""

    kind: Literal["vllm"] = "vllm"
    title = "vLLM"
    essential = True
    derives = True

    def __init__(
        self, name: str, url: str, settings: Settings, metrics: Metrics, clock: Clock
    ) -> None:
        self.name = name
        self.url = public_url(url)
        self.clock = clock
        self._metrics = metrics
        self._answer_room = settings.answer_room
        self._sampling = OLLAMA_SAMPLING if settings.sampling_defaults == "ollama" else None
        self._collect_interval = settings.collect_stream_interval
        self._session_from_chat = settings.session_from_chat
        headers = {}
        if settings.vllm_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.vllm_api_key.get_secret_value()}"
        self.upstream = upstream_for("vLLM", name, url, settings, metrics, clock, headers)
        self.catalogue = Catalogue(
            name,
            self.upstream,
            probe=settings.probe_capabilities,
            status_error=self._status_error,
        )
        self._models = ModelList(
            self.catalogue.fetch, ttl=settings.models_cache_ttl, now=clock.monotonic
        )

    async def aclose(self) -> None:
        await self.upstream.aclose()

    # ------------------------------------------------------------------ transport

    async def post(
        self, path: str, body: dict[str, Any], *, model: str | None, admit: bool = False
    ) -> dict[str, Any]:
        """POST a JSON body and return the decoded answer, or raise Ollama's error."""
        status, content = await self.upstream.fetch("POST", path, orjson.dumps(body), admit=admit)
        if status != 200:
            raise self._status_error(status, content, model)
        result: dict[str, Any] = orjson.loads(content)
        return result

    def _status_error(self, status: int, content: bytes, model: str | None) -> OllamaError:
        self._metrics.upstream_errors.labels(self.name, f"http_{status}").inc()
        err = from_openai.upstream_error(status, content, model)
        if isinstance(err, ContextOverflow):
            # Not a fault: a chat is cut to fit next (or the client asked for the 400).
            log.info("vLLM answered %d: the prompt is longer than the context", status)
        else:
            log.warning("vLLM answered %d (mapped to %d)", status, err.status)
        return err

    async def open_stream(self, path: str, body: dict[str, Any], *, model: str | None) -> Response:
        """Start a streaming request; errors before the first byte are raised as Ollama's."""
        resp = await self.upstream.send("POST", path, orjson.dumps(body), admit=True)
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

    # ------------------------------------------------------------------ models

    async def models(self, *, refresh: bool = False) -> list[ModelEntry]:
        """The models vLLM serves and what each can do (``catalogue.py``), cached for
        ``models_cache_ttl`` seconds; ``refresh`` (a name was not found) asks again, at most
        twice a second."""
        return await self._models.get(refresh=refresh)

    async def health(self) -> dict[str, Any]:
        """Whether vLLM answers ``/health`` and which models it serves.

        vLLM's router in front of several replicas answers ``/health`` 503 while any replica
        is out, and serves from the others all the same: an upstream whose ``/health`` fails
        but whose model list answers still serves (its complaint is kept as ``detail``).
        """
        try:
            status, said = await self.upstream.fetch("GET", "/health")
        except OllamaError as exc:
            return {"url": self.url, "reachable": False, "error": exc.message, "models": []}
        found: dict[str, Any] = {"url": self.url, "reachable": False, "status": status}
        if status != 200:
            found["detail"] = said[:300].decode("utf-8", "replace")
        try:
            found["models"] = [e.served for e in await self.models(refresh=True)]
        except OllamaError as exc:
            found["models"] = []
            if status == 200:
                found["error"] = exc.message
        found["reachable"] = status == 200 or bool(found["models"])
        return found

    async def show(
        self, entry: ModelEntry, raw: bytes, modified_at: datetime, basename: str | None
    ) -> Reply:
        return show(entry, modified_at, backend_url=self.url, basename=basename)

    # ------------------------------------------------------------------ chat and generate

    def count_usage(self, usage: Mapping[str, Any] | None) -> None:
        self._metrics.count_usage(self.name, usage)
        info = current()
        if info is not None and usage:
            info.prompt_tokens = usage.get("prompt_tokens")
            info.completion_tokens = usage.get("completion_tokens")

    async def chat(self, req: ChatRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """An Ollama chat answer: a relay of NDJSON lines, or one object for ``stream: false``
        (vLLM streams both, so the time to the first token is measured either way)."""
        unload = keep_alive_seconds(req.keep_alive) == 0  # Ollama's 400 for a bad one
        if not req.messages:
            return load_response(req.model, chat=True, unload=unload, now_ns=self.clock.wall_ns())
        run = Generation(self, req, entry, chat=True)
        if self._session_from_chat:
            info = current()
            if info is not None and "X-Session-ID" not in info.upstream_headers:
                info.upstream_headers["X-Session-ID"] = to_openai.conversation_key(req.messages)
        body = to_openai.chat_body(
            req,
            entry,
            stream=True,
            clock=self.clock,
            defaults=self._sampling,
            interval=self._collect_interval,
        )

        async def cut(body: dict[str, Any]) -> Attempt:
            # The oldest messages go first, as Ollama cuts a chat; the prompt's tokens only
            # when even the system messages and the latest one do not fit.
            path, body = await truncate.fit_chat(
                body,
                run.max_len,
                self._tokenizer(req.model),
                options=req.options,
                room=self._answer_room,
            )
            return Attempt(path, body, completions=path == "/v1/completions")

        return await run.answer(Attempt("/v1/chat/completions", body), cut)

    async def generate(self, req: GenerateRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """An Ollama generate answer: a relay of NDJSON lines, or one object."""
        unload = keep_alive_seconds(req.keep_alive) == 0  # Ollama's 400 for a bad one
        if not req.prompt and not req.suffix and not req.images:
            return load_response(req.model, chat=False, unload=unload, now_ns=self.clock.wall_ns())
        run = Generation(self, req, entry, chat=False)
        sampling, interval = self._sampling, self._collect_interval
        path, body = to_openai.generate_body(
            req, entry, stream=True, defaults=sampling, interval=interval
        )
        completions = path == "/v1/completions"
        first = Attempt(path, body, completions, context=not completions)
        if to_openai.uses_context(req):
            context = await self._continuation_prompt(req, body)
            body = to_openai.continuation_body(
                req, entry, context, stream=True, defaults=sampling, interval=interval
            )
            first = Attempt("/v1/completions", body, completions=True, context=context)

        async def cut(body: dict[str, Any]) -> Attempt:
            # As Ollama's runner: the prompt's start and its newest tokens, then the answer.
            tokens = await self._prompt_tokens(body, req.model)
            body = truncate.runner_cut(body, tokens, run.max_len, req.options)
            if first.context is False:
                return Attempt("/v1/completions", body, completions=True)
            body["return_token_ids"] = True
            return Attempt("/v1/completions", body, completions=True, context=body["prompt"])

        return await run.answer(first, cut)

    async def _prompt_tokens(self, body: dict[str, Any], model: str) -> list[int]:
        """A request's prompt as vLLM tokenizes it: a chat in its chat form, text as text."""
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            return [int(t) for t in prompt]
        if "messages" in body:
            ask = truncate.tokenize_body(body, body["messages"])
        else:
            ask = {"model": body["model"], "prompt": prompt or ""}
        return await self._tokenizer(model)(ask)

    def _tokenizer(self, model: str) -> truncate.Tokenize:
        """vLLM's ``/tokenize``, its errors in Ollama's terms for ``model``."""

        async def tokens(ask: dict[str, Any]) -> list[int]:
            answer = await self.post("/tokenize", ask, model=model)
            return list(answer.get("tokens") or ())

        return tokens

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

    # ------------------------------------------------------------------ embeddings

    async def _vectors(
        self, entry: ModelEntry, model: str, inputs: list[str], truncate: bool
    ) -> tuple[list[list[float]], int]:
        body = to_openai.embed_body(entry.served, inputs, truncate=truncate)
        resp = await self.post("/v1/embeddings", body, model=model, admit=True)
        usage = resp.get("usage") or {}
        return from_openai.embeddings_out(resp), int(usage.get("prompt_tokens") or 0)

    async def embed(self, req: EmbedRequest, entry: ModelEntry, raw: bytes) -> Reply:
        start = self.clock.perf_ns()
        to_openai.require(entry, "embedding", req.model, "embeddings")
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
            embeddings=[from_openai.normalized(v, req.dimensions) for v in vectors],
            total_duration=self.clock.perf_ns() - start,
            load_duration=1,
            prompt_eval_count=tokens,
        )

    async def embeddings(self, req: EmbeddingsRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """The legacy endpoint: one prompt, one vector, not normalised."""
        to_openai.require(entry, "embedding", req.model, "embeddings")
        if not req.prompt:
            return {"embedding": []}
        vectors, _ = await self._vectors(entry, req.model, [req.prompt], True)
        return {"embedding": vectors[0] if vectors else []}


@dataclass(slots=True)  # not frozen: one a request, and a frozen one costs more to make
class Attempt:
    """One try at a generation: where it goes, what it says, and how to read the answer
    (``completions``: text events; ``context``: the token ids to collect, as for
    ``StreamTranslator``)."""

    path: str
    body: dict[str, Any]
    completions: bool = False
    context: bool | list[int] = False


class Generation:
    """One chat or generate request on its way through vLLM, the part both share: its
    timings, its translator for each attempt, the one retry when vLLM says the prompt is
    longer than the context (cut as the request allows), and the answer, relayed as it
    comes or collected into one object."""

    __slots__ = ("_backend", "_req", "chat", "max_len", "timings")

    def __init__(
        self,
        backend: VLLMBackend,
        req: ChatRequest | GenerateRequest,
        entry: ModelEntry,
        *,
        chat: bool,
    ) -> None:
        self._backend = backend
        self._req = req
        self.chat = chat
        self.max_len = entry.max_model_len or 0
        self.timings = from_openai.Timings(start=backend.clock.perf_ns())

    def _translator(self, attempt: Attempt) -> StreamTranslator:
        req = self._req
        return StreamTranslator(
            req.model,
            self.timings,
            clock=self._backend.clock,
            chat=self.chat,
            completions=attempt.completions,
            context=attempt.context,
            collect=req.stream is False,
            strict_json=bool(req.format),
        )

    async def _send(self, attempt: Attempt) -> Response:
        self.timings.sent = self._backend.clock.perf_ns()
        return await self._backend.open_stream(attempt.path, attempt.body, model=self._req.model)

    async def answer(
        self, attempt: Attempt, cut: Callable[[dict[str, Any]], Awaitable[Attempt]]
    ) -> Reply:
        """Send ``attempt``; when the prompt is too long for the context and the request lets
        it be cut (``truncate`` not false, the context known), send ``cut``'s attempt
        instead. Then the answer, streamed or whole."""
        try:
            resp = await self._send(attempt)
        except ContextOverflow:
            if self._req.truncate is False or not self.max_len:
                raise
            attempt = await cut(attempt.body)
            resp = await self._send(attempt)
        backend = self._backend
        translator = self._translator(attempt)
        if translator.collecting:
            return await collect(backend.upstream, resp, translator, backend.count_usage)
        return NDJSONRelay(backend.upstream, resp, translator, backend.clock, backend.count_usage)
