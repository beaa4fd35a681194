"""The upstream HTTP client fed byte scripts straight into its protocol (no sockets, no timing).

Each connection the pool opens gets a ``Wire``: a fake transport that records what the client
writes and answers each request with the script's next move, as httpcore's mock streams do.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from adapter.backends.httpclient import (
    HIGH_WATER,
    MAX_FIELD,
    MAX_HEAD,
    ConnectError,
    Connection,
    ConnectionLost,
    HTTPError,
    Pool,
    ProtocolError,
    ReadTimeout,
    request,
)

#: A move of the scripted server: bytes to send, ``CLOSE`` (it closes the connection), or
#: ``GONE`` (it had closed before the request came: the write fails at once, nothing left).
CLOSE = b"<close>"
GONE = b"<gone>"
Move = list[bytes]


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Wire(asyncio.Transport):
    """One scripted connection: the client's writes, the server's moves, the transport state."""

    def __init__(self, conn: Connection, moves: Iterable[Move]) -> None:
        super().__init__()
        self.conn = conn
        self.moves: deque[Move] = deque(moves)
        self.writes: list[bytes] = []
        self.closed = False
        self.reading_paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        move = self.moves.popleft() if self.moves else []
        if move == [GONE]:
            # As asyncio does when send() fails: the transport closes, the protocol hears later.
            self.closed = True
            asyncio.get_running_loop().call_soon(self.conn.connection_lost, BrokenPipeError())
            return
        self.writes.append(bytes(data))
        self.play(move)

    def play(self, move: Move) -> None:
        """The server sends these bytes (each piece in a read of its own), or closes."""
        for piece in move:
            if self.closed:
                return
            if piece == CLOSE:
                self._lose()
                return
            self.conn.data_received(piece)

    def _lose(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self._lose()

    def abort(self) -> None:
        self._lose()

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass
class Script:
    """The moves of every connection the pool will open, in order."""

    connections: list[list[Move]]
    wires: list[Wire] = field(default_factory=list)

    async def __call__(self, pool: Pool, conn: Connection) -> None:
        if len(self.wires) == len(self.connections):
            raise ConnectError("the script has no more connections")
        wire = Wire(conn, self.connections[len(self.wires)])
        self.wires.append(wire)
        conn.connection_made(wire)

    @property
    def requests(self) -> list[bytes]:
        return [w for wire in self.wires for w in wire.writes]


def pool_for(script: Script, **kw: Any) -> Pool:
    opts: dict[str, Any] = {"limit": 4, "connect_timeout": 1, "read_timeout": 5, "keepalive": 60}
    opts.update(kw)
    return Pool("http://upstream:8000", connector=script, **opts)


async def fetch(pool: Pool, method: str = "POST", body: bytes | None = b"{}") -> bytes:
    resp = await request(pool, method, "/x", body)
    try:
        return await resp.read()
    finally:
        resp.release()


# --------------------------------------------------------------------------- interim answers


@pytest.mark.parametrize("split", [False, True])
async def test_interim_answers_are_skipped_and_their_headers_dropped(split: bool) -> None:
    """A 103 before the 200 was taken as the final answer (status 103, the 200's body)."""
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + ok(b"final")
    )
    move = [answer[i : i + 1] for i in range(len(answer))] if split else [answer]
    script = Script([[move]])
    resp = await request(pool_for(script), "POST", "/x", b"{}")
    assert resp.status == 200
    assert "link" not in resp.headers and resp.headers["content-length"] == "5"
    assert await resp.read() == b"final"
    resp.release()


async def test_101_is_a_final_answer() -> None:
    script = Script([[[b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"]]])
    resp = await request(pool_for(script), "GET", "/x", None)
    assert resp.status == 101
    resp.close()


# --------------------------------------------------------------------------- limits


async def test_a_header_field_over_the_limit_is_a_protocol_error() -> None:
    big = b"X-Big: " + b"a" * MAX_FIELD + b"\r\n"
    script = Script([[[b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 0\r\n\r\n"]]])
    pool = pool_for(script)
    with pytest.raises(ProtocolError, match=f"over {MAX_FIELD} bytes"):
        await fetch(pool)
    assert script.wires[0].closed and pool._open == 0


async def test_a_field_at_the_limit_is_accepted() -> None:
    value = b"a" * (MAX_FIELD - len(b"X-Big"))
    script = Script([[[b"HTTP/1.1 200 OK\r\nX-Big: " + value + b"\r\nContent-Length: 0\r\n\r\n"]]])
    resp = await request(pool_for(script), "GET", "/x", None)
    assert resp.headers["x-big"] == value.decode()
    resp.release()


async def test_a_head_that_never_ends_is_cut_at_the_limit() -> None:
    """Many small fields: the head is refused once it passes MAX_HEAD, not read on."""
    fields = [b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(2 * MAX_HEAD // 100)]
    script = Script([[[b"HTTP/1.1 200 OK\r\n", *fields]]])
    with pytest.raises(ProtocolError, match=f"over {MAX_HEAD} bytes"):
        await fetch(pool_for(script))
    wire = script.wires[0]
    assert wire.closed
    assert wire.conn.head_bytes <= MAX_HEAD + 200  # it stopped reading at the limit


# --------------------------------------------------------------------------- trailers


async def test_trailers_are_kept_apart_from_the_headers() -> None:
    body = b"2\r\nok\r\n0\r\nX-Checksum: abc\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    script = Script([[[head, body]]])
    resp = await request(pool_for(script), "GET", "/x", None)
    assert await resp.read() == b"ok"
    assert "x-checksum" not in resp.headers
    assert resp.trailers == {"x-checksum": "abc"}
    resp.release()


# --------------------------------------------------------------------------- reuse


async def test_a_released_answer_cannot_be_read_and_never_shows_the_next_one() -> None:
    script = Script([[[ok(b"first")], [ok(b"second")]]])
    pool = pool_for(script)
    first = await request(pool, "GET", "/x", None)
    assert await first.read() == b"first"
    first.release()
    second = await request(pool, "GET", "/x", None)
    with pytest.raises(HTTPError, match="released"):
        await first.read()
    with pytest.raises(HTTPError, match="released"):
        await anext(first.iter_any())
    assert await second.read() == b"second"
    second.release()
    assert len(script.wires) == 1


async def test_an_answer_released_half_read_does_not_go_back_to_the_pool() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    script = Script([[[head, b"12345"]], [[ok()]]])
    pool = pool_for(script)
    resp = await request(pool, "GET", "/x", None)
    resp.release()  # five bytes of the body are still to come on that connection
    assert await fetch(pool, "GET", None) == b"ok"
    assert len(script.wires) == 2 and script.wires[0].closed


async def test_connection_close_in_the_answer_is_honoured() -> None:
    """The server said it will close, and has not yet: the connection is not reused."""
    script = Script([[[ok(extra=b"Connection: close\r\n")]], [[ok()]]])
    pool = pool_for(script)
    assert await fetch(pool) == b"ok"
    assert await fetch(pool) == b"ok"
    assert len(script.wires) == 2 and script.wires[0].closed


async def test_unexpected_bytes_on_an_idle_connection_drop_it() -> None:
    script = Script([[[ok()]], [[ok()]]])
    pool = pool_for(script)
    assert await fetch(pool) == b"ok"
    first = script.wires[0]
    first.conn.data_received(b"HTTP/1.1 200 OK\r\n")  # nothing was asked
    assert first.closed and pool._open == 0
    assert await fetch(pool) == b"ok"
    assert len(script.wires) == 2


# --------------------------------------------------------------------------- read timer


async def test_the_read_timer_does_not_fire_while_the_reader_is_behind() -> None:
    """Reading is paused because our reader is slow, not the server: the timer waits."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    big = b"%x\r\n%s\r\n" % (HIGH_WATER + 1, b"x" * (HIGH_WATER + 1))
    script = Script([[[head, big]]])
    pool = pool_for(script, read_timeout=5)
    resp = await request(pool, "POST", "/x", b"{}")
    conn = script.wires[0].conn
    assert conn.paused and script.wires[0].reading_paused
    loop = asyncio.get_running_loop()
    conn._last_read = loop.time() - 60  # long silent, as the server sees it
    conn._check()
    assert not resp._done and conn._last_read >= loop.time() - 1
    conn.resume()
    conn._last_read = loop.time() - 60  # now it is the server that is silent
    conn._check()
    with pytest.raises(ReadTimeout):
        await resp.read()
    resp.release()


# --------------------------------------------------------------------------- the pool


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    script = Script([[[head], [ok(b"third")]]])
    pool = pool_for(script, limit=1)
    held = await request(pool, "GET", "/x", None)
    second = asyncio.create_task(fetch(pool, "GET", None))
    third = asyncio.create_task(fetch(pool, "GET", None))
    await asyncio.sleep(0)
    assert len(pool._waiters) == 2
    script.wires[0].play([b"ok"])
    assert await held.read() == b"ok"
    held.release()  # wakes the second waiter...
    second.cancel()  # ...which leaves before it runs
    assert await asyncio.wait_for(third, 1) == b"third"
    with pytest.raises(asyncio.CancelledError):
        await second


async def test_aclose_wakes_the_waiters_with_an_error() -> None:
    script = Script([[[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"]]])
    pool = pool_for(script, limit=1)
    held = await request(pool, "GET", "/x", None)
    waiting = asyncio.create_task(fetch(pool, "GET", None))
    await asyncio.sleep(0)
    await pool.aclose()
    with pytest.raises(ConnectError, match="closed"):
        await asyncio.wait_for(waiting, 1)
    held.close()


# --------------------------------------------------------------------------- resending


async def test_an_idempotent_request_on_a_connection_that_closed_unanswered_is_resent() -> None:
    resent: list[int] = []
    script = Script([[[ok(b"one")], [CLOSE]], [[ok(b"two")]]])
    pool = pool_for(script, on_resend=lambda: resent.append(1))
    assert await fetch(pool, "GET", None) == b"one"
    assert await fetch(pool, "GET", None) == b"two"
    assert resent == [1]
    assert [len(w.writes) for w in script.wires] == [2, 1]


async def test_a_post_that_reached_the_server_is_not_resent() -> None:
    """The request left; the connection then closed: vLLM may be generating it already."""
    resent: list[int] = []
    script = Script([[[ok(b"one")], [CLOSE]], [[ok(b"two")]]])
    pool = pool_for(script, on_resend=lambda: resent.append(1))
    assert await fetch(pool) == b"one"
    with pytest.raises(ConnectionLost) as err:
        await fetch(pool)
    assert err.value.before_answer and not err.value.unsent
    assert resent == [] and len(script.wires) == 1


async def test_a_post_that_never_left_is_resent() -> None:
    """The server had closed the pooled connection: the write failed at once, nothing left."""
    resent: list[int] = []
    script = Script([[[ok(b"one")], [GONE]], [[ok(b"two")]]])
    pool = pool_for(script, on_resend=lambda: resent.append(1))
    assert await fetch(pool) == b"one"
    assert await fetch(pool) == b"two"
    assert resent == [1]
    assert [len(w.writes) for w in script.wires] == [1, 1]


async def test_a_partial_answer_is_never_resent() -> None:
    script = Script([[[ok()], [b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE]], [[ok()]]])
    pool = pool_for(script)
    assert await fetch(pool, "GET", None) == b"ok"
    with pytest.raises(ConnectionLost) as err:
        await fetch(pool, "GET", None)
    assert not err.value.before_answer
    assert len(script.wires) == 1


async def test_a_server_that_drops_every_request_fails_after_one_resend() -> None:
    script = Script([[[ok()], [CLOSE]], [[CLOSE]], [[CLOSE]]])
    pool = pool_for(script)
    assert await fetch(pool, "GET", None) == b"ok"
    with pytest.raises(ConnectionLost):
        await fetch(pool, "GET", None)
    assert len(script.requests) == 3  # the first, the try on the stale connection, one resend


async def test_a_connection_the_server_closed_while_idle_is_not_used_even_unnoticed() -> None:
    """The server's close reached the socket but the loop has not read it yet: the pool
    looks before it reuses, so the request goes to a new connection (no resend needed)."""
    servers: list[socket.socket] = []
    opened = asyncio.Queue[socket.socket]()

    async def connector(pool: Pool, conn: Connection) -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        servers.append(theirs)
        await asyncio.get_running_loop().create_connection(lambda: conn, sock=ours)
        opened.put_nowait(theirs)

    async def answered(pending: asyncio.Task[bytes], server: socket.socket) -> bytes:
        loop = asyncio.get_running_loop()
        got = await asyncio.wait_for(loop.sock_recv(server, 65536), 5)
        assert got.startswith(b"GET /x HTTP/1.1")
        await loop.sock_sendall(server, ok())
        return await pending

    resent: list[int] = []
    pool = Pool(
        "http://upstream",
        limit=4,
        connect_timeout=1,
        read_timeout=5,
        keepalive=60,
        connector=connector,
        on_resend=lambda: resent.append(1),
    )
    first = asyncio.create_task(fetch(pool, "GET", None))
    assert await answered(first, await opened.get()) == b"ok"
    servers[0].close()  # and no await before the next request: the loop cannot notice
    second = asyncio.create_task(fetch(pool, "GET", None))
    assert await answered(second, await opened.get()) == b"ok"
    assert len(servers) == 2 and resent == []
    servers[1].close()
    await pool.aclose()
