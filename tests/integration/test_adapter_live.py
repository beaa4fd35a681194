"""The adapter as a real process in front of the real vLLM server on CPU, driven by the
official ``ollama`` Python client and by raw HTTP.

The tiny model's text is noise, so these tests check what is real: shapes, counts, finish
reasons, seeds, schemas, errors and cancellation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import ollama
import pydantic
import pytest

from tests.support.adapter_proc import running_adapter
from tests.support.net import metric

MODEL = "tiny-llm"
JSON_TYPE = "application/json; charset=utf-8"
PROMPT = [{"role": "user", "content": "Tell me a long story about the sea."}]


@pytest.fixture(scope="module")
def adapter_url(vllm_url: str) -> Iterator[str]:
    with running_adapter(vllm_url, env={"MODEL_ALIASES": "llama3.2=tiny-llm"}) as url:
        yield url


@pytest.fixture
def client(adapter_url: str) -> ollama.Client:
    return ollama.Client(host=adapter_url, timeout=120)


def test_list_shows_the_served_model_and_alias(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert names == ["tiny-llm:latest", "llama3.2:latest"]


def test_answers_carry_the_headers_ollama_sends_and_no_server_header(adapter_url: str) -> None:
    """Ollama (Go's net/http) names no server; uvicorn would add ``server: uvicorn``."""
    body = {"model": MODEL, "messages": PROMPT, "options": {"num_predict": 2}}
    with httpx.Client(base_url=adapter_url, timeout=120) as http:
        answers = [
            http.get("/api/tags"),
            http.post("/api/chat", json={**body, "stream": False}),
            http.post("/api/chat", json=body),
            http.get("/api/version"),
            http.get("/nowhere"),
        ]
    for resp in answers:
        assert "server" not in resp.headers, (resp.request.url, resp.headers)
        assert resp.headers["date"].endswith(" GMT")
    types = [resp.headers["content-type"] for resp in answers]
    assert types[:4] == [JSON_TYPE, JSON_TYPE, "application/x-ndjson", JSON_TYPE]
    assert types[4].startswith("text/plain")


def test_chat_not_streaming_with_options(client: ollama.Client) -> None:
    resp = client.chat(
        model=MODEL, messages=PROMPT, options={"num_predict": 12, "temperature": 0.7, "seed": 3}
    )
    assert resp.message.role == "assistant"
    assert isinstance(resp.message.content, str)
    assert resp.done is True
    assert resp.eval_count is not None and 1 <= resp.eval_count <= 12
    assert resp.prompt_eval_count and resp.prompt_eval_count > 5
    if resp.eval_count == 12:
        assert resp.done_reason == "length"
    assert resp.total_duration and resp.eval_duration


def test_same_seed_same_answer(client: ollama.Client) -> None:
    opts = {"num_predict": 16, "temperature": 1.0, "seed": 42}
    first = client.chat(model=MODEL, messages=PROMPT, options=opts).message.content
    again = client.chat(model="llama3.2", messages=PROMPT, options=opts).message.content
    assert first == again


def test_chat_streaming_counts_once_at_the_end(client: ollama.Client) -> None:
    parts = list(
        client.chat(
            model=MODEL, messages=PROMPT, stream=True, options={"num_predict": 20, "seed": 1}
        )
    )
    assert parts[-1].done is True and parts[-1].done_reason in ("stop", "length")
    assert all(not p.done for p in parts[:-1])
    assert all(p.eval_count is None for p in parts[:-1])
    assert parts[-1].eval_count is not None and parts[-1].eval_count <= 20
    streamed = "".join(p.message.content or "" for p in parts)
    whole = client.chat(model=MODEL, messages=PROMPT, options={"num_predict": 20, "seed": 1})
    assert streamed == whole.message.content


def test_generate_streaming_and_not(client: ollama.Client) -> None:
    resp = client.generate(
        model=MODEL,
        prompt="Once upon a time",
        system="Be brief.",
        options={"num_predict": 10, "seed": 5},
    )
    assert isinstance(resp.response, str) and resp.done
    assert resp.context and len(resp.context) >= (resp.prompt_eval_count or 0)
    parts = list(
        client.generate(
            model=MODEL,
            prompt="Once upon a time",
            system="Be brief.",
            stream=True,
            options={"num_predict": 10, "seed": 5},
        )
    )
    assert "".join(p.response or "" for p in parts) == resp.response
    assert parts[-1].done and parts[-1].context == resp.context


def test_raw_generate(client: ollama.Client) -> None:
    resp = client.generate(
        model=MODEL, prompt="<|im_start|>user\nhi<|im_end|>\n", raw=True, options={"num_predict": 5}
    )
    assert resp.done and resp.eval_count is not None and resp.eval_count <= 5
    assert resp.context is None


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_structured_output_with_a_pydantic_schema(client: ollama.Client) -> None:
    resp = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a person."}],
        format=Person.model_json_schema(),
        options={"num_predict": 200, "seed": 11},
    )
    person = Person.model_validate_json(resp.message.content or "")
    assert isinstance(person.age, int)


def test_json_mode(client: ollama.Client) -> None:
    """``format: json`` holds a random model to one JSON object from its first token: an
    answer that ends is an object (``{}`` with one seed), one cut at ``num_predict`` is the
    start of one (another seed). Either way the check runs."""
    for seed in (2, 3):
        resp = client.generate(
            model=MODEL,
            prompt="A JSON object please",
            format="json",
            options={"num_predict": 200, "seed": seed},
        )
        text = resp.response or ""
        assert text.startswith("{"), text
        if resp.done_reason == "stop":
            assert isinstance(json.loads(text), dict), text
        else:
            assert (resp.done_reason, resp.eval_count) == ("length", 200), resp


def test_unknown_model_is_a_404_response_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="no-such-model", messages=PROMPT)
    assert err.value.status_code == 404
    assert err.value.error == "model 'no-such-model' not found"


def test_too_long_prompt_is_cut_as_ollama_cuts_it_or_vllms_400_without_truncate(
    client: ollama.Client, adapter_url: str
) -> None:
    long = " ".join(["sea"] * 3000)
    ask = [{"role": "user", "content": long}]
    whole = client.chat(model=MODEL, messages=ask, options={"num_predict": 8})
    *_, last = client.chat(model=MODEL, messages=ask, stream=True, options={"num_predict": 8})
    for answer in (whole, last):
        assert answer.done is True
        assert answer.prompt_eval_count and answer.prompt_eval_count < 512
    body = {"model": MODEL, "messages": [{"role": "user", "content": long}], "truncate": False}
    refused = httpx.post(f"{adapter_url}/api/chat", json=body, timeout=60)
    assert refused.status_code == 400
    assert "maximum context length is 512 tokens" in refused.json()["error"]


def test_load_and_unload(client: ollama.Client) -> None:
    assert client.generate(model=MODEL).done_reason == "load"
    assert client.generate(model=MODEL, keep_alive=0).done_reason == "unload"
    assert client.chat(model=MODEL, messages=[]).done_reason == "load"


def test_curl_style_form_body_and_errors(adapter_url: str) -> None:
    resp = httpx.post(
        f"{adapter_url}/api/generate",
        content=json.dumps(
            {"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 3}}
        ),
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=60,
    )
    assert resp.status_code == 200 and resp.json()["done"] is True
    resp = httpx.post(f"{adapter_url}/api/chat", content=b"{nope", timeout=10)
    assert resp.status_code == 400 and list(resp.json()) == ["error"]


LONG_STORY = {
    "type": "object",
    "properties": {"story": {"type": "string", "minLength": 2000}},
    "required": ["story"],
}


def test_client_disconnect_stops_generation_in_vllm(adapter_url: str, vllm_url: str) -> None:
    """A stream whose client leaves after the first line is aborted in vLLM: it never counts as
    finished, far fewer tokens are generated than asked for, and nothing keeps running.

    A schema that needs a 2,000-character string keeps the random model from ending early on
    its own, so without cancellation every stream would run to ``num_predict`` and finish.
    vLLM on two busy vCPUs sometimes stalls its front end while the engine keeps generating;
    a stream can then be complete in vLLM before the client reads its first line (the adapter
    may still hold unsent lines of it, so its own disconnect counter says nothing about vLLM).
    Such an attempt proves nothing either way and is repeated. vLLM aborts a request only when
    its connection goes, so three aborted attempts out of twelve show that the adapter passed the
    client's departure on; without that, every attempt would finish.
    """
    asked = 480
    warm = {"model": MODEL, "messages": PROMPT, "stream": False, "format": LONG_STORY}
    httpx.post(f"{adapter_url}/api/chat", json={**warm, "options": {"num_predict": 4}}, timeout=60)
    aborted = 0
    for attempt in range(12):
        finished = metric(vllm_url, "vllm:request_success_total")
        tokens = metric(vllm_url, "vllm:generation_tokens_total")
        left = metric(adapter_url, "ollama_adapter_client_disconnects_total")
        body = {
            "model": MODEL,
            "messages": PROMPT,
            "options": {"num_predict": asked, "seed": 100 + attempt, "temperature": 1.0},
            "format": LONG_STORY,
        }
        with (
            httpx.Client(timeout=60) as c,
            c.stream("POST", f"{adapter_url}/api/chat", json=body) as resp,
        ):
            assert json.loads(next(resp.iter_lines()))["done"] is False
        # leaving the block closed the connection right after the first line
        deadline = time.monotonic() + 15
        while metric(vllm_url, "vllm:num_requests_running") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert metric(vllm_url, "vllm:num_requests_running") == 0
        if metric(vllm_url, "vllm:request_success_total") != finished:
            continue  # vLLM had finished before the client left: inconclusive
        assert metric(vllm_url, "vllm:generation_tokens_total") - tokens < asked
        deadline = time.monotonic() + 1  # the adapter counts the disconnect as it unwinds
        while (
            metric(adapter_url, "ollama_adapter_client_disconnects_total") == left
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        assert metric(adapter_url, "ollama_adapter_client_disconnects_total") == left + 1
        aborted += 1
        if aborted == 3:
            break
    assert aborted == 3


def test_metrics_endpoint_counts(adapter_url: str) -> None:
    text = httpx.get(f"{adapter_url}/metrics", timeout=10).text
    assert re.search(
        r'ollama_adapter_requests_total\{endpoint="/api/chat",status="200"\} [1-9]', text
    )
    assert 'ollama_adapter_tokens_total{backend="vllm",kind="completion"}' in text


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_images_to_a_text_only_model_are_tagged_and_answered(client: ollama.Client) -> None:
    """The adapter asked vLLM (a 1x1 image) whether the model reads images; it does not, so,
    as Ollama does, the image becomes an ``[img-0]`` marker in the prompt (more prompt tokens
    than without it) and the text is answered."""
    ask = {"role": "user", "content": "What is this?"}
    options = {"num_predict": 4}
    plain = client.chat(model=MODEL, messages=[ask], options=options)
    tagged = client.chat(model=MODEL, messages=[{**ask, "images": [PNG]}], options=options)
    assert tagged.done is True and plain.prompt_eval_count and tagged.prompt_eval_count
    assert tagged.prompt_eval_count > plain.prompt_eval_count


THINK = "tiny-think"


@pytest.fixture(scope="module")
def thinking_client(vllm_reasoning_url: str) -> Iterator[ollama.Client]:
    """The adapter in front of the thinking server: no MODEL_CAPABILITIES, it finds out."""
    with running_adapter(vllm_reasoning_url) as url:
        yield ollama.Client(host=url, timeout=120)


def test_think_switches_the_reasoning_parser_output(thinking_client: ollama.Client) -> None:
    """With ``--reasoning-parser qwen3`` a random model never closes ``<think>``, so with
    thinking on everything it writes is reasoning (``thinking``), and with it off, content.
    Unset, a thinking model thinks (Ollama's default)."""
    opts = {"num_predict": 12, "seed": 4}
    on = thinking_client.chat(model=THINK, messages=PROMPT, think=True, options=opts)
    assert on.message.thinking and not on.message.content
    off = thinking_client.chat(model=THINK, messages=PROMPT, think=False, options=opts)
    assert off.message.content and not off.message.thinking
    unset = thinking_client.chat(model=THINK, messages=PROMPT, options=opts)
    assert unset.message.thinking == on.message.thinking
    parts = list(
        thinking_client.chat(model=THINK, messages=PROMPT, think=True, stream=True, options=opts)
    )
    assert "".join(p.message.thinking or "" for p in parts) == on.message.thinking
    shown = thinking_client.show(THINK)
    assert shown.capabilities is not None and "thinking" in shown.capabilities
