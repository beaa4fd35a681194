"""Subprocess helpers: start/stop pinned servers, readiness, RSS and CPU accounting via /proc."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(want: int = 65536) -> None:
    """Raise the open-files soft limit (inherited by children) for 1,000+ streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def keep_cpus_awake() -> int:
    """Ask the kernel (PM QoS) for zero wake-up latency; holds while the returned fd is open.

    On a VM guest whose idle CPUs halt (haltpoll with guest_halt_poll_ns=0, as here), waking
    a CPU for each network hop costs tens of microseconds, several times over per proxied
    request; with this, idle CPUs poll instead. Needs root.
    """
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError as exc:
        raise SystemExit(f"--keep-cpus-awake: cannot open /dev/cpu_dma_latency: {exc}") from None
    os.write(fd, (0).to_bytes(4, "little", signed=True))
    return fd


def vllm_cpus() -> dict[str, str]:
    """CPU affinity of every local vLLM process (API server, engine core, workers), by name.

    Recorded with real-vLLM runs: on a small machine, where vLLM's processes run decides
    whether the adapter gets a CPU of its own (docs/performance.md).
    """
    out: dict[str, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            comm = (d / "comm").read_text().strip()
            cpus = sorted(os.sched_getaffinity(int(d.name)))
        except OSError:
            continue
        if b"vllm.entrypoints" in cmd or comm.startswith("VLLM::"):
            name = comm if comm.startswith("VLLM::") else "api_server"
            out[f"{name} {d.name}"] = ",".join(map(str, cpus))
    return out


def vllm_api_server_pids() -> list[int]:
    """The local vLLM API-server processes (``vllm serve`` or ``vllm.entrypoints``), not its
    engine core or workers (``VLLM::`` names)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            comm = (d / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("VLLM::"):
            continue
        serve = any(p.endswith(b"/vllm") or p == b"vllm" for p in cmd) and b"serve" in cmd
        if serve or any(b"vllm.entrypoints" in p for p in cmd):
            found.append(int(d.name))
    return found


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path (no proxies)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class Server:
    """A started subprocess in its own session (so its children stop with it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def pid(self) -> int:
        """Process id."""
        return self.proc.pid

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(grace)
        except ProcessLookupError:
            pass

    def log_tail(self, n: int = 2000) -> str:
        """The end of the process's output."""
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def start(
    name: str,
    cmd: list[str],
    cpus: list[int] | None,
    log: Path,
    stdout: int | IO[bytes] | None = None,
) -> Server:
    """Start ``cmd`` pinned to ``cpus``; stderr (and stdout unless given) go to ``log``."""
    fh = log.open("wb")
    proc = subprocess.Popen(
        cmd,
        stdout=stdout if stdout is not None else fh,
        stderr=fh,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if cpus:
        os.sched_setaffinity(proc.pid, set(cpus))
    return Server(name, proc, log)


def wait_ready_line(srv: Server, timeout: float = 20.0) -> int:
    """Read ``READY <port>`` from the server's stdout pipe."""
    assert srv.proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = srv.proc.stdout.readline()
        if line.startswith(b"READY "):
            return int(line.split()[1])
        if not line and srv.proc.poll() is not None:
            break
    raise RuntimeError(f"{srv.name} did not start:\n{srv.log_tail()}")


def wait_http(srv: Server, port: int, path: str, body: bytes, timeout: float = 60.0) -> None:
    """Poll until GET ``path`` answers 200 with ``body`` in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.name} exited:\n{srv.log_tail()}")
        try:
            status, data = http_get(port, path)
            if status == 200 and body in data:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{srv.name} not ready after {timeout}s:\n{srv.log_tail()}")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    parents: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def worker_pids(pid: int, workers: int) -> list[int]:
    """The adapter's request-serving processes: the master itself for one worker, else its
    spawned children (uvicorn's supervisor serves nothing; the resource tracker is left out)."""
    if workers <= 1:
        return [pid]
    out = []
    for p in tree(pid)[1:]:
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            out.append(p)
    return out


class CpuQuota:
    """A CPU-time cap per process (cgroup v1 ``cpu`` or cgroup v2 ``cpu.max``; needs root).

    Each process gets a cgroup of its own limited to ``share`` of one CPU, enforced over a
    10 ms period. Used to emulate "one core per worker" for the ``--workers`` scaling run
    on a machine with fewer cores than the run needs. ``close()`` removes the cgroups once
    their processes have exited.
    """

    PERIOD_US = 10_000
    V1 = Path("/sys/fs/cgroup/cpu")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, tag: str, share: float) -> None:
        self.tag = tag
        self.quota_us = max(int(share * self.PERIOD_US), 1000)
        self.groups: list[Path] = []
        if (self.V1 / "cpu.cfs_quota_us").exists():
            self.root = self.V1
        elif "cpu" in _read(self.V2 / "cgroup.controllers").split():
            self.root = self.V2
            if "cpu" not in _read(self.V2 / "cgroup.subtree_control").split():
                (self.V2 / "cgroup.subtree_control").write_text("+cpu")
        else:
            raise RuntimeError("no cgroup cpu controller (cgroup v1 cpu or v2 cpu.max) found")

    def add(self, pid: int) -> None:
        """Put ``pid`` (all its threads) in a new cgroup capped at the share."""
        g = self.root / f"bench-{self.tag}-{pid}"
        g.mkdir(exist_ok=True)
        if self.root == self.V1:
            (g / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (g / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        else:
            (g / "cpu.max").write_text(f"{self.quota_us} {self.PERIOD_US}")
        (g / "cgroup.procs").write_text(str(pid))
        self.groups.append(g)

    def close(self) -> None:
        """Remove the cgroups (their processes must have exited)."""
        for g in self.groups:
            for _ in range(50):
                try:
                    g.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        self.groups.clear()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def mem_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; zeros when it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def tree_rss_kib(pid: int) -> int:
    """Summed VmRSS of ``pid`` and its descendants."""
    return sum(mem_kib(p)[0] for p in tree(pid))


def tree_hwm_kib(pid: int) -> int:
    """Summed VmHWM (each process's lifetime peak) of ``pid`` and its descendants."""
    return sum(mem_kib(p)[1] for p in tree(pid))


def cpu_times() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            v = [int(x) for x in vals[:8]]
            total = sum(v)
            out[int(name[3:])] = (total - v[3] - v[4], total)
    return out


def busy_pct(before: dict[int, tuple[int, int]], cpus: list[int]) -> float | None:
    """Average busy % of ``cpus`` (all CPUs when empty) since ``before``."""
    after = cpu_times()
    busy = total = 0
    for cpu in cpus or list(after):
        if cpu in before and cpu in after:
            busy += after[cpu][0] - before[cpu][0]
            total += after[cpu][1] - before[cpu][1]
    return round(100.0 * busy / total, 1) if total else None


@dataclass
class MemSampler:
    """Samples the summed VmRSS of a process tree in a thread; keeps the peak."""

    pid: int
    interval: float = 0.05
    peak_kib: int = 0
    pids: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemSampler:
        self.pids = tree(self.pid)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            if n % 20 == 0:  # workers may be respawned
                self.pids = tree(self.pid)
            self.sample()

    def sample(self) -> int:
        """Take one sample now."""
        rss = sum(mem_kib(p)[0] for p in self.pids)
        self.peak_kib = max(self.peak_kib, rss)
        return rss
