"""Forwarding a request as it came and relaying the answer's bytes as they come."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import orjson

from adapter.errors import OllamaError


class RawRelay:
    """Upstream bytes as they come; ``aclose`` lets go of the upstream response."""

    def __init__(self, resp: httpx.Response, error_line: Callable[[str], bytes]) -> None:
        self.resp = resp
        self._error_line = error_line

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for data in self.resp.aiter_raw():
                yield data
        except httpx.HTTPError as exc:
            yield self._error_line(f"connection to the upstream lost: {exc!r}")
        finally:
            await self.resp.aclose()

    async def aclose(self) -> None:
        await self.resp.aclose()


def ndjson_error(message: str) -> bytes:
    """An Ollama stream's last line."""
    return orjson.dumps({"error": message}) + b"\n"


def sse_error(message: str) -> bytes:
    """An OpenAI stream's error event, then the end marker (vLLM's own form)."""
    return (
        b"data: "
        + orjson.dumps({"error": {"message": message, "type": "BadGateway", "code": 502}})
        + b"\n\ndata: [DONE]\n\n"
    )


async def forward(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    content: bytes | None,
    *,
    stream: bool,
    on_error: Callable[[httpx.HTTPError], OllamaError],
    error_line: Callable[[str], bytes] = ndjson_error,
) -> tuple[int, str, RawRelay | bytes]:
    """Send ``content`` to ``path``; answer the status, content type, and the body or a relay.

    Only a 200 answer is relayed as a stream; any other is read whole, so its status and
    body reach the client as the upstream gave them.
    """
    headers = {"content-type": "application/json"} if content is not None else {}
    request = client.build_request(method, path, content=content, headers=headers)
    try:
        resp = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise on_error(exc) from None
    content_type = resp.headers.get("content-type", "application/json")
    if stream and resp.status_code == 200:
        return resp.status_code, content_type, RawRelay(resp, error_line)
    try:
        body = await resp.aread()
    except httpx.HTTPError as exc:
        raise on_error(exc) from None
    finally:
        await resp.aclose()
    return resp.status_code, content_type, body
