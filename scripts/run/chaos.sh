# The fault suite:
#   ./run.sh chaos [args]        a chaos stack on free ports (run/chaos), then `paredao-load chaos`,
#                                which loads it and injects each fault through chaos-fault
#   ./run.sh chaos-fault ACTION  one fault on the running chaos stack: kill|stop|start NAME,
#                                term-all, up, consumers N, alarm on|off
# Sourced by run.sh, which calls cmd_chaos and cmd_chaos_fault.
# shellcheck shell=bash

# ---------------------------------------------------------------------------------------------
# The fault suite (issue #11)
# ---------------------------------------------------------------------------------------------

# Its own stack (run/chaos, free ports), then `paredao-load chaos`, which loads it and calls
# `run.sh chaos-fault` for each fault. Extra arguments go to it (`./run.sh chaos --help`).
cmd_chaos() {
    case "${1:-}" in
        -h | --help | --list) exec "$REPO/target/release/paredao-load" chaos "$@" ;;
    esac
    preflight
    build_release
    log "building the load generator (release)"
    (cd "$REPO" && cargo build --release -p loadgen) || die "cargo build failed"
    use_stack chaos
    (stop_stack)
    rm -rf "$STACK_DIR"
    choose_test_ports
    choose_app_ports
    load_generator_settings
    trap 'stop_stack' EXIT
    start_app_stack
    log "chaos suite against http://127.0.0.1:$NGINX_PORT (run dir $STACK_DIR)"
    PAREDAO_ADMIN_TOKEN="$(admin_token)" "$REPO/target/release/paredao-load" chaos --base "http://127.0.0.1:$NGINX_PORT" --api-ports "$API_PORTS" \
        --mgmt "http://127.0.0.1:$RABBITMQ_MGMT_PORT" --run-sh "$REPO/run.sh" --pid-dir "$PID_DIR" --out "$REPO/target/chaos" \
        --command "./run.sh chaos${*:+ $*}" "$@"
}

# One fault on the running chaos stack; only its own processes, by their pid files.
cmd_chaos_fault() {
    [[ $# -ge 1 ]] || die "usage: ./run.sh chaos-fault kill|stop|start NAME | term-all | up | consumers N | alarm on|off"
    use_stack chaos
    [[ -f "$STACK_DIR/stack.env" ]] || die "no chaos stack: start one with ./run.sh chaos"
    load_stack_env
    load_generator_settings
    local action="$1"
    shift
    case "$action" in
        kill) chaos_kill "${1:?kill NAME}" ;;
        stop) if [[ "${1:?stop NAME}" == rabbitmq ]]; then stop_rabbitmq; else stop_process "$1"; fi ;;
        start) chaos_start "${1:?start NAME}" ;;
        term-all) chaos_term_all ;;
        up) start_app_stack ;;
        consumers) chaos_consumers "${1:?consumers N}" ;;
        alarm) chaos_alarm "${1:?alarm on|off}" ;;
        *) die "unknown chaos-fault action '$action'" ;;
    esac
}

chaos_kill() {
    local name="$1" pid
    pid="$(pid_of "$name")" && pid_alive "$pid" || die "$name is not running on the chaos stack"
    log "SIGKILL to $name (pid $pid)"
    kill -KILL "$pid"
    while pid_alive "$pid"; do sleep 0.05; done
}

chaos_start() {
    case "$1" in
        consumer) start_consumer ;;
        mongo) start_mongo ;;
        rabbitmq) start_rabbitmq ;;
        api-*) start_apis ;;
        nginx) start_nginx ;;
        *) die "cannot start '$1' (consumer, mongo, rabbitmq, api-N, nginx)" ;;
    esac
}

# SIGTERM to every process of the stack at once, then waits for all of them to exit (killing
# what is left after STOP_TIMEOUT, and saying so).
chaos_term_all() {
    local file name pid pids=()
    for file in "$PID_DIR"/*.pid; do
        [[ -e "$file" ]] || continue
        name="$(basename "$file" .pid)"
        pid="$(pid_of "$name")" && pid_alive "$pid" || continue
        pids+=("$pid")
        log "SIGTERM to $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$(($(now_ms) + STOP_TIMEOUT * 1000)) left
    while :; do
        left=()
        for pid in "${pids[@]}"; do pid_alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && break
        if (($(now_ms) > deadline)); then
            warn "still running ${STOP_TIMEOUT}s after SIGTERM, killed: ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    for file in "$PID_DIR"/*.pid; do
        [[ -e "$file" ]] && rm -f "$file"
    done
    log "every process of the chaos stack has exited"
}

# Exactly N consumers.
chaos_consumers() {
    local count="$1" file n
    start_consumer "$count"
    for file in "$PID_DIR"/consumer-*.pid; do
        [[ -e "$file" ]] || continue
        n="$(basename "$file" .pid)"
        ((${n#consumer-} > count)) && stop_process "$n"
    done
    return 0
}

# The broker's memory alarm: a watermark of 1 byte blocks every publisher; `off` restores the
# default (0.4 of the machine's memory).
chaos_alarm() {
    local args
    case "$1" in
        on) args=(absolute 1) ;;
        off) args=(0.4) ;;
        *) die "alarm on|off" ;;
    esac
    (
        this_rabbitmq_env
        "$RABBITMQ_BIN/rabbitmqctl" set_vm_memory_high_watermark "${args[@]}"
    ) >>"$LOG_DIR/rabbitmqctl.log" 2>&1 || die "rabbitmqctl set_vm_memory_high_watermark ${args[*]} failed (log: $LOG_DIR/rabbitmqctl.log)"
    log "broker memory watermark: ${args[*]}"
}
