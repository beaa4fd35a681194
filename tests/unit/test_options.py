"""Ollama request fields to vLLM request fields: options, format, think, logprobs, keep_alive."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.backends.vllm import to_openai as t
from adapter.errors import OllamaError
from adapter.ollama_api.durations import keep_alive_seconds
from adapter.ollama_api.modelfile import Derived, openai_defaults
from adapter.ollama_api.options import OPENAI_SAMPLING, sampling_params
from adapter.ollama_api.responses import created_at


def test_every_mappable_option_reaches_vllm_under_its_own_name() -> None:
    options = {
        "num_predict": 42,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "seed": 7,
        "stop": ["\n\n", "END"],
        "repeat_penalty": 1.1,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
    }
    assert sampling_params(options) == {
        "max_tokens": 42,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "seed": 7,
        "stop": ["\n\n", "END"],
        "repetition_penalty": 1.1,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
    }


def test_unknown_removed_and_null_options_are_ignored() -> None:
    options: dict[str, Any] = {
        "num_ctx": 8192,
        "mirostat": 2,
        "tfs_z": 1.0,
        "num_gpu": 1,
        "typical_p": 0.7,
        "repeat_last_n": 64,
        "temperature": None,
        "stop": None,
        "invented_key": "x",
    }
    assert sampling_params(options) == {}
    assert sampling_params(None) == {}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"top_k": 0}, {"top_k": -1}),
        ({"seed": -1}, {}),
        ({"stop": "###"}, {"stop": ["###"]}),
        ({"stop": []}, {}),
        ({"num_predict": -1}, {}),
        ({"num_predict": -2}, {}),
        ({"num_predict": 3.0}, {"max_tokens": 3}),
        ({"temperature": 1}, {"temperature": 1.0}),
    ],
)
def test_option_edge_values(options: dict[str, Any], expected: dict[str, Any]) -> None:
    assert sampling_params(options) == expected


def test_num_predict_is_clamped_to_the_context_and_top_level_value_is_used() -> None:
    assert sampling_params({"num_predict": 5000}, max_model_len=512) == {"max_tokens": 512}
    assert sampling_params(None, num_predict=9) == {"max_tokens": 9}
    assert sampling_params({"num_predict": 4}, num_predict=9) == {"max_tokens": 4}


def test_completions_without_a_limit_ask_for_the_whole_context() -> None:
    assert sampling_params(None, max_model_len=512, completions=True) == {"max_tokens": 512}
    assert sampling_params({"num_predict": 8}, max_model_len=512, completions=True) == {
        "max_tokens": 8
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": "hot"}, 'option "temperature" must be of type number'),
        ({"temperature": True}, 'option "temperature" must be of type number'),
        ({"num_predict": "10"}, 'option "num_predict" must be of type integer'),
        ({"seed": 1.5}, 'option "seed" must be of type integer'),
        ({"stop": 3}, 'option "stop" must be of type array'),
        ({"stop": ["a", 1]}, 'option "stop" must be of type array'),
    ],
)
def test_wrong_option_types_are_rejected_like_ollama(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OllamaError) as err:
        sampling_params(options)
    assert err.value.status == 400
    assert err.value.message == message


def test_format_maps_to_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert t.response_format(None) is None
    assert t.response_format("") is None
    assert t.response_format("json") == {"type": "json_object"}
    expected = {"type": "json_schema", "json_schema": {"name": "schema", "schema": schema}}
    assert t.response_format(schema) == expected
    assert (
        t.response_format(
            '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}'
        )
        == expected
    )


def test_bad_format_is_rejected() -> None:
    with pytest.raises(OllamaError) as err:
        t.response_format("yaml")
    assert err.value.status == 400
    assert 'invalid format: "yaml"' in err.value.message


def test_think_maps_to_the_chat_template_switch() -> None:
    assert t.think_params(None) == {}
    assert t.think_params(True) == {"chat_template_kwargs": {"enable_thinking": True}}
    assert t.think_params(False) == {"chat_template_kwargs": {"enable_thinking": False}}
    assert t.think_params("high") == {
        "chat_template_kwargs": {"enable_thinking": True},
        "reasoning_effort": "high",
    }


@pytest.mark.parametrize("value", [True, False, None, "high", "medium", "low", "max"])
def test_think_takes_a_bool_or_a_level(value: Any) -> None:
    assert t.think_value(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("extreme", 'invalid think value: "extreme" (must be "high", "medium", "low", "max", '
         "true, or false)"),
        ("true", 'invalid think value: "true" (must be "high", "medium", "low", "max", '
         "true, or false)"),
        ("High", 'invalid think value: "High" (must be "high", "medium", "low", "max", '
         "true, or false)"),
        (1, 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'),
    ],
)  # fmt: skip
def test_any_other_think_is_ollamas_400(value: Any, message: str) -> None:
    with pytest.raises(OllamaError) as err:
        t.think_value(value)
    assert (err.value.status, err.value.message) == (400, message)


def test_logprobs_fields_and_range() -> None:
    assert t.logprob_params(None, None) == {}
    assert t.logprob_params(True, None) == {"logprobs": True}
    assert t.logprob_params(True, 3) == {"logprobs": True, "top_logprobs": 3}
    assert t.logprob_params(False, 2) == {"logprobs": True, "top_logprobs": 2}
    for bad in (-1, 21):
        with pytest.raises(OllamaError, match="top_logprobs must be between 0 and 20"):
            t.logprob_params(True, bad)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (0, 0.0),
        (0.0, 0.0),
        (300, 300.0),
        (-1, -1.0),
        ("-1", -1.0),
        ("0", 0.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("-1s", -1.0),
        ("250ms", 0.25),
        ("", None),
    ],
)
def test_keep_alive_forms(value: float | str | None, seconds: float | None) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "m5", "1x", "--1s"])
def test_bad_keep_alive_is_rejected(value: str) -> None:
    with pytest.raises(OllamaError) as err:
        keep_alive_seconds(value)
    assert err.value.status == 400
    assert err.value.message == f'time: invalid duration "{value}"'


def test_created_at_is_rfc3339_utc_with_trimmed_nanoseconds() -> None:
    assert created_at(1_700_000_000_123_456_000) == "2023-11-14T22:13:20.123456Z"
    assert created_at(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert created_at(1_700_000_000_000_000_001) == "2023-11-14T22:13:20.000000001Z"


def test_a_derived_model_fills_an_openai_body_under_what_it_sets() -> None:
    """``/v1`` bodies: the body's own fields win; a derived model's options over Ollama's
    sampling defaults fill what it leaves unset or null; its system prompt leads a chat."""
    derived = Derived(
        "notes", "tiny", system="Be brief.", options={"temperature": 0.2, "num_predict": 5000}
    )
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "top_p": 0.5,
        "temperature": None,
    }
    openai_defaults(body, derived, max_model_len=512, sampling=OPENAI_SAMPLING)
    assert body["temperature"] == 0.2 and body["top_p"] == 0.5
    assert body["top_k"] == 40 and body["max_tokens"] == 512
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    plain: dict[str, Any] = {"model": "m", "prompt": "x"}
    openai_defaults(plain, None)
    assert plain == {"model": "m", "prompt": "x"}
