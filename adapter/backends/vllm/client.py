"""The vLLM backend: one pooled HTTP client, SSE reading, error mapping, model-list cache."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from adapter.api.schemas import ChatRequest, GenerateRequest
from adapter.backends.base import ModelEntry
from adapter.backends.httpclient import Response, public_url
from adapter.backends.upstream import TRANSPORT_ERRORS, RawRelay, Upstream, forward
from adapter.backends.vllm import translate
from adapter.backends.vllm.translate import StreamTranslator, Timings, created_at_bytes
from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.metrics import Metrics

log = logging.getLogger("adapter.vllm")

#: How long a finished stream waits for the rest of vLLM's answer (the chunked end) before
#: dropping the connection instead of reusing it.
DRAIN_SECONDS = 1.0

#: Lines split off a stream's buffer at a time before its first line has left (vLLM's first
#: event carries only the role; the first token is in the second).
FIRST_SPLIT = 8


class VLLMBackend:
    """Serves Ollama chat and generate requests from a vLLM server."""

    def __init__(self, name: str, url: str, settings: Settings, metrics: Metrics) -> None:
        self.name = name
        self.url = public_url(url)
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
        )
        self._cache_ttl = settings.models_cache_ttl
        self._models: list[dict[str, Any]] | None = None
        self._models_at = 0.0
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
        err = translate.upstream_error(status, content, model)
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

    async def forward(
        self, method: str, path: str, body: Any, *, stream: bool
    ) -> tuple[int, str, RawRelay | bytes]:
        """Pass an OpenAI-compatible request on as it is (``/v1/*``)."""
        content = orjson.dumps(body) if isinstance(body, dict) else body
        return await forward(
            self.upstream, method, path, content, stream=stream, error_line=translate.sse_error
        )

    # ------------------------------------------------------------------ models

    async def models(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """vLLM's model cards, cached for ``models_cache_ttl`` seconds.

        ``refresh`` asks again (a name was not found), but at most twice a second, so a
        client repeating an unknown name cannot turn each request into two.
        """
        max_age = 0.5 if refresh else self._cache_ttl
        if self._models is not None and time.monotonic() - self._models_at < max_age:
            return self._models
        async with self._models_lock:
            if self._models is not None and time.monotonic() - self._models_at < max_age:
                return self._models
            status, content = await self.upstream.fetch("GET", "/v1/models")
            if status != 200:
                raise self._status_error(status, content, None)
            data = orjson.loads(content).get("data") or []
            models = [m for m in data if isinstance(m, dict) and m.get("id")]
            if self.features is None and models:
                self.features = await self._discover(str(models[0]["id"]))
            self._models = models
            self._models_at = time.monotonic()
            return self._models

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
            models = [m["id"] for m in await self.models(refresh=True)] if ok else []
            return {"url": self.url, "reachable": ok, "status": status, "models": models}
        except OllamaError as exc:
            return {"url": self.url, "reachable": False, "error": exc.message, "models": []}

    # ------------------------------------------------------------------ chat and generate

    async def chat(
        self, req: ChatRequest, entry: ModelEntry, *, stream: bool
    ) -> dict[str, Any] | NDJSONRelay:
        """Answer an Ollama chat request: a dict, or a relay of NDJSON lines when streaming."""
        timings = Timings(start=time.perf_counter_ns())
        body = translate.chat_body(
            req, entry.served, stream=stream, max_model_len=entry.max_model_len
        )
        path = "/v1/chat/completions"
        if stream:
            translator = StreamTranslator(req.model, timings, chat=True)
            return await self._relay(path, body, req.model, translator)
        timings.sent = time.perf_counter_ns()
        resp = await self.post(path, body, model=req.model)
        timings.finish(resp)
        out = translate.chat_response(resp, req.model, timings)
        self._metrics.count_tokens(self.name, out)
        return out

    async def generate(
        self, req: GenerateRequest, entry: ModelEntry, *, stream: bool
    ) -> dict[str, Any] | NDJSONRelay:
        """Answer an Ollama generate request: a dict, or a relay of NDJSON lines when streaming."""
        timings = Timings(start=time.perf_counter_ns())
        path, body = translate.generate_body(
            req, entry.served, stream=stream, max_model_len=entry.max_model_len
        )
        completions = path == "/v1/completions"
        context: bool | list[int] = not completions
        if translate.uses_context(req):
            context = await self._continuation_prompt(req, body)
            path, completions = "/v1/completions", True
            body = translate.continuation_body(
                req, entry.served, context, stream=stream, max_model_len=entry.max_model_len
            )
        if stream:
            translator = StreamTranslator(
                req.model, timings, chat=False, completions=completions, context=context
            )
            return await self._relay(path, body, req.model, translator)
        timings.sent = time.perf_counter_ns()
        resp = await self.post(path, body, model=req.model)
        timings.finish(resp)
        out = translate.generate_response(resp, req.model, timings, completions=completions)
        if isinstance(context, list):
            choice = (resp.get("choices") or [{}])[0]
            out["context"] = context + list(choice.get("token_ids") or [])
        self._metrics.count_tokens(self.name, out)
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
        translator.timings.sent = time.perf_counter_ns()
        resp = await self.open_stream(path, body, model=model)
        return NDJSONRelay(self, resp, translator)


class NDJSONRelay:
    """Reads vLLM's SSE stream and yields Ollama NDJSON, one write per network read.

    Several SSE events that arrive in one read leave as one write, which keeps the cost per
    token low; only the first line is sent on its own, so batching never delays it, and the
    last line leaves with the end of the body. ``aclose`` closes the upstream response, so
    vLLM aborts the request when the client goes away.
    """

    ended = False

    def __init__(self, backend: VLLMBackend, resp: Response, translator: StreamTranslator) -> None:
        self._backend = backend
        self._resp = resp
        self._translator = translator

    async def __aiter__(self) -> AsyncIterator[bytes]:
        translator = self._translator
        feed = translator.feed
        loads = translate.loads_lenient
        buf = b""
        first = True
        try:
            async for data in self._resp.iter_any():
                translator.now = created_at_bytes()
                buf = buf + data if buf else data
                if b"\n" not in data:
                    continue
                out = []
                try:
                    while True:
                        # Until the first line has left, split off a few lines at a time:
                        # splitting a large first read whole would hold the first token.
                        limited = first
                        lines = buf.split(b"\n", FIRST_SPLIT) if limited else buf.split(b"\n")
                        buf = lines.pop()
                        for line in lines:
                            if not line.startswith(b"data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == b"[DONE]":
                                # The last line leaves with what came before it, and the
                                # end of the body with it; then the upstream answer is read
                                # out so its connection can serve the next request.
                                out.append(self._final())
                                self.ended = True
                                yield b"".join(out)
                                await self._drain()
                                return
                            piece = feed(loads(payload))
                            if piece:
                                if first:
                                    # The first line leaves at once (time to first token);
                                    # the rest of what arrived together leaves as one write.
                                    first = False
                                    yield piece
                                else:
                                    out.append(piece)
                        if not (limited and b"\n" in buf):
                            break
                except OllamaError as exc:
                    out.append(translate.error_line(exc.message))
                    yield b"".join(out)
                    return
                except ValueError:
                    out.append(translate.error_line("vLLM sent a malformed stream event"))
                    yield b"".join(out)
                    return
                if out:
                    yield b"".join(out)
        except TRANSPORT_ERRORS as exc:
            yield translate.error_line(self._backend.upstream.error(exc).message)
            return
        except Exception as exc:  # the stream has started: an error line is all that is left
            log.error("stream relay failed: %r", exc, exc_info=exc)
            yield translate.error_line(f"internal error in the adapter: {type(exc).__name__}")
            return
        finally:
            self._resp.release()
        if translator.finish_reason is None:
            yield translate.error_line(f"vLLM at {self._backend.url} ended the stream early")
            return
        yield self._final()

    def _final(self) -> bytes:
        translator = self._translator
        self._backend._metrics.count_usage(self._backend.name, translator.usage)
        return translator.final()

    async def _drain(self) -> None:
        """Read what is left of a finished answer (its end usually follows at once)."""
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for _ in self._resp.iter_any():
                    pass
        except (TimeoutError, *TRANSPORT_ERRORS):
            pass  # the connection is dropped instead of reused

    async def aclose(self) -> None:
        self._resp.close()
