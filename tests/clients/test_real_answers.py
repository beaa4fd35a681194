"""Every client the project tests gets the right answer from a real model through the adapter.

SmolLM2-135M-Instruct (``smollm2:135m``) answers "What is the capital of France?" with Paris at
temperature 0, so a client whose request the adapter mistranslates (a lost message, a wrong
role, a template applied twice) fails here. all-MiniLM-L6-v2 (``all-minilm``) gives the
embedding clients vectors that mean something: they must equal vLLM's own and put a related
pair closer than an unrelated one. The JavaScript client's Paris test is in js/client.test.mjs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import anthropic
import httpx
import ollama
import openai
import pytest
from langchain_core.messages import HumanMessage
from langchain_ollama import ChatOllama, OllamaEmbeddings
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.embeddings.ollama import OllamaEmbedding  # type: ignore[import-untyped]
from llama_index.llms.ollama import Ollama  # type: ignore[import-untyped]

MODEL = "smollm2:135m"
EMBED = "all-minilm"
QUESTION = "What is the capital of France?"
PAIR = ["The cat sits on the mat.", "A kitten is resting on a rug."]
OTHER = "Quarterly tax filing deadlines for corporations."


def test_ollama_python(live_adapter: str) -> None:
    client = ollama.Client(host=live_adapter, timeout=120)
    answer = client.chat(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], options={"temperature": 0}
    )
    assert "Paris" in (answer.message.content or "")
    said = client.generate(model=MODEL, prompt=QUESTION, options={"temperature": 0})
    assert "Paris" in (said.response or "")


def test_langchain_chat_ollama(live_adapter: str) -> None:
    llm = ChatOllama(base_url=live_adapter, model=MODEL, temperature=0)
    assert "Paris" in str(llm.invoke([HumanMessage(QUESTION)]).content)
    assert "Paris" in "".join(str(c.content) for c in llm.stream(QUESTION))


def test_llamaindex_ollama(live_adapter: str) -> None:
    llm = Ollama(
        base_url=live_adapter, model=MODEL, temperature=0, request_timeout=120, context_window=2048
    )
    reply = llm.chat([ChatMessage(role=MessageRole.USER, content=QUESTION)])
    assert "Paris" in str(reply.message.content)
    assert "Paris" in llm.complete(QUESTION).text


@pytest.fixture
def openai_client(live_adapter: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{live_adapter}/v1", api_key="any", max_retries=0) as client:
        yield client


def test_openai_chat_completions(openai_client: openai.OpenAI) -> None:
    answer = openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0
    )
    assert answer.model == MODEL
    assert "Paris" in (answer.choices[0].message.content or "")


def test_openai_responses(openai_client: openai.OpenAI) -> None:
    answer = openai_client.responses.create(
        model=MODEL, input=QUESTION, temperature=0, max_output_tokens=40
    )
    assert "Paris" in answer.output_text


def test_anthropic_messages(live_adapter: str) -> None:
    with anthropic.Anthropic(base_url=live_adapter, api_key="any", max_retries=0) as claude:
        message = claude.messages.create(
            model=MODEL,
            max_tokens=40,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"temperature": 0},  # this SDK's create() no longer names it
        )
    assert message.id.startswith("msg_") and message.model == MODEL
    text = "".join(block.text for block in message.content if block.type == "text")
    assert "Paris" in text


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def vllms_own(vllm_embed_url: str, texts: list[str]) -> list[list[float]]:
    answer = httpx.post(
        f"{vllm_embed_url}/v1/embeddings", json={"model": EMBED, "input": texts}, timeout=60
    ).json()
    return [d["embedding"] for d in sorted(answer["data"], key=lambda d: d["index"])]


def close_to(mine: list[list[float]], theirs: list[list[float]]) -> bool:
    return all(
        max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6
        for a, b in zip(mine, theirs, strict=True)
    )


def test_langchain_ollama_embeddings(live_adapter: str, vllm_embed_url: str) -> None:
    embeddings = OllamaEmbeddings(base_url=live_adapter, model=EMBED)
    vectors = embeddings.embed_documents([*PAIR, OTHER])
    assert close_to(vectors, vllms_own(vllm_embed_url, [*PAIR, OTHER]))
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    query = embeddings.embed_query(PAIR[1])
    assert close_to([query], [vectors[1]])


def test_llamaindex_ollama_embedding(live_adapter: str, vllm_embed_url: str) -> None:
    embedding = OllamaEmbedding(model_name=EMBED, base_url=live_adapter)
    vectors = embedding.get_text_embedding_batch([*PAIR, OTHER])
    assert close_to(vectors, vllms_own(vllm_embed_url, [*PAIR, OTHER]))
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
