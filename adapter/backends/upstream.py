"""One upstream server (vLLM or Ollama) as the backends see it: requests, errors in Ollama's terms.

The connections and the HTTP itself are ``adapter.backends.httpclient``'s, a small client of
our own chosen by measurement (see its docstring and docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from adapter.admission import Admission, admission_for
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
