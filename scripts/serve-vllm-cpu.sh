#!/usr/bin/env bash
# Run the real vLLM OpenAI-compatible server on CPU, in the foreground (exec).
#
#   scripts/setup-vllm-cpu.sh     # once: venv (.venv-vllm) + tiny offline model
#   scripts/serve-vllm-cpu.sh     # serves "tiny-llm" on http://127.0.0.1:8000
#
# Environment:
#   VLLM_MODEL          model to serve. Default: the tiny random Llama built by
#                       setup-vllm-cpu.sh (<repo>/.cache/models/tiny-llm; its twin whose template
#                       toggles thinking is <repo>/.cache/models/tiny-think), served offline
#                       (HF_HUB_OFFLINE=1). Any other local directory is also served offline.
#                       A hub id such as Qwen/Qwen2.5-0.5B-Instruct is passed to vLLM as-is and
#                       downloaded where the machine can reach the Hugging Face hub: then
#                       HF_HUB_OFFLINE is NOT forced (set it yourself to use only the HF cache).
#                       The defaults below (max-model-len 512, hermes tool parser, float32)
#                       are for the tiny model; override them for others as needed.
#   SERVED_MODEL_NAME   name clients use (default: tiny-llm for the tiny model, tiny-embed for
#                       it with VLLM_RUNNER=pooling, else VLLM_MODEL)
#   VLLM_PORT           port (default 8000); VLLM_HOST host (default 127.0.0.1)
#   VLLM_MAX_MODEL_LEN  --max-model-len (default 512)
#   VLLM_MAX_NUM_SEQS   --max-num-seqs (default 16)
#   VLLM_TOOL_PARSER    --tool-call-parser (default hermes, xlam for SmolLM2; empty: no auto
#                       tool choice)
#   VLLM_CHAT_TEMPLATE  --chat-template (default: the model's own; for SmolLM2
#                       (.cache/models/smollm2-135m) scripts/chat-templates/smollm2.jinja, the
#                       tool template of Ollama's library smollm2, whose calls xlam reads back)
#   VLLM_ENFORCE_STRICT_TOOL_CALLING  default 0 here (vLLM's default is 1). With 1, forced
#                       tool calls (tool_choice "required" or named) go through xgrammar
#                       structural tags whose JSON allows any whitespace, and a random model
#                       then pads with whitespace until max_tokens (or emits arguments such as
#                       `false` unless --tool-strict-level parameter). With 0, vLLM forces the
#                       call with a plain JSON schema (the tool's parameters), which honours
#                       disable_any_whitespace: a compact, schema-valid call every time.
#   VLLM_REASONING_PARSER  --reasoning-parser (default: off). "qwen3" works with the tiny
#                       model, but thinking is then on by default and a random model never
#                       closes </think>: all output lands in `reasoning` unless the request
#                       sends chat_template_kwargs {"enable_thinking": false}.
#   VLLM_RUNNER         "pooling" serves an embedding model (--runner pooling --convert embed)
#                       instead of a generative one (then no tool/structured-output flags)
#   VLLM_EXTRA_ARGS     extra arguments appended to the command line (word-split)
#   VLLM_VENV           the vLLM venv (default <repo>/.venv-vllm)
#   VLLM_CPUS           CPUs for the whole server (taskset -c list, e.g. 0 or 0-5); its OpenMP
#                       compute threads bind to the same list (VLLM_CPU_OMP_THREADS_BIND, unless
#                       set). Default: every CPU, with vLLM's own binding, which puts the compute
#                       thread on one CPU and leaves the others to its scheduler and API server.
#                       The real-vLLM benchmark uses it to give the adapter a CPU of its own.
#   VLLM_CPU_KVCACHE_SPACE  KV cache in whole GiB (default: 1 for other models; the tiny
#                       model gets VLLM_KV_CACHE_BYTES, default 64 MiB, see below)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-${REPO_ROOT}/.venv-vllm}"
TINY_MODEL_DIR="${TINY_MODEL_DIR:-${REPO_ROOT}/.cache/models/tiny-llm}"
TINY_THINK_DIR="${TINY_THINK_DIR:-${REPO_ROOT}/.cache/models/tiny-think}"
MODEL="${VLLM_MODEL:-${TINY_MODEL_DIR}}"
RUNNER="${VLLM_RUNNER:-generate}"

if [[ ! -x "${VENV}/bin/python" ]]; then
    echo "serve-vllm-cpu: no vLLM venv at ${VENV}; run scripts/setup-vllm-cpu.sh first" >&2
    exit 1
fi

tiny=0
if [[ "${MODEL}" == "${TINY_MODEL_DIR}" || "${MODEL}" == "${TINY_THINK_DIR}" ]]; then
    tiny=1
fi
if [[ "${tiny}" == 1 ]]; then
    if [[ ! -f "${MODEL}/config.json" ]]; then
        echo "serve-vllm-cpu: no tiny model at ${MODEL}; run scripts/setup-vllm-cpu.sh" >&2
        exit 1
    fi
    default_name="$(basename "${MODEL}")"
    if [[ "${RUNNER}" == "pooling" ]]; then
        default_name="tiny-embed"
    fi
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
elif [[ -d "${MODEL}" ]]; then
    default_name="$(basename "${MODEL}")"
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
else
    # A hub id: leave HF_HUB_OFFLINE to the caller so the model can be downloaded.
    default_name="${MODEL}"
fi
SERVED_NAME="${SERVED_MODEL_NAME:-${default_name}}"

CACHE_DIR="${REPO_ROOT}/.cache"
# KV cache size. VLLM_CPU_KVCACHE_SPACE (whole GiB) wins when set. Otherwise the tiny model
# gets 64 MiB (1 KiB per token: 65k tokens, far more than 16 x 512) instead of 1 GiB, which
# saves about 1 GB of RSS per server; other models get 1 GiB.
kv_args=()
if [[ -z "${VLLM_CPU_KVCACHE_SPACE:-}" ]]; then
    if [[ "${tiny}" == 1 ]]; then
        kv_args=(--kv-cache-memory-bytes "${VLLM_KV_CACHE_BYTES:-67108864}")
    else
        export VLLM_CPU_KVCACHE_SPACE=1
    fi
fi
export VLLM_CACHE_ROOT="${VLLM_CACHE_ROOT:-${CACHE_DIR}/vllm}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-${CACHE_DIR}/torchinductor}"
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_ENFORCE_STRICT_TOOL_CALLING="${VLLM_ENFORCE_STRICT_TOOL_CALLING:-0}"
mkdir -p "${VLLM_CACHE_ROOT}" "${TORCHINDUCTOR_CACHE_DIR}"

args=(
    --model "${MODEL}"
    --served-model-name "${SERVED_NAME}"
    --host "${VLLM_HOST:-127.0.0.1}"
    --port "${VLLM_PORT:-8000}"
    --dtype float32
    --max-model-len "${VLLM_MAX_MODEL_LEN:-512}"
    --max-num-seqs "${VLLM_MAX_NUM_SEQS:-16}"
    --enforce-eager
    "${kv_args[@]}"
)
if [[ "${RUNNER}" == "pooling" ]]; then
    args+=(--runner pooling --convert embed)
else
    args+=(--structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}')
    default_parser=hermes template=""
    if [[ "$(basename "${MODEL}")" == smollm2-135m ]]; then
        # As Ollama's library serves smollm2: tools rendered, calls read back.
        default_parser=xlam template="${REPO_ROOT}/scripts/chat-templates/smollm2.jinja"
    fi
    template="${VLLM_CHAT_TEMPLATE-${template}}"
    if [[ -n "${template}" ]]; then
        args+=(--chat-template "${template}")
    fi
    tool_parser="${VLLM_TOOL_PARSER-${default_parser}}"
    if [[ -n "${tool_parser}" ]]; then
        args+=(--enable-auto-tool-choice --tool-call-parser "${tool_parser}")
    fi
    if [[ -n "${VLLM_REASONING_PARSER:-}" ]]; then
        args+=(--reasoning-parser "${VLLM_REASONING_PARSER}")
    fi
fi
if [[ -n "${VLLM_EXTRA_ARGS:-}" ]]; then
    read -r -a extra <<<"${VLLM_EXTRA_ARGS}"
    args+=("${extra[@]}")
fi

# This script's own settings are not vLLM's: VLLM_PORT in particular is vLLM's base port for
# its internal sockets (it would collide with the HTTP port), and vLLM warns about unknown
# VLLM_* variables. Drop them from the server's environment.
launcher=()
if [[ -n "${VLLM_CPUS:-}" ]]; then
    export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-${VLLM_CPUS}}"
    launcher=(taskset -c "${VLLM_CPUS}")
fi
unset VLLM_CPUS VLLM_PORT VLLM_HOST VLLM_MODEL VLLM_RUNNER VLLM_TOOL_PARSER VLLM_REASONING_PARSER \
    VLLM_CHAT_TEMPLATE \
    VLLM_EXTRA_ARGS VLLM_MAX_MODEL_LEN VLLM_MAX_NUM_SEQS VLLM_KV_CACHE_BYTES VLLM_VENV \
    VLLM_PYTHON VLLM_TORCH_INDEX_URL VLLM_STARTUP_TIMEOUT VLLM_TEST_URL \
    VLLM_TEST_REASONING_URL VLLM_TEST_EMBED_URL \
    VLLM_TEST_SMOLLM2_URL

echo "serve-vllm-cpu: ${launcher[*]} ${VENV}/bin/python -m vllm.entrypoints.openai.api_server ${args[*]}" >&2
exec "${launcher[@]}" "${VENV}/bin/python" -m vllm.entrypoints.openai.api_server "${args[@]}"
