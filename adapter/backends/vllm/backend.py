"""The vLLM backend: Ollama requests translated to vLLM's OpenAI-compatible API and back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from adapter.backends.base import Reply
from adapter.backends.httpclient import Response, public_url
from adapter.backends.upstream import TRANSPORT_ERRORS, Passthrough, upstream_for
from adapter.backends.vllm import requests as rq
from adapter.backends.vllm import responses as rs
from adapter.backends.vllm.relay import NDJSONRelay, collect
from adapter.backends.vllm.stream import StreamTranslator
from adapter.clock import Clock
from adapter.config import Settings
from adapter.errors import ContextOverflow, OllamaError
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
from adapter.requestctx import current

log = logging.getLogger("adapter.vllm")

#: How long asking vLLM what its new models can do may take before the list is served anyway.
DISCOVERY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Discovered:
    """What vLLM's answers showed a model can do."""

    capabilities: frozenset[str]
    embedding_length: int | None = None


class VLLMBackend(Passthrough):
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
        self._answer_room = settings.answer_room
        self._sampling = rq.OLLAMA_SAMPLING if settings.sampling_defaults == "ollama" else None
        self._discovered: dict[str, Discovered] = {}
        headers = {}
        if settings.vllm_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.vllm_api_key.get_secret_value()}"
        self.upstream = upstream_for("vLLM", name, url, settings, metrics, clock, headers)
        self._cache_ttl = settings.models_cache_ttl
        self._entries: list[ModelEntry] | None = None
        self._models_at = float("-inf")
        self._models_lock = asyncio.Lock()

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
        err = rs.upstream_error(status, content, model)
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
            await self._discover_new(cards)
            entries = [self._entry(card) for card in cards]
            if self._entries is None or entries != self._entries:
                self._entries = entries
            self._models_at = now()
            return self._entries

    async def _discover_new(self, cards: list[dict[str, Any]]) -> None:
        """Ask what each model not seen before can do (the list changed)."""
        new = [str(c["id"]) for c in cards if str(c["id"]) not in self._discovered]
        if not new:
            return
        try:
            async with asyncio.timeout(DISCOVERY_SECONDS):
                found = await asyncio.gather(*(self._capabilities(m) for m in new))
        except (TimeoutError, OllamaError) as exc:
            log.warning("vLLM at %s: capabilities not known yet (%r)", self.url, exc)
            return
        self._discovered.update(zip(new, found, strict=True))

    def _entry(self, card: Mapping[str, Any]) -> ModelEntry:
        served = str(card["id"])
        found = self._discovered.get(served, Discovered(frozenset({"completion"})))
        return ModelEntry(
            name=display_name(served),
            served=served,
            backend=self.name,
            max_model_len=card.get("max_model_len"),
            root=card.get("root"),
            capabilities=ordered_capabilities(found.capabilities),
            embedding_length=found.embedding_length,
        )

    async def _capabilities(self, model: str) -> Discovered:
        """What ``model`` can do, asked of vLLM, once per model (``ADAPTER_PROBE_CAPABILITIES``).

        vLLM says none of it in its model list, but its answers tell: a pooling model answers
        ``/v1/embeddings`` (and its vector's length is the embedding length); tools need a chat
        template that renders them (``/tokenize`` with and without a tool differs) and a server
        with a tool parser (it refuses ``tool_choice: auto`` otherwise); a text-only model
        refuses an image (400 "is not a multimodal model"); a model without fill-in-the-middle
        refuses ``suffix``; and a chat template that toggles thinking renders the same chat
        differently with ``enable_thinking`` true and false. Each generating probe asks for one
        token; all run at once. A probe that fails counts as "no"; one that cannot finish in
        ``DISCOVERY_SECONDS`` leaves the model to be asked again at the next list.
        """
        if not self._probe:
            return Discovered(frozenset({"completion"}))
        status, content = await self.upstream.fetch(
            "POST", "/v1/embeddings", orjson.dumps({"model": model, "input": "probe"})
        )
        if status == 200:
            try:
                data = orjson.loads(content).get("data") or [{}]
                return Discovered(frozenset({"embedding"}), len(data[0].get("embedding") or []))
            except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
                # A proxy in front of vLLM answering 200 with no JSON: not an embedding model.
                log.warning("vLLM at %s: /v1/embeddings answered what is not its JSON", self.url)
        checks = await asyncio.gather(
            self._takes_tools(model),
            self._accepts("/v1/chat/completions", rq.vision_probe(model)),
            self._accepts("/v1/completions", rq.insert_probe(model)),
            self._renders_differently(
                rq.thinking_probe(model, True), rq.thinking_probe(model, False)
            ),
        )
        found = {"completion"}
        for name, ok in zip(("tools", "vision", "insert", "thinking"), checks, strict=True):
            if ok:
                found.add(name)
        log.info("vLLM at %s, %s: %s", self.url, model, ", ".join(sorted(found)))
        return Discovered(frozenset(found))

    async def _accepts(self, path: str, body: dict[str, Any]) -> bool:
        status, _ = await self.upstream.fetch("POST", path, orjson.dumps(body))
        return status == 200

    async def _takes_tools(self, model: str) -> bool:
        """Tools, as Ollama decides them: the chat template renders them (the prompt changes
        when a tool is added), and the server can turn the answer into calls (a tool parser:
        it accepts ``tool_choice: auto``)."""
        renders = await self._renders_differently(
            rq.tools_template_probe(model, True), rq.tools_template_probe(model, False)
        )
        return renders and await self._accepts("/v1/chat/completions", rq.tools_probe(model))

    async def _renders_differently(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        """Whether vLLM's ``/tokenize`` gives two chats different tokens; an answer that is not
        a 200 or cannot be read counts as "no"."""
        rendered = []
        for body in (first, second):
            status, content = await self.upstream.fetch("POST", "/tokenize", orjson.dumps(body))
            if status != 200:
                return False
            try:
                rendered.append(orjson.loads(content)["tokens"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("vLLM at %s: /tokenize answered what is not its JSON", self.url)
                return False
        return bool(rendered[0] != rendered[1])

    async def health(self) -> dict[str, Any]:
        """Whether vLLM answers ``/health`` and which models it serves."""
        try:
            status, _ = await self.upstream.fetch("GET", "/health")
            ok = status == 200
            models = [e.served for e in await self.models(refresh=True)] if ok else []
            return {"url": self.url, "reachable": ok, "status": status, "models": models}
        except OllamaError as exc:
            return {"url": self.url, "reachable": False, "error": exc.message, "models": []}

    async def show(
        self, entry: ModelEntry, raw: bytes, modified_at: datetime, basename: str | None
    ) -> Reply:
        return show(entry, modified_at, backend_url=self.url, basename=basename)

    # ------------------------------------------------------------------ chat and generate

    def _count_usage(self, usage: Mapping[str, Any] | None) -> None:
        self._metrics.count_usage(self.name, usage)
        info = current()
        if info is not None and usage:
            info.prompt_tokens = usage.get("prompt_tokens")
            info.completion_tokens = usage.get("completion_tokens")

    async def chat(self, req: ChatRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """An Ollama chat answer: a relay of NDJSON lines, or one object for ``stream: false``
        (vLLM streams both, so the time to the first token is measured either way)."""
        clock = self.clock
        unload = keep_alive_seconds(req.keep_alive) == 0
        if not req.messages:
            return load_response(req.model, chat=True, unload=unload, now_ns=clock.wall_ns())
        timings = rs.Timings(start=clock.perf_ns())
        body = rq.chat_body(req, entry, stream=True, clock=clock, defaults=self._sampling)

        def translator_for(completions: bool) -> StreamTranslator:
            return StreamTranslator(
                req.model,
                timings,
                clock=clock,
                chat=True,
                completions=completions,
                collect=req.stream is False,
                strict_json=bool(req.format),
            )

        translator = translator_for(False)
        path = "/v1/chat/completions"
        try:
            resp = await self._send(path, body, req.model, translator)
        except ContextOverflow as overflow:
            if req.truncate is False:
                raise
            path, body = await self._truncated(body, entry, req.model, overflow, req.options)
            translator = translator_for(path == "/v1/completions")
            resp = await self._send(path, body, req.model, translator)
        return await self._answer(resp, translator)

    async def generate(self, req: GenerateRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """An Ollama generate answer: a relay of NDJSON lines, or one object."""
        clock = self.clock
        unload = keep_alive_seconds(req.keep_alive) == 0
        if not req.prompt and not req.suffix and not req.images:
            return load_response(req.model, chat=False, unload=unload, now_ns=clock.wall_ns())
        timings = rs.Timings(start=clock.perf_ns())
        path, body = rq.generate_body(req, entry, stream=True, defaults=self._sampling)
        completions = path == "/v1/completions"
        context: bool | list[int] = not completions
        if rq.uses_context(req):
            context = await self._continuation_prompt(req, body)
            path, completions = "/v1/completions", True
            body = rq.continuation_body(req, entry, context, stream=True, defaults=self._sampling)

        def translator_for(completions: bool, context: bool | list[int]) -> StreamTranslator:
            return StreamTranslator(
                req.model,
                timings,
                clock=clock,
                chat=False,
                completions=completions,
                context=context,
                collect=req.stream is False,
                strict_json=bool(req.format),
            )

        translator = translator_for(completions, context)
        try:
            resp = await self._send(path, body, req.model, translator)
        except ContextOverflow:
            if req.truncate is False or not entry.max_model_len:
                raise
            # As Ollama's runner: the prompt's start and its newest tokens, then the answer.
            tokens = await self._prompt_tokens(body, req.model)
            prompt = rq.cut_prompt(tokens, entry.max_model_len, rq.num_keep(req.options))
            log.info(
                "prompt longer than the context: %d of %d tokens kept", len(prompt), len(tokens)
            )
            body = rq.completions_over_tokens(body, prompt, entry.max_model_len)
            if context is not False:
                body["return_token_ids"] = True
            translator = translator_for(True, prompt if context is not False else False)
            resp = await self._send("/v1/completions", body, req.model, translator)
        return await self._answer(resp, translator)

    async def _prompt_tokens(self, body: dict[str, Any], model: str) -> list[int]:
        """A request's prompt as vLLM tokenizes it: a chat in its chat form, text as text."""
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            return [int(t) for t in prompt]
        if "messages" in body:
            ask = rq.tokenize_body(body, body["messages"])
        else:
            ask = {"model": body["model"], "prompt": prompt or ""}
        answer = await self.post("/tokenize", ask, model=model)
        return list(answer.get("tokens") or ())

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

    async def _send(
        self, path: str, body: dict[str, Any], model: str, translator: StreamTranslator
    ) -> Response:
        translator.timings.sent = self.clock.perf_ns()
        return await self.open_stream(path, body, model=model)

    async def _answer(self, resp: Response, translator: StreamTranslator) -> Reply:
        if translator.collecting:
            return await collect(self.upstream, resp, translator, self._count_usage)
        return NDJSONRelay(self.upstream, resp, translator, self.clock, self._count_usage)

    async def _truncated(
        self,
        body: dict[str, Any],
        entry: ModelEntry,
        model: str,
        overflow: ContextOverflow,
        options: Mapping[str, Any] | None,
    ) -> tuple[str, dict[str, Any]]:
        """The chat cut to fit the context as Ollama cuts it: the oldest messages dropped, the
        system messages and the latest message always kept, with room left for the answer
        (``chatPrompt``). When even those do not fit, their prompt's tokens are cut as Ollama's
        runner cuts a prompt longer than the context, and sent as a token prompt to
        ``/v1/completions``: the answer's path and body.

        The cut is searched for (binary search over where the kept part starts; each step one
        ``/tokenize`` of that chat in its chat form, images and tools included), instead of one
        count per message; a kept part never starts with a tool result whose call was cut.
        """
        context = entry.max_model_len
        messages: list[dict[str, Any]] = body["messages"]
        if not context:
            raise overflow
        limit = context - rq.answer_room(body.get("max_tokens"), context, self._answer_room)

        async def count(cut: int) -> list[int]:
            counted = rq.tokenize_body(body, rq.kept_messages(messages, cut))
            answer = await self.post("/tokenize", counted, model=model)
            return list(answer.get("tokens") or ())

        async def fits(cut: int) -> bool:
            return len(await count(cut)) <= limit

        last = len(messages) - 1
        if not await fits(last):
            # Even the system messages and the latest one do not fit: the runner's cut.
            keep = rq.num_keep(options)
            prompt = rq.cut_prompt(await count(last), context, keep)
            log.info(
                "prompt longer than the context (%d tokens): its start and end kept, %d tokens",
                context,
                len(prompt),
            )
            return "/v1/completions", rq.completions_over_tokens(body, prompt, context)
        low, high = 0, last  # the first cut that fits lies in [low, high]; ``high`` fits
        while low < high:
            middle = (low + high) // 2
            if await fits(middle):
                high = middle
            else:
                low = middle + 1
        cut = low
        while cut < last and messages[cut].get("role") == "tool":
            cut += 1
        kept = rq.kept_messages(messages, cut)
        if cut:
            log.info(
                "chat history cut to fit %d tokens: %d of %d messages kept",
                limit,
                len(kept),
                len(messages),
            )
        return "/v1/chat/completions", {**body, "messages": kept}

    # ------------------------------------------------------------------ embeddings

    async def _vectors(
        self, entry: ModelEntry, model: str, inputs: list[str], truncate: bool
    ) -> tuple[list[list[float]], int]:
        body = rq.embed_body(entry.served, inputs, truncate=truncate)
        resp = await self.post("/v1/embeddings", body, model=model, admit=True)
        usage = resp.get("usage") or {}
        return rs.embeddings_out(resp), int(usage.get("prompt_tokens") or 0)

    async def embed(self, req: EmbedRequest, entry: ModelEntry, raw: bytes) -> Reply:
        start = self.clock.perf_ns()
        rq.require(entry, "embedding", req.model, "embeddings")
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
        rq.require(entry, "embedding", req.model, "embeddings")
        if not req.prompt:
            return {"embedding": []}
        vectors, _ = await self._vectors(entry, req.model, [req.prompt], True)
        return {"embedding": vectors[0] if vectors else []}
