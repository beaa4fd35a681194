"""A small HTTP/1.1 client for the upstream servers: asyncio protocols, llhttp parsing, a pool.

The adapter talks to a handful of known servers (vLLM, Ollama) over keep-alive connections and
needs little of HTTP: a method, a path, a JSON body, and an answer read whole or streamed as it
arrives. General-purpose clients pay per request for what it does not use: aiohttp spent about
0.1 ms of CPU per request and httpx 1.8 ms, against 0.02 ms for a plain protocol
(benchmarks/results/clients-2cpu.md), and at one request at a time the client was a third of
the adapter's CPU. Framing is parsed by httptools (llhttp, Node.js's parser, which uvicorn
already uses for the client side), so this module only keeps connections and moves bytes.

What it does: keep-alive connections per upstream, at most ``max_connections`` open (callers
wait beyond that); idle ones dropped after ``keepalive`` seconds, or when the server closed
them (checked before each reuse); a read timeout between bytes; reading paused while a
streamed answer's consumer is behind; ``close()`` on an answer drops its connection, which is
how vLLM learns to abort the request. Interim answers (1xx but 101) are skipped, as aiohttp
does; a header field over ``MAX_FIELD`` bytes or a head over ``MAX_HEAD`` bytes is a
``ProtocolError``; trailers are kept apart from the headers. Credentials in the URL
(``http://user:pass@host``) are sent as HTTP Basic auth, unless the caller gives an
``Authorization`` header of its own; :func:`public_url` is the URL to show anywhere else.

Resending (RFC 9112 section 9.3.1): a request is sent again, once, on a new connection only
when it cannot have been applied: its bytes never left (the pooled connection was found
closed when the request was to be written), or its method is idempotent (GET, HEAD, PUT,
DELETE, OPTIONS, TRACE) and the pooled connection closed before any byte of the answer. A
POST on a connection that dies after the request was written is never resent: the server
may be generating its answer. ``Pool(on_resend=...)`` counts resends.
"""

from __future__ import annotations

import asyncio
import base64
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import cast
from urllib.parse import unquote, urlsplit, urlunsplit

import httptools

#: A streamed answer's unread bytes above which reading from the server pauses.
HIGH_WATER = 256 * 1024
#: The longest header field (name and value) an answer may carry, as aiohttp's default.
MAX_FIELD = 8190
#: The most bytes an answer's head (status line, headers, interim answers) may take.
MAX_HEAD = 64 * 1024
#: Methods whose effect is the same sent once or twice (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def public_url(url: str) -> str:
    """``url`` with its credentials, if any, shown as ``***``: for messages, logs, /health.

    A user name alone is hidden too: it is often a token (``https://TOKEN@host``).
    """
    parts = urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def basic_auth(url: str) -> str | None:
    """The ``Authorization`` value for credentials in ``url``, or None when it has none."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class HTTPError(Exception):
    """The exchange with the upstream failed (no HTTP status to report)."""


class ConnectError(HTTPError):
    """No connection could be opened (refused, unknown host, connect timeout)."""


class ReadTimeout(HTTPError):
    """The server sent nothing for ``read_timeout`` seconds while an answer was due."""


class ConnectionLost(HTTPError):
    """The connection closed or broke before the answer was complete."""

    def __init__(self, message: str, *, before_answer: bool, unsent: bool = False) -> None:
        super().__init__(message)
        #: Nothing of the answer had arrived (the request may or may not have been applied).
        self.before_answer = before_answer
        #: The request's bytes never left: it cannot have reached the server.
        self.unsent = unsent


class ProtocolError(HTTPError):
    """The server's answer was not valid HTTP/1.1."""


class Response:
    """One answer: status and headers at once, the body read whole or streamed.

    The caller must ``release()`` it when done (the connection goes back to the pool if the
    body was read to its end) or ``close()`` it to abandon the request.
    """

    __slots__ = (
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_released",
        "_waiter",
        "headers",
        "on_done",
        "status",
        "trailers",
    )

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self.status = 0
        #: Header names lower-cased; a repeated header keeps its last value.
        self.headers: dict[str, str] = {}
        #: Fields sent after a chunked body, kept apart from the headers.
        self.trailers: dict[str, str] = {}
        # The connection's own list: the parser appends body bytes to it directly.
        self._chunks = conn.body
        self._done = False
        self._released = False
        self._error: HTTPError | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: Called once when the caller lets go of the answer (released or closed).
        self.on_done: Callable[[], None] | None = None

    # -- fed by the connection

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _finish(self) -> None:
        self._done = True
        self._wake()

    def _fail(self, exc: HTTPError) -> None:
        if not self._done:
            self._error = exc
            self._done = True
        self._wake()

    # -- read by the caller

    @property
    def complete(self) -> bool:
        """The whole body arrived."""
        return self._done and self._error is None

    async def _wait(self) -> None:
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        conn = self._conn
        if conn is not None:
            conn.buffered = 0
            if conn.paused:
                conn.resume()
        return data

    def _check_held(self) -> None:
        if self._released:
            # The connection (and its buffer) may serve another request by now.
            raise HTTPError("the answer was released; its body can no longer be read")

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body as it arrives: everything buffered so far at each step."""
        self._check_held()
        while True:
            if self._chunks:
                yield self._take()
            elif self._done:
                if self._error is not None:
                    raise self._error
                return
            else:
                await self._wait()

    async def read(self) -> bytes:
        """The whole body (taken as it comes, so a large one never pauses the connection)."""
        self._check_held()
        parts = []
        while True:
            if self._chunks:
                parts.append(self._take())
            if self._done:
                break
            await self._wait()
        if self._error is not None:
            raise self._error
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _let_go(self) -> Connection | None:
        conn, self._conn = self._conn, None
        self._released = True
        self._chunks = []  # never the connection's list again
        done, self.on_done = self.on_done, None
        if done is not None:
            done()
        return conn

    def release(self) -> None:
        """Done with the answer: its connection is reused if the body was read to the end.
        Reading it afterwards raises ``HTTPError``."""
        complete = self.complete
        conn = self._let_go()
        if conn is not None:
            conn.pool.release(conn, reuse=complete)

    def close(self) -> None:
        """Abandon the answer and drop its connection (the server sees the client leave)."""
        conn = self._let_go()
        if conn is not None:
            conn.pool.release(conn, reuse=False)


#: A peer that stops answering at the TCP level (a network cut, a host gone) is given up after
#: about this many seconds, whether the connection waits for a streamed answer (keep-alive
#: probes after ``DEAD_PEER_IDLE`` s, then ``DEAD_PEER_PROBES`` every ``DEAD_PEER_INTERVAL`` s)
#: or has sent bytes nobody acknowledges (``TCP_USER_TIMEOUT``). A slow but living server's
#: kernel answers the probes, so a long wait for a token is never cut by this; without it a
#: cut network would leave a stream open until the read timeout (ten minutes by default).
DEAD_PEER_IDLE = 5
DEAD_PEER_INTERVAL = 2
DEAD_PEER_PROBES = 3


def dead_peer_detection(sock: socket.socket) -> None:
    """TCP keep-alive and user timeout on ``sock``, where the platform has them (Linux)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (
        ("TCP_KEEPIDLE", DEAD_PEER_IDLE),
        ("TCP_KEEPINTVL", DEAD_PEER_INTERVAL),
        ("TCP_KEEPCNT", DEAD_PEER_PROBES),
        ("TCP_USER_TIMEOUT", 1000 * (DEAD_PEER_IDLE + DEAD_PEER_INTERVAL * DEAD_PEER_PROBES)),
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class Connection(asyncio.Protocol):
    """One keep-alive connection to the upstream, one request at a time."""

    def __init__(self, pool: Pool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        #: Body bytes of the current answer not yet taken by its reader. The parser appends
        #: to it directly (a streamed answer from vLLM is one HTTP chunk per token, and a
        #: Python callback for each cost more than the rest of the read).
        self.body: list[bytes] = []
        self.on_body: Callable[[bytes], object] = self.body.append
        self.buffered = 0
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.head: asyncio.Future[Response] | None = None
        self.reusable = True
        self.dropped = False
        self.paused = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.served = 0
        #: Bytes received while the current answer's head is still incomplete.
        self.head_bytes = 0
        self._head_only = False
        self._interim = False
        self._in_trailers = False
        self._problem: str | None = None
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- requests

    def send(self, data: bytes, *, head_only: bool = False) -> asyncio.Future[Response]:
        """Write one whole request; the future resolves when the answer's headers arrive."""
        self.head = head = self.loop.create_future()
        self.body.clear()
        self.buffered = 0
        self.response = Response(self)
        self.got_bytes = False
        self.head_bytes = 0
        self._head_only = head_only
        self._interim = False
        self._in_trailers = False
        self._problem = None
        self.served += 1
        transport = self.transport
        if transport is None or transport.is_closing():
            self._lost(ConnectionLost("the connection was closed", before_answer=True, unsent=True))
            return head
        self._last_read = self.loop.time()
        if self._timer is None:
            self._timer = self.loop.call_at(self._last_read + self.pool.read_timeout, self._check)
        transport.write(data)
        if transport.is_closing():
            # The write failed at once (the server had closed the connection): nothing left.
            self._lost(ConnectionLost("the connection was closed", before_answer=True, unsent=True))
        return head

    def _check(self) -> None:
        """Timer: fail the exchange if the server has been silent for ``read_timeout``.

        One timer per connection, moved forward lazily: reads only note the time, and a
        timer that fires early re-arms itself for the rest (no timer churn per request).
        """
        self._timer = None
        resp = self.response
        if resp is None or resp._done:
            return
        now = self.loop.time()
        if self.paused:  # our reader is behind, not the server
            self._last_read = now
        deadline = self._last_read + self.pool.read_timeout
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._check)
            return
        self._lost(ReadTimeout(f"no answer within {self.pool.read_timeout:g}s"))
        self.abort()

    def pause(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self._last_read = self.loop.time()
            self.transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection at once."""
        self.reusable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def _lost(self, exc: HTTPError) -> None:
        """End the current exchange with ``exc`` (nothing happens if none is running)."""
        self.reusable = False
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(exc)
        resp = self.response
        if resp is not None and not resp._done:
            resp._fail(exc)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            dead_peer_detection(sock)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        resp = self.response
        if resp is not None and not resp._done:
            if (
                self.head is None
                and not resp.headers.get("content-length")
                and ("chunked" not in resp.headers.get("transfer-encoding", ""))
            ):
                resp._finish()  # a body that ends when the connection does
            else:
                reason = f": {exc}" if exc else " by the server"
                before = not self.got_bytes
                self._lost(ConnectionLost(f"connection closed{reason}", before_answer=before))
        self.pool.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # nothing was asked: a broken server
            self.abort()
            return
        self.got_bytes = True
        self._last_read = self.loop.time()
        head_pending = self.head is not None
        if head_pending:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._lost(ProtocolError(self._problem or f"invalid HTTP answer: {exc}"))
            self.abort()
            return
        if head_pending and self.head is not None and self.head_bytes > MAX_HEAD:
            self._lost(ProtocolError(f"the answer's head is over {MAX_HEAD} bytes"))
            self.abort()
            return
        if self.body:
            resp = self.response
            if resp is not None:
                resp._wake()
                self.buffered += len(data)
                if self.buffered > HIGH_WATER and not resp._done:
                    self.pause()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the answer

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        resp = self.response
        if resp is None:
            return
        if len(name) + len(value) > MAX_FIELD:
            self._problem = f"a header field of the answer is over {MAX_FIELD} bytes"
            raise ProtocolError(self._problem)  # stops the parser
        fields = resp.trailers if self._in_trailers else resp.headers
        fields[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        resp = self.response
        if resp is None or self.head is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.
            self._interim = True
            resp.headers = {}
            return
        head, self.head = self.head, None
        self._in_trailers = True
        resp.status = status
        if not self.parser.should_keep_alive():
            self.reusable = False
        if self._head_only:  # no body follows an answer to HEAD
            self.reusable = False
            resp._finish()
        if not head.done():
            head.set_result(resp)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        resp = self.response
        if resp is not None:
            resp._finish()


#: Opens a connection for a pool: attaches a transport to the protocol ``conn``.
Connector = Callable[["Pool", "Connection"], Awaitable[None]]


async def open_tcp(pool: Pool, conn: Connection) -> None:
    """The real network: TCP (and TLS for https) to the pool's host and port."""
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: conn, pool.host, pool.port, ssl=pool.ssl)


def _closed_by_peer(conn: Connection) -> bool:
    """Whether an idle connection has something to read: the server's close (or bytes it had
    no reason to send). Asked before reuse, because the loop may not have read it yet."""
    transport = conn.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Pool:
    """Keep-alive connections to one server, at most ``limit`` open at a time."""

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float,
        headers: Mapping[str, str] | None = None,
        connector: Connector = open_tcp,
        on_resend: Callable[[], None] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """``now``: monotonic seconds, for the idle connections' ages (a test's hand clock)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {public_url(url)!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.base_path = parts.path.rstrip("/")
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        host_header = parts.netloc.rpartition("@")[2]
        fixed_headers = {"Host": host_header, **(headers or {})}
        auth = basic_auth(url)
        if auth is not None and not any(k.lower() == "authorization" for k in fixed_headers):
            fixed_headers["Authorization"] = auth
        fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed_headers.items())
        self._fixed = fixed.encode("latin-1")
        self._heads: dict[tuple[str, str], bytes] = {}
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._connector = connector
        self._on_resend = on_resend
        self._now = now

    def request_bytes(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None = None
    ) -> bytes:
        """The request as written on the wire (the start line and fixed headers are cached;
        ``headers`` are this request's own)."""
        key = (method, path)
        head = self._heads.get(key)
        if head is None:
            line = f"{method} {self.base_path}{path} HTTP/1.1\r\n".encode("latin-1")
            head = self._heads[key] = line + self._fixed
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
        if body is None:
            if method in ("GET", "HEAD", "DELETE", "OPTIONS"):
                return head + b"\r\n"
            body = b""
        return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection for one request, and whether it served requests before."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise ConnectError("the client is closed")
            now = self._now()
            while self._idle:
                conn = self._idle.pop()
                transport = conn.transport
                alive = transport is not None and not transport.is_closing()
                if alive and now - conn.idle_since < self.keepalive and not _closed_by_peer(conn):
                    return conn, True
                self._drop(conn)
            if self._open < self.limit:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the turn this caller will not use
                raise
        self._open += 1
        conn = Connection(self, loop)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._connector(self, conn)
        except BaseException as exc:
            self._open -= 1
            self._wake_one()
            if isinstance(exc, TimeoutError):
                raise ConnectError(f"no connection within {self.connect_timeout:g}s") from None
            if isinstance(exc, OSError):
                raise ConnectError(str(exc) or type(exc).__name__) from None
            raise
        return conn, False

    def release(self, conn: Connection, *, reuse: bool) -> None:
        """Take a connection back after a request."""
        if conn.dropped:
            return
        conn.response = None
        conn.head = None
        transport = conn.transport
        if reuse and conn.reusable and not self._closed and transport is not None:
            if transport.is_closing():
                self._drop(conn)
                return
            if conn.paused:
                conn.resume()
            conn.idle_since = self._now()
            self._idle.append(conn)
            self._wake_one()
        else:
            conn.abort()
            self._drop(conn)

    def forget(self, conn: Connection) -> None:
        """The connection closed: an idle one leaves the pool (a busy one on release)."""
        if conn.response is None and conn in self._idle:
            self._idle.remove(conn)
            self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        if conn.dropped:
            return
        conn.dropped = True
        conn.abort()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def resent(self) -> None:
        if self._on_resend is not None:
            self._on_resend()

    async def aclose(self) -> None:
        """Close every idle connection and wake every waiter (they fail); busy connections
        close when released."""
        self._closed = True
        for conn in self._idle:
            self._drop(conn)
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


def may_resend(method: str, exc: ConnectionLost) -> bool:
    """Whether a request that met a closed pooled connection can be sent again (see the
    module's docstring): it never left, or it is idempotent and nothing came back."""
    return exc.unsent or (exc.before_answer and method in IDEMPOTENT)


async def request(
    pool: Pool,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    retry_stale: bool = True,
) -> Response:
    """Send one request and wait for the answer's headers; the body is for the caller to read.

    A request that met a pooled connection the server had closed is sent once more on a
    new connection when ``may_resend`` allows it (and ``retry_stale``).
    """
    data = pool.request_bytes(method, path, body, headers)
    head_only = method == "HEAD"
    while True:
        conn, reused = await pool.acquire()
        try:
            return await conn.send(data, head_only=head_only)
        except ConnectionLost as exc:
            pool.release(conn, reuse=False)
            if not (retry_stale and reused and may_resend(method, exc)):
                raise
            retry_stale = False
            pool.resent()
        except BaseException:
            pool.release(conn, reuse=False)
            raise
