"""Shared constants and helpers: deterministic token text, JSON codec, percentiles."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

try:
    import orjson

    loads: Callable[[bytes | str], Any] = orjson.loads

    def dumps(obj: Any) -> bytes:
        """Serialise compactly to bytes."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - orjson is a project dependency
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        """Serialise compactly to bytes."""
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


DEFAULT_MODEL = "tiny-llm"
DEFAULT_CHUNKS = 100
PROMPT_TOKENS = 7
FINGERPRINT = "vllm-0.32.0-9ae2825b"


def token_text(i: int, unicode: bool = False) -> str:
    """Text of generated token ``i``; ``unicode`` adds multi-byte characters."""
    return f"tök{i}🙂 " if unicode else f"tok{i} "


def expected_text(n: int, unicode: bool = False) -> str:
    """The whole deterministic reply of ``n`` tokens."""
    return "".join(token_text(i, unicode) for i in range(n))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values; NaN when empty."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def parse_cpus(spec: str) -> list[int]:
    """Parse a CPU list such as ``"0"``, ``"0,2"`` or ``"0-3"``."""
    cpus: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus
