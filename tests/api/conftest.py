"""The app in-process (ASGI) against the fake vLLM, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from adapter.app import create_app
from adapter.clock import SYSTEM, Clock
from adapter.config import Settings
from adapter.server import AdapterHttpProtocol, AdapterServer
from tests.fake_vllm import FakeVLLM
from tests.support.clock import Ticks, hand_clock


@pytest.fixture
async def fake() -> AsyncIterator[FakeVLLM]:
    upstream = FakeVLLM()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def settings(fake: FakeVLLM) -> Settings:
    # Capabilities are asked of the fake as in production (it answers the probes as vLLM did).
    return Settings(vllm_url=await fake.url(), model_aliases="llama3.2=tiny-llm")


async def serve(settings: Settings, clock: Clock = SYSTEM) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a fresh app built from ``settings`` (and ``clock``)."""
    app = create_app(settings, clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter") as c,
    ):
        yield c


@contextlib.asynccontextmanager
async def listening(settings: Settings) -> AsyncIterator[Listening]:
    """The app served by a real uvicorn on a free port of 127.0.0.1, in this event loop (for
    what httpx's in-process transport cannot show: streams as they come, a shutdown), with
    the adapter's protocol and its shutdown grace, as ``python -m adapter`` serves it."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        loop="asyncio",
        http=AdapterHttpProtocol,
        # uvicorn's hint says int; it waits any number of seconds (asyncio.wait_for).
        timeout_graceful_shutdown=settings.shutdown_grace,  # type: ignore[arg-type]
    )
    server = Listening(config)
    serving = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.listening.wait(), 10)
        yield server
    finally:
        server.should_exit = True
        await serving


class Listening(AdapterServer):
    """The adapter's server, with an event set once it listens and one once its shutdown began."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        self.shutting_down = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.shutting_down.set()
        await super().shutdown(sockets)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.servers[0].sockets[0].getsockname()[1]}"


@pytest.fixture
def ticks() -> Ticks:
    """The app's cache ages: they move only when a test advances them."""
    return Ticks()


@pytest.fixture
async def client(settings: Settings, ticks: Ticks) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(settings, hand_clock(ticks)):
        yield c
