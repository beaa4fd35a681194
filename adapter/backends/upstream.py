"""The HTTP client every backend uses: one pooled aiohttp session per upstream server.

aiohttp, not httpx: measured side by side on one core (benchmarks/clients.py), httpx spent
about 1.8 ms of CPU per non-streaming request and 41 µs per streamed chunk, mostly polling
every pooled connection on each request; aiohttp spent 0.11 ms and 5 µs. The adapter's whole
cost is upstream I/O, so the client decides its throughput.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
from yarl import URL

from adapter.errors import OllamaError, UpstreamUnavailable

log = logging.getLogger("adapter.upstream")

#: Exceptions that mean the upstream connection failed (before or during an answer).
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)

#: Idle pooled connections are dropped after this long: below the 5 s after which vLLM's
#: server (uvicorn) closes an idle keep-alive connection, so the adapter does not pick a
#: connection the server is closing.
KEEPALIVE_SECONDS = 4.0

#: A pooled connection the server closed while idle fails the next request before any answer;
#: that request never reached the server, so it is sent once more on a fresh connection.
STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class Upstream:
    """A pooled connection to one upstream server, with its errors said in Ollama's terms."""

    def __init__(
        self,
        kind: str,
        url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.kind = kind
        self.url = url
        self._urls: dict[str, URL] = {}
        self.read_timeout = read_timeout
        self._on_error = on_error
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, sock_read=read_timeout
            ),
            # Every body sent upstream is JSON; a session-wide header costs nothing per
            # request (vLLM answers 400 to a POST without it).
            headers={"Content-Type": "application/json", **(headers or {})},
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def aclose(self) -> None:
        await self.session.close()

    def error(self, exc: BaseException) -> OllamaError:
        """A transport failure as the error the client sees (503, 504 or 502)."""
        if self._on_error is not None:
            self._on_error(type(exc).__name__)
        if isinstance(
            exc,
            aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError | ConnectionRefusedError,
        ):
            return UpstreamUnavailable(503, f"{self.kind} at {self.url} is unreachable: {exc}")
        if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamUnavailable(
                504, f"{self.kind} at {self.url} did not answer within {self.read_timeout:g}s"
            )
        return UpstreamUnavailable(
            502, f"connection to {self.kind} at {self.url} failed: {type(exc).__name__}: {exc}"
        )

    async def send(
        self, method: str, path: str, content: bytes | None = None
    ) -> aiohttp.ClientResponse:
        """Send a request; the answer's body is still to be read (or streamed) by the caller,
        who must ``release()`` it, or ``close()`` it to abandon the request upstream."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.url + path)
        try:
            try:
                return await self.session.request(method, url, data=content)
            except STALE_CONNECTION as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise
                log.debug("%s at %s closed a pooled connection; sending again", self.kind, self.url)
                return await self.session.request(method, url, data=content)
        except TRANSPORT_ERRORS as exc:
            raise self.error(exc) from None

    async def fetch(
        self, method: str, path: str, content: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send a request and read its whole answer."""
        resp = await self.send(method, path, content)
        try:
            return resp.status, await resp.read()
        except TRANSPORT_ERRORS as exc:
            resp.close()
            raise self.error(exc) from None
        finally:
            resp.release()


class RawRelay:
    """An upstream answer's bytes as they come; ``aclose`` abandons the upstream request."""

    def __init__(
        self, upstream: Upstream, resp: aiohttp.ClientResponse, error_line: Callable[[str], bytes]
    ) -> None:
        self.upstream = upstream
        self.resp = resp
        self._error_line = error_line

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for data in self.resp.content.iter_any():
                yield data
        except TRANSPORT_ERRORS as exc:
            yield self._error_line(self.upstream.error(exc).message)
        finally:
            self.resp.release()

    async def aclose(self) -> None:
        self.resp.close()


async def forward(
    upstream: Upstream,
    method: str,
    path: str,
    content: bytes | None,
    *,
    stream: bool,
    error_line: Callable[[str], bytes],
) -> tuple[int, str, RawRelay | bytes]:
    """Send ``content`` on as it is; answer the status, content type, and the body or a relay.

    Only a 200 answer is relayed as a stream; any other is read whole, so its status and body
    reach the client as the upstream gave them.
    """
    resp = await upstream.send(method, path, content)
    content_type = resp.headers.get("Content-Type", "application/json")
    if stream and resp.status == 200:
        return resp.status, content_type, RawRelay(upstream, resp, error_line)
    try:
        body = await resp.read()
    except TRANSPORT_ERRORS as exc:
        resp.close()
        raise upstream.error(exc) from None
    finally:
        resp.release()
    return resp.status, content_type, body
