#!/usr/bin/env python3
"""A stand-in for the ``ollama`` binary of the ollama/ollama image, for machines with no registry.

It speaks the part of Ollama's CLI and API that the stacks use, with Ollama's shapes:

- ``ollama serve``: the server on ``$OLLAMA_HOST`` (``/``, ``/api/version``, ``/api/tags``,
  ``/api/ps``, ``/api/show``, ``/api/pull``, ``/api/chat``, ``/api/generate``, ``/api/embed``,
  ``/api/embeddings``);
- ``ollama list`` (the compose healthcheck) and ``ollama pull NAME`` (the ``*-init`` jobs).

Models live under ``$OLLAMA_MODELS`` (``/root/.ollama/models``, the named volume) as manifest
files, as Ollama keeps them. A pull of a model already there downloads nothing; each real
"download" appends a line to ``downloads.log`` beside the models, so a test can tell whether a
volume survived a phase switch. Answers name the stand-in (``ollama stand-in``) so a test can
tell them from vLLM's. Only the standard library: it runs on Debian's bare python3.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "0.33.0"
HOME = Path(os.environ.get("HOME") or "/root")
MODELS = Path(os.environ.get("OLLAMA_MODELS") or HOME / ".ollama" / "models")
MANIFESTS = MODELS / "manifests" / "registry.ollama.ai" / "library"
DOWNLOADS = MODELS.parent / "downloads.log"
PREFIX = "ollama stand-in"


def compact(body: Any) -> bytes:
    """JSON as Go's encoding/json writes it: no spaces (clients and scripts match on that)."""
    return json.dumps(body, separators=(",", ":")).encode()


def split_name(name: str) -> tuple[str, str]:
    base, _, tag = name.strip().lower().partition(":")
    return base, tag or "latest"


def manifest_path(name: str) -> Path:
    base, tag = split_name(name)
    return MANIFESTS / base / tag


def digest(name: str) -> str:
    return hashlib.sha256(":".join(split_name(name)).encode()).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def family(name: str) -> str:
    return split_name(name)[0].split(".")[0]


def capabilities(name: str) -> list[str]:
    base = split_name(name)[0]
    if "embed" in base:
        return ["embedding"]
    if "llava" in base or "vision" in base:
        return ["completion", "vision"]
    return ["completion"]


def installed() -> list[str]:
    if not MANIFESTS.is_dir():
        return []
    return sorted(
        f"{path.parent.name}:{path.name}" for path in MANIFESTS.glob("*/*") if path.is_file()
    )


def details(name: str) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family(name),
        "families": [family(name)],
        "parameter_size": "7B",
        "quantization_level": "Q4_K_M",
    }


def tag_entry(name: str) -> dict[str, Any]:
    path = manifest_path(name)
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
    return {
        "name": name,
        "model": name,
        "modified_at": modified.replace("+00:00", "Z"),
        "size": path.stat().st_size,
        "digest": digest(name),
        "details": details(name),
    }


def find(name: str) -> str | None:
    base, tag = split_name(name)
    return f"{base}:{tag}" if manifest_path(name).is_file() else None


def pull(name: str) -> list[dict[str, Any]]:
    """Ollama's pull statuses; the "download" happens only when the manifest is missing."""
    path = manifest_path(name)
    statuses: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"schemaVersion": 2, "model": name, "digest": digest(name)}))
        with DOWNLOADS.open("a") as log:
            log.write(f"{now()} {name}\n")
        statuses.append({"status": f"pulling {digest(name)[:12]}", "total": 1, "completed": 1})
    statuses += [
        {"status": f"verifying sha256 digest of {name}"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    return statuses


def answer(model: str, prompt: str) -> str:
    return f"{PREFIX} {os.uname().nodename}: {model} read {len(prompt)} characters"


def timings(text: str) -> dict[str, Any]:
    return {
        "total_duration": 1_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": 5,
        "prompt_eval_duration": 200_000,
        "eval_count": max(1, len(text.split())),
        "eval_duration": 700_000,
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "ollama-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(
            f"[ollama] {self.command} {self.path} {args[1] if len(args) > 1 else ''}\n"
        )

    def send_json(self, status: int, body: Any) -> None:
        data = compact(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_lines(self, lines: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = compact(line) + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/version":
            self.send_json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            self.send_json(200, {"models": [tag_entry(name) for name in installed()]})
        elif self.path == "/api/ps":
            self.send_json(200, {"models": []})
        else:
            self.send_json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_json(400, {"error": "invalid character in request body"})
            return
        if not isinstance(body, dict):
            self.send_json(400, {"error": "json: cannot unmarshal into a request"})
            return
        route = {
            "/api/pull": self.pull,
            "/api/show": self.show,
            "/api/chat": self.generate,
            "/api/generate": self.generate,
            "/api/embed": self.embed,
            "/api/embeddings": self.embed,
        }.get(self.path)
        if route is None:
            self.send_json(404, {"error": "404 page not found"})
        else:
            route(body)

    def pull(self, body: dict[str, Any]) -> None:
        name = str(body.get("model") or body.get("name") or "")
        if not name:
            self.send_json(400, {"error": "model is required"})
            return
        statuses = pull(name)
        if body.get("stream") is False:
            self.send_json(200, statuses[-1])
        else:
            self.send_lines(statuses)

    def model_or_404(self, body: dict[str, Any]) -> str | None:
        asked = str(body.get("model") or "")
        name = find(asked) if asked else None
        if name is None:
            self.send_json(404, {"error": f'model "{asked}" not found, try pulling it first'})
        return name

    def show(self, body: dict[str, Any]) -> None:
        name = self.model_or_404(body)
        if name is not None:
            self.send_json(
                200,
                {
                    "modelfile": f"FROM {name}\n",
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": details(name),
                    "model_info": {"general.architecture": family(name)},
                    "capabilities": capabilities(name),
                    "modified_at": now(),
                },
            )

    def generate(self, body: dict[str, Any]) -> None:
        name = self.model_or_404(body)
        if name is None:
            return
        chat = self.path == "/api/chat"
        if chat:
            messages = body.get("messages") or []
            prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            prompt = str(body.get("prompt") or "")
        text = answer(name, prompt)
        head: dict[str, Any] = {"model": name, "created_at": now()}

        def part(piece: str, done: bool) -> dict[str, Any]:
            line = dict(head)
            if chat:
                line["message"] = {"role": "assistant", "content": piece}
            else:
                line["response"] = piece
            line["done"] = done
            if done:
                line.update(done_reason="stop", **timings(text))
            return line

        if body.get("stream") is False:
            self.send_json(200, part(text, True))
        else:
            words = text.split(" ")
            pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
            self.send_lines([part(p, False) for p in pieces] + [part("", True)])

    def embed(self, body: dict[str, Any]) -> None:
        name = self.model_or_404(body)
        if name is None:
            return
        if self.path == "/api/embeddings":
            prompt = str(body.get("prompt") or "")
            self.send_json(200, {"embedding": vector(name, prompt)})
            return
        given = body.get("input")
        inputs = [str(x) for x in given] if isinstance(given, list) else [str(given or "")]
        self.send_json(
            200,
            {
                "model": name,
                "embeddings": [vector(name, text) for text in inputs],
                "total_duration": 1_000_000,
                "load_duration": 100_000,
                "prompt_eval_count": sum(len(text.split()) for text in inputs),
            },
        )


def vector(name: str, text: str) -> list[float]:
    seed = hashlib.sha256(f"{name}\0{text}".encode()).digest()
    return [round((byte - 127.5) / 127.5, 6) for byte in seed[:16]]


def host() -> tuple[str, int]:
    value = os.environ.get("OLLAMA_HOST") or "127.0.0.1:11434"
    value = value.split("://", 1)[-1].rstrip("/")
    name, _, port = value.rpartition(":")
    return (name or "127.0.0.1", int(port or 11434)) if port.isdigit() else (value, 11434)


def base_url() -> str:
    name, port = host()
    return f"http://{'127.0.0.1' if name in ('0.0.0.0', '') else name}:{port}"


def client(path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url() + path, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    return urllib.request.urlopen(request, timeout=30)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "serve"
    if command in ("--version", "-v"):
        print(f"ollama version is {VERSION}")
        return 0
    if command == "serve":
        MODELS.mkdir(parents=True, exist_ok=True)
        server = ThreadingHTTPServer(host(), Handler)
        server.daemon_threads = True
        sys.stderr.write(f"[ollama] {PREFIX} {VERSION} listening on {host()}\n")
        server.serve_forever()
        return 0
    try:
        if command == "list":
            with client("/api/tags") as resp:
                models = json.load(resp)["models"]
            print(f"{'NAME':<32}{'ID':<16}{'SIZE':<10}MODIFIED")
            for m in models:
                print(f"{m['name']:<32}{m['digest'][:12]:<16}{m['size']:<10}{m['modified_at']}")
            return 0
        if command == "pull" and len(argv) == 3:
            with client("/api/pull", {"model": argv[2]}) as resp:
                for raw in resp:
                    line = json.loads(raw)
                    if "error" in line:
                        print(f"Error: {line['error']}", file=sys.stderr)
                        return 1
                    print(line["status"])
            return 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"Error: could not connect to ollama server ({exc})", file=sys.stderr)
        return 1
    print(f"Error: unknown command {argv[1:]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
