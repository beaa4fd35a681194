"""What the adapter knows of the request it is answering, for logs and for the upstream call.

One ``RequestInfo`` per request, set by the app when the request arrives (``CURRENT``) and
filled in on the way (the model and backend when the route resolves the name, the token
counts when vLLM reports them); the upstream call reads the headers to send from it, every
log line its id, and the access line the rest. A context variable carries it, so nothing has
to pass it along.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

#: An id a client may choose: short, and nothing a log or a header could be confused by.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
#: W3C Trace Context's ``traceparent``: version, trace id, parent id, flags (lower-case hex).
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


@dataclass(slots=True)
class RequestInfo:
    """One request as the logs see it (never its body). What the gate knows first comes first,
    so it builds one with positional arguments (keywords cost more, ``benchmarks/gatebench.py``)."""

    id: str
    method: str
    path: str
    start: float
    #: Headers every upstream call of this request carries: its id and the session headers
    #: vLLM routers use for prefix-aware routing, as the client sent them.
    upstream_headers: dict[str, str]
    #: Its ``Content-Length`` as sent, and whether it has an ``Origin`` (a browser's: CORS).
    content_length: bytes | None = None
    origin: bool = False
    model: str | None = None
    backend: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 0
    first_byte: float = 0.0
    #: The W3C trace id of the client's ``traceparent`` (32 hex digits), for the access line.
    trace_id: str | None = None


CURRENT: ContextVar[RequestInfo | None] = ContextVar("adapter_request", default=None)


def current() -> RequestInfo | None:
    return CURRENT.get()


def request_id(given: bytes | None) -> str:
    """The client's ``X-Request-ID`` when it is sane (1-128 of ``A-Za-z0-9._:-``), else a new
    one: 32 hex digits, this process's random prefix and its counter (cheaper than 16 random
    bytes a request, ``benchmarks/gatebench.py`` measures both; unique across workers
    and restarts as long as two processes do not draw the same 64 random bits; not a
    secret)."""
    if given is not None and _VALID_ID.fullmatch(given):
        return given.decode("ascii")
    return next(_ids)


def _new_ids() -> Iterator[str]:
    """This process's ids: a counter whose upper 64 bits are random, 32 hex digits each,
    formatted in C as they are taken."""
    return map("%032x".__mod__, itertools.count(int.from_bytes(os.urandom(8)) << 64))


def _renew_ids() -> None:
    global _ids
    _ids = _new_ids()


_ids = _new_ids()
os.register_at_fork(after_in_child=_renew_ids)


def trace_id(traceparent: bytes | None) -> str | None:
    """The trace id of a valid W3C ``traceparent`` (not version ff, no all-zero ids), else
    None: an invalid one is not passed on, as the specification asks of a participant."""
    if traceparent is None:
        return None
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None or found[1] == b"ff" or found[2] == b"0" * 32 or found[3] == b"0" * 16:
        return None
    return found[2].decode("ascii")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every log record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = CURRENT.get()
        record.request_id = info.id if info is not None else "-"
        return True
