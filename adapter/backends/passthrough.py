"""Answers passed on as the upstream gives them: ``forward`` (a request sent on as it is),
``RawRelay`` (a streamed answer in whole messages of its framing) and ``Passthrough``, the
``Backend.passthrough`` both backends share. The transport under it is ``upstream.py``'s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from adapter.backends.base import Relayed
from adapter.backends.httpclient import Response
from adapter.backends.upstream import TRANSPORT_ERRORS, Upstream
from adapter.framing import Framing


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
