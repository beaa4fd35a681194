"""Several worker processes behave as one server: /metrics adds every worker up.

Without that, each scrape would show whichever worker answered it: 40 requests spread
over two workers would read as two different totals.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.adapter_proc import REPO_ROOT, free_port, running_adapter


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[str]:
    """The benchmark's fake vLLM (raw asyncio) as a process."""
    port = free_port()
    log = REPO_ROOT / ".cache" / "logs" / f"fake-upstream-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.fake_upstream",
                "--port",
                str(port),
                "--chunks",
                "5",
            ],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_two_workers_answer_and_report_metrics_together(fake_upstream: str) -> None:
    with running_adapter(fake_upstream, args=["--workers", "2"]) as url:
        body = {
            "model": "tiny-llm",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
        }
        with httpx.Client(timeout=30) as c:
            for _ in range(40):
                # a new connection each time, so both workers get some
                assert httpx.post(f"{url}/api/chat", json=body, timeout=30).status_code == 200
            totals = set()
            for _ in range(6):
                text = c.get(f"{url}/metrics", headers={"Connection": "close"}).text
                match = re.search(
                    r'ollama_adapter_requests_total\{endpoint="/api/chat",status="200"\} (\S+)',
                    text,
                )
                assert match, text[:2000]
                totals.add(float(match.group(1)))
    assert totals == {40.0}
