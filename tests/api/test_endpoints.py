"""The app's Ollama endpoints against the fake vLLM (recorded shapes)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from adapter.backends.vllm.from_openai import INPUT_TOO_LONG
from adapter.config import Settings
from tests import fixtures
from tests.api.conftest import serve
from tests.fake_vllm import FakeVLLM, chat_chunk, error_body, sse, usage_chunk
from tests.support.clock import Ticks, fake_clock, hand_clock

CHAT = {"model": "tiny-llm", "messages": [{"role": "user", "content": "hi"}]}


def ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.headers["content-type"] == "application/x-ndjson"
    assert not resp.text.startswith("data:")
    assert "\n\n" not in resp.text
    return [orjson.loads(line) for line in resp.text.splitlines()]


async def test_root_and_head(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    assert resp.status_code == 200 and resp.text == "Ollama is running"
    assert (await client.head("/")).status_code == 200


async def test_version_is_plain_and_new_enough(client: httpx.AsyncClient) -> None:
    version = (await client.get("/api/version")).json()["version"]
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)
    assert (await client.head("/api/version")).status_code == 200


async def test_tags_list_served_models_and_aliases_with_tags(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/tags")
    assert resp.headers["content-type"].startswith("application/json")
    models = resp.json()["models"]
    assert [m["model"] for m in models] == ["tiny-llm:latest", "llama3.2:latest"]
    for m in models:
        assert m["name"] == m["model"]
        assert len(m["digest"]) == 64 and int(m["digest"], 16) >= 0
        assert m["details"]["context_length"] == 512
        assert m["details"]["format"] and m["details"]["family"]
    assert models[1]["details"]["parent_model"] == "tiny-llm:latest"
    assert models[0]["digest"] == (await client.get("/api/tags")).json()["models"][0]["digest"]


async def test_tags_cache_is_refreshed_on_a_miss(
    client: httpx.AsyncClient, fake: FakeVLLM, ticks: Ticks
) -> None:
    await client.get("/api/tags")
    fake.served.append("new-model")
    listed = sum(p == "/v1/models" for p, _ in fake.requests)
    resp = await client.post("/api/chat", json={**CHAT, "model": "new-model", "stream": False})
    assert resp.status_code == 404  # a miss re-asks vLLM at most twice a second...
    assert sum(p == "/v1/models" for p, _ in fake.requests) == listed
    ticks.advance(0.5)  # ...and now it may
    resp = await client.post("/api/chat", json={**CHAT, "model": "new-model", "stream": False})
    assert resp.status_code == 200
    assert fake.last["model"] == "new-model"
    # /api/tags keeps its serialised body only while the catalogue is the same one
    tags = [m["model"] for m in (await client.get("/api/tags")).json()["models"]]
    assert "new-model:latest" in tags
    fake.served[fake.served.index("new-model")] = "other-model"
    ticks.advance(0.5)
    await client.post("/api/chat", json={**CHAT, "model": "other-model", "stream": False})
    tags = [m["model"] for m in (await client.get("/api/tags")).json()["models"]]
    assert "new-model:latest" not in tags and "other-model:latest" in tags


@pytest.mark.parametrize(
    "name", ["tiny-llm", "tiny-llm:latest", "TINY-LLM", "Llama3.2", "llama3.2:latest"]
)
async def test_names_resolve_like_ollama_and_are_echoed(
    client: httpx.AsyncClient, fake: FakeVLLM, name: str
) -> None:
    resp = await client.post("/api/chat", json={**CHAT, "model": name, "stream": False})
    assert resp.status_code == 200
    assert resp.json()["model"] == name
    assert fake.last["model"] == "tiny-llm"


async def test_chat_streams_ndjson_by_default(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    resp = await client.post(
        "/api/chat", json={**CHAT, "options": {"temperature": 0.1, "num_predict": 8}}
    )
    assert resp.status_code == 200
    lines = ndjson(resp)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "length"
    usage = fixtures.sse_events("chat_stream.sse")[-1]["usage"]
    assert lines[-1]["eval_count"] == usage["completion_tokens"] == 8
    assert lines[-1]["prompt_eval_count"] == usage["prompt_tokens"] > 0
    assert fake.last["stream"] is True
    assert fake.last["stream_options"] == {"include_usage": True}
    assert fake.last["temperature"] == 0.1 and fake.last["max_tokens"] == 8


def streamed_text(name: str) -> str:
    """The text of a recorded stream (what vLLM streams for a non-streaming request too)."""
    events = [e for e in fixtures.sse_events(name) if e["choices"]]
    if name.startswith("completions"):
        return "".join(e["choices"][0].get("text") or "" for e in events)
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events)


async def test_chat_not_streaming(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    """vLLM is asked to stream, so the time to the first token is known; the client gets
    one object assembled from it, with durations that mean something."""
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    body = resp.json()
    # vLLM's answer to it: the first token alone, then 8 an event (the adapter asks for more).
    text = streamed_text("chat_stream_interval.sse")
    assert body["message"] == {"role": "assistant", "content": text}
    assert body["done"] is True and body["eval_count"] == 20
    assert fake.last["stream"] is True
    parts = [body[k] for k in ("load_duration", "prompt_eval_duration", "eval_duration")]
    assert all(p > 1 for p in parts) and sum(parts) <= body["total_duration"]


async def test_a_collected_answer_asks_vllm_for_tokens_in_batches(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """``stream: false`` chats and generates ask vLLM for 64 tokens an event (the setting's
    default); a stream, and a chat with tools, ask for one an event (vLLM's default)."""
    await client.post("/api/chat", json={**CHAT, "stream": False})
    assert fake.last["stream_interval"] == 64
    await client.post("/api/generate", json={"model": "tiny-llm", "prompt": "x", "stream": False})
    assert fake.last["stream_interval"] == 64
    raw = {"model": "tiny-llm", "prompt": "x", "raw": True, "stream": False}
    await client.post("/api/generate", json=raw)
    assert fake.requests[-1][0] == "/v1/completions" and fake.last["stream_interval"] == 64
    await client.post("/api/chat", json=CHAT)
    assert "stream_interval" not in fake.last
    await client.post("/api/generate", json={"model": "tiny-llm", "prompt": "x"})
    assert "stream_interval" not in fake.last
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    await client.post("/api/chat", json={**CHAT, "stream": False, "tools": [tool]})
    assert "tools" in fake.last and "stream_interval" not in fake.last


async def test_a_collected_answer_keeps_every_token_of_events_of_many(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """vLLM's events for an answer taken whole carry several tokens each (recorded with
    ``stream_interval`` 8): each token's logprob, and each token id of a continued generate's
    ``context``, is in the answer, in order."""
    ask = {**CHAT, "stream": False, "logprobs": True, "top_logprobs": 1}
    body = (await client.post("/api/chat", json=ask)).json()
    events = [e for e in fixtures.sse_events("chat_stream_interval_logprobs.sse") if e["choices"]]
    per_event = [
        e["choices"][0]["logprobs"]["content"] for e in events if e["choices"][0]["logprobs"]
    ]
    assert max(len(c) for c in per_event) == 8
    tokens = [c for content in per_event for c in content]
    assert body["eval_count"] == len(tokens) == 12
    assert [(p["token"], p["logprob"]) for p in body["logprobs"]] == [
        (t["token"], t["logprob"]) for t in tokens
    ]
    assert [p["top_logprobs"][0]["token"] for p in body["logprobs"]] == [
        t["top_logprobs"][0]["token"] for t in tokens
    ]
    assert body["message"]["content"] == streamed_text("chat_stream_interval_logprobs.sse")

    follow = {"model": "tiny-llm", "prompt": "and?", "context": [1, 2, 3], "stream": False}
    body = (await client.post("/api/generate", json=follow)).json()
    path, sent = fake.requests[-1]
    events = [e for e in fixtures.sse_events("completions_stream_interval.sse") if e["choices"]]
    ids = [i for e in events for i in e["choices"][0]["token_ids"] or ()]
    assert path == "/v1/completions" and sent["stream_interval"] == 64 and len(ids) == 20
    assert sent["prompt"][:3] == [1, 2, 3] and body["context"] == [*sent["prompt"], *ids]
    assert body["response"] == streamed_text("completions_stream_interval.sse")


async def test_collect_stream_interval_one_sends_none(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), collect_stream_interval=1)
    async for c in serve(settings):
        resp = await c.post("/api/chat", json={**CHAT, "stream": False})
        assert resp.status_code == 200 and "stream_interval" not in fake.last


async def test_form_encoded_curl_body_is_read_as_json(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    resp = await client.post(
        "/api/chat",
        content=orjson.dumps({**CHAT, "stream": False}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200 and resp.json()["done"] is True
    assert resp.json()["message"]["content"]
    assert fake.last["messages"] == CHAT["messages"]


async def test_generate_streaming_and_not(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    lines = ndjson(await client.post("/api/generate", json={"model": "tiny-llm", "prompt": "hi"}))
    assert all("response" in line for line in lines)
    assert lines[-1]["done"] is True
    assert fake.last["messages"] == [{"role": "user", "content": "hi"}]
    body = (
        await client.post(
            "/api/generate", json={"model": "tiny-llm", "prompt": "hi", "stream": False}
        )
    ).json()
    assert body["response"] == streamed_text("chat_stream_interval.sse")


async def test_raw_generate_uses_completions(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    body = (
        await client.post(
            "/api/generate", json={"model": "tiny-llm", "prompt": "x", "raw": True, "stream": False}
        )
    ).json()
    assert fake.requests[-1][0] == "/v1/completions"
    assert body["response"] == streamed_text("completions_stream_interval.sse")


@pytest.mark.parametrize(
    ("path", "payload", "reason"),
    [
        ("/api/chat", {"model": "tiny-llm", "messages": []}, "load"),
        ("/api/chat", {"model": "tiny-llm"}, "load"),
        ("/api/chat", {"model": "tiny-llm", "messages": [], "keep_alive": 0}, "unload"),
        ("/api/generate", {"model": "tiny-llm"}, "load"),
        ("/api/generate", {"model": "tiny-llm", "prompt": "", "keep_alive": "0"}, "unload"),
        ("/api/generate", {"model": "tiny-llm", "keep_alive": 0.0, "stream": False}, "unload"),
    ],
)
async def test_empty_requests_answer_load_and_unload_without_calling_vllm(
    client: httpx.AsyncClient, fake: FakeVLLM, path: str, payload: dict[str, Any], reason: str
) -> None:
    resp = await client.post(path, json=payload)
    assert resp.status_code == 200
    body = resp.json()
    assert body["done"] is True and body["done_reason"] == reason
    assert fake.generations() == []


@pytest.mark.parametrize(
    ("path", "content", "status", "message"),
    [
        ("/api/chat", b"", 400, "missing request body"),
        ("/api/chat", b"{not json", 400, "invalid JSON"),
        ("/api/chat", b"[1, 2]", 400, "request body must be a JSON object"),
        ("/api/chat", b'{"messages": []}', 400, "model is required"),
        ("/api/generate", b'{"prompt": "x"}', 404, "model '' not found"),
        ("/api/chat", b'{"model": "nope", "messages": []}', 404, "model 'nope' not found"),
        ("/api/generate", b'{"model": "nope", "prompt": "x"}', 404, "model 'nope' not found"),
        ("/api/chat", b'{"model": "tiny-llm", "messages": "hi"}', 400, "messages"),
        ("/api/chat", b'{"model": "tiny-llm", "messages": [{"content": "x"}]}', 400, "role"),
        (
            "/api/chat",
            b'{"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "options": {"temperature": "x"}}',
            400,
            'option "temperature"',
        ),
        (
            "/api/chat",
            b'{"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "format": "yaml"}',
            400,
            "invalid format",
        ),
        (
            "/api/chat",
            b'{"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "think": "hard"}',
            400,
            "invalid think value",
        ),
        (
            "/api/chat",
            b'{"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 30}',
            400,
            "top_logprobs must be between 0 and 20",
        ),
        (
            "/api/chat",
            b'{"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "keep_alive": "forever"}',
            400,
            "time: invalid duration",
        ),
    ],
)
async def test_bad_input_gets_ollamas_error(
    client: httpx.AsyncClient, path: str, content: bytes, status: int, message: str
) -> None:
    resp = await client.post(path, content=content)
    assert resp.status_code == status
    body = resp.json()
    assert list(body) == ["error"]
    assert message in body["error"]


async def test_unknown_route_and_wrong_method_answer_in_plain_text(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/api/nothing")
    assert (resp.status_code, resp.text) == (404, "404 page not found")
    resp = await client.get("/api/chat")
    assert (resp.status_code, resp.text) == (405, "405 method not allowed")


@pytest.mark.parametrize(
    "name", ["err_too_long.json", "err_bad_param.json", "err_max_tokens_too_big.json"]
)
async def test_vllm_400s_come_back_readable(
    client: httpx.AsyncClient, fake: FakeVLLM, name: str
) -> None:
    status, content = error_body(name)
    fake.handler = lambda req, body: (
        httpx.Response(status, content=content) if "chat" in req.url.path else None
    )
    vllm_says = orjson.loads(content)["error"]["message"]
    for stream in (False, True):
        resp = await client.post("/api/chat", json={**CHAT, "stream": stream})
        assert resp.status_code == 400
        if name == "err_too_long.json":  # Ollama's words first, then vLLM's
            assert resp.json()["error"] == f"{INPUT_TOO_LONG}: {vllm_says}"
        else:
            assert resp.json()["error"] == vllm_says


async def test_vllm_down_is_a_fast_503_naming_the_upstream(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    url = await fake.url()
    await fake.stop()
    for path, payload in (("/api/tags", None), ("/api/chat", CHAT)):
        resp = await (client.get(path) if payload is None else client.post(path, json=payload))
        assert resp.status_code == 503
        assert url in resp.json()["error"]


async def test_real_unreachable_upstream_fails_fast() -> None:
    settings = Settings(vllm_url="http://127.0.0.1:9", connect_timeout=2)
    async for c in serve(settings):
        start = time.monotonic()
        resp = await c.post("/api/chat", json=CHAT)
        assert time.monotonic() - start < 10
        assert resp.status_code == 503
        assert "127.0.0.1:9" in resp.json()["error"]
        health = await c.get("/health")
        assert health.status_code == 503 and health.json()["vllm"]["reachable"] is False


async def test_credentials_in_vllm_url_never_reach_clients(fake: FakeVLLM) -> None:
    """VLLM_URL=http://user:pass@host: Basic auth upstream; errors, /health, /api/show hide it."""
    url = await fake.url()
    seen: list[str | None] = []
    fake.handler = lambda req, body: seen.append(req.headers.get("authorization"))
    settings = Settings(vllm_url=url.replace("http://", "http://svc7:s3cret@"))
    async for c in serve(settings):
        assert (await c.post("/api/chat", json=CHAT)).status_code == 200
        assert seen and set(seen) == {"Basic c3ZjNzpzM2NyZXQ="}  # base64 of svc7:s3cret
        shown = [(await c.get("/health")).text, (await c.post("/api/show", json=CHAT)).text]
        await fake.stop()
        down = await c.post("/api/chat", json=CHAT)
        assert down.status_code == 503
        shown.append(down.text)
        assert all("s3cret" not in text and "svc7" not in text for text in shown), shown
        assert "***@127.0.0.1" in down.json()["error"]


async def test_stream_dying_midway_ends_with_an_error_line(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    payload = fixtures.raw("chat_stream.sse")
    fake.handler = lambda req, body: (
        fake.stream(payload, die_after=700) if "chat" in req.url.path else None
    )
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status_code == 200
    lines = ndjson(resp)
    assert "error" in lines[-1] and list(lines[-1]) == ["error"]
    assert all(not line.get("done") for line in lines[:-1])


async def test_vllm_error_event_mid_stream(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    events = [
        chat_chunk({"content": "a"}),
        {"error": {"message": "engine died", "type": "x", "code": 500}},
    ]
    fake.handler = lambda req, body: fake.stream(sse(events)) if "chat" in req.url.path else None
    lines = ndjson(await client.post("/api/chat", json=CHAT))
    assert lines[0]["message"]["content"] == "a"
    assert lines[-1] == {"error": "engine died"}


async def test_stream_without_finish_is_reported(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    events = [chat_chunk({"content": "a"})]
    fake.handler = lambda req, body: (
        fake.stream(sse(events, done=False)) if "chat" in req.url.path else None
    )
    lines = ndjson(await client.post("/api/chat", json=CHAT))
    assert "ended the stream early" in lines[-1]["error"]


async def test_sse_split_at_every_byte_is_reassembled(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    fake.chunk_size = 1
    lines = ndjson(await client.post("/api/chat", json=CHAT))
    events = fixtures.sse_events("chat_stream.sse")
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert "".join(line["message"]["content"] for line in lines) == text
    assert lines[-1]["done"] is True


async def test_tool_calls_streamed_once(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    events = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x"'},
                    }
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chat_chunk({}, "tool_calls"),
        usage_chunk(5, 5),
    ]
    fake.handler = lambda req, body: fake.stream(sse(events)) if "chat" in req.url.path else None
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    lines = ndjson(await client.post("/api/chat", json={**CHAT, "tools": tools}))
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert calls == [{"id": "c1", "function": {"index": 0, "name": "f", "arguments": {"x": 1}}}]
    assert lines[-1]["done_reason"] == "stop"
    assert fake.last["tools"][0]["function"]["name"] == "f"


async def test_api_key_is_sent_upstream_as_bearer(fake: FakeVLLM) -> None:
    seen: list[str | None] = []

    def capture(req: httpx.Request, body: dict[str, Any]) -> None:
        seen.append(req.headers.get("authorization"))

    fake.handler = capture
    async for c in serve(Settings(vllm_url=await fake.url(), vllm_api_key="s3cret")):
        await c.post("/api/chat", json={**CHAT, "stream": False})
    assert seen and all(h == "Bearer s3cret" for h in seen)


async def test_health_reports_vllm_and_models(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["vllm"]["reachable"] is True and body["vllm"]["models"] == ["tiny-llm"]


async def test_a_router_with_a_replica_out_still_serves(fake: FakeVLLM) -> None:
    """vLLM's router answers ``/health`` 503 while any replica is out, and serves from the
    others: the adapter stays ready (its model list answers), says so in ``/health``, and
    is not ready only when the model list fails too."""
    out = b'Unhealthy servers: ["http://vllm-2:8000"]'
    down = False

    def router(req: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if req.url.path == "/health":
            return httpx.Response(503, content=out)
        if down and req.url.path == "/v1/models":
            return httpx.Response(503, content=b'{"error": "No available workers"}')
        return None

    fake.handler = router
    ticks = Ticks()
    settings = Settings(vllm_url=await fake.url(), models_cache_ttl=0)
    async for c in serve(settings, fake_clock(ticks)):
        ready, health = await c.get("/ready"), await c.get("/health")
        assert ready.status_code == 200 and health.status_code == 200
        said = health.json()
        assert said["status"] == "degraded" and said["vllm"]["detail"] == out.decode()
        assert said["vllm"]["reachable"] is True and said["vllm"]["models"] == ["tiny-llm"]
        answer = await c.post("/api/chat", json={**CHAT, "stream": False})
        assert answer.status_code == 200
        down = True
        ticks.advance(1)  # past the model list's refresh limit
        ready, health = await c.get("/ready"), await c.get("/health")
        assert ready.status_code == 503 and health.status_code == 503
        assert health.json()["vllm"]["reachable"] is False


async def test_metrics_count_requests_and_tokens(client: httpx.AsyncClient) -> None:
    await client.post("/api/chat", json={**CHAT, "stream": False})
    await client.post("/api/chat", json=CHAT)
    text = (await client.get("/metrics")).text
    assert 'ollama_adapter_requests_total{endpoint="/api/chat",status="200"} 2.0' in text
    # 20 tokens of the answer taken whole (recorded 8 an event), 8 streamed.
    assert 'ollama_adapter_tokens_total{backend="vllm",kind="completion"} 28.0' in text


async def test_many_concurrent_streams(client: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(client.post("/api/chat", json=CHAT) for _ in range(50)))
    assert all(ndjson(r)[-1]["done"] is True for r in results)


async def test_a_generation_vllm_dropped_unanswered_is_a_502_and_not_sent_again(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """vLLM read the request and closed the connection without an answer: it may have
    started generating, so the adapter does not send it twice (RFC 9112 section 9.3.1); the
    client gets a clear 502 and may retry itself. The adapter goes on serving."""
    assert (await client.post("/api/chat", json={**CHAT, "stream": False})).status_code == 200
    fake.drop_next = 1
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status_code == 502
    assert resp.json()["error"].startswith(f"connection to vLLM at {fake._urls['vllm']} failed")
    assert [p for p, _ in fake.requests[-1:]] == ["dropped"]
    assert (await client.post("/api/chat", json={**CHAT, "stream": False})).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'ollama_adapter_upstream_resends_total{backend="vllm"} 0.0' in text


async def test_a_large_body_sent_in_pieces_is_read_whole(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """Images make bodies of megabytes, which arrive in many pieces."""
    fake.vision_models.append("tiny-llm")
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 3_000_000).decode()
    payload = {
        **CHAT,
        "stream": False,
        "messages": [{"role": "user", "content": "?", "images": [image]}],
    }

    async def pieces() -> AsyncIterator[bytes]:
        data = orjson.dumps(payload)
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    resp = await client.post("/api/chat", content=pieces())
    assert resp.status_code == 200
    part = fake.last["messages"][0]["content"][0]
    assert part["image_url"]["url"] == f"data:image/png;base64,{image}"


async def test_a_silent_upstream_times_out_with_a_clear_error(fake: FakeVLLM) -> None:
    """vLLM that stops sending: 504 before the first byte, a last error line after it."""
    settings = Settings(vllm_url=await fake.url(), request_timeout=0.3, probe_capabilities=False)
    async for c in serve(settings):
        await c.get("/api/tags")
        fake.stream_delay = 1.0
        lines = ndjson(await c.post("/api/chat", json=CHAT))
        assert lines[-1] == {"error": f"vLLM at {settings.vllm_url} did not answer within 0.3s"}

        fake.slow_answer = 1.0
        resp = await c.post("/api/chat", json={**CHAT, "stream": False})
        assert resp.status_code == 504
        assert "did not answer within 0.3s" in resp.json()["error"]
        # the adapter itself is fine: the next request to a healthy upstream works
        fake.slow_answer = 0.0
        fake.stream_delay = 0.0
        assert (await c.post("/api/chat", json={**CHAT, "stream": False})).status_code == 200


async def test_a_slow_model_list_never_holds_up_generation(fake: FakeVLLM) -> None:
    """Once a name is known, the catalogue's refresh runs beside the requests: a busy vLLM
    that takes seconds to list its models must not stall every generation meanwhile."""
    settings = Settings(vllm_url=await fake.url(), models_cache_ttl=10, probe_capabilities=False)
    quick = {**CHAT, "stream": False}
    ticks = Ticks()
    async for c in serve(settings, hand_clock(ticks)):
        assert (await c.post("/api/chat", json=quick)).status_code == 200
        ticks.advance(10)  # the catalogue is now due for a refresh
        fake.models_gate = asyncio.Event()
        listed = sum(p == "/v1/models" for p, _ in fake.requests)
        for _ in range(3):
            resp = await asyncio.wait_for(c.post("/api/chat", json=quick), 10)
            assert resp.status_code == 200
        assert sum(p == "/v1/models" for p, _ in fake.requests) == listed + 1  # one refresh
        fake.models_gate.set()  # the refresh ends; the list is served again
        assert (await c.get("/api/tags")).status_code == 200


async def test_a_whole_stream_in_one_read_is_relayed_in_order(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """A fast vLLM (or a slow reader) hands the relay many events at once, the first token
    far from the start of the read: every token still leaves, once, in order."""
    events = [chat_chunk({"role": "assistant", "content": ""})]
    events += [chat_chunk({"content": ""}) for _ in range(12)]
    events += [chat_chunk({"content": f"t{i} "}) for i in range(40)]
    events += [chat_chunk({}, "stop"), usage_chunk(5, 40)]
    payload = sse(events)
    fake.chunk_size = len(payload)
    fake.handler = lambda req, body: fake.stream(payload) if "chat" in req.url.path else None
    lines = ndjson(await client.post("/api/chat", json=CHAT))
    assert [line["message"]["content"] for line in lines[:-1]] == [f"t{i} " for i in range(40)]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 40
