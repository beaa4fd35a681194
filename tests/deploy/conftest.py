"""Fixtures for the deployment tests: the real Compose v2 binary and resolved configs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import (
    PHASES,
    ROOT,
    ResolvedConfig,
    RunCompose,
    clean_env,
    find_compose_binary,
)


@pytest.fixture(scope="session")
def compose_bin() -> Path:
    binary = find_compose_binary()
    out = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("2."), out.stdout
    return binary


@pytest.fixture(scope="session")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # --env-file replaces the project's .env, so an operator's .env cannot leak into tests.
    path = tmp_path_factory.mktemp("env") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="session")
def run_compose(compose_bin: Path, empty_env_file: Path) -> RunCompose:
    def run(
        *files: Path,
        args: list[str],
        profiles: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        env_file: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        cmd: list[str | Path] = [compose_bin, "--env-file", env_file or empty_env_file]
        for f in files:
            cmd += ["-f", f]
        for p in profiles or []:
            cmd += ["--profile", p]
        cmd += args
        proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(env), cwd=ROOT)
        if check:
            assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stderr}"
        return proc

    return run


@pytest.fixture(scope="session")
def resolved(run_compose: RunCompose) -> ResolvedConfig:
    cache: dict[tuple[str, bool], dict[str, Any]] = {}

    def get(phase: str, apps: bool = True) -> dict[str, Any]:
        key = (phase, apps)
        if key not in cache:
            proc = run_compose(
                PHASES[phase],
                args=["config", "--format", "json"],
                profiles=["apps", "monitoring"] if apps else None,
            )
            cache[key] = json.loads(proc.stdout)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def bash() -> str:
    path = shutil.which("bash")
    assert path, "bash is required"
    return path
