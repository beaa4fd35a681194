"""``langchain-ollama`` (ChatOllama, OllamaLLM, OllamaEmbeddings) against the live adapter in
front of the real vLLM chat and embedding servers.

ChatOllama always streams (also for ``invoke``) and sums the counts of every chunk that has
them, so these tests also prove the adapter puts counts only on the final line.
"""

from __future__ import annotations

import math
from typing import Any

import ollama
import pydantic
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings, OllamaLLM

MODEL = "tiny-llm"
ALIAS = "llama3.2"
EMBED_MODEL = "all-minilm"
QUESTION = "What is 2 plus 3?"


def chat_model(url: str, model: str = MODEL, **kwargs: Any) -> ChatOllama:
    return ChatOllama(base_url=url, model=model, num_predict=10, seed=3, **kwargs)


@tool
def add_two_numbers(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_invoke(live_adapter: str) -> None:
    msg = chat_model(live_adapter).invoke(QUESTION)
    assert isinstance(msg, AIMessage) and isinstance(msg.content, str)
    meta = msg.response_metadata
    assert meta["done"] is True and meta["done_reason"] in ("stop", "length")
    assert meta["model_name"] == MODEL and meta["model_provider"] == "ollama"
    assert 1 <= meta["eval_count"] <= 10


def test_stream_gives_chunks_then_the_final_metadata(live_adapter: str) -> None:
    chunks = list(chat_model(live_adapter).stream(QUESTION))
    assert len(chunks) >= 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert all(isinstance(c.content, str) for c in chunks)
    # one chunk carries the final line (langchain-core may add an empty closing chunk after it)
    done = [c for c in chunks if c.response_metadata.get("done")]
    assert len(done) == 1 and done[0].response_metadata["done_reason"] in ("stop", "length")
    assert done[0].usage_metadata and done[0].usage_metadata["output_tokens"] <= 10
    assert sum(c.usage_metadata["output_tokens"] for c in chunks if c.usage_metadata) <= 10
    whole = chat_model(live_adapter).invoke(QUESTION)
    assert "".join(str(c.content) for c in chunks) == whole.content


def test_token_usage_is_counted_once(live_adapter: str) -> None:
    """ChatOllama sums usage over every chunk that has counts; the adapter reports them only on
    the final line, so the sum equals what the adapter reports for the same request."""
    msg = chat_model(live_adapter).invoke(QUESTION)
    usage = msg.usage_metadata
    assert usage is not None
    direct = ollama.Client(host=live_adapter).chat(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        options={"num_predict": 10, "seed": 3},
    )
    assert (
        usage["input_tokens"]
        == direct.prompt_eval_count
        == msg.response_metadata["prompt_eval_count"]
    )
    assert usage["output_tokens"] == msg.response_metadata["eval_count"] == direct.eval_count
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_async_invoke_and_stream(live_adapter: str) -> None:
    llm = chat_model(live_adapter)
    msg = await llm.ainvoke(QUESTION)
    assert msg.response_metadata["done"] is True
    chunks = [c async for c in llm.astream(QUESTION)]
    assert "".join(str(c.content) for c in chunks) == msg.content


def test_bind_tools(live_adapter: str) -> None:
    """The tiny model never calls a tool, so this checks that the bound tool reaches vLLM's
    prompt (many more prompt tokens than without it), that the answer is a valid message, and
    that any tool calls are well formed."""
    llm = chat_model(live_adapter)
    with_tools = llm.bind_tools([add_two_numbers]).invoke(QUESTION)
    without = llm.invoke(QUESTION)
    assert isinstance(with_tools, AIMessage) and isinstance(with_tools.content, str)
    assert with_tools.response_metadata["done"] is True
    for call in with_tools.tool_calls:
        assert isinstance(call["args"], dict)
    assert with_tools.usage_metadata and without.usage_metadata
    assert with_tools.usage_metadata["input_tokens"] > without.usage_metadata["input_tokens"] + 50


def test_tool_result_round_trip(live_adapter: str) -> None:
    """The history LangChain sends after a tool call (an AIMessage with ``tool_calls`` and
    LangChain's own ids, then a ToolMessage with ``tool_call_id``) is accepted and reaches the
    prompt: it has more tokens than the question alone. The call itself is written by hand,
    because the tiny model does not make one."""
    llm = chat_model(live_adapter).bind_tools([add_two_numbers])
    history = [
        HumanMessage(QUESTION),
        AIMessage(
            "",
            tool_calls=[{"name": "add_two_numbers", "args": {"a": 2, "b": 3}, "id": "call_1"}],
        ),
        ToolMessage("5", tool_call_id="call_1"),
    ]
    answer = llm.invoke(history)
    question_only = llm.invoke([HumanMessage(QUESTION)])
    assert isinstance(answer.content, str) and answer.response_metadata["done"] is True
    assert answer.usage_metadata and question_only.usage_metadata
    assert answer.usage_metadata["input_tokens"] > question_only.usage_metadata["input_tokens"]


class City(pydantic.BaseModel):
    """A city, bounded so that a random model finishes the object within ``num_predict``."""

    name: str = pydantic.Field(max_length=16)
    population: int = pydantic.Field(ge=0, le=100_000_000)
    coastal: bool


def test_with_structured_output_returns_a_model_instance(live_adapter: str) -> None:
    """The schema goes to vLLM as ``format``; xgrammar holds the random model to it."""
    llm = ChatOllama(base_url=live_adapter, model=MODEL, num_predict=120, seed=2)
    city = llm.with_structured_output(City, method="json_schema").invoke("Describe a city.")
    assert isinstance(city, City)
    assert 0 <= city.population <= 100_000_000


def test_validate_model_on_init(live_adapter: str) -> None:
    """Uses ``/api/tags``: ``tiny-llm`` and the alias ``llama3.2`` are listed with ``:latest``."""
    for name in (MODEL, ALIAS, f"{MODEL}:latest"):
        chat_model(live_adapter, name, validate_model_on_init=True)
    with pytest.raises(ValueError, match="not found"):
        chat_model(live_adapter, "no-such-model", validate_model_on_init=True)


def test_unknown_model_at_invoke_is_a_response_error(live_adapter: str) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        chat_model(live_adapter, "no-such-model").invoke(QUESTION)
    assert err.value.status_code == 404


def test_ollama_llm_invoke_and_stream(live_adapter: str) -> None:
    """OllamaLLM calls ``/api/generate`` with ``format: ""`` and ``options: {}``."""
    llm = OllamaLLM(base_url=live_adapter, model=ALIAS, num_predict=10, seed=5)
    text = llm.invoke("Once upon a time")
    assert isinstance(text, str)
    chunks = list(llm.stream("Once upon a time"))
    assert chunks and all(isinstance(c, str) for c in chunks)
    assert "".join(chunks) == text
    result = llm.generate(["Once upon a time"])
    info = result.generations[0][0].generation_info
    assert info is not None and info["done"] is True and 1 <= info["eval_count"] <= 10


def test_ollama_embeddings(live_adapter: str) -> None:
    """OllamaEmbeddings sends ``input`` as a list and every option key set to null."""
    emb = OllamaEmbeddings(base_url=live_adapter, model=EMBED_MODEL)
    query = emb.embed_query("the sea")
    docs = emb.embed_documents(["the sea", "a mountain"])
    assert len(docs) == 2 and len(docs[0]) == len(query) > 8
    assert docs[0] == pytest.approx(query, abs=1e-5)
    for vector in (query, *docs):
        assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-4)
    with pytest.raises(ollama.ResponseError) as err:
        OllamaEmbeddings(base_url=live_adapter, model=MODEL).embed_query("the sea")
    assert err.value.status_code == 400
