#!/usr/bin/env bash
# Start a working pair on this machine: vLLM (CPU) and the adapter in front of it on :11434.
#
#   make run                                   # vLLM on CPU + adapter; Ctrl-C stops both
#   VLLM_URL=http://gpu-box:8000 make run      # an existing vLLM (GPU): only the adapter
#   VLLM_MODEL=tiny make run                   # the tiny offline model, never a download
#   VLLM_MODEL=Qwen/Qwen2.5-0.5B-Instruct make run
#
# VLLM_MODEL defaults to "auto": Qwen/Qwen2.5-0.5B-Instruct when the Hugging Face hub answers
# (or the model is already in the local HF cache), else the tiny random model built offline
# (its text is noise, but every API shape, count and error is real).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
ADAPTER_PORT="${ADAPTER_PORT:-11434}"
REAL_MODEL="${REAL_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}"
say() { printf '[run] %s\n' "$*"; }

if [[ -n "${VLLM_URL:-}" ]]; then
    say "using the vLLM at ${VLLM_URL}; adapter on :${ADAPTER_PORT}"
    exec .venv/bin/python -m adapter --port "${ADAPTER_PORT}" --vllm-url "${VLLM_URL}"
fi

scripts/setup-vllm-cpu.sh

model="${VLLM_MODEL:-auto}"
if [[ "$model" == "auto" ]]; then
    if .venv-vllm/bin/python - "$REAL_MODEL" <<'PY' 2>/dev/null
import sys, urllib.request
from huggingface_hub import try_to_load_from_cache
if try_to_load_from_cache(sys.argv[1], "config.json"):
    raise SystemExit(0)
urllib.request.urlopen(f"https://huggingface.co/api/models/{sys.argv[1]}", timeout=3)
PY
    then model="$REAL_MODEL"; else model="tiny"; fi
fi
if [[ "$model" == "tiny" ]]; then
    unset VLLM_MODEL
    name="tiny-llm"
    say "serving the tiny offline model as 'tiny-llm' (no hub reachable, or VLLM_MODEL=tiny)"
else
    export VLLM_MODEL="$model"
    name="${SERVED_MODEL_NAME:-$model}"
    export VLLM_MAX_MODEL_LEN="${VLLM_MAX_MODEL_LEN:-4096}"
    say "serving ${model} (downloaded on first run into the Hugging Face cache)"
fi

VLLM_PORT="${VLLM_PORT:-8000}"
export VLLM_PORT
mkdir -p .cache/logs
scripts/serve-vllm-cpu.sh >.cache/logs/vllm-run.log 2>&1 &
vllm_pid=$!
trap 'say "stopping vLLM"; kill -TERM "$vllm_pid" 2>/dev/null; wait "$vllm_pid" 2>/dev/null || true' EXIT INT TERM
say "starting vLLM on 127.0.0.1:${VLLM_PORT} (log: .cache/logs/vllm-run.log)"
for _ in $(seq 1 600); do
    if ! kill -0 "$vllm_pid" 2>/dev/null; then
        say "vLLM exited during start-up:"; tail -n 30 .cache/logs/vllm-run.log; exit 1
    fi
    if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "http://127.0.0.1:${VLLM_PORT}/health" 2>/dev/null; then break; fi
    sleep 1
done
say "vLLM is ready; adapter on http://127.0.0.1:${ADAPTER_PORT} (Ctrl-C stops both). Try:"
say "  curl localhost:${ADAPTER_PORT}/api/chat -d '{\"model\": \"${name}\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"
.venv/bin/python -m adapter --port "${ADAPTER_PORT}" --vllm-url "http://127.0.0.1:${VLLM_PORT}" &
adapter_pid=$!
trap 'say "stopping"; kill -TERM "$adapter_pid" "$vllm_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT INT TERM
wait "$adapter_pid"
