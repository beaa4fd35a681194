#!/usr/bin/env python3
"""A stand-in for one of the existing services (notes, rag, ocr, ...), configured as they are.

It listens on the port of its ``HEALTHCHECK_URL`` (the compose file's, so each service keeps
its real port) and answers:

- ``GET /health`` and ``GET /``: ``{"status": "ok"}``;
- ``GET /call``: the one call this service makes to an Ollama, through its own configuration
  only. ``STANDIN_CALL`` (from the service's env file) says which:
  ``chat`` posts ``/api/chat`` to ``$OLLAMA_URL``, ``embed`` posts ``/api/embed`` to
  ``$VISION_OLLAMA_URL`` (RAG's embeddings), ``vision`` posts ``/api/chat`` with an image to
  ``$VISION_OLLAMA_URL``; the model is ``STANDIN_MODEL``; a chat asks ``STANDIN_PROMPT`` (under
  ``STANDIN_FORMAT``, a JSON schema, when set) at temperature 0. It answers what came back:
  ``{"url", "status", "model", "content" | "dimensions" | "error"}``.

``app.py --webhook`` is the end-to-end test's Alertmanager receiver instead (``WebhookHandler``).

Only the standard library: it runs on Debian's bare python3.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def call() -> tuple[int, dict[str, Any]]:
    kind = os.environ.get("STANDIN_CALL", "chat")
    model = os.environ.get("STANDIN_MODEL", "")
    name = os.environ.get("STANDIN_NAME", "app")
    if kind == "vision":
        base = os.environ["VISION_OLLAMA_URL"]
        path = "/api/chat"
        message = {"role": "user", "content": f"{name}: what is this?", "images": [PNG]}
        body: dict[str, Any] = {"model": model, "messages": [message], "stream": False}
    elif kind == "embed":
        base = os.environ["VISION_OLLAMA_URL"]
        path = "/api/embed"
        body = {"model": model, "input": [f"{name} indexes a document"]}
    else:
        base = os.environ["OLLAMA_URL"]
        path = "/api/chat"
        prompt = os.environ.get("STANDIN_PROMPT") or f"{name}: summarise this note."
        message = {"role": "user", "content": prompt}
        body = {
            "model": model,
            "messages": [message],
            "stream": False,
            "options": {"num_predict": 32, "temperature": 0},
        }
        if os.environ.get("STANDIN_FORMAT"):
            body["format"] = json.loads(os.environ["STANDIN_FORMAT"])
    url = base.rstrip("/") + path
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    result: dict[str, Any] = {"url": url, "model": model}
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            reply = json.load(resp)
            result["status"] = resp.status
    except urllib.error.HTTPError as err:
        result.update(status=err.code, error=err.read().decode(errors="replace"))
        return 502, result
    except OSError as err:
        result.update(status=0, error=str(err))
        return 502, result
    if kind == "embed":
        result["dimensions"] = len(reply["embeddings"][0])
    else:
        result["content"] = reply["message"]["content"]
    return 200, result


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"[app] {self.command} {self.path}\n")

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in ("/", "/health"):
            self.send_json(200, {"status": "ok"})
        elif self.path == "/call":
            self.send_json(*call())
        else:
            self.send_json(404, {"error": "not found"})


class WebhookHandler(Handler):
    """``app.py --webhook``: an Alertmanager webhook receiver that keeps what it is sent.
    ``POST /alerts`` (Alertmanager's payload) is kept; ``GET /alerts`` answers every payload
    received so far, oldest first."""

    received: ClassVar[list[Any]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_json(400, {"error": "not JSON"})
            return
        with self.lock:
            self.received.append(payload)
        self.send_json(200, {"status": "ok"})

    def do_GET(self) -> None:
        if self.path in ("/", "/health"):
            self.send_json(200, {"status": "ok"})
            return
        with self.lock:
            self.send_json(200, list(self.received))


def main() -> None:
    if sys.argv[1:] == ["--webhook"]:
        port = int(os.environ.get("WEBHOOK_PORT", "9095"))
        ThreadingHTTPServer(("0.0.0.0", port), WebhookHandler).serve_forever()
        return
    port = urllib.parse.urlsplit(os.environ["HEALTHCHECK_URL"]).port or 80
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"[app] {os.environ.get('STANDIN_NAME', 'app')} listening on {port}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
