"""Several worker processes, each accepting on a listening socket of its own (SO_REUSEPORT).

uvicorn's own ``workers=N`` shares one listening socket between its workers. Whichever worker
wakes first accepts every connection waiting at that moment, so the keep-alive connections of
a client pool opened together land on one or two workers and stay there (measured: docs/
performance.md, "Figures behind the code"). Here the supervisor binds one ``SO_REUSEPORT``
socket per worker and the kernel spreads new connections over them by a hash of their
addresses. The supervisor keeps the sockets, so a worker that dies is replaced on the same
socket and connections that arrive meanwhile wait in its backlog instead of being refused.

A roll (SIGHUP) starts each new worker and waits until it serves before the old one stops
accepting; the old one then finishes what it accepted (``AdapterHttpProtocol`` answers a
request that arrives on an idle keep-alive connection, with ``Connection: close``, instead of
closing under it). Every stop is bounded: a worker still alive ``grace`` seconds after its
SIGTERM is killed. Each worker's event loop beats a heartbeat; one that has not beaten for
``worker_timeout`` seconds (a loop stuck in a blocking call) is killed and replaced.

Linux only (elsewhere ``SO_REUSEPORT`` does not balance); :func:`available` says so and the
command line falls back to uvicorn's supervisor.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from ctypes import c_double
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

import uvicorn

from adapter.metrics import worker_exited
from adapter.server import AdapterServer

logger = logging.getLogger("uvicorn.error")

#: The exit code uvicorn gives a server that could not start (its ``STARTUP_FAILURE``).
STARTUP_FAILURE = 3
_PR_SET_PDEATHSIG = 1
#: How often a worker's event loop beats its heartbeat, in seconds.
HEARTBEAT_SECONDS = 1.0


def available() -> bool:
    """Whether the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_sockets(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` sharing the port through SO_REUSEPORT.

    The first bind is made without SO_REUSEPORT and then let go, so that a port already in
    use by anyone (another adapter included, which would otherwise share our port) fails
    here with ``OSError`` instead of silently splitting the traffic. The sockets are made
    with ``IPPROTO_TCP`` explicitly: asyncio turns ``TCP_NODELAY`` on for accepted
    connections only when the listening socket says it is TCP (protocol 0 does not).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]  # port 0: every worker gets the same free port
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _exit_with_parent(parent: int) -> None:
    """Have the kernel SIGTERM this process when the supervisor dies (Linux prctl)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not glibc/musl Linux
        return
    if os.getppid() != parent:  # it died before the request above
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerServer(AdapterServer):
    """uvicorn's server that says when it listens and beats a heartbeat from its loop."""

    def __init__(self, config: uvicorn.Config, ready: Event, heartbeat: c_double):
        super().__init__(config)
        self._ready = ready
        self._heartbeat = heartbeat

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._beat()
            self._ready.set()

    def _beat(self) -> None:
        # time.monotonic() is CLOCK_MONOTONIC: the same clock in the supervisor's process.
        self._heartbeat.value = time.monotonic()
        asyncio.get_running_loop().call_later(HEARTBEAT_SECONDS, self._beat)


def _serve(
    config: uvicorn.Config,
    sock: socket.socket,
    parent: int,
    ready: Event,
    heartbeat: c_double,
) -> None:
    """A worker process: uvicorn serving the app on its own socket."""
    _exit_with_parent(parent)
    config.configure_logging()
    try:
        config.load()  # exits with 1 when the app cannot be imported or built
    except SystemExit:
        sys.exit(STARTUP_FAILURE)
    server = WorkerServer(config, ready, heartbeat)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


@dataclass
class Worker:
    """One worker process and what it shares with the supervisor."""

    process: BaseProcess
    ready: Event
    heartbeat: c_double
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def silent_for(self, now: float) -> float:
        """Seconds since its loop last beat (0 until it serves)."""
        beat = self.heartbeat.value
        return now - beat if beat else 0.0


class Supervisor:
    """Starts one worker per socket, replaces workers that die or hang, stops them all."""

    #: How often workers are looked at, in seconds.
    CHECK_INTERVAL = 0.5
    #: How long a new worker may take to listen before a roll gives up on it.
    START_TIMEOUT = 60.0

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[socket.socket],
        *,
        grace: float = 30.0,
        worker_timeout: float = 60.0,
    ) -> None:
        self.config = config
        self.sockets = sockets
        self.grace = grace
        self.worker_timeout = worker_timeout
        self.workers: list[Worker | None] = [None] * len(sockets)
        self.should_exit = threading.Event()
        self.exit_code = 0
        self._ctx = multiprocessing.get_context("spawn")

    def start(self, index: int) -> Worker:
        """Start a worker for socket ``index`` (it replaces the one there, if any)."""
        ready = self._ctx.Event()
        heartbeat = self._ctx.Value("d", 0.0, lock=False)
        proc = self._ctx.Process(
            target=_serve,
            args=(self.config, self.sockets[index], os.getpid(), ready, heartbeat),
            name=f"adapter-worker-{index}",
        )
        proc.start()
        worker = Worker(proc, ready, heartbeat)
        self.workers[index] = worker
        logger.info("Started worker [%s] on socket %d", proc.pid, index)
        return worker

    def _stop_one(self, worker: Worker, *, timeout: float) -> None:
        """SIGTERM a worker (it finishes its open requests), SIGKILL it if it outlasts
        ``timeout``; wait for it either way."""
        proc = worker.process
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)
        proc.join(timeout)
        if proc.is_alive() and proc.pid is not None:
            logger.warning("Worker [%s] still running after %.0fs: killing it", proc.pid, timeout)
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
        if proc.pid is not None:
            worker_exited(proc.pid)  # its in-flight count no longer adds up in /metrics

    def check(self) -> None:
        """Replace each worker that exited or hangs; stop everything if one failed to start."""
        now = time.monotonic()
        for index, worker in enumerate(self.workers):
            if worker is None or self.should_exit.is_set():
                continue
            proc = worker.process
            if proc.is_alive():
                silent = worker.silent_for(now)
                if silent <= self.worker_timeout:
                    continue
                logger.error(
                    "Worker [%s] has not answered its heartbeat for %.0fs (its event loop is "
                    "blocked): killing it",
                    proc.pid,
                    silent,
                )
                if proc.pid is not None:
                    os.kill(proc.pid, signal.SIGKILL)
            proc.join()
            if proc.pid is not None:
                worker_exited(proc.pid)
            if proc.exitcode == STARTUP_FAILURE:
                # Settings, app or upstream wiring are broken: a restart would fail the same way.
                logger.error("Worker [%s] failed to start; stopping", proc.pid)
                self.exit_code = STARTUP_FAILURE
                self.should_exit.set()
                return
            logger.warning(
                "Worker [%s] exited with code %s; starting another", proc.pid, proc.exitcode
            )
            self.start(index)

    def _wait_ready(self, worker: Worker) -> bool:
        deadline = time.monotonic() + self.START_TIMEOUT
        while not worker.ready.wait(0.05):
            if not worker.process.is_alive() or time.monotonic() > deadline:
                return False
            if self.should_exit.is_set():
                return False
        return True

    def restart(self) -> None:
        """Replace every worker, one at a time: each new one serves before its old one stops.

        A new worker that cannot start ends the roll, with the old workers still serving.
        """
        for index, old in enumerate(self.workers):
            if self.should_exit.is_set():
                return
            new = self.start(index)
            if not self._wait_ready(new):
                logger.error("New worker [%s] did not start; the roll stops here", new.pid)
                self._stop_one(new, timeout=self.grace)
                self.workers[index] = old
                return
            if old is not None:
                self._stop_one(old, timeout=self.grace + 5)

    def stop(self) -> None:
        """SIGTERM every worker (each finishes open requests, up to ``grace`` seconds) and wait
        for them, killing any that outlasts it.

        Our copies of the sockets are closed first: once the workers close theirs, new
        connections are refused at once instead of waiting in a backlog nobody accepts.
        """
        for sock in self.sockets:
            sock.close()
        running = [w for w in self.workers if w is not None]
        for worker in running:
            if worker.pid is not None and worker.process.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5
        for worker in running:
            self._stop_one(worker, timeout=max(0.0, deadline - time.monotonic()))

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM (SIGHUP replaces the workers); the exit code (3 when a
        worker failed to start)."""
        hup = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.should_exit.set())
        signal.signal(signal.SIGHUP, lambda *_: hup.set())
        host, port = self.sockets[0].getsockname()[:2]
        logger.info(
            "Started supervisor [%s]: %d workers on http://%s:%s, one socket each",
            os.getpid(),
            len(self.sockets),
            f"[{host}]" if ":" in host else host,
            port,
        )
        try:
            for index in range(len(self.sockets)):
                self.start(index)
            while not self.should_exit.wait(self.CHECK_INTERVAL):
                if hup.is_set():
                    hup.clear()
                    logger.info("SIGHUP: replacing the workers one by one")
                    self.restart()
                self.check()
        finally:
            self.stop()
        logger.info("Stopped supervisor [%s]", os.getpid())
        return self.exit_code


def run(config: uvicorn.Config, *, grace: float = 30.0, worker_timeout: float = 60.0) -> int:
    """Serve ``config.app`` with ``config.workers`` workers; the process exit code."""
    try:
        sockets = bind_sockets(config.host, config.port, config.workers, config.backlog)
    except OSError as exc:
        logger.error("Cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1
    return Supervisor(config, sockets, grace=grace, worker_timeout=worker_timeout).run()
