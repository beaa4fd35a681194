"""Upstream HTTP clients side by side: what the adapter's client library costs per request/chunk.

Each client (httpx, httpcore, aiohttp, the adapter's own, and the benchmarks' raw asyncio client
as a floor) runs alone in a process pinned to one CPU against the fake upstream on another, 16
concurrent requests, non-streaming and streaming (100 SSE events, split into lines and
JSON-decoded), for a few seconds. Reported: requests/s, chunks/s and the client process's CPU
µs per request and per chunk. Writes benchmarks/results/clients-<name>.{md,json}.

    .venv/bin/python -m benchmarks.clients [--duration 3] [--concurrency 16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.common import dumps, loads, parse_cpus
from benchmarks.httpclient import ClientConn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CHUNKS = 100
HEADERS = {"content-type": "application/json", "accept-encoding": "identity"}

OneCall = Callable[[], Awaitable[int]]  # one request; returns the chunks it received


def body(stream: bool) -> bytes:
    """The upstream request body."""
    req: dict[str, Any] = {"model": "tiny-llm", "messages": [{"role": "user", "content": "hi"}]}
    req.update(max_tokens=CHUNKS, stream=stream)
    if stream:
        req["stream_options"] = {"include_usage": True}
    return dumps(req)


def count_events(lines: list[bytes]) -> int:
    """JSON-decode each SSE data line (as the adapter must) and count content events."""
    n = 0
    for line in lines:
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            ev = loads(line[6:])
            if ev["choices"] and "content" in ev["choices"][0]["delta"]:
                n += 1
    return n


class Splitter:
    """Incremental newline splitter for raw byte chunks."""

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines so far."""
        parts = (self.rest + data).split(b"\n")
        self.rest = parts.pop()
        return parts


async def make_httpx(url: str, conc: int, stream: bool, lines: bool) -> tuple[OneCall, Any]:
    """httpx.AsyncClient; ``lines``: aiter_lines, else aiter_raw + own splitting."""
    import httpx

    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    client = httpx.AsyncClient(limits=limits, headers=HEADERS, trust_env=False, timeout=30)
    data = body(stream)
    path = url + "/v1/chat/completions"

    async def call() -> int:
        if not stream:
            r = await client.post(path, content=data)
            loads(r.content)
            return 0
        async with client.stream("POST", path, content=data) as r:
            if lines:
                got = [ln.encode() async for ln in r.aiter_lines()]
                return count_events(got)
            sp, n = Splitter(), 0
            async for chunk in r.aiter_raw():
                n += count_events(sp.feed(chunk))
            return n

    return call, client.aclose


async def make_httpcore(url: str, conc: int, stream: bool) -> tuple[OneCall, Any]:
    """httpcore.AsyncConnectionPool directly."""
    import httpcore

    pool = httpcore.AsyncConnectionPool(max_connections=conc, max_keepalive_connections=conc)
    data = body(stream)
    path = url + "/v1/chat/completions"
    headers = list(HEADERS.items())

    async def call() -> int:
        async with pool.stream("POST", path, headers=headers, content=data) as r:
            sp, n, parts = Splitter(), 0, []
            async for chunk in r.aiter_stream():
                if stream:
                    n += count_events(sp.feed(chunk))
                else:
                    parts.append(chunk)
            if not stream:
                loads(b"".join(parts))
            return n

    return call, pool.aclose


async def make_aiohttp(url: str, conc: int, stream: bool, lines: bool) -> tuple[OneCall, Any]:
    """aiohttp.ClientSession; ``lines``: iterate resp.content by line, else iter_any()."""
    import aiohttp

    conn = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)
    session = aiohttp.ClientSession(connector=conn, headers=HEADERS, auto_decompress=False)
    data = body(stream)
    path = url + "/v1/chat/completions"

    async def call() -> int:
        async with session.post(path, data=data) as r:
            if not stream:
                loads(await r.read())
                return 0
            if lines:
                return count_events([ln.rstrip(b"\n") async for ln in r.content])
            sp, n = Splitter(), 0
            async for chunk in r.content.iter_any():
                n += count_events(sp.feed(chunk))
            return n

    return call, session.close


async def make_adapter(url: str, conc: int, stream: bool) -> tuple[OneCall, Any]:
    """The adapter's own upstream client (adapter/backends/httpclient.py)."""
    from adapter.backends.httpclient import Pool, request

    pool = Pool(url, limit=conc, connect_timeout=5, read_timeout=30, keepalive=4, headers=HEADERS)
    data = body(stream)

    async def call() -> int:
        r = await request(pool, "POST", "/v1/chat/completions", data)
        try:
            if not stream:
                loads(await r.read())
                return 0
            sp, n = Splitter(), 0
            async for chunk in r.iter_any():
                n += count_events(sp.feed(chunk))
            return n
        finally:
            r.release()

    return call, pool.aclose


class RawSink:
    """Minimal sink for the raw client: split and decode like the others."""

    def __init__(self, stream: bool) -> None:
        self.stream, self.sp, self.n, self.parts = stream, Splitter(), 0, [b""]

    def start(self, status: int, head: bytes, now: float) -> None:
        """Headers arrived."""

    def feed(self, data: bytes, now: float) -> None:
        """Body bytes."""
        if self.stream:
            self.n += count_events(self.sp.feed(data))
        else:
            self.parts.append(data)

    def end(self, now: float) -> None:
        """Done."""
        if not self.stream:
            loads(b"".join(self.parts))


async def make_raw(url: str, conc: int, stream: bool) -> tuple[OneCall, Any]:
    """The benchmarks' own asyncio.Protocol client: a floor for what Python can do."""
    host, port = url.removeprefix("http://").split(":")
    data = body(stream)
    req = b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
    req = req % url.encode() + b"content-length: %d\r\n\r\n%s" % (len(data), data)
    free: list[ClientConn] = []

    async def call() -> int:
        conn = free.pop() if free else await ClientConn.connect(host, int(port))
        sink = RawSink(stream)
        await conn.request(req, sink, 30.0)
        if conn.usable:
            free.append(conn)
        return sink.n

    async def close() -> None:
        for c in free:
            c.close()

    return call, close


async def drive(kind: str, url: str, conc: int, stream: bool, duration: float) -> dict[str, Any]:
    """Run one client for ``duration`` seconds after a short warm-up."""
    factories = {
        "httpx aiter_lines": lambda: make_httpx(url, conc, stream, True),
        "httpx aiter_raw": lambda: make_httpx(url, conc, stream, False),
        "httpcore": lambda: make_httpcore(url, conc, stream),
        "aiohttp lines": lambda: make_aiohttp(url, conc, stream, True),
        "aiohttp iter_any": lambda: make_aiohttp(url, conc, stream, False),
        "raw asyncio": lambda: make_raw(url, conc, stream),
        "adapter httpclient": lambda: make_adapter(url, conc, stream),
    }
    call, close = await factories[kind]()
    state = {"reqs": 0, "chunks": 0, "errors": 0, "measure": False}
    stop = time.monotonic() + 0.5 + duration

    async def worker() -> None:
        while time.monotonic() < stop:
            try:
                n = await call()
            except Exception:
                state["errors"] += 1
                await asyncio.sleep(0.01)
                continue
            if state["measure"]:
                state["reqs"] += 1
                state["chunks"] += n

    tasks = [asyncio.ensure_future(worker()) for _ in range(conc)]
    await asyncio.sleep(0.5)
    state["measure"] = True
    t0, c0 = time.monotonic(), time.process_time()
    await asyncio.wait(tasks, timeout=duration + 30)
    el, cpu = time.monotonic() - t0, time.process_time() - c0
    await close()
    reqs, chunks = state["reqs"], state["chunks"]
    return {
        "client": kind,
        "stream": stream,
        "concurrency": conc,
        "rps": round(reqs / el, 1),
        "chunks_per_s": round(chunks / el, 1),
        "cpu_util": round(cpu / el, 3),
        "cpu_us_per_req": round(cpu / reqs * 1e6, 1) if reqs else None,
        "cpu_us_per_chunk": round(cpu / chunks * 1e6, 2) if chunks else None,
        "errors": state["errors"],
        "chunks_ok": chunks == reqs * CHUNKS if stream else True,
    }


def _child(args: tuple[str, str, int, bool, float, list[int]], q: Any) -> None:
    kind, url, conc, stream, duration, cpus = args
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    import uvloop

    q.put(uvloop.run(drive(kind, url, conc, stream, duration)))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", default=time.strftime("%Y%m%d-%H%M%S"))
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--concurrency", default="16")
    p.add_argument("--client-cpus", default="0", help="the client under test")
    p.add_argument("--upstream-cpus", default="1")
    a = p.parse_args(argv)
    logdir = RESULTS / f"clients-{a.name}.logs"
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.fake_upstream", "--port", "0"]
    up = procs.start(
        "upstream", cmd, parse_cpus(a.upstream_cpus), logdir / "up.log", subprocess.PIPE
    )
    rows: list[dict[str, Any]] = []
    kinds = ["raw asyncio", "httpx aiter_raw", "httpx aiter_lines", "httpcore"]
    kinds += ["aiohttp iter_any", "aiohttp lines", "adapter httpclient"]
    try:
        url = f"http://127.0.0.1:{procs.wait_ready_line(up)}"
        ctx = mp.get_context("spawn")
        for conc in parse_cpus(a.concurrency):
            for stream in (False, True):
                for kind in kinds:
                    q = ctx.Queue()
                    args = (kind, url, conc, stream, a.duration, parse_cpus(a.client_cpus))
                    proc = ctx.Process(target=_child, args=(args, q))
                    proc.start()
                    row = q.get(timeout=a.duration + 60)
                    proc.join(10)
                    rows.append(row)
                    rate = f"{row['chunks_per_s']:>10,.0f} chunks/s" if stream else ""
                    print(f"{kind:<18} c{conc:<3} {'stream' if stream else 'full  '} "
                          f"{row['rps']:>9,.0f} req/s {rate} cpu {row['cpu_util']:.0%}", flush=True)  # fmt: skip
    finally:
        up.stop()
    (RESULTS / f"clients-{a.name}.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = [f"# Upstream HTTP clients side by side: {a.name}", ""]
    md += [f"Client pinned to CPU {a.client_cpus}, fake upstream to CPU {a.upstream_cpus}; "
           f"{a.duration} s per cell; 100 SSE events per stream, each JSON-decoded.", ""]  # fmt: skip
    md += ["| client | mode | conc | req/s | chunks/s | client CPU | µs CPU/req | µs CPU/chunk |"]
    md += ["|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(
            f"| {r['client']} | {'stream' if r['stream'] else 'full'} | {r['concurrency']} | "
            f"{r['rps']:,.0f} | {r['chunks_per_s']:,.0f} | {r['cpu_util']:.0%} | "
            f"{r['cpu_us_per_req']} | {r['cpu_us_per_chunk'] or '-'} |"
        )
    (RESULTS / f"clients-{a.name}.md").write_text("\n".join(md) + "\n")
    print(f"wrote benchmarks/results/clients-{a.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
