"""The response head leaves with the first body bytes, never later than the loop step."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapter.server import AdapterHttpProtocol, AdapterServer, HeadHoldingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n"


class Recorder:
    """The few transport methods the proxy is asked for, recording writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def proxy() -> tuple[HeadHoldingTransport, Recorder]:
    rec = Recorder()
    return HeadHoldingTransport(rec, asyncio.get_running_loop()), rec  # type: ignore[arg-type]


async def test_head_and_first_body_bytes_are_one_write() -> None:
    t, rec = proxy()
    t.write(HEAD)
    assert rec.writes == []
    t.write(b'{"a":1}')
    t.write(b"more")
    assert rec.writes == [HEAD + b'{"a":1}', b"more"]
    await asyncio.sleep(0)
    assert rec.writes == [HEAD + b'{"a":1}', b"more"]  # nothing written twice


async def test_a_head_without_body_leaves_at_the_end_of_the_loop_step() -> None:
    t, rec = proxy()
    t.write(HEAD)
    await asyncio.sleep(0)
    assert rec.writes == [HEAD]


async def test_close_writes_a_held_head_first_and_other_calls_pass_through() -> None:
    t, rec = proxy()
    t.write(HEAD)
    assert not t.is_closing()
    t.close()
    assert rec.writes == [HEAD] and rec.closed and t.is_closing()


# --------------------------------------------------------------------------- a real uvicorn


class WriteLog:
    """The socket transport under the protocol, with every write it is asked for recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recording(base: type[HttpToolsProtocol], writes: list[bytes]) -> type[HttpToolsProtocol]:
    """``base`` with the writes reaching its socket recorded."""

    class Recording(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(cast(asyncio.Transport, WriteLog(transport, writes)))

    return Recording


async def json_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers as the adapter's endpoints do: the head, then the body, in one loop step."""
    assert scope["type"] == "http"
    headers = [(b"content-type", b"application/json"), (b"content-length", b"7")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"a":1}'})


class Server(uvicorn.Server):
    """uvicorn's server, with an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


async def served_writes(protocol: type[HttpToolsProtocol]) -> list[bytes]:
    """Run uvicorn with ``protocol`` on a free port, make one request; the writes it made."""
    writes: list[bytes] = []
    config = uvicorn.Config(
        json_app,
        host="127.0.0.1",
        port=0,
        http=recording(protocol, writes),
        lifespan="off",
        log_level="warning",
        loop="asyncio",
    )
    server = Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await server.listening.wait()
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"a":1}')
    finally:
        server.should_exit = True
        await serving
    return [w for w in writes if w]


async def test_under_a_real_uvicorn_the_head_and_the_body_leave_in_one_write() -> None:
    """The subclass still fits the uvicorn it is pinned to (the server stack is bounded in
    pyproject.toml and locked in constraints.txt): the head waits for the first body bytes."""
    writes = await served_writes(AdapterHttpProtocol)
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b'{"a":1}')


async def test_stock_uvicorn_writes_the_head_and_the_body_apart() -> None:
    """What the subclass saves, and so what the test above would see if it stopped working."""
    writes = await served_writes(HttpToolsProtocol)
    assert len(writes) == 2, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[1] == b'{"a":1}'


async def second_request_during_shutdown(protocol: type[HttpToolsProtocol]) -> bytes:
    """One answered request on a keep-alive connection; then the server begins to shut down,
    and a second request comes on that idle connection. What the client reads for it."""
    shutting_down = asyncio.Event()

    class Watched(protocol):  # type: ignore[valid-type,misc]
        def shutdown(self) -> None:
            super().shutdown()
            shutting_down.set()

    config = uvicorn.Config(
        json_app, host="127.0.0.1", port=0, http=Watched, lifespan="off", log_level="warning"
    )
    server = Server(config)
    serving = asyncio.create_task(server.serve())
    await server.listening.wait()
    port = server.servers[0].sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(7) == b'{"a":1}'
        server.should_exit = True
        await asyncio.wait_for(shutting_down.wait(), 5)
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await asyncio.wait_for(serving, 10)


async def test_a_request_on_an_idle_connection_at_shutdown_is_answered_then_closed() -> None:
    """A roll or a stop must not drop a keep-alive client's next request."""
    answer = await second_request_during_shutdown(AdapterHttpProtocol)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close\r\n" in answer.lower() and answer.endswith(b'{"a":1}')


async def test_stock_uvicorn_closes_an_idle_connection_at_shutdown() -> None:
    """What the protocol changes: the same request gets nothing (the connection closes)."""
    assert await second_request_during_shutdown(HttpToolsProtocol) == b""


def idle_server(tick: float) -> tuple[AdapterServer, list[int]]:
    """An ``AdapterServer`` (not started) whose ticks are recorded."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    config = uvicorn.Config(app, log_level="warning", loop="asyncio")
    config.load()
    server = AdapterServer(config)
    server.TICK_SECONDS = tick
    ticks: list[int] = []
    on_tick = server.on_tick

    async def recorded(counter: int) -> bool:
        ticks.append(counter)
        return await on_tick(counter)

    server.on_tick = recorded  # type: ignore[method-assign]
    return server, ticks


async def test_the_idle_server_sleeps_between_ticks_and_wakes_at_once_to_exit() -> None:
    """uvicorn polls ten times a second; this one waits for its tick or for ``should_exit``."""
    server, ticks = idle_server(tick=3600.0)
    loop = asyncio.create_task(server.main_loop())
    await asyncio.sleep(0.3)  # three of uvicorn's polls
    assert ticks == [0]
    server.should_exit = True
    await asyncio.wait_for(loop, 10)  # not an hour
    assert ticks == [0, 10]


async def test_every_tick_renews_the_date_header() -> None:
    server, ticks = idle_server(tick=0.01)
    on_tick = server.on_tick

    async def until_four(counter: int) -> bool:
        return await on_tick(counter) or len(ticks) == 4

    server.on_tick = until_four  # type: ignore[method-assign]
    await asyncio.wait_for(server.main_loop(), 10)
    # uvicorn's on_tick renews the date when the counter is a multiple of 10
    assert ticks[:4] == [0, 10, 20, 30]
    assert [name for name, _ in server.server_state.default_headers] == [b"date", b"server"]


async def test_exit_asked_before_the_loop_started_ends_it_at_once() -> None:
    server, ticks = idle_server(tick=3600.0)
    server.should_exit = True
    await asyncio.wait_for(server.main_loop(), 10)
    assert ticks == [0]
