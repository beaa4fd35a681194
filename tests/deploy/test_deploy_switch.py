"""deploy/switch.sh and deploy/smoke.sh against a fake `docker` and `curl` that record calls."""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT, clean_env, find_compose_binary
from tests.support.net import free_port

FAKES = Path(__file__).parent / "fakes"
SWITCH = ROOT / "deploy" / "switch.sh"
SMOKE = ROOT / "deploy" / "smoke.sh"
P1 = str(ROOT / "docker-compose-separated.yml")
P2 = str(ROOT / "docker-compose.vllm.yml")
PHASE1_RUNNING = ["ollama", "ollama-init", "vision-ollama"]
PHASE2_RUNNING = ["adapter", "vision-ollama", "vllm"]


@dataclass
class Result:
    rc: int
    out: str
    calls: list[list[str]]
    urls: list[str]
    running: list[str]

    def compose_calls(self) -> list[tuple[str, str, list[str]]]:
        """(phase file, subcommand, rest) for each `docker compose` call."""
        found = []
        for argv in self.calls:
            if argv[:1] != ["compose"]:
                continue
            f = argv[argv.index("-f") + 1]
            i = argv.index("-f") + 2
            while argv[i] == "-f":
                i += 2
            found.append((f, argv[i], argv[i + 1 :]))
        return found

    def index(self, file: str, sub: str, service: str) -> int:
        for n, (f, s, rest) in enumerate(self.compose_calls()):
            if f == file and s == sub and service in rest:
                return n
        raise AssertionError(f"no `{sub} {service}` on {Path(file).name}: {self.compose_calls()}")

    def has(self, file: str, sub: str, service: str) -> bool:
        try:
            self.index(file, sub, service)
        except AssertionError:
            return False
        return True


class Stack:
    def __init__(self, tmp: Path, config_dir: Path, fakes: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.state = tmp / "state.json"
        self.env = clean_env(
            {
                "PATH": f"{fakes}:{clean_env()['PATH']}",
                "FAKE_DOCKER_LOG": str(tmp / "docker.log"),
                "FAKE_DOCKER_STATE": str(self.state),
                "FAKE_CURL_LOG": str(tmp / "curl.log"),
                "REAL_COMPOSE": str(find_compose_binary()),
                "OLLAMA_HOST_PORT": str(self.port),
                "ENV_FILE": str(tmp / "empty.env"),
                "FAKE_CONFIG_DIR": str(config_dir),
            }
        )
        (tmp / "empty.env").write_text("")
        for log in ("docker.log", "curl.log"):
            (tmp / log).write_text("")

    def running(self, services: list[str]) -> None:
        self.state.write_text("".join(f"{s}\n" for s in services))

    def run(self, *args: str, script: Path = SWITCH, **env: str) -> Result:
        proc = subprocess.run(
            ["bash", str(script), *args],
            capture_output=True,
            text=True,
            env={**self.env, **env},
            cwd=ROOT,
            timeout=60,
        )
        calls = [line.split("\t") for line in (self.tmp / "docker.log").read_text().splitlines()]
        urls = (self.tmp / "curl.log").read_text().splitlines()
        running = self.state.read_text().split() if self.state.exists() else []
        return Result(proc.returncode, proc.stdout + proc.stderr, calls, urls, running)


@pytest.fixture(scope="session")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`config --services` of each phase, from the real binary, for the fake to replay."""
    out = tmp_path_factory.mktemp("compose-config")
    empty = out / "empty.env"
    empty.write_text("")
    for file in (P1, P2):
        for kind, profiles in (("core", []), ("apps", ["--profile", "apps"])):
            proc = subprocess.run(
                [
                    find_compose_binary(),
                    "--env-file",
                    empty,
                    "-f",
                    file,
                    *profiles,
                    "config",
                    "--services",
                ],
                capture_output=True,
                text=True,
                check=True,
                env=clean_env(),
            )
            (out / f"{Path(file).name}.{kind}").write_text(proc.stdout)
    return out


@pytest.fixture(scope="session")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fakes, executable whatever mode the checkout gave them; first on PATH."""
    out = tmp_path_factory.mktemp("fake-bin")
    for name in ("docker", "curl"):
        shutil.copy(FAKES / name, out / name)
        (out / name).chmod(0o755)
    found = subprocess.run(
        ["bash", "-c", "command -v docker curl"],
        capture_output=True,
        text=True,
        env={"PATH": f"{out}:/usr/bin:/bin"},
    )
    assert found.stdout.split() == [str(out / "docker"), str(out / "curl")]
    return out


@pytest.fixture
def stack(tmp_path: Path, config_dir: Path, fake_bin: Path) -> Stack:
    return Stack(tmp_path, config_dir, fake_bin)


def test_up_vllm_from_phase1_in_order(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", FAKE_CONFIG_DIR="")  # the real `docker compose config` throughout
    assert r.rc == 0, r.out
    # validation first, then free the port, then vLLM, then the adapter, then the rest
    assert [c[1] for c in r.compose_calls()[:2]] == ["config", "config"]
    stop = r.index(P1, "stop", "ollama")
    assert r.index(P1, "rm", "ollama") > stop
    up_vllm = r.index(P2, "up", "vllm")
    up_adapter = r.index(P2, "up", "adapter")
    assert stop < up_vllm < up_adapter
    final = r.compose_calls()[-1]
    assert final[0] == P2 and final[1] == "up" and "--remove-orphans" in final[2]
    assert "--wait" in final[2]
    assert not r.has(P1, "up", "ollama")
    assert sorted(r.running) == PHASE2_RUNNING
    # the smoke test ran against the adapter and vLLM
    assert f"http://127.0.0.1:{stack.port}/api/generate" in r.urls
    assert "http://127.0.0.1:8000/health" in r.urls
    for msg in (
        "[1/6] validating",
        "stopping ollama ollama-init",
        "starting vLLM",
        "smoke test (phase 2)",
        "phase 2 (vLLM behind the adapter) is live",
    ):
        assert msg in r.out


def test_up_vllm_waits_for_vllm_up_to_its_own_timeout(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", VLLM_WAIT_TIMEOUT="3", FAKE_DOCKER_STARTING="vllm")
    assert r.rc == 2, r.out
    assert "vllm is still 'starting' after 3s" in r.out
    assert not r.has(P2, "up", "adapter")
    # vLLM is started without compose's --wait: the switch watches the container itself
    assert "--wait" not in r.compose_calls()[r.index(P2, "up", "vllm")][2]


def test_vllm_unhealthy_rolls_back(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", FAKE_DOCKER_UNHEALTHY="vllm")
    assert r.rc == 2, r.out
    assert "PHASE 2 FAILED at step 3/6" in r.out
    assert "vllm stopped while starting (restarting, restarted 2 times, last exit code 1)" in r.out
    assert "vLLM did not become healthy" in r.out
    assert "ROLLING BACK to phase 1" in r.out
    assert "ROLLED BACK: phase 1 is serving port" in r.out
    assert not r.has(P2, "up", "adapter"), "the adapter must not take the port after vLLM failed"
    # rollback: phase-2 gateway stopped before the text Ollama starts again
    assert r.index(P2, "stop", "vllm") < r.index(P1, "up", "ollama")
    assert r.has(P1, "run", "ollama-init")
    assert "ollama" in r.running and "vllm" not in r.running and "adapter" not in r.running
    assert f"http://127.0.0.1:{stack.port}/api/generate" in r.urls  # phase 1 smoke test


def test_smoke_failure_rolls_back(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    # vLLM's own port only exists in phase 2, so phase 2's smoke test fails and phase 1's passes
    r = stack.run("up-vllm", FAKE_CURL_FAIL="127.0.0.1:8000/")
    assert r.rc == 2, r.out
    assert "FAIL  vLLM /health" in r.out
    assert "phase 2 smoke test failed" in r.out
    assert "ROLLED BACK" in r.out
    assert sorted(r.running) == ["ollama", "vision-ollama"]


def test_rollback_failure_is_reported(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", FAKE_DOCKER_UNHEALTHY="vllm,ollama")
    assert r.rc == 3, r.out
    assert "ROLLBACK FAILED too" in r.out


def test_no_rollback_leaves_phase2(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", "--no-rollback", FAKE_DOCKER_UNHEALTHY="adapter")
    assert r.rc == 1, r.out
    assert "--no-rollback" in r.out and "ROLLING BACK" not in r.out
    assert not r.has(P1, "up", "ollama")


def test_rollback_from_phase2(stack: Stack) -> None:
    stack.running(PHASE2_RUNNING)
    r = stack.run("rollback")
    assert r.rc == 0, r.out
    stop = r.index(P2, "stop", "adapter")
    assert stop < r.index(P1, "up", "ollama")
    assert (
        r.index(P1, "up", "ollama")
        < r.index(P1, "run", "ollama-init")
        < r.index(P1, "run", "vision-ollama-init")
    )
    assert sorted(r.running) == ["ollama", "vision-ollama"]
    assert "phase 1 (all Ollama) is live" in r.out
    assert "http://127.0.0.1:8000/health" not in r.urls


def test_refuses_when_port_taken_by_an_outsider(stack: Stack) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", stack.port))
        s.listen()
        r = stack.run("up-vllm")
    assert r.rc == 1, r.out
    assert f"port {stack.port} is still in use" in r.out
    assert "nothing was changed" in r.out
    assert not any(sub in ("up", "stop", "rm", "run") for _, sub, _ in r.compose_calls())


def test_conflict_is_resolved_before_starting(stack: Stack) -> None:
    stack.running(["ollama", "adapter", "vllm", "vision-ollama"])
    status = stack.run("status")
    assert status.rc == 1 and "BOTH phases" in status.out
    r = stack.run("up-vllm")
    assert r.rc == 0, r.out
    assert r.index(P1, "stop", "ollama") < r.index(P2, "up", "adapter")
    assert "ollama" not in r.running


def test_rollback_validates_phase1_only(stack: Stack) -> None:
    # a broken phase-2 file (maybe the reason for the rollback) must not block it
    stack.running(PHASE2_RUNNING)
    r = stack.run("rollback", FAKE_CONFIG_DIR="")
    assert r.rc == 0, r.out
    validated = [f for f, sub, rest in r.compose_calls() if sub == "config" and "--quiet" in rest]
    assert validated == [P1]


def test_status_reports_phase(stack: Stack) -> None:
    stack.running(PHASE2_RUNNING)
    assert "phase 2 (vLLM behind the adapter) is running" in stack.run("status").out
    stack.running(PHASE1_RUNNING)
    assert "phase 1 (all Ollama) is running" in stack.run("status").out
    stack.running([])
    assert "no phase is running" in stack.run("status").out


def test_invalid_compose_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  notes:\n    ports: [{published: nope}]\n")
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", EXTRA_COMPOSE_FILES=str(broken), FAKE_CONFIG_DIR="")
    assert r.rc == 1, r.out
    assert "is invalid" in r.out and "nothing was changed" in r.out
    assert [sub for _, sub, _ in r.compose_calls()] == ["config"]
    assert sorted(r.running) == PHASE1_RUNNING


def test_with_apps_starts_and_checks_the_services(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm", "--with-apps", FAKE_CONFIG_DIR="")
    assert r.rc == 0, r.out
    final = r.compose_calls()[-1][2]
    assert {"notes", "ocr", "frontend", "adapter"} <= set(final)
    assert "vision-ollama-init" not in final  # one-shot jobs stay out of `up --wait`
    assert "http://127.0.0.1:8100/health" in r.urls and "http://127.0.0.1:3000/" in r.urls
    assert "PASS  service ner" in r.out


def test_env_file_settings_are_used(stack: Stack, tmp_path: Path) -> None:
    env_file = tmp_path / "stack.env"
    port = free_port()
    env_file.write_text(
        f"# ops settings\nOLLAMA_HOST_PORT={port}\nSERVED_MODEL_NAME=llama2:7b llama2  # tags\n"
    )
    stack.env.pop("OLLAMA_HOST_PORT")
    stack.running(PHASE1_RUNNING)
    r = stack.run(
        "up-vllm", ENV_FILE=str(env_file), FAKE_CURL_MODELS="llama2:7b llava:7b nomic-embed-text"
    )
    assert r.rc == 0, r.out
    assert "model: llama2:7b" in r.out and f"port {port} is free" in r.out
    assert f"http://127.0.0.1:{port}/api/generate" in r.urls
    assert all(c[c.index("--env-file") + 1] == str(env_file) for c in r.calls if c[0] == "compose")


def test_smoke_reports_failures(stack: Stack) -> None:
    r = stack.run("vllm", script=SMOKE, FAKE_CURL_FAIL="/api/generate")
    assert r.rc == 1
    assert "FAIL  " in r.out and "/api/generate" in r.out
    assert "smoke test result: 8 passed, 1 failed" in r.out


def test_smoke_needs_the_model(stack: Stack) -> None:
    r = stack.run(
        "separated", script=SMOKE, FAKE_CURL_MODELS="llama3:8b llava:7b nomic-embed-text:latest"
    )
    assert r.rc == 1
    assert "FAIL  " in r.out and "lists qwen2.5:7b" in r.out


def test_smoke_phase1_passes(stack: Stack) -> None:
    r = stack.run("separated", script=SMOKE, SMOKE_APPS="1")
    assert r.rc == 0, r.out
    assert not any(":8000" in u for u in r.urls)
    assert len([u for u in r.urls if u.endswith("/health")]) == 6


@pytest.mark.parametrize("by_flag", [True, False])
def test_cpu_mode_adds_its_override_to_every_compose_call(stack: Stack, by_flag: bool) -> None:
    stack.running(PHASE1_RUNNING)
    models = "qwen2.5:0.5b llava:7b nomic-embed-text:latest"
    if by_flag:
        r = stack.run("--cpu", "up-vllm", FAKE_CURL_MODELS=models)
    else:
        r = stack.run("up-vllm", STACK_MODE="cpu", FAKE_CURL_MODELS=models)
    assert r.rc == 0, r.out
    compose = [argv for argv in r.calls if argv[:1] == ["compose"]]
    assert compose
    for argv in compose:
        files = [argv[i + 1] for i, a in enumerate(argv) if a == "-f"]
        phase = "vllm" if files[0] == P2 else "separated"
        assert files == [files[0], str(ROOT / "compose" / f"cpu.{phase}.yml")], argv
    # the smoke test asked for the CPU mode's default model (deploy/lib.sh)
    assert "smoke test, phase: vllm, model: qwen2.5:0.5b" in r.out


def test_gpu_mode_is_the_default_and_adds_nothing(stack: Stack) -> None:
    stack.running(PHASE1_RUNNING)
    r = stack.run("up-vllm")
    assert r.rc == 0, r.out
    for argv in r.calls:
        if argv[:1] == ["compose"]:
            assert [a for a in argv if "compose/cpu." in a] == []
    assert "model: qwen2.5:7b" in r.out


def test_an_unknown_stack_mode_is_refused_before_anything_runs(stack: Stack) -> None:
    r = stack.run("up-vllm", STACK_MODE="tpu")
    assert r.rc == 1 and "STACK_MODE must be gpu or cpu, not 'tpu'" in r.out
    assert r.calls == []
