"""vLLM's OpenAI-compatible answers as Ollama's. Pure: no I/O; the wall time and the ids come
from the caller (``now_ns``, a ``Clock``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapter.clock import Clock
from adapter.errors import ContextOverflow, OllamaError
from adapter.jsonutil import loads_lenient
from adapter.ollama_api.responses import (
    Durations,
    ToolCallOut,
)
from adapter.openai_api import error_message

#: Ollama's words for a prompt longer than the context (its runner's 400).
INPUT_TOO_LONG = "the input length exceeds the context length"


def done_reason(finish_reason: str | None) -> str:
    """vLLM ``finish_reason`` to Ollama ``done_reason`` (Ollama knows only stop and length)."""
    return "length" if finish_reason == "length" else "stop"


@dataclass(slots=True)
class Timings:
    """Monotonic nanosecond marks taken by the adapter for Ollama's duration fields."""

    start: int
    sent: int = 0
    first: int = 0
    end: int = 0

    def metrics(self, usage: Mapping[str, Any] | None) -> Durations:
        """Ollama's counts and durations; ``end`` must be set."""
        end = self.end
        sent = self.sent or self.start
        first = self.first or end
        usage = usage or {}
        return {
            "total_duration": max(end - self.start, 1),
            "load_duration": max(sent - self.start, 1),
            "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
            "prompt_eval_duration": max(first - sent, 1),
            "eval_count": int(usage.get("completion_tokens") or 0),
            "eval_duration": max(end - first, 1),
        }


def tool_calls_out(calls: Sequence[Mapping[str, Any]], clock: Clock) -> list[ToolCallOut]:
    """OpenAI tool calls (string arguments) to Ollama's (object arguments, ``function.index``)."""
    out: list[ToolCallOut] = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        raw = fn.get("arguments")
        arguments: Any
        if isinstance(raw, str):
            try:
                arguments = loads_lenient(raw, exact=True) if raw.strip() else {}
            except ValueError:
                arguments = {"arguments": raw}
        else:
            arguments = raw or {}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        out.append(
            {
                "id": call.get("id") or clock.ollama_call_id(),
                "function": {"index": i, "name": fn.get("name") or "", "arguments": arguments},
            }
        )
    return out


def logprobs_out(logprobs: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """OpenAI chat ``logprobs.content`` to Ollama's list of ``{token, logprob, top_logprobs}``."""
    if not logprobs:
        return None
    content = logprobs.get("content")
    if not content:
        return None
    out = []
    for item in content:
        entry: dict[str, Any] = {"token": item.get("token", ""), "logprob": item.get("logprob")}
        if item.get("bytes") is not None:
            entry["bytes"] = item["bytes"]
        tops = item.get("top_logprobs")
        if tops:
            entry["top_logprobs"] = [
                {"token": t.get("token", ""), "logprob": t.get("logprob"), "bytes": t.get("bytes")}
                for t in tops
            ]
        out.append(entry)
    return out


def completion_logprobs_out(logprobs: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """Legacy completions ``logprobs`` (parallel lists) to Ollama's list."""
    if not logprobs or not logprobs.get("tokens"):
        return None
    tokens = logprobs["tokens"]
    values = logprobs.get("token_logprobs") or [None] * len(tokens)
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    out = []
    for token, value, top in zip(tokens, values, tops, strict=False):
        entry: dict[str, Any] = {"token": token, "logprob": value}
        if top:
            entry["top_logprobs"] = [{"token": t, "logprob": v} for t, v in top.items()]
        out.append(entry)
    return out


def upstream_error(status: int, body: bytes, model: str | None) -> OllamaError:
    """Map a vLLM error answer to the error Ollama would give."""
    message = error_message(body)
    if status == 400 and "maximum context length" in message:
        return ContextOverflow(400, f"{INPUT_TOO_LONG}: {message}")
    if status == 404 and model is not None and "does not exist" in message:
        return OllamaError(404, f"model '{model}' not found")
    if status == 400 and model is not None and "is not a multimodal model" in message:
        return OllamaError(
            400, f'"{model}" does not support images: vLLM serves it as a text model'
        )
    if status == 400 and model is not None and "tool choice requires" in message:
        return OllamaError(400, f'"{model}" does not support tools: {message}')
    if status in (401, 403):
        return OllamaError(
            502, f"vLLM refused the adapter's credentials (check VLLM_API_KEY): {message}"
        )
    if 400 <= status < 500:
        return OllamaError(status if status in (400, 404, 413, 429) else 400, message)
    if status == 503:
        return OllamaError(503, f"vLLM is unavailable: {message}")
    return OllamaError(500, f"vLLM error: {message}")


def normalized(vector: Sequence[float], dimensions: int | None = None) -> list[float]:
    """Cut to ``dimensions`` (when given), then scale to unit length, as Ollama's embed does."""
    values = list(vector[:dimensions] if dimensions else vector)
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values] if norm > 0 else values


def embeddings_out(resp: Mapping[str, Any]) -> list[list[float]]:
    """The vectors of an OpenAI embeddings answer, in input order."""
    data = sorted(resp.get("data") or [], key=lambda d: d.get("index", 0))
    return [list(d.get("embedding") or []) for d in data]
