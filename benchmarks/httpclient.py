"""A minimal HTTP/1.1 keep-alive client on ``asyncio.Protocol`` (content-length and chunked)."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Protocol, cast

HEADERS, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE, IDLE = range(5)


class Sink(Protocol):
    """Receives one response: status and raw lower-cased head, then decoded body bytes."""

    def start(self, status: int, head: bytes, now: float) -> None:
        """Headers arrived."""

    def feed(self, data: bytes, now: float) -> None:
        """Body bytes arrived (transfer encoding already removed)."""

    def end(self, now: float) -> None:
        """The response is complete."""


class HttpError(Exception):
    """Protocol-level failure (bad framing, closed connection, timeout)."""


class ClientConn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = IDLE
        self.remaining = 0
        self.sink: Sink | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.keep_alive = True

    @classmethod
    async def connect(cls, host: str, port: int) -> ClientConn:
        """Open a connection."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, host, port)
        return proto

    @property
    def usable(self) -> bool:
        """Open, idle and reusable."""
        return self.transport is not None and self.keep_alive and self.state == IDLE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.state == BODY_CLOSE and self.sink is not None:
            self.sink.feed(bytes(self.buf), perf_counter())
            self.buf.clear()
            self.complete()
        else:
            self.fail(HttpError(f"connection closed ({exc or 'by peer'})"))

    def request(self, data: bytes, sink: Sink, timeout: float) -> asyncio.Future[None]:
        """Send one raw request; the future resolves when ``sink`` has the whole response."""
        fut: asyncio.Future[None] = self.loop.create_future()
        if self.transport is None:
            fut.set_exception(HttpError("not connected"))
            return fut
        self.waiter, self.sink, self.state = fut, sink, HEADERS
        self.timer = self.loop.call_later(timeout, self.on_timeout)
        self.transport.write(data)
        return fut

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def on_timeout(self) -> None:
        self.timer = None
        self.fail(HttpError("timeout"))
        if self.transport is not None:
            self.transport.abort()

    def fail(self, exc: Exception) -> None:
        """Fail the pending request and make the connection unusable."""
        self.keep_alive = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None
        self.sink = None

    def complete(self) -> None:
        """The response ended."""
        self.state = IDLE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        sink, waiter = self.sink, self.waiter
        self.sink = self.waiter = None
        if sink is not None:
            sink.end(perf_counter())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.sink is None:
            self.keep_alive = False  # unsolicited bytes: drop this connection
            return
        self.buf += data
        try:
            self.parse(perf_counter())
        except (ValueError, IndexError) as exc:
            self.fail(HttpError(f"bad response framing: {exc}"))
            self.close()

    def parse(self, now: float) -> None:
        """Advance the response state machine over the buffer."""
        buf = self.buf
        sink = self.sink
        assert sink is not None
        if self.state == HEADERS:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            status = int(head[9:12])
            if b"\r\nconnection: close" in head:
                self.keep_alive = False
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                self.remaining = int(head[i + 17 : j if j >= 0 else len(head)])
                self.state = BODY_LENGTH
            elif b"transfer-encoding: chunked" in head:
                self.state = BODY_CHUNKED
                self.remaining = -1
            else:
                self.state = BODY_CLOSE
                self.keep_alive = False
            sink.start(status, head, now)
        if self.state == BODY_LENGTH:
            if len(buf) >= self.remaining:
                sink.feed(bytes(buf[: self.remaining]), now)
                del buf[: self.remaining]
                self.complete()
        elif self.state == BODY_CHUNKED:
            self.parse_chunks(buf, sink, now)

    def parse_chunks(self, buf: bytearray, sink: Sink, now: float) -> None:
        """Decode as many whole chunks as the buffer holds; feed them in one call."""
        pos = 0
        out: list[bytes] = []
        done = False
        n = len(buf)
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            if size == 0:
                if n < eol + 4:
                    break
                if buf[eol + 2 : eol + 4] != b"\r\n":
                    raise ValueError("trailers are not supported")
                pos = eol + 4
                done = True
                break
            stop = eol + 2 + size
            if n < stop + 2:
                break
            out.append(bytes(buf[eol + 2 : stop]))
            pos = stop + 2
        del buf[:pos]
        if out:
            sink.feed(b"".join(out), now)
        if done:
            self.complete()
