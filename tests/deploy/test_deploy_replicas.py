"""Several replicas, as the scripts decide them: deploy/lib.sh's replica_settings (which compose
profiles and which VLLM_URL for the adapter) and docker/router-entrypoint.sh (which replicas the
router is given), run in bash and sh with a stand-in for vllm-router on PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT


def replica_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = (
        "source deploy/lib.sh && replica_settings && "
        'printf "%s|%s|" "${COMPOSE_PROFILES:-}" "${ADAPTER_VLLM_URL:-}" && '
        "replica_services | tr '\\n' ' '"
    )
    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "profiles", "url", "services"),
    [
        ({}, "", "", "vllm"),  # one replica: no router, no hop
        (
            {"VLLM_REPLICAS": "3"},
            "router,replica-2,replica-3",
            "http://vllm-router:8000",
            "vllm vllm-2 vllm-3",
        ),
        (
            {"VLLM_REPLICAS": "2", "COMPOSE_PROFILES": "apps"},
            "apps,router,replica-2",
            "http://vllm-router:8000",
            "vllm vllm-2",
        ),
        # Replicas on other hosts only: the router in front of them and the local one.
        ({"VLLM_WORKER_URLS": "http://gpu-b:8000"}, "router", "http://vllm-router:8000", "vllm"),
        ({"VLLM_WORKER_URLS": " , "}, "", "", "vllm"),  # an empty list is no list
    ],
)
def test_replica_settings(env: dict[str, str], profiles: str, url: str, services: str) -> None:
    proc = replica_settings(env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("|") == [profiles, url, services + " "]


@pytest.mark.parametrize("replicas", ["0", "9", "two"])
def test_replica_settings_refuses_a_count_out_of_range(replicas: str) -> None:
    proc = replica_settings({"VLLM_REPLICAS": replicas})
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"VLLM_REPLICAS must be a number from 1 to 8, got '{replicas}'"


def entrypoint(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "vllm-router"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    return subprocess.run(
        ["sh", str(ROOT / "docker" / "router-entrypoint.sh")],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def workers(args: list[str]) -> list[str]:
    start = args.index("--worker-urls") + 1
    end = next(i for i in range(start, len(args)) if args[i].startswith("--"))
    return args[start:end]


def test_the_router_is_given_the_local_replicas_then_the_other_hosts(tmp_path: Path) -> None:
    proc = entrypoint(
        tmp_path, {"VLLM_REPLICAS": "3", "VLLM_WORKER_URLS": "http://gpu-b:8000,http://gpu-c:8000"}
    )
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.splitlines()[1:]  # after its one line of what it runs
    assert workers(args) == [
        "http://vllm:8000",
        "http://vllm-2:8000",
        "http://vllm-3:8000",
        "http://gpu-b:8000",
        "http://gpu-c:8000",
    ]
    assert args[args.index("--policy") + 1] == "consistent_hash"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--health-check-interval-secs") + 1] == "5"


def test_router_workers_replace_the_list_and_the_policy_is_a_setting(tmp_path: Path) -> None:
    proc = entrypoint(
        tmp_path,
        {
            "ROUTER_WORKERS": "http://a:8000 http://b:8000",
            "VLLM_REPLICAS": "4",
            "ROUTER_POLICY": "cache_aware",
        },
    )
    args = proc.stdout.splitlines()[1:]
    assert workers(args) == ["http://a:8000", "http://b:8000"]
    assert args[args.index("--policy") + 1] == "cache_aware"


def test_a_replica_count_out_of_range_stops_the_router(tmp_path: Path) -> None:
    proc = entrypoint(tmp_path, {"VLLM_REPLICAS": "9"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert "VLLM_REPLICAS must be 1 to 8, got '9'" in proc.stderr
