"""The streamed answer lets go of the upstream when the client disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Message

from adapter.api.answers import StreamingAnswer


class Stream:
    """What every ``ByteStream`` offers besides its bytes and ``aclose``."""

    ended = False

    def error_event(self, message: str) -> bytes:
        return b'{"error":"' + message.encode() + b'"}\n'


class SlowUpstream(Stream):
    """Yields one chunk, then waits as a queued vLLM request would; records closing."""

    def __init__(self) -> None:
        self.closed = False
        self.first_sent = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"a":1}\n'
        self.first_sent.set()
        await asyncio.sleep(3600)
        yield b'{"b":2}\n'

    async def aclose(self) -> None:
        self.closed = True


async def test_disconnect_closes_the_upstream_while_it_is_silent() -> None:
    upstream = SlowUpstream()
    disconnected: list[bool] = []
    sent: list[Message] = []
    gone = asyncio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    response = StreamingAnswer(upstream, on_disconnect=lambda: disconnected.append(True))
    task = asyncio.ensure_future(response({"type": "http"}, receive, send))
    await upstream.first_sent.wait()
    assert not upstream.closed
    gone.set()
    await asyncio.wait_for(task, 2)
    assert upstream.closed and disconnected == [True]
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["headers"][0] == (b"content-type", b"application/x-ndjson")
    assert sent[1]["body"] == b'{"a":1}\n'


async def test_complete_stream_ends_the_body_and_closes() -> None:
    class Short(Stream):
        closed = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"x\n"

        async def aclose(self) -> None:
            self.closed = True

    upstream = Short()
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(StreamingAnswer(upstream)({"type": "http"}, receive, send), 2)
    assert [m.get("body") for m in sent[1:]] == [b"x\n", b""]
    assert sent[-1]["more_body"] is False
    assert upstream.closed


async def test_finishing_the_upstream_after_the_last_line_is_not_a_disconnect() -> None:
    """After the last line the relay reads the rest of vLLM's answer (so the connection is
    reused). uvicorn answers ``receive()`` with ``http.disconnect`` once a response is
    complete; that must not cancel the relay's read nor count as a client leaving."""

    watching = asyncio.Event()

    class Ending(Stream):
        drained = False
        closed = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"a\n"
            await watching.wait()  # the disconnect watcher has started
            self.ended = True
            yield b"last\n"
            for _ in range(5):  # reading the end of vLLM's answer, while uvicorn says
                await asyncio.sleep(0)  # "disconnect" to anyone still listening
            self.drained = True

        async def aclose(self) -> None:
            self.closed = True

    upstream = Ending()
    sent: list[Message] = []
    complete = asyncio.Event()
    disconnected: list[bool] = []

    async def receive() -> Message:
        watching.set()
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("more_body") is False:
            complete.set()  # as uvicorn: the response is complete

    response = StreamingAnswer(upstream, on_disconnect=lambda: disconnected.append(True), grace=0)
    await asyncio.wait_for(response({"type": "http"}, receive, send), 2)
    assert [m.get("body") for m in sent[1:]] == [b"a\n", b"last\n"]
    assert sent[-1]["more_body"] is False
    assert upstream.drained and upstream.closed
    assert disconnected == []
