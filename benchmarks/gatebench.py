"""What the gate costs per request on the fast lane (chat, generate, tags): exactly what
``AdapterApp`` does for it around a route: ``Gate.begin``, the request's context variable set
and reset, ``refusal``, the ``X-Request-ID`` header put on the answer's headers, the status and
first byte noted, and ``finish`` (the access line off, as in the matrix; on, to a null handler,
for the cost of writing it), in one process, on a typical request's headers; the fastest of
``--rounds`` rounds (20 short ones by default: on a shared VM a burst of noise spoils the round
it falls in, and short rounds leave more of them clean).

``gate_and_sends_us`` is the figure this tool reported before 2026-12-02 (night): the same
calls plus two awaited no-op ASGI sends and a copied start message, about a microsecond that
belongs to sending the answer (which the matrix measures), not to the gate.

    .venv/bin/python -m benchmarks.gatebench [--requests 200000] [--json]

Also times the request-id choices side by side (``os.urandom(16).hex()``, a per-process
random prefix and a counter formatted together, and the gate's own ``request_id``: a counter
whose upper 64 bits are random, one ``%`` format).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import time
from typing import Any

from adapter.api.gate import Gate
from adapter.config import Settings
from adapter.requestctx import CURRENT, request_id

HEADERS = [
    (b"host", b"127.0.0.1:11434"),
    (b"user-agent", b"ollama-python/0.6.0"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"content-length", b"120"),
    (b"accept-encoding", b"gzip, deflate"),
]
SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/api/chat", "headers": HEADERS}


def gate_only_us(gate: Gate, n: int) -> float:
    """``AdapterApp.__call__`` and ``_fast``'s gate calls, the route and the sending left out."""
    began = time.perf_counter()
    for _ in range(n):
        info = gate.begin(SCOPE)
        token = CURRENT.set(info)
        try:
            gate.refusal(SCOPE, info)
            raw_headers: list[tuple[bytes, bytes]] = []
            info.status = 200
            raw_headers.append(gate.id_header(info))
            info.first_byte = time.perf_counter()
        finally:
            gate.finish(info)
            CURRENT.reset(token)
    return (time.perf_counter() - began) / n * 1e6


async def with_sends_us(gate: Gate, n: int) -> float:
    start_msg = {"type": "http.response.start", "status": 200, "headers": []}
    body_msg = {"type": "http.response.body", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        return None

    began = time.perf_counter()
    for _ in range(n):  # what AdapterApp does around a fast-lane route
        info = gate.begin(SCOPE)
        gate.refusal(SCOPE, info)
        headers: list[tuple[bytes, bytes]] = []
        info.status = 200
        headers.append(gate.id_header(info))
        info.first_byte = time.perf_counter()
        await send({**start_msg, "headers": headers})
        await send(body_msg)
        gate.finish(info)
    return (time.perf_counter() - began) / n * 1e6


def timed_us(fn: Any, n: int) -> float:
    began = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - began) / n * 1e6


def best_of(rounds: int, measure: Any) -> float:
    """The fastest of several rounds: what the code costs, less what the machine's noise adds
    (on a shared VM a round can take twice as long for reasons of its own)."""
    return float(min(measure() for _ in range(rounds)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=20, help="the fastest round counts")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    n = a.requests
    quiet = Gate(Settings(vllm_url="http://127.0.0.1:8000", access_log=False))
    logged = Gate(Settings(vllm_url="http://127.0.0.1:8000", access_log=True))
    access = logging.getLogger("adapter.access")
    access.addHandler(logging.NullHandler())
    access.setLevel(logging.INFO)
    access.propagate = False
    gate_only_us(quiet, n // 10)  # warm-up
    prefix = os.urandom(8).hex()
    counter = itertools.count()
    rounds, each = a.rounds, n // a.rounds
    out = {
        "gate_us": best_of(rounds, lambda: gate_only_us(quiet, each)),
        "gate_with_access_line_us": best_of(rounds, lambda: gate_only_us(logged, each // 4)),
        "gate_and_sends_us": best_of(rounds, lambda: asyncio.run(with_sends_us(quiet, each))),
        "id_urandom_us": best_of(rounds, lambda: timed_us(lambda: os.urandom(16).hex(), each)),
        "id_counter_us": best_of(
            rounds, lambda: timed_us(lambda: f"{prefix}{next(counter):016x}", each)
        ),
        "id_gate_us": best_of(rounds, lambda: timed_us(lambda: request_id(None), each)),
        "requests": n,
        "rounds": rounds,
    }
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    if a.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:<26} {value}")


if __name__ == "__main__":
    main()
