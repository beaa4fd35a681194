"""Start and stop vLLM's own router (``vllm-router``, a Rust binary in its PyPI wheel, installed
into the vLLM venv by scripts/setup-vllm-cpu.sh) in front of several vLLM replicas.

Stdlib only, so benchmarks can use it too::

    from tests.support.router import start_router

    router = start_router([replica_a, replica_b], policy="consistent_hash")
    router.url          # what the adapter's VLLM_URL names
    router.metrics_base # the router's own Prometheus endpoint (/metrics under it)
    router.stop()

The health checks run every ``HEALTH_INTERVAL`` seconds and two failures mark a replica down
(docs/deployment.md, "Several replicas", says why these numbers).
"""

from __future__ import annotations

import atexit
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port
from tests.support.vllm_cpu import health_ok, kill_group, terminate_group

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = REPO_ROOT / ".cache" / "logs"
ROUTER_BIN = REPO_ROOT / ".venv-vllm" / "bin" / "vllm-router"


def _compose_default(variable: str) -> str:
    """The default of ``${VARIABLE:-default}`` in docker-compose.vllm.yml: the tests run the
    router as the deployment does."""
    text = (REPO_ROOT / "docker-compose.vllm.yml").read_text()
    found = re.search(r"\$\{" + variable + r":-([^}]*)\}", text)
    if found is None:
        raise LookupError(f"no default for {variable} in docker-compose.vllm.yml")
    return found[1]


#: The policy the deployment runs (VLLM_ROUTER_POLICY's default).
DEFAULT_POLICY = _compose_default("VLLM_ROUTER_POLICY")

#: Seconds between the router's health checks of each replica, and the failures in a row that
#: mark one down: a dead replica is out of rotation within about 2 x 2 s.
HEALTH_INTERVAL = 2
HEALTH_FAILURES = 2


class RouterStartError(RuntimeError):
    """The router did not answer; the message ends with its log's last lines."""


@dataclass
class RouterProc:
    """A ``vllm-router`` process this test session started."""

    workers: list[str]
    policy: str
    port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_base(self) -> str:
        """Where the router's Prometheus metrics are (``/metrics`` under it)."""
        return f"http://127.0.0.1:{self.metrics_port}"

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until the router serves (it listens once every replica is healthy)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if health_ok(self.url):
                return
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RouterStartError(f"vllm-router on {self.url} did not start:\n{tail}")

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            terminate_group(self.process, 10.0)

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        if not self._stopped:
            self._stopped = True
            kill_group(self.process)


def launch_router(
    workers: Sequence[str],
    *,
    policy: str = DEFAULT_POLICY,
    port: int | None = None,
) -> RouterProc:
    """Start ``vllm-router`` over ``workers`` (base URLs) without waiting for it."""
    if not ROUTER_BIN.exists():
        raise RouterStartError(f"no {ROUTER_BIN}: run scripts/setup-vllm-cpu.sh first")
    port = port or free_port()
    metrics_port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"vllm-router-{port}.log"
    cmd = [
        str(ROUTER_BIN),
        "--worker-urls",
        *workers,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--policy",
        policy,
        "--prometheus-host",
        "127.0.0.1",
        "--prometheus-port",
        str(metrics_port),
        "--health-check-interval-secs",
        str(HEALTH_INTERVAL),
        "--health-failure-threshold",
        str(HEALTH_FAILURES),
        "--health-success-threshold",
        "1",
        "--worker-startup-check-interval",
        "1",
        "--log-level",
        "warning",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    atexit.register(kill_group, process)
    return RouterProc(list(workers), policy, port, metrics_port, process, log_path)


def start_router(
    workers: Sequence[str], *, policy: str = DEFAULT_POLICY, port: int | None = None
) -> RouterProc:
    """:func:`launch_router`, then wait until it serves."""
    router = launch_router(workers, policy=policy, port=port)
    router.wait_ready()
    return router
