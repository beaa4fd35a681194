"""Self-test of the benchmark tools (no adapter needed, about 15 s).

1. The fake upstream's JSON shapes equal the real vLLM's recorded answers in tests/fixtures
   (keys and value types of every kind of response and SSE event).
2. The load generator checks pass against the fake upstream in every mode, including split
   writes with multi-byte text and slow streams, and fail when the text is wrong.

    .venv/bin/python -m benchmarks.selftest [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import loadgen, procs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "vllm-0.32.0"


def shape(x: Any) -> Any:
    """Keys and value types, recursively (lists by their first element)."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in x.items()}
    if isinstance(x, list):
        return [shape(x[0])] if x else []
    return type(x).__name__


def sse_kinds(text: str) -> dict[str, Any]:
    """Shape of each kind of event in an SSE body: role, content, finish, usage."""
    kinds: dict[str, Any] = {}
    lines = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]", "stream does not end with [DONE]"
    for raw in lines[:-1]:
        ev = json.loads(raw)
        if not ev["choices"]:
            kind = "usage"
        elif "role" in ev["choices"][0].get("delta", {}):
            kind = "role"
        elif ev["choices"][0].get("finish_reason") is not None:
            kind = "finish"
        else:
            kind = "content"
        kinds.setdefault(kind, shape(ev))
    return kinds


def fetch(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> str:
    """One request to the fake upstream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    data = json.dumps(body) if body is not None else None
    conn.request(method, path, body=data, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    return text


def drop(obj: Any, *keys: str) -> Any:
    """Remove keys from the first choice (where the fixture asked for extras we don't emit)."""
    for key in keys:
        for choice in obj.get("choices", []):
            choice.pop(key, None)
    return obj


def check_shapes(port: int, fixtures: Path) -> list[str]:
    """Compare the fake's responses with the fixtures; return the differences."""
    msgs = [{"role": "user", "content": "hi"}]
    chat = {"model": "tiny-llm", "messages": msgs, "max_tokens": 16}
    stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    comp = {"model": "tiny-llm", "prompt": "hi", "max_tokens": 6}
    comp_stream = {**comp, "stream": True, "stream_options": {"include_usage": True}}
    pairs: list[tuple[str, Any, Any]] = [
        ("models.json", shape(json.loads((fixtures / "models.json").read_text())),
         shape(json.loads(fetch(port, "GET", "/v1/models")))),
        ("chat.json", shape(json.loads((fixtures / "chat.json").read_text())),
         shape(json.loads(fetch(port, "POST", "/v1/chat/completions", chat)))),
        ("completions.json",
         shape(drop(json.loads((fixtures / "completions.json").read_text()), "logprobs")),
         shape(drop(json.loads(fetch(port, "POST", "/v1/completions", comp)), "logprobs"))),
        ("chat_stream.sse", sse_kinds((fixtures / "chat_stream.sse").read_text()),
         sse_kinds(fetch(port, "POST", "/v1/chat/completions", stream))),
        ("completions_stream.sse", sse_kinds((fixtures / "completions_stream.sse").read_text()),
         sse_kinds(fetch(port, "POST", "/v1/completions", comp_stream))),
        ("err_unknown_model.json",
         shape(json.loads((fixtures / "err_unknown_model.json").read_text())),
         shape(json.loads(fetch(port, "POST", "/v1/chat/completions", {**chat, "model": "x"})))),
    ]  # fmt: skip
    return [f"{name}: fixture {want} != fake {got}" for name, want, got in pairs if want != got]


def check_load(port: int, unicode: bool, tokens: int | None) -> list[str]:
    """Every direct mode against one fake upstream; returns failures."""
    errs = []
    for endpoint, stream in (("chat", True), ("chat", False), ("tags", False)):
        wl = loadgen.Workload(
            "127.0.0.1", port, "openai", endpoint, stream, tokens, unicode=unicode
        )
        res = loadgen.run(wl, loadgen.Limits(4, 0.5, 2000, 0.0, 10.0))
        if res["errors"] or not res["requests"]:
            errs.append(f"{endpoint} stream={stream} unicode={unicode}: {res}")
    return errs


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit status 1 on any failure."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--fixtures", type=Path, default=FIXTURES)
    a = p.parse_args(argv)
    py = sys.executable
    failures: list[str] = []
    logdir = ROOT / "benchmarks" / "results" / "selftest.logs"
    logdir.mkdir(parents=True, exist_ok=True)
    variants = [
        ("plain", [], False),
        ("split+unicode", ["--split-bytes", "5", "--unicode"], True),
        ("slow", ["--delay", "0.001"], False),
    ]
    for name, flags, unicode in variants:
        cmd = [py, "-m", "benchmarks.fake_upstream", "--port", "0", *flags]
        srv = procs.start(name, cmd, None, logdir / f"{name}.log", subprocess.PIPE)
        try:
            port = procs.wait_ready_line(srv)
            if name == "plain":
                failures += check_shapes(port, a.fixtures)
            failures += check_load(port, unicode, 20)
            failures += check_load(port, unicode, None)  # upstream default, finish "stop"
            wrong = check_load(port, not unicode, 20)  # expecting the wrong text must fail
            if len(wrong) < 2:
                failures.append(f"{name}: wrong text was not detected")
        finally:
            srv.stop()
    print("\n".join(failures) if failures else "selftest: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
