"""A fake vLLM upstream for API tests, answering with the recorded real responses.

Every answer starts from an answer the real vLLM gave (tests/fixtures, recorded by
scripts/record-fixtures.py), so its shape is what vLLM really sends; tests change only the values they are about (content, deltas,
finish reasons). It is a real HTTP server on 127.0.0.1 (aiohttp), one port per named host
("vllm", "embed", "vision", ...), so the adapter's own HTTP client and connection pool are
exercised; handlers describe answers as ``httpx.Response`` objects, which the server sends.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiohttp import web

from tests import fixtures

Handler = Callable[[httpx.Request, dict[str, Any]], httpx.Response | None]


def sse(events: list[dict[str, Any]], *, done: bool = True) -> bytes:
    """Events framed as vLLM frames them."""
    out = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chat_chunk(
    delta: dict[str, Any], finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A chat stream chunk shaped like the recorded ones."""
    chunk = copy.deepcopy(fixtures.sse_events("chat_stream.sse")[1])
    chunk["choices"][0]["delta"] = delta
    chunk["choices"][0]["finish_reason"] = finish_reason
    chunk.update(extra)
    return chunk


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    """The recorded final usage chunk with other counts."""
    chunk = copy.deepcopy(fixtures.sse_events("chat_stream.sse")[-1])
    chunk["usage"] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return chunk


def error_body(name: str) -> tuple[int, bytes]:
    """A recorded error answer and its status."""
    return fixtures.status(name), fixtures.raw(name)


def recorded(file: str, model: str) -> httpx.Response:
    """A recorded answer with its recorded status, naming ``model`` where it named the one it
    was recorded with."""
    content = fixtures.raw(file)
    asked = fixtures.request(file)
    if isinstance(asked, dict) and asked.get("model"):
        content = content.replace(str(asked["model"]).encode(), model.encode())
    ctype = fixtures.entry(file)["content_type"] or "application/json"
    return httpx.Response(fixtures.status(file), content=content, headers={"content-type": ctype})


def chat_tokens(messages: list[dict[str, Any]]) -> int:
    """The fake's token count of a chat: its words, and 4 for each message's framing."""
    return sum(4 + len(str(m.get("content") or "").split()) for m in messages)


def stream_recording(chat: bool, body: dict[str, Any]) -> str:
    """The recorded stream that answers a streamed chat or completion: one token an event, or,
    when the request asks for ``stream_interval`` (the adapter's answers taken whole), the one
    vLLM sent 8 tokens an event (first and last alone), with logprobs when they were asked."""
    if not body.get("stream_interval"):
        return "chat_stream.sse" if chat else "completions_stream.sse"
    if not chat:
        return "completions_stream_interval.sse"
    return (
        "chat_stream_interval_logprobs.sse" if body.get("logprobs") else "chat_stream_interval.sse"
    )


def _is_probe(body: dict[str, Any]) -> bool:
    """One of the adapter's one-token capability probes (its text is "probe")."""
    if body.get("prompt") == "probe":
        return True
    last = (body.get("messages") or [{}])[-1].get("content")
    texts = [p.get("text") for p in last] if isinstance(last, list) else [last]
    return body.get("max_tokens") == 1 and "probe" in texts


def _has_image(body: dict[str, Any]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(p.get("type") == "image_url" for p in m["content"])
        for m in body.get("messages") or []
    )


def embeddings_answer(body: dict[str, Any]) -> dict[str, Any]:
    """vLLM's ``/v1/embeddings`` answer shape; vector i is ``[i+1, 2(i+1), 2(i+1)]``."""
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"index": i, "object": "embedding", "embedding": [i + 1.0, 2.0 * (i + 1), 2.0 * (i + 1)]}
        for i in range(len(inputs))
    ]
    tokens = sum(len(str(x).split()) for x in inputs)
    return {
        "id": "embd-1",
        "object": "list",
        "created": 1795301122,
        "model": body["model"],
        "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def unreadable(exc: Exception) -> httpx.Response:
    """vLLM's answer to a body it cannot read. vLLM validates every body with pydantic and
    answers 400 in this shape (recorded: ``err_bad_json.json``, ``messages_err_no_max_tokens``);
    the fake does not validate, so a body its handlers trip on is answered the same way."""
    message = f"1 validation error:\n  {{'type': 'value_error', 'msg': {str(exc)!r}}}"
    error = {"message": message, "type": "Bad Request", "param": "body", "code": 400}
    return httpx.Response(400, content=orjson.dumps({"error": error}))


@dataclass
class FakeVLLM:
    """Serves ``/v1/models``, chat and completions from the fixtures; records requests."""

    served: list[str] = field(default_factory=lambda: ["tiny-llm"])
    max_model_len: int = 512
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of each request, in the order of ``requests`` (names lower-cased)."""
    handler: Handler | None = None
    chunk_size: int = 64
    """SSE bytes per transport read, to exercise line reassembly."""
    stream_delay: float = 0.0
    cancelled: int = 0
    slow_answer: float = 0.0
    #: When set, ``/v1/models`` answers only once the event is set (a busy vLLM).
    models_gate: asyncio.Event | None = None
    """Seconds to wait before answering at all (headers included)."""
    drop_next: int = 0
    """Close the connection on this many coming requests without answering (a server that
    closed an idle keep-alive connection)."""
    served_by_host: dict[str, list[str]] = field(default_factory=dict)
    """Per-host served names (overrides ``served`` for that host)."""
    _runners: dict[str, web.AppRunner] = field(default_factory=dict)
    _urls: dict[str, str] = field(default_factory=dict)
    embedding_models: list[str] = field(default_factory=list)
    """Served names that answer ``/v1/embeddings`` (a pooling server in real life)."""
    thinking_models: list[str] = field(default_factory=list)
    """Served names whose chat template toggles thinking (``/tokenize`` tells them apart)."""
    vision_models: list[str] = field(default_factory=list)
    """Served names that take images (the rest answer vLLM's "not a multimodal model")."""
    plain_template_models: list[str] = field(default_factory=list)
    """Served names whose chat template ignores tools, as SmolLM2's does: ``/tokenize`` gives
    the same tokens with and without them (the rest render tools, as tiny-llm's does)."""
    insert_models: list[str] = field(default_factory=list)
    """Served names that take a ``suffix`` (fill-in-the-middle)."""
    word_tokens: bool = False
    """Count a chat's tokens as vLLM would, by a simple rule (its words, plus 4 a message): a
    chat over ``max_model_len`` gets the recorded 400, and ``/tokenize`` says that count."""
    ollama_models: list[str] = field(
        default_factory=lambda: ["llava:7b", "nomic-embed-text:latest"]
    )
    """What the fake Vision Ollama (host ``vision.test``) has."""

    @property
    def last(self) -> dict[str, Any]:
        """The body of the last POST."""
        return self.requests[-1][1]

    def generations(self) -> list[dict[str, Any]]:
        """The generation requests it got, without the adapter's capability probes."""
        return [
            body
            for path, body in self.requests
            if path in ("/v1/chat/completions", "/v1/completions") and not _is_probe(body)
        ]

    async def url(self, host: str = "vllm") -> str:
        """The base URL of the fake ``host``, started on first use."""
        if host not in self._urls:
            app = web.Application(client_max_size=64 * 1024 * 1024)

            async def serve(request: web.Request, host: str = host) -> web.StreamResponse:
                return await self._serve(host, request)

            app.router.add_route("*", "/{tail:.*}", serve)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            self._runners[host] = runner
            self._urls[host] = f"http://127.0.0.1:{port}"
        return self._urls[host]

    async def stop(self, host: str | None = None) -> None:
        """Stop one host (it then refuses connections) or all of them."""
        for name in [host] if host else list(self._runners):
            runner = self._runners.pop(name, None)
            if runner is not None:
                await runner.cleanup()

    async def _serve(self, host: str, request: web.Request) -> web.StreamResponse:
        content = await request.read()
        if self.slow_answer:
            await asyncio.sleep(self.slow_answer)
        if self.drop_next > 0:
            self.drop_next -= 1
            self.requests.append(("dropped", {}))
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        req = httpx.Request(
            request.method,
            f"http://{host}{request.path_qs}",
            headers=list(request.headers.items()),
            content=content,
        )
        try:
            answer = await self._handle(req)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            answer = unreadable(exc)
        body_stream = answer.extensions.get("fake_stream")
        if body_stream is None:
            return web.Response(
                status=answer.status_code,
                body=answer.content,
                headers={"Content-Type": answer.headers.get("content-type", "application/json")},
            )
        resp = web.StreamResponse(status=answer.status_code)
        resp.content_type = answer.headers.get("content-type", "text/event-stream").split(";")[0]
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async for piece in body_stream:
                await resp.write(piece)
        except httpx.RemoteProtocolError:
            assert request.transport is not None
            request.transport.close()  # die mid-stream, as a crashed server would
            return resp
        except ConnectionResetError:
            self.cancelled += 1  # the client left mid-stream
            return resp
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        await resp.write_eof()
        return resp

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = orjson.loads(request.content) if request.content else {}
        self.requests.append((request.url.path, body))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if request.url.host == "vision":
            return self._ollama(request.url.path, body)
        if self.handler is not None:
            custom = self.handler(request, body)
            if custom is not None:
                return custom
        path = request.url.path
        if path == "/v1/embeddings":
            if body.get("model") not in self.embedding_models:
                return httpx.Response(
                    404, content=fixtures.raw("err_embeddings_on_chat_server.json")
                )
            return httpx.Response(200, content=orjson.dumps(embeddings_answer(body)))
        if path == "/v1/models":
            if self.models_gate is not None:
                await self.models_gate.wait()
            return httpx.Response(200, content=self.models_json(request.url.host))
        if path == "/health":
            return httpx.Response(200)
        model = str(body.get("model"))
        known = model in self.served_by_host.get(request.url.host, self.served)
        if path == "/tokenize":
            if self.word_tokens and "messages" in body:
                count = chat_tokens(body["messages"])
                answer = {**fixtures.load("tokenize_chat.json"), "count": count}
                answer.update(tokens=list(range(count)), max_model_len=self.max_model_len)
                return httpx.Response(200, content=orjson.dumps(answer))
            return httpx.Response(200, content=fixtures.raw(self._tokenized(model, body)))
        if path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/responses"):
            return self._compat(path, model, known, body)
        if path in ("/v1/chat/completions", "/v1/completions"):
            if not known:
                return recorded("err_unknown_model.json", model)
            chat = path.endswith("chat/completions")
            if chat and self.word_tokens and chat_tokens(body["messages"]) > self.max_model_len:
                return recorded("err_too_long.json", model)
            if chat and _has_image(body) and model not in self.vision_models:
                return recorded("err_image_text_model.json", model)
            if not chat and body.get("suffix") and model not in self.insert_models:
                return recorded("completions_suffix.json", model)
            if body.get("stream"):
                return self.stream(fixtures.raw(stream_recording(chat, body)))
            return httpx.Response(
                200, content=fixtures.raw("chat.json" if chat else "completions.json")
            )
        return httpx.Response(404, content=b'{"detail":"Not Found"}')

    def _tokenized(self, model: str, body: dict[str, Any]) -> str:
        """The recorded ``/tokenize`` answer for this model and request: a thinking model's
        template renders thinking on and off differently, any other's does not."""
        if "messages" not in body:
            return "tokenize.json"
        if model in self.plain_template_models:
            return (
                "smollm2_tokenize_chat_tools.json"
                if body.get("tools")
                else "smollm2_tokenize_chat.json"
            )
        if body.get("tools"):
            return "tokenize_chat_tools.json"
        switch = (body.get("chat_template_kwargs") or {}).get("enable_thinking")
        if model in self.thinking_models and switch is not None:
            return "think_tokenize_on.json" if switch else "think_tokenize_off.json"
        return "tokenize_chat.json"

    def _compat(self, path: str, model: str, known: bool, body: dict[str, Any]) -> httpx.Response:
        """vLLM's own Anthropic and Responses routes, answered as recorded."""
        family = "responses" if path == "/v1/responses" else "messages"
        if not known:
            return recorded(f"{family}_err_unknown_model.json", model)
        if path.endswith("count_tokens"):
            return recorded("messages_count_tokens.json", model)
        if family == "messages" and not body.get("max_tokens"):
            return recorded("messages_err_no_max_tokens.json", model)
        if body.get("stream"):
            return self.stream(fixtures.raw(f"{family}_stream.sse"))
        return recorded(f"{family}.json", model)

    def _ollama(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """A minimal real-Ollama stand-in: tags, and chat/embed answers in Ollama's shapes."""
        if path == "/api/tags":
            models = [
                {
                    "name": m,
                    "model": m,
                    "digest": "ab" * 32,
                    "size": 1,
                    "modified_at": "2025-05-10T08:06:48.639712648-07:00",
                    "details": {"family": "llama"},
                }
                for m in self.ollama_models
            ]
            return httpx.Response(200, content=orjson.dumps({"models": models}))
        if path == "/api/chat":
            line = {
                "model": body["model"],
                "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": "a cat"},
                "done": True,
                "done_reason": "stop",
            }
            if body.get("stream"):
                resp = self.stream(orjson.dumps(line) + b"\n")
                resp.headers["content-type"] = "application/x-ndjson"
                return resp
            ctype = "application/json; charset=utf-8"
            return httpx.Response(200, content=orjson.dumps(line), headers={"content-type": ctype})
        if path == "/api/show":
            # What an Ollama older than 0.18.3 answers (no Copilot special case).
            shown = {
                "modelfile": f"FROM {body['model']}\n",
                "template": "{{ .Prompt }}",
                "details": {"family": "llama"},
                "model_info": {"general.architecture": "llama", "general.basename": "llava"},
                "capabilities": ["completion", "vision"],
            }
            return httpx.Response(200, content=orjson.dumps(shown))
        if path == "/v1/messages":
            # Ollama's Anthropic answer (its anthropic.ToMessagesResponse).
            message = {
                "id": "msg_ollama",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "a cat"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 2},
            }
            return httpx.Response(200, content=orjson.dumps(message))
        if path == "/api/embed":
            return httpx.Response(
                200, content=orjson.dumps({"model": body["model"], "embeddings": [[0.6, 0.8]]})
            )
        return httpx.Response(404, content=b"404 page not found")

    def models_json(self, host: str = "vllm") -> bytes:
        data = fixtures.load("models.json")
        card = data["data"][0]
        data["data"] = []
        for name in self.served_by_host.get(host, self.served):
            c = copy.deepcopy(card)
            c["id"] = name
            c["max_model_len"] = self.max_model_len
            data["data"].append(c)
        return orjson.dumps(data)

    def stream(self, payload: bytes, *, die_after: int | None = None) -> httpx.Response:
        """A streaming answer sent in ``chunk_size`` pieces; ``die_after`` bytes then a reset."""
        fake = self

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            for i in range(0, len(payload), fake.chunk_size):
                piece = payload[i : i + fake.chunk_size]
                if die_after is not None and sent + len(piece) > die_after:
                    yield piece[: die_after - sent]
                    raise httpx.RemoteProtocolError("peer closed connection")
                sent += len(piece)
                if fake.stream_delay:
                    await asyncio.sleep(fake.stream_delay)
                yield piece

        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            extensions={"fake_stream": body()},
        )
