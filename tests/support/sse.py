"""Reading an OpenAI-style SSE stream in tests, checking its framing as it goes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def checked_sse_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The decoded ``data:`` events of a stream; asserts vLLM's framing: only ``data:`` lines
    and blank separators, a final ``data: [DONE]`` and nothing after it."""
    events: list[dict[str, Any]] = []
    done = False
    for line in lines:
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            done = True
            continue
        assert not done, "event after data: [DONE]"
        events.append(json.loads(data))
    assert done, "the stream did not end with data: [DONE]"
    return events
