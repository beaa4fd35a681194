"""What coding agents and today's clients use: Anthropic's Messages API, OpenAI's Responses
API, capabilities found by asking vLLM, Ollama's checks that follow from them, CORS with
wildcards, and /api/show as Copilot reads it (the app against the recorded-faithful fake)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from adapter.config import Settings
from tests import fixtures
from tests.api.conftest import listening, serve
from tests.fake_vllm import FakeVLLM

HI = [{"role": "user", "content": "Hello"}]
MESSAGE = {"model": "llama3.2", "max_tokens": 8, "messages": HI}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}

ROOT = Path(__file__).resolve().parents[2]


def sse_events(body: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, data) of each event of an SSE body, without ``[DONE]``."""
    out = []
    for block in body.split(b"\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: ") and line[6:] != b"[DONE]":
                data = orjson.loads(line[6:])
        if data is not None:
            out.append((name, data))
    return out


# --------------------------------------------------------------------------- Anthropic


async def test_messages_go_to_vllm_with_the_served_name(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    headers = {"x-api-key": "sk-anything", "anthropic-version": "2023-06-01", "anthropic-beta": "x"}
    resp = await client.post("/v1/messages", json=MESSAGE, headers=headers)
    assert resp.status_code == 200
    # As Anthropic's and Ollama's: the model named as the client named it, ids "msg_...".
    recorded = fixtures.raw("messages.json")
    assert resp.json() == orjson.loads(
        recorded.replace(b'"tiny-llm"', b'"llama3.2"').replace(b'"chatcmpl-', b'"msg_')
    )
    path, body = fake.requests[-1]
    assert path == "/v1/messages" and body == {**MESSAGE, "model": "tiny-llm"}


async def test_a_messages_stream_is_relayed_as_it_comes(settings: Settings, fake: FakeVLLM) -> None:
    """The first event reaches the client while vLLM is still generating the rest (a real
    server: the in-process transport reads a whole answer before it returns)."""
    more = asyncio.Event()
    first, rest = fixtures.raw("messages_stream.sse").split(b"\n\n", 1)

    async def body() -> AsyncIterator[bytes]:
        yield first + b"\n\n"
        await more.wait()
        yield rest

    def handler(req: httpx.Request, _: dict[str, Any]) -> httpx.Response | None:
        if req.url.path != "/v1/messages":
            return None
        ctype = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=ctype, extensions={"fake_stream": body()})

    fake.handler = handler
    async with (
        listening(settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = resp.aiter_bytes()
        got = await asyncio.wait_for(anext(chunks), 5)
        assert got.startswith(b"event: message_start")
        more.set()
        got += b"".join([c async for c in chunks])
    recorded = fixtures.raw("messages_stream.sse")
    assert got == recorded.replace(b'"tiny-llm"', b'"llama3.2"').replace(b'"chatcmpl-', b'"msg_')
    assert sse_events(got)[0][1]["message"]["id"].startswith("msg_")
    assert [name for name, _ in sse_events(got)][-1] == "message_stop"


async def test_a_messages_stream_that_breaks_ends_with_an_anthropic_error_event(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    payload = fixtures.raw("messages_stream.sse")
    fake.handler = lambda req, _: (
        fake.stream(payload, die_after=300) if req.url.path == "/v1/messages" else None
    )
    resp = await client.post("/v1/messages", json={**MESSAGE, "stream": True})
    name, data = sse_events(resp.content)[-1]
    assert name == "error" and data["type"] == "error"
    assert data["error"]["type"] == "api_error" and "vLLM" in data["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "kind", "message"),
    [
        ({**MESSAGE, "model": "nope"}, 404, "not_found_error", "model 'nope' not found"),
        ({**MESSAGE, "max_tokens": 0}, 400, "invalid_request_error", "max_tokens is required"),
        ({"model": "tiny-llm", "messages": HI}, 400, "invalid_request_error", "max_tokens"),
        ({"model": "tiny-llm", "max_tokens": 8}, 400, "invalid_request_error", "messages is"),
        ({"max_tokens": 8, "messages": HI}, 400, "invalid_request_error", "model is required"),
    ],
)
async def test_messages_errors_are_anthropics(
    client: httpx.AsyncClient,
    fake: FakeVLLM,
    body: dict[str, Any],
    status: int,
    kind: str,
    message: str,
) -> None:
    resp = await client.post("/v1/messages", json=body)
    assert resp.status_code == status
    err = resp.json()
    assert err["type"] == "error" and err["error"]["type"] == kind
    assert err["error"]["message"].startswith(message)
    assert not [p for p, _ in fake.requests if p == "/v1/messages"]  # caught before vLLM


async def test_vllms_own_errors_on_messages_become_anthropics(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """vLLM answers some validation errors of /v1/messages in OpenAI's shape."""
    status, content = (
        fixtures.status("messages_err_no_max_tokens.json"),
        fixtures.raw("messages_err_no_max_tokens.json"),
    )
    fake.handler = lambda req, _: (
        httpx.Response(status, content=content) if req.url.path == "/v1/messages" else None
    )
    resp = await client.post("/v1/messages", json=MESSAGE)
    assert resp.status_code == 400
    err = resp.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in err["error"]["message"]
    bad = await client.post("/v1/messages", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


async def test_thinking_is_dropped_for_a_model_that_cannot_think(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """As in Ollama: Claude Code asks every model to think; the route relaxes, not refuses."""
    thinking = {"type": "enabled", "budget_tokens": 1024}
    resp = await client.post("/v1/messages", json={**MESSAGE, "thinking": thinking})
    assert resp.status_code == 200
    assert "thinking" not in fake.requests[-1][1]


async def test_thinking_is_kept_for_a_thinking_model(fake: FakeVLLM, settings: Settings) -> None:
    fake.thinking_models.append("tiny-llm")
    thinking = {"type": "enabled", "budget_tokens": 1024}
    async for c in serve(settings):
        resp = await c.post("/v1/messages", json={**MESSAGE, "thinking": thinking})
        assert resp.status_code == 200
        assert fake.requests[-1][1]["thinking"] == thinking


async def test_count_tokens_is_relayed(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    resp = await client.post(
        "/v1/messages/count_tokens", json={"model": "TINY-LLM:latest", "messages": HI}
    )
    assert resp.json() == fixtures.load("messages_count_tokens.json")
    assert fake.requests[-1] == ("/v1/messages/count_tokens", {"model": "tiny-llm", "messages": HI})


async def test_messages_for_a_vision_ollama_model_go_there(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), vision_ollama_url=await fake.url("vision"))
    async for c in serve(settings):
        resp = await c.post("/v1/messages", json={**MESSAGE, "model": "llava:7b"})
        assert resp.status_code == 200 and resp.json()["content"][0]["text"] == "a cat"
        assert (
            fake.requests[-1][0] == "/v1/messages" and fake.requests[-1][1]["model"] == "llava:7b"
        )


# --------------------------------------------------------------------------- Responses


async def test_responses_tools_reach_vllm_as_ollama_hands_them_to_a_model(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """Ollama 0.32.7 expands a ``namespace`` declaration into its functions, named
    ``<namespace>.<name>``; 0.32.10's web search runs through ollama.com, which is not here,
    so that tool is left out; a plain function goes on as it came."""
    plain = {"type": "function", "name": "read", "parameters": {"type": "object"}}
    body = {
        "model": "llama3.2",
        "input": "Hi",
        "tools": [
            plain,
            {
                "type": "namespace",
                "name": "repo",
                "tools": [
                    {"type": "function", "name": "grep", "parameters": {"type": "object"}},
                    {"type": "function", "name": "repo.ls", "parameters": {"type": "object"}},
                ],
            },
            {"type": "web_search"},
        ],
    }
    assert (await client.post("/v1/responses", json=body)).status_code == 200
    sent = fake.requests[-1][1]["tools"]
    assert [t["name"] for t in sent] == ["read", "repo.grep", "repo.ls"]
    assert sent[0] == plain and all(t["type"] == "function" for t in sent)


async def test_responses_go_to_vllm_plain_and_streamed(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    body = {"model": "llama3.2", "input": "Hi", "max_output_tokens": 8}
    resp = await client.post("/v1/responses", json=body)
    assert resp.json()["object"] == "response"
    assert fake.requests[-1] == ("/v1/responses", {**body, "model": "tiny-llm"})
    streamed = await client.post("/v1/responses", json={**body, "stream": True})
    recorded = fixtures.raw("responses_stream.sse")
    assert streamed.content == recorded.replace(b'"model":"tiny-llm"', b'"model":"llama3.2"')


@pytest.mark.parametrize("sent", ["llama3.2", "tiny-llm:latest", "TINY-LLM"])
async def test_openai_answers_name_the_model_as_the_client_did(
    client: httpx.AsyncClient, sent: str
) -> None:
    """As Ollama's /v1 answers: the name sent, not the name vLLM serves it under, in the
    answer and in every chunk of a stream."""
    body = {"model": sent, "messages": HI}
    plain = await client.post("/v1/chat/completions", json=body)
    assert plain.status_code == 200 and plain.json()["model"] == sent
    streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
    chunks = [d for _, d in sse_events(streamed.content)]
    assert len(chunks) > 2 and {c["model"] for c in chunks} == {sent}
    text = await client.post("/v1/completions", json={"model": sent, "prompt": "x"})
    assert text.json()["model"] == sent


async def test_responses_errors_are_openais(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/responses", json={"model": "nope", "input": "Hi"})
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {
            "message": "model 'nope' not found",
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }


async def test_version_is_the_ollama_whose_api_is_covered(client: httpx.AsyncClient) -> None:
    """The newest Ollama whose API is served: docs/api-parity.md goes through each change."""
    assert (await client.get("/api/version")).json() == {"version": "0.32.15"}
    parity = (ROOT / "docs" / "api-parity.md").read_text()
    assert "reports `0.32.15` at `/api/version`" in parity


# --------------------------------------------------------------------------- capabilities


@pytest.fixture
async def capable(fake: FakeVLLM, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """tiny-llm thinks, reads images, fills in the middle and its template renders tools;
    plain-llm does none of it (its template ignores tools, as SmolLM2's does)."""
    fake.served = ["tiny-llm", "plain-llm"]
    fake.plain_template_models = ["plain-llm"]
    fake.thinking_models = ["tiny-llm"]
    fake.vision_models = ["tiny-llm"]
    fake.insert_models = ["tiny-llm"]
    async for c in serve(settings):
        yield c


async def test_capabilities_come_from_vllms_answers(capable: httpx.AsyncClient) -> None:
    tags = {
        m["model"]: m["capabilities"] for m in (await capable.get("/api/tags")).json()["models"]
    }
    assert tags["tiny-llm:latest"] == ["completion", "tools", "insert", "vision", "thinking"]
    assert tags["plain-llm:latest"] == ["completion"]
    shown = (await capable.post("/api/show", json={"model": "tiny-llm"})).json()
    assert shown["capabilities"] == tags["tiny-llm:latest"]
    assert ".Suffix" in shown["template"]
    plain = (await capable.post("/api/show", json={"model": "plain-llm"})).json()
    assert ".Suffix" not in plain["template"]


async def test_capabilities_are_asked_once_per_model(
    capable: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    await capable.get("/api/tags")
    probes = len(fake.requests)
    await capable.post("/api/chat", json={"model": "tiny-llm", "messages": HI, "stream": False})
    await capable.get("/api/tags")
    assert [p for p, _ in fake.requests[probes:]] == ["/v1/chat/completions"]


async def test_a_thinking_model_thinks_when_think_is_unset(
    capable: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    await capable.post("/api/chat", json={"model": "tiny-llm", "messages": HI, "stream": False})
    assert fake.last["chat_template_kwargs"] == {"enable_thinking": True}
    await capable.post("/api/generate", json={"model": "tiny-llm", "prompt": "x", "think": "low"})
    assert fake.last["chat_template_kwargs"] == {"enable_thinking": True}
    assert fake.last["reasoning_effort"] == "low"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/chat", {"messages": HI, "think": True}, '"plain-llm" does not support thinking'),
        (
            "/api/generate",
            {"prompt": "x", "think": "high"},
            '"plain-llm" does not support thinking',
        ),
        (
            "/api/generate",
            {"prompt": "def f(", "suffix": ")"},
            '"plain-llm" does not support insert',
        ),
        ("/api/chat", {"messages": HI, "tools": [TOOL]}, '"plain-llm" does not support tools'),
        (
            "/api/chat",
            {"messages": HI, "think": "true"},
            'invalid think value: "true" (must be "high", "medium", "low", "max", true, or false)',
        ),
    ],
)
async def test_ollamas_checks(
    capable: httpx.AsyncClient, fake: FakeVLLM, path: str, body: dict[str, Any], message: str
) -> None:
    resp = await capable.post(path, json={"model": "plain-llm", **body})
    assert (resp.status_code, resp.json()) == (400, {"error": message})
    assert fake.generations() == []


async def test_tools_reach_a_model_whose_template_renders_them(
    capable: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    body = {"model": "tiny-llm", "messages": HI, "tools": [TOOL], "stream": False}
    assert (await capable.post("/api/chat", json=body)).status_code == 200
    assert fake.last["tools"][0]["function"]["name"] == "get_time"


@pytest.mark.parametrize(
    ("path", "body", "sent"),
    [
        (
            "/api/chat",
            {
                "messages": [
                    {"role": "user", "content": "What is in [img] and this?", "images": [PNG, PNG]},
                    {"role": "assistant", "content": "Two pictures."},
                    {"role": "user", "content": "And this one?", "images": [PNG]},
                ]
            },
            ["[img-1]What is in [img-0] and this?", "Two pictures.", "[img-2]And this one?"],
        ),
        ("/api/generate", {"prompt": "What is this?", "images": [PNG]}, ["[img-0]What is this?"]),
    ],
)
async def test_images_to_a_text_only_model_are_tagged_as_ollama_tags_them(
    capable: httpx.AsyncClient,
    fake: FakeVLLM,
    path: str,
    body: dict[str, Any],
    sent: list[str],
) -> None:
    """Ollama has no vision check on chat or generate: a model without a projector gets the
    prompt with ``[img-N]`` markers (one per image, counted over the chat, in place of
    ``[img]``), and answers the text. The pixels never reach vLLM, which would refuse them."""
    resp = await capable.post(path, json={"model": "plain-llm", **body, "stream": False})
    assert resp.status_code == 200, resp.text
    assert [m["content"] for m in fake.last["messages"]] == sent
    bad = await capable.post(
        path,
        json={"model": "plain-llm", **body, "stream": False}
        | (
            {"images": ["not base64!"]}
            if path == "/api/generate"
            else {"messages": [{"role": "user", "content": "?", "images": ["not base64!"]}]}
        ),
    )
    assert (bad.status_code, bad.json()) == (400, {"error": "illegal base64 data in images"})


async def test_think_false_on_a_model_without_thinking_is_fine(
    capable: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    resp = await capable.post(
        "/api/chat", json={"model": "plain-llm", "messages": HI, "think": False, "stream": False}
    )
    assert resp.status_code == 200 and "chat_template_kwargs" not in fake.last


async def test_the_override_adds_what_probing_cannot_see(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), model_capabilities="tiny-llm=vision")
    async for c in serve(settings):
        shown = (await c.post("/api/show", json={"model": "tiny-llm"})).json()
        assert shown["capabilities"] == ["completion", "tools", "vision"]
    settings = Settings(vllm_url=await fake.url(), model_capabilities="plain-llm=tools")
    fake.served, fake.plain_template_models = ["plain-llm"], ["plain-llm"]
    async for c in serve(settings):
        shown = (await c.post("/api/show", json={"model": "plain-llm"})).json()
        assert shown["capabilities"] == ["completion", "tools"]


async def test_an_embedding_model_shows_its_embedding_length(fake: FakeVLLM) -> None:
    fake.served = ["tiny-embed"]
    fake.embedding_models = ["tiny-embed"]
    async for c in serve(Settings(vllm_url=await fake.url())):
        shown = (await c.post("/api/show", json={"model": "tiny-embed"})).json()
        arch = shown["model_info"]["general.architecture"]
        assert shown["capabilities"] == ["embedding"]
        assert shown["model_info"][f"{arch}.embedding_length"] == 3  # the fake's vectors


# --------------------------------------------------------------------------- /api/show


async def test_show_for_copilot_echoes_the_name_it_asked_for(client: httpx.AsyncClient) -> None:
    copilot = {"User-Agent": "GitHubCopilotChat/0.31.0"}
    shown = await client.post("/api/show", json={"model": "llama3.2"}, headers=copilot)
    assert shown.json()["model_info"]["general.basename"] == "llama3.2"
    plain = await client.post("/api/show", json={"model": "llama3.2"})
    assert plain.json()["model_info"]["general.basename"] == "tiny-llm"


async def test_show_for_copilot_through_the_vision_ollama(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), vision_ollama_url=await fake.url("vision"))
    copilot = {"User-Agent": "GitHubCopilotChat/0.31.0"}
    async for c in serve(settings):
        shown = await c.post("/api/show", json={"model": "llava:7b"}, headers=copilot)
        assert shown.json()["model_info"]["general.basename"] == "llava:7b"


# --------------------------------------------------------------------------- CORS


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("chrome-extension://abcdefghijklmnop", True),
        ("http://192.168.1.20:3000", True),
        ("http://192.168.1.7:80", True),
        ("http://192.168.2.20:3000", False),
        ("https://192.168.1.20:3000", False),
        ("http://localhost:5173", True),
        ("vscode-webview://1234", True),
        ("https://evil.example", False),
    ],
)
async def test_ollama_origins_with_wildcards(fake: FakeVLLM, origin: str, allowed: bool) -> None:
    settings = Settings(
        vllm_url=await fake.url(), cors_origins="chrome-extension://*,http://192.168.1.*:*"
    )
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key",
    }
    async for c in serve(settings):
        resp = await c.options("/v1/messages", headers=preflight)
        got = await c.get("/api/version", headers={"Origin": origin})
    if allowed:
        assert resp.status_code == 204
        assert resp.headers["access-control-allow-origin"] == origin
        assert "x-api-key" in resp.headers["access-control-allow-headers"]
        assert "POST" in resp.headers["access-control-allow-methods"]
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == origin
    else:
        assert resp.status_code == got.status_code == 403
        assert not [h for h in (*resp.headers, *got.headers) if h.startswith("access-control")]


async def test_any_origin_with_a_star(fake: FakeVLLM) -> None:
    async for c in serve(Settings(vllm_url=await fake.url(), cors_origins="*")):
        got = await c.get("/api/version", headers={"Origin": "https://anything.example"})
        assert got.headers["access-control-allow-origin"] == "*"


async def test_the_servers_own_origin_is_not_cross_origin(client: httpx.AsyncClient) -> None:
    got = await client.get("/api/version", headers={"Origin": "http://adapter"})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


# --------------------------------------------------------------------------- sampling defaults


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
async def test_unset_options_are_sent_at_ollamas_defaults_unless_left_to_the_model(
    fake: FakeVLLM, path: str
) -> None:
    """A request without options samples as Ollama would (api.DefaultOptions), not at vLLM's
    temperature 1.0; ADAPTER_SAMPLING_DEFAULTS=model leaves every unset option to vLLM."""
    body: dict[str, Any] = {"model": "tiny-llm", "stream": False, "options": {"top_p": 0.5}}
    body |= {"messages": HI} if path == "/api/chat" else {"prompt": "Hello"}
    sampling = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")
    async for c in serve(Settings(vllm_url=await fake.url())):
        assert (await c.post(path, json=body)).status_code == 200
        assert {k: fake.last.get(k) for k in sampling} == {
            "temperature": 0.8,
            "top_k": 40,
            "top_p": 0.5,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
        }
    async for c in serve(Settings(vllm_url=await fake.url(), sampling_defaults="model")):
        assert (await c.post(path, json=body)).status_code == 200
        assert {k: fake.last.get(k) for k in sampling if k in fake.last} == {"top_p": 0.5}


async def test_openai_routes_sample_as_ollamas_openai_layer(fake: FakeVLLM) -> None:
    """Ollama's /v1 sets temperature and top_p to 1.0 where the request does not, and keeps
    its other defaults (top_k 40); a value the request sends wins."""
    body = {"model": "tiny-llm", "messages": HI, "top_p": 0.5}
    sampling = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")
    async for c in serve(Settings(vllm_url=await fake.url())):
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 200
        assert {k: fake.last.get(k) for k in sampling} == {
            "temperature": 1.0,
            "top_k": 40,
            "top_p": 0.5,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
        }
    async for c in serve(Settings(vllm_url=await fake.url(), sampling_defaults="model")):
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 200
        assert {k: fake.last[k] for k in sampling if k in fake.last} == {"top_p": 0.5}


async def test_probe_answers_that_cannot_be_read_count_as_no(
    fake: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy in front of vLLM that answers a probe 200 with an empty body: the capability is
    absent (logged), and the user's chat is answered, not a 500."""

    def empty(req: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if req.url.path in ("/v1/embeddings", "/tokenize"):
            return httpx.Response(200, content=b"")
        return None

    fake.handler = empty
    async for c in serve(Settings(vllm_url=await fake.url())):
        with caplog.at_level("WARNING", logger="adapter"):
            resp = await c.post("/api/chat", json={"model": "tiny-llm", "messages": HI})
        assert resp.status_code == 200, resp.text
        shown = (await c.post("/api/show", json={"model": "tiny-llm"})).json()
        assert shown["capabilities"] == ["completion"]
    assert any("not its JSON" in r.getMessage() for r in caplog.records)
