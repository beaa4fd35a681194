"""deploy/monitoring: the scrape configs and the Grafana dashboard use metrics that exist."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from adapter.metrics import Metrics
from tests import fixtures
from tests.deploy.helpers import ROOT

MON = ROOT / "deploy" / "monitoring"


def vllm_metric_names() -> set[str]:
    """Sample names the real vLLM exposes, from its recorded ``/metrics`` (tests/fixtures)."""
    text = fixtures.raw("metrics.txt").decode()
    return {m.group(1) for m in re.finditer(r"^(vllm:[a-z_:]+)[{ ]", text, re.MULTILINE)}


VLLM_METRICS = vllm_metric_names()


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
    assert all(j["metrics_path"] == "/metrics" for j in jobs.values())
    compose = (ROOT / "docker-compose.vllm.yml").read_text()
    assert "\n  adapter:\n" in compose and "\n  vllm:\n" in compose


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
    used = {m for e in exprs() for m in re.findall(r"\b(?:ollama_adapter_\w+|vllm:\w+)", e)}
    adapter = {m for m in used if m.startswith("ollama_adapter_")}
    vllm = used - adapter
    assert adapter and vllm
    assert adapter <= adapter_metric_names(), adapter - adapter_metric_names()
    assert vllm <= VLLM_METRICS, vllm - VLLM_METRICS
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
        used = set(re.findall(r"\b(?:ollama_adapter_\w+|vllm:\w+)", expr))
        assert used <= adapter_metric_names() | VLLM_METRICS, (rule["alert"], used)
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
