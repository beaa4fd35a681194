"""The least a proxy in Python can cost: a TCP byte relay, for the real-vLLM floor.

Each connection accepted is joined to one of its own to the upstream server, and bytes are
passed on both ways as they come (asyncio protocols on uvloop, no HTTP parsing, no
buffering beyond what arrives before the upstream connection is open). ``benchmarks.run
--real-floor`` sends the direct leg's requests through it, pinned where the adapter runs, so
the report shows the CPU per token of a relay that does nothing next to the adapter's, both
as a share of vLLM's API server's for the same requests.

    python -m benchmarks.byterelay --upstream 127.0.0.1:8000 --port 0   # prints READY <port>
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import uvloop


class _Back(asyncio.Protocol):
    """The upstream side: what the server sends goes to the client."""

    def __init__(self, front: asyncio.Transport) -> None:
        self.front = front

    def data_received(self, data: bytes) -> None:
        self.front.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.close()


class _Front(asyncio.Protocol):
    """The client side: what the client sends goes upstream, held until that is open."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.back: asyncio.Transport | None = None
        self.held: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.front = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            back, _ = await loop.create_connection(lambda: _Back(self.front), *self.upstream)
        except OSError:
            self.front.close()
            return
        if self.closed:
            back.close()
            return
        self.back = back
        for data in self.held:
            back.write(data)
        self.held.clear()

    def data_received(self, data: bytes) -> None:
        if self.back is None:
            self.held.append(data)
        else:
            self.back.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.back is not None:
            self.back.close()


async def serve(upstream: tuple[str, int], port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Front(upstream), "127.0.0.1", port)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--upstream", required=True, help="HOST:PORT of the server to relay to")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    a = p.parse_args()
    host, _, port = a.upstream.rpartition(":")
    uvloop.run(serve((host, int(port)), a.port))


if __name__ == "__main__":
    main()
