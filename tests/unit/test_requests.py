"""Ollama chat and generate requests to vLLM request bodies."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from adapter.backends.vllm import to_openai as t
from adapter.backends.vllm import truncate
from adapter.errors import OllamaError
from adapter.ollama_api.modelfile import Derived
from adapter.ollama_api.models import ModelEntry
from adapter.ollama_api.options import OLLAMA_SAMPLING
from adapter.ollama_api.requests import ChatRequest, GenerateRequest, Message
from tests.support.clock import fake_clock


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    return t.chat_messages(messages, fake_clock())


def model(
    served: str = "m", max_model_len: int | None = None, caps: tuple[str, ...] = ("completion",)
) -> ModelEntry:
    """A served model as the router hands it out."""
    return ModelEntry(f"{served}:latest", served, max_model_len=max_model_len, capabilities=caps)


#: What a model that reads images and fills in the middle can do; and a thinking one.
CAPS = ("completion", "insert", "vision")
THINKS = ("completion", "thinking")

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()


def messages(*items: dict[str, Any]) -> list[Message]:
    return [Message.model_validate(i) for i in items]


def test_chat_body_streaming_asks_for_usage_and_keeps_served_name() -> None:
    req = ChatRequest.model_validate(
        {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "tools": []}
    )
    body = t.chat_body(req, model("tiny-llm", 512), stream=True, clock=fake_clock())
    assert body == {
        "model": "tiny-llm",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_chat_body_without_stream_sends_no_stream_options() -> None:
    req = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "format": "json",
            "think": False,
            "options": {"temperature": 0},
        }
    )
    body = t.chat_body(req, model("m", None, THINKS), stream=False, clock=fake_clock())
    assert "stream" not in body and "stream_options" not in body
    assert body["response_format"] == {"type": "json_object"}
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["temperature"] == 0.0


def test_roles_are_lowercased_and_images_become_data_uri_parts() -> None:
    out = chat_messages(
        messages({"role": "USER", "content": "what is this?", "images": [PNG, JPEG]})
    )
    assert out == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}},
                {"type": "text", "text": "what is this?"},
            ],
        }
    ]


def test_invalid_base64_image_is_a_400() -> None:
    with pytest.raises(OllamaError) as err:
        chat_messages(messages({"role": "user", "content": "x", "images": ["not base64!!"]}))
    assert err.value.status == 400


def test_tool_round_trip_pairs_results_with_calls_by_position() -> None:
    out = chat_messages(
        messages(
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
                ],
            },
            {"role": "tool", "content": "12C"},
            {"role": "tool", "content": "10:00"},
        )
    )
    assistant = out[1]
    assert assistant["content"] is None
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert all(len(i) == 9 and i.isalnum() for i in ids)
    assert [orjson.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]] == [
        {"city": "Paris"},
        {"tz": "CET"},
    ]
    assert out[2] == {
        "role": "tool",
        "content": "12C",
        "tool_call_id": ids[0],
        "name": "get_weather",
    }
    assert out[3] == {
        "role": "tool",
        "content": "10:00",
        "tool_call_id": ids[1],
        "name": "get_time",
    }


def test_tool_results_named_by_tool_name_or_id_find_their_call() -> None:
    out = chat_messages(
        messages(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "a1", "function": {"name": "f", "arguments": {}}},
                    {"id": "b2", "function": {"name": "g", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "G", "tool_name": "g"},
            {"role": "tool", "content": "F", "tool_call_id": "a1"},
        )
    )
    assert out[1]["tool_call_id"] == "b2" and out[1]["name"] == "g"
    assert out[2]["tool_call_id"] == "a1" and out[2]["name"] == "f"


def test_assistant_thinking_is_replayed_as_reasoning() -> None:
    out = chat_messages(messages({"role": "assistant", "content": "4", "thinking": "2+2"}))
    assert out == [{"role": "assistant", "content": "4", "reasoning": "2+2"}]


def test_tools_empty_list_means_none_and_missing_parameters_are_filled() -> None:
    assert t.tools_param([]) is None
    req = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "now", "description": "time"}}],
        }
    )
    with pytest.raises(OllamaError, match=r'^"m" does not support tools$'):
        t.chat_body(req, model("m", None), stream=False, clock=fake_clock())
    tools = ("completion", "tools")
    body = t.chat_body(req, model("m", None, tools), stream=False, clock=fake_clock())
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "now",
                "description": "time",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]


def test_generate_goes_through_the_chat_template_with_system_and_images() -> None:
    req = GenerateRequest.model_validate(
        {"model": "m", "prompt": "describe", "system": "be brief", "images": [PNG]}
    )
    path, body = t.generate_body(req, model("served", 512, CAPS), stream=False)
    assert path == "/v1/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["messages"][1]["content"][-1] == {"type": "text", "text": "describe"}
    assert body["return_token_ids"] is True


def test_raw_generate_uses_completions_with_an_explicit_max_tokens() -> None:
    req = GenerateRequest.model_validate({"model": "m", "prompt": "<s>hi", "raw": True})
    path, body = t.generate_body(req, model("served", 512, CAPS), stream=True)
    assert path == "/v1/completions"
    assert body == {
        "model": "served",
        "prompt": "<s>hi",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 512,
    }


def test_suffix_uses_completions() -> None:
    req = GenerateRequest.model_validate({"model": "m", "prompt": "def f(", "suffix": "return x"})
    path, body = t.generate_body(req, model("s", None, CAPS), stream=False)
    assert path == "/v1/completions"
    assert body["suffix"] == "return x"


def test_raw_with_system_is_rejected_like_ollama() -> None:
    req = GenerateRequest.model_validate({"model": "m", "prompt": "x", "raw": True, "system": "s"})
    with pytest.raises(OllamaError) as err:
        t.generate_body(req, model("s", None, CAPS), stream=False)
    assert err.value.status == 400
    assert err.value.message == "raw mode does not support template, system, or context"


def test_a_thinking_model_thinks_unless_told_not_to_and_others_refuse_it() -> None:
    """Ollama's rule: think unset on a thinking model means think; think on any other model is
    a 400; think false there is fine and sends nothing."""
    thinker, plain = model("q", None, THINKS), model("p")

    def body(think: Any, entry: ModelEntry) -> dict[str, Any]:
        req = ChatRequest.model_validate(
            {"model": "name", "messages": [{"role": "user", "content": "x"}], "think": think}
        )
        return t.chat_body(req, entry, stream=False, clock=fake_clock())

    assert body(None, thinker)["chat_template_kwargs"] == {"enable_thinking": True}
    assert body(False, thinker)["chat_template_kwargs"] == {"enable_thinking": False}
    assert body("max", thinker)["reasoning_effort"] == "max"
    assert "chat_template_kwargs" not in body(None, plain)
    assert "chat_template_kwargs" not in body(False, plain)
    for think in (True, "high"):
        with pytest.raises(OllamaError) as err:
            body(think, plain)
        assert (err.value.status, err.value.message) == (400, '"name" does not support thinking')


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"prompt": "def f(", "suffix": "return x"}, "insert"),
    ],
)
def test_generate_asks_only_what_the_model_can_do(fields: dict[str, Any], missing: str) -> None:
    req = GenerateRequest.model_validate({"model": "name", **fields})
    with pytest.raises(OllamaError) as err:
        t.generate_body(req, model("p"), stream=False)
    assert (err.value.status, err.value.message) == (400, f'"name" does not support {missing}')
    t.generate_body(req, model("p", None, CAPS), stream=False)  # the model that can


def test_images_go_to_a_vision_model_and_are_tagged_for_any_other() -> None:
    req = ChatRequest.model_validate(
        {"model": "name", "messages": [{"role": "user", "content": "x", "images": [PNG]}]}
    )
    body = t.chat_body(req, model("p"), stream=False, clock=fake_clock())
    assert body["messages"] == [{"role": "user", "content": "[img-0]x"}]
    body = t.chat_body(req, model("p", None, CAPS), stream=False, clock=fake_clock())
    assert body["messages"][0]["content"][0]["type"] == "image_url"
    gen = GenerateRequest.model_validate({"model": "name", "prompt": "x", "images": [PNG, PNG]})
    _, body = t.generate_body(gen, model("p"), stream=False)
    assert body["messages"] == [{"role": "user", "content": "[img-0][img-1]x"}]


def test_ollamas_sampling_defaults_fill_what_the_request_and_the_model_leave_unset() -> None:
    req = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "options": {"temperature": 0, "top_k": None},
        }
    )
    entry = model("m", 512)
    derived = ModelEntry(
        "d:latest",
        "m",
        max_model_len=512,
        derived=Derived("d", "m", options={"top_p": 0.5, "num_predict": 7}),
    )
    plain = t.chat_body(req, entry, stream=False, clock=fake_clock())
    assert not {"top_k", "top_p", "min_p", "repetition_penalty"} & plain.keys()
    body = t.chat_body(req, entry, stream=False, clock=fake_clock(), defaults=OLLAMA_SAMPLING)
    assert {k: body[k] for k in ("temperature", "top_k", "top_p", "min_p")} == {
        "temperature": 0.0,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.0,
    }
    assert body["repetition_penalty"] == 1.0 and "max_tokens" not in body
    body = t.chat_body(req, derived, stream=False, clock=fake_clock(), defaults=OLLAMA_SAMPLING)
    assert (body["top_p"], body["max_tokens"], body["temperature"]) == (0.5, 7, 0.0)
    gen = GenerateRequest.model_validate({"model": "m", "prompt": "x", "raw": True})
    _, body = t.generate_body(gen, entry, stream=False, defaults=OLLAMA_SAMPLING)
    assert (body["temperature"], body["top_k"]) == (0.8, 40)


def test_a_prompt_longer_than_the_context_is_cut_as_ollamas_runner_cuts_it() -> None:
    tokens = list(range(1000))
    assert truncate.cut_prompt(tokens[:511], 512, 4) == tokens[:511]  # fits: untouched
    cut = truncate.cut_prompt(tokens, 512, 4)
    # num_keep + 1 first tokens, then the newest, to 512 - (512 - 5) // 2 = 259 in all
    assert cut == [0, 1, 2, 3, 4, *range(1000 - 254, 1000)] and len(cut) == 259
    assert (
        truncate.cut_prompt(tokens, 512, 1000)[:511] == tokens[:511]
    )  # keep clamped to the context
    assert (
        truncate.num_keep(None),
        truncate.num_keep({"num_keep": 9}),
        truncate.num_keep({"num_keep": -1}),
    ) == (
        4,
        9,
        4,
    )
    chat = {"model": "m", "messages": [], "tools": [], "temperature": 0.8, "max_tokens": 5000}
    body = truncate.completions_over_tokens(chat, cut, 512)
    assert body == {"model": "m", "prompt": cut, "temperature": 0.8, "max_tokens": 512 - 259}


def test_collected_in_batches_only_for_a_whole_answer_without_parsers_in_the_way() -> None:
    ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    whole = ChatRequest.model_validate({**ask, "stream": False})
    assert t.collected_in_batches(whole, model(), 64) == {"stream_interval": 64}
    generate = GenerateRequest.model_validate({"model": "m", "prompt": "x", "stream": False})
    assert t.collected_in_batches(generate, model(), 16) == {"stream_interval": 16}
    # Streams (stream true, or unset as Ollama's default) go token by token, as Ollama's do.
    assert t.collected_in_batches(ChatRequest.model_validate(ask), model(), 64) == {}
    streamed = ChatRequest.model_validate({**ask, "stream": True})
    assert t.collected_in_batches(streamed, model(), 64) == {}
    # 1 is vLLM's own default: nothing is sent.
    assert t.collected_in_batches(whole, model(), 1) == {}
    # Tool and reasoning parsers see one token a chunk, as they were written for.
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with_tools = ChatRequest.model_validate({**ask, "stream": False, "tools": [tool]})
    assert t.collected_in_batches(with_tools, model(caps=("completion", "tools")), 64) == {}
    assert t.collected_in_batches(whole, model(caps=THINKS), 64) == {}
    no_tools = ChatRequest.model_validate({**ask, "stream": False, "tools": []})
    assert t.collected_in_batches(no_tools, model(), 64) == {"stream_interval": 64}
    # The body builders put it where vLLM reads it; a history cut to fit keeps it.
    body = t.chat_body(whole, model(), stream=True, clock=fake_clock(), interval=64)
    assert body["stream_interval"] == 64
    assert "stream_interval" not in t.chat_body(whole, model(), stream=True, clock=fake_clock())
    _, body = t.generate_body(generate, model(), stream=True, interval=16)
    assert body["stream_interval"] == 16
    cut = truncate.completions_over_tokens(body, [1, 2, 3], 512)
    assert cut["stream_interval"] == 16


# --------------------------------------------------------------------------- conversation key


def test_a_conversation_keeps_its_key_across_turns_and_others_get_their_own() -> None:
    """The key is made from the opening every turn resends, so all of a conversation's
    turns name it the same (and reach the same replica behind vLLM's router)."""
    system = Message(role="system", content="You take notes.")
    first = Message(role="user", content="The client owes 300 pounds.")
    turn1 = [system, first]
    turn3 = [
        system,
        first,
        Message(role="assistant", content="- owes 300 pounds"),
        Message(role="user", content="Add council tax."),
        Message(role="assistant", content="- council tax"),
        Message(role="user", content="Summarise."),
    ]
    key = t.conversation_key(turn1)
    assert t.conversation_key(turn3) == key and len(key) == 16
    other_opening = [system, Message(role="user", content="The client owes 400 pounds.")]
    other_system = [Message(role="system", content="You translate."), first]
    image = [system, Message(role="user", content=first.content, images=["iVBORw0KGgo="])]
    keys = {key, *(t.conversation_key(m) for m in (other_opening, other_system, image, [first]))}
    assert len(keys) == 5
