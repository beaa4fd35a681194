"""The model-list cache both backends share: its age, its refresh limit, one ask at a time."""

from __future__ import annotations

import asyncio

import pytest

from adapter.backends.modellist import REFRESH_SECONDS, ModelList
from adapter.errors import OllamaError
from adapter.ollama_api.models import ModelEntry
from tests.support.clock import Ticks


def entry(name: str) -> ModelEntry:
    return ModelEntry(name=name, served=name, backend="vllm")


class Server:
    """Answers the names it is set to, counting the asks; ``gate`` holds an ask open."""

    def __init__(self) -> None:
        self.names = ["a"]
        self.asks = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def fetch(self) -> list[ModelEntry]:
        self.asks += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise OllamaError(503, "down")
        return [entry(n) for n in self.names]


async def test_kept_for_its_ttl_and_the_same_object_while_unchanged() -> None:
    ticks, server = Ticks(), Server()
    models = ModelList(server.fetch, ttl=30, now=ticks)
    first = await models.get()
    ticks.advance(29)
    assert await models.get() is first and server.asks == 1
    ticks.advance(2)
    assert await models.get() is first and server.asks == 2  # asked again, nothing changed
    server.names = ["a", "b"]
    ticks.advance(31)
    assert [e.name for e in await models.get()] == ["a", "b"]


async def test_a_refresh_asks_again_but_at_most_twice_a_second() -> None:
    ticks, server = Ticks(), Server()
    models = ModelList(server.fetch, ttl=30, now=ticks)
    await models.get()
    await models.get(refresh=True)
    assert server.asks == 1  # younger than REFRESH_SECONDS
    ticks.advance(REFRESH_SECONDS)
    await models.get(refresh=True)
    assert server.asks == 2


async def test_one_ask_at_a_time_shared_by_everyone_waiting() -> None:
    ticks, server = Ticks(), Server()
    models = ModelList(server.fetch, ttl=30, now=ticks)
    server.gate = asyncio.Event()
    waiting = [asyncio.create_task(models.get()) for _ in range(5)]
    await asyncio.sleep(0)
    server.gate.set()
    lists = await asyncio.gather(*waiting)
    assert server.asks == 1 and all(found is lists[0] for found in lists)


async def test_a_failed_ask_raises_and_is_asked_again_next_time() -> None:
    ticks, server = Ticks(), Server()
    models = ModelList(server.fetch, ttl=30, now=ticks)
    first = await models.get()
    ticks.advance(31)
    server.fail = True
    with pytest.raises(OllamaError):
        await models.get()
    server.fail = False
    assert await models.get() is first and server.asks == 3
