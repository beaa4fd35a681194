"""Another API's request (OpenAI's ``/v1/*``, Anthropic's ``/v1/messages``) sent on to the
backend that serves its model, with Ollama's model-name resolution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from adapter.api.answers import answer, cancel_on_disconnect
from adapter.api.inbound import read_body, target
from adapter.errors import OllamaError
from adapter.framing import Framing
from adapter.ollama_api.models import ModelEntry
from adapter.openai_api import error_message, is_openai_error


async def forward_foreign(
    request: Request,
    path: str,
    *,
    framing: Framing,
    adjust: Callable[[dict[str, Any], ModelEntry], None] | None = None,
    own_errors: bool = False,
    id_prefix: tuple[bytes, bytes] | None = None,
) -> Response:
    """Another API's request (OpenAI's, Anthropic's) to the backend serving its model: the
    model name resolved as everywhere (aliases, ``:latest``, case), the body and the answer
    otherwise passed on as they are, streams included, but for the answer's ``model``, which
    says the name the client sent (as Ollama's does), and ``id_prefix`` (vLLM's, the API's own)
    on its ids. ``own_errors``: an upstream error is answered in the route's own shape (its
    message kept) instead of as it came; without it, only an error not in OpenAI's shape is."""
    _, data = await read_body(request)
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise OllamaError(400, "model is required")
    found = await target(request, name)
    served = found.entry.served
    data["model"] = served
    if adjust is not None:
        adjust(data, found.entry)
    stream = data.get("stream") is True
    rewrite: list[tuple[bytes, bytes]] = []
    if name != served:
        # vLLM writes compact JSON: the field is found as its bytes, in every event of a stream.
        rewrite.append((b'"model":' + orjson.dumps(served), b'"model":' + orjson.dumps(name)))
    if id_prefix is not None:
        rewrite.append((b'"id":"' + id_prefix[0], b'"id":"' + id_prefix[1]))
    reply = await cancel_on_disconnect(
        request,
        found.backend.passthrough(path, data, stream=stream, framing=framing, rewrite=rewrite),
    )
    # vLLM's own errors are OpenAI's shape already; the rest (FastAPI's ``{"detail": ...}``
    # of a route the model does not serve, a proxy's page) are answered in the route's shape,
    # their message kept.
    if (
        reply.status >= 400
        and isinstance(reply.body, bytes)
        and (own_errors or not is_openai_error(reply.body))
    ):
        raise OllamaError(reply.status, error_message(reply.body))
    return answer(reply, request)
