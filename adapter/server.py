"""uvicorn's httptools protocol, with each response's head sent together with its first bytes,
and a shutdown that lets a request already on its way in be answered.

uvicorn writes a response's status line and headers as soon as the app starts the response,
then each body chunk in a write of its own: two system calls and two TCP segments for every
answer, where one does, and a write is a sizeable share of a short request's CPU
(docs/performance.md, "Figures behind the code"). The protocol here hands uvicorn a
transport that holds the head back until the body's first bytes (or the end of the current
event-loop step, whichever comes first) and writes both at once.

At shutdown (SIGTERM, a SIGHUP roll) uvicorn closes every idle keep-alive connection at once.
A client that sent its next request in that instant loses it (``Server disconnected without
sending a response``; how often: docs/performance.md, "Figures behind the code"). Here an idle connection stays open ``DRAIN_SECONDS`` more: a request that arrives is answered
with ``Connection: close``, and the connection closes after it (or at the end of the wait).

uvicorn's server wakes ten times a second to check whether it should exit (and once a second
of those to renew the ``Date`` header): CPU spent with nothing to do, which at the token rates
of a small model on CPU is a visible share of the adapter's CPU per relayed token (docs/
performance.md, "Figures behind the code"). ``AdapterServer`` wakes once a second for the
header, and at once when told to exit.

Everything else is uvicorn's.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: How uvicorn starts every response head it writes (it writes a head in one call).
_HEAD = b"HTTP/1.1 "


class HeadHoldingTransport:
    """A transport proxy that joins a response head to the write that follows it."""

    __slots__ = ("_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + bytes(data))
        elif data[:9] == _HEAD:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)  # a head with no body (HEAD, 204, 304)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Write a head still held back."""
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class AdapterHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol on a ``HeadHoldingTransport``, draining at shutdown."""

    #: How long an idle keep-alive connection stays open once shutdown began.
    DRAIN_SECONDS = 1.0
    _draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held = HeadHoldingTransport(transport, self.loop)
        super().connection_made(held)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        """Graceful shutdown: a busy connection closes after its answer (uvicorn's rule); an
        idle one waits ``DRAIN_SECONDS`` for a request already on its way."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        self._draining = True
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.DRAIN_SECONDS, self.timeout_keep_alive_handler
        )

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with Connection: close, then closed


class AdapterServer(uvicorn.Server):
    """uvicorn's server, idle between its once-a-second ticks: setting ``should_exit`` (a
    signal, the supervisor) wakes the main loop at once instead of at its next poll."""

    #: How often the ``Date`` header is renewed (uvicorn: once a second, too).
    TICK_SECONDS = 1.0
    _exit_now: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _should_exit = False

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value and self._exit_now is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._exit_now.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit_now = asyncio.Event()
        if self._should_exit:
            self._exit_now.set()
        # uvicorn's on_tick renews the date when the counter is a multiple of 10.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.TICK_SECONDS):
                    await self._exit_now.wait()
            should_exit = await self.on_tick(counter)
