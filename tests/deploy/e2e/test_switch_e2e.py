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
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import yaml

from tests.deploy.e2e.stack import (
    CALLS,
    TEXT_MODEL,
    VISION_MODELS,
    Stack,
    build_standins,
    run,
    wait_for,
)
from tests.deploy.helpers import APPS, MON

STANDIN = "ollama stand-in"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
#: The monitoring containers: started with phase 1, left running by every switch.
MONITORING = ("prometheus", "alertmanager", "blackbox-exporter", "alert-webhook")
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
        stack.compose("vllm", "build", "vllm", "adapter", "vllm-router", timeout=1800)
        yield stack
    finally:
        stack.down()
        assert stack.leftovers() == []


MONITORING_IDS: dict[str, str] = {}
SERVICE = "com.docker.compose.service"
#: The replica that served the services' conversations in the two-replica test (killed next).
SERVED: dict[str, str] = {}


def scraped(stack: Stack, *jobs: str) -> dict[str, str]:
    """``up`` of each job's target, as the running Prometheus last scraped it."""
    series = stack.query(f'up{{job=~"{"|".join(jobs)}"}}')
    return {s["metric"]["job"]: s["value"][1] for s in series}


def probes(stack: Stack) -> dict[str, str]:
    """``probe_success`` of the blackbox probes (the Ollamas' ``GET /``)."""
    return {s["metric"]["job"]: s["value"][1] for s in stack.query("probe_success")}


def left_running(stack: Stack) -> None:
    """The monitoring containers are the ones phase 1 started: no switch touched them."""
    for service in MONITORING:
        info = stack.container(service)
        assert info["Id"] == MONITORING_IDS[service] and info["State"]["Running"], service


def chat(stack: Stack, model: str = TEXT_MODEL, **extra: object) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": False,
        "options": {"num_predict": 8, "temperature": 0},
        **extra,
    }
    return httpx.post(f"{stack.url('OLLAMA_HOST_PORT')}/api/chat", json=body, timeout=120)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    resp = call()
    return resp, time.monotonic() - start


def adapter_state(stack: Stack) -> tuple[str, int]:
    """When the adapter's container last started, and how often the engine restarted it."""
    info = stack.container("adapter")
    return info["State"]["StartedAt"], info["RestartCount"]


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
    # The monitoring profile came up with phase 1: the Ollamas are probed (they have no
    # /metrics), and the adapter and vLLM, absent in this phase, are down by design.
    wait_for(lambda: probes(stack) == {"ollama-gateway": "1", "vision-ollama": "1"}, 60, "probes")
    down = {"ollama-adapter": "0", "vllm": "0"}
    wait_for(lambda: scraped(stack, *down) == down, 60, "the adapter's and vLLM's scrapes")
    for service in MONITORING:
        MONITORING_IDS[service] = stack.container(service)["Id"]


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


def test_monitoring_follows_the_switch_to_phase2(stack: Stack) -> None:
    """The monitoring profile, left running by the switch, scrapes phase 2: the adapter and
    vLLM are up, the gateway probe now reaches the adapter, every rule is loaded, and
    Alertmanager is connected."""
    left_running(stack)
    wanted = {"ollama-adapter": "1", "vllm": "1"}
    wait_for(lambda: scraped(stack, *wanted) == wanted, 60, "the adapter and vLLM scraped")
    # The gateway's probe last ran perhaps during the switch, when nothing held `ollama`.
    up = {"ollama-gateway": "1", "vision-ollama": "1"}
    wait_for(lambda: probes(stack) == up, 60, "the probes to reach phase 2")
    rules = [r for g in stack.prometheus("rules")["groups"] for r in g["rules"]]
    shipped = yaml.safe_load((MON / "alerts.yml").read_text())["groups"]
    assert sorted(r["name"] for r in rules) == sorted(
        r["alert"] for g in shipped for r in g["rules"]
    )
    assert all(r["health"] == "ok" for r in rules), rules
    active = stack.prometheus("alertmanagers")["activeAlertmanagers"]
    assert [a["url"] for a in active] == ["http://alertmanager:9093/api/v2/alerts"]


def test_vision_ollama_stopped_leaves_text_alone(stack: Stack) -> None:
    """The Vision Ollama stopped: text through the adapter is unaffected; vision calls and the
    embeddings the adapter forwards fail with Ollama's error; both come back with it."""
    base = stack.url("OLLAMA_HOST_PORT")
    vision = {"images": [PNG]}

    def vision_chat() -> httpx.Response:
        message = {"role": "user", "content": "What is this?", **vision}
        body = {"model": "llava:7b", "messages": [message], "stream": False}
        return httpx.post(f"{base}/api/chat", json=body, timeout=60)

    def embed() -> httpx.Response:
        body = {"model": "nomic-embed-text", "input": "a document"}
        return httpx.post(f"{base}/api/embed", json=body, timeout=60)

    assert vision_chat().status_code == 200 and embed().status_code == 200
    stack.compose("vllm", "stop", "vision-ollama", timeout=120)
    try:
        resp = chat(stack)
        assert resp.status_code == 200 and "Paris" in resp.json()["message"]["content"]
        for call in (vision_chat, embed):
            resp, took = timed(call)
            assert resp.status_code in (502, 503), resp.text
            assert list(resp.json()) == ["error"] and "vision-ollama" in resp.json()["error"]
            assert took < 15, took
        assert stack.app_call("notes")["content"]  # a text service, through OLLAMA_URL
        failed = httpx.get(f"{stack.url('OCR_PORT')}/call", timeout=60)
        assert failed.status_code == 502  # the OCR service's own vision call
        wait_for(lambda: probes(stack).get("vision-ollama") == "0", 60, "the probe to fail")
    finally:
        stack.compose("vllm", "start", "vision-ollama", timeout=120)
    wait_for(lambda: vision_chat().status_code == 200, 60, "vision calls to come back")
    assert embed().status_code == 200
    assert stack.app_call("ocr")["content"].startswith(STANDIN)


def open_streams(
    stack: Stack, count: int
) -> tuple[list[list[dict[str, object]]], list[threading.Thread]]:
    """``count`` long chat streams through the adapter, each with its first line read."""
    body = {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "options": {"num_predict": 600, "temperature": 1.0, "seed": 3},
        "format": LONG_STORY,
    }
    streams: list[list[dict[str, object]]] = [[] for _ in range(count)]
    started = threading.Barrier(count + 1)

    def stream(lines: list[dict[str, object]]) -> None:
        url = f"{stack.url('OLLAMA_HOST_PORT')}/api/chat"
        with httpx.stream("POST", url, json=body, timeout=120) as resp:
            for raw in resp.iter_lines():
                lines.append(json.loads(raw))
                if len(lines) == 1:
                    started.wait(60)

    threads = [threading.Thread(target=stream, args=(lines,)) for lines in streams]
    for thread in threads:
        thread.start()
    started.wait(120)
    return streams, threads


def ended_with_an_error(lines: list[dict[str, object]]) -> bool:
    return (
        len(lines) > 1
        and all(line.get("done") is False for line in lines[:-1])
        and list(lines[-1]) == ["error"]
    )


def test_vllm_cut_off_the_network_then_back(stack: Stack) -> None:
    """vLLM's container cut off the stack's network (the adapter can no longer reach it, as
    in a network partition): a stream open across the cut ends with Ollama's error line once
    TCP gives the silent peer up (seconds, not the ten-minute read timeout); new requests get
    fast 503s and /ready says 503; reconnected, it serves again, never restarted."""
    before = adapter_state(stack)
    vllm = stack.container("vllm")["Id"]
    streams, threads = open_streams(stack, 1)
    cut = time.monotonic()
    run(["docker", "network", "disconnect", stack.network, vllm], stack.env)
    try:
        threads[0].join(60)
        assert not threads[0].is_alive(), "the stream outlived the cut by a minute"
        assert ended_with_an_error(streams[0]), streams[0][-3:]
        assert time.monotonic() - cut < 40
        for _ in range(3):
            resp, took = timed(lambda: chat(stack))
            assert resp.status_code == 503, resp.text
            assert list(resp.json()) == ["error"] and "vllm" in resp.json()["error"]
            assert took < 15, took  # ADAPTER_CONNECT_TIMEOUT (5 s) bounds it
        ready = httpx.get(f"{stack.url('OLLAMA_HOST_PORT')}/ready", timeout=30)
        assert ready.status_code == 503
    finally:
        cmd = ["docker", "network", "connect", "--alias", "vllm", stack.network, vllm]
        run(cmd, stack.env)
    wait_for(lambda: chat(stack).status_code == 200, 60, "the adapter to serve again")
    assert httpx.get(f"{stack.url('OLLAMA_HOST_PORT')}/ready", timeout=30).status_code == 200
    assert adapter_state(stack) == before


def test_vllm_killed_under_open_streams(stack: Stack) -> None:
    """vLLM's process SIGKILLed while two streams are open: each ends with Ollama's error
    line; new requests get a fast 503; /ready says 503; the running Prometheus fires VllmDown
    and Alertmanager delivers it; started again, vLLM serves through the same adapter."""
    before = adapter_state(stack)
    streams, threads = open_streams(stack, 2)
    # The engine's own kill: a manual stop, so the container stays down until started again
    # (the restart policy after a crash is the adapter's test below).
    run(["docker", "kill", "--signal", "KILL", stack.container("vllm")["Id"]], stack.env)
    for thread in threads:
        thread.join(120)
    try:
        for lines in streams:
            assert ended_with_an_error(lines), lines[-3:]
        resp, took = timed(lambda: chat(stack))
        assert resp.status_code == 503 and "vllm" in resp.json()["error"], resp.text
        assert took < 15, took
        assert httpx.get(f"{stack.url('OLLAMA_HOST_PORT')}/ready", timeout=30).status_code == 503
        # VllmDown: for 1m after the first failed scrape (15 s apart), then to Alertmanager.
        wait_for(lambda: stack.alerts("VllmDown"), 150, "VllmDown to fire")
        wait_for(
            lambda: any(
                a["labels"]["alertname"] == "VllmDown" and a["status"] == "firing"
                for a in stack.delivered()
            ),
            60,
            "Alertmanager to deliver VllmDown",
        )
    finally:
        stack.compose("vllm", "start", "vllm", timeout=120)
    wait_for(lambda: chat(stack).status_code == 200, 300, "the adapter to serve again")
    assert "Paris" in chat(stack).json()["message"]["content"]
    assert adapter_state(stack) == before


def served_by(stack: Stack, service: str) -> float:
    """Requests a replica finished, by its own counter (read inside its container: replicas
    after the first publish no host port)."""
    code = (
        "import urllib.request;t=urllib.request.urlopen('http://127.0.0.1:8000/metrics').read()"
        ".decode();print(sum(float(l.rsplit(' ',1)[1]) for l in t.splitlines()"
        " if l.startswith('vllm:request_success_total{')))"
    )
    out = run(["docker", "exec", stack.container(service)["Id"], "python3", "-c", code], stack.env)
    return float(out.stdout.strip())


def test_two_replicas_behind_the_router(stack: Stack) -> None:
    """Phase 2 with VLLM_REPLICAS=2 through the same switch: a second vLLM and vLLM's router
    start, the adapter now reaches vLLM through the router, and each service's conversation is
    kept on one replica (by the replicas' own counters)."""
    proc = stack.switch("up-vllm", "--with-apps", extra={"VLLM_REPLICAS": "2"})
    assert proc.returncode == 0, tail(proc)
    assert "starting vLLM's router" in proc.stdout and "vllm-2 is healthy" in proc.stdout
    for service in ("vllm", "vllm-2", "vllm-router", "adapter"):
        assert stack.container(service)["State"]["Health"]["Status"] == "healthy", service
    router = stack.container("vllm-router")
    assert router["Config"]["User"] == "10002:10002"  # the image's own user, not root
    env = dict(e.partition("=")[::2] for e in stack.container("adapter")["Config"]["Env"])
    assert env["VLLM_URL"] == "http://vllm-router:8000"
    assert "replicas: http://vllm:8000 http://vllm-2:8000" in stack.logs("vllm-router")

    stack.app_call("notes")  # the adapter, new in front of the router, probes the model first
    before = {s: served_by(stack, s) for s in ("vllm", "vllm-2")}
    for _ in range(3):
        assert "Paris" in stack.app_call("notes")["content"]
        assert stack.app_call("ner")["content"] == '{"name":"Ann","age":30}'
    # Six calls, two conversations (each service's own): each kept on one replica.
    moved = {s: served_by(stack, s) - before[s] for s in before}
    assert sum(moved.values()) == 6 and all(v % 3 == 0 for v in moved.values()), moved
    SERVED["by"] = max(moved, key=lambda s: moved[s])


def test_the_dashboard_reads_live_data(stack: Stack) -> None:
    """Every panel's expression, sent to the running Prometheus after the stack has served
    traffic (and the faults above: upstream errors), returns a series; the variables they use
    resolve."""
    dashboard = json.loads((MON / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    values = {name: v["current"]["value"] for name, v in variables.items() if v["type"] == "custom"}
    for name, value in values.items():  # each job variable names a job Prometheus scrapes
        assert stack.query(f'up{{job="{value}"}}'), name
    # A query variable (the replicas the router names) as Grafana's "All": every value it finds.
    for name, variable in variables.items():
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+), *\w+\)", variable["definition"])
            assert metric and stack.query(metric[1]), (name, variable["definition"])
            values[name] = ".+"
    # Grafana's $__rate_interval: four scrape intervals or more, by the range shown; 5m is what
    # a few hours' range gives, and holds more than the last minute's traffic.
    values["__rate_interval"] = "5m"

    def empty() -> list[str]:
        found = []
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
                    expr = expr.replace(f"${name}", value)
                assert "$" not in expr, (panel["title"], expr)
                if not stack.query(expr):
                    found.append(f"{panel['title']}: {expr}")
        return found

    # A counter's series that appeared with the last faults (the first 503, the first upstream
    # error) has a rate once Prometheus has scraped it twice.
    deadline = time.monotonic() + 60
    while (missing := empty()) and time.monotonic() < deadline:
        time.sleep(5)
    raw = {m: len(stack.query(m)) for m in ("ollama_adapter_tokens_total", "up")}
    assert not missing, "\n".join([*missing, f"series: {raw}"])


def test_the_replica_that_served_them_killed(stack: Stack) -> None:
    """The replica that served the services' conversations SIGKILLed: once the router has
    taken it out (seconds), the notes and NER services keep getting their answers (Paris; the
    schema's JSON) from the other, `/ready` stays 200, and the running Prometheus finds
    VllmReplicaOut's condition (pending: promtool proves its `for:`), never VllmDown's, even
    when the killed one is `vllm` itself. It stays down: the rollback removes it."""
    victim = SERVED["by"]
    victim_url = f"http://{victim}:8000"
    run(["docker", "kill", "--signal", "KILL", stack.container(victim)["Id"]], stack.env)
    killed = time.monotonic()
    # Out of the router's rotation after VLLM_ROUTER_HEALTH_FAILURES checks
    # (VLLM_ROUTER_HEALTH_INTERVAL apart): from then on every call reaches the other.
    workers = f"{stack.url('VLLM_ROUTER_HOST_PORT')}/workers"

    def healthy() -> dict[str, bool]:
        listed = httpx.get(workers, timeout=10).json()["workers"]
        return {w["url"]: w["is_healthy"] for w in listed}

    wait_for(lambda: not healthy()[victim_url], 60, "the router to take the replica out")
    assert time.monotonic() - killed < 30
    answers = {s: [stack.app_call(s)["content"] for _ in range(3)] for s in ("notes", "ner")}
    assert all("Paris" in a for a in answers["notes"]), answers
    assert answers["ner"] == ['{"name":"Ann","age":30}'] * 3, answers
    resp = chat(stack)
    assert resp.status_code == 200 and "Paris" in resp.json()["message"]["content"]
    assert httpx.get(f"{stack.url('OLLAMA_HOST_PORT')}/ready", timeout=30).status_code == 200
    wait_for(
        lambda: stack.alerts("VllmReplicaOut", "pending") or stack.alerts("VllmReplicaOut"),
        90,
        "VllmReplicaOut's condition in the running Prometheus",
    )
    found = (stack.alerts("VllmReplicaOut", "pending") or stack.alerts("VllmReplicaOut"))[0]
    assert found["labels"]["worker"] == victim_url, found
    assert not stack.alerts("VllmDown", "firing") and not stack.alerts("VllmDown", "pending")


def test_adapter_killed_comes_back_with_its_models(stack: Stack) -> None:
    """The adapter's process SIGKILLed, as a crash: the engine restarts it, and the derived
    model on its volume is served as before."""
    started, restarts = adapter_state(stack)
    stack.crash("adapter")
    wait_for(
        lambda: (
            adapter_state(stack)[1] == restarts + 1
            and stack.container("adapter")["State"].get("Health", {}).get("Status") == "healthy"
        ),
        90,
        "the engine to restart the adapter",
    )
    assert adapter_state(stack)[0] != started
    tags = httpx.get(f"{stack.url('OLLAMA_HOST_PORT')}/api/tags", timeout=30).json()
    assert "notes-bot:latest" in [m["name"] for m in tags["models"]], tags
    resp = chat(stack, "notes-bot")
    assert resp.status_code == 200 and resp.json()["message"]["content"], resp.text


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
    # The replicas and the router phase 2 ran are gone with it, although the rollback was not
    # told how many there were.
    label = f"label=com.docker.compose.project={stack.project}"
    running = [
        container
        for service in ("vllm-2", "vllm-router")
        for container in run(
            ["docker", "ps", "-q", "--filter", label, "--filter", f"label={SERVICE}={service}"],
            stack.env,
        ).stdout.split()
    ]
    assert running == []


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


def test_monitoring_is_still_watching_phase1(stack: Stack) -> None:
    """After the rollback and the failed switch: the same monitoring containers, the probes up,
    the phase-2 alerts silent (the adapter and vLLM are gone by design), GatewayDown at most
    pending during a switch, and VllmDown, fired during the crash above, resolved and
    delivered as such."""
    left_running(stack)
    wait_for(lambda: probes(stack) == {"ollama-gateway": "1", "vision-ollama": "1"}, 60, "probes")
    for name in ("AdapterDown", "VllmDown", "VisionOllamaDown"):
        assert not stack.alerts(name, "firing") and not stack.alerts(name, "pending"), name
    # A switch takes the gateway away for less than GatewayDown's minute: pending at most,
    # and gone once the probe answers again.
    assert not stack.alerts("GatewayDown", "firing")
    wait_for(lambda: not stack.alerts("GatewayDown", "pending"), 60, "GatewayDown to clear")
    resolved = [
        a
        for a in stack.delivered()
        if a["labels"]["alertname"] == "VllmDown" and a["status"] == "resolved"
    ]
    assert resolved, stack.delivered()


def test_every_host_port_is_on_loopback(stack: Stack) -> None:
    """The test's traffic stays on loopback: every port it published is on 127.0.0.1."""
    for service in ("ollama", "vision-ollama", *CALLS, *MONITORING):
        bindings = stack.container(service)["HostConfig"]["PortBindings"] or {}
        for ports in bindings.values():
            assert {p["HostIp"] for p in ports} == {"127.0.0.1"}, service
