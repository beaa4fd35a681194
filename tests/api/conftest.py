"""The app in-process (ASGI) against the fake vLLM, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapter.app import create_app
from adapter.clock import SYSTEM, Clock
from adapter.config import Settings
from tests.fake_vllm import FakeVLLM
from tests.support.clock import Ticks, hand_clock


@pytest.fixture
async def fake() -> AsyncIterator[FakeVLLM]:
    upstream = FakeVLLM()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def settings(fake: FakeVLLM) -> Settings:
    return Settings(
        vllm_url=await fake.url(),
        model_aliases="llama3.2=tiny-llm",
        probe_capabilities=False,
    )


async def serve(settings: Settings, clock: Clock = SYSTEM) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a fresh app built from ``settings`` (and ``clock``)."""
    app = create_app(settings, clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter") as c,
    ):
        yield c


@pytest.fixture
def ticks() -> Ticks:
    """The app's cache ages: they move only when a test advances them."""
    return Ticks()


@pytest.fixture
async def client(settings: Settings, ticks: Ticks) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(settings, hand_clock(ticks)):
        yield c
