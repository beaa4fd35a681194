"""The shapes of Ollama's answers (as ``TypedDict``s) and the pieces every backend writes.

Hot paths build these as plain dicts or prebuilt bytes; the types say which keys they carry.
"""

from __future__ import annotations

import time
from typing import Any, Literal, NotRequired, TypedDict, overload

from adapter.jsonutil import dumps


class ToolCallFunctionOut(TypedDict):
    index: int
    name: str
    arguments: dict[str, Any]


class ToolCallOut(TypedDict):
    id: str
    function: ToolCallFunctionOut


class MessageOut(TypedDict):
    role: Literal["assistant"]
    content: str
    thinking: NotRequired[str]
    tool_calls: NotRequired[list[ToolCallOut]]


class Durations(TypedDict):
    """The counts and durations (nanoseconds) of a finished answer."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


class _Answer(TypedDict, total=False):
    """What chat and generate answers share (as ollama-python's ``BaseGenerateResponse``):
    the counts and durations come on the last line only."""

    model: str
    created_at: str
    done: bool
    done_reason: str
    logprobs: list[dict[str, Any]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


class ChatResponse(_Answer, total=False):
    """One ``/api/chat`` answer, or one line of its stream."""

    message: MessageOut


class GenerateResponse(_Answer, total=False):
    """One ``/api/generate`` answer, or one line of its stream."""

    response: str
    thinking: str
    context: list[int]


class EmbedResponse(TypedDict, total=False):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class Progress(TypedDict, total=False):
    """A line of ``/api/pull``, ``/api/create``, ``/api/push``."""

    status: str
    digest: str
    total: int
    completed: int


class ErrorBody(TypedDict):
    error: str


# --------------------------------------------------------------------------- created_at

_ts_cache: tuple[int, bytes] = (-1, b"")


def created_at_bytes(ns: int) -> bytes:
    """Ollama's ``created_at`` for the wall time ``ns``: RFC 3339 in UTC, nanoseconds with
    trailing zeros trimmed; the seconds part is formatted once per second."""
    global _ts_cache
    sec, frac = divmod(ns, 1_000_000_000)
    if _ts_cache[0] != sec:
        _ts_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode())
    head = _ts_cache[1]
    if frac == 0:
        return head + b"Z"
    return head + b"." + (b"%09d" % frac).rstrip(b"0") + b"Z"


def created_at(ns: int) -> str:
    """``created_at`` as a string."""
    return created_at_bytes(ns).decode()


# --------------------------------------------------------------------------- answers


@overload
def load_response(
    model: str, *, chat: Literal[True], unload: bool, now_ns: int
) -> ChatResponse: ...
@overload
def load_response(
    model: str, *, chat: Literal[False], unload: bool, now_ns: int
) -> GenerateResponse: ...
def load_response(
    model: str, *, chat: bool, unload: bool, now_ns: int
) -> ChatResponse | GenerateResponse:
    """The answer to an empty chat or generate: the model is 'loaded' (or 'unloaded')."""
    reason = "unload" if unload else "load"
    if chat:
        message: MessageOut = {"role": "assistant", "content": ""}
        return {
            "model": model,
            "created_at": created_at(now_ns),
            "message": message,
            "done": True,
            "done_reason": reason,
        }
    return {
        "model": model,
        "created_at": created_at(now_ns),
        "response": "",
        "done": True,
        "done_reason": reason,
    }


def error_body(message: str) -> ErrorBody:
    return {"error": message}


def error_line(message: str) -> bytes:
    """The last NDJSON line of a stream that failed after it started."""
    return dumps(error_body(message)) + b"\n"


def progress_lines(*statuses: str) -> bytes:
    """NDJSON progress lines, as pull and create stream them."""
    return b"".join(dumps(Progress(status=s)) + b"\n" for s in statuses)
