"""Who holds which TCP sockets, read from /proc (Linux): for tests of the worker processes."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

LISTEN = "0A"
ESTABLISHED = "01"


def _port_sockets(port: int) -> dict[str, str]:
    """Socket inode -> TCP state of every socket whose local port is ``port``."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                out[fields[9]] = fields[3]
    return out


def sockets_by_pid(port: int, pids: list[int]) -> dict[int, dict[str, set[str]]]:
    """For each of ``pids``: TCP state -> inodes of its sockets on local ``port``."""
    states = _port_sockets(port)
    out: dict[int, dict[str, set[str]]] = {}
    for pid in pids:
        held: dict[str, set[str]] = {}
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = target[len("socket:[") : -1] if target.startswith("socket:[") else ""
            if inode in states:
                held.setdefault(states[inode], set()).add(inode)
        out[pid] = held
    return out


def workers(supervisor: int) -> list[int]:
    """The worker processes a supervisor spawned (multiprocessing's tracker left out)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == supervisor and b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            out.append(int(entry.name))
    return sorted(out)


def counts(held: dict[str, set[str]]) -> Counter[str]:
    """Sockets per TCP state."""
    return Counter({state: len(inodes) for state, inodes in held.items()})
