"""Ollama's generation ``options`` as OpenAI sampling fields, and the defaults Ollama samples
with. Pure; any layer that writes an OpenAI body from Ollama's options uses this."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapter.errors import OllamaError

_FLOAT_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "min_p": "min_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repetition_penalty",
}
_INT_OPTIONS = frozenset({"num_predict", "top_k", "seed"})

#: Ollama's sampling defaults (``api.DefaultOptions()``), sent for every option that neither the
#: request nor a derived model sets, so a model samples as it did under Ollama instead of at
#: vLLM's defaults (temperature 1.0, top_p 1.0, or the model's generation_config.json).
#: ``ADAPTER_SAMPLING_DEFAULTS=model`` sends none of them.
OLLAMA_SAMPLING: Mapping[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
# Every other key Ollama knows (num_ctx, num_gpu, mirostat, typical_p, ...) has no vLLM
# per-request equivalent; like Ollama with unknown keys, the adapter accepts and ignores them.


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OllamaError(400, f'option "{key}" must be of type number')
    return float(value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise OllamaError(400, f'option "{key}" must be of type integer')
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise OllamaError(400, f'option "{key}" must be of type integer')
    return value


def _stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise OllamaError(400, 'option "stop" must be of type array')


def sampling_params(
    options: Mapping[str, Any] | None,
    *,
    num_predict: int | None = None,
    max_model_len: int | None = None,
    completions: bool = False,
) -> dict[str, Any]:
    """Map Ollama ``options`` to vLLM sampling fields, forwarding only what the client set.

    ``num_predict`` is the top-level value some clients send; inside ``options`` wins.
    The completions endpoint defaults ``max_tokens`` to 16, so for it an unbounded request
    asks for the whole context (vLLM clamps prompt + output to ``max_model_len``).
    """
    out: dict[str, Any] = {}
    predict = num_predict
    for key, value in (options or {}).items():
        if value is None:
            continue
        target = _FLOAT_OPTIONS.get(key)
        if target is not None:
            out[target] = _number(key, value)
        elif key == "num_predict":
            predict = _integer(key, value)
        elif key == "top_k":
            top_k = _integer(key, value)
            out["top_k"] = top_k if top_k > 0 else -1
        elif key == "seed":
            seed = _integer(key, value)
            if seed >= 0:
                out["seed"] = seed
        elif key == "stop":
            stops = _stop_list(value)
            if stops:
                out["stop"] = stops
    if predict is not None and predict > 0:
        out["max_tokens"] = min(predict, max_model_len) if max_model_len else predict
    elif completions and max_model_len:
        out["max_tokens"] = max_model_len
    return out


#: What Ollama's OpenAI layer samples with where a ``/v1`` request says nothing
#: (``openai/openai.go``: temperature and top_p 1.0 there, the rest ``api.DefaultOptions()``).
OPENAI_SAMPLING: Mapping[str, Any] = {**OLLAMA_SAMPLING, "temperature": 1.0, "top_p": 1.0}
