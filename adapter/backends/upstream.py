"""One upstream server (vLLM or Ollama) as the backends see it: requests, errors in Ollama's terms.

The connections and the HTTP itself are ``adapter.backends.httpclient``'s, a small client of
our own chosen by measurement (see its docstring and docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import orjson

from adapter.admission import Admission, admission_for
from adapter.backends.base import Relayed
from adapter.backends.httpclient import (
    ConnectError,
    HTTPError,
    Pool,
    ReadTimeout,
    Response,
    public_url,
    request,
)
from adapter.clock import Clock
from adapter.config import Settings
from adapter.errors import OllamaError, UpstreamUnavailable
from adapter.framing import Framing
from adapter.metrics import Metrics
from adapter.requestctx import current

log = logging.getLogger("adapter.upstream")

#: Exceptions that mean the upstream exchange failed (before or during an answer).
TRANSPORT_ERRORS = (HTTPError, OSError)

#: Idle pooled connections are dropped after this long: below the 5 s after which vLLM's
#: server (uvicorn) closes an idle keep-alive connection, so the adapter does not pick a
#: connection the server is closing.
KEEPALIVE_SECONDS = 4.0


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
        on_resend: Callable[[], None] | None = None,
        admission: Admission | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.admission = admission
        self.url = public_url(url)  # the URL shown in errors; credentials stay in the pool
        self.read_timeout = read_timeout
        self._on_error = on_error
        # Every body sent upstream is JSON (vLLM answers 400 to a POST without the header).
        self.pool = Pool(
            url,
            limit=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            keepalive=KEEPALIVE_SECONDS,
            headers={"Content-Type": "application/json", **(headers or {})},
            on_resend=on_resend,
            now=now,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()

    def error(self, exc: BaseException) -> OllamaError:
        """A transport failure as the error the client sees (503, 504 or 502)."""
        if self._on_error is not None:
            self._on_error(type(exc).__name__)
        if isinstance(exc, ConnectError):
            return UpstreamUnavailable(503, f"{self.kind} at {self.url} is unreachable: {exc}")
        if isinstance(exc, ReadTimeout):
            return UpstreamUnavailable(
                504, f"{self.kind} at {self.url} did not answer within {self.read_timeout:g}s"
            )
        return UpstreamUnavailable(
            502, f"connection to {self.kind} at {self.url} failed: {type(exc).__name__}: {exc}"
        )

    async def send(
        self, method: str, path: str, content: bytes | None = None, *, admit: bool = False
    ) -> Response:
        """Send a request; the answer's body is still to be read (or streamed) by the caller,
        who must ``release()`` it, or ``close()`` it to abandon the request upstream.

        ``admit``: the request is a generation (or an embedding) and needs a turn of the
        server's admission control, given back when the caller lets go of the answer. Every
        request carries the headers of the client request it serves (its id, session headers).
        """
        info = current()
        headers = info.upstream_headers if info is not None else None
        admission = self.admission if admit else None
        if admission is not None:
            await admission.enter()
        try:
            resp = await request(self.pool, method, path, content, headers=headers)
        except TRANSPORT_ERRORS as exc:
            if admission is not None:
                admission.leave()
            raise self.error(exc) from None
        except BaseException:
            if admission is not None:
                admission.leave()
            raise
        if admission is not None:
            resp.on_done = admission.leave
        return resp

    async def fetch(
        self, method: str, path: str, content: bytes | None = None, *, admit: bool = False
    ) -> tuple[int, bytes]:
        """Send a request and read its whole answer."""
        resp = await self.send(method, path, content, admit=admit)
        try:
            return resp.status, await resp.read()
        except TRANSPORT_ERRORS as exc:
            resp.close()
            raise self.error(exc) from None
        finally:
            resp.release()


class RawRelay:
    """An upstream answer's bytes as they come, in whole messages of ``framing``; ``aclose``
    abandons the upstream request.

    What follows the last message boundary of a read waits for the rest of its message, so a
    stream that breaks ends with the framing's error message after a whole one, never inside
    one (a client's parser would choke on the mix). It does not read the messages, so it never
    knows one is the last: ``ended`` stays false.
    """

    ended = False

    def __init__(
        self,
        upstream: Upstream,
        resp: Response,
        framing: Framing,
        rewrite: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.upstream = upstream
        self.resp = resp
        self._framing = framing
        self._rewrite = tuple(rewrite)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        boundary = self._framing.boundary
        held = b""
        try:
            async for data in self.resp.iter_any():
                if held:
                    data = held + data
                cut = data.rfind(boundary)
                if cut < 0:
                    held = data
                    continue
                cut += len(boundary)
                held = data[cut:]
                out = data[:cut] if held else data
                for old, new in self._rewrite:
                    out = out.replace(old, new)
                yield out
            if held:
                yield held  # the upstream ended without a last boundary: its bytes, as sent
        except TRANSPORT_ERRORS as exc:
            yield self._framing.error(self.upstream.error(exc).message)
        finally:
            self.resp.release()

    def error_event(self, message: str) -> bytes:
        """The framing's last message saying ``message`` (a stream the server ends)."""
        return self._framing.error(message)

    async def aclose(self) -> None:
        self.resp.close()


async def forward(
    upstream: Upstream,
    method: str,
    path: str,
    content: bytes | None,
    *,
    stream: bool,
    framing: Framing,
    rewrite: Sequence[tuple[bytes, bytes]] = (),
) -> Relayed:
    """Send ``content`` on as it is; answer the status, content type, and the body or a relay.

    Only a 200 answer is relayed as a stream; any other is read whole, so its status and body
    reach the client as the upstream gave them. ``rewrite``: byte strings replaced in a 200
    answer (in each whole message of a stream, so none is split), given by the caller.
    """
    resp = await upstream.send(method, path, content, admit=True)
    content_type = resp.headers.get("content-type", "application/json")
    if stream and resp.status == 200:
        return Relayed(resp.status, content_type, RawRelay(upstream, resp, framing, rewrite))
    try:
        body = await resp.read()
    except TRANSPORT_ERRORS as exc:
        resp.close()
        raise upstream.error(exc) from None
    finally:
        resp.release()
    if resp.status == 200:
        for old, new in rewrite:
            body = body.replace(old, new)
    return Relayed(resp.status, content_type, body)


class Passthrough:
    """The ``Backend.passthrough`` both backends share: another API's request (``/v1/*``,
    which vLLM and Ollama both serve) sent on to ``self.upstream`` as it is."""

    upstream: Upstream

    async def passthrough(
        self,
        path: str,
        body: dict[str, Any],
        *,
        stream: bool,
        framing: Framing,
        rewrite: Sequence[tuple[bytes, bytes]] = (),
    ) -> Relayed:
        content = orjson.dumps(body)
        return await forward(
            self.upstream, "POST", path, content, stream=stream, framing=framing, rewrite=rewrite
        )


def upstream_for(
    kind: str,
    name: str,
    url: str,
    settings: Settings,
    metrics: Metrics,
    clock: Clock,
    headers: Mapping[str, str] | None = None,
) -> Upstream:
    """The one way a backend builds its ``Upstream``: the settings' timeouts and pool size,
    errors and resends counted under the backend's ``name``, its admission turns, its clock."""
    return Upstream(
        kind,
        url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.request_timeout,
        max_connections=settings.max_connections,
        headers=headers,
        on_error=lambda error: metrics.upstream_errors.labels(name, error).inc(),
        on_resend=metrics.upstream_resends.labels(name).inc,
        admission=admission_for(name, settings, metrics),
        now=clock.monotonic,
    )
