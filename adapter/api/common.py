"""What every endpoint module does: read and validate the body, find the model, answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from adapter.backends.base import Framing, Relayed, Reply, Target
from adapter.errors import OllamaError
from adapter.ollama_api.models import ModelEntry
from adapter.openai_api import error_message
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


async def target(request: Request, name: str, *, missing: str | None = None) -> Target:
    """The entry and backend serving ``name``; Ollama's 404 (or ``missing``) otherwise."""
    found = await state_of(request).router.find(name)
    if found is None:
        raise OllamaError(404, missing or f"model '{name}' not found")
    return found


def answer(reply: Reply, request: Request) -> Response:
    """A backend's reply as the response: an answer object as JSON, a stream as NDJSON (that
    cancels upstream when the client leaves), an upstream answer as it came."""
    if isinstance(reply, Relayed):
        if isinstance(reply.body, bytes):
            return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
        stream = reply.body
        media_type = reply.content_type
    elif isinstance(reply, Mapping):
        return json_response(reply)
    else:
        stream, media_type = reply, "application/x-ndjson"
    on_disconnect = state_of(request).metrics.disconnects.inc
    return NDJSONStream(stream, media_type=media_type, on_disconnect=on_disconnect)


async def forward_foreign(
    request: Request,
    path: str,
    *,
    framing: Framing,
    adjust: Callable[[dict[str, Any], ModelEntry], None] | None = None,
    own_errors: bool = False,
) -> Response:
    """Another API's request (OpenAI's, Anthropic's) to the backend serving its model: the
    model name resolved as everywhere (aliases, ``:latest``, case), the body and the answer
    otherwise passed on as they are, streams included. ``own_errors``: an upstream error is
    answered in the route's own shape (its message kept) instead of as it came."""
    _, data = await read_body(request)
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise OllamaError(400, "model is required")
    found = await target(request, name)
    data["model"] = found.entry.served
    if adjust is not None:
        adjust(data, found.entry)
    stream = data.get("stream") is True
    reply = await cancel_on_disconnect(
        request,
        found.backend.passthrough(path, data, stream=stream, framing=framing),
    )
    if own_errors and reply.status >= 400 and isinstance(reply.body, bytes):
        raise OllamaError(reply.status, error_message(reply.body))
    return answer(reply, request)
