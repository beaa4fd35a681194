"""What every request passes first, on the fast lane and the full path alike: its id, the API
key, the body size it announces, the ``X-Request-ID`` of its answer, and its access line."""

from __future__ import annotations

import hmac
import logging
import time

from starlette.responses import Response
from starlette.types import Message, Scope, Send

from adapter.api.answers import error_in_shape
from adapter.config import Settings
from adapter.requestctx import RequestInfo, request_id, trace_id

access = logging.getLogger("adapter.access")

UNAUTHORIZED = "unauthorized: this server needs an API key (Authorization: Bearer <key>)"


class Gate:
    """Built once per app from the settings; ``begin`` / ``refusal`` / ``finish`` per request."""

    def __init__(self, settings: Settings) -> None:
        self._keys = [k.get_secret_value().encode() for k in settings.api_keys]
        self._open = frozenset(settings.open_paths)
        # A conversation's name goes upstream as X-Session-ID (the first of these it carries);
        # a name in both lists is sent once, as the session.
        self._session = tuple(h.encode() for h in settings.session_headers)
        sessions = frozenset(self._session)
        self._sessions = sessions
        self._forward = frozenset(h.encode() for h in settings.forward_headers) - sessions
        # The headers ``begin`` reads: one set lookup passes over each of the others.
        self._wanted = (
            self._forward
            | sessions
            | {
                b"content-length",
                b"x-request-id",
                b"origin",
                b"traceparent",
                b"tracestate",
            }
        )
        self._max_body = settings.max_body_bytes
        self._log = settings.access_log

    def begin(self, scope: Scope) -> RequestInfo:
        """The request's ``RequestInfo``, from one pass over its headers."""
        given = parent = state = length = None
        origin = False
        forwarded: dict[str, str] | None = None
        session: dict[bytes, bytes] | None = None
        wanted = self._wanted
        for key, value in scope["headers"]:
            if key not in wanted:
                continue
            if key == b"content-length":
                length = value
            elif key == b"x-request-id":
                given = value
            elif key == b"origin":
                origin = True
            elif key == b"traceparent":
                parent = value
            elif key == b"tracestate":
                state = value
            elif key in self._sessions:
                if session is None:
                    session = {}
                session.setdefault(key, value)
            elif key in self._forward:
                if forwarded is None:
                    forwarded = {}
                forwarded[key.decode("latin-1")] = value.decode("latin-1")
        rid = request_id(given)
        upstream = {"X-Request-ID": rid}
        if forwarded:
            upstream.update(forwarded)
        if session:
            name = next(s for s in self._session if s in session)
            upstream["X-Session-ID"] = session[name].decode("latin-1")
        info = RequestInfo(
            rid, scope["method"], scope["path"], time.perf_counter(), upstream, length, origin
        )
        if parent is not None:
            # W3C Trace Context reaches vLLM with the request, so its OpenTelemetry spans (when
            # it exports them) join the client's trace; tracestate only with a valid parent.
            info.trace_id = trace_id(parent)
            if info.trace_id is not None:
                upstream["traceparent"] = parent.strip().decode("ascii")
                if state is not None:
                    upstream["tracestate"] = state.decode("latin-1")
        return info

    def refusal(self, scope: Scope, info: RequestInfo) -> Response | None:
        """The answer that ends the request before any route sees it (no key, a body over
        the limit), or None."""
        path = info.path
        if self._keys and not self._is_open(scope, path) and not self._has_key(scope, path):
            response = error_in_shape(path, 401, UNAUTHORIZED)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        length = info.content_length
        if length is not None and length.isdigit() and int(length) > self._max_body:
            return too_large(path, self._max_body)
        return None

    def _is_open(self, scope: Scope, path: str) -> bool:
        if path in self._open or (path == "/" and scope["method"] in ("GET", "HEAD")):
            return True
        if scope["method"] == "OPTIONS":  # a CORS preflight carries no credentials
            names = {k for k, _ in scope["headers"]}
            return b"origin" in names and b"access-control-request-method" in names
        return False

    def _has_key(self, scope: Scope, path: str) -> bool:
        offered: list[bytes] = []
        for key, value in scope["headers"]:
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                offered.append(value[7:].strip())
            elif key == b"x-api-key" and path.startswith("/v1/messages"):
                offered.append(value.strip())
        found = False
        for token in offered:
            for known in self._keys:  # every key compared, in constant time each
                found |= hmac.compare_digest(token, known)
        return found

    @staticmethod
    def id_header(info: RequestInfo) -> tuple[bytes, bytes]:
        """The ``X-Request-ID`` header of the request's answer."""
        return (b"x-request-id", info.id.encode())

    def sender(self, send: Send, info: RequestInfo) -> Send:
        """``send`` with the request's id on its answer; notes the status and first byte (the
        path through FastAPI's middleware; the fast lane puts both on its response)."""
        header = self.id_header(info)

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
                info.status = message["status"]
                info.first_byte = time.perf_counter()
            await send(message)

        return with_id

    def finish(self, info: RequestInfo) -> None:
        """The access line: who, what, how it ended, how long (never a body)."""
        if not self._log or not access.isEnabledFor(logging.INFO):
            return  # nothing to write: the fields are not even built
        now = time.perf_counter()
        fields = {
            "method": info.method,
            "path": info.path,
            "status": info.status,
            "model": info.model,
            "backend": info.backend,
            "prompt_tokens": info.prompt_tokens,
            "completion_tokens": info.completion_tokens,
            "duration_ms": round((now - info.start) * 1000, 3),
            "first_byte_ms": round((info.first_byte - info.start) * 1000, 3)
            if info.first_byte
            else None,
            "trace_id": info.trace_id,
        }
        access.info(
            "%s %s %s model=%s backend=%s tokens=%s/%s %.1fms%s",
            info.method,
            info.path,
            info.status,
            info.model or "-",
            info.backend or "-",
            info.prompt_tokens if info.prompt_tokens is not None else "-",
            info.completion_tokens if info.completion_tokens is not None else "-",
            fields["duration_ms"],
            f" trace={info.trace_id}" if info.trace_id else "",
            extra={"access": fields},
        )


def too_large(path: str, limit: int) -> Response:
    response = error_in_shape(
        path, 413, f"request body too large: more than {limit} bytes (ADAPTER_MAX_BODY_BYTES)"
    )
    response.headers["Connection"] = "close"  # the rest of the body is not read
    return response
