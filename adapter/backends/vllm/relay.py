"""vLLM's SSE stream relayed as Ollama NDJSON, one write per network read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from itertools import repeat
from operator import itemgetter
from typing import Any

import orjson

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


class Events:
    """vLLM's SSE stream read as its data events, decoded: the one reader of both the relay
    and ``collect``.

    Iterating yields, per network read, the events it completed, as decoded JSON, in one
    ``orjson.loads`` call for all of them (one per event only when that fails: a lone
    surrogate escape, a malformed event, which then raises ``ValueError``). While ``limit`` is
    set, at most that many lines are split off at a time, so a large first read does not hold
    the first token. ``done`` tells that ``data: [DONE]`` came; nothing after it is read.

    With ``plain_text`` (a chat answer being collected), an event that is only a piece of
    text, in vLLM's exact shape, comes out as that text (a ``str``) instead of its object:
    ``whole_events`` says how, and only its text is decoded.
    """

    __slots__ = ("_chunks", "_plain", "done", "limit")

    def __init__(
        self, chunks: AsyncIterator[bytes], *, limit: int = 0, plain_text: bool = False
    ) -> None:
        self._chunks = chunks
        self.done = False
        self.limit = limit
        # None: not learnt yet (the stream's first event shows its id, model and time);
        # empty: not asked for, or not vLLM's shape.
        self._plain: bytes | None = None if plain_text else b""

    def _learn(self, buf: bytes) -> None:
        """The start every plain text event of this stream has, from its first event."""
        end = buf.find(b"\n")
        start = buf.find(b'"choices":', 0, end)
        if buf.startswith(b'data: {"id":') and start > 0:
            self._plain = buf[:start] + CONTENT_HEAD
        else:
            self._plain = b""

    async def __aiter__(self) -> AsyncIterator[list[Any]]:
        buf = b""
        async for data in self._chunks:
            buf = buf + data if buf else data
            if b"\n" not in data:
                continue
            if self._plain is None:
                self._learn(buf)
            while True:
                limit = self.limit
                if not limit and buf.endswith(b"\n\n") and buf.startswith(b"data: "):
                    whole = whole_events(buf, self._plain or b"")
                    if whole is not None:
                        # vLLM's own shape: the read is its events and nothing else.
                        buf = b""
                        events, self.done = whole
                        if events:
                            yield events
                        if self.done:
                            return
                        break
                lines = buf.split(b"\n", limit) if limit else buf.split(b"\n")
                buf = lines.pop()
                payloads = [line[5:].strip() for line in lines if line.startswith(b"data:")]
                if b"[DONE]" in payloads:
                    payloads = payloads[: payloads.index(b"[DONE]")]
                    self.done = True
                if payloads:
                    try:
                        batch = decode_events(payloads)
                    except MalformedEvent as bad:
                        # The events before it are relayed; the stream then ends with an error.
                        if bad.before:
                            yield bad.before
                        raise
                    yield batch
                if self.done:
                    return
                if not (limit and b"\n" in buf):
                    break


#: How a chat chunk's only choice starts when its delta is a piece of text, and how the rest
#: of such an event reads in vLLM (0.32): nothing else in it, no finish, no logprobs.
CONTENT_HEAD = b'"choices":[{"index":0,"delta":{"content":'
CONTENT_TAIL = b'},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
_TAIL = CONTENT_TAIL[:-2]
_DONE = b"data: [DONE]\n\n"
_SEPARATOR = b"\n\ndata: "


def whole_events(buf: bytes, head: bytes = b"") -> tuple[list[Any], bool] | None:
    """A read that holds only whole events as vLLM writes them (``data: <json>\\n\\n``
    each, perhaps ``data: [DONE]`` last), decoded with no Python step per event: one
    ``split`` cuts the events apart (a raw newline cannot occur inside JSON, so the separator
    only ever separates), and each run of events is one ``orjson.loads`` of them as an array.
    Answers the events and whether ``[DONE]`` ended them; None for anything else (a comment,
    another line ending, ``[DONE]`` inside, an event that is not JSON): the line reader
    takes it then.

    With ``head`` (``data: `` and the stream's id, object, created and model, then
    ``CONTENT_HEAD``), an event that starts so and ends with ``CONTENT_TAIL`` comes out as its
    text, and only the texts of such a run are decoded: the ninety-odd per cent of each event
    that says the same every time is not. Sound because both hold quotes that no JSON string
    holds unescaped, so they match only an event's structure; what lies between must then
    decode as one string per event (another key in the delta, ``null``, or an empty text,
    which ``feed`` must see, sends the read to the line reader instead)."""
    done = buf.endswith(_DONE)
    body = buf[: -len(_DONE)] if done else buf
    if not body:
        return [], done
    events = body[6:-2].split(_SEPARATOR)
    count = len(events)
    if head:
        start = head[6:]
        plain = list(
            map(
                bool.__and__,
                map(bytes.startswith, events, repeat(start)),
                map(bytes.endswith, events, repeat(_TAIL)),
            )
        )
        cut = itemgetter(slice(len(start), -len(_TAIL)))
    else:
        plain = [False] * count
    items: list[Any] = []
    i = 0
    while i < count:
        kind = plain[i]
        try:
            j = plain.index(not kind, i)
        except ValueError:
            j = count
        run = events[i:j]
        decoded = _as_array(list(map(cut, run)) if kind else run)
        if decoded is None:
            return None
        if kind and (not all(map(isinstance, decoded, repeat(str))) or "" in decoded):
            return None
        items.extend(decoded)
        i = j
    return items, done


def _as_array(payloads: list[bytes]) -> list[Any] | None:
    """Several JSON values decoded in one parse, as the array they make joined; None when that
    is not JSON or does not give one value each (``1,2`` and ``3`` make three)."""
    try:
        values = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:
        return None
    return values if len(values) == len(payloads) else None


def decode_events(payloads: list[bytes]) -> list[Any]:
    """Several events' JSON in one parse (``_as_array``), each on its own only when that
    fails."""
    if len(payloads) > 1:
        events = _as_array(payloads)
        if events is not None:
            return events
    decoded: list[Any] = []
    for payload in payloads:
        try:
            decoded.append(loads_lenient(payload))
        except ValueError:
            raise MalformedEvent(decoded) from None
    return decoded


class MalformedEvent(ValueError):
    """An SSE data event that is not JSON; ``before``: the events of its read that came
    before it, decoded."""

    def __init__(self, before: list[Any]) -> None:
        super().__init__("malformed stream event")
        self.before = before


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
        wall_ns = self._clock.wall_ns
        # Until the first line has left, a few lines at a time (time to first token).
        events = Events(self._resp.iter_any(), limit=FIRST_SPLIT)
        first = True
        try:
            async for batch in events:
                translator.now = created_at_bytes(wall_ns())
                out = []
                try:
                    for event in batch:
                        piece = feed(event)
                        if piece:
                            if first:
                                # The first line leaves at once; the rest of what arrived
                                # together leaves as one write.
                                first = False
                                events.limit = 0
                                yield piece
                            else:
                                out.append(piece)
                except OllamaError as exc:
                    out.append(error_line(exc.message))
                    yield b"".join(out)
                    return
                except ValueError:
                    out.append(error_line("vLLM sent a malformed stream event"))
                    yield b"".join(out)
                    return
                if events.done:
                    # The last line leaves with what came before it, and the end of the
                    # body with it; then the upstream answer is read out so its connection
                    # can serve the next request.
                    out.append(self._final())
                    self.ended = True
                    yield b"".join(out)
                    await drain(self._resp)
                    return
                if out:
                    yield b"".join(out)
        except ValueError:
            yield error_line("vLLM sent a malformed stream event")
            return
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
    keep = translator.collect
    events = Events(resp.iter_any(), plain_text=translator.takes_plain_text)
    try:
        async for batch in events:
            keep(batch)
    except TRANSPORT_ERRORS as exc:
        resp.close()
        raise upstream.error(exc) from None
    except ValueError:
        resp.close()
        raise OllamaError(502, "vLLM sent a malformed stream event") from None
    except BaseException:
        resp.close()
        raise
    if events.done:
        await drain(resp)
    resp.release()
    if translator.finish_reason is None:
        raise OllamaError(502, f"vLLM at {upstream.url} ended the stream early")
    on_usage(translator.usage)
    return translator.answer()


async def drain(resp: Response) -> None:
    """Read what is left of a finished answer (its end usually follows at once), so its
    connection serves the next request; past ``DRAIN_SECONDS`` it is dropped instead."""
    if resp.complete:  # all of it is here: taken without waiting, so without a timer
        async for _ in resp.iter_any():
            pass
        return
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in resp.iter_any():
                pass
    except (TimeoutError, *TRANSPORT_ERRORS):
        pass
