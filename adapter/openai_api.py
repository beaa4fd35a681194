"""The few OpenAI- and Anthropic-shaped things the adapter writes itself: error bodies and the
error event that ends a failed stream. Everything else on those routes is vLLM's own."""

from __future__ import annotations

from typing import Any

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
