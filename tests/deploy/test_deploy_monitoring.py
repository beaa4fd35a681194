"""deploy/monitoring: the scrape configs and the Grafana dashboard use metrics that exist, and
Prometheus's own promtool accepts the configuration and proves every alert rule fires when it
should and stays silent when it should not (deploy/monitoring/alerts.test.yml)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.metrics import Metrics
from tests import fixtures
from tests.deploy.helpers import MON, ROOT


def vllm_metric_names() -> set[str]:
    """Sample names the real vLLM exposes, from its recorded ``/metrics`` (tests/fixtures)."""
    text = fixtures.raw("metrics.txt").decode()
    return {m.group(1) for m in re.finditer(r"^(vllm:[a-z_:]+)[{ ]", text, re.MULTILINE)}


VLLM_METRICS = vllm_metric_names()


def router_metric_names() -> set[str]:
    """Sample names vLLM's router (vllm-router 0.1.17) exposes, from its recorded ``/metrics``."""
    text = (fixtures.ROUTER_FIXTURES / "metrics.txt").read_text()
    return {m.group(1) for m in re.finditer(r"^(vllm_router_\w+?)[{ ]", text, re.MULTILINE)}


ROUTER_METRICS = router_metric_names()
METRIC = r"\b(?:ollama_adapter_\w+|vllm:\w+|vllm_router_\w+)"


def adapter_metric_names() -> set[str]:
    """Sample names the adapter exposes, from its own registry."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MON / "grafana-dashboard.json").read_text())
    return data


def exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_compose_scrape_config() -> None:
    cfg = yaml.safe_load((MON / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["ollama-adapter"]["static_configs"][0]["targets"] == ["adapter:11434"]
    assert jobs["vllm"]["static_configs"][0]["targets"] == ["vllm:8000"]
    # Replicas 2-8 are found by name (none with one replica); the router at its metrics port.
    compose_services = yaml.safe_load((ROOT / "docker-compose.vllm.yml").read_text())["services"]
    replicas = jobs["vllm-replicas"]["dns_sd_configs"][0]
    assert replicas["names"] == [f"vllm-{k}" for k in range(2, 9)]
    assert set(replicas["names"]) <= set(compose_services) and replicas["port"] == 8000
    assert jobs["vllm-router"]["static_configs"][0]["targets"] == ["vllm-router:29000"]
    assert "vllm-router" in compose_services
    assert {jobs[j]["metrics_path"] for j in ("ollama-adapter", "vllm")} == {"/metrics"}
    assert {"adapter", "vllm"} <= set(
        yaml.safe_load((ROOT / "docker-compose.vllm.yml").read_text())["services"]
    )
    # The Ollamas have no /metrics: probed through the blackbox exporter's `ollama` module.
    modules = yaml.safe_load((MON / "blackbox.yml").read_text())["modules"]
    monitoring = yaml.safe_load((ROOT / "compose" / "monitoring.yml").read_text())["services"]
    for job, target in (
        ("ollama-gateway", "http://ollama:11434/"),
        ("vision-ollama", "http://vision-ollama:11434/"),
    ):
        probe = jobs[job]
        assert probe["metrics_path"] == "/probe" and probe["params"]["module"][0] in modules
        assert probe["static_configs"][0]["targets"] == [target]
        address = [r for r in probe["relabel_configs"] if r["target_label"] == "__address__"]
        assert address[0]["replacement"].split(":")[0] in monitoring
    alertmanager = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    assert alertmanager.split(":")[0] in monitoring


def test_both_phases_include_the_same_monitoring_profile() -> None:
    """One file, included by both phases, every service in the `monitoring` profile: a switch
    leaves it running. Host ports on loopback; data in named volumes."""
    for phase in ("docker-compose-separated.yml", "docker-compose.vllm.yml"):
        assert "compose/monitoring.yml" in yaml.safe_load((ROOT / phase).read_text())["include"]
    monitoring = yaml.safe_load((ROOT / "compose" / "monitoring.yml").read_text())
    for name, service in monitoring["services"].items():
        assert service["profiles"] == ["monitoring"], name
        assert all(p.startswith("127.0.0.1:") for p in service.get("ports", [])), name
        assert service["restart"] == "unless-stopped", name
    volumes = [v.split(":")[0] for s in monitoring["services"].values() for v in s["volumes"]]
    assert (
        {"prometheus-data", "alertmanager-data"}
        <= set(volumes)
        <= set(monitoring["volumes"]) | {v for v in volumes if v.startswith("../deploy/monitoring")}
    )
    for volume in monitoring["volumes"].values():
        assert volume["name"].startswith("${VOLUME_PREFIX:-llm-stack}-")


def test_k8s_scrape_config_matches_manifests() -> None:
    cfg = yaml.safe_load((MON / "prometheus-k8s.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {"ollama-adapter", "vllm"}
    deployment = yaml.safe_load((ROOT / "deploy/k8s/adapter-deployment.yaml").read_text())
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    keep = jobs["ollama-adapter"]["relabel_configs"][0]
    assert keep["regex"] == deployment["metadata"]["labels"]["app.kubernetes.io/name"]


def test_dashboard_shape() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "adapter_job", "vllm_job"} <= variables
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}"
            assert p["targets"], p["title"]
            assert all(t["refId"] for t in p["targets"])


def test_dashboard_metrics_exist() -> None:
    used = {m for e in exprs() for m in re.findall(METRIC, e)}
    adapter = {m for m in used if m.startswith("ollama_adapter_")}
    router = {m for m in used if m.startswith("vllm_router_")}
    vllm = used - adapter - router
    assert adapter and vllm and router
    assert adapter <= adapter_metric_names(), adapter - adapter_metric_names()
    assert vllm <= VLLM_METRICS, vllm - VLLM_METRICS
    assert router <= ROUTER_METRICS, router - ROUTER_METRICS
    for e in exprs():
        assert e.count("(") == e.count(")"), e
        assert "[$__rate_interval]" in e or "rate(" not in e


def alert_rules() -> list[dict[str, Any]]:
    cfg = yaml.safe_load((MON / "alerts.yml").read_text())
    return [rule for group in cfg["groups"] for rule in group["rules"]]


def test_alerts_use_metrics_that_exist_and_are_documented() -> None:
    rules = alert_rules()
    assert "alerts.yml" in yaml.safe_load((MON / "prometheus.yml").read_text())["rule_files"]
    operations = (ROOT / "docs" / "operations.md").read_text()
    for rule in rules:
        expr = rule["expr"]
        used = set(re.findall(METRIC, expr))
        assert used <= adapter_metric_names() | VLLM_METRICS | ROUTER_METRICS, (rule["alert"], used)
        assert expr.count("(") == expr.count(")"), expr
        assert rule["labels"]["severity"] in ("page", "warn")
        assert f"`{rule['alert']}`" in operations, rule["alert"]
    jobs = {
        j["job_name"]
        for j in yaml.safe_load((MON / "prometheus.yml").read_text())["scrape_configs"]
    }
    for rule in rules:
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, (rule["alert"], job)


# --------------------------------------------------------------------------- promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    """Prometheus's own tool (scripts/promtool.sh: PATH, or Debian's package, unpacked)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "promtool.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_config_and_the_rules(promtool: str) -> None:
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")):
        proc = subprocess.run(
            [promtool, *args], cwd=MON, capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(alert_rules())} rules found" in proc.stdout


def test_every_alert_is_unit_tested_firing_and_silent(promtool: str) -> None:
    """alerts.test.yml shows each alert silent before its ``for:`` and firing after it (on
    the series that should fire it, and on no other); promtool runs it."""
    tests = yaml.safe_load((MON / "alerts.test.yml").read_text())["tests"]
    cases: dict[str, list[bool]] = {}
    for test in tests:
        for case in test["alert_rule_test"]:
            cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    assert set(cases) == {rule["alert"] for rule in alert_rules()}
    assert all(True in seen and False in seen for seen in cases.values()), cases
    proc = promtool_run(promtool, "test", "rules", str(MON / "alerts.test.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: The condition that keeps a phase-2 alert silent in phase 1 (the other half of phase 2 up).
GATE = re.compile(r" and on\(\) \(max\(up\{[^}]*\}\) == 1\)")


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alert_rules()])
def test_the_unit_tests_catch_a_wrong_for_or_threshold(
    promtool: str, tmp_path: Path, alert: str
) -> None:
    """Each alert's tests fail when its ``for:`` is doubled, and when its condition can no
    longer be true: they test the rule, not only its name."""
    gated = GATE.search(next(r["expr"] for r in alert_rules() if r["alert"] == alert))
    for mutate in ("for", "expr", "gate") if gated else ("for", "expr"):
        cfg = yaml.safe_load((MON / "alerts.yml").read_text())
        for group in cfg["groups"]:
            for rule in group["rules"]:
                if rule["alert"] != alert:
                    continue
                if mutate == "for":
                    rule["for"] = f"{2 * int(rule['for'].rstrip('m'))}m"
                elif mutate == "expr":
                    rule["expr"] = f"({rule['expr']}) and on() vector(0) > 1"
                else:  # without its phase-2 condition it would fire in phase 1
                    rule["expr"] = GATE.sub("", rule["expr"])
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        (tmp_path / "alerts.test.yml").write_text((MON / "alerts.test.yml").read_text())
        proc = promtool_run(promtool, "test", "rules", str(tmp_path / "alerts.test.yml"))
        assert proc.returncode != 0, f"{alert}: the tests pass with its {mutate} changed"
        assert alert in proc.stdout + proc.stderr
