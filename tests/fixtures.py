"""Real vLLM 0.32.0 answers recorded in ../shared/fixtures, for tests that need their shapes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "vllm-0.32.0-cpu"
FIXTURES = Path(os.environ.get("VLLM_FIXTURES_DIR", _DEFAULT))


def raw(name: str) -> bytes:
    """A fixture file's bytes."""
    return (FIXTURES / name).read_bytes()


def load(name: str) -> Any:
    """A JSON fixture, decoded."""
    return orjson.loads(raw(name))


def sse_events(name: str) -> list[dict[str, Any]]:
    """The decoded ``data:`` events of an SSE fixture, without ``[DONE]``."""
    events = []
    for line in raw(name).splitlines():
        if line.startswith(b"data: ") and line[6:] != b"[DONE]":
            events.append(orjson.loads(line[6:]))
    return events
