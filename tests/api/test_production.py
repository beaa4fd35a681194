"""Production hardening: admission control, inbound API keys, request ids, access logs, limits,
readiness and shutdown (the app against the recorded-faithful fake)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from adapter.admission import BUSY, Admission
from adapter.api.answers import SHUTTING_DOWN
from adapter.api.gate import UNAUTHORIZED
from adapter.config import Settings
from adapter.logs import JsonFormatter
from adapter.requestctx import RequestIdFilter
from tests import fixtures
from tests.api.conftest import listening, serve
from tests.fake_vllm import FakeVLLM
from tests.support.clock import Ticks

HI = [{"role": "user", "content": "Hello"}]
CHAT = {"model": "tiny-llm", "messages": HI}


def held_streams(fake: FakeVLLM) -> asyncio.Event:
    """Chat streams that send their first two events (a role, then a token: the first line
    a client sees), then wait until the event is set."""
    go = asyncio.Event()
    role, token, rest = fixtures.raw("chat_stream.sse").split(b"\n\n", 2)
    first = role + b"\n\n" + token

    def handler(req: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if req.url.path not in ("/v1/chat/completions", "/v1/messages") or not body.get("stream"):
            return None

        async def events() -> AsyncIterator[bytes]:
            yield first + b"\n\n"
            await go.wait()
            yield rest

        ctype = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=ctype, extensions={"fake_stream": events()})

    fake.handler = handler
    return go


async def until(condition: Any, seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - state of another task, no event for it
            await asyncio.sleep(0.005)


async def settles(admission: Admission, *, running: int | None = None, waiting: int = 0) -> None:
    """Wait until the admission counts are these (``running`` unchecked when None)."""
    await until(lambda: admission.waiting == waiting and running in (None, admission.running))


def gauge(text: str, name: str) -> float:
    match = re.search(rf'^{name}{{backend="vllm"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# --------------------------------------------------------------------------- admission


async def test_past_the_turns_and_the_queue_ollamas_busy_answer(fake: FakeVLLM) -> None:
    go = held_streams(fake)
    settings = Settings(vllm_url=await fake.url(), max_concurrent=2, max_queue=1)
    async for client in serve(settings):
        running = [
            asyncio.create_task(client.post("/api/chat", json={**CHAT, "stream": True}))
            for _ in range(3)
        ]
        adapter = client._transport.app.state.adapter  # type: ignore[attr-defined]
        admission = adapter.backends[0].upstream.admission
        await settles(admission, running=2, waiting=1)
        busy = await client.post("/api/chat", json={**CHAT, "stream": True})
        assert (busy.status_code, busy.json()) == (503, {"error": BUSY})
        openai = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert openai.status_code == 503 and openai.json()["error"]["message"] == BUSY
        claude = await client.post("/v1/messages", json={**CHAT, "max_tokens": 8})
        assert claude.status_code == 503
        assert claude.json()["error"] == {"type": "overloaded_error", "message": BUSY}
        text = (await client.get("/metrics")).text
        assert gauge(text, "ollama_adapter_admission_running") == 2
        assert gauge(text, "ollama_adapter_admission_queued") == 1
        assert gauge(text, "ollama_adapter_admission_rejected_total") == 3
        go.set()  # the held streams end; the queued one gets its turn and ends too
        done = await asyncio.gather(*running)
        assert all(r.status_code == 200 and b'"done":true' in r.content for r in done)
        assert admission.running == 0 and admission.waiting == 0


async def test_a_queued_request_whose_client_leaves_leaves_the_queue(fake: FakeVLLM) -> None:
    go = held_streams(fake)
    settings = Settings(vllm_url=await fake.url(), max_concurrent=1, max_queue=4)
    async for client in serve(settings):
        held = asyncio.create_task(client.post("/api/chat", json={**CHAT, "stream": True}))
        adapter = client._transport.app.state.adapter  # type: ignore[attr-defined]
        admission = adapter.backends[0].upstream.admission
        await settles(admission, running=1)
        queued = asyncio.create_task(client.post("/api/chat", json={**CHAT, "stream": True}))
        await settles(admission, waiting=1)
        queued.cancel()  # the client goes away while it waits
        await settles(admission)
        go.set()
        assert (await held).status_code == 200
        assert admission.running == 0
        asked = [b for p, b in fake.requests if p == "/v1/chat/completions" and b.get("stream")]
        assert len(asked) == 1  # the one that left never reached vLLM


# --------------------------------------------------------------------------- API keys


@pytest.fixture
async def locked(fake: FakeVLLM) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(vllm_url=await fake.url(), api_keys="first-key, second-key")
    async for client in serve(settings):
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "first-key"},
        {"x-api-key": "first-key"},
    ],
)
async def test_without_a_key_every_route_is_401(
    locked: httpx.AsyncClient, fake: FakeVLLM, headers: dict[str, str]
) -> None:
    for method, path in (
        ("POST", "/api/chat"),
        ("GET", "/api/tags"),
        ("POST", "/v1/chat/completions"),
    ):
        resp = await locked.request(method, path, json={**CHAT, "stream": False}, headers=headers)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
        body = resp.json()
        message = body["error"] if isinstance(body["error"], str) else body["error"]["message"]
        assert message == UNAUTHORIZED
    assert fake.generations() == []


async def test_a_key_opens_every_route_and_never_goes_upstream(
    locked: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    auth = {"Authorization": "Bearer second-key"}
    assert (
        await locked.post("/api/chat", json={**CHAT, "stream": False}, headers=auth)
    ).status_code == 200
    anthropic = await locked.post(
        "/v1/messages", json={**CHAT, "max_tokens": 8}, headers={"x-api-key": "first-key"}
    )
    assert anthropic.status_code == 200
    assert all(
        "second-key" not in v and "first-key" not in v for h in fake.headers for v in h.values()
    )
    assert (await locked.get("/")).status_code == 200  # liveness needs no key
    for path in ("/health", "/ready", "/metrics"):  # nor, by default, these
        assert (await locked.get(path)).status_code == 200
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    assert (await locked.options("/api/chat", headers=preflight)).status_code == 204


async def test_the_open_paths_are_a_setting(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), api_keys="k", open_paths="")
    async for client in serve(settings):
        assert (await client.get("/health")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/")).status_code == 200


# --------------------------------------------------------------------------- request ids


async def test_request_ids_are_kept_or_made_and_go_everywhere(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    given = {"X-Request-ID": "notes-7f3a:1", "x-session-id": "conversation-9", "x-user-id": "u1"}
    resp = await client.post("/api/chat", json={**CHAT, "stream": False}, headers=given)
    assert resp.headers["x-request-id"] == "notes-7f3a:1"
    sent = fake.headers[-1]
    assert sent["x-request-id"] == "notes-7f3a:1"
    assert (sent["x-session-id"], sent["x-user-id"]) == ("conversation-9", "u1")
    for bad in ("has spaces", "x" * 200, "semi;colon"):
        resp = await client.post(
            "/api/chat", json={**CHAT, "stream": False}, headers={"X-Request-ID": bad}
        )
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])
    for resp in (
        await client.get("/api/nothing"),
        await client.post("/api/chat", content=b"{bad"),
        await client.post("/api/chat", json={**CHAT, "model": "nope"}),
    ):
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])


async def test_forwarded_headers_are_a_setting(fake: FakeVLLM) -> None:
    settings = Settings(
        vllm_url=await fake.url(),
        forward_headers="X-Tenant",
        session_headers="",
        session_from_chat=False,
    )
    async for client in serve(settings):
        await client.post(
            "/api/chat",
            json={**CHAT, "stream": False},
            headers={"x-tenant": "blue", "x-session-id": "s"},
        )
    assert fake.headers[-1]["x-tenant"] == "blue" and "x-session-id" not in fake.headers[-1]


async def test_a_chat_id_reaches_vllm_as_the_session_id(fake: FakeVLLM) -> None:
    """vLLM's router keeps a session on one replica by ``X-Session-ID``; Open WebUI names its
    chats in ``X-OpenWebUI-Chat-Id``: the first session header a request carries goes up as
    ``X-Session-ID``, once."""
    settings = Settings(vllm_url=await fake.url())
    chat = {**CHAT, "stream": False}
    async for client in serve(settings):
        await client.post("/api/chat", json=chat, headers={"X-OpenWebUI-Chat-Id": "chat-1"})
        sent = fake.headers[-1]
        assert sent["x-session-id"] == "chat-1" and "x-openwebui-chat-id" not in sent
        both = {"X-OpenWebUI-Chat-Id": "chat-1", "X-Session-ID": "mine"}
        await client.post("/api/chat", json=chat, headers=both)
        assert fake.headers[-1]["x-session-id"] == "mine"  # the first in the setting's order
    settings = Settings(vllm_url=await fake.url(), session_headers="X-Conversation")
    async for client in serve(settings):
        await client.post("/api/chat", json=chat, headers={"x-conversation": "c9"})
    assert fake.headers[-1]["x-session-id"] == "c9"


async def test_a_chat_without_a_session_is_named_by_its_opening(fake: FakeVLLM) -> None:
    """Ollama's clients name no session: each turn of a conversation reaches vLLM with the same
    ``X-Session-ID``, made from its opening, and another conversation with another; a
    client's own session header wins; ``ADAPTER_SESSION_FROM_CHAT=false`` sends none."""
    opening = [{"role": "user", "content": "Where do penguins live?"}]
    later = [*opening, {"role": "assistant", "content": "Antarctica."}, CHAT["messages"][0]]
    other = [{"role": "user", "content": "What do bees make?"}]

    async def session_of(client: httpx.AsyncClient, messages: Any, **headers: str) -> str | None:
        body = {**CHAT, "messages": messages, "stream": False}
        assert (await client.post("/api/chat", json=body, headers=headers)).status_code == 200
        return fake.headers[-1].get("x-session-id")

    async for client in serve(Settings(vllm_url=await fake.url())):
        first = await session_of(client, opening)
        assert first is not None and await session_of(client, later) == first
        assert await session_of(client, other) not in (None, first)
        assert await session_of(client, later, **{"X-Session-ID": "mine"}) == "mine"
    async for client in serve(Settings(vllm_url=await fake.url(), session_from_chat=False)):
        assert await session_of(client, later) is None


async def test_the_model_list_made_once_carries_each_requests_own_id(
    client: httpx.AsyncClient,
) -> None:
    """``/api/tags`` sends a body and head fields made once; each answer has its own id."""
    first = await client.get("/api/tags", headers={"X-Request-ID": "tags-1"})
    second = await client.get("/api/tags", headers={"X-Request-ID": "tags-2"})
    assert second.content == first.content and b'"models":[{' in first.content
    for resp, rid in ((first, "tags-1"), (second, "tags-2")):
        assert resp.headers.get_list("x-request-id") == [rid]
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        assert int(resp.headers["content-length"]) == len(resp.content)


# --------------------------------------------------------------------------- access logs


async def test_one_access_line_a_request_and_no_prompt(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my-unusual-prompt-about-debts"
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": secret}]}
    with caplog.at_level(logging.DEBUG):
        for stream in (False, True):
            await client.post(
                "/api/chat", json={**body, "stream": stream}, headers={"X-Request-ID": f"r{stream}"}
            )
    lines = [r for r in caplog.records if r.name == "adapter.access"]
    assert [r.access["path"] for r in lines] == ["/api/chat", "/api/chat"]  # type: ignore[attr-defined]
    for record in lines:
        fields = record.access  # type: ignore[attr-defined]
        assert (
            fields["status"] == 200
            and fields["model"] == "llama3.2"
            and fields["backend"] == "vllm"
        )
        assert fields["prompt_tokens"] > 0 and fields["completion_tokens"] > 0
        assert fields["duration_ms"] > 0
    assert not [r for r in caplog.records if secret in r.getMessage()]


async def test_bodies_are_logged_only_when_debugging_says_so(
    fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "prompt-shown-only-with-log-bodies"
    body = {"model": "tiny-llm", "messages": [{"role": "user", "content": secret}], "stream": False}
    async for client in serve(Settings(vllm_url=await fake.url(), log_bodies=True)):
        with caplog.at_level(logging.DEBUG):
            await client.post("/api/chat", json=body)
    assert [r for r in caplog.records if secret in r.getMessage()]


def test_json_log_lines_carry_the_request_id_and_the_access_fields() -> None:
    record = logging.LogRecord(
        "adapter.access", logging.INFO, __file__, 1, "POST %s", ("/x",), None
    )
    record.access = {"status": 200, "model": "m"}
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "POST /x" and line["level"] == "info"
    assert line["request_id"] == "-" and line["access"] == {"status": 200, "model": "m"}
    assert line["time"].endswith("Z")


# --------------------------------------------------------------------------- limits


async def test_a_body_over_the_limit_is_413_and_not_read(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), max_body_bytes=2048)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4000}]}
    async for client in serve(settings):
        resp = await client.post("/api/chat", json=big)  # Content-Length says it first
        assert resp.status_code == 413 and "ADAPTER_MAX_BODY_BYTES" in resp.json()["error"]
        assert resp.headers["connection"] == "close"

        async def pieces() -> AsyncIterator[bytes]:
            data = orjson.dumps(big)
            for i in range(0, len(data), 512):
                yield data[i : i + 512]

        resp = await client.post("/api/chat", content=pieces())  # chunked: counted as it comes
        assert resp.status_code == 413
        resp = await client.post("/v1/chat/completions", json=big)
        assert resp.status_code == 413 and "message" in resp.json()["error"]
    assert fake.generations() == []


async def test_image_and_message_limits_are_400s_naming_the_limit(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), max_images=2, max_messages=3)
    png = "iVBORw0KGgo="
    async for client in serve(settings):
        many = {**CHAT, "messages": HI * 4}
        resp = await client.post("/api/chat", json=many)
        assert (resp.status_code, resp.json()["error"]) == (
            400,
            "too many messages: 4 (the limit is 3, ADAPTER_MAX_MESSAGES)",
        )
        pics = {"model": "tiny-llm", "prompt": "?", "images": [png] * 3}
        resp = await client.post("/api/generate", json=pics)
        assert resp.json()["error"] == "too many images: 3 (the limit is 2, ADAPTER_MAX_IMAGES)"
        parts = [{"type": "image_url", "image_url": {"url": "data:,"}}] * 3
        resp = await client.post(
            "/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": parts}]}
        )
        assert resp.status_code == 400 and "ADAPTER_MAX_IMAGES" in resp.json()["error"]["message"]
    assert fake.generations() == []


# --------------------------------------------------------------------------- readiness


async def test_ready_follows_whether_a_vllm_can_serve(fake: FakeVLLM, settings: Settings) -> None:
    async for client in serve(settings):
        ready = await client.get("/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        await fake.stop()
        down = await client.get("/ready")
        assert down.status_code == 503 and down.json()["status"] == "not ready"
        assert (await client.get("/")).status_code == 200  # liveness is not readiness


# --------------------------------------------------------------------------- shutdown


async def test_at_shutdown_open_streams_get_their_grace_then_a_last_error_line(
    fake: FakeVLLM,
) -> None:
    go = held_streams(fake)  # let go only after the test: only the shutdown ends these streams
    settings = Settings(vllm_url=await fake.url(), shutdown_grace=0.5)
    async with (
        listening(settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("POST", "/api/chat", json={**CHAT, "stream": True}) as resp,
    ):
        lines = resp.aiter_lines()
        assert json.loads(await anext(lines))["done"] is False
        server.should_exit = True  # SIGTERM, as uvicorn sees it
        rest = [json.loads(line) async for line in lines if line]
    go.set()  # the fake's own handler may end now
    assert rest[-1] == {"error": SHUTTING_DOWN}


async def test_at_shutdown_an_openai_stream_ends_with_its_own_error_event(fake: FakeVLLM) -> None:
    go = held_streams(fake)
    settings = Settings(vllm_url=await fake.url(), shutdown_grace=0.5)
    async with (
        listening(settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp,
    ):
        events = resp.aiter_lines()
        assert (await anext(events)).startswith("data: {")
        server.should_exit = True
        rest = [line async for line in events if line]
    go.set()
    assert rest[-1] == "data: [DONE]"
    assert json.loads(rest[-2].removeprefix("data: "))["error"]["message"] == SHUTTING_DOWN


async def test_at_shutdown_a_stream_that_ends_within_its_grace_ends_whole(
    fake: FakeVLLM,
) -> None:
    go = held_streams(fake)
    settings = Settings(vllm_url=await fake.url(), shutdown_grace=30)
    async with (
        listening(settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("POST", "/api/chat", json={**CHAT, "stream": True}) as resp,
    ):
        lines = resp.aiter_lines()
        assert json.loads(await anext(lines))["done"] is False
        server.should_exit = True
        await asyncio.wait_for(server.shutting_down.wait(), 10)  # the stream is still open
        go.set()
        rest = [json.loads(line) async for line in lines if line]
    assert rest[-1]["done"] is True and "error" not in rest[-1]
    assert all("error" not in line for line in rest)


async def test_the_background_model_list_refresh_carries_no_clients_headers(
    client: httpx.AsyncClient, fake: FakeVLLM, ticks: Ticks
) -> None:
    """The refresh a request starts once the catalogue is old runs in a context of its own:
    vLLM sees the client's id and session headers on the chat, never on the model list."""
    await client.post("/api/chat", json={**CHAT, "stream": False})  # the catalogue is built
    ticks.advance(3600)  # ... and is old now
    given = {"X-Request-ID": "client-42", "x-session-id": "conversation-9"}
    seen = len(fake.requests)
    resp = await client.post("/api/chat", json={**CHAT, "stream": False}, headers=given)
    assert resp.status_code == 200
    for _ in range(100):  # the refresh runs beside the chat
        if any(path == "/v1/models" for path, _ in fake.requests[seen:]):
            break
        await asyncio.sleep(0.01)
    sent = list(zip(fake.requests[seen:], fake.headers[seen:], strict=True))
    lists = [headers for (path, _), headers in sent if path == "/v1/models"]
    chats = [headers for (path, _), headers in sent if path == "/v1/chat/completions"]
    assert lists and chats
    assert (
        chats[-1]["x-request-id"] == "client-42" and chats[-1]["x-session-id"] == "conversation-9"
    )
    for headers in lists:
        assert headers.get("x-request-id") != "client-42" and "x-session-id" not in headers


async def test_the_first_request_lends_no_context_to_the_model_list_or_the_probes(
    fake: FakeVLLM,
) -> None:
    """The first request that names a model makes the adapter ask vLLM for its model list and
    probe what each model can do: shared work, which carries neither that client's request id
    nor its session (a session-hashing router would send the probes to its replica)."""
    given = {"X-Request-ID": "client-one-id", "x-session-id": "sess-one"}
    async for client in serve(Settings(vllm_url=await fake.url())):
        resp = await client.post("/api/chat", json={**CHAT, "stream": False}, headers=given)
        assert resp.status_code == 200
    sent = [(path, h) for (path, _), h in zip(fake.requests, fake.headers, strict=True)]
    mine = [
        (path, h)
        for path, h in sent
        if h.get("x-request-id") == "client-one-id" or h.get("x-session-id") == "sess-one"
    ]
    assert [path for path, _ in mine] == ["/v1/chat/completions"], mine
    assert mine[0][1]["x-session-id"] == "sess-one"
    shared = [path for path, h in sent if (path, h) not in mine]
    assert "/v1/models" in shared and len(shared) > 1, shared  # the list and the probes


# --------------------------------------------------------------------------- trace context

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
async def test_w3c_trace_context_reaches_vllm_and_the_access_line(
    client: httpx.AsyncClient, fake: FakeVLLM, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """A client's traceparent and tracestate go to vLLM with the request (vLLM joins them to
    its OpenTelemetry spans), and the access line names the trace beside the request id."""
    given = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=1"}
    with caplog.at_level(logging.INFO, logger="adapter.access"):
        resp = await client.post(path, json={**CHAT, "stream": False}, headers=given)
    assert resp.status_code == 200
    sent = fake.headers[-1]
    assert (sent["traceparent"], sent["tracestate"]) == (TRACEPARENT, "vendor=abc,other=1")
    line = [r for r in caplog.records if r.name == "adapter.access"][-1]
    assert line.access["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"  # type: ignore[attr-defined]
    assert line.getMessage().endswith("trace=4bf92f3577b34da6a3ce929d0e0e4736")


@pytest.mark.parametrize(
    "bad",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "not a traceparent",
    ],
)
async def test_an_invalid_traceparent_is_not_passed_on(
    client: httpx.AsyncClient, fake: FakeVLLM, bad: str
) -> None:
    given = {"traceparent": bad, "tracestate": "vendor=abc"}
    resp = await client.post("/api/chat", json={**CHAT, "stream": False}, headers=given)
    assert resp.status_code == 200
    assert "traceparent" not in fake.headers[-1] and "tracestate" not in fake.headers[-1]
