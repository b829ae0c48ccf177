# What every part of run.sh uses: the local stack's ports (each one overridable from the
# environment), the test stack's port range, the timeouts; the stack being worked on (use_stack,
# its directories, its stack.env); log, warn, die and timing; pid and port checks; wait_until;
# start_process and stop_process; render_template.
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash disable=SC2034 # the settings are read by the other files run.sh sources

# ---------------------------------------------------------------------------------------------
# Ports of the local stack. Each one can be overridden from the environment. Keep them below
# 32768 (the kernel's ephemeral range starts there) and outside 35672-35682, which Debian's
# RabbitMQ keeps for its CLI tools' own Erlang node.
# ---------------------------------------------------------------------------------------------
NGINX_PORT="${PAREDAO_NGINX_PORT:-8080}"
API_PORTS="${PAREDAO_API_PORTS:-8081 8082}"          # one API replica per port: api-1, api-2, ...
CONSUMER_PORT="${PAREDAO_CONSUMER_PORT:-8091}"
AMQP_PORT="${PAREDAO_AMQP_PORT:-5672}"
RABBITMQ_DIST_PORT="${PAREDAO_RABBITMQ_DIST_PORT:-25672}"
EPMD_PORT="${PAREDAO_EPMD_PORT:-4369}"
RABBITMQ_MGMT_PORT="${PAREDAO_RABBITMQ_MGMT_PORT:-15672}"
RABBITMQ_PROMETHEUS_PORT="${PAREDAO_RABBITMQ_PROMETHEUS_PORT:-15692}"
MONGO_PORT="${PAREDAO_MONGO_PORT:-27017}"
PROMETHEUS_PORT="${PAREDAO_PROMETHEUS_PORT:-9090}"
NGINX_EXPORTER_PORT="${PAREDAO_NGINX_EXPORTER_PORT:-9113}"
NODE_EXPORTER_PORT="${PAREDAO_NODE_EXPORTER_PORT:-9100}"

# The test stack takes free ports from this range at run time, never one of the local stack's.
TEST_PORT_MIN=20000
TEST_PORT_MAX=32000

# How long a component may take to become ready, and to stop before it is killed.
READY_TIMEOUT="${PAREDAO_READY_TIMEOUT:-60}"
RABBITMQ_READY_TIMEOUT="${PAREDAO_RABBITMQ_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${PAREDAO_STOP_TIMEOUT:-15}"

# Set by use_stack.
STACK=""
STACK_DIR=""
PID_DIR=""
LOG_DIR=""

# Set by `up`, so that a failure says what is left running.
STARTING_LOCAL_STACK=0

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    if [[ "$STARTING_LOCAL_STACK" == 1 ]]; then
        printf 'what did start is still running: ./run.sh status shows it, ./run.sh down stops it\n' >&2
    fi
    exit 1
}

# Milliseconds since the epoch (EPOCHREALTIME's separator follows the locale: keep digits only).
now_ms() { local t="${EPOCHREALTIME//[!0-9]/}"; printf '%s' "$((10#$t / 1000))"; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%ds' "$((ms / 1000))" "$(((ms % 1000) / 100))"; }

amqp_url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f' "$AMQP_PORT"; }

# Selects the stack the following functions work on: "local" or "test".
use_stack() {
    STACK="$1"
    STACK_DIR="$RUN_ROOT/$STACK"
    PID_DIR="$STACK_DIR/pids"
    LOG_DIR="$STACK_DIR/logs"
}

make_stack_dirs() {
    mkdir -p "$PID_DIR" "$LOG_DIR"
}

# The ports a stack was started with, so that `down` and `status` see the same ones even when the
# environment that overrode them is gone.
save_stack_env() {
    local var
    {
        printf '# Written by run.sh when the %s stack started.\n' "$STACK"
        for var in NGINX_PORT API_PORTS CONSUMER_PORT AMQP_PORT RABBITMQ_DIST_PORT EPMD_PORT \
            RABBITMQ_MGMT_PORT RABBITMQ_PROMETHEUS_PORT MONGO_PORT MONGO_URL MONGO_KIND \
            PROMETHEUS_PORT NGINX_EXPORTER_PORT NODE_EXPORTER_PORT; do
            printf '%s=%q\n' "$var" "${!var}"
        done
    } >"$STACK_DIR/stack.env"
}

load_stack_env() {
    if [[ -f "$STACK_DIR/stack.env" ]]; then
        # shellcheck source=/dev/null
        source "$STACK_DIR/stack.env"
    fi
}

# A zombie still answers kill -0; it counts as stopped.
pid_alive() {
    local pid="$1"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

pid_of() {
    local file="$PID_DIR/$1.pid"
    [[ -s "$file" ]] || return 1
    tr -dc '0-9' <"$file"
}

is_running() {
    local pid
    pid="$(pid_of "$1")" || return 1
    pid_alive "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_ok <url> [curl options...]: true when the URL answers 200.
http_ok() {
    local url="$1"
    shift
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null)" == 200 ]]
}

# Refuses to start a component on a port that something else already holds: it would fail later,
# and more obscurely.
ensure_port_free() {
    local name="$1" port="$2"
    if port_open "$port"; then
        die "cannot start $name: 127.0.0.1:$port is already in use by another process (ss -ltnp 'sport = :$port' tells which); stop it or choose another port"
    fi
}

show_log_tail() {
    local file="$1"
    if [[ -s "$file" ]]; then
        printf -- '--- last lines of %s ---\n' "$file" >&2
        tail -n 25 "$file" >&2
        printf -- '---\n' >&2
    fi
}

# wait_until <what> <timeout-seconds> <pid-or-empty> <check command...>
# Polls the check until it passes. Gives up at the deadline, or at once when the process that
# should answer has exited. The log shown on failure is that of the first word of <what>.
wait_until() {
    local name="$1" timeout="$2" pid="$3"
    shift 3
    local logfile="$LOG_DIR/${name%% *}.log"
    local start deadline
    start="$(now_ms)"
    deadline=$((start + timeout * 1000))
    until "$@"; do
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            show_log_tail "$logfile"
            die "$name exited before it was ready (log: $logfile)"
        fi
        if (($(now_ms) > deadline)); then
            show_log_tail "$logfile"
            die "$name was not ready within ${timeout}s (log: $logfile)"
        fi
        sleep 0.1
    done
    log "$name ready in $(elapsed "$start")"
}

# start_process <name> <port> <command...>
# Starts a foreground server in its own session (so a Ctrl-C or a closed terminal does not reach
# it), with its output in logs/<name>.log and its pid in pids/<name>.pid. Does nothing when it is
# already running.
start_process() {
    local name="$1" port="$2"
    shift 2
    if is_running "$name"; then
        log "$name already running (pid $(pid_of "$name"))"
        return 0
    fi
    ensure_port_free "$name" "$port"
    log "starting $name on 127.0.0.1:$port"
    (cd "$REPO" && exec setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null) &
    echo "$!" >"$PID_DIR/$name.pid"
}

# stop_process <name> [signal]
# Asks the process to stop, gives it STOP_TIMEOUT seconds, then kills it and its children.
stop_process() {
    local name="$1" signal="${2:-TERM}" pid
    if ! pid="$(pid_of "$name")" || ! pid_alive "$pid"; then
        rm -f "$PID_DIR/$name.pid"
        return 0
    fi
    log "stopping $name (pid $pid)"
    local children
    children="$(ps -o pid= --ppid "$pid" 2>/dev/null | tr '\n' ' ' || true)"
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$(($(now_ms) + STOP_TIMEOUT * 1000))
    while pid_alive "$pid" && (($(now_ms) < deadline)); do
        sleep 0.1
    done
    if pid_alive "$pid"; then
        warn "$name (pid $pid) still running after ${STOP_TIMEOUT}s; killing it"
        local child
        for child in $children; do kill -KILL "$child" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Reap it when it is our own child, so it does not linger as a zombie.
    wait "$pid" 2>/dev/null || true
    rm -f "$PID_DIR/$name.pid"
}

# render_template <source> <destination> KEY=VALUE...
# Replaces every @KEY@ in source, except on comment lines (where the templates document their
# placeholders); a value may span several lines.
render_template() {
    local src="$1" dst="$2"
    shift 2
    local args=() pair key value bs="\\"
    for pair in "$@"; do
        key="${pair%%=*}"
        value="${pair#*=}"
        # Escape what sed's replacement gives a meaning to: \, the | delimiter, &, line breaks.
        value="${value//"$bs"/"$bs$bs"}"
        value="${value//"|"/"$bs|"}"
        value="${value//"&"/"$bs&"}"
        value="${value//$'\n'/"${bs}n"}"
        args+=(-e "/^[[:space:]]*#/!s|@${key}@|${value}|g")
    done
    mkdir -p "$(dirname "$dst")"
    sed "${args[@]}" "$src" >"$dst"
    local left
    left="$(grep -v '^[[:space:]]*#' "$dst" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ' || true)"
    [[ -z "$left" ]] || die "unreplaced placeholder in $dst: $left"
}
