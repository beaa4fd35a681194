"""A throwaway copy of the stack on the real Docker Engine: its settings, commands and cleanup.

Everything it starts carries its own compose project name and volume prefix, so cleaning up
removes its containers, networks and volumes and nobody else's. Host ports are free ones,
published on 127.0.0.1 only. Images (the stand-ins and the two built from the project's
Dockerfiles) are kept, so a second run reuses their layers.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.helpers import PHASES, ROOT, clean_env
from tests.support.net import free_ports, metric

STANDINS = Path(__file__).resolve().parent / "standins"
#: The test's Alertmanager receiver (standins/app.py --webhook), added to both phases.
WEBHOOK_FILE = Path(__file__).resolve().parent / "alert-webhook.yml"
# Phase 2's vLLM serves the real SmolLM2-135M (make models) from the mounted model folder,
# under Ollama's library name, which phase 1's Ollama pulls too: the services' configuration
# names one model in both phases.
TEXT_MODEL = "smollm2:135m"
VISION_MODELS = ["llava:7b", "nomic-embed-text"]
# What the text services ask, and what a right answer holds (app.py sends the question; the
# ner one with a JSON schema as its ``format``, as an extraction service would).
QUESTIONS = {
    "notes": ("What is the capital of France?", None),
    "ner": (
        "Ann is 30 years old. Give her name and age as JSON.",
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
    ),
}
# The services and the one call each makes (app.py): model, kind.
CALLS = {
    "notes": ("chat", TEXT_MODEL),
    "ner": ("chat", TEXT_MODEL),
    "doc-processor": ("vision", "llava:7b"),
    "ocr": ("vision", "llava:7b"),
    "rag": ("embed", "nomic-embed-text"),
    "client-rag": ("embed", "nomic-embed-text"),
}
PORT_VARS = {
    "notes": "NOTES_PORT",
    "doc-processor": "DOC_PROCESSOR_PORT",
    "rag": "RAG_PORT",
    "ocr": "OCR_PORT",
    "client-rag": "CLIENT_RAG_PORT",
    "ner": "NER_PORT",
    "frontend": "FRONTEND_PORT",
}
IMAGE_VARS = {name: var.replace("_PORT", "_IMAGE") for name, var in PORT_VARS.items()}


def run(
    cmd: list[str], env: Mapping[str, str], timeout: float = 900, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def build_standins() -> dict[str, str]:
    """Runs standins/build.sh; its NAME=IMAGE lines say which images the stack must use."""
    proc = run(["bash", str(STANDINS / "build.sh")], clean_env(), timeout=1800)
    return dict(line.split("=", 1) for line in proc.stdout.split() if "=" in line)


@dataclass
class Stack:
    images: dict[str, str]
    workdir: Path
    project: str = field(default_factory=lambda: f"llmstack-e2e-{secrets.token_hex(3)}")
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = ["OLLAMA_HOST_PORT", "VISION_OLLAMA_HOST_PORT", "VLLM_HOST_PORT"]
        names += ["VLLM_ROUTER_HOST_PORT"]
        names += ["PROMETHEUS_HOST_PORT", "ALERTMANAGER_HOST_PORT", "WEBHOOK_HOST_PORT"]
        names += list(PORT_VARS.values())
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        envdir = self.workdir / "env"
        envdir.mkdir()
        for name, (kind, model) in CALLS.items():
            lines = [f"STANDIN_NAME={name}", f"STANDIN_CALL={kind}", f"STANDIN_MODEL={model}"]
            if name in QUESTIONS:
                question, schema = QUESTIONS[name]
                lines.append(f"STANDIN_PROMPT={question}")
                if schema is not None:
                    lines.append(f"STANDIN_FORMAT={json.dumps(schema, separators=(',', ':'))}")
            (envdir / f"{name}.env").write_text("\n".join(lines) + "\n")
        (self.workdir / "empty.env").write_text("")
        self.env = clean_env(
            {
                "ENV_FILE": str(self.workdir / "empty.env"),
                "COMPOSE_PROJECT_NAME": self.project,
                "VOLUME_PREFIX": self.project,
                "STACK_MODE": "cpu",
                "COMPOSE_PROFILES": "apps,monitoring",
                "EXTRA_COMPOSE_FILES": str(WEBHOOK_FILE),
                "PROMETHEUS_IMAGE": self.images["PROMETHEUS_IMAGE"],
                "ALERTMANAGER_IMAGE": self.images["ALERTMANAGER_IMAGE"],
                "BLACKBOX_IMAGE": self.images["BLACKBOX_IMAGE"],
                "WEBHOOK_IMAGE": self.images["APP_IMAGE"],
                "OLLAMA_BIND": "127.0.0.1",
                "APPS_BIND": "127.0.0.1",
                "APPS_ENV_DIR": str(envdir),
                "OLLAMA_IMAGE": self.images["OLLAMA_IMAGE"],
                "VLLM_CPU_BASE_IMAGE": self.images["VLLM_CPU_BASE_IMAGE"],
                "ADAPTER_PYTHON_VERSION": self.images["ADAPTER_PYTHON_VERSION"],
                "ADAPTER_IMAGE": "llmstack-e2e/adapter:test",
                "VLLM_IMAGE": "llmstack-e2e/vllm-cpu:test",
                "ROUTER_IMAGE": "llmstack-e2e/vllm-router:test",
                **{var: self.images["APP_IMAGE"] for var in IMAGE_VARS.values()},
                # SmolLM2-135M, prepared offline by scripts/prepare-models.sh (make models).
                "CPU_MODELS_DIR": str(ROOT / ".cache" / "models"),
                "MODEL_NAME": "/models/smollm2-135m",
                "SERVED_MODEL_NAME": TEXT_MODEL,
                "OLLAMA_TEXT_MODELS": TEXT_MODEL,
                "HF_HUB_OFFLINE": "1",
                "MAX_MODEL_LEN": "2048",
                "VLLM_CPU_KVCACHE_SPACE": "1",
                "VLLM_EXTRA_ARGS": "--dtype float32 --enforce-eager --max-num-seqs 8",
                "VLLM_SHM_SIZE": "1gb",
                "VLLM_WAIT_TIMEOUT": "420",
                "WAIT_TIMEOUT": "240",
                "SMOKE_TIMEOUT": "60",
                **{k: str(v) for k, v in self.ports.items()},
            }
        )

    # ---- commands ----------------------------------------------------------------------
    def switch(
        self, *args: str, extra: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra or {})}
        return run(["bash", str(ROOT / "deploy" / "switch.sh"), *args], env, check=False)

    def compose(self, phase: str, *args: str, timeout: float = 900) -> str:
        cpu = ROOT / "compose" / f"cpu.{phase}.yml"
        cmd = ["docker", "compose", "--env-file", self.env["ENV_FILE"], "-p", self.project]
        cmd += ["-f", str(PHASES[phase]), "-f", str(cpu), "-f", str(WEBHOOK_FILE), *args]
        return run(cmd, self.env, timeout=timeout).stdout

    def volume(self, name: str) -> str:
        return f"{self.project}-{name}"

    def in_volume(self, volume: str, script: str) -> str:
        """A shell script in a throwaway container with the volume on /v."""
        cmd = ["docker", "run", "--rm", "-v", f"{self.volume(volume)}:/v"]
        cmd += [self.images["BASE_IMAGE"]]
        return run([*cmd, "sh", "-c", script], self.env).stdout

    def container_ids(self, service: str) -> list[str]:
        """This project's containers of the service, running or not."""
        cmd = [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
        ]
        cmd += ["--filter", f"label=com.docker.compose.service={service}"]
        return run(cmd, self.env).stdout.split()

    def container(self, service: str) -> dict[str, Any]:
        ids = self.container_ids(service)
        assert len(ids) == 1, f"{service}: containers {ids}"
        info: list[dict[str, Any]] = json.loads(run(["docker", "inspect", ids[0]], self.env).stdout)
        return info[0]

    def logs(self, service: str) -> str:
        out = [run(["docker", "logs", i], self.env) for i in self.container_ids(service)]
        return "".join(p.stdout + p.stderr for p in out)

    # ---- endpoints (loopback only) -----------------------------------------------------
    def url(self, port_var: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_var]}"

    def app_call(self, service: str) -> dict[str, Any]:
        resp = httpx.get(f"{self.url(PORT_VARS[service])}/call", timeout=120)
        body: dict[str, Any] = resp.json()
        assert resp.status_code == 200, (service, body)
        return body

    def app_health(self, service: str) -> int:
        path = "/" if service == "frontend" else "/health"
        return httpx.get(f"{self.url(PORT_VARS[service])}{path}", timeout=10).status_code

    def vllm_metric(self, name: str) -> float:
        return metric(self.url("VLLM_HOST_PORT"), name)

    def prometheus(self, path: str, **params: str) -> Any:
        """The running Prometheus's HTTP API (``/api/v1/<path>``): its ``data``."""
        resp = httpx.get(f"{self.url('PROMETHEUS_HOST_PORT')}/api/v1/{path}", params=params)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series."""
        result: list[dict[str, Any]] = self.prometheus("query", query=expr)["result"]
        return result

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, Any]]:
        """The running Prometheus's alerts of that name in that state (pending, firing)."""
        found: list[dict[str, Any]] = self.prometheus("alerts")["alerts"]
        return [a for a in found if a["labels"]["alertname"] == name and a["state"] == state]

    def delivered(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager has sent the test's webhook, oldest first."""
        payloads = httpx.get(f"{self.url('WEBHOOK_HOST_PORT')}/alerts", timeout=10).json()
        return [alert for payload in payloads for alert in payload["alerts"]]

    def crash(self, service: str) -> None:
        """SIGKILL to the service's main process from outside, as the kernel's OOM killer or
        a fault would: the engine sees a crash and applies the restart policy (``docker kill``
        would count as a manual stop). A helper container in the host's PID namespace sends it,
        so the test needs only the Docker socket, not root."""
        pid = self.container(service)["State"]["Pid"]
        assert pid > 0, f"{service} is not running"
        cmd = ["docker", "run", "--rm", "--pid=host", "--network=none", self.images["BASE_IMAGE"]]
        run([*cmd, "bash", "-c", f"kill -KILL {pid}"], self.env)

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    # ---- cleanup ---------------------------------------------------------------------
    def down(self) -> None:
        """Removes this project's containers, networks and volumes (and nothing else)."""
        for phase in PHASES:
            self.compose(phase, "down", "--volumes", "--remove-orphans", "--timeout", "5")
        names = run(
            ["docker", "volume", "ls", "-q", "--filter", f"name=^{self.project}-"], self.env
        ).stdout.split()
        if names:
            run(["docker", "volume", "rm", *names], self.env)

    def leftovers(self) -> list[str]:
        """This project's containers, networks and volumes still on the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        found = run(["docker", "ps", "-aq", "--filter", label], self.env).stdout.split()
        found += run(
            ["docker", "network", "ls", "-q", "--filter", f"name={self.project}_"], self.env
        ).stdout.split()
        found += run(
            ["docker", "volume", "ls", "-q", "--filter", f"name=^{self.project}-"], self.env
        ).stdout.split()
        return found


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def engine_answers() -> bool:
    proc = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    return proc.returncode == 0
