"""JSON in and out: orjson, with the stdlib where orjson is stricter than JSON itself."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def loads_lenient(data: bytes | str, *, exact: bool = False) -> Any:
    """``orjson.loads``, falling back where orjson is stricter than JSON itself: lone UTF-16
    surrogate escapes (made U+FFFD), which a model's text can contain. ``exact`` uses the
    stdlib parser first, which keeps integers beyond 64 bits (orjson makes them floats):
    models writing JSON under a schema produce such numbers in tool arguments."""
    raw = data.encode() if isinstance(data, str) else data
    if exact:
        return json.loads(_LONE_SURROGATE.sub(rb"\\ufffd", raw))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return orjson.loads(_LONE_SURROGATE.sub(rb"\\ufffd", raw))


def dumps(obj: Any) -> bytes:
    """``orjson.dumps``, with the stdlib as fallback for what orjson refuses (integers beyond
    64 bits)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
