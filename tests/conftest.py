"""Session fixtures shared by the live suites (integration, clients): real vLLM servers on
CPU, started once per session and only when a test asks for them, and the adapter as a real
process in front of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.adapter_proc import running_adapter
from tests.support.vllm_cpu import running_server

LIVE_ALIASES = "llama3.2=tiny-llm"


@pytest.fixture(scope="session")
def vllm_url() -> Iterator[str]:
    """A vLLM chat server serving ``tiny-llm`` (hermes tools, xgrammar structured outputs)."""
    with running_server("chat") as url:
        yield url


@pytest.fixture(scope="session")
def vllm_reasoning_url() -> Iterator[str]:
    """The same model with ``--reasoning-parser qwen3``."""
    with running_server("reasoning") as url:
        yield url


@pytest.fixture(scope="session")
def vllm_embed_url() -> Iterator[str]:
    """The tiny model as a pooling (embedding) model, served as ``tiny-embed``."""
    with running_server("embed") as url:
        yield url


@pytest.fixture(scope="session")
def live_adapter(vllm_url: str, vllm_embed_url: str) -> Iterator[str]:
    """The adapter in front of the chat and the embedding server; yields its base URL."""
    env = {"VLLM_URL": f"{vllm_url},{vllm_embed_url}", "MODEL_ALIASES": LIVE_ALIASES}
    with running_adapter(vllm_url, env=env) as url:
        yield url
