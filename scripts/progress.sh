# Sourced by the setup scripts (setup-vllm-cpu.sh, prepare-models.sh, setup-webui.sh): a long
# step prints a line every 15 s, so a slow machine never looks stuck, and an installer's own
# output can go to a log instead of the terminal, one line said if it fails. The
# caller defines say (its progress line, with its own prefix).

progress_wait() {  # progress_wait PID WHAT: a line every 15 s until PID ends; PID's status
    local pid="$1" what="$2" started=${SECONDS}
    while kill -0 "${pid}" 2>/dev/null; do
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
            sleep 1
            kill -0 "${pid}" 2>/dev/null || break 2
        done
        say "still ${what} ($((SECONDS - started)) s so far)"
    done
    wait "${pid}"
}

logged() {  # logged LOG WHAT CMD...: CMD's output appended to LOG, a progress line here
    local log="$1" what="$2"
    shift 2
    "$@" >>"${log}" 2>&1 &
    if ! progress_wait $! "${what}"; then  # one line: what failed, its last words, where
        local last
        last="$(grep -v '^[[:space:]]*$' "${log}" | tail -n 1 | cut -c1-160)"
        say "failed: ${what}: ${last:-no output}; the whole output is in ${log}"
        return 1
    fi
}
