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
