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


_SPECIAL = re.compile(r'["\\\x00-\x1f]')
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


class StrictJsonText:
    """Makes a JSON text that arrives in pieces strict: raw control characters inside its
    strings (U+0000 to U+001F, which a grammar-constrained model can write and ``json.loads``,
    pydantic and ``JSON.parse`` refuse) become their escapes. Nothing else changes, and each
    piece goes out as it comes (the string state carries over from piece to piece)."""

    __slots__ = ("_escaped", "_in_string")

    def __init__(self) -> None:
        self._in_string = False
        self._escaped = False  # the last piece ended with a backslash inside a string

    def feed(self, text: str) -> str:
        n = len(text)
        parts: list[str] = []
        start = pos = 0
        if self._escaped and n:
            self._escaped = False
            pos = 1  # the character after that backslash is escaped by it...
            if text[0] < " ":  # ...and when it is a control character, it is written escaped
                parts.append(_escape(text[0]))
                start = 1
        search = _SPECIAL.search
        while True:
            match = search(text, pos)
            if match is None:
                break
            i = match.start()
            ch = text[i]
            if ch == '"':
                self._in_string = not self._in_string
                pos = i + 1
            elif ch != "\\":  # a control character
                if self._in_string:
                    parts.append(text[start:i])
                    parts.append(_escape(ch))
                    start = i + 1
                pos = i + 1
            elif not self._in_string:
                pos = i + 1
            elif i + 1 == n:
                self._escaped = True
                pos = n
            elif text[i + 1] < " ":  # a backslash before a control character: its escape
                parts.append(text[start:i])
                parts.append(_escape(text[i + 1]))
                start = pos = i + 2
            else:
                pos = i + 2
        if not parts:
            return text
        parts.append(text[start:])
        return "".join(parts)


def _escape(ch: str) -> str:
    return _SHORT_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"
