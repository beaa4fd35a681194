"""Small network helpers the test suites share: free ports, Prometheus counters (the standard
library only: scripts/record-fixtures.py uses it through tests/support/vllm_cpu.py)."""

from __future__ import annotations

import socket
import urllib.request


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports of 127.0.0.1 nothing listens on right now."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on right now."""
    return free_ports(1)[0]


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples on ``base_url``'s ``/metrics`` (the ones with ``labels``)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
