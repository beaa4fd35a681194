"""The last leg of every request: a backend's reply made into the response.

Answer objects leave as JSON, streams (Ollama's NDJSON, or another API's SSE relayed) as a
``StreamingAnswer`` that cancels the upstream request when the client leaves, errors in the
shape of the route's API. ``respond`` is what a route calls: it asks the backend, watching for
the client's disconnect, and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from adapter.anthropic_api import anthropic_error
from adapter.backends.base import ByteStream, Relayed, Reply
from adapter.errors import ClientDisconnected
from adapter.jsonutil import dumps
from adapter.ollama_api.responses import error_body
from adapter.openai_api import openai_error as openai_body
from adapter.requestctx import current
from adapter.services import services_of

T = TypeVar("T")

JSON_TYPE = "application/json; charset=utf-8"
#: The last line of a stream the server ends at shutdown, once its grace period is over.
SHUTTING_DOWN = "the adapter is shutting down (ADAPTER_SHUTDOWN_GRACE is over); please retry"
NDJSON_TYPE = "application/x-ndjson"


def json_response(obj: Any, status: int = 200) -> Response:
    """A JSON body serialised with orjson, with the content type Ollama sends."""
    return Response(dumps(obj), status_code=status, media_type=JSON_TYPE)


class MadeJSON(Response):
    """A JSON answer whose body and head's fields were made once (``head_of``), for one sent
    unchanged many times (``/api/tags`` until a model list changes): no serialising and no
    header building per request."""

    def __init__(self, body: bytes, head: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = list(head)  # a copy: the fast lane adds the request's id to it

    @staticmethod
    def head_of(body: bytes) -> list[tuple[bytes, bytes]]:
        """The header fields ``json_response`` gives ``body``."""
        return Response(body, media_type=JSON_TYPE).raw_headers


def error_response(status: int, message: str) -> Response:
    """Ollama's error body."""
    return json_response(error_body(message), status)


def openai_error(status: int, message: str) -> Response:
    """OpenAI's error body, for the ``/v1`` endpoints."""
    return json_response(openai_body(status, message), status)


def error_in_shape(path: str, status: int, message: str) -> Response:
    """An error in the shape of the API the path belongs to: Anthropic's under
    ``/v1/messages``, OpenAI's under the rest of ``/v1``, Ollama's everywhere else."""
    if path.startswith("/v1/messages"):
        return json_response(anthropic_error(status, message), status)
    if path.startswith("/v1/"):
        return openai_error(status, message)
    return error_response(status, message)


class StreamingAnswer(Response):
    """A streamed answer (NDJSON, or SSE relayed): each chunk of a ``ByteStream`` sent as it
    comes; a client that leaves closes the upstream.

    The disconnect watcher matters while vLLM is still queueing or prefilling: nothing is
    being written then, so only ``http.disconnect`` tells that the client is gone.
    """

    def __init__(
        self,
        stream: ByteStream,
        *,
        media_type: str = NDJSON_TYPE,
        on_disconnect: Callable[[], None] | None = None,
        grace: float | None = None,
    ) -> None:
        self.stream = stream
        self.grace = grace
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
        # The headers leave with the first chunk, as Ollama's do: nothing stands between the
        # first token and the client.
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        stream = self.stream
        watch = DisconnectWatch(receive, self.grace)
        ended = False
        try:
            async for chunk in stream:
                if ended:
                    continue
                if start:
                    info = current()
                    if info is not None:
                        info.first_byte = time.perf_counter()
                    await send(start)
                    start = {}
                ended = stream.ended
                await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
                if ended:
                    # The client has its whole answer (and uvicorn now answers receive()
                    # with a disconnect): the relay finishes reading the upstream unwatched.
                    watch.stop()
            if start:
                await send(start)
            if not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.fired:
                # Not the client: the server ends the stream (its shutdown grace is over).
                # The client gets the stream's own last word instead of a cut-off body.
                if not start and not ended:
                    await self._last_word(send, SHUTTING_DOWN)
                raise
            watch.absorb()
            if self.on_disconnect is not None:
                self.on_disconnect()
        finally:
            watch.stop()
            await self.stream.aclose()

    async def _last_word(self, send: Send, message: str) -> None:
        body = self.stream.error_event(message)
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": body, "more_body": False})


class DisconnectWatch:
    """Cancels the current task when the client disconnects.

    The work runs in the request's own task; cancelling it unwinds the upstream call
    (the upstream connection is dropped, and vLLM aborts the request). Watching starts after
    a short grace period: most requests are done by then and never pay for a watcher task,
    and a client that leaves is noticed at most that much later. The caller catches
    ``CancelledError``, checks ``fired`` and calls ``absorb()``.
    """

    GRACE_SECONDS = 0.05

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "fired")

    def __init__(self, receive: Receive, grace: float | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._receive = receive
        self.fired = False
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            self.GRACE_SECONDS if grace is None else grace, self._start
        )

    def _start(self) -> None:
        self._timer = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.fired = True
        self._task.cancel()

    def absorb(self) -> None:
        """The cancellation was ours: the task goes on (to answer or to clean up)."""
        self._task.uncancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and so the upstream request) if the client disconnects."""
    watch = DisconnectWatch(request.receive)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.fired:
            raise
        watch.absorb()
        raise ClientDisconnected from None
    finally:
        watch.stop()


async def respond(request: Request, work: Awaitable[Reply]) -> Response:
    """What a route ends with: ``work`` (the backend asked) awaited, cancelled if the client
    leaves first, and its reply answered."""
    return answer(await cancel_on_disconnect(request, work), request)


def answer(reply: Reply, request: Request) -> Response:
    """A backend's reply as the response: an answer object as JSON, a stream as a
    ``StreamingAnswer`` (that cancels upstream when the client leaves), an upstream answer as
    it came."""
    if isinstance(reply, Relayed):
        if isinstance(reply.body, bytes):
            return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
        stream = reply.body
        media_type = reply.content_type
    elif isinstance(reply, Mapping):
        return json_response(reply)
    else:
        stream, media_type = reply, "application/x-ndjson"
    on_disconnect = services_of(request).metrics.disconnects.inc
    return StreamingAnswer(stream, media_type=media_type, on_disconnect=on_disconnect)
