"""The whole switch on a real Docker Engine: phase 1 -> phase 2 -> rollback, in CPU mode.

The images are built from the project's Dockerfiles, unchanged, on stand-in base images made
from Debian's packages (no registry is reachable here); the vLLM is the real one (its CPU build,
serving the real SmolLM2-135M from the mounted model folder, so the services' answers are
checked for meaning); the Ollamas and the existing services are stand-ins
(``standins/ollama.py``, ``standins/app.py``) configured as the real ones are. Every step goes
through ``deploy/switch.sh``, as an operator's would. The tests run in file order and share one
stack: each starts from the phase the one before left.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.e2e.stack import CALLS, TEXT_MODEL, VISION_MODELS, Stack, build_standins
from tests.deploy.helpers import APPS

STANDIN = "ollama stand-in"
LONG_STORY = {
    "type": "object",
    "properties": {"story": {"type": "string", "minLength": 4000}},
    "required": ["story"],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(images=build_standins(), workdir=tmp_path_factory.mktemp("stack"))
    try:
        # a. Both images from the project's Dockerfiles, unchanged, through the CPU mode.
        stack.compose("vllm", "build", "vllm", "adapter", timeout=1800)
        yield stack
    finally:
        stack.down()


def tail(proc: subprocess.CompletedProcess[str]) -> str:
    """What an operator would read first: the switch's warnings, failed checks, the last lines."""
    out = proc.stdout + proc.stderr
    said = [
        line
        for line in out.splitlines()
        if line.startswith(("!!", "FAIL", "      ")) or " | " in line
    ]
    return "\n".join([*said[:60], "--- last lines:", out[-2500:]])


def downloads(stack: Stack, volume: str) -> list[str]:
    return stack.in_volume(volume, "cat /v/downloads.log 2>/dev/null || true").splitlines()


def assert_answered_by_the_ollamas(stack: Stack) -> None:
    """Phase 1: every service's call is answered by an Ollama, at the URL it is configured with."""
    assert httpx.get(stack.url("OLLAMA_HOST_PORT"), timeout=10).text == "Ollama is running"
    for service in APPS:
        assert stack.app_health(service) == 200, service
    for service, (kind, model) in CALLS.items():
        body = stack.app_call(service)
        host = "ollama" if kind == "chat" else "vision-ollama"
        path = "embed" if kind == "embed" else "chat"
        assert (body["url"], body["model"]) == (f"http://{host}:11434/api/{path}", model)
        if kind == "embed":
            assert body["dimensions"] == 16  # the stand-in's vectors
        else:
            assert body["content"].startswith(STANDIN), body


def test_phase1_starts_through_switch(stack: Stack) -> None:
    """b. The text Ollama and the Vision Ollama answer; the services reach them as configured."""
    proc = stack.switch("rollback", "--with-apps")
    assert proc.returncode == 0, tail(proc)
    assert "phase 1 (all Ollama) is live" in proc.stdout
    tags = httpx.get(f"{stack.url('OLLAMA_HOST_PORT')}/api/tags", timeout=10).json()
    assert [m["name"] for m in tags["models"]] == [TEXT_MODEL]
    vision = httpx.get(f"{stack.url('VISION_OLLAMA_HOST_PORT')}/api/tags", timeout=10).json()
    assert sorted(m["name"] for m in vision["models"]) == sorted(
        n if ":" in n else f"{n}:latest" for n in VISION_MODELS
    )
    assert_answered_by_the_ollamas(stack)
    stack.in_volume("ollama-models", "echo written-in-phase-1 > /v/e2e-marker")
    assert [line.split()[-1] for line in downloads(stack, "ollama-models")] == [TEXT_MODEL]
    status = stack.switch("status")
    assert status.returncode == 0 and "phase 1 (all Ollama) is running" in status.stdout


def test_up_vllm_serves_the_same_calls_from_vllm(stack: Stack) -> None:
    """c. vLLM and the adapter become healthy; the services' calls are answered by vLLM (its own
    counters move), and the vision calls still reach the Vision Ollama."""
    proc = stack.switch("up-vllm", "--with-apps")
    assert proc.returncode == 0, tail(proc)
    assert "phase 2 (vLLM behind the adapter) is live" in proc.stdout
    for service in ("vllm", "adapter"):
        assert stack.container(service)["State"]["Health"]["Status"] == "healthy"
    for service in APPS:
        assert stack.app_health(service) == 200, service

    done = stack.vllm_metric("vllm:request_success_total")
    tokens = stack.vllm_metric("vllm:generation_tokens_total")
    answers = {}
    for service in ("notes", "ner"):
        body = stack.app_call(service)
        assert body["url"] == "http://ollama:11434/api/chat"  # unchanged configuration
        answers[service] = body["content"]
    # Answered by SmolLM2, right: the notes service's question, and the ner service's
    # extraction under its schema, compact (the image's vLLM runs with disable_any_whitespace).
    assert "Paris" in answers["notes"], answers
    assert answers["ner"] == '{"name":"Ann","age":30}', answers
    assert stack.vllm_metric("vllm:request_success_total") == done + 2
    assert stack.vllm_metric("vllm:generation_tokens_total") > tokens

    vision_log = stack.logs("vision-ollama")
    for service in ("doc-processor", "ocr"):
        assert stack.app_call(service)["content"].startswith(STANDIN)
    for service in ("rag", "client-rag"):
        assert stack.app_call(service)["dimensions"] == 16
    # Embeddings sent to OLLAMA_URL (the adapter now) are forwarded to the Vision Ollama.
    resp = httpx.post(
        f"{stack.url('OLLAMA_HOST_PORT')}/api/embed",
        json={"model": "nomic-embed-text", "input": "a document"},
        timeout=30,
    )
    assert resp.status_code == 200 and len(resp.json()["embeddings"][0]) == 16
    new = stack.logs("vision-ollama")[len(vision_log) :]
    assert new.count("POST /api/embed") == 3 and new.count("POST /api/chat") == 2
    assert stack.vllm_metric("vllm:request_success_total") == done + 2

    # A derived model made through the adapter lands in its named volume: the image's user
    # (UID 10001) can write there on a real engine.
    resp = httpx.post(
        f"{stack.url('OLLAMA_HOST_PORT')}/api/create",
        json={
            "model": "notes-bot",
            "from": TEXT_MODEL,
            "system": "You write notes.",
            "stream": False,
        },
        timeout=30,
    )
    assert resp.status_code == 200 and resp.json()["status"] == "success", resp.text
    modelfiles = stack.in_volume("adapter-models", "cat /v/*.modelfile")
    assert f"FROM {TEXT_MODEL}" in modelfiles and "You write notes." in modelfiles

    status = stack.switch("status")
    assert "phase 2 (vLLM behind the adapter) is running" in status.stdout


def test_compose_stop_lets_an_open_stream_finish(stack: Stack) -> None:
    """f. `docker compose stop` on the adapter: the stream already open runs to its end inside
    the grace period, and the adapter exits cleanly."""
    asked = 400  # about 15 s of SmolLM2 on two cores: well inside the 50 s grace
    body = {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "options": {"num_predict": asked, "temperature": 1.0, "seed": 7},
        "format": LONG_STORY,
    }
    stopped: dict[str, float] = {}

    def stop() -> None:
        stopped["start"] = time.monotonic()
        stack.compose("vllm", "stop", "adapter", timeout=120)
        stopped["end"] = time.monotonic()

    lines: list[dict[str, object]] = []
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{stack.url('OLLAMA_HOST_PORT')}/api/chat", json=body) as resp,
    ):
        assert resp.status_code == 200
        stopper = threading.Thread(target=stop)
        for raw in resp.iter_lines():
            lines.append(json.loads(raw))
            if len(lines) == 1:
                stopper.start()
        last_line = time.monotonic()
    stopper.join(120)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "length", lines[-1]
    assert lines[-1]["eval_count"] == asked
    assert all("error" not in line for line in lines)
    # The stream outlived the stop: SIGTERM came while it was open, and it still finished.
    assert stopped["start"] < last_line <= stopped["end"]
    state = stack.container("adapter")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    assert stopped["end"] - stopped["start"] < 60  # compose's stop_grace_period


def test_rollback_restores_phase1_with_its_volume(stack: Stack) -> None:
    """d. Phase 1 answers again; its model volume was kept: the marker is there and nothing was
    downloaded again."""
    before = downloads(stack, "ollama-models")
    proc = stack.switch("rollback", "--with-apps")
    assert proc.returncode == 0, tail(proc)
    assert stack.in_volume("ollama-models", "cat /v/e2e-marker").strip() == "written-in-phase-1"
    assert downloads(stack, "ollama-models") == before
    assert len(downloads(stack, "vision-ollama-models")) == len(VISION_MODELS)
    assert_answered_by_the_ollamas(stack)
    status = stack.switch("status")
    assert "phase 1 (all Ollama) is running" in status.stdout
    services = stack.compose("separated", "ps", "--services").split()
    assert "adapter" not in services and "vllm" not in services


def test_a_failed_switch_rolls_back_by_itself(stack: Stack) -> None:
    """e. A vLLM that cannot start (an unknown model): the switch says why and restores phase 1."""
    missing = "/models/no-such-model"
    proc = stack.switch("up-vllm", "--with-apps", extra={"MODEL_NAME": missing})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "vllm stopped while starting" in out
    assert missing in out  # vLLM's own log lines, shown by the switch
    assert "ROLLED BACK: phase 1 is serving" in out
    assert "phase 1 (all Ollama) is running" in stack.switch("status").stdout
    assert stack.app_call("notes")["content"].startswith(STANDIN)


def test_every_host_port_is_on_loopback(stack: Stack) -> None:
    """The test's traffic stays on loopback: every port it published is on 127.0.0.1."""
    for service in ("ollama", "vision-ollama", *CALLS):
        bindings = stack.container(service)["HostConfig"]["PortBindings"] or {}
        for ports in bindings.values():
            assert {p["HostIp"] for p in ports} == {"127.0.0.1"}, service
