"""make run's script refuses a second start at once: one line naming the busy port and the
process holding it, nothing started, nothing of the running one touched."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.support.net import free_ports

ROOT = Path(__file__).resolve().parents[2]


def test_a_busy_port_is_refused_at_once_in_one_line(tmp_path: Path) -> None:
    adapter_port, vllm_port, embed_port = free_ports(3)
    with socket.socket() as held:  # "the running one": this test's own process listens
        held.bind(("127.0.0.1", adapter_port))
        held.listen()
        env = {
            **os.environ,
            "ADAPTER_PORT": str(adapter_port),
            "VLLM_PORT": str(vllm_port),
            "EMBED_PORT": str(embed_port),
        }
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "run-local.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert f"port {adapter_port} is already in use by pid {os.getpid()}" in lines[0]
    assert "Nothing was started" in lines[0]
    assert "setting up" not in proc.stdout + proc.stderr  # refused before any setup step


def test_the_embedding_vllms_port_follows_vllm_port() -> None:
    """Every port make run opens follows one setting: the second vLLM (embeddings) listens on
    VLLM_PORT + 1 unless EMBED_PORT says otherwise, and it is checked before anything starts."""
    env = {k: v for k, v in os.environ.items() if k != "EMBED_PORT"}
    for adapter_port, vllm_port in (free_ports(2) for _ in range(20)):
        with socket.socket() as held:
            try:
                held.bind(("127.0.0.1", vllm_port + 1))
            except OSError:
                continue  # taken by someone else: another pair
            held.listen()
            env.update(ADAPTER_PORT=str(adapter_port), VLLM_PORT=str(vllm_port))
            proc = subprocess.run(
                ["bash", str(ROOT / "scripts" / "run-local.sh")],
                env={**env, "VLLM_MODEL": "smollm2"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert proc.returncode == 1
        (line,) = proc.stdout.splitlines()
        assert f"port {vllm_port + 1} is already in use by pid {os.getpid()}" in line
        return
    raise AssertionError("no pair of free ports with the next one free")
