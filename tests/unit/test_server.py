"""The response head leaves with the first body bytes, never later than the loop step."""

from __future__ import annotations

import asyncio

from adapter.server import HeadHoldingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n"


class Recorder:
    """The few transport methods the proxy is asked for, recording writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def proxy() -> tuple[HeadHoldingTransport, Recorder]:
    rec = Recorder()
    return HeadHoldingTransport(rec, asyncio.get_running_loop()), rec  # type: ignore[arg-type]


async def test_head_and_first_body_bytes_are_one_write() -> None:
    t, rec = proxy()
    t.write(HEAD)
    assert rec.writes == []
    t.write(b'{"a":1}')
    t.write(b"more")
    assert rec.writes == [HEAD + b'{"a":1}', b"more"]
    await asyncio.sleep(0)
    assert rec.writes == [HEAD + b'{"a":1}', b"more"]  # nothing written twice


async def test_a_head_without_body_leaves_at_the_end_of_the_loop_step() -> None:
    t, rec = proxy()
    t.write(HEAD)
    await asyncio.sleep(0)
    assert rec.writes == [HEAD]


async def test_close_writes_a_held_head_first_and_other_calls_pass_through() -> None:
    t, rec = proxy()
    t.write(HEAD)
    assert not t.is_closing()
    t.close()
    assert rec.writes == [HEAD] and rec.closed and t.is_closing()
