"""Profile the adapter under load with py-spy: flame graph SVG plus top self/inclusive frames.

    .venv/bin/pip install py-spy
    .venv/bin/python -m benchmarks.profile --stream -c 16 -d 10 --name stream-c16

Starts a fake upstream (client CPU) and the adapter (adapter CPU), samples the adapter while the
load generator runs, and writes benchmarks/results/profile-<name>.{svg,txt,md}.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from benchmarks import procs
from benchmarks.common import parse_cpus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LINE_NO = re.compile(r":\d+\)$")


def rel(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (else as it is)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def top_frames(
    collapsed: str, n: int = 25
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self %, inclusive %) of the most expensive functions in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [LINE_NO.sub(")", f) for f in stack.split(";")]
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    if not total:
        return [], []

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        rows = [(f, round(100.0 * c / total, 1)) for f, c in counter.most_common()]
        return [r for r in rows if r[1] < 99.9][:n]  # drop the always-present root frames

    return pct(own), pct(incl)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", default="adapter")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--endpoint", choices=("chat", "tags"), default="chat")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--adapter-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--adapter-arg", action="append", default=[])
    p.add_argument(
        "--upstream-arg", action="append", default=[], help="e.g. --upstream-arg=--delay=0.25"
    )
    p.add_argument("--tokens", type=int, default=100, help="chunks per reply")
    p.add_argument("--timeout", type=float, default=30.0, help="per request")
    p.add_argument("--py-spy", default=str(ROOT / ".venv" / "bin" / "py-spy"))
    a = p.parse_args(argv)
    spy = a.py_spy if Path(a.py_spy).exists() else shutil.which("py-spy")
    if not spy:
        sys.exit("py-spy not found: .venv/bin/pip install py-spy")
    py = str(ROOT / ".venv" / "bin" / "python")
    client, adapter_cpus = parse_cpus(a.client_cpus), parse_cpus(a.adapter_cpus)
    logdir = RESULTS / f"profile-{a.name}.logs"
    logdir.mkdir(parents=True, exist_ok=True)
    up = procs.start(
        "upstream",
        [py, "-m", "benchmarks.fake_upstream", "--port", "0", *a.upstream_arg],
        client,
        logdir / "upstream.log",
        subprocess.PIPE,
    )
    servers = [up]
    try:
        up.port = procs.wait_ready_line(up)
        port = procs.free_port()
        cmd = [py, "-m", "adapter", "--host", "127.0.0.1", "--port", str(port), "--vllm-url"]
        cmd += [f"http://127.0.0.1:{up.port}", "--log-level", "warning", "--workers", "1"]
        ad = procs.start("adapter", cmd + a.adapter_arg, adapter_cpus, logdir / "adapter.log")
        servers.append(ad)
        procs.wait_http(ad, port, "/", b"Ollama is running")
        raw = RESULTS / f"profile-{a.name}.txt"
        svg = RESULTS / f"profile-{a.name}.svg"
        load_cmd = [py, "-m", "benchmarks.loadgen", "--url", f"http://127.0.0.1:{port}"]
        load_cmd += ["--endpoint", a.endpoint, "--stream" if a.stream else "--no-stream"]
        load_cmd += ["-c", str(a.concurrency), "-d", str(a.duration + 2), "--warmup", "0.5"]
        load_cmd += ["--cpus", a.client_cpus, "--tokens", str(a.tokens), "--json"]
        load_cmd += ["--timeout", str(a.timeout)]
        out: list[str] = []
        loader = threading.Thread(
            target=lambda: out.append(
                subprocess.run(load_cmd, capture_output=True, text=True, check=False).stdout
            )
        )
        loader.start()
        spy_cmd = [
            rel(Path(spy)),
            "record",
            "--subprocesses",
            "-p",
            str(ad.pid),
            "-r",
            str(a.rate),
            "-d",
            str(int(a.duration)),
        ]
        # Paths relative to the repository: py-spy writes its command line into the SVG.
        subprocess.run([*spy_cmd, "--format", "raw", "-o", rel(raw)], check=True, cwd=ROOT)
        loader.join()
        loader = threading.Thread(
            target=lambda: subprocess.run(load_cmd, capture_output=True, check=False)
        )
        loader.start()
        subprocess.run([*spy_cmd, "-o", rel(svg)], check=True, capture_output=True, cwd=ROOT)
        loader.join()
        # The sampled processes' command lines name the interpreter by its absolute path.
        svg.write_text(svg.read_text().replace(f"{ROOT}/", ""))
        own, incl = top_frames(raw.read_text())
        md = [f"# py-spy profile of the adapter: {a.name}", "", f"Load: `{' '.join(load_cmd[2:])}`"]
        md += ["", f"Result: `{(out or [''])[0].strip()}`", "", "## Self time", ""]
        md += ["| % | function |", "|---|---|"] + [f"| {v} | `{f}` |" for f, v in own]
        md += ["", "## Inclusive time", "", "| % | function |", "|---|---|"]
        md += [f"| {v} | `{f}` |" for f, v in incl]
        md_path = RESULTS / f"profile-{a.name}.md"
        md_path.write_text("\n".join(md) + "\n")
        print(f"wrote {md_path}, {svg}, {raw}")
    finally:
        for srv in reversed(servers):
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
