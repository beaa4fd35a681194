"""Coding agents' protocols and today's clients through OLLAMA_URL, against the live adapter in
front of the real vLLM servers on CPU: the ``anthropic`` SDK (what Claude Code speaks), the
``openai`` SDK's Responses API (what Codex speaks), and the capability checks with
ollama-python and LangChain's ``reasoning``.

``tiny-llm`` has no thinking, no vision and no fill-in-the-middle; ``tiny-think`` is the same
model with a chat template that toggles thinking, served with a reasoning parser. The adapter
finds that out by asking vLLM; nothing is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from anthropic.types import MessageParam, ThinkingConfigEnabledParam
from langchain_ollama import ChatOllama

from tests.clients.conftest import ALIAS, CHAT_MODEL, EMBED_MODEL

THINK_MODEL = "tiny-think"
REAL_MODEL = "smollm2:135m"


def get_time(city: str) -> str:
    """The time in a city.

    Args:
        city: the city
    """
    return "noon"


HELLO: list[MessageParam] = [{"role": "user", "content": "Hello, who are you?"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture
def claude(live_adapter: str) -> Iterator[anthropic.Anthropic]:
    """Pointed at the adapter as Claude Code is: ``ANTHROPIC_BASE_URL=http://host:11434``."""
    with anthropic.Anthropic(base_url=live_adapter, api_key="any", max_retries=0) as client:
        yield client


@pytest.fixture
def codex(live_adapter: str) -> Iterator[openai.OpenAI]:
    """Pointed at the adapter as Codex is: ``base_url = "http://host:11434/v1"``."""
    with openai.OpenAI(base_url=f"{live_adapter}/v1", api_key="any", max_retries=0) as client:
        yield client


# --------------------------------------------------------------------------- anthropic


def test_anthropic_messages_create(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=ALIAS, max_tokens=8, messages=HELLO)
    assert message.type == "message" and message.role == "assistant"
    assert message.content and message.content[0].type == "text"
    assert message.stop_reason in ("max_tokens", "end_turn")
    assert message.usage.input_tokens > 0 and 1 <= message.usage.output_tokens <= 8


def test_anthropic_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=CHAT_MODEL, max_tokens=8, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text
    assert 1 <= final.usage.output_tokens <= 8


def test_anthropic_count_tokens(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model="TINY-LLM:latest", messages=HELLO)
    created = claude.messages.create(model=CHAT_MODEL, max_tokens=1, messages=HELLO)
    assert counted.input_tokens == created.usage.input_tokens > 0


def test_anthropic_errors(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=8, messages=HELLO)
    body: Any = missing.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert body["error"]["message"] == "model 'no-such-model' not found"
    with pytest.raises(anthropic.BadRequestError) as too_long:
        claude.messages.create(model=CHAT_MODEL, max_tokens=5000, messages=HELLO)
    body = too_long.value.body
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_model_len" in body["error"]["message"]  # vLLM's own message, Anthropic's shape


def test_anthropic_thinking_on_a_thinking_model(claude: anthropic.Anthropic) -> None:
    thinking: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": 1024}
    message = claude.messages.create(
        model=THINK_MODEL, max_tokens=1100, thinking=thinking, messages=HELLO
    )
    assert [b for b in message.content if b.type == "thinking"]


def test_claude_codes_headers_are_accepted(live_adapter: str) -> None:
    headers = {
        "x-api-key": "sk-ant-anything",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14",
    }
    body = {"model": CHAT_MODEL, "max_tokens": 4, "messages": HELLO}
    resp = httpx.post(f"{live_adapter}/v1/messages", json=body, headers=headers, timeout=60)
    assert resp.status_code == 200 and resp.json()["type"] == "message"


# --------------------------------------------------------------------------- openai Responses


def test_openai_responses_create(codex: openai.OpenAI) -> None:
    response = codex.responses.create(model=ALIAS, input="Hi", max_output_tokens=8)
    assert response.object == "response"
    assert isinstance(response.output_text, str)
    assert response.usage is not None and 1 <= response.usage.output_tokens <= 8


def test_openai_responses_streamed(codex: openai.OpenAI) -> None:
    events = list(
        codex.responses.create(model=CHAT_MODEL, input="Hi", max_output_tokens=8, stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == deltas


def test_openai_errors(codex: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        codex.responses.create(model="no-such-model", input="Hi")
    assert missing.value.status_code == 404


# --------------------------------------------------------------------------- capabilities


@pytest.fixture
def client(live_adapter: str) -> ollama.Client:
    return ollama.Client(host=live_adapter, timeout=120)


def test_capabilities_are_what_vllm_showed(client: ollama.Client, live_adapter: str) -> None:
    assert client.show(CHAT_MODEL).capabilities == ["completion", "tools"]
    assert client.show(THINK_MODEL).capabilities == ["completion", "tools", "thinking"]
    embed = client.show(EMBED_MODEL)
    assert embed.capabilities == ["embedding"]
    info = embed.modelinfo or {}
    assert info[f"{info['general.architecture']}.embedding_length"] == 384
    listed = httpx.get(f"{live_adapter}/api/tags", timeout=30).json()["models"]
    tags = {m["model"]: m["capabilities"] for m in listed}
    assert tags[f"{THINK_MODEL}:latest"] == ["completion", "tools", "thinking"]


def test_ollamas_checks_with_the_real_client(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=CHAT_MODEL, messages=HELLO, think=True)
    assert (err.value.status_code, err.value.error) == (
        400,
        f'"{CHAT_MODEL}" does not support thinking',
    )
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=CHAT_MODEL, prompt="def add(a, b):", suffix="\n    return c")
    assert err.value.error == f'"{CHAT_MODEL}" does not support insert'
    # SmolLM2 takes tools as Ollama's library model does (its template renders them), and
    # the client's function becomes a tool it is shown; a question it knows is answered.
    known = client.chat(
        model=REAL_MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        tools=[get_time],
        options={"temperature": 0},
    )
    assert "Paris" in (known.message.content or "") and not known.message.tool_calls
    thought = client.chat(model=THINK_MODEL, messages=HELLO, options={"num_predict": 8})
    assert thought.message.thinking  # a thinking model thinks when think is unset


def test_think_values_ollama_refuses(live_adapter: str) -> None:
    for think in ("true", "extreme", 3):
        resp = httpx.post(
            f"{live_adapter}/api/chat",
            json={"model": THINK_MODEL, "messages": HELLO, "think": think, "stream": False},
            timeout=60,
        )
        assert resp.status_code == 400 and "think" in resp.json()["error"]
    resp = httpx.post(
        f"{live_adapter}/api/chat",
        json={
            "model": THINK_MODEL,
            "messages": HELLO,
            "think": "max",
            "stream": False,
            "options": {"num_predict": 4},
        },
        timeout=60,
    )
    assert resp.status_code == 200 and resp.json()["message"]["thinking"]


def test_langchain_reasoning_against_a_thinking_model(live_adapter: str) -> None:
    llm = ChatOllama(model=THINK_MODEL, base_url=live_adapter, reasoning=True, num_predict=12)
    answer = llm.invoke("Hello")
    assert answer.additional_kwargs.get("reasoning_content")
    plain = ChatOllama(model=THINK_MODEL, base_url=live_adapter, reasoning=False, num_predict=12)
    assert "reasoning_content" not in plain.invoke("Hello").additional_kwargs
