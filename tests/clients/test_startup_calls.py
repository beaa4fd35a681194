"""The calls Open WebUI and VS Code Copilot make when they connect to an "Ollama" server, sent
with raw httpx to the live adapter and parsed the way those clients parse them (Open WebUI's
``backend/open_webui/routers/ollama.py`` and Copilot's Ollama provider, both public)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.sse import checked_sse_events

MODEL = "tiny-llm"
CONTEXT_LENGTH = 512
ADD_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


@pytest.fixture
def http(live_adapter: str) -> Iterator[httpx.Client]:
    # Copilot sends an empty bearer token, "Bearer " (HTTP parsers strip the trailing space, and
    # h11 refuses to send it); the adapter must not mind it.
    with httpx.Client(
        base_url=live_adapter, timeout=120, headers={"Authorization": "Bearer"}
    ) as client:
        yield client


def version_tuple(text: str) -> tuple[int, int, int]:
    major, minor, patch = text.split(".")  # Open WebUI needs X.Y.Z
    return int(major), int(minor), int(patch)


def sse_events(resp: httpx.Response) -> list[dict[str, Any]]:
    return checked_sse_events(resp.iter_lines())


def test_version_is_at_least_0_6_4(http: httpx.Client) -> None:
    """Copilot refuses servers older than 0.6.4; Open WebUI keeps the lowest X.Y.Z."""
    resp = http.get("/api/version")
    assert resp.status_code == 200
    assert version_tuple(resp.json()["version"]) >= (0, 6, 4)
    assert http.head("/api/version").status_code == 200
    assert http.head("/").status_code == 200


def test_tags_are_json_with_tagged_model_names(http: httpx.Client) -> None:
    """Open WebUI decodes with aiohttp (which insists on a JSON content type), keys models by
    ``model`` and appends ``:latest`` to an untagged id before looking it up."""
    resp = http.get("/api/tags")
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] == "application/json"
    models = resp.json()["models"]
    names = [m["model"] for m in models]
    assert all(":" in n for n in names), names
    assert f"{MODEL}:latest" in names and "llama3.2:latest" in names
    for m in models:
        assert m["name"] == m["model"]
        datetime.fromisoformat(m["modified_at"])
        assert {"family", "parameter_size", "quantization_level"} <= m["details"].keys()


def test_ps_expiry_parses_with_fromisoformat(http: httpx.Client) -> None:
    models = http.get("/api/ps").json()["models"]
    by_model = {m["model"]: m for m in models}
    tiny = by_model[f"{MODEL}:latest"]
    assert datetime.fromisoformat(tiny["expires_at"]) > datetime.now(UTC)
    assert tiny["name"] == tiny["model"]
    assert isinstance(tiny["size_vram"], int)
    assert tiny["context_length"] == CONTEXT_LENGTH


def test_copilot_reads_show_for_every_listed_model(http: httpx.Client) -> None:
    """Copilot asks ``/api/show`` for each model from ``/api/tags`` and reads
    ``model_info["<general.architecture>.context_length"]``, ``general.basename`` and the
    ``tools`` capability (it hides a chat model without it)."""
    copilot = {"User-Agent": "GitHubCopilotChat/0.31.0"}
    for entry in http.get("/api/tags").json()["models"]:
        resp = http.post("/api/show", json={"model": entry["model"]}, headers=copilot)
        assert resp.status_code == 200, resp.text
        show = resp.json()
        info = show["model_info"]
        arch = info["general.architecture"]
        assert info[f"{arch}.context_length"] == entry["details"]["context_length"]
        # tiny-llm's 512, tiny-think's and smollm2's 2048, all-minilm's 256
        assert entry["details"]["context_length"] in (CONTEXT_LENGTH, 2048, 256)
        assert info["general.basename"] == entry["model"]  # what it asked for, as Ollama
        caps = show["capabilities"]
        if "embedding" in caps:
            assert "completion" not in caps
        elif entry["model"].startswith("smollm2"):
            # Served with the tool template of Ollama's library model: Copilot offers it.
            assert caps == ["completion", "tools"]
        else:
            assert {"completion", "tools"} <= set(caps)
            assert "vision" not in caps  # the tiny model is text only
        assert {"details", "template", "modified_at", "parameters"} <= show.keys()


def test_copilot_chats_through_v1_with_the_listed_name(http: httpx.Client) -> None:
    """Streaming ``/v1/chat/completions`` with the name ``/api/tags`` lists and
    ``stream_options.include_usage``: OpenAI SSE ending in ``[DONE]``, usage in the last
    event, text deltas in between."""
    name = next(
        m["model"]
        for m in http.get("/api/tags").json()["models"]
        if m["model"] == f"{MODEL}:latest"
    )
    body = {
        "model": name,
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 12,
        "seed": 1,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == []
    assert 1 <= usage["completion_tokens"] <= 12 and usage["prompt_tokens"] > 5
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes in (["stop"], ["length"])
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    whole_body = {k: v for k, v in body.items() if k != "stream_options"}  # stream only
    whole = http.post("/v1/chat/completions", json={**whole_body, "stream": False}).json()
    assert text == whole["choices"][0]["message"]["content"]
    assert whole["usage"]["completion_tokens"] == usage["completion_tokens"]


def test_copilot_tool_call_through_v1_keeps_openai_shape(http: httpx.Client) -> None:
    """Copilot sends tools on ``/v1``. The tiny model never calls a tool unprompted, so the call
    is forced the way vLLM allows (a named ``tool_choice``: structured decoding with the tool's
    schema); the streamed call must keep OpenAI's shape: ``index``, an ``id`` and
    ``arguments`` as a JSON string that decodes to the schema's object."""
    body = {
        "model": f"{MODEL}:latest",
        "messages": [{"role": "user", "content": "Add 2 and 3."}],
        "tools": [ADD_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "add"}},
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 60,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        events = sse_events(resp)
    deltas = [
        call for e in events for c in e["choices"] for call in c["delta"].get("tool_calls") or []
    ]
    assert deltas and all(d["index"] == 0 for d in deltas)
    assert deltas[0]["id"] and deltas[0]["function"]["name"] == "add"
    arguments = "".join(d["function"].get("arguments") or "" for d in deltas)
    args = json.loads(arguments)
    assert isinstance(args, dict) and isinstance(args["a"], int) and isinstance(args["b"], int)


def test_open_webui_chat_lines_parse_one_by_one(http: httpx.Client) -> None:
    """Open WebUI forwards ``/api/chat`` with the ``:latest`` name and converts each NDJSON line
    on its own; the last one carries the counts and durations it turns into tokens/s."""
    body = {
        "model": f"{MODEL}:latest",
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "stream": True,
        "options": {"num_predict": 10, "temperature": 0.8, "num_ctx": 2048, "use_mmap": True},
        "keep_alive": "5m",
    }
    with http.stream("POST", "/api/chat", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in resp.iter_lines()]  # blank lines would fail here
    last = lines[-1]
    assert last["done"] is True and [ln["done"] for ln in lines].count(True) == 1
    for key in ("prompt_eval_count", "eval_count", "eval_duration", "total_duration"):
        assert isinstance(last[key], int) and last[key] > 0, key
    assert all(isinstance(ln["message"]["content"], str) for ln in lines)


def test_open_webui_unload_request(http: httpx.Client) -> None:
    """Open WebUI unloads with an empty prompt and ``keep_alive: 0``; vLLM keeps the model, but
    the answer must still be Ollama's ``done`` line."""
    resp = http.post(
        "/api/generate", json={"model": MODEL, "prompt": "", "keep_alive": 0, "stream": False}
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["done"] is True and data["done_reason"] == "unload"
    assert data["response"] == ""
