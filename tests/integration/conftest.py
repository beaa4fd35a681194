"""The integration tests run against the real vLLM server on CPU (fixtures: tests/conftest.py).

The second SmolLM2 replica of ``test_replicas.py`` is launched at the first integration test
when a selected test needs it, so its start overlaps the tests before; not with the session's
other servers, because the deployment tests between them run replicas of their own in
containers (a vLLM on CPU holds about 3 GB).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.vllm_cpu import VllmServer, external_url, launch_server, running_server

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _replica_launched(request: pytest.FixtureRequest) -> Iterator[VllmServer | None]:
    wanted = any(
        "smollm2_replica" in getattr(item, "fixturenames", ()) for item in request.session.items
    )
    if not wanted or external_url("smollm2-replica"):
        yield None
        return
    server = launch_server("smollm2-replica")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def smollm2_replica(_replica_launched: VllmServer | None) -> Iterator[VllmServer]:
    """The second replica (the server itself: the replica tests kill it and start it again)."""
    if _replica_launched is None:  # VLLM_TEST_SMOLLM2_REPLICA_URL names a running one
        with running_server("smollm2-replica") as url:
            yield VllmServer(url, "smollm2:135m")
        return
    _replica_launched.wait_ready()
    yield _replica_launched
