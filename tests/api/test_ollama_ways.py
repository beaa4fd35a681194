"""What Ollama does that vLLM does not: strict JSON under ``format``, history truncation,
honest timings (the app against the recorded-faithful fake)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest

from tests.fake_vllm import FakeVLLM, chat_chunk, chat_tokens, sse, usage_chunk

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in resp.content.splitlines() if line]


def raw_json_stream(fake: FakeVLLM) -> None:
    """vLLM answering a schema with a raw control character inside a string (as xgrammar
    lets through), cut into small reads so the string spans several of them."""
    pieces = ['{"na', 'me":"a', "\x00", "b\tc", '"}']
    events = [chat_chunk({"role": "assistant", "content": ""})]
    events += [chat_chunk({"content": p}) for p in pieces]
    events += [chat_chunk({}, "stop"), usage_chunk(5, len(pieces))]
    payload = sse(events)
    fake.chunk_size = 40
    fake.handler = lambda req, body: fake.stream(payload) if "chat" in req.url.path else None


@pytest.mark.parametrize("fmt", [SCHEMA, "json"])
@pytest.mark.parametrize("stream", [True, False])
async def test_answers_under_format_are_strict_json(
    client: httpx.AsyncClient, fake: FakeVLLM, fmt: Any, stream: bool
) -> None:
    raw_json_stream(fake)
    body = {"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "format": fmt}
    resp = await client.post("/api/chat", json={**body, "stream": stream})
    lines = ndjson(resp) if stream else [resp.json()]
    content = "".join(line["message"]["content"] for line in lines)
    assert json.loads(content, strict=True) == {"name": "a\x00b\tc"}
    if stream:
        assert len(lines) > 3  # still streamed piece by piece, not held back


async def test_without_format_the_text_is_left_as_the_model_wrote_it(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    raw_json_stream(fake)
    body = {"model": "tiny-llm", "messages": [{"role": "user", "content": "x"}], "stream": False}
    content = (await client.post("/api/chat", json=body)).json()["message"]["content"]
    assert content == '{"name":"a\x00b\tc"}'


async def test_generate_under_format_is_strict_json_too(
    client: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    raw_json_stream(fake)
    body = {"model": "tiny-llm", "prompt": "x", "format": SCHEMA, "stream": False}
    out = (await client.post("/api/generate", json=body)).json()
    assert json.loads(out["response"], strict=True) == {"name": "a\x00b\tc"}


# --------------------------------------------------------------------------- truncation

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def history(turns: int, words: int = 20) -> list[dict[str, Any]]:
    """A system message, then ``turns`` user/assistant pairs, then the question."""
    out = [{"role": "system", "content": "You are brief."}]
    for i in range(turns):
        out.append({"role": "user", "content": f"q{i} " + "word " * words})
        out.append({"role": "assistant", "content": f"a{i} " + "word " * words})
    out.append({"role": "user", "content": "and now?"})
    return out


@pytest.fixture
def counting(fake: FakeVLLM) -> FakeVLLM:
    fake.word_tokens = True
    return fake


@pytest.mark.parametrize("stream", [False, True])
async def test_a_history_three_times_the_context_is_cut_as_ollama_cuts_it(
    client: httpx.AsyncClient, counting: FakeVLLM, stream: bool
) -> None:
    messages = history(32)  # about 1600 tokens for a 512-token context
    assert chat_tokens(messages) > 3 * counting.max_model_len
    body = {"model": "tiny-llm", "messages": messages, "stream": stream}
    resp = await client.post("/api/chat", json=body)
    assert resp.status_code == 200
    sent = counting.last["messages"]
    assert sent[0] == messages[0] and sent[-1] == messages[-1]  # system and latest kept
    assert sent[1:] == messages[len(messages) - len(sent) + 1 :]  # the newest, in order
    room = 512 // 4  # nothing set: a quarter of the context for the answer
    assert chat_tokens(sent) <= 512 - room
    assert chat_tokens(kept_one_more(messages, sent)) > 512 - room  # as many as fit
    assert len(counted(counting)) <= 8  # a search for the cut, not a count per message (66)


def counted(fake: FakeVLLM) -> list[dict[str, Any]]:
    """The chats the adapter asked vLLM to count (not its capability probes)."""
    return [
        body
        for path, body in fake.requests
        if path == "/tokenize" and body["messages"][-1]["content"] != "probe"
    ]


def kept_one_more(messages: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[Any]:
    """``sent`` with the message before its kept part put back."""
    start = len(messages) - len(sent) + 1
    return [messages[0], *messages[start - 1 :]]


async def test_num_predict_decides_the_room_for_the_answer(
    client: httpx.AsyncClient, counting: FakeVLLM
) -> None:
    body = {"model": "tiny-llm", "messages": history(30), "stream": False}
    await client.post("/api/chat", json={**body, "options": {"num_predict": 200}})
    assert chat_tokens(counting.last["messages"]) <= 512 - 200


async def test_images_in_the_history_are_counted_by_vllm_with_their_chat(
    client: httpx.AsyncClient, counting: FakeVLLM
) -> None:
    """The cut is searched for with the chat as vLLM will see it: the images go to
    ``/tokenize`` too (vLLM counts their tokens; the fake only counts words)."""
    counting.vision_models = ["tiny-llm"]
    messages = history(32)
    messages[1] = {**messages[1], "images": [PNG_1PX]}  # the oldest question has an image
    messages[-3] = {**messages[-3], "images": [PNG_1PX]}  # and one that will be kept
    resp = await client.post("/api/chat", json={"model": "tiny-llm", "messages": messages})
    assert resp.status_code == 200
    asked = counted(counting)
    assert asked, "the cut was never counted"
    kept = [b for b in asked if len(b["messages"]) >= 3]  # candidates that keep the image
    assert kept
    for body in kept:
        parts = body["messages"][-3]["content"]
        assert isinstance(parts, list), body["messages"][-3:]
        assert any(p.get("type") == "image_url" for p in parts), parts
    sent = counting.last["messages"]
    assert isinstance(sent[-3]["content"], list)  # the kept image went to vLLM
    assert all(not isinstance(m["content"], list) for m in sent[1:-3])  # the old one was cut


async def test_truncate_false_keeps_the_error(
    client: httpx.AsyncClient, counting: FakeVLLM
) -> None:
    body = {"model": "tiny-llm", "messages": history(30), "stream": False, "truncate": False}
    resp = await client.post("/api/chat", json=body)
    assert resp.status_code == 400
    message = resp.json()["error"]
    assert message.startswith("the input length exceeds the context length")
    assert "maximum context length is 512 tokens" in message  # vLLM's words follow
    assert counted(counting) == []


@pytest.mark.parametrize("stream", [False, True])
async def test_a_latest_message_that_alone_is_too_long_is_cut_as_ollamas_runner_cuts_it(
    client: httpx.AsyncClient, counting: FakeVLLM, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    """Ollama keeps the system messages and the latest message, and its runner then cuts the
    prompt's tokens (num_keep first ones, the newest to about half the context): answered, not
    vLLM's 400. The adapter sends that cut as a token prompt to /v1/completions."""
    messages = [*history(2), {"role": "user", "content": "word " * 600}]
    body = {"model": "tiny-llm", "messages": messages, "stream": stream}
    with caplog.at_level("INFO", logger="adapter"):
        resp = await client.post("/api/chat", json=body)
    assert resp.status_code == 200
    last = resp.json() if not stream else orjson.loads(resp.content.splitlines()[-1])
    assert last["done"] is True and last["message"]["role"] == "assistant"
    path, sent = counting.requests[-1]
    assert path == "/v1/completions"
    total = chat_tokens([messages[0], messages[-1]])  # the fake counts words
    keep, limit = 4 + 1, 512 - (512 - 5) // 2
    assert sent["prompt"] == [*range(keep), *range(total - (limit - keep), total)]
    assert sent["max_tokens"] == 512 - limit and sent["temperature"] == 0.8
    # vLLM's 400 on the way is no warning: the request was answered.
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    options = {"num_keep": 10}
    await client.post("/api/chat", json={**body, "options": options})
    assert counting.requests[-1][1]["prompt"][:11] == list(range(11))


async def test_a_kept_history_never_starts_with_an_orphan_tool_result(
    client: httpx.AsyncClient, counting: FakeVLLM
) -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s"}]
    for i in range(12):
        messages.append({"role": "user", "content": "word " * 25})
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"i": i}}}],
            }
        )
        messages.append({"role": "tool", "content": "word " * 25, "tool_name": "f"})
    messages.append({"role": "user", "content": "so?"})
    resp = await client.post("/api/chat", json={"model": "tiny-llm", "messages": messages})
    assert resp.status_code == 200
    sent = counting.last["messages"]
    assert sent[0]["role"] == "system" and sent[1]["role"] != "tool"


async def test_a_generate_prompt_longer_than_the_context_is_cut_too(
    client: httpx.AsyncClient, counting: FakeVLLM
) -> None:
    """Ollama's generate goes through the same runner: a prompt over the context is cut
    (truncate defaults to true), and its answer's ``context`` continues from the cut prompt."""
    body = {"model": "tiny-llm", "prompt": "word " * 600, "stream": False}
    resp = await client.post("/api/generate", json=body)
    assert resp.status_code == 200 and resp.json()["done"] is True
    path, sent = counting.requests[-1]
    total = chat_tokens([{"content": body["prompt"]}])
    assert path == "/v1/completions" and sent["return_token_ids"] is True
    assert sent["prompt"] == [*range(5), *range(total - 254, total)]
    assert sent["stream_interval"] == 64  # the cut body is still an answer taken whole
    refused = await client.post("/api/generate", json={**body, "truncate": False})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("the input length exceeds the context length")
