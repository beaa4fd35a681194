"""The Anthropic-shaped things the adapter writes itself: error bodies and the error event that
ends a failed stream. The rest of ``/v1/messages`` is vLLM's (or the Vision Ollama's) own."""

from __future__ import annotations

from typing import Any

from adapter.framing import Framing
from adapter.jsonutil import dumps

#: Anthropic's error types by status (as Ollama maps them, and 413 as Anthropic names it).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error body: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    return {"type": "error", "error": {"type": _TYPES.get(status, "api_error"), "message": message}}


def sse_error(message: str) -> bytes:
    """The ``error`` event that ends an Anthropic stream that failed after it started."""
    return b"event: error\ndata: " + dumps(anthropic_error(500, message)) + b"\n\n"


#: Anthropic's streams: SSE events, ended by an ``error`` event when they break.
SSE = Framing(b"\n\n", sse_error)
