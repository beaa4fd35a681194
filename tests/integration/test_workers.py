"""Several worker processes behave as one server.

/metrics adds every worker up: without that, each scrape would show whichever worker
answered it. Each worker accepts on a socket of its own, so a burst of keep-alive connections
is spread over all of them (with one shared socket, one worker took 59 of 64). A worker that
dies is replaced on the same socket without a refused connection; SIGHUP replaces them one by
one while serving; SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapter.api.answers import SHUTTING_DOWN
from tests.support import procfs
from tests.support.adapter_proc import REPO_ROOT, adapter_process, running_adapter
from tests.support.net import free_port

CHAT = {"model": "tiny-llm", "messages": [{"role": "user", "content": "hi"}], "stream": False}


@contextlib.contextmanager
def upstream_process(*args: str) -> Iterator[str]:
    """The benchmark's fake vLLM (raw asyncio) as a process, with these options."""
    port = free_port()
    log = REPO_ROOT / ".cache" / "logs" / f"fake-upstream-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fake_upstream", "--port", str(port), *args],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[str]:
    with upstream_process("--chunks", "5") as url:
        yield url


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    """A fake vLLM whose streams send a token every 50 ms."""
    with upstream_process("--delay", "0.05") as url:
        yield url


def test_two_workers_answer_and_report_metrics_together(fake_upstream: str) -> None:
    with running_adapter(fake_upstream, args=["--workers", "2"]) as url:
        body = {
            "model": "tiny-llm",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
        }
        with httpx.Client(timeout=30) as c:
            for _ in range(40):
                # a new connection each time, so both workers get some
                assert httpx.post(f"{url}/api/chat", json=body, timeout=30).status_code == 200
            totals = set()
            for _ in range(6):
                text = c.get(f"{url}/metrics", headers={"Connection": "close"}).text
                match = re.search(
                    r'ollama_adapter_requests_total\{endpoint="/api/chat",status="200"\} (\S+)',
                    text,
                )
                assert match, text[:2000]
                totals.add(float(match.group(1)))
    assert totals == {40.0}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _wait_for_workers(supervisor: int, n: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = procfs.workers(supervisor)
        if len(pids) == n:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"expected {n} workers, found {procfs.workers(supervisor)}")


def test_each_worker_accepts_on_its_own_socket_and_gets_a_share(fake_upstream: str) -> None:
    with adapter_process(fake_upstream, args=["--workers", "2"]) as (url, proc):
        port = _port(url)
        pids = _wait_for_workers(proc.pid, 2)
        held = procfs.sockets_by_pid(port, [proc.pid, *pids])
        listening = [held[p].get(procfs.LISTEN, set()) for p in pids]
        assert all(len(s) == 1 for s in listening), held
        assert listening[0] != listening[1]  # two sockets, not one shared
        assert held[proc.pid][procfs.LISTEN] == listening[0] | listening[1]

        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(64)]
        try:
            for c in conns:
                c.sendall(b"GET /api/version HTTP/1.1\r\nhost: t\r\n\r\n")
            for c in conns:
                assert c.recv(4096).startswith(b"HTTP/1.1 200")
            held = procfs.sockets_by_pid(port, pids)
            per_worker = [procfs.counts(held[p])[procfs.ESTABLISHED] for p in pids]
        finally:
            for c in conns:
                c.close()
    # The kernel hashes connections over the two sockets: 32 +- 4 each; 16 is 4 sigma off.
    assert sum(per_worker) == 64, per_worker
    assert min(per_worker) >= 16, per_worker


def test_a_dead_worker_is_replaced_and_no_connection_is_refused(
    fake_upstream: str, tmp_path: Path
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with adapter_process(fake_upstream, args=["--workers", "2"], env=env) as (url, proc):
        before = _wait_for_workers(proc.pid, 2)
        for _ in range(20):  # new connections: both workers count requests in flight
            httpx.post(f"{url}/api/chat", json=CHAT, headers={"Connection": "close"}, timeout=30)
        live = {p.name for p in shared.glob("gauge_live*.db")}
        assert {f"gauge_livesum_{pid}.db" for pid in before} <= live, live
        os.kill(before[0], signal.SIGKILL)
        # Connections hashed to the dead worker's socket wait in its backlog (the supervisor
        # keeps the socket) until the replacement accepts them.
        for _ in range(20):
            r = httpx.post(
                f"{url}/api/chat", json=CHAT, headers={"Connection": "close"}, timeout=30
            )
            assert r.status_code == 200
        after = _wait_for_workers(proc.pid, 2)
        assert before[1] in after and before[0] not in after
        # the dead worker's in-flight gauge no longer counts in /metrics
        assert not (shared / f"gauge_livesum_{before[0]}.db").exists()
        held = procfs.sockets_by_pid(_port(url), after)
        assert all(len(held[p].get(procfs.LISTEN, set())) == 1 for p in after), held


def test_sighup_replaces_every_worker_while_serving(fake_upstream: str) -> None:
    with adapter_process(fake_upstream, args=["--workers", "2"]) as (url, proc):
        before = set(_wait_for_workers(proc.pid, 2))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        after: set[int] = set()
        while time.monotonic() < deadline:
            r = httpx.post(
                f"{url}/api/chat", json=CHAT, headers={"Connection": "close"}, timeout=30
            )
            assert r.status_code == 200
            after = set(procfs.workers(proc.pid))
            if len(after) == 2 and not after & before:
                break
            time.sleep(0.05)
        assert len(after) == 2 and not after & before, (before, after)
        assert proc.poll() is None


def test_rolls_under_keep_alive_clients_lose_no_request(fake_upstream: str) -> None:
    """Three SIGHUP rolls while four keep-alive clients send requests back to back: every
    request is answered (a roll used to close idle connections a request was arriving on)."""
    with adapter_process(fake_upstream, args=["--workers", "2"]) as (url, proc):
        _wait_for_workers(proc.pid, 2)
        stop = threading.Event()
        failures: list[str] = []
        answered = [0] * 4

        def client(i: int) -> None:
            with httpx.Client(timeout=30) as c:
                while not stop.is_set():
                    try:
                        r = c.post(f"{url}/api/chat", json=CHAT)
                        if r.status_code == 200:
                            answered[i] += 1
                        else:
                            failures.append(f"{r.status_code} {r.text[:200]}")
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(3):
                before = set(procfs.workers(proc.pid))
                proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    after = set(procfs.workers(proc.pid))
                    if len(after) == 2 and not after & before:
                        break
                    time.sleep(0.05)
                assert len(after) == 2 and not after & before, (before, after)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert failures == []
        assert all(n > 0 for n in answered), answered


def test_sigterm_stops_the_supervisor_and_every_worker(fake_upstream: str) -> None:
    """And removes the metrics directory it made for the workers."""
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("vllm-adapter-metrics-*"))
    with adapter_process(fake_upstream, args=["--workers", "2"]) as (url, proc):
        pids = _wait_for_workers(proc.pid, 2)
        made = set(tmp.glob("vllm-adapter-metrics-*")) - before
        assert len(made) == 1, made
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not made.pop().exists()
        for pid in pids:
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)


def test_a_worker_that_cannot_start_stops_the_supervisor() -> None:
    """No restart loop: an app that fails to load ends the process with uvicorn's code 3."""
    code = (
        "import sys, uvicorn; from adapter import supervisor; "
        "sys.exit(supervisor.run(uvicorn.Config('no_such_module:app', host='127.0.0.1', "
        "port=0, workers=2)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 3, done.stderr.decode()[-2000:]
    assert b"failed to start" in done.stderr


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_gives_open_streams_their_grace_then_a_last_line(
    slow_upstream: str, workers: str
) -> None:
    """One worker (uvicorn alone) or several (the supervisor): a stream that outlasts
    ``ADAPTER_SHUTDOWN_GRACE`` gets Ollama-shaped last line, and the server exits cleanly."""
    env = {"ADAPTER_SHUTDOWN_GRACE": "1"}
    body = {**CHAT, "stream": True, "options": {"num_predict": 2000}}  # 100 s of tokens
    with (
        adapter_process(slow_upstream, env=env, args=["--workers", workers]) as (url, proc),
        httpx.stream("POST", f"{url}/api/chat", json=body, timeout=30) as resp,
    ):
        lines = resp.iter_lines()
        assert json.loads(next(lines))["done"] is False
        proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in lines if line]
        # uvicorn alone re-raises the signal once shut down (exit by SIGTERM, as asked); the
        # supervisor exits 0. Neither is killed.
        assert proc.wait(20) in (0, -signal.SIGTERM)
    assert rest[-1] == {"error": SHUTTING_DOWN}
    assert all(line["done"] is False for line in rest[:-1])


def test_sigterm_lets_a_stream_end_within_its_grace(slow_upstream: str) -> None:
    env = {"ADAPTER_SHUTDOWN_GRACE": "30"}
    body = {**CHAT, "stream": True, "options": {"num_predict": 20}}  # 1 s of tokens
    with (
        adapter_process(slow_upstream, env=env, args=["--workers", "2"]) as (url, proc),
        httpx.stream("POST", f"{url}/api/chat", json=body, timeout=30) as resp,
    ):
        lines = resp.iter_lines()
        assert json.loads(next(lines))["done"] is False
        proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in lines if line]
        assert proc.wait(20) == 0
    assert rest[-1]["done"] is True and rest[-1]["eval_count"] == 20
