"""vLLM's SSE stream relayed as Ollama NDJSON, one write per network read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
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

    With ``plain_text`` (a chat answer being collected), a run of events that are only a
    piece of text each, in vLLM's exact shape, comes out as their text (one ``str``) instead
    of their objects: ``whole_events`` says how, and only the text is decoded.
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
    ``CONTENT_HEAD``), a run of events that each start so and end with ``CONTENT_TAIL``
    comes out as their texts joined (one ``str``), and only the texts are decoded: the
    ninety-odd per cent of each event that says the same every time is not. Sound because
    both hold quotes that no JSON string holds unescaped, so they match only an event's
    structure; what lies between must then decode as one string per event (another key in
    the delta, ``null``, or an empty text, which ``feed`` must see, sends the read to the
    line reader instead)."""
    done = buf.endswith(_DONE)
    body = buf[: -len(_DONE)] if done else buf
    if not body:
        return [], done
    events = body[6:-2].split(_SEPARATOR)
    items = _with_texts(events, head[6:]) if head else _array(events)
    return None if items is None else (items, done)


def _with_texts(events: list[bytes], start: bytes) -> list[Any] | None:
    """``events`` decoded, each run of plain text events as its text (``whole_events``).

    The usual read is a run of plain texts between a few other events (the role first, the
    finish and the usage last): the run's texts are cut out at once and the run counts as
    plain when it is rebuilt byte for byte from them, so no event is looked at on its own.
    Any other read is sorted event by event."""
    count = len(events)
    text_of = itemgetter(slice(len(start), -len(_TAIL)))
    i = 0
    while i < count and not _plain(events[i], start):
        i += 1
    j = count
    while j > i and not _plain(events[j - 1], start):
        j -= 1
    if i == j:
        return _array(events)
    run = events[i:j]
    texts = list(map(text_of, run))
    if _SEPARATOR.join(run) == start + (_TAIL + _SEPARATOR + start).join(texts) + _TAIL:
        text = _text(texts)
        before = _array(events[:i])
        after = _array(events[j:])
        if text is None or before is None or after is None:
            return None
        before.append(text)
        before.extend(after)
        return before
    # Something else inside the run (a tool call, reasoning): event by event.
    plain = [_plain(event, start) for event in events]
    items: list[Any] = []
    i = 0
    while i < count:
        kind = plain[i]
        try:
            j = plain.index(not kind, i)
        except ValueError:
            j = count
        if kind:
            text = _text(list(map(text_of, events[i:j])))
            if text is None:
                return None
            items.append(text)
        else:
            decoded = _array(events[i:j])
            if decoded is None:
                return None
            items.extend(decoded)
        i = j
    return items


def _plain(event: bytes, start: bytes) -> bool:
    """Whether an event is shaped as a plain text event (its text still to be checked)."""
    return event.startswith(start) and event.endswith(_TAIL)


def _text(texts: list[bytes]) -> str | None:
    """Plain text events' texts, decoded in one parse and joined; None unless each is one
    JSON string, and not an empty one."""
    decoded = _array(texts)
    if decoded is None or "" in decoded:
        return None
    try:
        return "".join(decoded)
    except TypeError:  # a number, null, an object
        return None


def _array(payloads: list[bytes]) -> list[Any] | None:
    """Several JSON values decoded in one parse, as the array they make joined; None when that
    is not JSON or does not give one value each (``1,2`` and ``3`` make three)."""
    if not payloads:
        return []
    try:
        values = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:
        return None
    return values if len(values) == len(payloads) else None


def decode_events(payloads: list[bytes]) -> list[Any]:
    """Several events' JSON in one parse (``_array``), each on its own only when that
    fails."""
    if len(payloads) > 1:
        events = _array(payloads)
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
