"""``llama-index-llms-ollama`` against the live adapter in front of the real vLLM chat server.

It uses only ``/api/chat`` and ``/api/show``: the context window comes from the first
``model_info`` key containing ``context_length``, and every request then sends it as
``options.num_ctx`` beside a ``temperature`` of null unless one is set.
"""

from __future__ import annotations

import pydantic
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.ollama import Ollama  # type: ignore[import-untyped]

MODEL = "tiny-llm"
CONTEXT_LENGTH = 512
HELLO = [ChatMessage(role=MessageRole.USER, content="Tell me about the sea.")]


def make_llm(url: str, model: str = MODEL) -> Ollama:
    return Ollama(
        model=model,
        base_url=url,
        request_timeout=120,
        additional_kwargs={"num_predict": 10, "seed": 3},
    )


def test_context_window_is_read_from_show(live_adapter: str) -> None:
    """A missing ``<arch>.context_length`` would leave -1 and the default 3900 in metadata."""
    for name in (MODEL, "llama3.2"):
        llm = make_llm(live_adapter, name)
        assert llm.metadata.context_window == CONTEXT_LENGTH
        assert llm.context_window == CONTEXT_LENGTH  # cached: /api/show is not asked again
        assert llm.metadata.is_chat_model


def test_chat(live_adapter: str) -> None:
    resp = make_llm(live_adapter).chat(HELLO)
    assert resp.message.role == MessageRole.ASSISTANT
    assert isinstance(resp.message.content, str)
    raw = resp.raw
    assert raw is not None and raw["done"] is True
    usage = raw["usage"]
    assert 1 <= usage["completion_tokens"] <= 10 and usage["prompt_tokens"] > 5


def test_stream_chat_matches_chat(live_adapter: str) -> None:
    llm = make_llm(live_adapter)
    parts = list(llm.stream_chat(HELLO))
    assert parts
    assert parts[-1].message.content == llm.chat(HELLO).message.content
    assert "".join(p.delta or "" for p in parts) == parts[-1].message.content
    last = parts[-1].raw
    assert last is not None and last["done"] is True


def test_complete_and_stream_complete(live_adapter: str) -> None:
    llm = make_llm(live_adapter)
    resp = llm.complete("Once upon a time")
    assert isinstance(resp.text, str)
    streamed = list(llm.stream_complete("Once upon a time"))
    assert streamed and streamed[-1].text == resp.text


async def test_async_chat(live_adapter: str) -> None:
    llm = make_llm(live_adapter)
    resp = await llm.achat(HELLO)
    parts = [p async for p in await llm.astream_chat(HELLO)]
    assert parts and parts[-1].message.content == resp.message.content


class City(pydantic.BaseModel):
    """Bounded, so a random model ends its answer well within ``num_predict``."""

    name: str = pydantic.Field(max_length=16)
    population: int = pydantic.Field(ge=0, le=100_000_000)
    coastal: bool


def test_structured_predict(live_adapter: str) -> None:
    """``structured_predict`` sends the schema as ``format``; xgrammar holds the model to it."""
    llm = Ollama(
        model=MODEL,
        base_url=live_adapter,
        request_timeout=120,
        additional_kwargs={"num_predict": 120, "seed": 2},
    )
    city = llm.structured_predict(City, PromptTemplate("Describe {what}."), what="a city")
    assert isinstance(city, City)
