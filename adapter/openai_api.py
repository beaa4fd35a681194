"""The few OpenAI-shaped things the adapter writes itself (error bodies, the event that ends a
failed stream) and reads (the message in any error body). The rest of ``/v1`` is vLLM's own."""

from __future__ import annotations

from typing import Any

import orjson

from adapter.framing import Framing
from adapter.jsonutil import dumps

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error body."""
    kind = _OPENAI_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def sse_error(message: str) -> bytes:
    """An OpenAI stream's error event and end marker, as vLLM itself ends a failed stream."""
    err = {"error": {"message": message, "type": "BadGateway", "param": None, "code": 502}}
    return b"data: " + dumps(err) + b"\n\ndata: [DONE]\n\n"


def error_message(body: bytes) -> str:
    """The readable message inside any error body: OpenAI's and Anthropic's (nested), FastAPI's
    (``detail``), a flat one, plain text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip() or "empty response"
    return error_message_of(data)


def is_openai_error(body: bytes) -> bool:
    """Whether an error body is already OpenAI's ``{"error": {"message": ...}}``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    err = data.get("error") if isinstance(data, dict) else None
    return isinstance(err, dict) and isinstance(err.get("message"), str)


def error_message_of(data: Any) -> str:
    """The message of a decoded error object."""
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            return err
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if isinstance(msg, str):
                return msg
            if msg is not None:
                return orjson.dumps(msg).decode()
    return orjson.dumps(data).decode()


#: OpenAI's streams: SSE events, ended by an error event and ``[DONE]`` when they break.
SSE = Framing(b"\n\n", sse_error)
