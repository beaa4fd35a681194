"""Answers that can be wrong: the adapter in front of real models on the real vLLM (CPU).

SmolLM2-135M-Instruct (``smollm2:135m``) and all-MiniLM-L6-v2 (``all-minilm``) ship inside PyPI
wheels (scripts/prepare-models.sh). A wrong chat template, a system prompt that never reaches
the model, a stop cut in the wrong place, a schema the model never saw, a history cut from the
wrong end or vectors scrambled on the way all pass a test on a random model; here they fail.

Temperature 0 where the answer must be stable; the assertions are what survives small numeric
drift ("Paris" in the answer, not the whole sentence). A 135M model loops at temperature 0 on
open questions, so those carry a ``num_predict``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from tests.support.net import metric

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
EMBED = "all-minilm"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
COLD = {"temperature": 0}
TIMEOUT = 300
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
# The model's own ChatML, as its chat template renders the France question.
CHATML = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def post(url: str, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    resp = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def chat(url: str, messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": messages, "stream": False, "options": COLD, **fields}
    return post(url, "/api/chat", body)


def generate(url: str, prompt: str, **fields: Any) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": prompt, "stream": False, "options": COLD, **fields}
    return post(url, "/api/generate", body)


def streamed(url: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{url}{path}", json=body, timeout=TIMEOUT) as resp:
        assert resp.status_code == 200
        return [json.loads(line) for line in resp.iter_lines() if line]


# --------------------------------------------------------------------------- chat and generate


def test_the_capital_of_france_is_paris_on_every_route(live_adapter: str) -> None:
    assert "Paris" in chat(live_adapter, FRANCE)["message"]["content"]
    assert "Paris" in generate(live_adapter, FRANCE[0]["content"])["response"]
    lines = streamed(
        live_adapter, "/api/chat", {"model": MODEL, "messages": FRANCE, "options": COLD}
    )
    assert "Paris" in "".join(line["message"]["content"] for line in lines)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    openai = post(
        live_adapter, "/v1/chat/completions", {"model": MODEL, "messages": FRANCE, "temperature": 0}
    )
    assert "Paris" in openai["choices"][0]["message"]["content"]


def test_a_collected_answer_is_the_streamed_answer(live_adapter: str) -> None:
    """A ``stream: false`` answer comes from vLLM many tokens an event
    (``ADAPTER_COLLECT_STREAM_INTERVAL``); it must be the answer a stream gives, token for
    token, with its durations."""
    ask = [{"role": "user", "content": "Tell me about the Moon."}]
    options = {**COLD, "num_predict": 40}
    whole = chat(live_adapter, ask, options=options)
    lines = streamed(
        live_adapter, "/api/chat", {"model": MODEL, "messages": ask, "options": options}
    )
    assert len(lines) > 10  # the stream came a token a line
    assert whole["message"]["content"] == "".join(line["message"]["content"] for line in lines)
    assert whole["eval_count"] == lines[-1]["eval_count"] == 40
    assert whole["done_reason"] == lines[-1]["done_reason"] == "length"
    assert whole["prompt_eval_duration"] > 0 and whole["eval_duration"] > 0


def test_a_system_message_reaches_the_model(live_adapter: str) -> None:
    hello = [{"role": "user", "content": "Hello, who are you?"}]
    pirate = [{"role": "system", "content": "You are a pirate. Always talk like a pirate."}]
    limit = {**COLD, "num_predict": 24}
    plain = chat(live_adapter, hello, options=limit)["message"]["content"]
    arr = chat(live_adapter, pirate + hello, options=limit)["message"]["content"]
    assert "aye" in arr.lower() and "aye" not in plain.lower(), (plain, arr)
    # generate's ``system`` is the same system message
    said = generate(live_adapter, "Hello, who are you?", system=pirate[0]["content"], options=limit)
    assert "aye" in said["response"].lower()


def test_stop_cuts_where_asked_and_done_reason_says_so(live_adapter: str) -> None:
    whole = chat(live_adapter, FRANCE)["message"]["content"]
    assert "Paris" in whole
    cut = chat(live_adapter, FRANCE, options={**COLD, "stop": ["Paris"]})
    assert cut["done_reason"] == "stop"
    content = cut["message"]["content"]
    assert "Paris" not in content and whole.startswith(content) and content, (whole, content)
    lines = streamed(
        live_adapter,
        "/api/generate",
        {"model": MODEL, "prompt": FRANCE[0]["content"], "options": {**COLD, "stop": ["Paris"]}},
    )
    assert "".join(line["response"] for line in lines) == content
    assert lines[-1]["done_reason"] == "stop"


def test_num_predict_caps_the_answer(live_adapter: str) -> None:
    answer = chat(live_adapter, FRANCE, options={**COLD, "num_predict": 3})
    assert answer["eval_count"] == 3 and answer["done_reason"] == "length"
    whole = chat(live_adapter, FRANCE)["message"]["content"]
    assert (
        whole.startswith(answer["message"]["content"])
        and "Paris" not in answer["message"]["content"]
    )


def test_a_seed_repeats_an_answer_when_sampling(live_adapter: str) -> None:
    ask = [{"role": "user", "content": "Write a sentence about cats."}]

    def said(seed: int) -> str:
        options = {"temperature": 0.9, "seed": seed, "num_predict": 20}
        return str(chat(live_adapter, ask, options=options)["message"]["content"])

    first = said(1)
    assert said(1) == first
    assert len({first, said(2), said(3)}) > 1  # the seed, not temperature 0, made them equal


def test_format_with_a_schema_gives_the_values_the_prompt_named(live_adapter: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    ask = [{"role": "user", "content": "Ann is 30 years old. Give her name and age as JSON."}]
    content = chat(live_adapter, ask, format=schema)["message"]["content"]
    person = json.loads(content)
    assert person == {"name": "Ann", "age": 30}
    # vLLM runs with disable_any_whitespace (as every start of it in this project does): the
    # object is compact, never padded with blanks up to num_predict.
    assert content == json.dumps(person, separators=(",", ":"))


def test_raw_with_the_models_own_chatml_answers(live_adapter: str) -> None:
    answer = generate(live_adapter, CHATML, raw=True, options={**COLD, "num_predict": 20})
    assert "Paris" in answer["response"]
    assert "context" not in answer or answer["context"] is None


def test_context_from_one_generate_carries_into_the_next(live_adapter: str) -> None:
    first = generate(live_adapter, "What is the capital of France?")
    assert "Paris" in first["response"] and first["context"]
    follow = generate(live_adapter, "And of Germany?", context=first["context"])
    assert "Berlin" in follow["response"]
    alone = generate(live_adapter, "And of Germany?", options={**COLD, "num_predict": 40})
    assert "Berlin" not in alone["response"]  # the context, not the question alone, said it


def test_images_to_a_text_only_model_are_answered_as_ollama_answers(live_adapter: str) -> None:
    """Ollama has no vision check: the image becomes a marker in the prompt and the text is
    answered (LangChain's standard image test passes against Ollama with a text-only model)."""
    ask = [{**FRANCE[0], "images": [PNG]}]
    assert "Paris" in chat(live_adapter, ask)["message"]["content"]
    said = generate(live_adapter, FRANCE[0]["content"], images=[PNG])
    assert "Paris" in said["response"]


# --------------------------------------------------------------------------- truncation


def test_a_history_longer_than_the_context_keeps_the_latest_question(live_adapter: str) -> None:
    history: list[dict[str, Any]] = []
    for i in range(40):  # about 3,000 tokens for a 2,048-token context
        history.append({"role": "user", "content": f"Fact {i} about the ocean? " + "Fish. " * 30})
        history.append({"role": "assistant", "content": "The ocean is deep and blue. " * 6})
    answer = chat(live_adapter, [*history, *FRANCE])
    assert "Paris" in answer["message"]["content"]
    assert answer["prompt_eval_count"] <= 2048


def test_one_message_longer_than_the_context_is_cut_and_answered(live_adapter: str) -> None:
    question = "The ocean is deep and blue and full of fish. " * 400 + "\n\n" + FRANCE[0]["content"]
    answer = chat(
        live_adapter, [{"role": "user", "content": question}], options={**COLD, "num_predict": 30}
    )
    assert "Paris" in answer["message"]["content"]
    assert answer["prompt_eval_count"] < 2048
    refused = httpx.post(
        f"{live_adapter}/api/chat",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": question}],
            "truncate": False,
        },
        timeout=TIMEOUT,
    )
    assert refused.status_code == 400


# --------------------------------------------------------------------------- embeddings


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


PAIR = ["The cat sits on the mat.", "A kitten is resting on a rug."]
OTHER = "Quarterly tax filing deadlines for corporations."


def vllms_own(vllm_embed_url: str, texts: list[str]) -> list[list[float]]:
    answer = post(vllm_embed_url, "/v1/embeddings", {"model": EMBED, "input": texts})
    return [d["embedding"] for d in sorted(answer["data"], key=lambda d: d["index"])]


def test_embed_routes_give_vllms_vectors_and_meaning(
    live_adapter: str, vllm_embed_url: str
) -> None:
    texts = [*PAIR, OTHER]
    own = vllms_own(vllm_embed_url, texts)
    embed = post(live_adapter, "/api/embed", {"model": EMBED, "input": texts})["embeddings"]
    legacy = [
        post(live_adapter, "/api/embeddings", {"model": EMBED, "prompt": t})["embedding"]
        for t in texts
    ]
    v1 = post(live_adapter, "/v1/embeddings", {"model": EMBED, "input": texts})["data"]
    for vectors in (embed, legacy, [d["embedding"] for d in v1]):
        assert len(vectors) == 3 and len(vectors[0]) == 384
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
        for mine, theirs in zip(vectors, own, strict=True):
            assert max(abs(x - y) for x, y in zip(mine, theirs, strict=True)) < 1e-6
    # /api/embed normalises (Ollama's does); MiniLM's vectors already are.
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in embed)


# --------------------------------------------------------------------------- capabilities


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
#: The call list the library's template asks SmolLM2 for, as a schema (``format``): a 135M
#: model never chooses a call, so the test makes it.
ONE_WEATHER_CALL = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "name": {"const": "get_weather"},
            "arguments": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        "required": ["name", "arguments"],
    },
}
PARIS_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_capabilities_follow_what_the_template_renders(live_adapter: str) -> None:
    """SmolLM2 is served with the tool template of Ollama's library ``smollm2`` and vLLM's
    xlam parser, so it earns ``tools`` as Ollama's library model has it; tiny-llm's template
    renders them too (Hermes style); an embedding model has neither."""
    shown = post(live_adapter, "/api/show", {"model": MODEL})
    assert shown["capabilities"] == ["completion", "tools"]
    tags = {m["model"]: m for m in httpx.get(f"{live_adapter}/api/tags").json()["models"]}
    assert tags[MODEL]["capabilities"] == ["completion", "tools"]
    assert tags["tiny-llm:latest"]["capabilities"] == ["completion", "tools"]
    assert tags["all-minilm:latest"]["capabilities"] == ["embedding"]
    assert tags["all-minilm:latest"]["details"]["family"] == "bert"
    # Ollama 0.30.0: the vector's length in the list, as MiniLM's really are.
    assert tags["all-minilm:latest"]["details"]["embedding_length"] == 384


def test_a_chat_with_tools_still_answers_what_it_knows(live_adapter: str) -> None:
    """Open WebUI sends its tools with every chat: the question is answered, in the content,
    streamed and whole (the library's template tells the model to call only when it must)."""
    answer = chat(live_adapter, FRANCE, tools=[WEATHER])["message"]
    assert "Paris" in answer["content"] and "tool_calls" not in answer
    body = {"model": MODEL, "messages": FRANCE, "tools": [WEATHER], "options": COLD}
    lines = streamed(live_adapter, "/api/chat", body)
    assert "Paris" in "".join(line["message"]["content"] for line in lines)
    assert lines[-1]["done_reason"] == "stop"


def test_a_tool_call_comes_back_in_ollamas_shape(live_adapter: str) -> None:
    """The model writes the library's ``<tool_call>[...]`` list (forced here by ``format``);
    vLLM's parser reads it back and the answer carries Ollama's ``tool_calls``: arguments as
    an object, on one line before the last when streamed."""
    whole = chat(live_adapter, PARIS_WEATHER, tools=[WEATHER], format=ONE_WEATHER_CALL)
    (call,) = whole["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == {"city": "Paris"}
    assert whole["message"]["content"] == "" and whole["done_reason"] == "stop"
    body = {
        "model": MODEL,
        "messages": PARIS_WEATHER,
        "tools": [WEATHER],
        "format": ONE_WEATHER_CALL,
        "options": COLD,
    }
    lines = streamed(live_adapter, "/api/chat", body)
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert [c["function"]["arguments"] for c in calls] == [{"city": "Paris"}]
    assert "tool_calls" in lines[-2]["message"] and lines[-1]["done"] is True


def test_a_tool_result_reaches_the_model(live_adapter: str) -> None:
    """The call and its result go back as the library's template writes them (a
    ``<tool_response>`` turn): the model answers from what the tool said."""
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    result = "It is 22 degrees Celsius and sunny in Paris."
    messages: list[dict[str, Any]] = [
        *PARIS_WEATHER,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": result, "tool_name": "get_weather"},
    ]
    answer = chat(live_adapter, messages, tools=[WEATHER], options={**COLD, "num_predict": 60})
    assert "22" in answer["message"]["content"]


def test_served_tokens_are_counted(live_adapter: str) -> None:
    before = metric(live_adapter, "ollama_adapter_tokens_total", kind="completion")
    answer = chat(live_adapter, FRANCE)
    after = metric(live_adapter, "ollama_adapter_tokens_total", kind="completion")
    assert after - before >= answer["eval_count"] > 0
