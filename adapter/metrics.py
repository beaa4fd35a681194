"""Prometheus instruments of the adapter, kept per app so tests and workers stay apart."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead


def multiprocess_dir() -> str | None:
    """Where worker processes share their metric values, when there are several."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def worker_exited(pid: int) -> None:
    """Drop a finished worker's live gauges from the shared values."""
    if multiprocess_dir() is not None:
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """Request, upstream and token instruments; updated once per request, never per token."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._tokens: dict[str, tuple[Counter, Counter]] = {}
        self.requests = Counter(
            "ollama_adapter_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ollama_adapter_request_seconds",
            "Time to the full answer (streams: to the last line), by endpoint.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ollama_adapter_requests_in_flight",
            "Requests being answered now (open streams included).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.upstream_errors = Counter(
            "ollama_adapter_upstream_errors",
            "Failed upstream calls, by backend and kind (transport error or HTTP status).",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.upstream_resends = Counter(
            "ollama_adapter_upstream_resends",
            "Requests sent again on a new connection because a pooled one was closed and the "
            "request could not have been applied (never sent, or idempotent and unanswered).",
            ["backend"],
            registry=self.registry,
        )
        self.admission_running = Gauge(
            "ollama_adapter_admission_running",
            "Requests holding a turn of admission control (being generated), by backend.",
            ["backend"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.admission_queued = Gauge(
            "ollama_adapter_admission_queued",
            "Requests waiting for a turn, by backend.",
            ["backend"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.admission_rejected = Counter(
            "ollama_adapter_admission_rejected",
            "Requests refused with 503 because every turn was taken and the queue was full.",
            ["backend"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "ollama_adapter_tokens",
            "Tokens vLLM reported (its usage), by backend and kind (prompt, completion). The "
            "Vision Ollama's answers are relayed as they come, unread, so not counted here.",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.disconnects = Counter(
            "ollama_adapter_client_disconnects",
            "Clients that went away before their answer was complete (upstream cancelled).",
            registry=self.registry,
        )

    def admission(self, backend: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
        """The callbacks an ``Admission`` reports to: turns taken and waiting, refusals."""
        running = self.admission_running.labels(backend)
        queued = self.admission_queued.labels(backend)

        def changed(taken: int, waiting: int) -> None:
            running.set(taken)
            queued.set(waiting)

        return changed, self.admission_rejected.labels(backend).inc

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers: this process's registry, or, with several workers
        (``PROMETHEUS_MULTIPROC_DIR`` set), every worker's values added up."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        """One answered request (children cached: ``labels()`` costs a lock and a lookup)."""
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(endpoint, str(status)),
                self.latency.labels(endpoint),
            )
        children[0].inc()
        children[1].observe(seconds)

    def _token_counters(self, backend: str) -> tuple[Counter, Counter]:
        counters = self._tokens.get(backend)
        if counters is None:
            counters = self._tokens[backend] = (
                self.tokens.labels(backend, "prompt"),
                self.tokens.labels(backend, "completion"),
            )
        return counters

    def count_usage(self, backend: str, usage: Mapping[str, Any] | None) -> None:
        """Add an OpenAI ``usage`` object to the token counters."""
        if usage:
            prompt, completion = self._token_counters(backend)
            prompt.inc(usage.get("prompt_tokens") or 0)
            completion.inc(usage.get("completion_tokens") or 0)
