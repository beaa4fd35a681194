"""Cross-origin requests as Ollama answers them (gin-contrib/cors with Ollama's settings).

Allowed origins are ``OLLAMA_ORIGINS`` (comma-separated, ``*`` for any) and the ones Ollama
always allows: ``localhost``, ``127.0.0.1`` and ``0.0.0.0`` over http and https on any port,
and the ``app://``, ``file://``, ``tauri://``, ``vscode-webview://`` and ``vscode-file://``
schemes. An entry's ``*`` matches any run of characters (``chrome-extension://*``,
``http://192.168.1.*:*``); Ollama itself takes one ``*`` per entry, and more than one stops it.
A request whose ``Origin`` is the server itself is not cross-origin. Any other origin not
allowed gets 403 with no CORS headers (a preflight too); an allowed one gets its headers, and
its preflight (``OPTIONS``) a 204.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The origins Ollama always allows (its envconfig.AllowedOrigins), after OLLAMA_ORIGINS.
LOCAL_ORIGINS = (
    *(
        f"{scheme}://{host}{port}"
        for host in ("localhost", "127.0.0.1", "0.0.0.0")
        for port in ("", ":*")
        for scheme in ("http", "https")
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)
ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
#: Ollama's list, and the headers of Anthropic's clients and our request ids.
ALLOW_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "OpenAI-Beta",
        "x-stainless-arch",
        "x-stainless-async",
        "x-stainless-custom-poll-interval",
        "x-stainless-helper-method",
        "x-stainless-lang",
        "x-stainless-os",
        "x-stainless-package-version",
        "x-stainless-poll-helper",
        "x-stainless-retry-count",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
        "x-stainless-timeout",
        "x-api-key",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
        "X-Request-ID",
    ]
)
MAX_AGE = str(12 * 3600)


class OriginPolicy:
    """Which origins may call: exact entries, entries with ``*`` wildcards, or all."""

    def __init__(self, origins: Sequence[str]) -> None:
        entries = [o.strip() for o in origins if o.strip()]
        self.allow_all = "*" in entries
        self._exact = frozenset(e for e in entries if "*" not in e)
        patterns = [
            ".*".join(re.escape(part) for part in e.split("*")) for e in entries if "*" in e
        ]
        self._wild = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    @classmethod
    def ollama(cls, configured: Sequence[str]) -> OriginPolicy:
        """``OLLAMA_ORIGINS`` plus what Ollama always allows."""
        return cls([*configured, *LOCAL_ORIGINS])

    def allows(self, origin: str) -> bool:
        if self.allow_all or origin in self._exact:
            return True
        return self._wild is not None and self._wild.fullmatch(origin) is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class CORSMiddleware:
    """Answers preflights, adds the headers to allowed origins' answers, refuses the rest."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy
        self._preflight = [
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
            (b"access-control-max-age", MAX_AGE.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None:
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if host is not None and origin in (f"http://{host}", f"https://{host}"):
            await self.app(scope, receive, send)  # the server's own page: not cross-origin
            return
        if not self.policy.allows(origin):
            await _empty(send, 403, [])
            return
        allowed = [
            (b"access-control-allow-origin", b"*" if self.policy.allow_all else origin.encode())
        ]
        if not self.policy.allow_all:
            allowed.append((b"vary", b"Origin"))
        if scope["method"] == "OPTIONS":
            await _empty(send, 204, [*self._preflight, *allowed])
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *allowed]
            await send(message)

        await self.app(scope, receive, with_cors)


async def _empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
