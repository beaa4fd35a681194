"""Helpers every endpoint module uses: body parsing, validation, state, passthrough."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from adapter.api.streaming import (
    ClientDisconnected,
    NDJSONStream,
    cancel_on_disconnect,
    json_response,
)
from adapter.backends.base import ModelEntry
from adapter.errors import OllamaError
from adapter.state import AppState

M = TypeVar("M", bound=BaseModel)


def state_of(request: Request) -> AppState:
    """The app's state, created by the lifespan."""
    state: AppState = request.app.state.adapter
    return state


async def read_body(request: Request) -> tuple[bytes, dict[str, Any]]:
    """The body bytes and their JSON object, whatever the Content-Type (``curl -d`` sends a
    form type). Read straight from ``receive``: nothing else reads the body."""
    message = await request.receive()
    if message["type"] != "http.request":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        parts = [body]  # large bodies (images) come in pieces: join once
        while message.get("more_body", False):
            message = await request.receive()
            if message["type"] != "http.request":
                raise ClientDisconnected
            parts.append(message.get("body", b""))
        body = b"".join(parts)
    if not body.strip():
        raise OllamaError(400, "missing request body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OllamaError(400, f"invalid JSON in request body: {exc}") from None
    if not isinstance(data, dict):
        raise OllamaError(400, "request body must be a JSON object")
    return body, data


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate a request object; the first problem becomes Ollama's 400 message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise OllamaError(400, f"invalid value for {where}: {err['msg']}") from None


def answer(result: dict[str, Any] | Any, request: Request) -> Response:
    """A dict as JSON, a byte stream as NDJSON that cancels upstream on disconnect."""
    if isinstance(result, dict):
        return json_response(result)
    return NDJSONStream(result, on_disconnect=state_of(request).metrics.disconnects.inc)


async def passthrough(
    request: Request, entry: ModelEntry, path: str, body: bytes, *, stream: bool
) -> Response:
    """Send the request to the Ollama backend as it came, and its answer back as it comes."""
    state = state_of(request)
    if state.ollama is None or entry.backend != state.ollama.name:
        raise OllamaError(500, f"no backend serves {entry.name}")
    status, content_type, content = await cancel_on_disconnect(
        request, state.ollama.forward("POST", path, body, stream=stream)
    )
    return relay_response(request, status, content_type, content)


def relay_response(
    request: Request, status: int, content_type: str, content: bytes | Any
) -> Response:
    """An upstream answer relayed: read whole, or streamed with cancel-on-disconnect."""
    if isinstance(content, bytes):
        return Response(content, status_code=status, media_type=content_type)
    return NDJSONStream(
        content, media_type=content_type, on_disconnect=state_of(request).metrics.disconnects.inc
    )
