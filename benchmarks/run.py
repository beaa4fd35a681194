"""Run the benchmark matrix of issue 5 and write benchmarks/results/<name>.{md,json,png}.

Fake-upstream matrix (default): direct upstream vs through the adapter; non-streaming and
streaming (100 chunks); concurrency 1, 16, 64; /api/tags; adapter peak RSS under load and with
1,000 open slow streams. The adapter is pinned to --adapter-cpus, the fake upstream and the load
generator to --client-cpus.

    .venv/bin/python -m benchmarks.run                      # full matrix, ~1-2 minutes
    .venv/bin/python -m benchmarks.run --workers 1,2 --adapter-cpus 0-1 --client-cpus 2-3
    .venv/bin/python -m benchmarks.run --capacity           # the tools' own capacity
    .venv/bin/python -m benchmarks.run --real-vllm http://127.0.0.1:8000 --model tiny-llm
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # allow `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import procs, report
from benchmarks.common import parse_cpus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MIB = 1024.0


class Bench:
    """Starts the servers, runs the cells, collects results."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.py = a.python
        self.adapter_cpus = parse_cpus(a.adapter_cpus) if a.pin else []
        self.client_cpus = parse_cpus(a.client_cpus) if a.pin else []
        self.logdir = RESULTS / f"{a.name}.logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.servers: list[procs.Server] = []
        self.quotas: list[procs.CpuQuota] = []
        self.cells: list[dict[str, Any]] = []
        self.extra: dict[str, Any] = {}

    # -- servers ---------------------------------------------------------------------------
    def upstream(self, tag: str, *flags: str) -> procs.Server:
        """Start a fake upstream on the client CPUs; returns it with ``port`` set."""
        a = self.a
        cmd = [self.py, "-m", "benchmarks.fake_upstream", "--port", "0", "--chunks", str(a.chunks)]
        cmd += ["--processes", str(a.upstream_procs), "--model", a.model, *flags]
        if a.split_bytes and "--split-bytes" not in flags:
            cmd += ["--split-bytes", str(a.split_bytes)]
        if a.unicode and "--unicode" not in flags:
            cmd.append("--unicode")
        srv = procs.start(
            f"upstream-{tag}",
            cmd,
            self.client_cpus,
            self.logdir / f"upstream-{tag}.log",
            subprocess.PIPE,
        )
        self.servers.append(srv)
        srv.port = procs.wait_ready_line(srv)
        return srv

    def adapter(self, upstream_url: str, workers: int, tag: str) -> procs.Server:
        """Start the adapter pinned to the first ``workers`` adapter CPUs; wait for GET /."""
        port = procs.free_port()
        cmd = [self.py, "-m", "adapter", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--vllm-url", upstream_url, "--log-level", "warning", "--workers", str(workers)]
        cmd += self.a.adapter_arg
        cpus = (
            self.adapter_cpus[:workers] if len(self.adapter_cpus) >= workers else self.adapter_cpus
        )
        srv = procs.start(f"adapter-{tag}", cmd, cpus, self.logdir / f"adapter-{tag}.log")
        self.servers.append(srv)
        srv.port = port
        procs.wait_http(srv, port, "/", b"Ollama is running")
        if self.a.worker_cpu_quota:
            quota = procs.CpuQuota(tag, self.a.worker_cpu_quota)
            self.quotas.append(quota)
            pids = procs.worker_pids(srv.pid, workers)
            if len(pids) != workers:
                raise RuntimeError(f"found {len(pids)} worker processes, expected {workers}")
            for pid in pids:
                quota.add(pid)
        return srv

    def byte_relay(self, upstream_url: str) -> procs.Server:
        """Start the byte relay (benchmarks/byterelay.py) to ``upstream_url`` where the
        adapter's one worker runs: the least a proxy can cost, for the real-vLLM floor."""
        host_port = upstream_url.split("://", 1)[-1].rstrip("/")
        cmd = [self.py, "-m", "benchmarks.byterelay", "--upstream", host_port]
        log = self.logdir / "byterelay.log"
        srv = procs.start("byterelay", cmd, self.adapter_cpus[:1], log, subprocess.PIPE)
        self.servers.append(srv)
        srv.port = procs.wait_ready_line(srv)
        return srv

    def naive(self, upstream_url: str) -> procs.Server:
        """Start the naive FastAPI + httpx adapter (benchmarks/naive_adapter.py) on the first
        adapter CPU, as the adapter's one worker runs."""
        port = procs.free_port()
        cmd = [self.py, "-m", "benchmarks.naive_adapter", "--port", str(port)]
        cmd += ["--vllm-url", upstream_url]
        srv = procs.start("naive", cmd, self.adapter_cpus[:1], self.logdir / "naive.log")
        self.servers.append(srv)
        srv.port = port
        procs.wait_http(srv, port, "/", b"Ollama is running")
        return srv

    def gate(self) -> None:
        """The gate's cost per request (benchmarks/gatebench.py), pinned as the adapter is."""
        cmd = [self.py, "-m", "benchmarks.gatebench", "--json"]
        if self.adapter_cpus:
            cmd = ["taskset", "-c", str(self.adapter_cpus[0]), *cmd]
        out = subprocess.run(cmd, capture_output=True, timeout=300, check=True)
        gate = json.loads(out.stdout.decode().strip().splitlines()[-1])
        self.extra.setdefault("gates", []).append(gate)
        print(f"gate: {gate}", flush=True)

    def stop_all(self) -> None:
        """Stop every server this run started."""
        for srv in reversed(self.servers):
            srv.stop()
        self.servers.clear()
        for quota in self.quotas:
            quota.close()
        self.quotas.clear()

    # -- load ------------------------------------------------------------------------------
    def load(self, url: str, api: str, endpoint: str, stream: bool, conc: int, **kw: Any) -> Any:
        """Run the load generator as a pinned subprocess; returns its JSON summary."""
        a = self.a
        duration = kw.get("duration", a.duration)
        warmup = kw.get("warmup", a.warmup)
        timeout = kw.get("timeout", a.timeout)
        cmd = [self.py, "-m", "benchmarks.loadgen", "--url", url]
        cmd += ["--api", api, "--endpoint", endpoint, "--stream" if stream else "--no-stream"]
        cmd += ["-c", str(conc), "-d", str(duration), "--warmup", str(warmup)]
        cmd += ["--timeout", str(timeout), "--tokens", str(kw.get("tokens", a.chunks))]
        cmd += ["--model", a.model, "--procs", str(a.client_procs), "--json"]
        if "max_requests" in kw:
            cmd += ["-n", str(kw["max_requests"])]
        if self.client_cpus:
            cmd += ["--cpus", ",".join(map(str, self.client_cpus))]
        if kw.get("unicode", a.unicode):
            cmd.append("--unicode")
        if kw.get("real"):
            cmd.append("--real")
        limit = warmup + duration + timeout + 60
        out = subprocess.run(cmd, capture_output=True, timeout=limit, check=False)
        lines = out.stdout.decode().strip().splitlines()
        if not lines:
            raise RuntimeError(f"loadgen failed: {out.stderr.decode()[-2000:]}")
        return json.loads(lines[-1])

    def cell(
        self,
        target: str,
        server: procs.Server,
        upstream: procs.Server | None,
        endpoint: str,
        stream: bool,
        conc: int,
        workers: int = 0,
        **kw: Any,
    ) -> dict[str, Any]:
        """One measured cell, with the server's CPU time and (for the adapter) peak RSS."""
        api = "openai" if target == "direct" else "ollama"
        spids = procs.tree(server.pid)
        upids = procs.tree(upstream.pid) if upstream is not None else []
        s0, u0 = procs.cpu_seconds(spids), procs.cpu_seconds(upids)
        jiffies = procs.cpu_times()
        with procs.MemSampler(server.pid) as mem:
            res = self.load(local(server.port), api, endpoint, stream, conc, **kw)
        s1, u1 = procs.cpu_seconds(spids), procs.cpu_seconds(upids)
        adapter_busy = procs.busy_pct(jiffies, self.adapter_cpus)
        client_busy = procs.busy_pct(jiffies, self.client_cpus)
        row: dict[str, Any] = {
            "target": target,
            "workers": workers,
            "endpoint": endpoint,
            "stream": stream,
            "concurrency": conc,
            **res,
            "warmup_s": kw.get("warmup", self.a.warmup),
            "server_cpu_s": round(s1 - s0, 3),
            "upstream_cpu_s": round(u1 - u0, 3) if upstream is not None else None,
            "server_rss_peak_mib": round(mem.peak_kib / MIB, 1),
            "adapter_cpus_busy_pct": adapter_busy,
            "client_cpus_busy_pct": client_busy,
        }
        if "round" in kw:
            row["round"] = kw["round"]
        label = f"{target} w{workers} {endpoint} {'stream' if stream else 'full'} c{conc}"
        print(
            f"{label:<32} {res['rps']:>9.1f} req/s {res['chunks_per_s']:>10.1f} chunks/s "
            f"p50 {res['lat_p50_ms']} p99 {res['lat_p99_ms']} ms errors {res['errors']}",
            flush=True,
        )
        for msg in res["error_samples"][:2]:
            print(f"    error: {msg}", flush=True)
        self.cells.append(row)
        return row

    def cells_of_matrix(self) -> list[tuple[str, bool, int]]:
        """The matrix's cells: non-streaming and streaming chat at every concurrency, tags."""
        chat = [
            ("chat", stream, conc)
            for stream in (False, True)
            for conc in parse_cpus(self.a.concurrency)
        ]
        return [*chat, ("tags", False, self.a.tags_concurrency)]

    # -- scenarios -------------------------------------------------------------------------
    def fake_matrix(self) -> None:
        """Direct vs adapter (per workers count) vs the naive adapter, in ``--rounds`` rounds:
        each cell measured on every server one right after the other (so a ratio compares
        neighbouring seconds), then the gate; then the slow-stream memory test."""
        a = self.a
        up = self.upstream("fast")
        url = f"http://127.0.0.1:{up.port}"
        servers: list[tuple[str, procs.Server, int]] = []
        if not a.no_direct:
            servers.append(("direct", up, 0))
        adapters = []
        for w in parse_cpus(a.workers):
            ad = self.adapter(url, w, f"w{w}")
            adapters.append((w, ad, procs.tree_rss_kib(ad.pid)))
            servers.append(("adapter", ad, w))
        nv = self.naive(url) if a.naive else None
        if nv is not None:
            servers.append(("naive", nv, 1))
        for r in range(a.rounds):
            kw = {"round": r} if a.rounds > 1 else {}
            for endpoint, stream, conc in self.cells_of_matrix():
                for target, srv, w in servers:
                    self.cell(target, srv, up, endpoint, stream, conc, w, **kw)
            self.gate()
        for w, ad, idle_kib in adapters:
            self.extra.setdefault("adapter_memory", {})[f"w{w}"] = {
                "idle_rss_mib": round(idle_kib / MIB, 1),
                "hwm_mib": round(procs.tree_hwm_kib(ad.pid) / MIB, 1),
            }
            ad.stop()
        if nv is not None:
            nv.stop()
        if a.slow_streams > 0:
            self.slow_streams()
        if a.split_check:
            self.split_check()

    def split_check(self) -> None:
        """Correctness through the adapter: SSE cut mid-line and mid-character, unicode text."""
        up = self.upstream("split", "--split-bytes", "11", "--unicode")
        ad = self.adapter(f"http://127.0.0.1:{up.port}", 1, "split")
        kw = {"unicode": True, "duration": 1.0, "tokens": 20}
        for stream in (True, False):
            row = self.cell("adapter", ad, up, "chat", stream, 4, 1, **kw)
            row["scenario"] = "split SSE + unicode (1-23 byte writes, 20 tokens)"
        ad.stop()
        up.stop()

    def slow_streams(self) -> None:
        """Peak adapter RSS with many open slow streams (fresh upstream and adapter)."""
        a = self.a
        up = self.upstream("slow", "--delay", str(a.slow_delay))
        ad = self.adapter(f"http://127.0.0.1:{up.port}", 1, "slow")
        n, chunks = a.slow_streams, a.slow_chunks
        stream_s = chunks * a.slow_delay
        row = self.cell(
            "adapter",
            ad,
            up,
            "chat",
            True,
            n,
            1,
            tokens=chunks,
            max_requests=n,
            warmup=0,
            duration=stream_s + 35,  # every client sends once: the window outlasts the timeout
            timeout=stream_s + 30,
        )
        row["scenario"] = f"{n} slow streams ({chunks} chunks, {a.slow_delay}s apart)"
        _, stats = procs.http_get(up.port, "/stats")
        self.extra["slow_streams"] = {
            "streams": n,
            "chunks": chunks,
            "delay_s": a.slow_delay,
            "upstream_stats": json.loads(stats),
            "peak_rss_mib": row["server_rss_peak_mib"],
            "hwm_mib": round(procs.tree_hwm_kib(ad.pid) / MIB, 1),
            "errors": row["errors"],
        }
        ad.stop()
        up.stop()

    def capacity(self) -> None:
        """The fake upstream and the load generator, each on its own core and sharing one."""
        own = self.client_cpus[:1] or [1]
        other = self.adapter_cpus[:1] or [0]
        for layout, up_cpus, lg_cpus in (
            ("separate cores", own, other),
            ("one shared core", own, own),
        ):
            self.client_cpus = up_cpus
            up = self.upstream(f"cap-{len(self.cells)}")
            self.client_cpus = lg_cpus
            for stream in (False, True):
                for conc in (1, 16, 64):
                    row = self.cell("direct", up, up, "chat", stream, conc)
                    row["scenario"] = layout
            row = self.cell("direct", up, up, "tags", False, 16)
            row["scenario"] = layout
            up.stop()

    def real(self) -> None:
        """Real vLLM: tokens/s and time to first token, direct vs through the adapter."""
        a = self.a
        self.extra["vllm_cpus"] = procs.vllm_cpus()
        ad = self.adapter(a.real_vllm, 1, "real")
        relay = self.byte_relay(a.real_vllm) if a.real_floor and not a.real_paired else None
        for conc in parse_cpus(a.real_concurrency):
            for i in range(a.real_rounds):
                if a.real_paired:
                    self.real_pair(local(ad.port), ad, conc, i)
                    continue
                self.real_cell("direct", a.real_vllm, None, conc)
                if relay is not None:
                    self.real_cell("relay", local(relay.port), relay, conc)
                self.real_cell("adapter", local(ad.port), ad, conc)

    def real_pair(self, adapter_url: str, srv: procs.Server, conc: int, round_no: int) -> None:
        """Direct and adapter streams at the same time, half the concurrency each.

        Both halves share every vLLM batch, so a stall of the server (frequent on a small CPU
        machine) slows both alike; any difference left is what the adapter adds. Each half
        counts the tokens of the requests it completed within the same time window.
        """
        a = self.a
        kw: dict[str, Any] = {"tokens": a.real_tokens, "real": True, "timeout": 300.0}
        kw.update(warmup=a.warmup, duration=a.duration)
        half = max(conc // 2, 1)
        with ThreadPoolExecutor(2) as pool:
            direct = pool.submit(self.load, a.real_vllm, "openai", "chat", True, half, **kw)
            with procs.MemSampler(srv.pid) as mem:
                res = self.load(adapter_url, "ollama", "chat", True, half, **kw)
            legs = {"direct": direct.result(), "adapter": res}
        for target, r in legs.items():
            print(
                f"paired {target:<8} c{half:<4} {r['tokens_per_s']:>9.1f} tok/s "
                f"ttft p50 {r['ttfc_p50_ms']} ms errors {r['errors']}",
                flush=True,
            )
            row: dict[str, Any] = {"target": target, "workers": 1 if target == "adapter" else 0}
            row.update(endpoint="chat", stream=True, concurrency=half, warmup_s=a.warmup)
            row.update(paired=round_no, pair_concurrency=conc)
            row["server_rss_peak_mib"] = (
                round(mem.peak_kib / MIB, 1) if target == "adapter" else None
            )
            self.cells.append({**row, **r})

    def real_cell(self, target: str, url: str, srv: procs.Server | None, conc: int) -> None:
        """One real-vLLM cell (shape/count checks only; RSS for the adapter)."""
        a = self.a
        api = "ollama" if target == "adapter" else "openai"
        kw: dict[str, Any] = {"tokens": a.real_tokens, "real": True, "timeout": 300.0}
        kw.update(warmup=0, max_requests=a.real_requests)  # same fixed work for both targets
        rss = None
        api_pids = procs.vllm_api_server_pids()
        mine = procs.tree(srv.pid) if srv is not None else []
        v0, m0 = procs.cpu_seconds(api_pids), procs.cpu_seconds(mine)
        stream = not a.real_whole
        if srv is None:
            res = self.load(url, api, "chat", stream, conc, **kw)
        else:
            with procs.MemSampler(srv.pid) as mem:
                res = self.load(url, api, "chat", stream, conc, **kw)
            rss = round(mem.peak_kib / MIB, 1)
        v1, m1 = procs.cpu_seconds(api_pids), procs.cpu_seconds(mine)
        tokens = res.get("tokens") or 0
        print(
            f"real {target:<8} c{conc:<4} {res['tokens_per_s']:>9.1f} tok/s "
            f"ttft p50 {res['ttfc_p50_ms']} ms errors {res['errors']}",
            flush=True,
        )
        workers = 1 if target == "adapter" else 0
        row: dict[str, Any] = {"target": target, "workers": workers, "endpoint": "chat"}
        row.update(stream=stream, concurrency=conc, warmup_s=0, server_rss_peak_mib=rss)
        if tokens and api_pids:
            # CPU per relayed token: vLLM's API-server process (the same requests, whichever
            # way they came), and the adapter's (or the byte relay's) processes when they were
            # in the path.
            row["vllm_api_cpu_us_per_token"] = round((v1 - v0) / tokens * 1e6, 2)
            if srv is not None:
                row["adapter_cpu_us_per_token"] = round((m1 - m0) / tokens * 1e6, 2)
        self.cells.append({**row, **res})


def local(port: int) -> str:
    """Base URL of a server on this machine."""
    return f"http://127.0.0.1:{port}"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", default="", help="results file name (default: timestamp)")
    p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--duration", type=float, help="seconds per cell (3; real: a 600 s cap)")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds discarded per cell")
    p.add_argument("--timeout", type=float, default=30.0, help="per request")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--tags-concurrency", type=int, default=16)
    p.add_argument("--chunks", type=int, default=100, help="chunks per streamed reply")
    p.add_argument("--workers", default="1", help="adapter --workers values, e.g. 1,2")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the matrix this many times (each cell on every server back to back) and\n"
        "report issue 19's ratios and rates as the median of the rounds (the VM's speed\n"
        "drifts by tens of per cent between minutes)",
    )
    p.add_argument(
        "--worker-cpu-quota",
        type=float,
        default=0.0,
        help="cap each adapter worker at this share of one CPU (cgroup, root), to emulate a\n"
        "core per worker for --workers scaling on a small machine, e.g. 0.25",
    )
    p.add_argument("--adapter-cpus", default="0")
    p.add_argument("--client-cpus", default="1", help="fake upstream + load generator")
    p.add_argument("--no-pin", dest="pin", action="store_false")
    p.add_argument("--client-procs", type=int, default=1, help="load generator processes")
    p.add_argument("--upstream-procs", type=int, default=1, help="fake upstream processes")
    p.add_argument("--no-direct", action="store_true", help="skip the direct-upstream cells")
    p.add_argument(
        "--no-naive",
        dest="naive",
        action="store_false",
        help="skip the naive FastAPI + httpx adapter's cells (benchmarks/naive_adapter.py)",
    )
    p.add_argument("--slow-streams", type=int, default=1000, help="0 skips the memory test")
    p.add_argument("--slow-chunks", type=int, default=20)
    p.add_argument("--slow-delay", type=float, default=0.25, help="seconds between chunks")
    p.add_argument("--split-bytes", type=int, default=0, help="fake upstream splits SSE writes")
    p.add_argument(
        "--no-split-check",
        dest="split_check",
        action="store_false",
        help="skip the split-writes + unicode correctness cells",
    )
    p.add_argument("--unicode", action="store_true", help="multi-byte token text")
    p.add_argument("--adapter-arg", action="append", default=[], help="extra adapter argument")
    p.add_argument("--model", default="tiny-llm")
    p.add_argument("--capacity", action="store_true", help="measure the tools themselves")
    p.add_argument("--real-vllm", default="", help="URL of a real vLLM server")
    p.add_argument("--real-tokens", type=int, default=64, help="max tokens per real request")
    p.add_argument("--real-requests", type=int, default=48, help="requests per real cell")
    p.add_argument("--real-concurrency", default="16")
    p.add_argument("--real-rounds", type=int, default=2, help="alternating direct/adapter runs")
    p.add_argument(
        "--keep-cpus-awake",
        action="store_true",
        help="hold /dev/cpu_dma_latency at 0 during the run (idle CPUs poll instead of halting)",
    )
    p.add_argument(
        "--real-whole",
        action="store_true",
        help="real vLLM: non-streaming requests (stream false) on both legs, not streams",
    )
    p.add_argument(
        "--real-floor",
        action="store_true",
        help="real vLLM: also send the direct leg's requests through a byte relay\n"
        "(benchmarks/byterelay.py) pinned as the adapter is: the CPU share of a proxy that\n"
        "does nothing, beside the adapter's (not with --real-paired)",
    )
    p.add_argument(
        "--real-paired",
        action="store_true",
        help="run direct and adapter streams at once (half the concurrency each, --duration s)",
    )
    a = p.parse_args(argv)
    if a.duration is None:
        a.duration = 10.0 if a.real_paired else 600.0 if a.real_vllm else 3.0
    if not a.name:
        kind = "real" if a.real_vllm else "capacity" if a.capacity else "matrix"
        a.name = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    return a


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit status 1 when any reply failed its checks."""
    a = parse_args(argv)
    procs.raise_nofile()
    awake = procs.keep_cpus_awake() if a.keep_cpus_awake else None
    bench = Bench(a)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    try:
        if a.real_vllm:
            bench.real()
        elif a.capacity:
            bench.capacity()
        else:
            bench.fake_matrix()
    finally:
        bench.stop_all()
        if awake is not None:
            os.close(awake)
    doc = {
        "name": a.name,
        "mode": "real" if a.real_vllm else "capacity" if a.capacity else "matrix",
        "started": started,
        "wall_s": round(time.monotonic() - t0, 1),
        "machine": machine(),
        "config": {k: v for k, v in vars(a).items() if k != "python"},
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
        "cells": bench.cells,
        **bench.extra,
    }
    doc["summary"] = report.summarize(doc)
    paths = report.write(doc, RESULTS)
    print("\n".join(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}" for p in paths))
    errors = sum(c["errors"] for c in bench.cells)
    print(f"errors: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
