"""The ``ollama`` npm client (ollama-js 0.6.4), run by node's built-in test runner against the live
adapter: see js/client.test.mjs. ``make test`` installs it with ``npm ci``; when node_modules is
missing this test runs ``npm ci`` itself, so a plain ``pytest`` works too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

JS_DIR = Path(__file__).parent / "js"


def ensure_installed() -> None:
    if (JS_DIR / "node_modules" / "ollama" / "package.json").exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to install the ollama npm client (tests/clients/js)"
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"


def test_ollama_js_against_the_adapter(live_adapter: str) -> None:
    """list, chat (streaming and not), generate and pull streams that end with ``done: true`` /
    ``status: "success"`` (else ollama-js throws "Did not receive done or success response in
    stream."), show, ps, and a 404 ``ResponseError``."""
    node = shutil.which("node")
    assert node, "node is needed to run the ollama npm client's tests"
    ensure_installed()
    done = subprocess.run(
        [node, "--test"],
        cwd=JS_DIR,
        env={**os.environ, "OLLAMA_HOST": live_adapter, "NODE_NO_WARNINGS": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"node --test failed ({done.returncode}):\n{output}"
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout, output
