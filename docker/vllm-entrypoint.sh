#!/usr/bin/env bash
# Turns environment variables into `vllm serve` arguments (Dockerfile.vllm).
#
#   MODEL_NAME              HF repo id or local path (required), e.g. Qwen/Qwen2.5-7B-Instruct
#   SERVED_MODEL_NAME       one or more names, space or comma separated; the first one is
#                           used in responses/metrics. Ollama-style tags work:
#                           "qwen2.5:7b qwen2.5:7b-instruct" -> clients keep their model names
#   GPU_MEMORY_UTILIZATION  fraction of the WHOLE GPU vLLM pre-allocates (0.33 default 0.92);
#                           lower it (0.55-0.7) when Ollama shares the GPU
#   MAX_MODEL_LEN           context length (e.g. 8192, 32k, auto)
#   TENSOR_PARALLEL_SIZE    number of GPUs to shard the model over
#   ENABLE_PREFIX_CACHING   true/false; unset keeps vLLM's default (on)
#   TOOL_CALL_PARSER        e.g. hermes, llama3_json, mistral; adds --enable-auto-tool-choice
#   REASONING_PARSER        e.g. deepseek_r1, qwen3
#   STRUCTURED_OUTPUTS_CONFIG  JSON for --structured-outputs-config. Default:
#                           {"backend":"xgrammar","disable_any_whitespace":true}, so JSON under
#                           Ollama's `format` is compact, as Ollama's grammar makes it; without
#                           it a small model pads the object with blanks until max_tokens (vLLM
#                           ignores the switch per request). Empty: vLLM's own default.
#   VLLM_API_KEY            read by vLLM itself from the environment (0.33 falls back to it when
#                           --api-key is absent); deliberately NOT put on the command line,
#                           where `ps` and `docker inspect` would show it
#   SERVE_PORT              listen port (8000)
#   QUIET_HEALTH_LOGS       true (default): no access-log lines for /health and /metrics
#   VLLM_EXTRA_ARGS         anything else, parsed with shell quoting rules, e.g.
#                           "--max-num-seqs 64 --dtype bfloat16 --chat-template '/t/x.jinja'"
#   VLLM_ENTRYPOINT_DRY_RUN 1: print the command, one argument per line, and exit
# Arguments given to the container (compose `command:`) are appended last.
set -euo pipefail

log() { printf '[vllm-entrypoint] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 64; }

is_true() {
  case "${1,,}" in
    1 | true | yes | on) return 0 ;;
    0 | false | no | off | "") return 1 ;;
    *) die "expected true/false, got '$1'" ;;
  esac
}

[[ -n "${MODEL_NAME:-}" ]] || die "MODEL_NAME is required (an HF repo id such as Qwen/Qwen2.5-7B-Instruct, or a path)"

args=(vllm serve "$MODEL_NAME" --host 0.0.0.0 --port "${SERVE_PORT:-8000}")

if [[ -n "${SERVED_MODEL_NAME:-}" ]]; then
  read -r -a names <<<"${SERVED_MODEL_NAME//,/ }"
  ((${#names[@]} > 0)) && args+=(--served-model-name "${names[@]}")
fi
[[ -n "${GPU_MEMORY_UTILIZATION:-}" ]] && args+=(--gpu-memory-utilization "$GPU_MEMORY_UTILIZATION")
[[ -n "${MAX_MODEL_LEN:-}" ]] && args+=(--max-model-len "$MAX_MODEL_LEN")
[[ -n "${TENSOR_PARALLEL_SIZE:-}" ]] && args+=(--tensor-parallel-size "$TENSOR_PARALLEL_SIZE")
if [[ -n "${ENABLE_PREFIX_CACHING:-}" ]]; then
  if is_true "$ENABLE_PREFIX_CACHING"; then
    args+=(--enable-prefix-caching)
  else
    args+=(--no-enable-prefix-caching)
  fi
fi
[[ -n "${TOOL_CALL_PARSER:-}" ]] && args+=(--enable-auto-tool-choice --tool-call-parser "$TOOL_CALL_PARSER")
[[ -n "${REASONING_PARSER:-}" ]] && args+=(--reasoning-parser "$REASONING_PARSER")
structured="${STRUCTURED_OUTPUTS_CONFIG-{\"backend\":\"xgrammar\",\"disable_any_whitespace\":true\}}"
[[ -n "$structured" ]] && args+=(--structured-outputs-config "$structured")
is_true "${QUIET_HEALTH_LOGS:-true}" && args+=(--disable-access-log-for-endpoints "/health,/metrics")

if [[ -n "${VLLM_EXTRA_ARGS:-}" ]]; then
  # shlex instead of eval: quotes are honoured, nothing is executed.
  mapfile -t extra < <(python3 -c 'import os, shlex; print("\n".join(shlex.split(os.environ["VLLM_EXTRA_ARGS"])))')
  args+=("${extra[@]}")
fi
args+=("$@")

if [[ -n "${VLLM_API_KEY:-}" ]]; then
  log "API key: set (vLLM reads VLLM_API_KEY; /v1/* needs 'Authorization: Bearer ...')"
else
  log "API key: none (keep vLLM on an internal network)"
fi
log "HF cache: ${HF_HOME:-/root/.cache/huggingface}; the first start downloads the weights there"
log "exec: ${args[*]}"

if is_true "${VLLM_ENTRYPOINT_DRY_RUN:-false}"; then
  printf '%s\n' "${args[@]}"
  exit 0
fi
exec "${args[@]}"
