#!/usr/bin/env bash
# Smoke test of a running stack, from the Docker host, with curl only.
#
#   deploy/smoke.sh vllm        phase 2: vLLM healthy, adapter answers, Vision Ollama answers
#   deploy/smoke.sh separated   phase 1: text Ollama answers, Vision Ollama answers
#
# Environment (defaults match the compose files):
#   OLLAMA_ENDPOINT     http://127.0.0.1:${OLLAMA_HOST_PORT:-11434}  (adapter or text Ollama)
#   VISION_ENDPOINT     http://127.0.0.1:${VISION_OLLAMA_HOST_PORT:-11435}
#   VLLM_ENDPOINT       http://127.0.0.1:${VLLM_HOST_PORT:-8000}      (phase 2 only)
#   ROUTER_ENDPOINT     http://127.0.0.1:${VLLM_ROUTER_HOST_PORT:-8100} (phase 2 with replicas)
#   SMOKE_MODEL         text model to generate with (first word of SERVED_MODEL_NAME in
#                       phase 2, first of OLLAMA_TEXT_MODELS in phase 1; qwen2.5:7b)
#   SMOKE_VISION_MODELS models the Vision Ollama must list (VISION_MODELS: llava:7b nomic-embed-text)
#   SMOKE_APPS          1: also check each service's health URL (set by switch.sh --with-apps)
#   SMOKE_SERVICES      "name=url ..." to override the service health URLs
#   SMOKE_TIMEOUT       seconds per request (120; a cold first generate loads the model)
#   ENV_FILE            the compose .env whose settings (ports, models) apply ($ROOT/.env)
#   STACK_MODE          cpu: CPU mode's model defaults (compose/cpu.*.yml)
# Exit 0 when every check passes, 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/lib.sh
source "$ROOT/deploy/lib.sh"
load_env_file "${ENV_FILE:-$ROOT/.env}"
stack_mode_defaults

phase="${1:-vllm}"
case "$phase" in
  vllm | separated) ;;
  *)
    echo "usage: $0 vllm|separated" >&2
    exit 64
    ;;
esac

OLLAMA_ENDPOINT="${OLLAMA_ENDPOINT:-http://127.0.0.1:${OLLAMA_HOST_PORT:-11434}}"
VISION_ENDPOINT="${VISION_ENDPOINT:-http://127.0.0.1:${VISION_OLLAMA_HOST_PORT:-11435}}"
VLLM_ENDPOINT="${VLLM_ENDPOINT:-http://127.0.0.1:${VLLM_HOST_PORT:-8000}}"
ROUTER_ENDPOINT="${ROUTER_ENDPOINT:-http://127.0.0.1:${VLLM_ROUTER_HOST_PORT:-8100}}"
TIMEOUT="${SMOKE_TIMEOUT:-120}"
if [[ "$phase" == vllm ]]; then
  default_model="${SERVED_MODEL_NAME:-qwen2.5:7b}"
else
  default_model="${OLLAMA_TEXT_MODELS:-qwen2.5:7b}"
fi
default_model="${default_model//,/ }"
MODEL="${SMOKE_MODEL:-${default_model%% *}}"
VISION_MODELS="${SMOKE_VISION_MODELS:-${VISION_MODELS:-llava:7b nomic-embed-text}}"

passed=0
failed=0
BODY=""

# check NAME EXPECTED_SUBSTRING CURL_ARGS...: pass when curl succeeds (HTTP < 400) and
# the body contains EXPECTED_SUBSTRING (empty: anything).
check() {
  local name="$1" expect="$2"
  shift 2
  if BODY="$(curl -fsS --max-time "$TIMEOUT" "$@" 2>&1)" && [[ -z "$expect" || "$BODY" == *"$expect"* ]]; then
    printf 'PASS  %s\n' "$name"
    passed=$((passed + 1))
  else
    printf 'FAIL  %s\n      %s\n' "$name" "${BODY:0:300}"
    failed=$((failed + 1))
  fi
}

echo "smoke test, phase: $phase, model: $MODEL"

if [[ "$phase" == vllm ]]; then
  check "vLLM /health" "" "$VLLM_ENDPOINT/health"
  check "vLLM serves $MODEL (/v1/models)" "\"$MODEL\"" "$VLLM_ENDPOINT/v1/models" \
    ${VLLM_API_KEY:+-H "Authorization: Bearer $VLLM_API_KEY"}
  check "adapter GET /" "Ollama is running" "$OLLAMA_ENDPOINT/"
  check "adapter /health (vLLM reachable)" '"reachable":true' "$OLLAMA_ENDPOINT/health"
  if router_enabled; then
    check "vLLM's router: every replica in rotation" "All servers healthy" "$ROUTER_ENDPOINT/health"
  fi
else
  check "text Ollama GET /" "Ollama is running" "$OLLAMA_ENDPOINT/"
fi

# Prefix match: Ollama lists an untagged name as NAME:latest.
check "$OLLAMA_ENDPOINT /api/tags lists $MODEL" "\"$MODEL" "$OLLAMA_ENDPOINT/api/tags"
check "$OLLAMA_ENDPOINT /api/generate (short, $MODEL)" '"done":true' \
  -H 'Content-Type: application/json' \
  -d "{\"model\":\"$MODEL\",\"prompt\":\"Say OK.\",\"stream\":false,\"options\":{\"num_predict\":8,\"temperature\":0}}" \
  "$OLLAMA_ENDPOINT/api/generate"

check "Vision Ollama GET /" "Ollama is running" "$VISION_ENDPOINT/"
for m in $VISION_MODELS; do
  check "Vision Ollama has $m" "\"$m" "$VISION_ENDPOINT/api/tags"
done

if [[ "${SMOKE_APPS:-0}" == 1 ]]; then
  services="${SMOKE_SERVICES:-notes=http://127.0.0.1:${NOTES_PORT:-8100}${NOTES_HEALTH_PATH:-/health}
doc-processor=http://127.0.0.1:${DOC_PROCESSOR_PORT:-8101}${DOC_PROCESSOR_HEALTH_PATH:-/health}
rag=http://127.0.0.1:${RAG_PORT:-8102}${RAG_HEALTH_PATH:-/health}
ocr=http://127.0.0.1:${OCR_PORT:-8104}${OCR_HEALTH_PATH:-/health}
client-rag=http://127.0.0.1:${CLIENT_RAG_PORT:-8105}${CLIENT_RAG_HEALTH_PATH:-/health}
ner=http://127.0.0.1:${NER_PORT:-8108}${NER_HEALTH_PATH:-/health}
frontend=http://127.0.0.1:${FRONTEND_PORT:-3000}${FRONTEND_HEALTH_PATH:-/}}"
  for entry in $services; do
    check "service ${entry%%=*} (${entry#*=})" "" "${entry#*=}"
  done
fi

echo "smoke test result: $passed passed, $failed failed"
((failed == 0))
