"""Dockerfile.adapter, Dockerfile.vllm, .dockerignore and the vLLM entrypoint script."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT, clean_env

ENTRYPOINT = ROOT / "docker" / "vllm-entrypoint.sh"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path}: dangling continuation"
    return out


def test_adapter_dockerfile() -> None:
    ins = instructions(ROOT / "Dockerfile.adapter")
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim AS \w+", f) for f in froms)
    assert ("ARG", "PYTHON_VERSION=3.12") in ins
    final = ins[max(n for n, (i, _) in enumerate(ins) if i == "FROM") :]
    kinds = [i for i, _ in final]
    assert "USER" in kinds
    user = [a for i, a in final if i == "USER"][-1]
    assert not user.startswith(("root", "0")), "non-root"
    assert ("EXPOSE", "11434") in final
    hc = [a for i, a in final if i == "HEALTHCHECK"]
    assert hc and "curl" not in hc[0] and "urllib" in hc[0]
    assert "/health" not in hc[0], "liveness on GET /, not /health (503 while vLLM loads)"
    assert any(i == "COPY" and a.startswith("--from=") for i, a in final)
    assert not any(i == "RUN" and "apt-get install" in a for i, a in final)
    assert [a for i, a in final if i == "ENTRYPOINT"] == ['["vllm-adapter"]']
    env = " ".join(a for i, a in final if i == "ENV")
    for var in (
        "ADAPTER_HOST=0.0.0.0",
        "ADAPTER_PORT=11434",
        "ADAPTER_WORKERS=",
        "ADAPTER_LOG_LEVEL=",
    ):
        assert var in env


def test_vllm_dockerfile() -> None:
    ins = instructions(ROOT / "Dockerfile.vllm")
    arg = dict(ins)["ARG"]
    assert re.fullmatch(r"VLLM_IMAGE=vllm/vllm-openai:v\d+\.\d+\.\d+", arg), "pinned, never :latest"
    assert [a for i, a in ins if i == "FROM"] == ["${VLLM_IMAGE}"]
    assert ("ENTRYPOINT", '["/usr/local/bin/vllm-entrypoint.sh"]') in ins
    assert any(i == "COPY" and "docker/vllm-entrypoint.sh" in a for i, a in ins)
    env = " ".join(a for i, a in ins if i == "ENV")
    assert "HF_HOME=/root/.cache/huggingface" in env
    hc = next(a for i, a in ins if i == "HEALTHCHECK")
    assert "/health" in hc and "--start-period=" in hc


def test_vllm_tag_matches_compose() -> None:
    tag = dict(instructions(ROOT / "Dockerfile.vllm"))["ARG"].split("=", 1)[1]
    assert f"${{VLLM_BASE_IMAGE:-{tag}}}" in (ROOT / "docker-compose.vllm.yml").read_text()


def test_dockerignore_keeps_context_small() -> None:
    lines = [
        ln
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    for needed in ("!pyproject.toml", "!README.md", "!adapter/", "!docker/vllm-entrypoint.sh"):
        assert needed in lines


def entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        env=clean_env({"VLLM_ENTRYPOINT_DRY_RUN": "1", **env}),
        timeout=30,
    )


def test_entrypoint_builds_vllm_serve_args() -> None:
    proc = entrypoint(
        {
            "MODEL_NAME": "meta-llama/Llama-2-7b-chat-hf",
            "SERVED_MODEL_NAME": "llama2:7b, llama2 llama2:latest",
            "GPU_MEMORY_UTILIZATION": "0.6",
            "MAX_MODEL_LEN": "4096",
            "TENSOR_PARALLEL_SIZE": "2",
            "ENABLE_PREFIX_CACHING": "true",
            "TOOL_CALL_PARSER": "llama3_json",
            "REASONING_PARSER": "deepseek_r1",
            "VLLM_API_KEY": "s3cret",
            "VLLM_EXTRA_ARGS": "--max-num-seqs 64 --chat-template '/templates/my chat.jinja'",
        },
        "--dtype",
        "half",
    )
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.splitlines()
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-2-7b-chat-hf"]
    assert "serve" not in argv[2:], "never repeat `serve`"

    def after(flag: str, n: int = 1) -> list[str]:
        i = argv.index(flag)
        return argv[i + 1 : i + 1 + n]

    assert after("--served-model-name", 3) == ["llama2:7b", "llama2", "llama2:latest"]
    assert after("--gpu-memory-utilization") == ["0.6"]
    assert after("--max-model-len") == ["4096"]
    assert after("--tensor-parallel-size") == ["2"]
    assert "--enable-prefix-caching" in argv
    assert "--enable-auto-tool-choice" in argv and after("--tool-call-parser") == ["llama3_json"]
    assert after("--reasoning-parser") == ["deepseek_r1"]
    # Strict JSON under `format` by default: vLLM ignores the switch per request.
    config = json.loads(after("--structured-outputs-config")[0])
    assert config == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert after("--max-num-seqs") == ["64"]
    assert after("--chat-template") == ["/templates/my chat.jinja"]
    assert argv[-2:] == ["--dtype", "half"]
    assert after("--port") == ["8000"] and after("--host") == ["0.0.0.0"]
    # the key stays in the environment (vLLM reads VLLM_API_KEY), never in argv / logs
    assert "s3cret" not in proc.stdout + proc.stderr
    assert "--api-key" not in argv


def test_entrypoint_minimal_and_defaults() -> None:
    proc = entrypoint(
        {
            "MODEL_NAME": "Qwen/Qwen2.5-7B-Instruct",
            "ENABLE_PREFIX_CACHING": "false",
            "QUIET_HEALTH_LOGS": "false",
            "TOOL_CALL_PARSER": "",
            "SERVED_MODEL_NAME": "",
            "STRUCTURED_OUTPUTS_CONFIG": "",
        }
    )
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.splitlines()
    assert argv == [
        "vllm",
        "serve",
        "Qwen/Qwen2.5-7B-Instruct",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--no-enable-prefix-caching",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "MODEL_NAME is required"),
        ({"MODEL_NAME": "m", "ENABLE_PREFIX_CACHING": "maybe"}, "expected true/false"),
    ],
)
def test_entrypoint_errors(env: dict[str, str], message: str) -> None:
    proc = entrypoint(env)
    assert proc.returncode == 64
    assert message in proc.stderr


@pytest.mark.parametrize("name", ["Dockerfile.adapter", "Dockerfile.vllm"])
def test_dockerfiles_build_offline_and_without_buildkit(name: str) -> None:
    """A ``# syntax=`` line makes BuildKit pull a frontend image first (an air-gapped build
    stops there); ``COPY --chmod`` and ``RUN --mount`` need BuildKit (the classic builder of
    Engine 20.10 refuses them)."""
    text = (ROOT / name).read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE), name
    for word, rest in instructions(ROOT / name):
        assert not (word in ("COPY", "ADD") and "--chmod" in rest), (name, rest)
        assert not (word == "RUN" and "--mount" in rest), (name, rest)
