# shellcheck shell=bash
# Sourced by deploy/switch.sh and deploy/smoke.sh.

# load_env_file FILE: export KEY=VALUE lines of a compose .env file, without overriding
# variables already set (the shell wins, as in docker compose). Not `source`: values such
# as SERVED_MODEL_NAME=a b c contain spaces and must not be executed.
load_env_file() {
  local file="$1" line key value
  [[ -f "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line#"${line%%[![:space:]]*}"}"
    [[ -z "$line" || "$line" == \#* ]] && continue
    line="${line#export }"
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    else
      value="${value%%[[:space:]]#*}"
      value="${value%"${value##*[![:space:]]}"}"
    fi
    [[ -n "${!key+set}" ]] || export "$key=$value"
  done <"$file"
}

# stack_mode_defaults: in CPU mode (STACK_MODE=cpu), the model defaults compose/cpu.*.yml give,
# for the scripts that read the same settings (smoke.sh's model); unset variables only.
stack_mode_defaults() {
  [[ "${STACK_MODE:-gpu}" == cpu ]] || return 0
  export SERVED_MODEL_NAME="${SERVED_MODEL_NAME:-qwen2.5:0.5b qwen2.5:0.5b-instruct}"
  export OLLAMA_TEXT_MODELS="${OLLAMA_TEXT_MODELS:-qwen2.5:0.5b}"
}

# replica_settings: several replicas of the text model (VLLM_REPLICAS, 1-8, and
# VLLM_WORKER_URLS for replicas on other hosts) behind vLLM's router: turns on the compose
# profiles of the router and of vllm-2..vllm-N and points the adapter at the router. One
# replica and no other host (the default): nothing changes, the adapter talks to vllm itself.
replica_settings() {
  local n="${VLLM_REPLICAS:-1}" k profiles
  if ! [[ "$n" =~ ^[1-8]$ ]]; then
    echo "VLLM_REPLICAS must be a number from 1 to 8, got '$n'" >&2
    return 1
  fi
  router_enabled || return 0
  profiles="router"
  for ((k = 2; k <= n; k++)); do profiles+=",replica-$k"; done
  export COMPOSE_PROFILES="${COMPOSE_PROFILES:+$COMPOSE_PROFILES,}$profiles"
  export ADAPTER_VLLM_URL="${ADAPTER_VLLM_URL:-http://vllm-router:8000}"
}

# router_enabled: true when the text model has several replicas (local or on other hosts).
router_enabled() {
  local urls="${VLLM_WORKER_URLS:-}"
  [[ "${VLLM_REPLICAS:-1}" != 1 || -n "${urls//[ ,]/}" ]]
}

# replica_services: the local replicas' services, vllm first, one per line.
replica_services() {
  local k
  echo vllm
  for ((k = 2; k <= ${VLLM_REPLICAS:-1}; k++)); do echo "vllm-$k"; done
}
