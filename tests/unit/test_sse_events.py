"""The one SSE reader of the relay and ``collect``, fed byte scripts as a network would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapter.backends.vllm.from_openai import Timings
from adapter.backends.vllm.relay import (
    CONTENT_HEAD,
    CONTENT_TAIL,
    Events,
    MalformedEvent,
    whole_events,
)
from adapter.backends.vllm.stream import StreamTranslator
from tests import fixtures
from tests.support.clock import fake_clock


class Script:
    """Hands out the reads it was given, counting how many were taken."""

    def __init__(self, *reads: bytes) -> None:
        self.reads = list(reads)
        self.taken = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            self.taken += 1
            yield read


async def batches(events: Events) -> list[list[Any]]:
    return [batch async for batch in events]


async def test_events_cut_anywhere_come_out_whole_one_batch_per_read() -> None:
    script = Script(
        b'data: {"a":1}\n\ndata: {"t":"h\xc3',  # cut inside a UTF-8 character
        b'\xa9"}\n\n: a comment\nevent: x\ndata: {"b"',
        b":2}\n\ndata: [DONE]\n\n",
        b"never read",
    )
    events = Events(script.__aiter__())
    assert await batches(events) == [[{"a": 1}], [{"t": "hé"}], [{"b": 2}]]
    assert events.done and script.taken == 3


async def test_several_events_in_one_read_are_one_batch() -> None:
    read = b"".join(b'data: {"i":%d}\n\n' % i for i in range(50)) + b"data: [DONE]\n\n"
    events = Events(Script(read).__aiter__())
    assert await batches(events) == [[{"i": i} for i in range(50)]]


async def test_a_limit_splits_a_large_first_read_until_lifted() -> None:
    read = b"".join(b'data: {"i":%d}\n\n' % i for i in range(6))
    events = Events(Script(read, b"data: [DONE]\n\n").__aiter__(), limit=2)
    seen = []
    async for batch in events:
        seen.append(batch)
        events.limit = 0  # the first line has left
    assert seen == [[{"i": 0}], [{"i": i} for i in range(1, 6)]]


async def test_a_stream_without_done_ends_not_done() -> None:
    events = Events(Script(b'data: {"a":1}\n\ndata: {"b"').__aiter__())
    assert await batches(events) == [[{"a": 1}]]
    assert not events.done


async def test_a_malformed_event_ends_the_stream_after_the_events_before_it() -> None:
    events = Events(Script(b'data: {"a":1}\n\ndata: {"a":\n\ndata: {"c":3}\n\n').__aiter__())
    seen = []
    with pytest.raises(MalformedEvent):
        async for batch in events:
            seen.append(batch)
    assert seen == [[{"a": 1}]]


async def test_a_lone_surrogate_escape_is_read_as_a_replacement_character() -> None:
    read = b'data: {"t":"\\ud800x"}\n\ndata: {"u":1}\n\n'
    assert await batches(Events(Script(read).__aiter__())) == [[{"t": "\ufffdx"}, {"u": 1}]]


async def test_events_joined_into_a_different_array_are_decoded_one_by_one() -> None:
    """``1,2`` and ``3`` would join into a valid array of three values: each is read alone,
    and ``1,2`` is malformed."""
    with pytest.raises(MalformedEvent):
        await batches(Events(Script(b"data: 1,2\n\ndata: 3\n\n").__aiter__()))


def sse(*events: str) -> bytes:
    return b"".join(b"data: " + e.encode() + b"\n\n" for e in events)


@pytest.mark.parametrize(
    "texts",
    [
        ["plain", "words"],
        ["it says data: here", "x"],  # the separator's text inside an event
        ["[DONE] is only text", "y"],
        ["a\n\ndata: b", "z"],  # escaped in JSON: never a raw separator
    ],
)
async def test_vllms_own_shape_is_read_whole_and_right(texts: list[str]) -> None:
    events = [f'{{"t":{json.dumps(t)}}}' for t in texts]
    reader = Events(Script(sse(*events) + b"data: [DONE]\n\n").__aiter__())
    assert await batches(reader) == [[{"t": t} for t in texts]]
    assert reader.done


async def test_a_read_with_other_lines_falls_back_to_the_line_reader() -> None:
    read = b': keep-alive\n\ndata: {"a":1}\r\n\r\ndata: {"b":2}\n\n'
    assert await batches(Events(Script(read).__aiter__())) == [[{"a": 1}, {"b": 2}]]


def test_whole_events_declines_what_is_not_vllms_shape() -> None:
    assert whole_events(sse('{"a":1}', '{"b":2}')) == ([{"a": 1}, {"b": 2}], False)
    assert whole_events(b"data: [DONE]\n\n") == ([], True)
    assert whole_events(sse('{"a":1}', "oops")) is None
    assert whole_events(sse('{"t":"data: x"}')) == ([{"t": "data: x"}], False)


@pytest.mark.parametrize(
    ("name", "chat", "completions"),
    [
        ("chat_stream.sse", True, False),
        ("chat_tool_named_stream.sse", True, False),
        ("think_chat_stream.sse", True, False),
        ("completions_stream.sse", False, True),
        # Several tokens an event, as vLLM answers the adapter's answers taken whole.
        ("chat_stream_interval.sse", True, False),
        ("chat_stream_interval_logprobs.sse", True, False),
        ("completions_stream_interval.sse", False, True),
    ],
)
@pytest.mark.parametrize("context", [False, True])
@pytest.mark.parametrize("strict_json", [False, True])
def test_collecting_a_reads_events_answers_what_feeding_each_does(
    name: str, chat: bool, completions: bool, context: bool, strict_json: bool
) -> None:
    """``StreamTranslator.collect`` (the plain events in one loop) against ``feed`` per event,
    on vLLM's recorded streams, with token ids and strict JSON on and off."""
    events = fixtures.sse_events(name)
    events.insert(1, {"choices": [{"index": 0, "delta": {"content": "", "role": None}}]})

    def answer(keep: str) -> dict[str, Any]:
        translator = StreamTranslator(
            "m",
            Timings(start=1),
            clock=fake_clock(),
            chat=chat,
            completions=completions,
            context=context,
            collect=True,
            strict_json=strict_json,
        )
        if keep == "each":
            for event in events:
                translator.feed(event)
        else:
            translator.collect(events)
        out = dict(translator.answer())
        return {k: v for k, v in out.items() if not k.endswith("_duration")}

    assert answer("batch") == answer("each")


def answer_of(events: list[Any], *, keep: str) -> dict[str, Any]:
    translator = StreamTranslator(
        "m", Timings(start=1), clock=fake_clock(), chat=True, collect=True
    )
    if keep == "each":
        for event in events:
            translator.feed(event)
    else:
        translator.collect(events)
    return {k: v for k, v in translator.answer().items() if not k.endswith("_duration")}


@pytest.mark.parametrize(
    "name",
    [
        "chat_stream.sse",
        "think_chat_stream.sse",
        "chat_tool_named_stream.sse",
        "chat_stream_interval.sse",
        "chat_stream_interval_logprobs.sse",
    ],
)
@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
async def test_plain_texts_from_vllms_bytes_answer_what_every_event_does(
    name: str, size: int
) -> None:
    """vLLM's recorded bytes, read ``size`` bytes at a time, with plain texts taken as texts:
    the same answer as every event decoded and fed, and plain texts really taken."""
    data = fixtures.raw(name)
    reads = [data[i : i + size] for i in range(0, len(data), size)]
    reader = Events(Script(*reads).__aiter__(), plain_text=True)
    items = [item for batch in await batches(reader) for item in batch]
    assert reader.done
    assert answer_of(items, keep="batch") == answer_of(fixtures.sse_events(name), keep="each")
    if name == "chat_stream.sse" and size == 100_000:
        # one read: the run of texts is one text, the role, finish and usage events objects
        kinds = [type(item).__name__ for item in items]
        assert kinds == ["dict", "str", "dict", "dict"], kinds


HEAD = b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
ROLE = HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'


REASONING = (
    HEAD
    + b'"choices":[{"index":0,"delta":{"reasoning":"r"},"logprobs":null,"finish_reason":null,'
    + b'"token_ids":null}]}\n\n'
)


def plain(text: str) -> bytes:
    return HEAD + CONTENT_HEAD + json.dumps(text).encode() + CONTENT_TAIL


@pytest.mark.parametrize(
    ("middle", "expected"),
    [
        # a run of texts: one text
        (plain("a") + plain("b") + plain("c"), ["abc"]),
        # a run cut by an event that is not a plain text (a tool call)
        (
            plain("a")
            + HEAD
            + b'"choices":[{"index":0,"delta":{"tool_calls":[]},"logprobs":null,'
            + b'"finish_reason":"tool_calls"}]}\n\n'
            + plain("b"),
            [
                "a",
                {"choices": [{"index": 0, "delta": {"tool_calls": []}, "finish": "tool_calls"}]},
                "b",
            ],
        ),
        # another event that ends as a plain text does, but starts otherwise
        (
            plain("a") + REASONING + plain("b"),
            ["a", {"choices": [{"index": 0, "delta": {"reasoning": "r"}}]}, "b"],
        ),
        # the last text rides on the finishing event: that one whole
        (
            plain("a")
            + HEAD
            + CONTENT_HEAD
            + b'"z"},"logprobs":null,"finish_reason":"length","token_ids":null}]}\n\n',
            ["a", {"choices": [{"index": 0, "delta": {"content": "z"}, "finish": "length"}]}],
        ),
        # text with quotes, escapes and the separators' own words
        (
            plain('say "hi"\\n') + plain('},"logprobs": data: '),
            ['say "hi"\\n},"logprobs": data: '],
        ),
    ],
)
def test_plain_texts_keep_order_and_take_only_plain_texts(
    middle: bytes, expected: list[Any]
) -> None:
    head = HEAD + CONTENT_HEAD
    found = whole_events(ROLE + middle + b"data: [DONE]\n\n", head)
    assert found is not None and found[1]
    items = found[0][1:]  # after the role event

    def shape(item: Any) -> Any:
        if isinstance(item, str):
            return item
        choice = item["choices"][0]
        out = {"index": 0, "delta": choice["delta"]}
        if choice.get("finish_reason"):
            out["finish"] = choice["finish_reason"]
        return {"choices": [out]}

    assert [shape(item) for item in items] == expected


@pytest.mark.parametrize(
    "event",
    [
        HEAD + CONTENT_HEAD + b"null" + CONTENT_TAIL,
        HEAD + CONTENT_HEAD + b'""' + CONTENT_TAIL,
        HEAD + CONTENT_HEAD + b'"a","reasoning":"b"' + CONTENT_TAIL,
    ],
)
def test_plain_texts_leave_what_is_not_one_text_to_the_whole_reader(event: bytes) -> None:
    read = ROLE + plain("a") + event + plain("b")
    assert whole_events(read, HEAD + CONTENT_HEAD) is None
    whole = whole_events(read)
    assert whole is not None and len(whole[0]) == 4
