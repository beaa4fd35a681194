"""What vLLM's router costs and what a second replica gives, in one run (issue 28).

Three ways to the same real vLLM servers on CPU, each measured with the same load generator
(``loadgen``) in the same run, alternating:

- ``direct``: the adapter in front of one vLLM (the default deployment: one replica, no hop);
- ``router-1``: the adapter in front of vLLM's router in front of that one vLLM (the hop alone);
- ``router-2``: the adapter in front of the router in front of two vLLMs.

For each, streams and answers taken whole, ``--concurrency`` at a time ("hot": the processes
never idle) and one at a time ("cold": each event wakes them from idle). Reported: tokens/s and
requests/s, and the CPU the adapter and the router spent per relayed token and per request
(user + system time from ``/proc``, over the tokens the answers carried).

    .venv/bin/python -m benchmarks.replicas                        # two tiny-llm servers
    .venv/bin/python -m benchmarks.replicas --kind smollm2 --tokens 64 --duration 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.procs import cpu_seconds, tree
from tests.support.adapter_proc import adapter_process
from tests.support.router import RouterProc, start_router
from tests.support.vllm_cpu import SERVED_NAME, ServerKind, VllmServer, launch_server

RESULTS = Path(__file__).resolve().parent / "results"


def measure(
    adapter_url: str,
    adapter_pid: int,
    router: RouterProc | None,
    model: str,
    args: argparse.Namespace,
    *,
    stream: bool,
    concurrency: int,
) -> dict[str, Any]:
    host, port = adapter_url.removeprefix("http://").split(":")
    wl = loadgen.Workload(
        host=host, port=int(port), stream=stream, tokens=args.tokens, model=model, real=True
    )
    lim = loadgen.Limits(
        concurrency=concurrency, duration=args.duration, warmup=args.warmup, timeout=300
    )
    adapter_pids = tree(adapter_pid)
    router_pids = tree(router.process.pid) if router is not None else []
    before = cpu_seconds(adapter_pids), cpu_seconds(router_pids)
    started = time.monotonic()
    summary = loadgen.run(wl, lim)
    wall = time.monotonic() - started
    after = cpu_seconds(adapter_pids), cpu_seconds(router_pids)
    tokens = max(summary["tokens"], 1)
    requests = max(summary["requests"], 1)
    adapter_cpu, router_cpu = after[0] - before[0], after[1] - before[1]
    return {
        "stream": stream,
        "concurrency": concurrency,
        "requests": summary["requests"],
        "errors": summary["errors"],
        "tokens_per_s": summary["tokens_per_s"],
        "rps": summary["rps"],
        "ttfc_p50_ms": summary["ttfc_p50_ms"],
        "lat_p50_ms": summary["lat_p50_ms"],
        "adapter_cpu_us_per_token": round(adapter_cpu / tokens * 1e6, 1),
        "adapter_cpu_us_per_request": round(adapter_cpu / requests * 1e6, 1),
        "router_cpu_us_per_token": round(router_cpu / tokens * 1e6, 1) if router else None,
        "router_cpu_us_per_request": round(router_cpu / requests * 1e6, 1) if router else None,
        "wall_s": round(wall, 1),
    }


def one_way(
    name: str, upstream: list[str], model: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    router = start_router(upstream) if name != "direct" else None
    vllm_url = router.url if router is not None else upstream[0]
    env = {"ADAPTER_ACCESS_LOG": "false", "ADAPTER_PROBE_CAPABILITIES": "false"}
    cells = []
    try:
        with adapter_process(vllm_url, env=env) as (url, proc):
            for stream in (True, False):
                for concurrency in (args.concurrency, 1):
                    cell = measure(
                        url, proc.pid, router, model, args, stream=stream, concurrency=concurrency
                    )
                    cells.append({"way": name, **cell})
                    print(json.dumps(cells[-1]), flush=True)
    finally:
        if router is not None:
            router.stop()
    return cells


def table(cells: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.kind}, {args.tokens} tokens an answer, {args.duration} s a cell, rounds "
        f"{args.rounds}; the mean of the rounds (their range)",
        "",
        "| way | answer | concurrency | tokens/s | requests/s | adapter µs CPU / token "
        "| router µs CPU / token | adapter µs CPU / request | router µs CPU / request | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys: dict[tuple[str, bool, int], list[dict[str, Any]]] = {}
    for cell in cells:
        keys.setdefault((cell["way"], cell["stream"], cell["concurrency"]), []).append(cell)

    def mean(values: list[Any]) -> Any:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        average = round(sum(values) / len(values), 1)
        if len(values) == 1:
            return average
        return f"{average} ({min(values)}-{max(values)})"

    for (way, stream, concurrency), group in keys.items():
        m = {k: mean([c[k] for c in group]) for k in group[0] if k not in ("way", "stream")}
        lines.append(
            f"| {way} | {'stream' if stream else 'whole'} | {concurrency} | {m['tokens_per_s']} "
            f"| {m['rps']} | {m['adapter_cpu_us_per_token']} | {m['router_cpu_us_per_token']} "
            f"| {m['adapter_cpu_us_per_request']} | {m['router_cpu_us_per_request']} "
            f"| {sum(c['errors'] for c in group)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="chat", choices=["chat", "smollm2"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--name", default="replicas")
    args = parser.parse_args()
    kinds: tuple[ServerKind, ServerKind] = (
        ("smollm2", "smollm2-replica") if args.kind == "smollm2" else ("chat", "chat")
    )
    servers: list[VllmServer] = [launch_server(kind) for kind in kinds]
    cells: list[dict[str, Any]] = []
    try:
        for server in servers:
            server.wait_ready()
        urls = [s.base_url for s in servers]
        model = SERVED_NAME[kinds[0]]
        # Both servers' first minutes are slower (allocations, caches): a discarded round of
        # streams through the router in front of both warms them before anything is measured.
        warm = argparse.Namespace(**{**vars(args), "duration": 10.0})
        router = start_router(urls)
        try:
            with adapter_process(router.url) as (url, proc):
                measure(url, proc.pid, router, model, warm, stream=True, concurrency=16)
        finally:
            router.stop()
        for _ in range(args.rounds):
            cells += one_way("direct", urls[:1], model, args)
            cells += one_way("router-1", urls[:1], model, args)
            cells += one_way("router-2", urls, model, args)
    finally:
        for server in servers:
            server.stop()
    RESULTS.mkdir(exist_ok=True)
    report = table(cells, args)
    (RESULTS / f"{args.name}.md").write_text(report)
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"args": vars(args), "cells": cells}, indent=2) + "\n"
    )
    print(report)


if __name__ == "__main__":
    main()
