"""The clocks and id sources the adapter reads, in one object so tests can inject their own."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


def vllm_tool_call_id() -> str:
    """A tool-call id for vLLM: 9 alphanumerics, which every chat template accepts (Mistral's)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


def ollama_tool_call_id() -> str:
    """A tool-call id in Ollama's own form, ``call_`` and 8 lowercase alphanumerics."""
    return "call_" + "".join(secrets.choice(_LOWER_ALNUM) for _ in range(8))


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall time (for ``created_at``), a monotonic counter (for durations), monotonic seconds
    (for cache ages) and the ids answers carry. Code takes one of these instead of reading
    time or randomness, so tests can move time by hand."""

    wall_ns: Callable[[], int] = time.time_ns
    perf_ns: Callable[[], int] = time.perf_counter_ns
    monotonic: Callable[[], float] = time.monotonic
    upstream_call_id: Callable[[], str] = vllm_tool_call_id
    ollama_call_id: Callable[[], str] = ollama_tool_call_id


SYSTEM = Clock()
