"""Open WebUI, the most used Ollama client, against the adapter, as a person uses it.

Open WebUI 0.12.4 from its wheel (``scripts/setup-webui.sh``: ``.venv-webui``) points at the
live adapter (``OLLAMA_BASE_URL``), which serves the real SmolLM2 among its models; Debian's
Chromium, headless and driven by its own driver (``browse.py``), opens the page, finds
``smollm2:135m`` in the model selector, asks the France question in the chat box and reads
Paris in the page. Open WebUI sends its tools with a chat: before SmolLM2 was served with
the library's tool template, the page said ``"smollm2:135m" does not support tools``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-webui"
MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def open_webui(live_adapter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Open WebUI serving on loopback, in front of the adapter; its base URL."""
    if not (VENV / "bin" / "open-webui").exists():
        raise AssertionError("no Open WebUI: run scripts/setup-webui.sh (make test does)")
    (port,) = free_ports(1)
    data = tmp_path_factory.mktemp("open-webui")
    env = {
        **os.environ,
        "DATA_DIR": str(data),
        "OLLAMA_BASE_URL": live_adapter,
        "ENABLE_OPENAI_API": "False",
        "WEBUI_AUTH": "False",  # one person, no sign-up page
        "WEBUI_SECRET_KEY": "test-only",
        "DEFAULT_MODELS": MODEL,
        # The answer must be stable: the question is asked at temperature 0.
        "DEFAULT_MODEL_PARAMS": json.dumps({"temperature": 0}),
        # Nothing from the network: no hub, no update check, no local embedding model.
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "BYPASS_EMBEDDING_AND_RETRIEVAL": "true",
        "RAG_EMBEDDING_ENGINE": "ollama",
        "ANONYMIZED_TELEMETRY": "false",
    }
    log = (data / "open-webui.log").open("wb")
    proc = subprocess.Popen(
        [str(VENV / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=data,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (data / "open-webui.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"Open WebUI did not start:\n{tail}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_open_webui_lists_the_model_and_answers_in_the_page(
    open_webui: str, tmp_path: Path
) -> None:
    shot = tmp_path / "open-webui.png"
    proc = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            str(ROOT / "tests" / "webui" / "browse.py"),
            open_webui,
            MODEL,
            "What is the capital of France?",
            "Paris",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    said = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    assert proc.returncode == 0, f"{said or proc.stderr[-3000:]} (screenshot {shot})"
    assert said["listed"] is True
    assert "Paris" in str(said["answer"]) and "does not support" not in str(said["answer"])
    assert shot.stat().st_size > 0
