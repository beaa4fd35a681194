"""Derived numbers, issue-5 targets, and the markdown / JSON / PNG outputs of a run."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def find(
    cells: list[Row], target: str, endpoint: str, stream: bool, conc: int, w: int
) -> Row | None:
    """The first plain (non-scenario) cell matching."""
    for c in cells:
        if (
            c["target"] == target
            and c["endpoint"] == endpoint
            and c["stream"] == stream
            and c["concurrency"] == conc
            and c["workers"] == w
            and "scenario" not in c
        ):
            return c
    return None


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) else math.nan


def _diff(a: Row | None, b: Row | None, key: str) -> float:
    if a is None or b is None:
        return math.nan
    return round(_num(a[key]) - _num(b[key]), 3)


def _target(
    measure: str, value: float, limit: float, higher: bool, unit: str, per_core: float | None = None
) -> Row:
    ok = (value >= limit if higher else value <= limit) if not math.isnan(value) else None
    sign = "≥" if higher else "≤"
    row = {"measure": measure, "value": value, "target": f"{sign} {limit:g} {unit}", "pass": ok}
    row["per_core"] = per_core
    return row


def per_core(c: Row | None) -> float | None:
    """Rate divided by the server's CPU utilisation: what one fully available core would do.

    Robust to other processes competing for the core (the rate falls, and so does the CPU
    the server got); not a substitute for a measurement on a quiet machine.
    """
    if c is None:
        return None
    window = _num(c["elapsed_s"]) + _num(c.get("warmup_s", 0.5))
    util = _num(c.get("server_cpu_s")) / window if window else math.nan
    rate = _num(c["chunks_per_s"] if c["stream"] else c["rps"])
    if math.isnan(util) or util <= 0.01:
        return None
    return round(rate / util, 1)


def summarize(doc: Row) -> Row:
    """Added latency, capacity estimates and target checks for the run's mode."""
    cells: list[Row] = doc["cells"]
    mode = doc["mode"]
    if mode == "real":
        return _real_summary(cells)
    if mode == "capacity":
        return {"capacity": [_capacity(c) for c in cells]}
    out: Row = {}
    d_full, a_full = (
        find(cells, "direct", "chat", False, 1, 0),
        find(cells, "adapter", "chat", False, 1, 1),
    )
    d_str, a_str = (
        find(cells, "direct", "chat", True, 1, 0),
        find(cells, "adapter", "chat", True, 1, 1),
    )
    added = {
        "full_lat_p50_ms": _diff(a_full, d_full, "lat_p50_ms"),
        "full_lat_p99_ms": _diff(a_full, d_full, "lat_p99_ms"),
        "stream_lat_p50_ms": _diff(a_str, d_str, "lat_p50_ms"),
        "stream_lat_p99_ms": _diff(a_str, d_str, "lat_p99_ms"),
        "ttfc_p50_ms": _diff(a_str, d_str, "ttfc_p50_ms"),
        "ttfc_p99_ms": _diff(a_str, d_str, "ttfc_p99_ms"),
    }
    out["added_at_c1"] = added
    full16 = find(cells, "adapter", "chat", False, 16, 1)
    str16 = find(cells, "adapter", "chat", True, 16, 1)
    loaded = [c for c in cells if c["target"] == "adapter" and c["workers"] == 1]
    load_peak = max(
        (_num(c["server_rss_peak_mib"]) for c in loaded if "scenario" not in c), default=math.nan
    )
    slow = doc.get("slow_streams", {})
    targets = [
        _target(
            "non-streaming /api/chat, 16 concurrent",
            _num(full16 and full16["rps"]),
            2000,
            True,
            "req/s",
            per_core(full16),
        ),
        _target(
            "streaming /api/chat, 100 chunks, 16 concurrent",
            _num(str16 and str16["chunks_per_s"]),
            60000,
            True,
            "chunks/s",
            per_core(str16),
        ),
        _target("latency added at 1 concurrent, p50", added["full_lat_p50_ms"], 0.5, False, "ms"),
        _target("latency added at 1 concurrent, p99", added["full_lat_p99_ms"], 1.5, False, "ms"),
        _target("time to first chunk added (p50)", added["ttfc_p50_ms"], 0.5, False, "ms"),
        _target("peak adapter RSS under load", load_peak, 80, False, "MiB"),
        _target(
            f"peak adapter RSS, {slow.get('streams', 0)} open slow streams",
            _num(slow.get("peak_rss_mib")),
            200,
            False,
            "MiB",
        ),
    ]
    errors = sum(int(c["errors"]) for c in cells)
    targets.append(
        _target("replies failing the checks (all cells)", float(errors), 0, False, "replies")
    )
    out["targets"] = targets
    out["targets_19"] = _stream_path_targets(doc, cells)
    scaling = []
    top = max((c["concurrency"] for c in cells if "scenario" not in c), default=0)
    for w in sorted({c["workers"] for c in cells if c["target"] == "adapter"}):
        f = find(cells, "adapter", "chat", False, top, w)
        s = find(cells, "adapter", "chat", True, top, w)
        scaling.append(
            {
                "workers": w,
                "concurrency": top,
                "full_rps": f and f["rps"],
                "stream_chunks_per_s": s and s["chunks_per_s"],
            }
        )
    out["workers_scaling"] = scaling
    return out


def _ratio(a: Row | None, b: Row | None, key: str) -> float:
    if a is None or b is None or not _num(b[key]):
        return math.nan
    return round(_num(a[key]) / _num(b[key]), 2)


def _stream_path_targets(doc: Row, cells: list[Row]) -> list[Row]:
    """Issue 19's targets: against the naive adapter measured in the same run, /api/tags, and
    the gate's cost per request. With several rounds each is the median of the rounds (a
    ratio taken within each round), and ``rounds`` lists them."""
    tags_conc = doc.get("config", {}).get("tags_concurrency", 16)
    gates = _gates(doc)
    rounds = sorted({c.get("round", 0) for c in cells if "scenario" not in c})

    def per_round(value: Any) -> list[float]:
        return [value(r) for r in rounds]

    def in_round(r: int, target: str, endpoint: str, stream: bool, conc: int) -> Row | None:
        return find([c for c in cells if c.get("round", 0) == r], target, endpoint, stream, conc, 1)

    def ratio(stream: bool, key: str) -> list[float]:
        return per_round(
            lambda r: _ratio(
                in_round(r, "adapter", "chat", stream, 16),
                in_round(r, "naive", "chat", stream, 16),
                key,
            )
        )

    def tags(r: int) -> float:
        row = in_round(r, "adapter", "tags", False, tags_conc)
        return _num(row and row["rps"])

    tags_rounds = per_round(tags)
    gate_rounds = [_num(g.get("gate_us")) for g in gates]
    first_tags = in_round(rounds[0], "adapter", "tags", False, tags_conc) if rounds else None
    return [
        _median_target(
            "non-streaming /api/chat, 100-event answers, 16 concurrent, ÷ the naive adapter",
            ratio(False, "rps"),
            8,
            True,
            "times",
        ),
        _median_target(
            "streaming /api/chat, 100 chunks, 16 concurrent, ÷ the naive adapter",
            ratio(True, "chunks_per_s"),
            5,
            True,
            "times",
        ),
        _median_target(
            f"/api/tags, {tags_conc} concurrent",
            tags_rounds,
            20000,
            True,
            "req/s",
            per_core(first_tags) if len(tags_rounds) == 1 else None,
        ),
        _median_target("the gate, per request", gate_rounds, 2, False, "µs"),
    ]


def _gates(doc: Row) -> list[Row]:
    """The run's gatebench results, one a round (a run from before rounds has one)."""
    gates: list[Row] = doc.get("gates") or ([doc["gate"]] if doc.get("gate") else [])
    return gates


def _median_target(
    measure: str,
    values: list[float],
    target: float,
    higher_is_better: bool,
    unit: str,
    per_core_value: float | None = None,
) -> Row:
    """A target met or not by the median of its rounds' values (listed when more than one)."""
    finite = sorted(v for v in values if not math.isnan(v))
    value = statistics.median(finite) if finite else math.nan
    row = _target(measure, round(value, 2), target, higher_is_better, unit, per_core_value)
    if len(values) > 1:
        row["rounds"] = values
    return row


def _capacity(c: Row) -> Row:
    window = _num(c["elapsed_s"]) + _num(c.get("warmup_s", 0.5))
    up_util = _num(c["upstream_cpu_s"]) / window
    lg_util = _num(c.get("client_cpu_s")) / window
    rate = c["chunks_per_s"] if c["stream"] else c["rps"]
    return {
        "scenario": c.get("scenario"),
        "cell": f"{c['endpoint']} {'stream' if c['stream'] else 'full'} c{c['concurrency']}",
        "measured_per_s": rate,
        "unit": "chunks/s" if c["stream"] else "req/s",
        "upstream_cpu_util": round(up_util, 3),
        "loadgen_cpu_util": round(lg_util, 3),
        "upstream_capacity_per_core": round(rate / up_util) if up_util > 0 else None,
        "loadgen_capacity_per_core": round(rate / lg_util) if lg_util > 0 else None,
    }


def _real_summary(cells: list[Row]) -> Row:
    if any("paired" in c for c in cells):
        return _paired_summary(cells)
    out: Row = {"by_concurrency": []}
    # Streams, or answers taken whole (``--real-whole``, ``stream: false``).
    mode = "" if all(c.get("stream", True) for c in cells) else ", stream: false"
    for conc in sorted({c["concurrency"] for c in cells}):
        d = [c for c in cells if c["target"] == "direct" and c["concurrency"] == conc]
        a = [c for c in cells if c["target"] == "adapter" and c["concurrency"] == conc]
        relay = [c for c in cells if c["target"] == "relay" and c["concurrency"] == conc]
        dt = sum(c["tokens_per_s"] for c in d) / max(len(d), 1)
        at = sum(c["tokens_per_s"] for c in a) / max(len(a), 1)
        ratio = at / dt if dt else math.nan
        out["by_concurrency"].append(
            {
                "concurrency": conc,
                "direct_tokens_per_s": round(dt, 1),
                "adapter_tokens_per_s": round(at, 1),
                "ratio": round(ratio, 4),
                "direct_ttft_p50_ms": _mean(d, "ttfc_p50_ms"),
                "adapter_ttft_p50_ms": _mean(a, "ttfc_p50_ms"),
                "direct_ttft_p99_ms": _mean(d, "ttfc_p99_ms"),
                "adapter_ttft_p99_ms": _mean(a, "ttfc_p99_ms"),
                **_cpu_share(a),
                **_cpu_share(relay, "relay"),
            }
        )
        out["targets"] = [
            _target(
                f"tokens/s through the adapter vs direct, c{conc}{mode}",
                round(ratio * 100, 2),
                97,
                True,
                "%",
            )
        ]
        share = out["by_concurrency"][-1].get("adapter_cpu_share_pct")
        if share is not None:
            out["targets"].append(
                _target(
                    f"adapter CPU per token ÷ vLLM API server's, c{conc}{mode}",
                    share,
                    5,
                    False,
                    "%",
                )
            )
    return out


def _cpu_share(cells: list[Row], who: str = "adapter") -> Row:
    """The CPU per relayed token of what was in the path (the adapter, or ``relay``: the byte
    relay of ``--real-floor``; a cell keeps either under ``adapter_cpu_us_per_token``) beside
    vLLM's API-server process's, same requests; the keys start with ``who``."""
    rows = [c for c in cells if c.get("adapter_cpu_us_per_token") is not None]
    if not rows:
        return {}
    mine = _mean(rows, "adapter_cpu_us_per_token")
    theirs = _mean(rows, "vllm_api_cpu_us_per_token")
    share = round(mine / theirs * 100, 2) if theirs else math.nan
    return {
        f"{who}_cpu_us_per_token": mine,
        f"{who}_vllm_api_cpu_us_per_token": theirs,
        f"{who}_cpu_share_pct": share,
    }


def _paired_summary(cells: list[Row]) -> Row:
    """Paired rounds: the adapter's tokens/s over direct's in the same window, per round."""
    out: Row = {"by_concurrency": [], "targets": []}
    for conc in sorted({c["pair_concurrency"] for c in cells}):
        rows = [c for c in cells if c["pair_concurrency"] == conc]
        rounds = sorted({c["paired"] for c in rows})
        per_round = []
        for r in rounds:
            leg = {c["target"]: c for c in rows if c["paired"] == r}
            dt, at = leg["direct"]["tokens_per_s"], leg["adapter"]["tokens_per_s"]
            per_round.append(round(at / dt, 4) if dt else math.nan)
        d = [c for c in rows if c["target"] == "direct"]
        a = [c for c in rows if c["target"] == "adapter"]
        dt = sum(c["tokens_per_s"] for c in d)
        at = sum(c["tokens_per_s"] for c in a)
        ratio = at / dt if dt else math.nan
        finite = sorted(x for x in per_round if not math.isnan(x))
        out["by_concurrency"].append(
            {
                "concurrency": conc,
                "paired": True,
                "direct_tokens_per_s": round(dt / max(len(d), 1), 1),
                "adapter_tokens_per_s": round(at / max(len(a), 1), 1),
                "ratio": round(ratio, 4),
                "ratio_per_round": per_round,
                "ratio_median": finite[len(finite) // 2] if finite else math.nan,
                "direct_ttft_p50_ms": _mean(d, "ttfc_p50_ms"),
                "adapter_ttft_p50_ms": _mean(a, "ttfc_p50_ms"),
                "direct_ttft_p99_ms": _mean(d, "ttfc_p99_ms"),
                "adapter_ttft_p99_ms": _mean(a, "ttfc_p99_ms"),
            }
        )
        out["targets"].append(
            _target(
                f"tokens/s through the adapter vs direct at the same time, c{conc} "
                f"({conc // 2} streams each)",
                round(ratio * 100, 2),
                97,
                True,
                "%",
            )
        )
    return out


def _mean(rows: list[Row], key: str) -> float:
    vals = [_num(r[key]) for r in rows]
    return round(sum(vals) / len(vals), 3) if vals else math.nan


# -- markdown ----------------------------------------------------------------------------------
def _fmt(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "**NO**"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _pct(x: Any) -> str:
    return f"{x:.0f} %" if isinstance(x, int | float) else "-"


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in r) + " |" for r in rows
    ]
    return lines


def _layout(doc: Row) -> str:
    """Where each process ran and how long each cell measured."""
    cfg = doc["config"]
    pin = "" if cfg["pin"] else " (not pinned)"
    if doc["mode"] != "real":
        return (
            f"Adapter CPUs `{cfg['adapter_cpus']}`, client CPUs (fake upstream + load generator) "
            f"`{cfg['client_cpus']}`{pin}; "
            f"{cfg['duration']} s measured per cell after {cfg['warmup']} s warm-up."
        )
    if cfg.get("real_paired"):
        work = f"{cfg['duration']} s measured per round after {cfg['warmup']} s warm-up."
    else:
        work = f"{cfg['real_requests']} requests per cell (direct, then adapter, each round)."
    found = doc.get("vllm_cpus")
    where = (
        "CPUs of its processes: " + ", ".join(f"{k} `{v}`" for k, v in sorted(found.items()))
        if found
        else "its CPUs not recorded"
    )
    return (
        f"Real vLLM at `{cfg['real_vllm']}` ({where}); adapter "
        f"CPUs `{cfg['adapter_cpus']}`, load generator CPUs `{cfg['client_cpus']}`{pin}; "
        f"{cfg['real_tokens']} max tokens per request; {work}"
    )


def markdown(doc: Row) -> str:
    """The human-readable report."""
    m = doc["machine"]
    cfg = doc["config"]
    lines = [
        f"# Benchmark `{doc['name']}` ({doc['mode']})",
        "",
        f"Started {doc['started']}, {doc['wall_s']} s. Machine: {m['cpu']}, {m['cpus']} CPUs, "
        f"Linux {m['kernel']}, Python {m['python']}.",
        _layout(doc)
        + (
            " Idle CPUs kept awake (`/dev/cpu_dma_latency` held at 0)."
            if cfg.get("keep_cpus_awake")
            else ""
        ),
        "",
        f"Reproduce: `{doc['command']}`",
        "",
    ]
    s = doc["summary"]
    if s.get("targets"):
        lines += ["## Targets (issue 5)", ""]
        lines += _table(
            ["measure", "value", "target", "met", "per fully used core (see below)"],
            [
                [
                    t["measure"],
                    _fmt(t["value"], 3 if "ms" in t["target"] else 1)
                    + " "
                    + t["target"].split()[-1],
                    t["target"],
                    t["pass"],
                    _fmt(t.get("per_core")),
                ]
                for t in s["targets"]
            ],
        )
        lines.append("")
        lines += [
            '"Per fully used core" = measured rate ÷ the server\'s CPU utilisation in that cell: an',
            "estimate of the rate with the whole core, for when other processes competed for it",
            "(adapter-CPU busy well above server CPU in the table below). It is not a measurement.",
            "",
        ]
    if s.get("targets_19"):
        lines += ["## Targets (issue 19: the stream path)", ""]
        lines += _table(
            ["measure", "value", "target", "met", "rounds"],
            [
                [
                    t["measure"],
                    _fmt(t["value"], 2) + " " + t["target"].split()[-1],
                    t["target"],
                    t["pass"],
                    ", ".join(_fmt(v, 2) for v in t.get("rounds", [])) or "-",
                ]
                for t in s["targets_19"]
            ],
        )
        gates = _gates(doc)
        gate = gates[len(gates) // 2] if gates else {}
        if len(gates) > 1:
            lines += [
                "",
                f"Value = the median of {len(gates)} rounds; in each round every cell ran on the"
                " adapter and right after on the naive adapter (a ratio compares the two), then"
                " the gate ran.",
            ]
        if gate:
            lines += [
                "",
                f"Gate ({gate['requests']:,} requests in one process, `benchmarks/gatebench.py`): "
                f"{gate['gate_us']} µs a request with the access line off (as measured here), "
                f"{gate['gate_with_access_line_us']} µs writing it; a new request id "
                f"{gate['id_gate_us']} µs (16 random bytes: {gate['id_urandom_us']} µs).",
            ]
            if "gate_and_sends_us" in gate:
                lines.append(
                    f"With two no-op ASGI sends of an answer around it (what gatebench timed"
                    f" before 2026-12-02 night): {gate['gate_and_sends_us']} µs."
                )
        lines.append("")
    if "added_at_c1" in s:
        lines += ["## Added by the adapter at 1 concurrent request (adapter minus direct, ms)", ""]
        ad = s["added_at_c1"]
        lines += _table(
            ["", "p50", "p99"],
            [
                [name, _fmt(ad[f"{key}_p50_ms"], 3), _fmt(ad[f"{key}_p99_ms"], 3)]
                for name, key in (
                    ("non-streaming latency", "full_lat"),
                    ("streaming latency (100 chunks)", "stream_lat"),
                    ("time to first chunk", "ttfc"),
                )
            ],
        )
        lines.append("")
    if len(s.get("workers_scaling") or []) > 1:
        top = s["workers_scaling"][0]["concurrency"]
        lines += [f"## Scaling with --workers (concurrency {top})", ""]
        lines += _table(
            ["workers", "non-streaming req/s", "streaming chunks/s"],
            [[w["workers"], w["full_rps"], w["stream_chunks_per_s"]] for w in s["workers_scaling"]],
        )
        lines.append("")
    if s.get("by_concurrency"):
        lines += ["## Real vLLM: direct vs through the adapter", ""]
        lines += _table(
            [
                "conc",
                "direct tok/s",
                "adapter tok/s",
                "ratio",
                "TTFT p50 direct",
                "TTFT p50 adapter",
                "TTFT p99 direct",
                "TTFT p99 adapter",
            ],
            [
                [
                    r["concurrency"],
                    r["direct_tokens_per_s"],
                    r["adapter_tokens_per_s"],
                    f"{r['ratio'] * 100:.1f} %",
                    r["direct_ttft_p50_ms"],
                    r["adapter_ttft_p50_ms"],
                    r["direct_ttft_p99_ms"],
                    r["adapter_ttft_p99_ms"],
                ]
                for r in s["by_concurrency"]
            ],
        )
        lines.append("")
        floor = [r for r in s["by_concurrency"] if r.get("relay_cpu_share_pct") is not None]
        if floor:
            lines += [
                "CPU per relayed token, each beside vLLM's API server's for the same requests "
                "(`--real-floor`: the direct leg's requests also went through "
                "`benchmarks/byterelay.py`, a TCP byte relay pinned where the adapter runs: "
                "what a proxy that does nothing costs here):",
                "",
            ]
            lines += _table(
                ["conc", "through", "µs / token", "vLLM API server µs / token", "share"],
                [
                    [
                        r["concurrency"],
                        who,
                        r[f"{who}_cpu_us_per_token"],
                        r[f"{who}_vllm_api_cpu_us_per_token"],
                        f"{r[f'{who}_cpu_share_pct']} %",
                    ]
                    for r in floor
                    for who in ("relay", "adapter")
                ],
            )
            lines.append("")
        for r in s["by_concurrency"]:
            if r.get("paired"):
                per_round = ", ".join(f"{x * 100:.1f} %" for x in r["ratio_per_round"])
                lines += [
                    f"Paired rounds (c{r['concurrency']}: half the streams direct, half through "
                    "the adapter, at the same time; tok/s above is per half): adapter ÷ direct "
                    f"per round {per_round}; median {r['ratio_median'] * 100:.1f} %.",
                    "",
                ]
    if s.get("capacity"):
        lines += [
            "## Capacity of the tools (CPU utilisation → estimated rate per fully used core)",
            "",
        ]
        lines += _table(
            [
                "layout",
                "cell",
                "measured",
                "upstream CPU",
                "upstream per core",
                "loadgen CPU",
                "loadgen per core",
            ],
            [
                [
                    c["scenario"],
                    c["cell"],
                    f"{_fmt(c['measured_per_s'])} {c['unit']}",
                    f"{c['upstream_cpu_util'] * 100:.0f} %",
                    c["upstream_capacity_per_core"],
                    f"{c['loadgen_cpu_util'] * 100:.0f} %",
                    c["loadgen_capacity_per_core"],
                ]
                for c in s["capacity"]
            ],
        )
        lines.append("")
    lines += [
        "## All cells",
        "",
        "Server = the adapter for adapter rows, the fake upstream for direct rows. Server CPU = its",
        "CPU time ÷ wall time; rate per core = req/s (chunks/s when streaming) ÷ server CPU;",
        "adapter-/client-CPU busy = the pinned CPUs' busy time from /proc/stat, all processes.",
        "",
    ]
    rows = []
    for c in doc["cells"]:
        window = _num(c["elapsed_s"]) + _num(c.get("warmup_s", cfg["warmup"]))
        cpu = _num(c.get("server_cpu_s")) / window * 100 if window else math.nan
        name = c["target"] + (f" w{c['workers']}" if c["workers"] else "")
        mode = "stream" if c["stream"] else ("full" if c["endpoint"] == "chat" else "")
        rows.append(
            [
                name,
                c["endpoint"],
                mode,
                c["concurrency"],
                c["rps"],
                c["chunks_per_s"] or None,
                _fmt(c["lat_p50_ms"], 3),
                _fmt(c["lat_p90_ms"], 3),
                _fmt(c["lat_p99_ms"], 3),
                _fmt(c["ttfc_p50_ms"], 3),
                _fmt(c["ttfc_p99_ms"], 3),
                c["errors"],
                f"{cpu:.0f} %" if not math.isnan(cpu) else "-",
                _fmt(per_core(c)),
                _pct(c.get("adapter_cpus_busy_pct")),
                _pct(c.get("client_cpus_busy_pct")),
                c.get("server_rss_peak_mib"),
                c.get("scenario") or (f"round {c['round'] + 1}" if "round" in c else ""),
            ]
        )
    lines += _table(
        [
            "target",
            "endpoint",
            "mode",
            "conc",
            "req/s",
            "chunks/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "TTFC p50",
            "TTFC p99",
            "errors",
            "server CPU",
            "rate per core",
            "adapter-CPU busy",
            "client-CPU busy",
            "server RSS MiB",
            "note",
        ],
        rows,
    )
    lines.append("")
    if doc.get("adapter_memory") or doc.get("slow_streams"):
        lines += ["## Adapter memory", ""]
        for w, mem in (doc.get("adapter_memory") or {}).items():
            lines.append(
                f"- {w}: idle RSS {mem['idle_rss_mib']} MiB, VmHWM after the matrix {mem['hwm_mib']} MiB"
            )
        slow = doc.get("slow_streams")
        if slow:
            st = slow["upstream_stats"]
            lines.append(
                f"- {slow['streams']} slow streams ({slow['chunks']} chunks, {slow['delay_s']} s apart): "
                f"peak RSS {slow['peak_rss_mib']} MiB, VmHWM {slow['hwm_mib']} MiB; upstream saw "
                f"{st['streams_peak']} concurrent streams, {slow['errors']} errors"
            )
        lines.append("")
    errs = [(c, e) for c in doc["cells"] for e in c["error_samples"]]
    if errs:
        lines += ["## Error samples", ""]
        lines += [
            f"- {c['target']} {c['endpoint']} c{c['concurrency']}: `{e[:200]}`"
            for c, e in errs[:20]
        ]
        lines.append("")
    lines.append(f"![chart]({doc['name']}.png)")
    return "\n".join(lines) + "\n"


# -- chart -------------------------------------------------------------------------------------
def chart(doc: Row, path: Path) -> bool:
    """A PNG summary; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cells: list[Row] = doc["cells"]
    plain = [c for c in cells if "scenario" not in c]
    if doc["mode"] == "capacity":
        return _capacity_chart(doc, path, plt)
    if doc["mode"] == "real":
        return _real_chart(doc, path, plt)
    series = sorted(
        {(c["target"], c["workers"]) for c in plain}, key=lambda t: (t[0] != "direct", t)
    )
    concs = sorted({c["concurrency"] for c in plain if c["endpoint"] == "chat"})
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        (axes[0][0], False, "rps", "non-streaming chat: requests/s (log)", 2000),
        (
            axes[0][1],
            True,
            "chunks_per_s" if doc["mode"] != "real" else "tokens_per_s",
            "streaming chat: chunks/s (log)",
            60000,
        ),
    ]
    width = 0.8 / max(len(series), 1)
    for ax, stream, key, title, goal in panels:
        for i, (t, w) in enumerate(series):
            vals = []
            for conc in concs:
                c = find(cells, t, "chat", stream, conc, w)
                vals.append(_num(c[key]) if c else 0.0)
            xs = [j + i * width for j in range(len(concs))]
            ax.bar(xs, vals, width, label=t + (f" w{w}" if w else ""))
        if doc["mode"] == "matrix":
            ax.axhline(goal, color="red", linestyle="--", linewidth=1, label="target")
        ax.set_xticks(
            [j + width * (len(series) - 1) / 2 for j in range(len(concs))], [f"c{c}" for c in concs]
        )
        ax.set_title(title)
        ax.set_yscale("log")
        _legend(ax)
    ax = axes[1][0]
    labels = ["full p50", "full p99", "stream p50", "stream p99", "TTFC p50", "TTFC p99"]
    keys = [
        (False, "lat_p50_ms"),
        (False, "lat_p99_ms"),
        (True, "lat_p50_ms"),
        (True, "lat_p99_ms"),
        (True, "ttfc_p50_ms"),
        (True, "ttfc_p99_ms"),
    ]
    c1 = min(concs) if concs else 1
    for i, (t, w) in enumerate(series):
        vals = []
        for stream, key in keys:
            c = find(cells, t, "chat", stream, c1, w)
            v = _num(c[key]) if c else 0.0
            vals.append(0.0 if math.isnan(v) else v)
        ax.bar(
            [j + i * width for j in range(len(labels))],
            vals,
            width,
            label=t + (f" w{w}" if w else ""),
        )
    ax.set_xticks(
        [j + width * (len(series) - 1) / 2 for j in range(len(labels))], labels, fontsize=8
    )
    ax.set_title(f"latency at c{c1} (ms, log scale)")
    ax.set_yscale("log")
    _legend(ax)
    ax = axes[1][1]
    mem = [
        (
            f"{c['endpoint'][:4]} {'s' if c['stream'] else 'f'} c{c['concurrency']}"
            if "scenario" not in c
            else c["scenario"].split(" (")[0],
            _num(c.get("server_rss_peak_mib")),
        )
        for c in cells
        if c["target"] == "adapter"
    ]
    if mem:
        ax.bar(range(len(mem)), [0.0 if math.isnan(v) else v for _, v in mem], color="tab:orange")
        ax.set_xticks(range(len(mem)), [n for n, _ in mem], rotation=45, ha="right", fontsize=7)
        if doc["mode"] == "matrix":
            ax.axhline(80, color="red", linestyle="--", linewidth=1, label="80 MiB")
            ax.axhline(200, color="purple", linestyle=":", linewidth=1, label="200 MiB")
            _legend(ax)
    ax.set_title("adapter peak RSS per cell (MiB)")
    fig.suptitle(f"{doc['name']} — {doc['machine']['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _real_chart(doc: Row, path: Path, plt: Any) -> bool:
    """Real mode: tokens/s and TTFT, direct vs adapter, per concurrency."""
    rows = doc["summary"]["by_concurrency"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    xs = range(len(rows))
    labels = [f"c{r['concurrency']}" for r in rows]
    for ax, keys, title in (
        (axes[0], ("direct_tokens_per_s", "adapter_tokens_per_s"), "tokens/s"),
        (axes[1], ("direct_ttft_p50_ms", "adapter_ttft_p50_ms"), "time to first token p50 (ms)"),
    ):
        for i, key in enumerate(keys):
            vals = [_num(r[key]) for r in rows]
            ax.bar([x + i * 0.4 for x in xs], vals, 0.4, label=key.split("_")[0])
        ax.set_xticks([x + 0.2 for x in xs], labels)
        ax.set_title(title)
        _legend(ax)
    fig.suptitle(f"{doc['name']}: real vLLM, direct vs through the adapter", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _capacity_chart(doc: Row, path: Path, plt: Any) -> bool:
    """Capacity mode: measured rate and estimated per-core capacity, per layout."""
    caps = doc["summary"]["capacity"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, unit in zip(axes, ("req/s", "chunks/s"), strict=True):
        rows = [c for c in caps if c["unit"] == unit]
        labels = [f"{c['scenario']}\n{c['cell']}" for c in rows]
        xs = range(len(rows))
        ax.bar([x - 0.27 for x in xs], [c["measured_per_s"] for c in rows], 0.27, label="measured")
        for off, key, name in (
            (0.0, "upstream_capacity_per_core", "upstream / core"),
            (0.27, "loadgen_capacity_per_core", "loadgen / core"),
        ):
            ax.bar([x + off for x in xs], [c[key] or 0 for c in rows], 0.27, label=name)
        ax.axhline(
            2000 if unit == "req/s" else 60000, color="red", linestyle="--", label="adapter target"
        )
        ax.set_xticks(list(xs), labels, fontsize=7, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_title(unit)
        _legend(ax)
    fig.suptitle(
        f"{doc['name']}: capacity of the fake upstream and the load generator", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _clean(x: Any) -> Any:
    """NaN → null, recursively (strict JSON)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def write(doc: Row, outdir: Path) -> list[Path]:
    """Write <name>.json, <name>.md and <name>.png; return the paths written."""
    outdir.mkdir(parents=True, exist_ok=True)
    base = outdir / doc["name"]
    paths = [base.with_suffix(".json"), base.with_suffix(".md")]
    paths[0].write_text(json.dumps(_clean(doc), indent=1, default=str) + "\n")
    paths[1].write_text(markdown(doc))
    if chart(doc, base.with_suffix(".png")):
        paths.append(base.with_suffix(".png"))
    return paths
