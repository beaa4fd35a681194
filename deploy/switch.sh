#!/usr/bin/env bash
# One command to move the stack between phase 1 (all Ollama) and phase 2 (vLLM behind
# the adapter), check it, and roll back.
#
#   deploy/switch.sh up-vllm     phase 2; if it is not healthy, roll back to phase 1
#   deploy/switch.sh rollback    phase 1 (alias: up-ollama)
#   deploy/switch.sh status      which phase runs, and its containers
#   deploy/switch.sh smoke       run deploy/smoke.sh against the running phase
#   deploy/switch.sh validate    `docker compose config` on both phases, nothing started
#
# Options (before or after the command):
#   --with-apps     also start/check the existing services (compose profile `apps`);
#                   the same as COMPOSE_PROFILES=apps
#   --with-monitoring  also start Prometheus, Alertmanager and the blackbox exporter (compose
#                   profile `monitoring`, compose/monitoring.yml); the same as
#                   COMPOSE_PROFILES=monitoring. Left running by a switch or a rollback.
#   --no-rollback   leave a failed phase 2 as it is, for debugging
#   --cpu           CPU mode (the same as STACK_MODE=cpu)
#
# Several replicas of the text model (docs/deployment.md, "Several replicas"): VLLM_REPLICAS=N
# (1-8; 1, the default, runs no router) starts vllm-2..vllm-N too and vLLM's router in front of
# them, and points the adapter at the router; VLLM_WORKER_URLS adds replicas on other hosts.
#
# Environment:
#   COMPOSE_PROJECT_NAME  project name (llm-stack, the `name:` of both compose files)
#   COMPOSE_PROFILES      compose profiles, e.g. apps
#   STACK_MODE            gpu (default: production, NVIDIA GPUs) or cpu (no GPU: vLLM's CPU
#                         build with a small model, Ollama on CPU; adds compose/cpu.<phase>.yml)
#   EXTRA_COMPOSE_FILES   extra -f files, space separated (e.g. compose/apps.build.yml)
#   OLLAMA_HOST_PORT      the host port both phases publish (11434)
#   VLLM_WAIT_TIMEOUT     seconds to wait for vLLM to be healthy (1800: first start
#                         downloads the weights)
#   WAIT_TIMEOUT          seconds to wait for the other services (600)
#   DOCKER                the docker CLI (docker)
#   ENV_FILE              compose env file ($ROOT/.env); read here too, e.g. for the port
#
# Exit codes: 0 done; 1 refused or failed before anything changed / phase 1 failed;
# 2 phase 2 failed and phase 1 was restored; 3 phase 2 failed and the rollback failed too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/lib.sh
source "$ROOT/deploy/lib.sh"
ENV_FILE="${ENV_FILE:-$ROOT/.env}"
export ENV_FILE
load_env_file "$ENV_FILE"
replica_settings || exit 1
STACK_MODE="${STACK_MODE:-gpu}"
PHASE1_FILE="$ROOT/docker-compose-separated.yml"
PHASE2_FILE="$ROOT/docker-compose.vllm.yml"
DOCKER="${DOCKER:-docker}"
PROJECT="${COMPOSE_PROJECT_NAME:-llm-stack}"
PORT="${OLLAMA_HOST_PORT:-11434}"
VLLM_WAIT_TIMEOUT="${VLLM_WAIT_TIMEOUT:-1800}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600}"
ROLLBACK=1
STEP=0
STEPS=0

say() { printf '==> %s\n' "$*"; }
step() {
  STEP=$((STEP + 1))
  printf '\n==> [%d/%d] %s\n' "$STEP" "$STEPS" "$*"
}
warn() { printf '!!  %s\n' "$*" >&2; }
fail() {
  warn "$*"
  exit 1
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

phase_file() {
  case "$1" in
    vllm) echo "$PHASE2_FILE" ;;
    separated) echo "$PHASE1_FILE" ;;
    *) fail "unknown phase '$1'" ;;
  esac
}

# compose PHASE ARGS...: docker compose for one phase, with the mode's and the extra files.
compose() {
  local file
  file="$(phase_file "$1")"
  local -a files=(-f "$file")
  [[ "$STACK_MODE" == cpu ]] && files+=(-f "$ROOT/compose/cpu.$1.yml")
  shift
  [[ -f "$ENV_FILE" ]] && files=(--env-file "$ENV_FILE" "${files[@]}")
  local extra
  for extra in ${EXTRA_COMPOSE_FILES:-}; do
    [[ "$extra" = /* ]] || extra="$ROOT/$extra"
    files+=(-f "$extra")
  done
  "$DOCKER" compose --project-name "$PROJECT" "${files[@]}" "$@"
}

apps_enabled() { [[ ",${COMPOSE_PROFILES:-}," == *,apps,* ]]; }

# Services of the project whose containers are running, one per line.
running_services() {
  "$DOCKER" ps --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.Label "com.docker.compose.service"}}' | sort -u
}

# vllm | separated | conflict | none
current_phase() {
  local services p1=0 p2=0
  services="$(running_services)"
  grep -qx 'ollama' <<<"$services" && p1=1
  grep -qxE 'adapter|vllm(-[0-9]+|-router)?' <<<"$services" && p2=1
  if ((p1 && p2)); then
    echo conflict
  elif ((p2)); then
    echo vllm
  elif ((p1)); then
    echo separated
  else
    echo none
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# The long-running services of a phase (one-shot *-init jobs left out: they run in
# their own step, and `up --wait` would treat their exit as a failure).
long_running_services() {
  compose "$1" config --services | grep -v -- '-init$'
}

# validate [PHASE...]: docker compose config on each phase (default both).
validate() {
  local phase
  (($#)) || set -- separated vllm
  for phase in "$@"; do
    if ! compose "$phase" config --quiet; then
      fail "$(basename "$(phase_file "$phase")") is invalid (docker compose config failed); nothing was changed"
    fi
    say "$(basename "$(phase_file "$phase")"): valid"
  done
}

# stop_gateway PHASE: stop and remove the services of PHASE that hold port $PORT or the GPU
# (in phase 2 every replica and the router too, whatever VLLM_REPLICAS says now).
stop_gateway() {
  local -a services
  if [[ "$1" == vllm ]]; then services=(adapter vllm); else services=(ollama ollama-init); fi
  say "stopping ${services[*]} ($1) to free port $PORT and its GPU memory"
  compose "$1" stop "${services[@]}"
  compose "$1" rm --force --stop "${services[@]}"
  [[ "$1" == vllm ]] && stop_replicas 1 router
  return 0
}

# stop_replicas KEEP [router]: stop and remove the running replicas vllm-K with K > KEEP, and
# the router when asked; their compose profiles may be off now, so by the engine's labels.
stop_replicas() {
  local keep="$1" router="${2:-}" service id
  while read -r service id; do
    if [[ "$service" =~ ^vllm-([0-9]+)$ && ${BASH_REMATCH[1]} -gt $keep ]] ||
      [[ "$service" == vllm-router && -n "$router" ]]; then
      say "stopping $service"
      "$DOCKER" stop --time 30 "$id" >/dev/null && "$DOCKER" rm --force "$id" >/dev/null
    fi
  done < <("$DOCKER" ps --all --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.Label "com.docker.compose.service"}} {{.ID}}')
}

# wait_healthy PHASE SERVICE TIMEOUT: wait for the service's container to be healthy. A
# container that exits or restarts fails at once (a crash loop: a wrong model name, out of
# memory), not at the timeout, which can be half an hour for a first download.
wait_healthy() {
  local phase="$1" service="$2" timeout="$3" id state health restarts code
  local deadline=$((SECONDS + timeout))
  id="$(compose "$phase" ps --all --quiet "$service" | head -n 1)"
  [[ -n "$id" ]] || { warn "$service has no container"; return 1; }
  while :; do
    read -r state health restarts code < <("$DOCKER" inspect --format \
      '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.State.ExitCode}}' "$id")
    if [[ "$health" == healthy ]]; then
      say "$service is healthy"
      return 0
    fi
    if [[ "$state" == exited || "$state" == dead || "$restarts" != 0 ]]; then
      warn "$service stopped while starting ($state, restarted $restarts times, last exit code $code): it cannot start as configured"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "$service is still '$health' after ${timeout}s"
      return 1
    fi
    sleep 2
  done
}

ensure_port_free() {
  if port_busy; then
    warn "port $PORT is still in use by something outside this compose project"
    warn "(a host Ollama? try: sudo systemctl stop ollama; or: ss -ltnp 'sport = :$PORT')"
    return 1
  fi
  say "port $PORT is free"
}

run_smoke() {
  local phase="$1"
  local smoke_apps=0
  apps_enabled && smoke_apps=1
  SMOKE_APPS="$smoke_apps" bash "$ROOT/deploy/smoke.sh" "$phase"
}

# ---- phase 1 --------------------------------------------------------------------------
up_separated() {
  STEP=0
  STEPS=6
  say "switching to phase 1 (all Ollama): $(basename "$PHASE1_FILE"), project $PROJECT"

  # Only phase 1's file: a broken phase-2 file must not block a rollback.
  step "validating $(basename "$PHASE1_FILE")"
  validate separated

  step "making sure only one stack owns port $PORT"
  local phase
  phase="$(current_phase)"
  say "running now: $phase"
  if [[ "$phase" == vllm || "$phase" == conflict ]]; then
    stop_gateway vllm
  fi
  if [[ "$(current_phase)" != separated ]]; then
    ensure_port_free || return 1
  fi

  step "starting the text Ollama and the Vision Ollama, waiting until healthy (<= ${WAIT_TIMEOUT}s)"
  if ! compose separated up --detach --wait --wait-timeout "$WAIT_TIMEOUT" ollama vision-ollama; then
    warn "the Ollamas did not become healthy: docker compose -f $(basename "$PHASE1_FILE") logs ollama vision-ollama"
    return 1
  fi

  step "pulling the Ollama models (idempotent: only digests are checked once they are there)"
  local job
  for job in ollama-init vision-ollama-init; do
    if ! compose separated run --rm "$job"; then
      warn "$job failed: is the model name right, is the registry reachable, is the disk full?"
      return 1
    fi
  done

  step "starting the rest of phase 1$(apps_enabled && echo ' (with the apps)'), waiting until healthy (<= ${WAIT_TIMEOUT}s)"
  local -a services
  mapfile -t services < <(long_running_services separated)
  if ! compose separated up --detach --wait --wait-timeout "$WAIT_TIMEOUT" --remove-orphans "${services[@]}"; then
    warn "phase 1 services did not become healthy: $(basename "$0") status"
    return 1
  fi

  step "smoke test (phase 1)"
  if ! run_smoke separated; then
    warn "phase 1 smoke test failed"
    return 1
  fi
  say "phase 1 (all Ollama) is live on port $PORT"
}

# ---- phase 2 --------------------------------------------------------------------------
# Each failure prints why and returns 1; the caller rolls back.
up_vllm_steps() {
  STEP=0
  STEPS=6
  say "switching to phase 2 (vLLM + adapter): $(basename "$PHASE2_FILE"), project $PROJECT"

  # Both: phase 1 must be valid too, or there is nothing to roll back to.
  step "validating both compose files"
  validate || return 10

  step "making sure only one stack owns port $PORT"
  local phase
  phase="$(current_phase)"
  say "running now: $phase"
  if [[ "$phase" == none ]] && port_busy; then
    ensure_port_free || return 10
  fi
  if [[ "$phase" == separated || "$phase" == conflict ]]; then
    stop_gateway separated
  fi
  if [[ "$(current_phase)" != vllm ]]; then
    ensure_port_free || return 1
  fi

  local -a replicas
  mapfile -t replicas < <(replica_services)
  step "starting vLLM (${#replicas[@]} replica(s)), waiting until /health answers (<= ${VLLM_WAIT_TIMEOUT}s; the first start downloads the weights)"
  # Replicas beyond VLLM_REPLICAS (a smaller fleet than last time) and a router no longer
  # needed go first: they would hold GPUs and serve an old configuration.
  if router_enabled; then stop_replicas "${#replicas[@]}"; else stop_replicas 1 router; fi
  local replica
  if ! compose vllm up --detach "${replicas[@]}"; then
    warn "vLLM did not start"
    return 1
  fi
  for replica in "${replicas[@]}"; do
    if ! wait_healthy vllm "$replica" "$VLLM_WAIT_TIMEOUT"; then
      warn "vLLM did not become healthy: $replica"
      warn "last $replica log lines (look for 'CUDA out of memory', 401 from the hub, a wrong MODEL_NAME):"
      compose vllm logs --no-color --tail 40 "$replica" >&2 || true
      return 1
    fi
  done
  if router_enabled; then
    say "starting vLLM's router in front of them (policy ${VLLM_ROUTER_POLICY:-consistent_hash})"
    if ! compose vllm up --detach --wait --wait-timeout "$WAIT_TIMEOUT" vllm-router; then
      warn "the router did not become healthy"
      compose vllm logs --no-color --tail 40 vllm-router >&2 || true
      return 1
    fi
  fi

  # The adapter depends on vision-ollama-init, so compose pulls the vision models first.
  step "pulling the Vision Ollama models, then starting the adapter on port $PORT (<= ${WAIT_TIMEOUT}s)"
  if ! compose vllm up --detach --wait --wait-timeout "$WAIT_TIMEOUT" adapter; then
    warn "the adapter (or the vision model pull before it) did not become healthy"
    compose vllm logs --no-color --tail 40 adapter vision-ollama-init >&2 || true
    return 1
  fi

  step "starting the rest of phase 2$(apps_enabled && echo ' (with the apps)'), waiting until healthy (<= ${WAIT_TIMEOUT}s)"
  local -a services
  mapfile -t services < <(long_running_services vllm)
  if ! compose vllm up --detach --wait --wait-timeout "$WAIT_TIMEOUT" --remove-orphans "${services[@]}"; then
    warn "phase 2 services did not become healthy"
    return 1
  fi

  step "smoke test (phase 2)"
  if ! run_smoke vllm; then
    warn "phase 2 smoke test failed"
    return 1
  fi
}

up_vllm() {
  local rc=0
  up_vllm_steps || rc=$?
  if ((rc == 0)); then
    say "phase 2 (vLLM behind the adapter) is live on port $PORT"
    return 0
  fi
  if ((rc == 10)); then
    warn "refused: nothing was changed"
    return 1
  fi
  warn "PHASE 2 FAILED at step $STEP/$STEPS."
  if ((!ROLLBACK)); then
    warn "--no-rollback: leaving phase 2 as it is. Roll back with: $0 rollback"
    return 1
  fi
  warn "ROLLING BACK to phase 1 (all Ollama)."
  # Whatever phase 2 left (an unhealthy vLLM still holds its GPU memory) goes first.
  stop_gateway vllm || true
  if up_separated; then
    warn "ROLLED BACK: phase 1 is serving port $PORT again. Phase 2 is NOT live; see the messages above."
    return 2
  fi
  warn "ROLLBACK FAILED too: nothing healthy serves port $PORT. Check: $0 status"
  return 3
}

status() {
  local phase
  phase="$(current_phase)"
  case "$phase" in
    vllm) say "phase 2 (vLLM behind the adapter) is running" ;;
    separated) say "phase 1 (all Ollama) is running" ;;
    conflict) warn "BOTH phases have containers running: they fight for port $PORT. Run '$0 rollback' or '$0 up-vllm'." ;;
    none) say "no phase is running (project $PROJECT)" ;;
  esac
  if [[ "$phase" == vllm || "$phase" == separated ]]; then
    compose "$phase" ps
  fi
  [[ "$phase" != conflict ]]
}

smoke() {
  local phase
  phase="$(current_phase)"
  case "$phase" in
    vllm | separated) run_smoke "$phase" ;;
    *) fail "cannot smoke-test: running phase is '$phase'" ;;
  esac
}

main() {
  local cmd=""
  while (($#)); do
    case "$1" in
      --with-apps) export COMPOSE_PROFILES="${COMPOSE_PROFILES:+$COMPOSE_PROFILES,}apps" ;;
      --with-monitoring) export COMPOSE_PROFILES="${COMPOSE_PROFILES:+$COMPOSE_PROFILES,}monitoring" ;;
      --no-rollback) ROLLBACK=0 ;;
      --cpu) STACK_MODE=cpu ;;
      -h | --help | help) usage; return 0 ;;
      -*) usage >&2; fail "unknown option $1" ;;
      *) [[ -z "$cmd" ]] || fail "one command at a time"; cmd="$1" ;;
    esac
    shift
  done
  case "$STACK_MODE" in
    gpu | cpu) ;;
    *) fail "STACK_MODE must be gpu or cpu, not '$STACK_MODE'" ;;
  esac
  export STACK_MODE
  stack_mode_defaults
  case "$cmd" in
    up-vllm) up_vllm ;;
    rollback | up-ollama) up_separated ;;
    status) status ;;
    smoke) smoke ;;
    validate) validate separated vllm ;;
    "") usage >&2; return 1 ;;
    *) usage >&2; fail "unknown command '$cmd'" ;;
  esac
}

main "$@"
