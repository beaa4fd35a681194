"""``keep_alive``: the forms clients send (numbers, numeric strings, Go durations)."""

from __future__ import annotations

import re

from adapter.errors import OllamaError

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def keep_alive_seconds(value: float | str | None) -> float | None:
    """``keep_alive`` in seconds: a number, a numeric string, or a Go duration (``"1h30m"``).

    Ollama rejects a bare numeric string; clients send them anyway, so the adapter accepts it.
    vLLM keeps every model loaded, so the value only decides between ``load`` and ``unload``.
    """
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    text = value.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[0] in "+-" else text
    total, pos = 0.0, 0
    for match in _DURATION_RE.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or pos == 0:
        raise OllamaError(400, f'time: invalid duration "{value}"')
    return sign * total
