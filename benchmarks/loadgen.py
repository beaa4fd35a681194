"""Checking asyncio load generator for the fake upstream (OpenAI shapes) or the adapter (Ollama).

N keep-alive connections each send one request after another until ``--duration`` has passed
or ``--max-requests`` were sent; every reply is verified (``benchmarks.checks``). Prints a
summary (``--json``: one JSON object) with requests/s, chunks/s, latency and time to first chunk.

    python -m benchmarks.loadgen --url http://127.0.0.1:11434 --api ollama --stream -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

from adapter.ollama_api.options import OLLAMA_SAMPLING, sampling_params
from benchmarks.checks import CHECKERS, Checker, Expect
from benchmarks.common import (
    DEFAULT_CHUNKS,
    DEFAULT_MODEL,
    PROMPT_TOKENS,
    dumps,
    expected_text,
    parse_cpus,
    percentile,
)
from benchmarks.httpclient import ClientConn

MAX_ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Workload:
    """One kind of request and what its replies must contain."""

    host: str
    port: int
    api: str = "ollama"  # "ollama" (adapter) or "openai" (vLLM / fake upstream)
    endpoint: str = "chat"  # "chat" or "tags" (/api/tags or /v1/models)
    stream: bool = True
    tokens: int | None = DEFAULT_CHUNKS  # max_tokens / num_predict; None: upstream default
    default_chunks: int = DEFAULT_CHUNKS
    model: str = DEFAULT_MODEL
    unicode: bool = False
    real: bool = False  # a real vLLM: shape and count checks only

    def request(self) -> bytes:
        """The raw HTTP request, built once."""
        host = f"{self.host}:{self.port}".encode()
        if self.endpoint == "tags":
            path = b"/api/tags" if self.api == "ollama" else b"/v1/models"
            return b"GET %s HTTP/1.1\r\nhost: %s\r\naccept: */*\r\n\r\n" % (path, host)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Say something."}],
            "stream": self.stream,
        }
        if self.api == "ollama":
            path = b"/api/chat"
            if self.tokens is not None:
                body["options"] = {"num_predict": self.tokens}
        else:
            path = b"/v1/chat/completions"
            if self.tokens is not None:
                body["max_tokens"] = self.tokens
            if self.stream:
                body["stream_options"] = {"include_usage": True}
            if self.real:
                # The sampling the adapter asks vLLM for when a client sets none (Ollama's
                # defaults): the same work for vLLM on both legs of a real comparison.
                body.update(sampling_params(OLLAMA_SAMPLING))
        data = dumps(body)
        return (
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
            b"accept: */*\r\ncontent-length: %d\r\n\r\n%s" % (path, host, len(data), data)
        )

    def expect(self) -> Expect:
        """Expected content of every reply."""
        n = self.tokens if self.tokens is not None else self.default_chunks
        if self.real:
            return Expect(self.model, None, self.tokens, None, None)
        finish = "length" if self.tokens is not None else "stop"
        return Expect(self.model, expected_text(n, self.unicode), n, finish, PROMPT_TOKENS)

    def checker(self) -> type[Checker]:
        """Checker class for this workload."""
        return CHECKERS[(self.api, self.endpoint, self.stream and self.endpoint == "chat")]


@dataclass
class Raw:
    """Samples of one run (mergeable across processes)."""

    latencies: list[float] = field(default_factory=list)
    ttfc: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0
    start: float = 0.0
    end: float = 0.0
    connect_errors: int = 0
    late: int = 0  # passed the checks but completed after the deadline

    def merge(self, other: Raw) -> None:
        """Add another process's samples (times are kept from ``start``/``end`` separately)."""
        self.latencies += other.latencies
        self.ttfc += other.ttfc
        self.ok += other.ok
        self.errors += other.errors
        self.error_samples += other.error_samples[: MAX_ERROR_SAMPLES - len(self.error_samples)]
        self.chunks += other.chunks
        self.tokens += other.tokens
        self.connect_errors += other.connect_errors
        self.late += other.late

    def error(self, msg: str) -> None:
        """Count one failed request."""
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(msg)


@dataclass(frozen=True)
class Limits:
    """Bounds of a run: all loops stop by themselves."""

    concurrency: int = 16
    duration: float = 3.0
    max_requests: int = 10_000_000
    warmup: float = 0.5
    timeout: float = 30.0


async def run_load(wl: Workload, lim: Limits) -> Raw:
    """Drive ``lim.concurrency`` connections; return the samples after warm-up."""
    raw = Raw()
    req = wl.request()
    expect = wl.expect()
    make = wl.checker()
    t0 = perf_counter()
    warm_end = t0 + lim.warmup
    deadline = warm_end + lim.duration
    issued = 0

    async def worker() -> None:
        nonlocal issued
        conn: ClientConn | None = None
        while issued < lim.max_requests and perf_counter() < deadline:
            if conn is None or not conn.usable:
                if conn is not None:
                    conn.close()
                try:
                    conn = await asyncio.wait_for(ClientConn.connect(wl.host, wl.port), 5.0)
                except (OSError, TimeoutError) as exc:
                    raw.connect_errors += 1
                    raw.error(f"connect: {exc!r}")
                    conn = None
                    await asyncio.sleep(0.05)
                    continue
            issued += 1
            sink = make(expect)
            start = perf_counter()
            try:
                await conn.request(req, sink, lim.timeout)
            except Exception as exc:
                if start >= warm_end:
                    raw.error(f"{type(exc).__name__}: {exc}")
                continue
            end = perf_counter()
            if start < warm_end:
                continue
            if sink.error is not None:
                raw.error(sink.error)
                continue
            if end > deadline:  # checked, but outside the measured window (like wrk)
                raw.late += 1
                continue
            raw.ok += 1
            raw.latencies.append(end - start)
            if sink.t_first is not None:
                raw.ttfc.append(sink.t_first - start)
            raw.chunks += sink.chunks
            raw.tokens += sink.tokens
            raw.end = max(raw.end, end)
        if conn is not None:
            conn.close()

    tasks = [asyncio.ensure_future(worker()) for _ in range(lim.concurrency)]
    hard_stop = lim.warmup + lim.duration + lim.timeout + 10.0
    _, pending = await asyncio.wait(tasks, timeout=hard_stop)
    for t in pending:
        t.cancel()
        raw.error("worker did not stop in time")
    raw.start = warm_end if lim.warmup > 0 else t0
    raw.end = deadline if raw.late else max(raw.end, raw.start)
    return raw


def summarize(raw: Raw, elapsed: float) -> dict[str, Any]:
    """Rates and percentiles (ms) of a run."""
    lat = sorted(raw.latencies)
    ttfc = sorted(raw.ttfc)
    el = max(elapsed, 1e-9)

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 3)

    return {
        "requests": raw.ok,
        "errors": raw.errors,
        "error_samples": raw.error_samples,
        "late": raw.late,
        "elapsed_s": round(elapsed, 3),
        "rps": round(raw.ok / el, 1),
        "chunks": raw.chunks,
        "chunks_per_s": round(raw.chunks / el, 1),
        "tokens": raw.tokens,
        "tokens_per_s": round(raw.tokens / el, 1),
        "lat_p50_ms": ms(lat, 50),
        "lat_p90_ms": ms(lat, 90),
        "lat_p99_ms": ms(lat, 99),
        "lat_max_ms": ms(lat, 100),
        "ttfc_p50_ms": ms(ttfc, 50),
        "ttfc_p90_ms": ms(ttfc, 90),
        "ttfc_p99_ms": ms(ttfc, 99),
    }


def _event_loop_run(wl: Workload, lim: Limits) -> Raw:
    try:
        import uvloop

        return uvloop.run(run_load(wl, lim))
    except ImportError:
        return asyncio.run(run_load(wl, lim))


def _child(wl: Workload, lim: Limits, cpu: int | None, q: Any) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    q.put(_event_loop_run(wl, lim))


def run(wl: Workload, lim: Limits, procs: int = 1, cpus: list[int] | None = None) -> dict[str, Any]:
    """Run the load in ``procs`` processes (splitting concurrency) and summarize."""
    if procs <= 1:
        if cpus:
            os.sched_setaffinity(0, set(cpus))
        cpu0 = time.process_time()
        raw = _event_loop_run(wl, lim)
        res = summarize(raw, raw.end - raw.start)
        res["client_cpu_s"] = round(time.process_time() - cpu0, 3)
        return res
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    children = []
    for i in range(procs):
        share = lim.concurrency // procs + (i < lim.concurrency % procs)
        reqs = lim.max_requests // procs + (i < lim.max_requests % procs)
        sub = Limits(share, lim.duration, reqs, lim.warmup, lim.timeout)
        cpu = cpus[i % len(cpus)] if cpus else None
        p = ctx.Process(target=_child, args=(wl, sub, cpu, q), daemon=True)
        p.start()
        children.append(p)
    parts = [q.get(timeout=lim.warmup + lim.duration + lim.timeout + 30) for _ in children]
    for p in children:
        p.join(5)
    total = Raw()
    for r in parts:
        total.merge(r)
    elapsed = max(r.end for r in parts) - min(r.start for r in parts)
    res = summarize(total, elapsed)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["client_cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:11434")
    p.add_argument("--api", choices=("ollama", "openai"), default="ollama")
    p.add_argument("--endpoint", choices=("chat", "tags"), default="chat")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--tokens", type=int, default=DEFAULT_CHUNKS, help="0: send no max tokens")
    p.add_argument("--default-chunks", type=int, default=DEFAULT_CHUNKS)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--unicode", action="store_true", help="upstream runs with --unicode")
    p.add_argument("--real", action="store_true", help="real vLLM: shape/count checks only")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=3.0)
    p.add_argument("-n", "--max-requests", type=int, default=10_000_000)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--procs", type=int, default=1, help="client processes")
    p.add_argument("--cpus", default="", help="pin the client, e.g. 1 or 2-3")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit status 1 when any reply failed its checks."""
    a = parse_args(argv)
    u = urlsplit(a.url)
    if u.scheme != "http" or not u.hostname:
        sys.exit("only http://host:port URLs are supported")
    wl = Workload(
        host=u.hostname,
        port=u.port or 80,
        api=a.api,
        endpoint=a.endpoint,
        stream=a.stream and a.endpoint == "chat",
        tokens=a.tokens or None,
        default_chunks=a.default_chunks,
        model=a.model,
        unicode=a.unicode,
        real=a.real,
    )
    lim = Limits(a.concurrency, a.duration, a.max_requests, a.warmup, a.timeout)
    res = run(wl, lim, a.procs, parse_cpus(a.cpus) or None)
    if a.json:
        print(dumps(res).decode())
    else:
        for k, v in res.items():
            print(f"{k:>14}: {v}")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
