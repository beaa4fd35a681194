"""A route's whole trip, written once: ``served`` (Ollama's requests about a model, answered by
the backend method the route names) and ``forward_foreign`` (another API's request, OpenAI's
``/v1/*`` or Anthropic's ``/v1/messages``, sent on to the backend that serves its model, with
Ollama's model-name resolution)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from starlette.responses import Response

from adapter.api.answers import answer, cancel_on_disconnect, respond
from adapter.api.inbound import asked
from adapter.backends.base import Backend, Reply
from adapter.errors import OllamaError
from adapter.framing import Framing
from adapter.ollama_api.models import ModelEntry
from adapter.ollama_api.requests import AboutAModel
from adapter.openai_api import error_message, is_openai_error

A = TypeVar("A", bound=AboutAModel)

#: A backend's method for a request: ``Backend.chat`` and its like, bound to the backend.
Method = Callable[[A, ModelEntry, bytes], Awaitable[Reply]]


async def served(
    request: Request, schema: type[A], method: Callable[[Backend], Method[A]]
) -> Response:
    """Read, parse and place the request (``asked``), ask the backend serving its model with
    ``method`` of it (``lambda backend: backend.chat``), and answer, cancelled if the client
    leaves first."""
    a = await asked(request, schema)
    return await respond(request, method(a.backend)(a.req, a.entry, a.raw))


class ForeignRequest(AboutAModel):
    """Another API's request: only its model is read here, the body goes on as it came."""

    model: Any = None

    @property
    def target(self) -> str:
        return self.model if isinstance(self.model, str) else ""


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
    a = await asked(request, ForeignRequest)
    data, name, served = a.data, a.req.target, a.entry.served
    data["model"] = served
    if adjust is not None:
        adjust(data, a.entry)
    stream = data.get("stream") is True
    rewrite: list[tuple[bytes, bytes]] = []
    if name != served:
        # vLLM writes compact JSON: the field is found as its bytes, in every event of a stream.
        rewrite.append((b'"model":' + orjson.dumps(served), b'"model":' + orjson.dumps(name)))
    if id_prefix is not None:
        rewrite.append((b'"id":"' + id_prefix[0], b'"id":"' + id_prefix[1]))
    reply = await cancel_on_disconnect(
        request,
        a.backend.passthrough(path, data, stream=stream, framing=framing, rewrite=rewrite),
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
