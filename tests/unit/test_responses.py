"""vLLM answers (recorded fixtures) to Ollama answers, streaming and not, and errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from adapter.backends.vllm import from_openai as t
from adapter.backends.vllm.from_openai import Timings
from adapter.backends.vllm.stream import StreamTranslator
from adapter.errors import OllamaError
from adapter.jsonutil import dumps, loads_lenient
from adapter.ollama_api.models import ModelEntry, family
from adapter.ollama_api.responses import load_response
from tests import fixtures
from tests.fake_vllm import chat_chunk, usage_chunk
from tests.support.clock import fake_clock


def lines(data: bytes) -> list[dict[str, Any]]:
    assert data.endswith(b"\n")
    assert b"\n\n" not in data
    return [orjson.loads(line) for line in data.splitlines()]


def run_stream(tr: StreamTranslator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = b"".join(tr.feed(e) for e in events) + tr.final()
    return lines(out)


@pytest.mark.parametrize(
    ("finish", "done"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "stop"),
        ("abort", "stop"),
        ("repetition", "stop"),
        (None, "stop"),
    ],
)
def test_done_reason(finish: str | None, done: str) -> None:
    assert t.done_reason(finish) == done


def test_recorded_chat_stream_becomes_ndjson_with_counts_only_on_the_last_line() -> None:
    events = fixtures.sse_events("chat_stream.sse")
    out = run_stream(
        StreamTranslator("llama3.2", Timings(start=1), clock=fake_clock(), chat=True), events
    )
    expected_text = "".join(
        (e["choices"][0]["delta"].get("content") or "") for e in events if e["choices"]
    )
    body, last = out[:-1], out[-1]
    assert all(line["done"] is False for line in body)
    assert all(line["message"]["role"] == "assistant" for line in out)
    assert all(line["model"] == "llama3.2" for line in out)
    assert all(line["message"]["content"] for line in body), "empty deltas are skipped"
    assert all("eval_count" not in line and "prompt_eval_count" not in line for line in body)
    assert "".join(line["message"]["content"] for line in body) == expected_text
    assert last["done"] is True and last["done_reason"] == "length"
    assert last["message"] == {"role": "assistant", "content": ""}
    usage = events[-1]["usage"]
    assert last["prompt_eval_count"] == usage["prompt_tokens"] > 0
    assert last["eval_count"] == usage["completion_tokens"] > 0
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(last[key], int) and last[key] > 0


def test_streamed_tool_call_fragments_are_sent_once_whole_with_object_arguments() -> None:
    events = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "chatcmpl-tool-1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Tokyo"}'}}]}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "chatcmpl-tool-2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    }
                ]
            }
        ),
        chat_chunk({}, "tool_calls"),
        usage_chunk(30, 12),
    ]
    out = run_stream(StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=True), events)
    calls = [c for line in out for c in line["message"].get("tool_calls", [])]
    assert calls == [
        {
            "id": "chatcmpl-tool-1",
            "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}},
        },
        {"id": "chatcmpl-tool-2", "function": {"index": 1, "name": "get_time", "arguments": {}}},
    ]
    assert out[-1]["done_reason"] == "stop"
    assert out[-1]["eval_count"] == 12


def test_reasoning_and_legacy_reasoning_content_become_thinking() -> None:
    events = [
        chat_chunk({"reasoning": "let me "}),
        chat_chunk({"reasoning_content": "think"}),
        chat_chunk({"content": "42"}, "stop"),
        usage_chunk(3, 3),
    ]
    out = run_stream(StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=True), events)
    assert [line["message"].get("thinking") for line in out[:-1]] == ["let me ", "think", None]
    assert [line["message"]["content"] for line in out[:-1]] == ["", "", "42"]


def test_generate_stream_uses_response_and_collects_context() -> None:
    first = chat_chunk({"role": "assistant", "content": ""}, prompt_token_ids=[1, 2, 3])
    a = chat_chunk({"content": "he"})
    a["choices"][0]["token_ids"] = [10]
    b = chat_chunk({"content": "llo"}, "stop")
    b["choices"][0]["token_ids"] = [11]
    out = run_stream(
        StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=False, context=True),
        [first, a, b, usage_chunk(3, 2)],
    )
    assert [line["response"] for line in out] == ["he", "llo", ""]
    assert "message" not in out[0]
    assert out[-1]["context"] == [1, 2, 3, 10, 11]


def test_recorded_completions_stream_for_raw_generate() -> None:
    events = fixtures.sse_events("completions_stream.sse")
    out = run_stream(
        StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=False, completions=True),
        events,
    )
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert "".join(line["response"] for line in out) == text
    assert out[-1]["done"] is True
    assert "context" not in out[-1]


def test_error_event_mid_stream_raises() -> None:
    tr = StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=True)
    with pytest.raises(OllamaError, match="boom"):
        tr.feed({"error": {"message": "boom", "type": "InternalServerError", "code": 500}})


def collected(tr: StreamTranslator, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A non-streaming answer: the events fed in collect mode, then the one object."""
    for event in events:
        assert tr.feed(event) == b""  # nothing goes out while collecting
    return dict(tr.answer())


def test_a_non_streaming_chat_is_the_recorded_stream_assembled() -> None:
    events = fixtures.sse_events("chat_stream.sse")
    clock = fake_clock()
    timings = Timings(start=clock.perf_ns(), sent=clock.perf_ns())
    out = collected(
        StreamTranslator("llama3.2", timings, clock=clock, chat=True, collect=True), events
    )
    text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e["choices"])
    assert out["message"] == {"role": "assistant", "content": text}
    assert out["done"] is True and out["done_reason"] == "length"
    usage = events[-1]["usage"]
    assert out["prompt_eval_count"] == usage["prompt_tokens"] > 0
    assert out["eval_count"] == usage["completion_tokens"] == 8
    assert out["model"] == "llama3.2" and out["created_at"] == "2023-11-14T22:13:20.123456Z"
    # Honest durations: the first token was seen, so each part is measured, and they add up.
    parts = ("load_duration", "prompt_eval_duration", "eval_duration")
    assert all(out[k] > 1 for k in parts)
    assert sum(out[k] for k in parts) == out["total_duration"]


def test_collected_logprobs_and_thinking() -> None:
    content = fixtures.load("chat_logprobs.json")["choices"][0]["logprobs"]["content"]
    tr = StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=True, collect=True)
    out = collected(tr, _thinking_with_logprobs())
    assert out["message"]["thinking"] == "hmm, yes"
    assert out["message"]["content"] == "".join(c["token"] for c in content)
    assert [lp["token"] for lp in out["logprobs"]] == [c["token"] for c in content]


def test_collected_tool_calls_from_the_recorded_stream() -> None:
    events = fixtures.sse_events("chat_tool_named_stream.sse")
    tr = StreamTranslator("m", Timings(start=1), clock=fake_clock(), chat=True, collect=True)
    out = collected(tr, events)
    (call,) = out["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["function"]["index"] == 0
    assert isinstance(call["function"]["arguments"]["city"], str)
    assert out["message"]["content"] == ""


def test_collected_raw_generate_and_context() -> None:
    events = fixtures.sse_events("completions_stream.sse")
    tr = StreamTranslator(
        "m", Timings(start=1), clock=fake_clock(), chat=False, completions=True, collect=True
    )
    out = collected(tr, events)
    assert out["response"] == "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert "context" not in out
    ctx = StreamTranslator(
        "m", Timings(start=1), clock=fake_clock(), chat=False, context=True, collect=True
    )
    first = chat_chunk({"role": "assistant", "content": ""}, prompt_token_ids=[1, 2])
    token = chat_chunk({"content": "x"})
    token["choices"][0]["token_ids"] = [3]
    out = collected(ctx, [first, token, chat_chunk({}, "stop"), usage_chunk(2, 1)])
    assert out["context"] == [1, 2, 3] and out["response"] == "x"


def _as_a_client_reads(out: list[dict[str, Any]]) -> dict[str, Any]:
    """A stream's lines merged as Ollama's clients merge them: texts joined, tool calls and
    logprobs gathered, the last line's counts and reason."""
    last = dict(out[-1])
    key = "message" if "message" in last else "response"
    texts = [line["message"] if key == "message" else line for line in out]
    text = "".join(t.get("content" if key == "message" else "response", "") for t in texts)
    thinking = "".join(t.get("thinking", "") for t in texts)
    calls = [c for t in texts for c in t.get("tool_calls", [])]
    logprobs = [lp for line in out for lp in line.get("logprobs", [])]
    if key == "message":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        last["message"] = message
    else:
        last["response"] = text
        if thinking:
            last["thinking"] = thinking
    if logprobs:
        last["logprobs"] = logprobs
    return last


def _thinking_with_logprobs() -> list[dict[str, Any]]:
    content = fixtures.load("chat_logprobs.json")["choices"][0]["logprobs"]["content"]
    events = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"reasoning": "hmm, "}),
        chat_chunk({"reasoning": "yes"}),
        *(chat_chunk({"content": c["token"]}, logprobs={"content": [c]}) for c in content),
        chat_chunk({}, "stop"),
        usage_chunk(3, len(content)),
    ]
    for event in events:
        if "logprobs" in event:
            event["choices"][0]["logprobs"] = event.pop("logprobs")
    return events


@pytest.mark.parametrize(
    ("events", "chat", "completions"),
    [
        (fixtures.sse_events("chat_stream.sse"), True, False),
        (fixtures.sse_events("chat_stream_interval_logprobs.sse"), True, False),
        (fixtures.sse_events("chat_tool_named_stream.sse"), True, False),
        (fixtures.sse_events("think_chat_stream.sse"), True, False),
        (_thinking_with_logprobs(), True, False),
        (fixtures.sse_events("completions_stream.sse"), False, True),
        (fixtures.sse_events("think_chat_stream.sse"), False, False),
    ],
    ids=["chat", "interval-logprobs", "tool-call", "thinking", "thinking-logprobs", "raw", "gen"],
)
def test_a_stream_and_a_whole_answer_say_the_same(
    events: list[dict[str, Any]], chat: bool, completions: bool
) -> None:
    """One decoder, two sinks: what a client assembles from the lines of a stream is the one
    object a non-streaming request gets, for every kind of event vLLM sends."""

    def translator(collect: bool) -> StreamTranslator:
        return StreamTranslator(
            "m",
            Timings(start=1),
            clock=fake_clock(),
            chat=chat,
            completions=completions,
            collect=collect,
            context=not chat and not completions,
        )

    whole = collected(translator(True), events)
    streamed = _as_a_client_reads(run_stream(translator(False), events))
    assert all(line["done"] is False for line in run_stream(translator(False), events)[:-1])
    for out in (whole, streamed):
        for key in [k for k in out if k.endswith("_duration") or k == "created_at"]:
            del out[key]
    assert streamed == whole
    said = whole.get("message", whole)
    assert any(said.get(k) for k in ("content", "response", "thinking", "tool_calls"))


@pytest.mark.parametrize(
    ("name", "status", "needle"),
    [
        ("err_too_long.json", 400, "maximum context length is 512 tokens"),
        ("err_bad_param.json", 400, "temperature must be non-negative"),
        ("err_max_tokens_too_big.json", 400, "max_tokens=5000 cannot be greater"),
        ("err_bad_json.json", 400, "JSON decode error"),
    ],
)
def test_recorded_vllm_errors_keep_their_message(name: str, status: int, needle: str) -> None:
    err = t.upstream_error(400, fixtures.raw(name), "m")
    assert err.status == status
    assert needle in err.message


def test_unknown_model_from_vllm_is_ollamas_404() -> None:
    err = t.upstream_error(404, fixtures.raw("err_unknown_model.json"), "llama9")
    assert (err.status, err.message) == (404, "model 'llama9' not found")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b'{"error": "Unauthorized"}', 502),
        (500, b'{"object":"error","message":"engine dead","type":"x","code":500}', 500),
        (503, b'{"error":{"message":"busy","code":503}}', 503),
        (422, b"not json at all", 400),
    ],
)
def test_other_upstream_error_shapes(status: int, body: bytes, expected: int) -> None:
    err = t.upstream_error(status, body, "m")
    assert err.status == expected
    assert err.message


def test_load_and_unload_answers() -> None:
    assert load_response("m", chat=True, unload=False, now_ns=1)["done_reason"] == "load"
    out = load_response("m", chat=False, unload=True, now_ns=1)
    assert out["done_reason"] == "unload" and out["response"] == "" and out["done"] is True


def test_tool_arguments_keep_big_integers_and_survive_lone_surrogates() -> None:
    big = 5955212961625810519337140635668626
    calls = t.tool_calls_out(
        [{"id": "a", "function": {"name": "f", "arguments": f'{{"n": {big}, "s": "x\\ud83d"}}'}}],
        fake_clock(),
    )
    assert calls[0]["function"]["arguments"] == {"n": big, "s": "x\ufffd"}
    line = orjson.loads(dumps({"message": {"tool_calls": calls}}))
    assert line["message"]["tool_calls"][0]["function"]["arguments"]["s"] == "x\ufffd"
    assert str(big) in dumps(calls).decode()


def test_stream_events_with_lone_surrogates_are_read() -> None:
    event = loads_lenient(b'{"choices": [{"delta": {"content": "a\\udc00b"}}]}')
    assert event["choices"][0]["delta"]["content"] == "a\ufffdb"


def test_images_to_a_text_model_and_tools_without_a_parser_say_so() -> None:
    body = b'{"error":{"message":"tiny-llm is not a multimodal model","type":"BadRequestError","param":null,"code":400}}'
    err = t.upstream_error(400, body, "llama3.2")
    assert (err.status, err.message) == (
        400,
        '"llama3.2" does not support images: vLLM serves it as a text model',
    )
    body = b'{"error":{"message":"\\"auto\\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set","code":400}}'
    err = t.upstream_error(400, body, "m")
    assert err.status == 400 and err.message.startswith('"m" does not support tools')


@pytest.mark.parametrize(
    ("served", "root", "expected"),
    [
        ("all-minilm", "/srv/vllm-ollama-adapter/.cache/models/all-minilm", "bert"),
        ("smollm2:135m", "/home/me/ollama-stuff/smollm2-135m", "llama"),
        ("qwen2.5:7b", "Qwen/Qwen2.5-7B-Instruct", "qwen2"),
        ("m", "/models/nomic-embed-text-v1.5", "nomic-bert"),
    ],
)
def test_family_comes_from_the_names_not_the_folders_above_the_model(
    served: str, root: str, expected: str
) -> None:
    """A checkout named vllm-ollama-adapter made every model a llama."""
    assert family(ModelEntry(f"{served}", served, root=root)) == expected
