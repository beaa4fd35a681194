"""The two compose phases, resolved by the real `docker compose config`, keep their promises."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.deploy.helpers import (
    APPS,
    LLM_APPS,
    PHASE1,
    PHASE2,
    PHASES,
    ROOT,
    VISION_APPS,
    ResolvedConfig,
    RunCompose,
    clean_env,
)

COMPOSE_FILES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in [*ROOT.glob("docker-compose*.yml"), *(ROOT / "compose").glob("*.yml")]
)
GATEWAY = {"separated": "ollama", "vllm": "adapter"}
OVERRIDES = (
    "apps.phase1.yml",
    "apps.phase2.yml",
    "apps.build.yml",
    "cpu.separated.yml",
    "cpu.vllm.yml",
)


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (``!reset``, ``!override``): kept as their value."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(_tag, _tagged)


def load_yaml(text: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(text, Loader=_ComposeLoader)
    return data


ONE_SHOT = {"ollama-init", "vision-ollama-init"}


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    return svc.get("environment") or {}


def aliases(svc: dict[str, Any]) -> set[str]:
    nets = svc.get("networks") or {}
    return {a for net in nets.values() if net for a in net.get("aliases") or []}


def resolve_host(cfg: dict[str, Any], host: str) -> str:
    """The one service that answers to `host` on the compose network."""
    owners = [name for name, svc in cfg["services"].items() if name == host or host in aliases(svc)]
    assert len(owners) == 1, f"{host!r} resolves to {owners}"
    owner: str = owners[0]
    return owner


def published(cfg: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (name, p.get("host_ip") or "0.0.0.0", str(p["published"]))
        for name, svc in cfg["services"].items()
        for p in svc.get("ports") or []
        if p.get("published")
    ]


# ---- every file and combination passes the real `docker compose config` -----------------


def test_compose_files_exist() -> None:
    assert {"docker-compose-separated.yml", "docker-compose.vllm.yml"} <= set(COMPOSE_FILES)


@pytest.mark.parametrize("phase", sorted(PHASES))
@pytest.mark.parametrize("apps", [False, True], ids=["core", "apps"])
def test_config_valid(run_compose: RunCompose, phase: str, apps: bool) -> None:
    proc = run_compose(
        PHASES[phase], args=["config", "--quiet"], profiles=["apps"] if apps else None
    )
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_config_valid_with_build_override_and_env_example(
    run_compose: RunCompose, phase: str
) -> None:
    proc = run_compose(
        PHASES[phase],
        ROOT / "compose/apps.build.yml",
        args=["config", "--format", "json"],
        profiles=["apps"],
        env_file=ROOT / "deploy/env.example",
    )
    services = json.loads(proc.stdout)["services"]
    # Every service is built from its own source folder, with the file env.example names.
    for app in APPS:
        build = services[app]["build"]
        assert build["context"].endswith(f"services/{app}") and build["dockerfile"] == "Dockerfile"


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_env_example_matches_defaults(
    run_compose: RunCompose, resolved: ResolvedConfig, phase: str
) -> None:
    import json

    proc = run_compose(
        PHASES[phase],
        args=["config", "--format", "json"],
        profiles=["apps", "monitoring"],
        env_file=ROOT / "deploy/env.example",
    )
    assert json.loads(proc.stdout)["services"] == resolved(phase)["services"]


MONITORING = ["prometheus", "alertmanager", "blackbox-exporter"]


def test_profiles_keep_core_alone(resolved: ResolvedConfig) -> None:
    for phase in PHASES:
        core = set(resolved(phase, apps=False)["services"])
        full = set(resolved(phase, apps=True)["services"])
        assert not core & set(APPS), f"{phase}: apps start without the profile"
        assert full - core == set(APPS) | set(MONITORING)
        for app in APPS:
            assert resolved(phase)["services"][app]["profiles"] == ["apps"]
        for service in MONITORING:
            assert resolved(phase)["services"][service]["profiles"] == ["monitoring"]
            # Identical in both phases, so a switch leaves them running.
            assert resolved(phase)["services"][service] == resolved("vllm")["services"][service]
    assert set(resolved("separated", False)["services"]) == {
        "ollama",
        "ollama-init",
        "vision-ollama",
        "vision-ollama-init",
    }
    assert set(resolved("vllm", False)["services"]) == {
        "vllm",
        "adapter",
        "vision-ollama",
        "vision-ollama-init",
    }


def test_same_project_name(resolved: ResolvedConfig) -> None:
    assert resolved("separated")["name"] == resolved("vllm")["name"] == "llm-stack"


# ---- OLLAMA_URL / VISION_OLLAMA_URL ------------------------------------------------------


def test_ollama_url_identical_across_phases(resolved: ResolvedConfig) -> None:
    urls = {
        phase: {
            name: env_of(svc)["OLLAMA_URL"]
            for name, svc in resolved(phase)["services"].items()
            if name in APPS and "OLLAMA_URL" in env_of(svc)
        }
        for phase in PHASES
    }
    assert set(urls["separated"]) == set(urls["vllm"]) == set(LLM_APPS)
    assert urls["separated"] == urls["vllm"]
    assert len(set(urls["vllm"].values())) == 1


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_ollama_url_resolves_to_the_gateway(resolved: ResolvedConfig, phase: str) -> None:
    cfg = resolved(phase)
    url = urlparse(env_of(cfg["services"]["notes"])["OLLAMA_URL"])
    owner = resolve_host(cfg, url.hostname or "")
    assert owner == GATEWAY[phase]
    svc = cfg["services"][owner]
    if phase == "separated":
        assert svc["image"].startswith("ollama/ollama:")
        assert url.port == 11434  # Ollama listens on 11434 in its container
    else:
        assert svc["build"]["dockerfile"] == "Dockerfile.adapter"
        assert env_of(svc)["ADAPTER_PORT"] == str(url.port)
        assert urlparse(env_of(svc)["VLLM_URL"]).hostname == "vllm"
        assert "ollama" not in cfg["services"], "phase 2 must not run a text Ollama"


def test_vision_services_on_vision_ollama(resolved: ResolvedConfig) -> None:
    for phase in PHASES:
        cfg = resolved(phase)
        for app in VISION_APPS:
            url = urlparse(env_of(cfg["services"][app])["VISION_OLLAMA_URL"])
            assert resolve_host(cfg, url.hostname or "") == "vision-ollama"
        assert cfg["services"]["vision-ollama"]["image"].startswith("ollama/ollama:")
        assert {a: env_of(cfg["services"][a]).get("VISION_OLLAMA_URL") for a in VISION_APPS} == {
            a: env_of(resolved("separated")["services"][a]).get("VISION_OLLAMA_URL")
            for a in VISION_APPS
        }
    adapter_env = env_of(resolved("vllm")["services"]["adapter"])
    assert urlparse(adapter_env["VISION_OLLAMA_URL"]).hostname == "vision-ollama"
    # The adapter listens on loopback unless told otherwise: in a container it must not.
    assert adapter_env["ADAPTER_HOST"] == "0.0.0.0"


def test_vision_ollama_identical_in_both_phases(resolved: ResolvedConfig) -> None:
    # Same definition => compose sees no change and leaves the container running on a switch.
    for name in ("vision-ollama", "vision-ollama-init"):
        assert resolved("separated")["services"][name] == resolved("vllm")["services"][name]


# ---- health checks and start order -------------------------------------------------------


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_health_checks_and_depends_on(resolved: ResolvedConfig, phase: str) -> None:
    services = resolved(phase)["services"]
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc["restart"] == "no"
            continue
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{phase}/{name}: no healthcheck"
        assert hc["test"][0] in ("CMD", "CMD-SHELL")
        assert "curl" not in hc["test"][1:3], f"{phase}/{name}: image may lack curl"
        # Engines before 25 (Debian 12's 20.10, Ubuntu 24.04's 24.0) refuse start_interval.
        assert "start_interval" not in hc, f"{phase}/{name}: needs Docker Engine 25"
        assert svc["restart"] == "unless-stopped"
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:  # a service of a profile that is off (the router's)
                assert cond["required"] is False, f"{phase}/{name} depends on missing {dep}"
                continue
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            if name != "frontend":
                assert cond["condition"] == expected, f"{phase}/{name} -> {dep}"
    for app in LLM_APPS:
        deps = services[app]["depends_on"]
        assert deps[GATEWAY[phase]]["condition"] == "service_healthy"
        assert deps["vision-ollama-init"]["condition"] == "service_completed_successfully"
    for init in ONE_SHOT & set(services):
        target = init.removesuffix("-init")
        assert services[init]["depends_on"][target]["condition"] == "service_healthy"
        assert urlparse(env_of(services[init])["OLLAMA_HOST"]).hostname == target


def _seconds(duration: str) -> int:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts, duration
    h, m, s = (int(x or 0) for x in parts.groups())
    return h * 3600 + m * 60 + s


def test_realistic_start_periods(resolved: ResolvedConfig) -> None:
    vllm = resolved("vllm")["services"]["vllm"]["healthcheck"]
    assert _seconds(vllm["start_period"]) >= 600  # model download + load + CUDA graphs
    assert "/health" in vllm["test"][-1]
    adapter = resolved("vllm")["services"]["adapter"]
    # liveness (GET /), never /health, which is 503 while vLLM loads
    assert adapter["healthcheck"]["test"][-1].endswith(
        "urlopen('http://127.0.0.1:11434/',timeout=2)"
    )
    assert adapter["depends_on"]["vllm"]["condition"] == "service_healthy"
    for phase in PHASES:
        for name in ("vision-ollama", *(["ollama"] if phase == "separated" else [])):
            hc = resolved(phase)["services"][name]["healthcheck"]
            assert hc["test"] == ["CMD", "ollama", "list"]
            assert _seconds(hc["start_period"]) >= 30


# ---- ports, GPUs, volumes ----------------------------------------------------------------


@pytest.mark.parametrize("phase", sorted(PHASES))
@pytest.mark.parametrize("apps", [False, True], ids=["core", "apps"])
def test_no_host_port_published_twice(resolved: ResolvedConfig, phase: str, apps: bool) -> None:
    ports = published(resolved(phase, apps))
    counts = Counter(port for _, _, port in ports)
    assert [p for p, n in counts.items() if n > 1] == [], ports


def test_port_11434_owned_by_the_gateway_only(resolved: ResolvedConfig) -> None:
    for phase in PHASES:
        owners = [(n, ip) for n, ip, port in published(resolved(phase)) if port == "11434"]
        assert owners == [(GATEWAY[phase], "0.0.0.0")]


def test_app_ports_unchanged(resolved: ResolvedConfig) -> None:
    expected = {
        "notes": "8100",
        "doc-processor": "8101",
        "rag": "8102",
        "ocr": "8104",
        "client-rag": "8105",
        "ner": "8108",
        "frontend": "3000",
    }
    for phase in PHASES:
        ports = {n: port for n, _, port in published(resolved(phase)) if n in APPS}
        assert ports == expected
    assert sorted(published(resolved("separated"))) != sorted(published(resolved("vllm")))


def test_vllm_not_published_beyond_loopback(resolved: ResolvedConfig) -> None:
    for name in ("vllm", "vision-ollama"):
        for p in resolved("vllm")["services"][name].get("ports") or []:
            assert p["host_ip"] == "127.0.0.1", f"{name} published on {p}"


@pytest.mark.parametrize(
    ("phase", "name"),
    [
        ("vllm", "vllm"),
        ("vllm", "vision-ollama"),
        ("separated", "ollama"),
        ("separated", "vision-ollama"),
    ],
)
def test_gpu_reservations(resolved: ResolvedConfig, phase: str, name: str) -> None:
    devices = resolved(phase)["services"][name]["deploy"]["resources"]["reservations"]["devices"]
    assert devices and all(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_volumes_shared_and_named(resolved: ResolvedConfig) -> None:
    def mount(phase: str, svc: str, target: str) -> str:
        cfg = resolved(phase)
        vol = next(v for v in cfg["services"][svc]["volumes"] if v["target"] == target)
        assert vol["type"] == "volume"
        name: str = cfg["volumes"][vol["source"]]["name"]
        return name

    vision = {mount(p, "vision-ollama", "/root/.ollama") for p in PHASES}
    assert vision == {"llm-stack-vision-ollama-models"}
    assert mount("separated", "ollama", "/root/.ollama") == "llm-stack-ollama-models"
    assert mount("vllm", "vllm", "/root/.cache/huggingface") == "llm-stack-hf-cache"
    assert mount("vllm", "vllm", "/root/.cache/vllm") == "llm-stack-vllm-cache"
    for phase in PHASES:  # fixed names: independent of the project name
        for vol in resolved(phase)["volumes"].values():
            assert not vol.get("external")
            assert vol["name"].startswith("llm-stack-")


def test_vllm_service(resolved: ResolvedConfig) -> None:
    svc = resolved("vllm")["services"]["vllm"]
    assert svc["build"]["dockerfile"] == "Dockerfile.vllm"
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", svc["build"]["args"]["VLLM_IMAGE"])
    assert svc.get("ipc") == "host" or int(svc["shm_size"]) >= 8 * 2**30
    env = env_of(svc)
    assert env["MODEL_NAME"] and env["SERVED_MODEL_NAME"].split()[0] == "qwen2.5:7b"
    assert 0 < float(env["GPU_MEMORY_UTILIZATION"]) < 0.9  # shares GPU 0 with Vision Ollama
    assert env["VLLM_API_KEY"] == env_of(resolved("vllm")["services"]["adapter"])["VLLM_API_KEY"]


# ---- configurable, written once ----------------------------------------------------------


def test_app_images_configurable(run_compose: RunCompose) -> None:
    import json

    proc = run_compose(
        PHASE2,
        args=["config", "--format", "json"],
        profiles=["apps"],
        env={
            "NOTES_IMAGE": "registry.example/notes:1.2",
            "NOTES_PORT": "18100",
            "OLLAMA_HOST_PORT": "21434",
            "SERVED_MODEL_NAME": "llama2:7b",
        },
    )
    services = json.loads(proc.stdout)["services"]
    assert services["notes"]["image"] == "registry.example/notes:1.2"
    assert services["notes"]["ports"][0]["published"] == "18100"
    assert services["adapter"]["ports"][0]["published"] == "21434"
    assert env_of(services["vllm"])["SERVED_MODEL_NAME"] == "llama2:7b"
    assert env_of(services["notes"])["OLLAMA_URL"] == "http://ollama:11434"


def test_build_override_sets_contexts(run_compose: RunCompose) -> None:
    import json

    proc = run_compose(
        PHASE1,
        ROOT / "compose/apps.build.yml",
        args=["config", "--format", "json"],
        profiles=["apps"],
        env={"NOTES_CONTEXT": "/src/notes"},
    )
    services = json.loads(proc.stdout)["services"]
    assert services["notes"]["build"]["context"] == "/src/notes"
    assert all("build" in services[a] for a in APPS)


def test_shared_definitions_written_once() -> None:
    texts = {f: (ROOT / f).read_text() for f in COMPOSE_FILES}
    defined: Counter[str] = Counter()
    for f, text in texts.items():
        for name in load_yaml(text).get("services") or {}:
            if f.endswith(OVERRIDES):
                continue  # overrides: depends_on / build / CPU mode only
            defined[name] += 1
    assert {n: c for n, c in defined.items() if c > 1} == {}
    for f in ("docker-compose-separated.yml", "docker-compose.vllm.yml"):
        assert "compose/vision-ollama.yml" in texts[f] and "compose/apps.yml" in texts[f]
    for f in ("compose/apps.phase1.yml", "compose/apps.phase2.yml"):
        for svc in load_yaml(texts[f])["services"].values():
            assert set(svc) == {"depends_on"}


CPU_FILES = {
    "separated": ROOT / "compose" / "cpu.separated.yml",
    "vllm": ROOT / "compose" / "cpu.vllm.yml",
}


def devices(svc: dict[str, Any]) -> list[Any]:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get(
        "devices"
    ) or []


@pytest.mark.parametrize("phase", ["separated", "vllm"])
def test_cpu_mode_reserves_no_gpu_and_gpu_mode_is_unchanged(
    run_compose: RunCompose, resolved: ResolvedConfig, phase: str
) -> None:
    proc = run_compose(
        PHASES[phase],
        CPU_FILES[phase],
        args=["config", "--format", "json"],
        profiles=["apps", "monitoring"],
    )
    cpu = json.loads(proc.stdout)["services"]
    gpu = resolved(phase)["services"]
    assert {name for name, svc in gpu.items() if devices(svc)} == (
        {"ollama", "vision-ollama"} if phase == "separated" else {"vllm", "vision-ollama"}
    )
    assert {name: devices(svc) for name, svc in cpu.items() if devices(svc)} == {}
    # Everything else of the phase is the same stack: services, ports, volumes, OLLAMA_URL.
    assert set(cpu) == set(gpu)
    for name in cpu:
        assert cpu[name].get("ports") == gpu[name].get("ports"), name
        assert env_of(cpu[name]).get("OLLAMA_URL") == env_of(gpu[name]).get("OLLAMA_URL")


def test_cpu_mode_builds_vllm_on_its_cpu_image_with_a_small_model(run_compose: RunCompose) -> None:
    proc = run_compose(PHASE2, CPU_FILES["vllm"], args=["config", "--format", "json"])
    vllm = json.loads(proc.stdout)["services"]["vllm"]
    assert vllm["build"]["dockerfile"] == "Dockerfile.vllm"
    assert vllm["build"]["args"]["VLLM_IMAGE"].startswith(
        "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v"
    )
    assert vllm["image"] != "llm-stack/vllm:v0.33.0"  # never overwrites the GPU image's tag
    env = env_of(vllm)
    assert env["GPU_MEMORY_UTILIZATION"] == ""
    assert env["MODEL_NAME"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert [v["target"] for v in vllm["volumes"]] == [
        "/root/.cache/huggingface",
        "/root/.cache/vllm",
        "/models",
    ]


def test_the_scripts_know_the_cpu_modes_model_defaults(run_compose: RunCompose, bash: str) -> None:
    """deploy/lib.sh repeats compose/cpu.*.yml's model defaults (smoke.sh reads them)."""
    proc = subprocess.run(
        [
            bash,
            "-c",
            "source deploy/lib.sh; STACK_MODE=cpu stack_mode_defaults; "
            'printf "%s\n%s\n" "$SERVED_MODEL_NAME" "$OLLAMA_TEXT_MODELS"',
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        check=True,
    )
    served, text_models = proc.stdout.splitlines()
    p2 = json.loads(
        run_compose(PHASE2, CPU_FILES["vllm"], args=["config", "--format", "json"]).stdout
    )
    p1 = json.loads(
        run_compose(PHASE1, CPU_FILES["separated"], args=["config", "--format", "json"]).stdout
    )
    assert env_of(p2["services"]["vllm"])["SERVED_MODEL_NAME"] == served
    assert env_of(p1["services"]["ollama-init"])["MODELS"] == text_models
    assert text_models in served.split()  # the same name answers in both phases


# ---- several replicas behind vLLM's router -------------------------------------------------

REPLICA_PROFILES = ["apps", "router", *(f"replica-{k}" for k in range(2, 9))]


def test_replicas_and_the_router(run_compose: RunCompose) -> None:
    """VLLM_REPLICAS=8 as deploy/switch.sh runs it (every replica profile and the router's on,
    the adapter pointed at the router): eight copies of vllm, each on a GPU of its own and
    without a host port but the first's, the router healthy-checked by liveness and waiting
    for every replica, the adapter waiting for the router. CPU mode drops every GPU."""
    for cpu in (False, True):
        files = [PHASES["vllm"], *([ROOT / "compose/cpu.vllm.yml"] if cpu else [])]
        proc = run_compose(
            *files,
            args=["config", "--format", "json"],
            profiles=REPLICA_PROFILES,
            env={"ADAPTER_VLLM_URL": "http://vllm-router:8000", "VLLM_REPLICAS": "8"},
        )
        services = json.loads(proc.stdout)["services"]
        replicas = ["vllm", *(f"vllm-{k}" for k in range(2, 9))]
        gpus = []
        for name in replicas:
            replica = services[name]
            assert replica["image"] == services["vllm"]["image"]
            assert env_of(replica) == env_of(services["vllm"]), name
            assert replica["healthcheck"] == services["vllm"]["healthcheck"], name
            assert bool(replica.get("ports")) == (name == "vllm"), name
            devices = (replica.get("deploy") or {}).get("resources", {}).get("reservations", {})
            gpus += [d["device_ids"] for d in devices.get("devices", [])]
        assert gpus == ([] if cpu else [[str(k)] for k in range(8)])
        router = services["vllm-router"]
        assert set(router["depends_on"]) == set(replicas)
        assert all(d["condition"] == "service_healthy" for d in router["depends_on"].values())
        assert "/liveness" in " ".join(router["healthcheck"]["test"])
        assert env_of(router)["VLLM_REPLICAS"] == "8"
        assert env_of(router)["ROUTER_POLICY"] == "consistent_hash"
        assert [p["host_ip"] for p in router["ports"]] == ["127.0.0.1"]
        adapter = services["adapter"]
        assert env_of(adapter)["VLLM_URL"] == "http://vllm-router:8000"
        assert adapter["depends_on"]["vllm-router"]["condition"] == "service_healthy"


def test_one_replica_adds_no_hop(resolved: ResolvedConfig) -> None:
    """The default: no router, no other replica; the adapter talks to vllm itself."""
    services = resolved("vllm")["services"]
    assert "vllm-router" not in services and "vllm-2" not in services
    assert env_of(services["adapter"])["VLLM_URL"] == "http://vllm:8000"
