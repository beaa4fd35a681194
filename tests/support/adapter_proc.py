"""Run the adapter as a real process (``python -m adapter``) for integration and client tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = REPO_ROOT / ".cache" / "logs"


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until ``GET /`` answers; fail with the log's tail if the process dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"adapter at {url} did not start:\n{tail}")


@contextlib.contextmanager
def running_adapter(
    vllm_url: str, *, env: Mapping[str, str] | None = None, args: list[str] | None = None
) -> Iterator[str]:
    """Start the adapter in front of ``vllm_url``; yield its base URL; stop it after."""
    with adapter_process(vllm_url, env=env, args=args) as (url, _):
        yield url


@contextlib.contextmanager
def adapter_process(
    vllm_url: str, *, env: Mapping[str, str] | None = None, args: list[str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like :func:`running_adapter`, and yield the process too."""
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"adapter-{port}.log"
    full_env = {**os.environ, "VLLM_URL": vllm_url, **(env or {})}
    cmd = [sys.executable, "-m", "adapter", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, *(args or [])],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
