"""The app in-process against the fake vLLM."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapter.app import create_app
from adapter.config import Settings
from tests.fake_vllm import FakeVLLM


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        vllm_url="http://vllm.test:8000",
        model_aliases="llama3.2=tiny-llm",
        probe_capabilities=False,
    )


@pytest.fixture
async def client(fake: FakeVLLM, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, transport=fake.transport())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter") as c,
    ):
        yield c
