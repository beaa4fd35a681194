#!/usr/bin/env python3
"""An Alertmanager webhook receiver for the end-to-end test: it keeps what it is sent.

``POST /alerts`` (Alertmanager's webhook payload) is kept; ``GET /alerts`` answers every payload
received so far, oldest first, as a JSON list. Listens on ``$WEBHOOK_PORT`` (9095). Only the
standard library: it runs on Debian's bare python3.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RECEIVED: list[Any] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400, {"error": "not JSON"})
            return
        with LOCK:
            RECEIVED.append(payload)
        self._answer(200, {"status": "ok"})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("", "/health"):
            self._answer(200, {"status": "ok"})
            return
        with LOCK:
            self._answer(200, list(RECEIVED))

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    port = int(os.environ.get("WEBHOOK_PORT", "9095"))
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
