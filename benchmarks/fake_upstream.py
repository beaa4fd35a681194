"""A very fast fake vLLM (OpenAI-compatible) server on raw asyncio, for benchmarks.

Hand-written HTTP/1.1 keep-alive parsing on ``asyncio.Protocol``; responses are prebuilt bytes,
cached per shape, so one request costs a few microseconds. Token ``i`` is ``tok{i} `` (see
``benchmarks.common.token_text``) so a client can check every relayed reply.

    python -m benchmarks.fake_upstream --port 8000 --chunks 100 [--delay 0.05] [--split-bytes 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from dataclasses import asdict, dataclass, field
from typing import cast

from benchmarks.common import DEFAULT_CHUNKS, DEFAULT_MODEL, PROMPT_TOKENS, dumps, loads
from benchmarks.responses import (
    SSE_HEAD,
    Reply,
    error_body,
    full_body,
    http_response,
    models_body,
    stream_pieces,
)

MAX_HEAD = 64 * 1024
CACHE_MAX = 4096


@dataclass
class Config:
    """Server behaviour, from the command line."""

    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    max_model_len: int = 8192
    chunks: int = DEFAULT_CHUNKS
    delay: float = 0.0
    split_bytes: int = 0
    split_gap: float = 0.0
    unicode: bool = False
    prompt_tokens: int = PROMPT_TOKENS


@dataclass
class Stats:
    """Counters served on ``GET /stats`` (per process)."""

    requests: int = 0
    connections: int = 0
    connections_peak: int = 0
    streams_active: int = 0
    streams_peak: int = 0
    streams_done: int = 0
    streams_aborted: int = 0


class App:
    """Routing, validation and the response cache shared by all connections."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stats = Stats()
        self.full_cache: dict[Reply, bytes] = {}
        self.stream_cache: dict[tuple[Reply, bool], list[tuple[bytes, float]]] = {}
        self.static = {
            b"/health": http_response(200, b""),
            b"/v1/models": http_response(200, models_body(cfg.models, cfg.max_model_len)),
            b"/version": http_response(200, b'{"version":"0.32.0"}'),
        }

    def get(self, path: bytes) -> bytes:
        """Answer a GET."""
        if path in self.static:
            return self.static[path]
        if path == b"/stats":
            return http_response(200, dumps(asdict(self.stats)))
        if path == b"/stats/reset":
            s = self.stats
            s.connections_peak, s.streams_peak = s.connections, s.streams_active
            return http_response(200, dumps(asdict(s)))
        return http_response(404, b'{"detail":"Not Found"}')

    def generate(self, chat: bool, body: bytes) -> tuple[bytes | None, list[tuple[bytes, float]]]:
        """Answer a generation POST: a whole response, or the pieces of a paced stream."""
        cfg = self.cfg
        try:
            req = loads(body)
            model = req["model"]
            stream = bool(req.get("stream", False))
            max_tokens = req.get("max_completion_tokens") or req.get("max_tokens")
            opts = req.get("stream_options") or {}
            include_usage = bool(opts.get("include_usage", False)) if stream else False
        except Exception as exc:
            msg = f"JSON decode error: {exc}"
            return http_response(400, error_body(msg, "BadRequestError", None, 400)), []
        if model not in cfg.models:
            msg = f"The model `{model}` does not exist. Valid aliases: {', '.join(cfg.models)}."
            return http_response(404, error_body(msg, "NotFoundError", "model", 404)), []
        if max_tokens is not None:
            limit = cfg.max_model_len - cfg.prompt_tokens
            if not isinstance(max_tokens, int) or not 1 <= max_tokens <= limit:
                msg = f"max_tokens={max_tokens} must be in 1..{limit}"
                return http_response(400, error_body(msg, "BadRequestError", "max_tokens", 400)), []
        n = max_tokens if max_tokens is not None else cfg.chunks
        finish = "length" if max_tokens is not None else "stop"
        reply = Reply(chat, model, n, finish, cfg.prompt_tokens, cfg.unicode)
        if stream:
            return None, self.stream_for(reply, include_usage)
        whole = self.full_cache.get(reply)
        if whole is None:
            if len(self.full_cache) >= CACHE_MAX:
                self.full_cache.clear()
            whole = self.full_cache[reply] = http_response(200, full_body(reply))
        if cfg.delay > 0:  # a slow model takes n token times before answering
            return None, [(b"", cfg.delay * n), (whole, 0.0)]
        return whole, []

    def stream_for(self, reply: Reply, include_usage: bool) -> list[tuple[bytes, float]]:
        """Cached pieces of a streamed reply."""
        key = (reply, include_usage)
        hit = self.stream_cache.get(key)
        if hit is None:
            cfg = self.cfg
            hit = stream_pieces(reply, include_usage, cfg.split_bytes, cfg.delay, cfg.split_gap)
            if len(self.stream_cache) >= CACHE_MAX:
                self.stream_cache.clear()
            self.stream_cache[key] = hit
        return hit


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests, write responses, pace streams."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.close_after = False
        self.pieces: list[tuple[bytes, float]] = []
        self.pos = 0
        self.handle: asyncio.Handle | None = None
        self.is_stream = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        s = self.app.stats
        s.connections += 1
        s.connections_peak = max(s.connections_peak, s.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        s = self.app.stats
        s.connections -= 1
        if self.busy:
            if self.handle is not None:
                self.handle.cancel()
            if self.is_stream:
                s.streams_active -= 1
                s.streams_aborted += 1
        self.busy = False
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        """Handle every complete request in the buffer, one at a time."""
        buf = self.buf
        while not self.busy and buf and self.transport is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self.reply(http_response(431, b"", close=True), close=True)
                return
            head = bytes(buf[:end]).lower()
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            if len(parts) != 3:
                self.reply(http_response(400, b"", close=True), close=True)
                return
            method, target, version = parts
            length = 0
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + 17 : j if j >= 0 else len(head)])
            elif b"\r\ntransfer-encoding:" in head:
                self.reply(http_response(411, b"", close=True), close=True)
                return
            if len(buf) < end + 4 + length:
                return
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            close = version != b"http/1.1" or b"\r\nconnection: close" in head
            self.dispatch(method, target.split(b"?", 1)[0], body, close)

    def dispatch(self, method: bytes, path: bytes, body: bytes, close: bool) -> None:
        """Route one request."""
        self.app.stats.requests += 1
        if method in (b"get", b"head"):
            self.reply(self.app.get(path), close)
            return
        if method != b"post":
            self.reply(http_response(405, b'{"detail":"Method Not Allowed"}'), close)
            return
        if path == b"/v1/chat/completions":
            whole, pieces = self.app.generate(True, body)
        elif path == b"/v1/completions":
            whole, pieces = self.app.generate(False, body)
        else:
            self.reply(http_response(404, b'{"detail":"Not Found"}'), close)
            return
        if whole is not None:
            self.reply(whole, close)
            return
        self.close_after = close
        self.is_stream = pieces[0][0].startswith(SSE_HEAD)
        if self.is_stream:
            s = self.app.stats
            s.streams_active += 1
            s.streams_peak = max(s.streams_peak, s.streams_active)
        if len(pieces) == 1:
            self.finish_stream(pieces[0][0])
            return
        self.busy = True
        self.pieces = pieces
        self.pos = 0
        self.tick()

    def tick(self) -> None:
        """Write the next piece of a paced response and schedule the one after."""
        self.handle = None
        if self.transport is None:
            return
        data, wait = self.pieces[self.pos]
        self.pos += 1
        if self.pos == len(self.pieces):
            self.busy = False
            self.finish_stream(data)
            if self.buf:
                self.process()
            return
        if data:
            self.transport.write(data)
        if wait > 0:
            self.handle = self.loop.call_later(wait, self.tick)
        else:
            self.handle = self.loop.call_soon(self.tick)

    def finish_stream(self, data: bytes) -> None:
        """Write the last bytes of a response."""
        if self.is_stream:
            s = self.app.stats
            s.streams_active -= 1
            s.streams_done += 1
            self.is_stream = False
        self.reply(data, self.close_after)

    def reply(self, data: bytes, close: bool = False) -> None:
        """Write a whole response."""
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT so several processes can share the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(cfg: Config, sock: socket.socket, announce: bool) -> None:
    """Serve on ``sock`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    app = App(cfg)
    server = await loop.create_server(lambda: UpstreamProtocol(app), sock=sock, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if announce:
        print(f"READY {sock.getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def run_loop(cfg: Config, sock: socket.socket, announce: bool, use_uvloop: bool) -> None:
    """Run ``serve`` on uvloop when available."""
    if use_uvloop:
        try:
            import uvloop

            uvloop.run(serve(cfg, sock, announce))
            return
        except ImportError:
            pass
    asyncio.run(serve(cfg, sock, announce))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    p.add_argument("--model", action="append", help=f"served name(s), default {DEFAULT_MODEL}")
    p.add_argument("--max-model-len", type=int, default=8192)
    p.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS, help="tokens when no max_tokens")
    p.add_argument("--delay", type=float, default=0.0, help="seconds between stream events")
    p.add_argument("--split-bytes", type=int, default=0, help="cut SSE into ~N-byte writes")
    p.add_argument("--split-gap", type=float, default=0.0, help="seconds between split writes")
    p.add_argument("--unicode", action="store_true", help="multi-byte token text")
    p.add_argument("--prompt-tokens", type=int, default=PROMPT_TOKENS)
    p.add_argument("--processes", type=int, default=1, help="SO_REUSEPORT worker processes")
    p.add_argument("--no-uvloop", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    a = parse_args(argv)
    cfg = Config(
        models=a.model or [DEFAULT_MODEL],
        max_model_len=a.max_model_len,
        chunks=a.chunks,
        delay=a.delay,
        split_bytes=a.split_bytes,
        split_gap=a.split_gap,
        unicode=a.unicode,
        prompt_tokens=a.prompt_tokens,
    )
    sock = bind(a.host, a.port)
    port = sock.getsockname()[1]
    children: list[int] = []
    for _ in range(a.processes - 1):
        pid = os.fork()
        if pid == 0:
            run_loop(cfg, bind(a.host, port), False, not a.no_uvloop)
            os._exit(0)
        children.append(pid)
    try:
        run_loop(cfg, sock, True, not a.no_uvloop)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
