#!/usr/bin/env python3
"""Record the real vLLM answers that the tests and the fake vLLM answer with.

    .venv/bin/python scripts/record-fixtures.py        # or: make fixtures

Starts the real vLLM for CPU the way the tests do (``tests/support/vllm_cpu.py``: the tiny
models built by ``scripts/setup-vllm-cpu.sh``, the same server flags), sends every request in
``REQUESTS`` below and writes each answer, as vLLM sent it, to
``tests/fixtures/vllm-<version>/<name>.<json|sse|txt>``. ``index.json`` beside them names, for
each answer, the request that produced it (server kind, method, path, body) and the answer's
status and content type, so the set is refreshed in one command when vLLM is upgraded: run
this, then the fast suite (``make test-fast``), whose tests read these files.

Only two things are rewritten, both machine-specific: a model's ``root`` (the local directory
the model was loaded from) becomes ``/models/<name>``, and nothing else of the answer changes.
Requests carry a seed, so a re-recording with the same vLLM and tiny models gives the same
text; ids and timestamps differ each time. ``--check`` records into a temporary folder and
reports which answers changed shape (keys and value types) against the committed set.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.vllm_cpu import ServerKind, launch_server  # noqa: E402

CHAT = "tiny-llm"
THINK = "tiny-think"
EMBED = "all-minilm"
SMOL = "smollm2:135m"
HI = [{"role": "user", "content": "Hello, who are you?"}]
LONG_PROMPT = "word " * 600  # more tokens than max_model_len (512)
# A 1x1 PNG: what a vision preflight sends.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}},
            "required": ["city"],
        },
    },
}
NAMED = {"type": "function", "function": {"name": "get_weather"}}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}

Check = Callable[[int, bytes], str | None]


@dataclass(frozen=True)
class Rec:
    """One request to record: its answer lands in ``<name>.<ext>``."""

    name: str
    path: str
    body: dict[str, Any] | bytes | None = None
    method: str = "POST"
    server: ServerKind = "chat"
    ext: str = "json"
    #: What the answer must show for the recording to be what its name says (a stop string
    #: hit, a refusal...); returns a complaint, or None.
    check: Check | None = field(default=None, compare=False)


def status_is(want: int) -> Check:
    def check(status: int, _: bytes) -> str | None:
        return None if status == want else f"expected status {want}, got {status}"

    return check


def finish_is(reason: str) -> Check:
    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"expected 200, got {status}"
        got = json.loads(body)["choices"][0]["finish_reason"]
        return None if got == reason else f"expected finish_reason {reason!r}, got {got!r}"

    return check


def has_tool_call(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"expected 200, got {status}"
    calls = json.loads(body)["choices"][0]["message"].get("tool_calls")
    return None if calls else "expected a tool call"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": CHAT, "messages": HI, "max_tokens": 16, "seed": 1, **extra}


STREAM = {"stream": True, "stream_options": {"include_usage": True}}

REQUESTS: list[Rec] = [
    # Service endpoints.
    Rec("models", "/v1/models", method="GET"),
    Rec("version", "/version", method="GET"),
    Rec("health", "/health", method="GET", ext="txt"),
    Rec("metrics", "/metrics", method="GET", ext="txt"),
    # Chat completions.
    Rec("chat", "/v1/chat/completions", chat(), check=status_is(200)),
    Rec("chat_stream", "/v1/chat/completions", chat(max_tokens=8, **STREAM), ext="sse"),
    # An answer taken whole: the adapter asks for many tokens an event (stream_interval).
    Rec(
        "chat_stream_interval",
        "/v1/chat/completions",
        chat(max_tokens=20, ignore_eos=True, stream_interval=8, **STREAM),
        ext="sse",
    ),
    Rec(
        "chat_stream_interval_logprobs",
        "/v1/chat/completions",
        chat(
            max_tokens=12,
            ignore_eos=True,
            stream_interval=8,
            logprobs=True,
            top_logprobs=1,
            **STREAM,
        ),
        ext="sse",
    ),
    Rec("chat_logprobs", "/v1/chat/completions", chat(max_tokens=4, logprobs=True, top_logprobs=2)),
    Rec(
        "chat_sampling",
        "/v1/chat/completions",
        chat(
            n=2,
            max_tokens=25,
            top_k=20,
            min_p=0.05,
            repetition_penalty=1.1,
            presence_penalty=0.5,
            frequency_penalty=0.5,
            stop=["\n"],
        ),
    ),
    Rec(
        "chat_stop_include",
        "/v1/chat/completions",
        chat(max_tokens=64, stop=["e"], include_stop_str_in_output=True),
        check=finish_is("stop"),
    ),
    Rec(
        "chat_json_schema",
        "/v1/chat/completions",
        chat(
            max_tokens=64,
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
        ),
    ),
    Rec(
        "chat_json_object",
        "/v1/chat/completions",
        chat(max_tokens=64, response_format={"type": "json_object"}),
    ),
    Rec(
        "chat_structured_choice",
        "/v1/chat/completions",
        chat(structured_outputs={"choice": ["yes", "no"]}),
    ),
    Rec(
        "chat_structured_regex",
        "/v1/chat/completions",
        chat(structured_outputs={"regex": r"\d{3}-\d{4}"}),
    ),
    Rec(
        "chat_tool_named",
        "/v1/chat/completions",
        chat(max_tokens=64, tools=[TOOL], tool_choice=NAMED),
        check=has_tool_call,
    ),
    Rec(
        "chat_tool_named_stream",
        "/v1/chat/completions",
        chat(max_tokens=64, tools=[TOOL], tool_choice=NAMED, **STREAM),
        ext="sse",
    ),
    Rec(
        "chat_tool_probe",
        "/v1/chat/completions",
        chat(max_tokens=1, tools=[TOOL], tool_choice="auto"),
        check=status_is(200),
    ),
    # Completions.
    Rec(
        "completions",
        "/v1/completions",
        {"model": CHAT, "prompt": "def main(", "max_tokens": 16, "logprobs": 2, "seed": 1},
    ),
    Rec(
        "completions_stream",
        "/v1/completions",
        {"model": CHAT, "prompt": "def main(", "max_tokens": 8, "seed": 1, **STREAM},
        ext="sse",
    ),
    Rec(
        "completions_stream_interval",
        "/v1/completions",
        {
            "model": CHAT,
            "prompt": "def main(",
            "max_tokens": 20,
            "ignore_eos": True,
            "seed": 1,
            "stream_interval": 8,
            "return_token_ids": True,
            **STREAM,
        },
        ext="sse",
    ),
    Rec(
        "completions_suffix",
        "/v1/completions",
        {"model": CHAT, "prompt": "def main(", "suffix": "\n    return 0", "max_tokens": 8},
    ),
    # vLLM's own errors, as clients meet them.
    Rec(
        "err_unknown_model",
        "/v1/chat/completions",
        chat(model="no-such-model"),
        check=status_is(404),
    ),
    Rec(
        "err_too_long",
        "/v1/chat/completions",
        chat(messages=[{"role": "user", "content": LONG_PROMPT}]),
        check=status_is(400),
    ),
    Rec("err_max_tokens_too_big", "/v1/chat/completions", chat(max_tokens=5000)),
    Rec("err_bad_param", "/v1/chat/completions", chat(temperature=-1)),
    Rec("err_bad_json", "/v1/chat/completions", b'{"model": "tiny-llm", messages: }'),
    Rec(
        "err_image_text_model",
        "/v1/chat/completions",
        chat(
            max_tokens=1,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                        {"type": "text", "text": "?"},
                    ],
                }
            ],
        ),
        check=status_is(400),
    ),
    # Tokenizer endpoints.
    Rec("tokenize", "/tokenize", {"model": CHAT, "prompt": "Hello world"}),
    Rec(
        "tokenize_chat",
        "/tokenize",
        {"model": CHAT, "messages": HI, "add_generation_prompt": True},
    ),
    # The tools probe: a template that renders tools (tiny-llm's, Hermes style) gives other
    # tokens with a tool; SmolLM2's ignores tools and gives the same ones.
    Rec(
        "tokenize_chat_tools",
        "/tokenize",
        {"model": CHAT, "messages": HI, "add_generation_prompt": True, "tools": [TOOL]},
    ),
    Rec(
        "smollm2_tokenize_chat",
        "/tokenize",
        {"model": SMOL, "messages": HI, "add_generation_prompt": True},
        server="smollm2",
    ),
    Rec(
        "smollm2_tokenize_chat_tools",
        "/tokenize",
        {"model": SMOL, "messages": HI, "add_generation_prompt": True, "tools": [TOOL]},
        server="smollm2",
    ),
    Rec(
        "tokenize_chat_thinking_on",
        "/tokenize",
        {
            "model": CHAT,
            "messages": HI,
            "add_generation_prompt": True,
            "chat_template_kwargs": {"enable_thinking": True},
        },
    ),
    Rec(
        "tokenize_chat_thinking_off",
        "/tokenize",
        {
            "model": CHAT,
            "messages": HI,
            "add_generation_prompt": True,
            "chat_template_kwargs": {"enable_thinking": False},
        },
    ),
    Rec("detokenize", "/detokenize", {"model": CHAT, "tokens": [1, 67, 322, 75]}),
    # The OpenAI Responses API and Anthropic's Messages API, which vLLM serves itself.
    Rec("responses", "/v1/responses", {"model": CHAT, "input": "Hi", "max_output_tokens": 8}),
    Rec(
        "responses_stream",
        "/v1/responses",
        {"model": CHAT, "input": "Hi", "max_output_tokens": 8, "stream": True},
        ext="sse",
    ),
    Rec(
        "responses_err_unknown_model",
        "/v1/responses",
        {"model": "no-such-model", "input": "Hi", "max_output_tokens": 8},
    ),
    Rec("messages", "/v1/messages", {"model": CHAT, "max_tokens": 8, "messages": HI}),
    Rec(
        "messages_stream",
        "/v1/messages",
        {"model": CHAT, "max_tokens": 8, "messages": HI, "stream": True},
        ext="sse",
    ),
    Rec("messages_count_tokens", "/v1/messages/count_tokens", {"model": CHAT, "messages": HI}),
    Rec(
        "messages_err_unknown_model",
        "/v1/messages",
        {"model": "no-such-model", "max_tokens": 8, "messages": HI},
    ),
    Rec("messages_err_no_max_tokens", "/v1/messages", {"model": CHAT, "messages": HI}),
    # Anthropic's thinking asked of a model without a reasoning parser (the adapter relaxes it).
    Rec(
        "messages_thinking_on_chat_model",
        "/v1/messages",
        {
            "model": CHAT,
            "max_tokens": 1100,
            "messages": HI,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
    ),
    # The thinking model: the same weights, a template that toggles thinking, served with
    # --reasoning-parser qwen3 (tests/support/vllm_cpu.py, kind "reasoning").
    Rec("think_models", "/v1/models", method="GET", server="reasoning"),
    Rec(
        "think_chat",
        "/v1/chat/completions",
        chat(model=THINK, max_tokens=8),
        server="reasoning",
        check=status_is(200),
    ),
    Rec(
        "think_chat_off",
        "/v1/chat/completions",
        chat(model=THINK, max_tokens=8, chat_template_kwargs={"enable_thinking": False}),
        server="reasoning",
    ),
    Rec(
        "think_chat_effort_max",
        "/v1/chat/completions",
        chat(model=THINK, max_tokens=8, reasoning_effort="max"),
        server="reasoning",
    ),
    Rec(
        "think_chat_stream",
        "/v1/chat/completions",
        chat(model=THINK, max_tokens=8, **STREAM),
        server="reasoning",
        ext="sse",
    ),
    Rec(
        "think_tokenize_on",
        "/tokenize",
        {
            "model": THINK,
            "messages": HI,
            "add_generation_prompt": True,
            "chat_template_kwargs": {"enable_thinking": True},
        },
        server="reasoning",
    ),
    Rec(
        "think_tokenize_off",
        "/tokenize",
        {
            "model": THINK,
            "messages": HI,
            "add_generation_prompt": True,
            "chat_template_kwargs": {"enable_thinking": False},
        },
        server="reasoning",
    ),
    Rec(
        "think_messages",
        "/v1/messages",
        {
            "model": THINK,
            "max_tokens": 1100,
            "messages": HI,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        server="reasoning",
    ),
    # The embedding (pooling) server.
    Rec(
        "embeddings",
        "/v1/embeddings",
        {"model": EMBED, "input": ["first text", "second text"]},
        server="embed",
        check=status_is(200),
    ),
    Rec("embed_models", "/v1/models", method="GET", server="embed"),
    Rec(
        "err_embeddings_on_chat_server",
        "/v1/embeddings",
        {"model": CHAT, "input": "probe"},
    ),
]


def send(base_url: str, rec: Rec) -> tuple[int, str, bytes]:
    """One request; the answer's status, content type and body as vLLM sent them."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    if isinstance(rec.body, bytes):
        payload: bytes | None = rec.body
    else:
        payload = None if rec.body is None else json.dumps(rec.body).encode()
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    try:
        conn.request(rec.method, rec.path, body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type", ""), resp.read()
    finally:
        conn.close()


def normalise(rec: Rec, body: bytes) -> bytes:
    """Rewrite what only this machine has: a model's local ``root`` directory."""
    if rec.path != "/v1/models":
        return body
    data = json.loads(body)
    for card in data.get("data", []):
        root = card.get("root")
        if isinstance(root, str) and root.startswith("/"):
            card["root"] = "/models/" + root.rstrip("/").rsplit("/", 1)[-1]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def record(out_root: Path, names: set[str] | None) -> Path:
    """Start the servers the requests need, record every answer; the folder written."""
    todo = [r for r in REQUESTS if names is None or r.name in names]
    kinds = sorted({r.server for r in todo})
    servers = {kind: launch_server(kind) for kind in kinds}
    try:
        for server in servers.values():
            server.wait_ready()
        urls = {kind: s.base_url for kind, s in servers.items()}
        _, _, raw_version = send(urls[kinds[0]], Rec("version", "/version", method="GET"))
        version = json.loads(raw_version)["version"]
        out = out_root / f"vllm-{version}"
        out.mkdir(parents=True, exist_ok=True)
        index_path = out / "index.json"
        index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.exists() else {}
        problems = []
        for rec in todo:
            status, content_type, body = send(urls[rec.server], rec)
            if rec.check is not None:
                complaint = rec.check(status, body)
                if complaint:
                    problems.append(f"{rec.name}: {complaint}: {body[:300]!r}")
            file = f"{rec.name}.{rec.ext}"
            (out / file).write_bytes(normalise(rec, body))
            request: Any = rec.body.decode() if isinstance(rec.body, bytes) else rec.body
            index[rec.name] = {
                "file": file,
                "server": rec.server,
                "method": rec.method,
                "path": rec.path,
                "request": request,
                "status": status,
                "content_type": content_type,
            }
            print(f"{status} {rec.method} {rec.path} -> {file}")
        index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")
        if problems:
            raise SystemExit(
                "recorded answers are not what their names say:\n" + "\n".join(problems)
            )
        return out
    finally:
        for server in servers.values():
            server.stop()


def shape(x: Any) -> Any:
    """Keys and value types, recursively (lists by their first element)."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in x.items()}
    if isinstance(x, list):
        return [shape(x[0])] if x else []
    return type(x).__name__


def shape_of(path: Path) -> Any:
    text = path.read_text(errors="replace")
    if path.suffix == ".json":
        try:
            return shape(json.loads(text))
        except ValueError:
            return "not JSON"
    if path.suffix == ".sse":
        return [shape(json.loads(ln[6:])) for ln in text.splitlines() if ln.startswith("data: {")]
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("names", nargs="*", help="record only these (default: all)")
    p.add_argument(
        "--check",
        action="store_true",
        help="record into a temporary folder and compare shapes with tests/fixtures",
    )
    args = p.parse_args(argv)
    names = set(args.names) or None
    committed = REPO_ROOT / "tests" / "fixtures"
    if not args.check:
        out = record(committed, names)
        print(f"written: {out.relative_to(REPO_ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = record(Path(tmp), names)
        changed = [
            f.name
            for f in sorted(out.iterdir())
            if f.name != "index.json" and shape_of(f) != shape_of(committed / out.name / f.name)
        ]
    print("changed shape: " + (", ".join(changed) if changed else "none"))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
