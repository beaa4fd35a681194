"""How a relayed stream is cut into whole messages: what every API's stream shape shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Framing:
    """How a relayed stream is cut into messages, and how one that breaks is ended: the bytes
    that end a message (``\\n`` for NDJSON, a blank line for SSE) and the last message that
    says what went wrong. A broken stream loses its unfinished message, never ends inside one."""

    boundary: bytes
    error: Callable[[str], bytes]
