"""The worker supervisor: its sockets (one per worker on one port, never a port in use, TCP),
its bounded stops and its heartbeat check."""

from __future__ import annotations

import asyncio
import multiprocessing
import select
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event

import pytest
import uvicorn

from adapter import supervisor


def test_one_listening_socket_per_worker_on_the_same_port() -> None:
    socks = supervisor.bind_sockets("127.0.0.1", 0, 3, 16)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 3 and len(ports) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in socks)
        assert all(s.get_inheritable() for s in socks)
        # each of them accepts connections
        port = ports.pop()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        # A connection the client sees open can reach the kernel's accept queue a moment later
        # (on a busy machine): wait for each with select, not one non-blocking pass.
        accepted = 0
        while accepted < 30:
            ready, _, _ = select.select(socks, [], [], 10)
            assert ready, f"only {accepted} of 30 connections were accepted"
            for s in ready:
                conn, _ = s.accept()
                conn.close()
                accepted += 1
        for c in clients:
            c.close()
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("reuseport", [False, True])
def test_a_port_in_use_is_refused(reuseport: bool) -> None:
    """Even by another SO_REUSEPORT listener (another adapter), which would share the port."""
    with socket.socket() as other:
        if reuseport:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            supervisor.bind_sockets("127.0.0.1", other.getsockname()[1], 2, 16)


async def test_accepted_connections_get_tcp_nodelay_under_the_stock_loop() -> None:
    """asyncio sets TCP_NODELAY on an accepted connection only when the listening socket
    says it is TCP: sockets made with protocol 0 left Nagle on (40 ms stalls on small writes)."""

    async def nodelay_of(listening: socket.socket) -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=listening)
        _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()
            server.close()

    ours = supervisor.bind_sockets("127.0.0.1", 0, 1, 16)[0]
    assert ours.proto == socket.IPPROTO_TCP
    assert await nodelay_of(ours) != 0
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # what the sockets were before
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    assert await nodelay_of(plain) == 0


def _ignore_sigterm_and_wait(ready: Event) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(60)


def _sleep(ready: Event) -> None:
    ready.set()
    time.sleep(60)


def _worker(target: Callable[[Event], None], beat: float) -> supervisor.Worker:
    """A stand-in worker process, started and past its set-up."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=target, args=(ready,))
    proc.start()
    assert ready.wait(30)
    heartbeat = ctx.Value("d", beat, lock=False)
    return supervisor.Worker(proc, ready, heartbeat)


def _supervisor(**kw: float) -> supervisor.Supervisor:
    config = uvicorn.Config("adapter.app:app_from_env")
    return supervisor.Supervisor(config, [], **kw)


def test_a_worker_that_outlasts_its_grace_is_killed() -> None:
    """One long stream must not block a roll or a stop forever."""
    worker = _worker(_ignore_sigterm_and_wait, 0.0)
    start = time.monotonic()
    _supervisor(grace=0.5)._stop_one(worker, timeout=0.5)
    assert worker.process.exitcode == -signal.SIGKILL
    assert time.monotonic() - start < 10


def test_a_worker_whose_loop_stopped_beating_is_killed_and_replaced() -> None:
    sup = _supervisor(worker_timeout=5)
    started: list[int] = []
    sup.start = started.append  # type: ignore[assignment,method-assign]
    hung = _worker(_sleep, time.monotonic() - 30)
    fresh = _worker(_sleep, time.monotonic())
    sup.workers = [hung, fresh]
    try:
        sup.check()
        assert hung.process.exitcode == -signal.SIGKILL
        assert started == [0]  # only the hung one is replaced
        assert fresh.process.is_alive()
    finally:
        for w in (hung, fresh):
            w.process.kill()
            w.process.join()
