"""The app in-process (ASGI) against the fake vLLM, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapter.app import create_app
from adapter.config import Settings
from tests.fake_vllm import FakeVLLM


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


async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a fresh app built from ``settings``."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter") as c,
    ):
        yield c


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(settings):
        yield c
