"""vLLM's SSE stream relayed as Ollama NDJSON, one write per network read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from adapter.backends.httpclient import Response
from adapter.backends.upstream import TRANSPORT_ERRORS, Upstream
from adapter.backends.vllm.stream import StreamTranslator
from adapter.clock import Clock
from adapter.errors import OllamaError
from adapter.jsonutil import loads_lenient
from adapter.ollama_api.responses import created_at_bytes, error_line

log = logging.getLogger("adapter.vllm")

#: How long a finished stream waits for the rest of vLLM's answer (the chunked end) before
#: dropping the connection instead of reusing it.
DRAIN_SECONDS = 1.0

#: Lines split off a stream's buffer at a time before its first line has left (vLLM's first
#: event carries only the role; the first token is in the second).
FIRST_SPLIT = 8


class NDJSONRelay:
    """Reads vLLM's SSE stream and yields Ollama NDJSON, one write per network read (a
    ``ByteStream``).

    Several SSE events that arrive in one read leave as one write, which keeps the cost per
    token low; only the first line is sent on its own, so batching never delays it, and the
    last line leaves with the end of the body. ``aclose`` closes the upstream response, so
    vLLM aborts the request when the client goes away.
    """

    ended = False

    def __init__(
        self,
        upstream: Upstream,
        resp: Response,
        translator: StreamTranslator,
        clock: Clock,
        on_usage: Callable[[Mapping[str, Any] | None], None],
    ) -> None:
        self._upstream = upstream
        self._resp = resp
        self._translator = translator
        self._clock = clock
        self._on_usage = on_usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        translator = self._translator
        feed = translator.feed
        loads = loads_lenient
        wall_ns = self._clock.wall_ns
        buf = b""
        first = True
        try:
            async for data in self._resp.iter_any():
                translator.now = created_at_bytes(wall_ns())
                buf = buf + data if buf else data
                if b"\n" not in data:
                    continue
                out = []
                try:
                    while True:
                        # Until the first line has left, split off a few lines at a time:
                        # splitting a large first read whole would hold the first token.
                        limited = first
                        lines = buf.split(b"\n", FIRST_SPLIT) if limited else buf.split(b"\n")
                        buf = lines.pop()
                        for line in lines:
                            if not line.startswith(b"data:"):
                                continue
                            payload = line[5:].strip()
                            if payload == b"[DONE]":
                                # The last line leaves with what came before it, and the
                                # end of the body with it; then the upstream answer is read
                                # out so its connection can serve the next request.
                                out.append(self._final())
                                self.ended = True
                                yield b"".join(out)
                                await drain(self._resp)
                                return
                            piece = feed(loads(payload))
                            if piece:
                                if first:
                                    # The first line leaves at once (time to first token);
                                    # the rest of what arrived together leaves as one write.
                                    first = False
                                    yield piece
                                else:
                                    out.append(piece)
                        if not (limited and b"\n" in buf):
                            break
                except OllamaError as exc:
                    out.append(error_line(exc.message))
                    yield b"".join(out)
                    return
                except ValueError:
                    out.append(error_line("vLLM sent a malformed stream event"))
                    yield b"".join(out)
                    return
                if out:
                    yield b"".join(out)
        except TRANSPORT_ERRORS as exc:
            yield error_line(self._upstream.error(exc).message)
            return
        except Exception as exc:  # the stream has started: an error line is all that is left
            log.error("stream relay failed: %r", exc, exc_info=exc)
            yield error_line(f"internal error in the adapter: {type(exc).__name__}")
            return
        finally:
            self._resp.release()
        if translator.finish_reason is None:
            yield error_line(f"vLLM at {self._upstream.url} ended the stream early")
            return
        yield self._final()

    def _final(self) -> bytes:
        translator = self._translator
        self._on_usage(translator.usage)
        return translator.final()

    def error_event(self, message: str) -> bytes:
        """The last line of a stream that ends with ``message``."""
        return error_line(message)

    async def aclose(self) -> None:
        self._resp.close()


async def collect(
    upstream: Upstream,
    resp: Response,
    translator: StreamTranslator,
    on_usage: Callable[[Mapping[str, Any] | None], None],
) -> Mapping[str, Any]:
    """Read vLLM's whole SSE stream into ``translator`` (in ``collect`` mode) and answer the
    one object of a non-streaming request. Nothing has reached the client yet, so a failure
    is an error answer of its own (raised), not a last line."""
    feed = translator.feed
    buf = b""
    ended = False
    try:
        async for data in resp.iter_any():
            buf = buf + data if buf else data
            if b"\n" not in data:
                continue
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    ended = True
                    break
                feed(loads_lenient(payload))
            if ended:
                break
    except TRANSPORT_ERRORS as exc:
        resp.close()
        raise upstream.error(exc) from None
    except ValueError:
        resp.close()
        raise OllamaError(502, "vLLM sent a malformed stream event") from None
    except BaseException:
        resp.close()
        raise
    if ended:
        await drain(resp)
    resp.release()
    if translator.finish_reason is None:
        raise OllamaError(502, f"vLLM at {upstream.url} ended the stream early")
    on_usage(translator.usage)
    return translator.answer()


async def drain(resp: Response) -> None:
    """Read what is left of a finished answer (its end usually follows at once), so its
    connection serves the next request; past ``DRAIN_SECONDS`` it is dropped instead."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in resp.iter_any():
                pass
    except (TimeoutError, *TRANSPORT_ERRORS):
        pass
