#!/usr/bin/env bash
# Open WebUI from PyPI, and Debian's Chromium with its driver, for the test that uses the
# adapter as a person does (tests/webui): .venv-webui holds open-webui, selenium and torch's
# CPU build, at the versions of tests/webui/constraints.txt.
#
#   scripts/setup-webui.sh          # make setup-webui; make test runs it
#
# Idempotent: a second run is a no-op (under a second) while the stamp matches the
# constraints. Cold: some minutes and about 3 GB (Open WebUI brings its whole stack);
# pip's cache serves it again. As root, installs chromium and chromium-driver with apt-get
# when missing; otherwise says how.
#
# Environment: WEBUI_VENV (default <repo>/.venv-webui), VLLM_PYTHON (interpreter, default
# python3.11), SETUP_LOG (pip's own output goes there; default .cache/logs/setup-webui.log),
# VLLM_TORCH_INDEX_URL (extra index for torch's CPU build, as scripts/setup-vllm-cpu.sh).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WEBUI_VENV:-${REPO_ROOT}/.venv-webui}"
CONSTRAINTS="${REPO_ROOT}/tests/webui/constraints.txt"
STAMP="${VENV}/.webui-stamp"
WANT="$(sha256sum "${CONSTRAINTS}" | cut -d' ' -f1)"
LOG="${SETUP_LOG:-${REPO_ROOT}/.cache/logs/setup-webui.log}"
START=${SECONDS}

log() { printf '[setup-webui] %s (%d s)\n' "$*" "$((SECONDS - START))"; }

say() { log "$@"; }
# shellcheck source=progress.sh
source "${REPO_ROOT}/scripts/progress.sh"
quietly() { logged "${LOG}" "$@"; }  # quietly WHAT CMD...

install_chromium() {  # waits for another apt-get's lock (make's Docker step may be
    # installing docker.io); the package lists are refreshed only when the install needs it
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
    local packages=(install --no-install-recommends chromium chromium-driver)
    "${apt[@]}" "${packages[@]}" || { "${apt[@]}" update && "${apt[@]}" "${packages[@]}"; }
}

mkdir -p "$(dirname "${LOG}")"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "installing Debian's chromium and chromium-driver (about 1 min)"
        quietly "installing chromium" install_chromium
    else
        log "chromium and chromedriver are missing: apt-get install chromium chromium-driver (as root)"
        exit 1
    fi
fi

if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${WANT}" && -x "${VENV}/bin/open-webui" ]]; then
    log "ok: ${VENV} (open-webui $(grep '^open-webui==' "${CONSTRAINTS}" | cut -d= -f3))"
    exit 0
fi
py="${VLLM_PYTHON:-$(command -v python3.11 || command -v python3)}"
rm -rf "${VENV}"
log "creating ${VENV}; pip's output: ${LOG}"
"${py}" -m venv "${VENV}"
pip=("${VENV}/bin/python" -m pip --disable-pip-version-check --no-input install --progress-bar off)
index=()
if [[ -n "${VLLM_TORCH_INDEX_URL:-}" ]]; then
    index=(--extra-index-url "${VLLM_TORCH_INDEX_URL}")
fi
# torch first, from its CPU build: PyPI's default build would bring CUDA's libraries.
quietly "installing torch (CPU)" "${pip[@]}" "${index[@]}" -c "${CONSTRAINTS}" torch
quietly "installing open-webui and selenium (some minutes cold)" \
    "${pip[@]}" "${index[@]}" -c "${CONSTRAINTS}" open-webui selenium
printf '%s' "${WANT}" >"${STAMP}"
log "ready: ${VENV} ($(du -sh "${VENV}" | cut -f1))"
