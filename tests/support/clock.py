"""Clocks for tests: fixed wall time, counters that step by themselves or by hand, numbered ids."""

from __future__ import annotations

import itertools
import time

from adapter.clock import Clock

#: 2023-11-14T22:13:20.123456Z
WALL_NS = 1_700_000_000_123_456_000


class Ticks:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fake_clock(ticks: Ticks | None = None) -> Clock:
    """A deterministic clock: the wall time fixed, the counter stepping 1 µs per reading, ids
    numbered; cache ages follow ``ticks`` (real time when not given)."""
    counter = itertools.count(1_000, 1_000)
    upstream = itertools.count(1)
    ollama = itertools.count(1)
    return Clock(
        wall_ns=lambda: WALL_NS,
        perf_ns=lambda: next(counter),
        monotonic=ticks or time.monotonic,
        upstream_call_id=lambda: f"call{next(upstream):05d}",
        ollama_call_id=lambda: f"call_{next(ollama):08d}",
    )


def hand_clock(ticks: Ticks) -> Clock:
    """The system clock, except cache ages, which follow ``ticks``."""
    return Clock(monotonic=ticks)
