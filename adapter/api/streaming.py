"""ASGI responses for Ollama: JSON bodies and NDJSON streams that cancel upstream on disconnect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from adapter.backends.vllm.translate import dumps
from adapter.errors import OllamaError

T = TypeVar("T")

JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"


class ByteStream(Protocol):
    """What an upstream relay offers: bytes to send, and a way to let go of the upstream."""

    def __aiter__(self) -> Any: ...

    async def aclose(self) -> None: ...


def json_response(obj: Any, status: int = 200) -> Response:
    """A JSON body serialised with orjson, with the content type Ollama sends."""
    return Response(dumps(obj), status_code=status, media_type=JSON_TYPE)


def error_response(status: int, message: str) -> Response:
    """Ollama's error body."""
    return json_response({"error": message}, status)


_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error", 401: "authentication_error"}


def openai_error(status: int, message: str) -> Response:
    """OpenAI's error body, for the ``/v1`` endpoints."""
    kind = _OPENAI_TYPES.get(status, "api_error")
    return json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status
    )


class NDJSONStream(Response):
    """Sends each chunk of a byte stream as it comes; a client that leaves closes the upstream.

    The disconnect watcher matters while vLLM is still queueing or prefilling: nothing is
    being written then, so only ``http.disconnect`` tells that the client is gone.
    """

    def __init__(
        self,
        stream: ByteStream,
        *,
        media_type: str = NDJSON_TYPE,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.on_disconnect = on_disconnect
        self.raw_headers = [
            (b"content-type", media_type.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await self.stream.aclose()
        if pump.done() and not pump.cancelled():
            pump.result()
        elif self.on_disconnect is not None:
            self.on_disconnect()

    async def _pump(self, send: Send) -> None:
        stream: AsyncIterable[bytes] = self.stream
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ClientDisconnected(Exception):
    """The client went away before its answer was ready."""


async def cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``, cancelling it (and so the upstream request) if the client disconnects."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_wait_disconnect(request.receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, OllamaError):
        await task
    raise ClientDisconnected
