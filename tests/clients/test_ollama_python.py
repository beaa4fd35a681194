"""The official ``ollama`` Python client (sync ``Client`` and ``AsyncClient``) against the live
adapter in front of the real vLLM chat and embedding servers.

Every test runs with both clients (the ``client`` fixture is parametrised); ``result`` awaits
what the async client returns and ``collect`` drains either kind of stream. The tiny model's
text is noise, so the tests check shapes, counts, finish reasons, schemas and errors.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import ollama
import pydantic
import pytest

MODEL = "tiny-llm"
ALIAS = "llama3.2"
EMBED_MODEL = "all-minilm"
CONTEXT_LENGTH = 512
HELLO = [{"role": "user", "content": "Tell me about the sea."}]

Client = ollama.Client | ollama.AsyncClient


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, live_adapter: str) -> Client:
    if request.param == "sync":
        return ollama.Client(host=live_adapter, timeout=120)
    return ollama.AsyncClient(host=live_adapter, timeout=120)


async def result(value: Any) -> Any:
    """The answer of a sync call as it is, of an async call awaited."""
    return await value if inspect.isawaitable(value) else value


async def drain(value: Any) -> Any:
    """The answer of a call, or every part of it when it is a stream."""
    value = await result(value)
    if isinstance(value, AsyncIterator | Iterator):
        return await collect(value)
    return value


async def collect(value: Any) -> list[Any]:
    """Every part of a stream from either client, in order."""
    stream: Iterator[Any] | AsyncIterator[Any] = await result(value)
    if isinstance(stream, AsyncIterator):
        return [part async for part in stream]
    return list(stream)


# --- models: list, show, ps, pull -----------------------------------------------------------


async def test_list_names_every_served_model_and_the_alias(client: Client) -> None:
    resp: ollama.ListResponse = await result(client.list())
    names = [m.model for m in resp.models]
    assert {f"{MODEL}:latest", f"{ALIAS}:latest", f"{EMBED_MODEL}:latest"} <= set(names)
    for m in resp.models:
        assert isinstance(m.modified_at, datetime)  # the client parses it
        assert m.details is not None and m.details.family
        assert m.digest


async def test_show_gives_context_length_and_capabilities(client: Client) -> None:
    for name in (MODEL, ALIAS):
        resp: ollama.ShowResponse = await result(client.show(name))
        assert resp.modelinfo is not None
        arch = resp.modelinfo["general.architecture"]
        assert resp.modelinfo[f"{arch}.context_length"] == CONTEXT_LENGTH
        lengths = [v for k, v in resp.modelinfo.items() if k.endswith(".context_length")]
        assert lengths == [CONTEXT_LENGTH]
        assert resp.capabilities is not None
        assert {"completion", "tools"} <= set(resp.capabilities)  # vLLM runs a tool parser
        assert "embedding" not in resp.capabilities
    embed: ollama.ShowResponse = await result(client.show(EMBED_MODEL))
    assert embed.capabilities is not None and "embedding" in embed.capabilities
    assert "completion" not in embed.capabilities


async def test_ps_lists_every_model_as_loaded_without_expiry(client: Client) -> None:
    resp: ollama.ProcessResponse = await result(client.ps())
    by_name = {m.model: m for m in resp.models}
    tiny = by_name[f"{MODEL}:latest"]
    assert tiny.context_length == CONTEXT_LENGTH
    assert tiny.expires_at is not None and tiny.expires_at > datetime.now(UTC)
    assert f"{EMBED_MODEL}:latest" in by_name


async def test_pull_of_a_served_model_succeeds_streaming_and_not(client: Client) -> None:
    done: ollama.ProgressResponse = await result(client.pull(MODEL))
    assert done.status == "success"
    parts = await collect(client.pull(ALIAS, stream=True))
    assert parts and parts[-1].status == "success"
    assert all(p.status for p in parts)


async def test_pull_of_an_unknown_model_is_a_response_error(client: Client) -> None:
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as err:
            await drain(client.pull("no-such-model", stream=stream))
        assert err.value.status_code == 404
        assert "file does not exist" in err.value.error


# --- chat and generate ----------------------------------------------------------------------


async def test_chat_not_streaming(client: Client) -> None:
    resp: ollama.ChatResponse = await result(
        client.chat(model=ALIAS, messages=HELLO, options={"num_predict": 8, "seed": 1})
    )
    assert resp.done is True and resp.done_reason in ("stop", "length")
    assert resp.message.role == "assistant" and isinstance(resp.message.content, str)
    assert resp.eval_count is not None and 1 <= resp.eval_count <= 8
    assert resp.prompt_eval_count and resp.prompt_eval_count > 5
    assert resp.total_duration and resp.total_duration > 0


async def test_chat_streaming_matches_the_whole_answer(client: Client) -> None:
    opts = {"num_predict": 12, "seed": 4, "temperature": 1.0}
    parts: list[ollama.ChatResponse] = await collect(
        client.chat(model=MODEL, messages=HELLO, stream=True, options=opts)
    )
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert all(p.eval_count is None for p in parts[:-1])  # counts only on the last line
    assert parts[-1].eval_count is not None and parts[-1].eval_count <= 12
    whole: ollama.ChatResponse = await result(
        client.chat(model=MODEL, messages=HELLO, options=opts)
    )
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].prompt_eval_count == whole.prompt_eval_count


async def test_generate_streaming_and_not(client: Client) -> None:
    opts = {"num_predict": 10, "seed": 5}
    resp: ollama.GenerateResponse = await result(
        client.generate(model=MODEL, prompt="Once upon a time", options=opts)
    )
    assert resp.done and isinstance(resp.response, str)
    assert resp.eval_count is not None and resp.eval_count <= 10
    assert resp.context  # not raw: the conversation's token ids come back
    parts: list[ollama.GenerateResponse] = await collect(
        client.generate(model=MODEL, prompt="Once upon a time", options=opts, stream=True)
    )
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response or "" for p in parts) == resp.response


async def test_generate_continues_from_an_earlier_context(client: Client, vllm_url: str) -> None:
    """``context`` from an answer makes the next generate continue that conversation: vLLM
    sees the earlier prompt and answer (token ids) followed by the new templated turn, so the
    prompt has exactly ``len(context)`` plus the new turn's tokens, and the new ``context``
    extends the old one. (The adapter used to ignore ``context``.)"""
    opts = {"num_predict": 4, "seed": 1}
    first: ollama.GenerateResponse = await result(
        client.generate(model=MODEL, prompt="Once upon a time", options=opts)
    )
    assert first.context and first.prompt_eval_count and first.eval_count
    assert len(first.context) == first.prompt_eval_count + first.eval_count
    async with httpx.AsyncClient(base_url=vllm_url, timeout=30) as raw:
        turn = await raw.post(
            "/tokenize",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "And then?"}],
                "add_generation_prompt": True,
            },
        )
    new_turn = turn.json()["count"]
    again: ollama.GenerateResponse = await result(
        client.generate(model=MODEL, prompt="And then?", context=first.context, options=opts)
    )
    assert again.prompt_eval_count == len(first.context) + new_turn
    assert again.context and again.context[: len(first.context)] == list(first.context)
    assert len(again.context) == (again.prompt_eval_count or 0) + (again.eval_count or 0)
    parts: list[ollama.GenerateResponse] = await collect(
        client.generate(
            model=MODEL, prompt="And then?", context=first.context, options=opts, stream=True
        )
    )
    assert parts[-1].done and parts[-1].context == again.context
    assert "".join(p.response or "" for p in parts) == again.response


# --- embeddings -----------------------------------------------------------------------------


async def test_embed_a_string_and_a_list_gives_unit_vectors(client: Client) -> None:
    one: ollama.EmbedResponse = await result(client.embed(model=EMBED_MODEL, input="the sea"))
    assert len(one.embeddings) == 1
    many: ollama.EmbedResponse = await result(
        client.embed(model=EMBED_MODEL, input=["the sea", "a mountain", "a long river"])
    )
    assert len(many.embeddings) == 3
    dim = len(one.embeddings[0])
    assert dim > 8 and all(len(v) == dim for v in many.embeddings)
    for vector in [*one.embeddings, *many.embeddings]:
        assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-4)
    assert many.embeddings[0] == pytest.approx(one.embeddings[0], abs=1e-5)
    assert many.embeddings[0] != pytest.approx(many.embeddings[1], abs=1e-3)
    assert many.prompt_eval_count and one.prompt_eval_count
    assert many.prompt_eval_count > one.prompt_eval_count


async def test_legacy_embeddings_point_the_same_way_as_embed(client: Client) -> None:
    legacy: ollama.EmbeddingsResponse = await result(
        client.embeddings(model=EMBED_MODEL, prompt="the sea")
    )
    new: ollama.EmbedResponse = await result(client.embed(model=EMBED_MODEL, input="the sea"))
    vector = list(legacy.embedding)
    assert len(vector) == len(new.embeddings[0])
    norm = math.hypot(*vector)
    assert [x / norm for x in vector] == pytest.approx(new.embeddings[0], abs=1e-4)


async def test_embedding_with_a_chat_model_is_a_400(client: Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        await result(client.embed(model=MODEL, input="the sea"))
    assert err.value.status_code == 400
    assert "does not support embeddings" in err.value.error


# --- tools ----------------------------------------------------------------------------------


def add_two_numbers(a: int, b: int) -> int:
    """Add two numbers.

    Args:
      a: The first number
      b: The second number
    """
    return a + b


ADD_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add_two_numbers",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "required": ["a", "b"],
            "properties": {
                "a": {"type": "integer", "description": "The first number"},
                "b": {"type": "integer", "description": "The second number"},
            },
        },
    },
}
QUESTION = {"role": "user", "content": "What is 2 plus 3?"}


def tool_history() -> list[dict[str, Any]]:
    """The conversation after a tool call, as ollama-python sends it: the assistant turn has
    no content and no call id, the result has only ``tool_name``."""
    return [
        QUESTION,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "add_two_numbers", "arguments": {"a": 2, "b": 3}}}
            ],
        },
        {"role": "tool", "content": "5", "tool_name": "add_two_numbers"},
    ]


def assert_calls_have_object_arguments(message: ollama.Message) -> None:
    for call in message.tool_calls or []:
        assert isinstance(call.function.arguments, dict)  # the client's model requires a mapping


async def test_tool_round_trip_reaches_vllm_whole(client: Client, vllm_url: str) -> None:
    """A random model never calls a tool on its own, and the native API has no way to force a
    call (``tool_choice`` is OpenAI's), so this test checks the other half of the round trip:
    the tool definition, the assistant's call (no id, object arguments) and the tool result
    reach vLLM's chat template whole. The prompt the adapter sent has exactly as many tokens as
    vLLM's ``/tokenize`` counts for the same conversation in OpenAI form, and the reply is a
    valid answer. Real tool calls coming back are covered by the API tests against recorded
    shapes and by the forced call through ``/v1`` in test_startup_calls.py."""
    opts = {"num_predict": 8, "seed": 3}
    for tools in ([ADD_TOOL], [add_two_numbers]):
        resp: ollama.ChatResponse = await result(
            client.chat(model=MODEL, messages=tool_history(), tools=tools, options=opts)
        )
        assert resp.done and resp.message.role == "assistant"
        assert isinstance(resp.message.content, str)
        assert_calls_have_object_arguments(resp.message)
        openai_form = [
            QUESTION,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "abcdefghi",
                        "type": "function",
                        "function": {"name": "add_two_numbers", "arguments": '{"a": 2, "b": 3}'},
                    }
                ],
            },
            {"role": "tool", "content": "5", "tool_call_id": "abcdefghi"},
        ]
        async with httpx.AsyncClient(base_url=vllm_url, timeout=30) as raw:
            counted = await raw.post(
                "/tokenize", json={"model": MODEL, "messages": openai_form, "tools": [ADD_TOOL]}
            )
        assert counted.status_code == 200, counted.text
        assert resp.prompt_eval_count == counted.json()["count"]


async def test_tools_streaming_end_once_and_empty_tools_are_no_tools(client: Client) -> None:
    """The tiny model answers with text, so the assertions are: the stream ends with one
    ``done`` line whose ``done_reason`` is not a tool reason, any ``tool_calls`` carry object
    arguments, the tool definitions reach the prompt (many more prompt tokens than without),
    and ``tools=[]`` (what ollama-python always sends) adds nothing to the prompt."""
    opts = {"num_predict": 8, "seed": 3}
    parts: list[ollama.ChatResponse] = await collect(
        client.chat(
            model=MODEL, messages=[QUESTION], tools=[add_two_numbers], stream=True, options=opts
        )
    )
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    for part in parts:
        assert_calls_have_object_arguments(part.message)
    plain: ollama.ChatResponse = await result(
        client.chat(model=MODEL, messages=[QUESTION], tools=[], options=opts)
    )
    bare: ollama.ChatResponse = await result(
        client.chat(model=MODEL, messages=[QUESTION], options=opts)
    )
    assert plain.prompt_eval_count == bare.prompt_eval_count
    assert parts[-1].prompt_eval_count is not None and plain.prompt_eval_count is not None
    assert parts[-1].prompt_eval_count > plain.prompt_eval_count + 50


# --- structured output ----------------------------------------------------------------------


class City(pydantic.BaseModel):
    """Bounded, so a random model ends its answer well within ``num_predict``."""

    name: str = pydantic.Field(max_length=16)
    population: int = pydantic.Field(ge=0, le=100_000_000)
    coastal: bool


async def test_structured_output_with_a_pydantic_schema(client: Client) -> None:
    """vLLM's xgrammar decoding holds even a random model to the schema, bounds included
    (``City.model_validate_json`` checks ``maxLength``, ``minimum`` and ``maximum``)."""
    resp: ollama.ChatResponse = await result(
        client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Describe a city."}],
            format=City.model_json_schema(),
            options={"num_predict": 120, "seed": 2},
        )
    )
    assert resp.done_reason == "stop"
    city = City.model_validate_json(resp.message.content or "")
    assert isinstance(city.population, int)
    gen: ollama.GenerateResponse = await result(
        client.generate(
            model=MODEL,
            prompt="Describe a city.",
            format=City.model_json_schema(),
            options={"num_predict": 120, "seed": 2},
        )
    )
    City.model_validate_json(gen.response or "")


# --- errors ---------------------------------------------------------------------------------


async def test_unknown_model_is_a_404_response_error(client: Client) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: client.chat(model="no-such-model", messages=HELLO),
        lambda: client.chat(model="no-such-model", messages=HELLO, stream=True),
        lambda: client.generate(model="no-such-model", prompt="hi", stream=True),
        lambda: client.show("no-such-model"),
    ]
    for call in calls:
        with pytest.raises(ollama.ResponseError) as err:
            await drain(call())
        assert err.value.status_code == 404
        assert "no-such-model" in err.value.error and "not found" in err.value.error


async def test_too_long_prompt_is_cut_unless_truncate_is_false(client: Client) -> None:
    """As Ollama: a prompt over the context is cut (the runner keeps its start and its newest
    tokens) and answered, streaming or not, chat or generate."""
    long = [{"role": "user", "content": " ".join(["sea"] * 3000)}]
    options = {"num_predict": 4}
    answer = await result(client.chat(model=MODEL, messages=long, options=options))
    assert answer.done and answer.prompt_eval_count and answer.prompt_eval_count < CONTEXT_LENGTH
    parts = await collect(client.chat(model=MODEL, messages=long, stream=True, options=options))
    assert parts[-1].done and parts[-1].prompt_eval_count < CONTEXT_LENGTH
    said = await result(client.generate(model=MODEL, prompt=long[0]["content"], options=options))
    assert said.done and said.prompt_eval_count and said.prompt_eval_count < CONTEXT_LENGTH
