"""The upstream HTTP client against a scripted raw-socket server: framing, pooling, failures."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapter.backends.httpclient import (
    DEAD_PEER_IDLE,
    DEAD_PEER_INTERVAL,
    DEAD_PEER_PROBES,
    ConnectError,
    ConnectionLost,
    Pool,
    ProtocolError,
    ReadTimeout,
    public_url,
    request,
)


@dataclass
class Seen:
    """One request as the server read it."""

    head: bytes
    body: bytes
    conn: int


Behaviour = Callable[[Seen, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Server:
    """A raw HTTP/1.1 server whose answers each test scripts; it records what it saw."""

    behave: Behaviour
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    open_peak: int = 0
    closed_by_client: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        self.open_now += 1
        self.open_peak = max(self.open_peak, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                seen = Seen(head, body, conn)
                self.requests.append(seen)
                if not await self.behave(seen, writer):
                    return
        except asyncio.CancelledError:
            return  # the test is over and the server closed: end quietly
        finally:
            self.open_now -= 1
            writer.close()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for ``condition`` to hold (checked as the loop turns); fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - no event says it; the loop must turn
            await asyncio.sleep(0.001)


def answer(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status.encode(),
        len(body),
        extra,
        body,
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def echo(seen: Seen, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(b"you sent " + seen.body, extra=b"Content-Type: text/plain\r\n"))
    await writer.drain()
    return True


@asynccontextmanager
async def serving(behave: Behaviour) -> AsyncIterator[Server]:
    server = Server(behave)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()


def pool_for(server: Server, now: Callable[[], float] = time.monotonic, **kw: float) -> Pool:
    opts: dict[str, float] = {
        "limit": 8,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "keepalive": 30.0,
    }
    opts.update(kw)
    return Pool(
        f"http://127.0.0.1:{server.port}/base",
        limit=int(opts["limit"]),
        connect_timeout=opts["connect_timeout"],
        read_timeout=opts["read_timeout"],
        keepalive=opts["keepalive"],
        headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
        now=now,
    )


async def fetch(
    pool: Pool, method: str = "POST", path: str = "/x", body: bytes | None = b"{}"
) -> tuple[int, dict[str, str], bytes]:
    resp = await request(pool, method, path, body)
    try:
        return resp.status, resp.headers, await resp.read()
    finally:
        resp.release()


async def test_request_line_headers_and_body_on_one_reused_connection() -> None:
    async with serving(echo) as server:
        pool = pool_for(server)
        status, headers, body = await fetch(pool, body=b'{"a":1}')
        assert (status, body) == (200, b'you sent {"a":1}')
        assert headers["content-type"] == "text/plain"
        assert (await fetch(pool, "GET", "/v1/models", None))[2] == b"you sent "
        first, second = server.requests
        lines = first.head.split(b"\r\n")
        assert lines[0] == b"POST /base/x HTTP/1.1"
        assert b"Host: 127.0.0.1:%d" % server.port in lines
        assert {b"Content-Type: application/json", b"Authorization: Bearer k"} <= set(lines)
        assert b"Content-Length: 7" in lines
        assert second.head.startswith(b"GET /base/v1/models HTTP/1.1\r\n")
        assert b"content-length" not in second.head.lower()
        assert server.connections == 1
        await pool.aclose()


async def test_chunked_answer_streams_as_it_arrives() -> None:
    go_on = asyncio.Event()

    async def stream(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n"))
        await writer.drain()
        await go_on.wait()
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True

    async with serving(stream) as server:
        pool = pool_for(server)
        resp = await request(pool, "POST", "/s", b"{}")
        pieces = resp.iter_any()
        assert await anext(pieces) == b"data: 1\n\ndata: 2\n\n"  # before the server goes on
        go_on.set()
        assert b"".join([p async for p in pieces]) == b"data: [DONE]\n\n"
        assert resp.complete
        resp.release()
        await fetch(pool, path="/s")  # the connection went back to the pool
        assert server.connections == 1
        await pool.aclose()


async def test_body_until_close_is_read_whole_and_not_reused() -> None:
    async def until_close(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    async with serving(until_close) as server:
        pool = pool_for(server)
        assert (await fetch(pool))[2] == b"all of it"
        assert (await fetch(pool))[2] == b"all of it"
        assert server.connections == 2
        await pool.aclose()


async def test_head_answer_has_no_body() -> None:
    async def head(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
        await writer.drain()
        return True

    async with serving(head) as server:
        pool = pool_for(server)
        status, headers, body = await asyncio.wait_for(fetch(pool, "HEAD", "/", None), 2)
        assert (status, headers["content-length"], body) == (200, "99", b"")
        await pool.aclose()


async def test_refused_connection_is_a_connect_error() -> None:
    async with serving(echo) as server:
        port = server.port
    pool = Pool(f"http://127.0.0.1:{port}", limit=4, connect_timeout=2, read_timeout=2, keepalive=5)
    with pytest.raises(ConnectError):
        await request(pool, "GET", "/", None)
    with pytest.raises(ConnectError):  # and the failed attempt gave its slot back
        await request(pool, "GET", "/", None)
    assert pool._open == 0


async def test_silent_server_is_a_read_timeout_before_and_during_the_answer() -> None:
    async def silent(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.body == b"mid":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"a"))
            await writer.drain()
        await asyncio.sleep(3)
        return False

    async with serving(silent) as server:
        pool = pool_for(server, read_timeout=0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ReadTimeout):
            await request(pool, "POST", "/", b"head")
        assert loop.time() - start < 2
        resp = await request(pool, "POST", "/", b"mid")
        got = []
        with pytest.raises(ReadTimeout):
            async for piece in resp.iter_any():
                got.append(piece)
        assert got == [b"a"]
        resp.release()
        assert pool._open == 0  # both connections were dropped
        await pool.aclose()


@pytest.mark.parametrize(("method", "tries"), [("GET", 3), ("POST", 2)])
async def test_a_server_that_drops_every_request(method: str, tries: int) -> None:
    """After one answer the server closes every connection on the next request unanswered:
    a GET is resent once on a new connection, then fails; a POST, which reached the server,
    fails at once (it may have been applied)."""

    async def drop(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if len(server.requests) == 1:
            writer.write(answer(b"ok"))
            await writer.drain()
            return True
        return False

    async with serving(drop) as server:
        pool = pool_for(server)
        await fetch(pool, method, body=None if method == "GET" else b"{}")
        with pytest.raises(ConnectionLost):
            await fetch(pool, method, body=None if method == "GET" else b"{}")
        assert len(server.requests) == tries
        await pool.aclose()


async def test_pool_limit_queues_callers() -> None:
    release = asyncio.Event()

    async def slow(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        writer.write(answer(seen.body))
        await writer.drain()
        return True

    async with serving(slow) as server:
        pool = pool_for(server, limit=2)
        tasks = [asyncio.ensure_future(fetch(pool, body=b"%d" % i)) for i in range(6)]
        await until(lambda: len(server.requests) == 2 and len(pool._waiters) == 4)
        assert server.open_now == 2
        release.set()
        bodies = [b for _, _, b in await asyncio.gather(*tasks)]
        assert bodies == [b"%d" % i for i in range(6)]
        assert server.open_peak == 2 and server.connections == 2
        await pool.aclose()


async def test_close_drops_the_connection_so_the_server_sees_the_client_leave() -> None:
    async def endless(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(chunk(b"tok "))
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            return False

    async with serving(endless) as server:
        pool = pool_for(server)
        resp = await request(pool, "POST", "/", b"{}")
        assert await anext(resp.iter_any())
        resp.close()
        await until(lambda: server.open_now == 0)
        assert pool._open == 0
        await pool.aclose()


async def test_cancelled_request_frees_its_slot_and_closes_upstream() -> None:
    async def never(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        if seen.body == b"never":
            await asyncio.sleep(3)
            return False
        return await echo(seen, writer)

    async with serving(never) as server:
        pool = pool_for(server, limit=1)
        task = asyncio.ensure_future(fetch(pool, body=b"never"))
        await until(lambda: len(server.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await asyncio.wait_for(fetch(pool, body=b"next"), 2))[2] == b"you sent next"
        assert server.connections == 2
        await pool.aclose()


async def test_slow_reader_pauses_the_upstream_and_loses_nothing() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, well above the high-water mark

    async def big(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(payload), 16384):
            writer.write(chunk(payload[i : i + 16384]))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async with serving(big) as server:
        pool = pool_for(server)
        resp = await request(pool, "POST", "/", b"{}")
        conn = resp._conn
        assert conn is not None
        await until(lambda: conn.paused)
        got = b"".join([piece async for piece in resp.iter_any()])
        assert got == payload and not conn.paused
        resp.release()
        assert (await fetch(pool))[2] == payload  # read() whole: taken as it comes, no stall
        assert server.connections == 1
        await pool.aclose()


async def test_garbage_is_a_protocol_error() -> None:
    async def garbage(seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)
        return False

    async with serving(garbage) as server:
        pool = pool_for(server)
        with pytest.raises(ProtocolError):
            await fetch(pool)
        await pool.aclose()


async def test_idle_connections_expire_after_keepalive() -> None:
    """The idle connection's age is read from the pool's clock (a hand clock here), so the
    test does not depend on how fast this machine runs."""
    now = [100.0]
    async with serving(echo) as server:
        pool = pool_for(server, keepalive=30, now=lambda: now[0])
        await fetch(pool)
        now[0] += 29.9  # younger than keepalive: reused
        await fetch(pool)
        assert server.connections == 1
        now[0] += 30.1  # idle longer than keepalive: the connection has expired
        await fetch(pool)
        assert server.connections == 2
        await until(lambda: server.open_now == 1)  # the expired one was closed, not left open
        await pool.aclose()


@pytest.mark.parametrize("explicit", [False, True])
async def test_credentials_in_the_url_are_sent_as_basic_auth(explicit: bool) -> None:
    """Percent-escapes decoded; an Authorization header the caller gives (VLLM_API_KEY) wins."""
    async with serving(echo) as server:
        url = f"http://us%40er:p%3Ass@127.0.0.1:{server.port}"
        headers = {"Authorization": "Bearer k"} if explicit else {}
        pool = Pool(url, limit=1, connect_timeout=2, read_timeout=5, keepalive=5, headers=headers)
        assert (await fetch(pool, "GET", "/v1/models", None))[0] == 200
        lines = server.requests[0].head.split(b"\r\n")
        auth = [line for line in lines if line.lower().startswith(b"authorization:")]
        # base64 of "us@er:p:ss"
        assert auth == [
            b"Authorization: Bearer k" if explicit else b"Authorization: Basic dXNAZXI6cDpzcw=="
        ]
        assert b"Host: 127.0.0.1:%d" % server.port in lines
        await pool.aclose()


def test_public_url_hides_the_credentials() -> None:
    assert public_url("http://u:secret@vllm:8000/x") == "http://***@vllm:8000/x"
    assert public_url("http://vllm:8000/v1") == "http://vllm:8000/v1"
    assert public_url("https://token@vllm") == "https://***@vllm"
    with pytest.raises(ValueError) as err:
        Pool("ftp://u:secret@x", limit=1, connect_timeout=1, read_timeout=1, keepalive=1)
    assert "secret" not in str(err.value)


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        Pool("ftp://x", limit=1, connect_timeout=1, read_timeout=1, keepalive=1)


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    args += ["-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", *args], check=True, capture_output=True)
    return cert, key


async def test_https_upstream_with_a_private_ca(
    tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM behind TLS: the certificate is checked against the trust store, which
    ``SSL_CERT_FILE`` extends with a private CA (as in the deployment guide)."""
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = Server(echo)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        untrusted = Pool(
            f"https://localhost:{port}", limit=2, connect_timeout=2, read_timeout=2, keepalive=5
        )
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await request(untrusted, "GET", "/", None)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        pool = Pool(
            f"https://localhost:{port}", limit=2, connect_timeout=2, read_timeout=2, keepalive=5
        )
        status, _, body = await fetch(pool, body=b"secret")
        assert (status, body) == (200, b"you sent secret")
        await pool.aclose()
    finally:
        srv.close()


async def test_a_peer_that_stops_answering_is_given_up_by_tcp_itself() -> None:
    """Keep-alive probes and a user timeout on every upstream socket: a cut network ends a
    stream that waits for its next token in about 11 s, not at the read timeout."""
    async with serving(echo) as server:
        pool = pool_for(server)
        resp = await request(pool, "POST", "/x", b"{}")
        try:
            conn = resp._conn
            assert conn is not None and conn.transport is not None
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            tcp = socket.IPPROTO_TCP
            assert sock.getsockopt(tcp, socket.TCP_KEEPIDLE) == DEAD_PEER_IDLE
            assert sock.getsockopt(tcp, socket.TCP_KEEPINTVL) == DEAD_PEER_INTERVAL
            assert sock.getsockopt(tcp, socket.TCP_KEEPCNT) == DEAD_PEER_PROBES
            given_up_ms = 1000 * (DEAD_PEER_IDLE + DEAD_PEER_INTERVAL * DEAD_PEER_PROBES)
            assert sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT) == given_up_ms <= 15_000
            await resp.read()
        finally:
            resp.release()
        await pool.aclose()
