"""Several worker processes, each accepting on a listening socket of its own (SO_REUSEPORT).

uvicorn's own ``workers=N`` shares one listening socket between its workers. Whichever worker
wakes first accepts every connection waiting at that moment, so the keep-alive connections of
a client pool opened together land on one or two workers and stay there: measured with two
workers and 64 connections, 44/20, 59/5 and 17/47, and in the benchmark's non-streaming cell
64/0, where the second worker added nothing. Here the supervisor binds one ``SO_REUSEPORT``
socket per worker and the kernel spreads new connections over them by a hash of their
addresses. The supervisor keeps the sockets, so a worker that dies is replaced on the same
socket and connections that arrive meanwhile wait in its backlog instead of being refused.

Linux only (elsewhere ``SO_REUSEPORT`` does not balance); :func:`available` says so and the
command line falls back to uvicorn's supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess

import uvicorn

from adapter.metrics import worker_exited

logger = logging.getLogger("uvicorn.error")

#: The exit code uvicorn gives a server that could not start (its ``STARTUP_FAILURE``).
STARTUP_FAILURE = 3
_PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Whether the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_sockets(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` sharing the port through SO_REUSEPORT.

    The first bind is made without SO_REUSEPORT and then let go, so that a port already in
    use by anyone (another adapter included, which would otherwise share our port) fails
    here with ``OSError`` instead of silently splitting the traffic.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]  # port 0: every worker gets the same free port
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
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


def _serve(config: uvicorn.Config, sock: socket.socket, parent: int) -> None:
    """A worker process: uvicorn serving the app on its own socket."""
    _exit_with_parent(parent)
    config.configure_logging()
    try:
        config.load()  # exits with 1 when the app cannot be imported or built
    except SystemExit:
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Starts one worker per socket, replaces workers that die, stops them all on a signal."""

    #: How often dead workers are looked for, in seconds.
    CHECK_INTERVAL = 0.5

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.workers: list[BaseProcess | None] = [None] * len(sockets)
        self.should_exit = threading.Event()
        self.exit_code = 0
        self._ctx = multiprocessing.get_context("spawn")

    def start(self, index: int) -> None:
        """Start the worker for socket ``index``."""
        proc = self._ctx.Process(
            target=_serve,
            args=(self.config, self.sockets[index], os.getpid()),
            name=f"adapter-worker-{index}",
        )
        proc.start()
        self.workers[index] = proc
        logger.info("Started worker [%s] on socket %d", proc.pid, index)

    def check(self) -> None:
        """Replace each worker that has exited; stop everything if one failed to start."""
        for index, proc in enumerate(self.workers):
            if proc is None or proc.is_alive() or self.should_exit.is_set():
                continue
            proc.join()
            if proc.pid is not None:
                worker_exited(proc.pid)  # its in-flight count no longer adds up in /metrics
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

    def restart(self) -> None:
        """Replace every worker, one at a time, each new one before its old one stops."""
        for index, old in enumerate(self.workers):
            if self.should_exit.is_set():
                return
            self.start(index)
            if old is not None and old.pid is not None and old.is_alive():
                os.kill(old.pid, signal.SIGTERM)
                old.join()

    def stop(self) -> None:
        """SIGTERM every worker (uvicorn then finishes open requests) and wait for them.

        Our copies of the sockets are closed first: once the workers close theirs, new
        connections are refused at once instead of waiting in a backlog nobody accepts.
        """
        for sock in self.sockets:
            sock.close()
        for proc in self.workers:
            if proc is not None and proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            if proc is not None:
                proc.join()

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


def run(config: uvicorn.Config) -> int:
    """Serve ``config.app`` with ``config.workers`` workers; the process exit code."""
    try:
        sockets = bind_sockets(config.host, config.port, config.workers, config.backlog)
    except OSError as exc:
        logger.error("Cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1
    return Supervisor(config, sockets).run()
