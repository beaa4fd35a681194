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


#: Responses-API tools that need ollama.com (Ollama 0.32.10 runs ``web_search`` through its
#: cloud): dropped, so the model is never offered a tool nobody can run here.
CLOUD_TOOLS = frozenset({"web_search", "web_search_preview"})


def responses_tools(tools: list[Any]) -> list[Any]:
    """A Responses-API ``tools`` list as Ollama (0.32.7) hands it to a model: a ``namespace``
    declaration becomes its member functions, each named ``<namespace>.<name>``; the cloud's
    web search is left out; every other tool is kept as it came."""
    out: list[Any] = []
    for tool in tools:
        if not isinstance(tool, dict):
            out.append(tool)
        elif tool.get("type") in CLOUD_TOOLS:
            continue
        elif tool.get("type") == "namespace":
            prefix = f"{tool.get('name')}." if tool.get("name") else ""
            for member in responses_tools(list(tool.get("tools") or ())):
                name = member.get("name") if isinstance(member, dict) else None
                if isinstance(name, str) and prefix and not name.startswith(prefix):
                    member = {**member, "name": prefix + name}
                out.append(member)
        else:
            out.append(tool)
    return out
