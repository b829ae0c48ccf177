# The local stack's verbs:
#   ./run.sh up            install what is missing, build, start the local stack, print its URLs
#   ./run.sh down [test]   stop the local stack (or what is left of a test stack)
#   ./run.sh status [test] each component: running or stopped, pid, port
#   ./run.sh logs [name]   follow the local stack's logs (all of them, or one)
#   ./run.sh build         cargo build --release -p api -p consumer
# Sourced by run.sh, which calls cmd_up, cmd_down, cmd_status, cmd_logs, cmd_build.
# shellcheck shell=bash disable=SC2034 # STARTING_LOCAL_STACK is read by die (lib/common.sh)

# ---------------------------------------------------------------------------------------------
# Verbs
# ---------------------------------------------------------------------------------------------
cmd_up() {
    preflight
    build_release
    STARTING_LOCAL_STACK=1
    use_stack local
    start_app_stack
    start_prometheus
    start_nginx_exporter
    start_node_exporter
    print_urls
}

cmd_down() {
    local stack="${1:-local}"
    case "$stack" in local | test) ;; *) die "unknown stack '$stack' (local or test)" ;; esac
    use_stack "$stack"
    stop_stack
}

cmd_status() {
    local stack="${1:-local}"
    case "$stack" in local | test) ;; *) die "unknown stack '$stack' (local or test)" ;; esac
    use_stack "$stack"
    print_status
}

cmd_logs() {
    use_stack local
    [[ -d "$LOG_DIR" ]] || die "no logs yet: $LOG_DIR does not exist (start the stack with ./run.sh up)"
    if [[ $# -eq 0 ]]; then
        exec tail -n 20 -F "$LOG_DIR"/*.log
    fi
    local file="$LOG_DIR/$1.log"
    if [[ ! -f "$file" ]]; then
        local names=() f
        for f in "$LOG_DIR"/*.log; do [[ -e "$f" ]] && names+=("$(basename "$f" .log)"); done
        die "no log named '$1'; there are: ${names[*]:-none}"
    fi
    exec tail -n 100 -F "$file"
}

cmd_build() {
    build_release
}
