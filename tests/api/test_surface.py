"""The rest of the Ollama surface: show, ps, pull and management, embeddings, /v1, CORS,
capability discovery and the Vision Ollama passthrough (against the fake upstreams)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest

from adapter.config import Settings
from tests.api.conftest import serve
from tests.fake_vllm import FakeVLLM
from tests.support.clock import Ticks, fake_clock

CHAT = {"model": "tiny-llm", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def two_servers(fake: FakeVLLM) -> AsyncIterator[httpx.AsyncClient]:
    """A generating vLLM, an embedding vLLM and a Vision Ollama, probed as in production."""
    fake.embedding_models = ["tiny-embed"]
    fake.served_by_host = {"gen": ["tiny-llm"], "embed": ["tiny-embed"]}
    settings = Settings(
        vllm_url=f"{await fake.url('gen')},{await fake.url('embed')}",
        vision_ollama_url=await fake.url("vision"),
        model_capabilities="tiny-llm=thinking",
    )
    async for c in serve(settings):
        yield c


async def test_show_has_model_info_with_context_length(client: httpx.AsyncClient) -> None:
    body = (await client.post("/api/show", json={"model": "tiny-llm"})).json()
    info = body["model_info"]
    arch = info["general.architecture"]
    assert info[f"{arch}.context_length"] == 512
    assert info["general.basename"] == "tiny-llm"
    assert body["capabilities"] == ["completion", "tools"]  # what vLLM's answers showed
    assert body["details"]["family"] == arch
    for key in ("modelfile", "parameters", "template", "modified_at"):
        assert isinstance(body[key], str)
    datetime.fromisoformat(body["modified_at"])


async def test_show_accepts_the_deprecated_name_and_errors_like_ollama(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/api/show", json={"name": "llama3.2"})).status_code == 200
    resp = await client.post("/api/show", json={"model": "nope"})
    assert (resp.status_code, resp.json()) == (404, {"error": "model 'nope:latest' not found"})
    resp = await client.post("/api/show", json={})
    assert (resp.status_code, resp.json()) == (400, {"error": "model is required"})


async def test_ps_lists_every_model_as_loaded_forever(client: httpx.AsyncClient) -> None:
    models = (await client.get("/api/ps")).json()["models"]
    assert [m["model"] for m in models] == ["tiny-llm:latest", "llama3.2:latest"]
    for m in models:
        assert m["context_length"] == 512 and m["size_vram"] == 0
        assert datetime.fromisoformat(m["expires_at"]).year >= 2300


async def test_pull_of_a_served_model_streams_progress_to_success(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/api/pull", json={"model": "tiny-llm"})
    lines = [orjson.loads(x) for x in resp.text.splitlines()]
    assert resp.headers["content-type"] == "application/x-ndjson"
    assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}
    resp = await client.post("/api/pull", json={"name": "llama3.2", "stream": False})
    assert resp.json() == {"status": "success"}


async def test_pull_of_an_unknown_model_is_ollamas_error(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/pull", json={"model": "llama9"})
    assert resp.status_code == 404
    assert resp.json()["error"].startswith("pull model manifest: file does not exist")
    assert (await client.post("/api/pull", json={})).status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "says"),
    [
        ("POST", "/api/push", {"model": "tiny-llm"}, 501, "managed by vLLM's configuration"),
        ("POST", "/api/blobs/sha256:" + "0" * 64, {}, 501, "managed by vLLM's configuration"),
        ("POST", "/api/create", {"model": "mine", "from": "tiny-llm"}, 501, "ADAPTER_MODELS_DIR"),
        (
            "POST",
            "/api/copy",
            {"source": "tiny-llm", "destination": "x"},
            501,
            "ADAPTER_MODELS_DIR",
        ),
        ("DELETE", "/api/delete", {"name": "tiny-llm"}, 403, "a model vLLM serves"),
        ("DELETE", "/api/delete", {"name": "llama3.2"}, 403, "an alias (MODEL_ALIASES)"),
    ],
)
async def test_what_vllm_owns_stays_and_derived_models_need_a_folder(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    payload: dict[str, Any],
    status: int,
    says: str,
) -> None:
    resp = await client.request(method, path, content=orjson.dumps(payload))
    assert resp.status_code == status
    assert says in resp.json()["error"]


async def test_management_of_unknown_models_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.request("DELETE", "/api/delete", json={"model": "nope"})
    assert (resp.status_code, resp.json()["error"]) == (404, "model 'nope' not found")
    resp = await client.post("/api/copy", json={"source": "nope", "destination": "x"})
    assert (resp.status_code, resp.json()["error"]) == (404, 'model "nope" not found')
    assert (await client.head("/api/blobs/sha256:" + "0" * 64)).status_code == 404


async def test_v1_models_use_the_names_tags_show(client: httpx.AsyncClient) -> None:
    data = (await client.get("/v1/models")).json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["tiny-llm:latest", "llama3.2:latest"]
    one = (await client.get("/v1/models/llama3.2:latest")).json()
    assert one["id"] == "llama3.2:latest"
    resp = await client.get("/v1/models/nope")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"


async def test_v1_chat_is_forwarded_with_the_served_name(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "llama3.2:latest"})
    assert resp.status_code == 200
    assert resp.json()["object"] == "chat.completion"
    assert fake.last["model"] == "tiny-llm"


async def test_v1_stream_is_relayed_untouched(client: httpx.AsyncClient, fake: FakeVLLM) -> None:
    from tests import fixtures

    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.content == fixtures.raw("chat_stream.sse")


async def test_v1_errors_keep_openai_shape(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "model 'nope' not found"
    resp = await client.post("/v1/completions", content=b"{oops")
    assert resp.status_code == 400 and "message" in resp.json()["error"]


async def test_cors_allows_local_and_app_origins(client: httpx.AsyncClient) -> None:
    for origin in (
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "vscode-webview://abc",
        "app://x",
    ):
        resp = await client.options(
            "/api/chat",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert resp.status_code == 204
        assert resp.headers["access-control-allow-origin"] == origin
    resp = await client.get("/api/tags", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403 and "access-control-allow-origin" not in resp.headers


async def test_cors_origins_setting(fake: FakeVLLM) -> None:
    settings = Settings(vllm_url=await fake.url(), cors_origins="https://notes.example")
    async for c in serve(settings):
        resp = await c.get("/api/version", headers={"Origin": "https://notes.example"})
        assert resp.headers["access-control-allow-origin"] == "https://notes.example"


async def test_capabilities_are_discovered_per_server(two_servers: httpx.AsyncClient) -> None:
    tags = {m["model"]: m for m in (await two_servers.get("/api/tags")).json()["models"]}
    assert tags["tiny-llm:latest"]["capabilities"] == ["completion", "tools", "thinking"]
    assert tags["tiny-embed:latest"]["capabilities"] == ["embedding"]
    assert "llava:7b" in tags and "nomic-embed-text:latest" in tags
    # Ollama 0.30.0: an embedding model's vector length in the list (the fake's are 3 long).
    assert tags["tiny-embed:latest"]["details"]["embedding_length"] == 3
    assert "embedding_length" not in tags["tiny-llm:latest"]["details"]


async def test_model_recommendations_are_the_served_models(two_servers: httpx.AsyncClient) -> None:
    """Ollama 0.22.1's list of models to offer a person: here what is served and generates
    (an embedding model cannot chat), with its context length; nothing to pull."""
    resp = await two_servers.get("/api/experimental/model-recommendations")
    assert resp.status_code == 200
    recs = {r["model"]: r for r in resp.json()["recommendations"]}
    assert "tiny-llm:latest" in recs and "tiny-embed:latest" not in recs
    assert recs["tiny-llm:latest"]["context_length"] == 512
    assert recs["llava:7b"]["description"] == "served by ollama"


async def test_embed_is_normalised_and_cut_to_dimensions(
    two_servers: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    body = (
        await two_servers.post("/api/embed", json={"model": "tiny-embed", "input": ["a b", "c"]})
    ).json()
    assert body["embeddings"] == [[1 / 3, 2 / 3, 2 / 3], [1 / 3, 2 / 3, 2 / 3]]
    assert body["prompt_eval_count"] == 3 and body["model"] == "tiny-embed"
    assert fake.last == {"model": "tiny-embed", "input": ["a b", "c"], "truncate_prompt_tokens": -1}
    body = (
        await two_servers.post(
            "/api/embed",
            json={"model": "tiny-embed", "input": "x", "dimensions": 1, "truncate": False},
        )
    ).json()
    assert body["embeddings"] == [[1.0]]
    assert "truncate_prompt_tokens" not in fake.last
    body = (await two_servers.post("/api/embed", json={"model": "tiny-embed", "input": []})).json()
    assert body == {"model": "tiny-embed", "embeddings": []}


async def test_legacy_embeddings_are_not_normalised(two_servers: httpx.AsyncClient) -> None:
    body = (
        await two_servers.post("/api/embeddings", json={"model": "tiny-embed", "prompt": "x"})
    ).json()
    assert body == {"embedding": [1.0, 2.0, 2.0]}
    assert (
        await two_servers.post("/api/embeddings", json={"model": "tiny-embed", "prompt": ""})
    ).json() == {"embedding": []}


async def test_embedding_errors(two_servers: httpx.AsyncClient) -> None:
    resp = await two_servers.post("/api/embed", json={"model": "tiny-llm", "input": "x"})
    assert (resp.status_code, resp.json()["error"]) == (
        400,
        '"tiny-llm" does not support embeddings',
    )
    resp = await two_servers.post("/api/embed", json={"model": "nope", "input": "x"})
    assert (resp.status_code, resp.json()["error"]) == (
        404,
        'model "nope" not found, try pulling it first',
    )
    resp = await two_servers.post("/api/embed", json={"input": "x"})
    assert resp.status_code == 404
    resp = await two_servers.post("/api/embeddings", json={"prompt": "x"})
    assert (resp.status_code, resp.json()["error"]) == (400, "model is required")


async def test_generating_with_an_embedding_model_is_refused(
    two_servers: httpx.AsyncClient,
) -> None:
    resp = await two_servers.post("/api/generate", json={"model": "tiny-embed", "prompt": "x"})
    assert (resp.status_code, resp.json()["error"]) == (
        400,
        '"tiny-embed" does not support generate',
    )


async def test_vision_ollama_models_pass_through_untouched(
    two_servers: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    payload = {
        "model": "llava:7b",
        "messages": [{"role": "user", "content": "?", "images": ["aGk="]}],
        "stream": False,
        "x_extra": 1,
    }
    resp = await two_servers.post("/api/chat", json=payload)
    assert resp.json()["message"]["content"] == "a cat"
    assert fake.requests[-1] == ("/api/chat", payload)
    resp = await two_servers.post("/api/chat", json={**payload, "stream": True})
    assert resp.headers["content-type"] == "application/x-ndjson"
    assert orjson.loads(resp.text.splitlines()[-1])["done"] is True
    body = (
        await two_servers.post("/api/embed", json={"model": "nomic-embed-text", "input": "x"})
    ).json()
    assert body["embeddings"] == [[0.6, 0.8]]


async def test_health_lists_every_backend(two_servers: httpx.AsyncClient) -> None:
    body = (await two_servers.get("/health")).json()
    assert [u["reachable"] for u in body["vllm"]] == [True, True]
    assert [u["models"] for u in body["vllm"]] == [["tiny-llm"], ["tiny-embed"]]
    assert body["ollama"]["reachable"] is True


async def test_the_vision_ollamas_models_are_its_own(two_servers: httpx.AsyncClient) -> None:
    """A derived model needs the adapter to apply its settings, so a Vision Ollama model is
    no parent; nor is one deleted here. Each refusal names the server to go to."""
    resp = await two_servers.post("/api/create", json={"model": "cat", "from": "llava:7b"})
    assert resp.status_code == 400
    assert resp.json() == {
        "error": '"llava:7b" is served by the Vision Ollama: create "cat" there (its /api/create)'
    }
    resp = await two_servers.request("DELETE", "/api/delete", json={"model": "llava:7b"})
    assert resp.status_code == 403
    assert "a model of the Vision Ollama (delete it there)" in resp.json()["error"]
    # Over vLLM's model the same call passes that check (and needs the Modelfiles' folder).
    made = await two_servers.post("/api/create", json={"model": "mine", "from": "tiny-llm"})
    assert made.status_code == 501 and "ADAPTER_MODELS_DIR" in made.json()["error"]
    kept = await two_servers.request("DELETE", "/api/delete", json={"model": "tiny-llm"})
    assert "a model vLLM serves" in kept.json()["error"]


async def test_a_vision_ollama_down_leaves_the_adapter_ready(fake: FakeVLLM) -> None:
    """Only vLLM decides readiness: the Vision Ollama adds its models when it is up."""
    vision = await fake.url("vision")
    await fake.stop("vision")
    settings = Settings(vllm_url=await fake.url(), vision_ollama_url=vision)
    async for c in serve(settings):
        ready, health = await c.get("/ready"), await c.get("/health")
        assert (ready.status_code, health.status_code) == (200, 200)
        assert health.json()["status"] == "ok"
        assert health.json()["ollama"]["reachable"] is False
        await fake.stop("vllm")
        ready, health = await c.get("/ready"), await c.get("/health")
        assert (ready.status_code, health.status_code) == (503, 503)


async def test_one_backend_down_leaves_the_others_listed(fake: FakeVLLM) -> None:
    vision = await fake.url("vision")
    await fake.stop("vision")
    settings = Settings(
        vllm_url=await fake.url(), vision_ollama_url=vision, probe_capabilities=False
    )
    async for c in serve(settings):
        models = (await c.get("/api/tags")).json()["models"]
        assert [m["model"] for m in models] == ["tiny-llm:latest"]


async def test_a_model_does_not_vanish_while_its_server_is_unreachable(fake: FakeVLLM) -> None:
    """vLLM goes away after its list was read: once the list is stale, its model is still
    there, and a chat gets vLLM's 503 (unreachable), not Ollama's 404 (model not found)."""
    settings = Settings(
        vllm_url=await fake.url(),
        vision_ollama_url=await fake.url("vision"),
        probe_capabilities=False,
        models_cache_ttl=0.05,
    )
    ticks = Ticks()
    async for c in serve(settings, fake_clock(ticks)):
        assert (await c.post("/api/chat", json={**CHAT, "stream": False})).status_code == 200
        await fake.stop("vllm")
        asked = len(fake.requests)
        for _ in range(3):  # past the cache's age: the list is asked for again, and fails
            ticks.advance(1)
            resp = await c.post("/api/chat", json={**CHAT, "stream": False})
            assert resp.status_code == 503, resp.text
            assert "unreachable" in resp.json()["error"]
        names = [m["model"] for m in (await c.get("/api/tags")).json()["models"]]
        assert "tiny-llm:latest" in names and "llava:7b" in names
        # The injected clock aged the lists: they were asked for again (the Vision Ollama's
        # answered, at its /api/tags; the stopped vLLM could not).
        assert "/api/tags" in [path for path, _ in fake.requests[asked:]]


async def test_browser_requests_take_the_full_path_with_the_same_answers(
    client: httpx.AsyncClient,
) -> None:
    """Chat, generate and the model list skip the framework layers unless CORS is involved;
    both paths must answer alike."""
    origin = {"Origin": "http://localhost:3000"}
    tags = []
    for headers in ({}, origin):
        resp = await client.get("/api/tags", headers=headers)
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        assert ("access-control-allow-origin" in resp.headers) == bool(headers)
        tags.append(resp.json())
        head = await client.head("/api/tags", headers=headers)
        assert head.status_code == 200 and head.content == b""
        resp = await client.post("/api/chat", json={**CHAT, "stream": False}, headers=headers)
        assert resp.status_code == 200 and resp.json()["done"] is True
        assert ("access-control-allow-origin" in resp.headers) == bool(headers)
        resp = await client.post("/api/generate", content=b"{oops", headers=headers)
        assert resp.status_code == 400 and list(resp.json()) == ["error"]
        resp = await client.post("/api/chat", json={**CHAT, "model": "nope"}, headers=headers)
        assert resp.json() == {"error": "model 'nope' not found"}
    assert tags[0] == tags[1] and tags[0]["models"]
    text = (await client.get("/metrics")).text
    assert 'ollama_adapter_requests_total{endpoint="/api/generate",status="400"} 2.0' in text
    assert 'ollama_adapter_requests_total{endpoint="/api/tags",status="200"} 4.0' in text
