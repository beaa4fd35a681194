"""deploy/k8s: schema-valid offline (kubernetes-validate) and consistent with each other."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # test extra: kubernetes-validate (schemas ship in the wheel)
import pytest
import yaml

from tests.deploy.helpers import ROOT

K8S = ROOT / "deploy" / "k8s"
NOT_MANIFESTS = {"kustomization.yaml", "production-stack-values.yaml"}
MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in NOT_MANIFESTS)
# Oldest Kubernetes we promise to run on, and the newest schema the validator ships.
K8S_VERSIONS = ["1.30.0", "1.37.0"]


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        for d in docs(name):
            out[(d["kind"], d["metadata"]["name"])] = d
    return out


def adapter_container() -> dict[str, Any]:
    dep = objects()[("Deployment", "ollama-adapter")]
    container: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_schema_valid(name: str, version: str) -> None:
    for d in docs(name):
        kubernetes_validate.validate(d, version, strict=True)


def test_validator_catches_mistakes() -> None:
    dep = copy.deepcopy(objects()[("Deployment", "ollama-adapter")])
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)
    del dep["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=False)


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kust["resources"]) == set(MANIFESTS) - {"adapter-secret.example.yaml"}
    assert kust["namespace"] == "llm"
    assert kust["images"][0]["name"] == adapter_container()["image"]


def test_adapter_set_is_complete() -> None:
    kinds = {kind for kind, _ in objects()}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    } <= kinds


def test_selectors_and_references() -> None:
    objs = objects()
    dep = objs[("Deployment", "ollama-adapter")]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()

    svc = objs[("Service", "ollama")]  # in-cluster OLLAMA_URL=http://ollama:11434, as in compose
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    port = svc["spec"]["ports"][0]
    assert port["port"] == 11434
    assert port["targetPort"] in {p["name"] for p in adapter_container()["ports"]}

    hpa = objs[("HorizontalPodAutoscaler", "ollama-adapter")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": dep["metadata"]["name"],
    }
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]

    pdb = objs[("PodDisruptionBudget", "ollama-adapter")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["minAvailable"] < hpa["minReplicas"], "a PDB equal to the replicas blocks drains"

    refs = adapter_container()["envFrom"]
    cm = next(r["configMapRef"]["name"] for r in refs if "configMapRef" in r)
    assert ("ConfigMap", cm) in objs
    secret = next(r["secretRef"] for r in refs if "secretRef" in r)
    assert secret["optional"] is True
    example = docs("adapter-secret.example.yaml")[0]
    assert example["metadata"]["name"] == secret["name"]


def test_probes_resources_and_shutdown() -> None:
    objs = objects()
    c = adapter_container()
    pod = objs[("Deployment", "ollama-adapter")]["spec"]["template"]["spec"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # GET /: /health is 503 whenever vLLM is down, which must not empty the Service
        assert c[probe]["httpGet"]["path"] == "/"
        assert c[probe]["httpGet"]["port"] == "http"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the USER of Dockerfile.adapter
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    timeout = int(objs[("ConfigMap", "ollama-adapter")]["data"]["ADAPTER_REQUEST_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > timeout
    strategy = objs[("Deployment", "ollama-adapter")]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_configmap_points_at_production_stack() -> None:
    data = objects()[("ConfigMap", "ollama-adapter")]["data"]
    values = yaml.safe_load((K8S / "production-stack-values.yaml").read_text())
    # helm release "vllm" -> "<release>-router-service" on routerSpec.servicePort
    assert data["VLLM_URL"] == "http://vllm-router-service"
    assert values["routerSpec"]["servicePort"] == 80
    assert data["VISION_OLLAMA_URL"] == "http://vision-ollama:11434"
    assert ("Service", "vision-ollama") in objects()
    assert data["ADAPTER_PORT"] == "11434"
    assert data["ADAPTER_HOST"] == "0.0.0.0"  # the default is loopback; a pod needs all
    assert data["ADAPTER_WORKERS"] == "1"


def test_production_stack_values() -> None:
    values = yaml.safe_load((K8S / "production-stack-values.yaml").read_text())
    engine = values["servingEngineSpec"]
    spec = engine["modelSpec"][0]
    dockerfile_tag = re.search(
        r"vllm/vllm-openai:(v[\d.]+)", (ROOT / "Dockerfile.vllm").read_text()
    )
    assert dockerfile_tag
    assert (spec["repository"], spec["tag"]) == ("vllm/vllm-openai", dockerfile_tag.group(1))
    assert spec["requestGPU"] >= 1 and spec["modelURL"]
    args = spec["vllmConfig"]["extraArgs"]
    assert "qwen2.5:7b" in args[args.index("--served-model-name") + 1 :]
    structured = json.loads(args[args.index("--structured-outputs-config") + 1])
    assert structured == {"backend": "xgrammar", "disable_any_whitespace": True}
    # A conversation stays on one engine by the header the adapter sends with every chat.
    assert values["routerSpec"]["routingLogic"] == "session"
    assert values["routerSpec"]["sessionKey"] == "x-session-id"
    startup = engine["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert engine["vllmApiKey"] == {"secretName": "ollama-adapter", "secretKey": "VLLM_API_KEY"}


def test_manifest_files_are_plain_yaml() -> None:
    for name in [*MANIFESTS, *NOT_MANIFESTS]:
        assert "\t" not in (K8S / name).read_text(), name
        assert Path(K8S / name).suffix == ".yaml"
