"""Request bookkeeping: in flight, counted by endpoint and status, timed to the last byte.

``observe`` is the one place that does it, for the framework's middleware and the fast lane.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from types import TracebackType

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.metrics import Metrics


class observe:  # lower case: used as ``with observe(metrics, endpoint) as seen``
    """One request: in flight while inside, then recorded with the ``status`` set on it."""

    __slots__ = ("endpoint", "metrics", "start", "status")

    def __init__(self, metrics: Metrics, endpoint: str) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        self.status = 500
        self.start = 0.0

    def __enter__(self) -> observe:
        self.metrics.in_flight.inc()
        self.start = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.metrics.in_flight.dec()
        self.metrics.record(self.endpoint, self.status, time.perf_counter() - self.start)


def endpoint_label(path: str, known: Collection[str]) -> str:
    """The ``endpoint`` label of a path: itself when a route has it, else ``other`` (so
    unknown paths cannot make new label values)."""
    return path if path in known else "other"


class MetricsMiddleware:
    """Counts every HTTP request by endpoint and status, and times it to its last byte."""

    def __init__(self, app: ASGIApp, known: Collection[str]) -> None:
        self.app = app
        self.known = known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        metrics: Metrics = scope["app"].state.adapter.metrics
        with observe(metrics, endpoint_label(scope["path"], self.known)) as seen:

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    seen.status = message["status"]
                await send(message)

            await self.app(scope, receive, send_wrapper)
