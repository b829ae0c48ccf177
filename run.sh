#!/usr/bin/env bash
# Runs Paredão on this machine.
#
#   ./run.sh up            install what is missing, build, start the local stack, print its URLs
#   ./run.sh down [test]   stop the local stack (or what is left of a test stack)
#   ./run.sh status [test] each component: running or stopped, pid, port
#   ./run.sh logs [name]   follow the local stack's logs (all of them, or one: api-1, rabbitmq, ...)
#   ./run.sh test          start a private test stack on free ports, run every test, stop it
#   ./run.sh build         cargo build --release -p api -p consumer
#   ./run.sh bench         start a benchmark stack on free ports, load it, write target/bench/latest.{json,md}
#   ./run.sh chaos [--scenario NAME] [--rate N] [--secs S] [--backlog-secs S] ...
#                          the fault suite: a chaos stack on free ports, a steady load, one fault per
#                          scenario, then accepted == counted; writes target/chaos/latest.{json,md}
#                          (`./run.sh chaos --list` names the scenarios, `--help` every option)
#   ./run.sh chaos-fault ACTION  one fault on the running chaos stack (what `chaos` calls): kill NAME,
#                          stop NAME, start NAME, term-all, up, consumers N, alarm on|off
#   ./run.sh compose ...   the docker compose deployment: up [app|logging|monitoring|all], down, ps, logs
#   ./run.sh ansible PLAYBOOK [args]  ansible-playbook from ansible/ (native.yml: the native stack on a
#                          host; site.yml: the containers on one host or many; -i INVENTORY)
#   ./run.sh vote NAME     cast one vote through nginx, solving the captcha as the page does
#   ./run.sh fault RATIO   make that share (0 to 1) of votes fail on purpose with 500; 0 turns it off
#
# Everything a stack writes lives in run/<stack>/ (git-ignored): pids/<name>.pid, logs/<name>.log,
# and one directory per server for its config and data. Every server binds to 127.0.0.1 only.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_ROOT="$REPO/run"
# Every server started from here inherits this: the crowd of an opening minute is thousands of
# connections, each a file descriptor. Raised to the hard limit (the most an unprivileged
# process may take); where even that cannot be changed, the default stays.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

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

RABBITMQ_BIN=/usr/lib/rabbitmq/bin      # not /usr/sbin: that wrapper switches user and HOME
SECANTUSD="$REPO/.venv/bin/secantusd-py"
API_BIN="$REPO/target/release/api"
CONSUMER_BIN="$REPO/target/release/consumer"
# nginx's flood guard on the vote endpoint, per client address. A load generator on this
# machine is one address: `run.sh bench` raises it.
NGINX_VOTE_RATE="${PAREDAO_NGINX_VOTE_RATE:-20r/s}"
NGINX_VOTE_BURST="${PAREDAO_NGINX_VOTE_BURST:-40}"
# The surge guard: requests nginx lets through at once, per API replica (proxy/nginx.conf). Votes
# beyond it are answered 503 `overloaded` by nginx itself; each replica's own bound
# (configuration/base.yaml, admission) stands behind it.
NGINX_VOTES_IN_FLIGHT="${PAREDAO_NGINX_VOTES_IN_FLIGHT:-96}"
NGINX_READS_IN_FLIGHT="${PAREDAO_NGINX_READS_IN_FLIGHT:-512}"
# The slow-client guard: requests in flight per client address (proxy/nginx.conf, per_address).
# The load generator is thousands of connections per address: `run.sh bench` raises it.
NGINX_REQUESTS_PER_ADDRESS="${PAREDAO_NGINX_REQUESTS_PER_ADDRESS:-128}"
# host:port of a Graylog syslog UDP input for nginx's access log (none by default: no Graylog here).
GRAYLOG_SYSLOG="${PAREDAO_GRAYLOG_SYSLOG:-}"
# host:port of a Graylog GELF TCP input for the services' logs (none by default).
GRAYLOG_GELF="${PAREDAO_GRAYLOG_GELF:-}"
# The key that signs captcha challenges: made once per machine, shared by every replica, never
# committed (run/ is git-ignored).
SECRETS_DIR="$RUN_ROOT/secrets"

# Which configuration/<name>.yaml the services layer over base.yaml.
APP_ENV="${APP_ENVIRONMENT:-local}"

# Set by use_stack.
STACK=""
STACK_DIR=""
PID_DIR=""
LOG_DIR=""
# Set by start_mongo (or read back from the stack's stack.env).
MONGO_URL=""
MONGO_KIND=""
# Set by launch_rabbitmq, to tell how long the broker took to boot.
RABBITMQ_LAUNCHED_AT=""
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

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
preflight() {
    "$REPO/preflight.sh"
}

build_release() {
    # A deployment (ansible's native play) ships binaries built elsewhere.
    if [[ -n "${PAREDAO_SKIP_BUILD:-}" ]]; then
        [[ -x "$API_BIN" && -x "$CONSUMER_BIN" ]] || die "PAREDAO_SKIP_BUILD is set but $API_BIN or $CONSUMER_BIN is missing"
        log "using the installed binaries (PAREDAO_SKIP_BUILD)"
        return 0
    fi
    log "building api and consumer (release)"
    (cd "$REPO" && cargo build --release -p api -p consumer) || die "cargo build failed"
    [[ -x "$API_BIN" ]] || die "$API_BIN is missing after the build"
    [[ -x "$CONSUMER_BIN" ]] || die "$CONSUMER_BIN is missing after the build"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ (with its own epmd)
# ---------------------------------------------------------------------------------------------

# rabbitmq_env <stack> <amqp> <dist> <epmd> <mgmt> <prom>
# Gives one stack's broker a private world: its own HOME (Erlang cookie), node name, ports, epmd,
# config and data under run/<stack>/rabbitmq/. Writes that config and exports the environment
# that rabbitmq-server and rabbitmqctl both need; call it in a subshell.
rabbitmq_env() {
    local stack="$1" amqp="$2" dist="$3" epmd="$4" mgmt="$5" prom="$6"
    local dir="$RUN_ROOT/$stack/rabbitmq"
    mkdir -p "$dir/home" "$dir/mnesia"
    cat >"$dir/rabbitmq.conf" <<EOF
# Written by run.sh for the $stack stack; edits are overwritten.
listeners.tcp.default = 127.0.0.1:$amqp
management.tcp.ip = 127.0.0.1
management.tcp.port = $mgmt
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $prom
log.console = false
log.file.level = info
# Queue depth per queue (votes, votes.dead), not only totals: the pipeline dashboard needs it.
prometheus.return_per_object_metrics = true
EOF
    printf '[rabbitmq_management,rabbitmq_prometheus].\n' >"$dir/enabled_plugins"

    export HOME="$dir/home"
    # A short name on "localhost" resolves on every machine, whatever its hostname.
    export RABBITMQ_NODENAME="paredao-$stack@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$amqp"
    export RABBITMQ_DIST_PORT="$dist"
    export ERL_EPMD_PORT="$epmd"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    # Points away from /etc/rabbitmq/rabbitmq-env.conf so the machine's settings can't leak in.
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$RUN_ROOT/$stack/logs"
    export RABBITMQ_LOGS="$RUN_ROOT/$stack/logs/rabbitmq.log"
    export RABBITMQ_PID_FILE="$RUN_ROOT/$stack/pids/rabbitmq.pid"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

this_rabbitmq_env() {
    rabbitmq_env "$STACK" "$AMQP_PORT" "$RABBITMQ_DIST_PORT" "$EPMD_PORT" \
        "$RABBITMQ_MGMT_PORT" "$RABBITMQ_PROMETHEUS_PORT"
}

# Our own epmd, in the foreground and on the stack's port, so that `down` can stop it by its pid
# (an epmd that Erlang starts by itself daemonizes and outlives the broker).
start_epmd() {
    start_process epmd "$EPMD_PORT" epmd -address 127.0.0.1 -port "$EPMD_PORT"
    wait_until epmd "$READY_TIMEOUT" "$(pid_of epmd)" epmd_answers
}

epmd_answers() {
    epmd -port "$EPMD_PORT" -names >/dev/null 2>&1
}

# Starts the broker detached and returns at once: it takes several seconds to boot, which the
# caller can spend on something else before wait_rabbitmq.
launch_rabbitmq() {
    if is_running rabbitmq; then
        log "rabbitmq already running (pid $(pid_of rabbitmq))"
        return 0
    fi
    local port
    for port in "$AMQP_PORT" "$RABBITMQ_DIST_PORT" "$RABBITMQ_MGMT_PORT" "$RABBITMQ_PROMETHEUS_PORT"; do
        ensure_port_free rabbitmq "$port"
    done
    log "starting rabbitmq on 127.0.0.1:$AMQP_PORT (management $RABBITMQ_MGMT_PORT, metrics $RABBITMQ_PROMETHEUS_PORT, node paredao-$STACK@localhost)"
    rm -f "$PID_DIR/rabbitmq.pid"
    (
        this_rabbitmq_env
        cd "$STACK_DIR/rabbitmq"
        setsid "$RABBITMQ_BIN/rabbitmq-server" -detached >>"$LOG_DIR/rabbitmq-launcher.log" 2>&1 </dev/null
    ) || die "rabbitmq-server did not start (log: $LOG_DIR/rabbitmq-launcher.log)"
    RABBITMQ_LAUNCHED_AT="$(now_ms)"
    write_rabbitmqctl
}

# run/<stack>/rabbitmq/rabbitmqctl: rabbitmqctl bound to this stack's node (its environment and
# Erlang cookie), for people and for the tests that raise a resource alarm on purpose.
write_rabbitmqctl() {
    local wrapper="$STACK_DIR/rabbitmq/rabbitmqctl" var
    {
        printf '#!/usr/bin/env bash\n# Written by run.sh: rabbitmqctl for the %s stack.\n' "$STACK"
        (
            this_rabbitmq_env
            for var in HOME RABBITMQ_NODENAME ERL_EPMD_PORT ERL_EPMD_ADDRESS RABBITMQ_CONF_ENV_FILE \
                RABBITMQ_CTL_ERL_ARGS RABBITMQ_CONFIG_FILE; do
                printf 'export %s=%q\n' "$var" "${!var}"
            done
        )
        printf 'exec %q "$@"\n' "$RABBITMQ_BIN/rabbitmqctl"
    } >"$wrapper"
    chmod +x "$wrapper"
}

wait_rabbitmq() {
    local start
    start="$(now_ms)"
    # `rabbitmqctl wait` waits for the pid file, then for the broker to finish booting.
    if ! (
        this_rabbitmq_env
        timeout "$((RABBITMQ_READY_TIMEOUT + 5))" "$RABBITMQ_BIN/rabbitmqctl" wait \
            --timeout "$RABBITMQ_READY_TIMEOUT" "$RABBITMQ_PID_FILE"
    ) >>"$LOG_DIR/rabbitmqctl.log" 2>&1; then
        show_log_tail "$LOG_DIR/rabbitmqctl.log"
        show_log_tail "$LOG_DIR/rabbitmq.log"
        die "rabbitmq was not ready within ${RABBITMQ_READY_TIMEOUT}s (logs: $LOG_DIR/rabbitmq*.log)"
    fi
    # Tests and people use the management API too; make sure it answers before saying "ready".
    wait_until "rabbitmq management" "$READY_TIMEOUT" "$(pid_of rabbitmq)" \
        http_ok "http://127.0.0.1:$RABBITMQ_MGMT_PORT/api/overview" -u guest:guest
    if [[ -n "$RABBITMQ_LAUNCHED_AT" ]]; then
        log "rabbitmq ready: waited $(elapsed "$start"), launched $(elapsed "$RABBITMQ_LAUNCHED_AT") ago"
    else
        log "rabbitmq ready in $(elapsed "$start")"
    fi
}

start_rabbitmq() {
    start_epmd
    launch_rabbitmq
    wait_rabbitmq
}

stop_rabbitmq() {
    local pid
    # rabbitmqctl finds the node through epmd; without it, it would start a stray epmd of its own
    # and still fail, so then the broker is stopped by its pid (the VM shuts down on SIGTERM).
    if pid="$(pid_of rabbitmq)" && pid_alive "$pid" && is_running epmd; then
        log "stopping rabbitmq (pid $pid)"
        # `rabbitmqctl stop <pidfile>` returns once the VM has exited.
        if ! (
            this_rabbitmq_env
            timeout 60 "$RABBITMQ_BIN/rabbitmqctl" stop "$RABBITMQ_PID_FILE"
        ) >>"$LOG_DIR/rabbitmqctl.log" 2>&1; then
            warn "rabbitmqctl stop failed (log: $LOG_DIR/rabbitmqctl.log); stopping rabbitmq by its pid"
        fi
    fi
    stop_process rabbitmq
}

stop_epmd() {
    stop_process epmd
}

# ---------------------------------------------------------------------------------------------
# MongoDB: the user's own, a local mongod, or SecantusDB
# ---------------------------------------------------------------------------------------------
start_mongo() {
    if [[ "$STACK" == local && -n "${PAREDAO_MONGO_URL:-}" ]]; then
        MONGO_URL="$PAREDAO_MONGO_URL"
        MONGO_KIND=external
        log "using the MongoDB at PAREDAO_MONGO_URL; not starting one"
        return 0
    fi
    # retryWrites=false: SecantusDB slows to a crawl after ~10k retryable writes.
    MONGO_URL="mongodb://127.0.0.1:$MONGO_PORT/?retryWrites=false&directConnection=true"
    mkdir -p "$STACK_DIR/mongo"
    if command -v mongod >/dev/null 2>&1; then
        start_mongod
    else
        start_secantusdb
    fi
}

# A real mongod when the machine has one, as a one-node replica set so transactions work.
start_mongod() {
    MONGO_KIND=mongod
    start_process mongo "$MONGO_PORT" mongod --replSet paredao --bind_ip 127.0.0.1 \
        --port "$MONGO_PORT" --dbpath "$STACK_DIR/mongo"
    wait_until mongo "$READY_TIMEOUT" "$(pid_of mongo)" port_open "$MONGO_PORT"
    if command -v mongosh >/dev/null 2>&1; then
        mongosh --quiet --port "$MONGO_PORT" --eval \
            "try { rs.status() } catch (e) { rs.initiate({_id: 'paredao', members: [{_id: 0, host: '127.0.0.1:$MONGO_PORT'}]}) }" \
            >>"$LOG_DIR/mongo.log" 2>&1 || warn "could not initiate the replica set (log: $LOG_DIR/mongo.log)"
    else
        warn "mongosh not found: initiate the replica set 'paredao' yourself if transactions fail"
    fi
}

start_secantusdb() {
    MONGO_KIND=secantusdb
    [[ -x "$SECANTUSD" ]] || die "$SECANTUSD not found; run ./preflight.sh"
    # --sync-on-commit: without it the stand-in does not fsync its log at a commit, and a killed
    # store loses transactions it had already answered (and the consumer already acked).
    start_process mongo "$MONGO_PORT" "$SECANTUSD" --host 127.0.0.1 --port "$MONGO_PORT" \
        --sync-on-commit --storage-path "$STACK_DIR/mongo"
    wait_until mongo "$READY_TIMEOUT" "$(pid_of mongo)" port_open "$MONGO_PORT"
}

stop_mongo() {
    stop_process mongo
}

# ---------------------------------------------------------------------------------------------
# Consumer and API replicas
# ---------------------------------------------------------------------------------------------
# start_consumer [count]: the consumer ("consumer", on CONSUMER_PORT) and, when count is above 1,
# that many in all: consumer-2, consumer-3, ... on free ports, competing for the same queue.
start_consumer() {
    local count="${1:-1}" i port
    start_one_consumer consumer "$CONSUMER_PORT"
    for ((i = 2; i <= count; i++)); do
        is_running "consumer-$i" && continue
        port="$(free_ports 1 "$CONSUMER_PORT" "$NGINX_PORT" $API_PORTS "$AMQP_PORT" "$RABBITMQ_DIST_PORT" \
            "$EPMD_PORT" "$RABBITMQ_MGMT_PORT" "$RABBITMQ_PROMETHEUS_PORT" "$MONGO_PORT")"
        start_one_consumer "consumer-$i" "$port"
    done
}

start_one_consumer() {
    local name="$1" port="$2"
    [[ -x "$CONSUMER_BIN" ]] || die "$CONSUMER_BIN not found; run ./run.sh build"
    start_process "$name" "$port" env \
        APP_ENVIRONMENT="$APP_ENV" \
        APP_BROKER__URL="$(amqp_url)" \
        APP_STORE__URL="$MONGO_URL" \
        APP_TELEMETRY__GELF_ADDRESS="$GRAYLOG_GELF" \
        APP_CONSUMER__PORT="$port" \
        "$CONSUMER_BIN"
    wait_until "$name" "$READY_TIMEOUT" "$(pid_of "$name")" \
        http_ok "http://127.0.0.1:$port/health/ready"
}

# secret NAME: prints the machine's secret NAME (32 random bytes, hex), generating it on first use.
secret() {
    local file="$SECRETS_DIR/$1"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$SECRETS_DIR"
        chmod 700 "$SECRETS_DIR"
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
    fi
    cat "$file"
}

# The key that signs captcha challenges.
captcha_hmac_key() { secret captcha_hmac_key; }
# The bearer token of /api/admin/* (the deliberate error path).
admin_token() { secret admin_token; }

start_apis() {
    [[ -x "$API_BIN" ]] || die "$API_BIN not found; run ./run.sh build"
    local i=0 port
    for port in $API_PORTS; do
        i=$((i + 1))
        start_process "api-$i" "$port" env \
            APP_ENVIRONMENT="$APP_ENV" \
            APP_APPLICATION__PORT="$port" \
            APP_CAPTCHA__HMAC_KEY="$(captcha_hmac_key)" \
            APP_ADMIN__TOKEN="$(admin_token)" \
            APP_TELEMETRY__GELF_ADDRESS="$GRAYLOG_GELF" \
            APP_BROKER__URL="$(amqp_url)" \
            APP_STORE__URL="$MONGO_URL" \
            "$API_BIN"
    done
    i=0
    for port in $API_PORTS; do
        i=$((i + 1))
        wait_until "api-$i" "$READY_TIMEOUT" "$(pid_of "api-$i")" \
            http_ok "http://127.0.0.1:$port/health/ready"
    done
}

stop_apis() {
    local file
    for file in "$PID_DIR"/api-*.pid; do
        [[ -e "$file" ]] || continue
        stop_process "$(basename "$file" .pid)"
    done
}

# The consumer and any further ones that start_consumer COUNT started.
stop_consumer() {
    local file
    for file in "$PID_DIR"/consumer-*.pid; do
        [[ -e "$file" ]] || continue
        stop_process "$(basename "$file" .pid)"
    done
    stop_process consumer
}

# ---------------------------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------------------------
nginx_conf() { printf '%s' "$STACK_DIR/nginx/nginx.conf"; }

render_nginx_conf() {
    local upstreams="" port replicas=0 nofile
    for port in $API_PORTS; do
        [[ -n "$upstreams" ]] && upstreams+=$'\n        '
        # Why these parameters: the comment above @UPSTREAMS@ in proxy/nginx.conf.
        upstreams+="server 127.0.0.1:$port max_fails=3 fail_timeout=1s;"
        replicas=$((replicas + 1))
    done
    nofile="$(ulimit -Hn)"
    [[ "$nofile" == unlimited || "$nofile" -gt 65536 ]] && nofile=65536
    # nginx creates the leaf of proxy_cache_path, not its parents.
    mkdir -p "$STACK_DIR/nginx/tmp" "$STACK_DIR/nginx/cache"
    render_template "$REPO/proxy/nginx.conf" "$(nginx_conf)" \
        REPO="$REPO" RUN="$STACK_DIR" PORT="$NGINX_PORT" UPSTREAMS="$upstreams" \
        VOTE_RATE="$NGINX_VOTE_RATE" VOTE_BURST="$NGINX_VOTE_BURST" NOFILE="$nofile" \
        VOTES_IN_FLIGHT="$((replicas * NGINX_VOTES_IN_FLIGHT))" READS_IN_FLIGHT="$((replicas * NGINX_READS_IN_FLIGHT))" \
        REQUESTS_PER_ADDRESS="$NGINX_REQUESTS_PER_ADDRESS" \
        ACCESS_LOG_SYSLOG="${GRAYLOG_SYSLOG:+access_log syslog:server=$GRAYLOG_SYSLOG,tag=nginx_access,severity=info json;}"
}

check_nginx_conf() {
    local out
    if ! out="$(nginx -t -q -e "$LOG_DIR/nginx-error.log" -c "$(nginx_conf)" -p "$STACK_DIR/nginx/" 2>&1)"; then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

start_nginx() {
    if is_running nginx; then
        log "nginx already running (pid $(pid_of nginx))"
        return 0
    fi
    render_nginx_conf
    check_nginx_conf || die "nginx rejected $(nginx_conf) (template: proxy/nginx.conf)"
    ensure_port_free nginx "$NGINX_PORT"
    log "starting nginx on 127.0.0.1:$NGINX_PORT"
    # nginx daemonizes itself and writes pids/nginx.pid (the `pid` directive of the template).
    nginx -e "$LOG_DIR/nginx-error.log" -c "$(nginx_conf)" -p "$STACK_DIR/nginx/" \
        || die "nginx did not start (log: $LOG_DIR/nginx-error.log)"
    wait_until nginx "$READY_TIMEOUT" "" http_ok "http://127.0.0.1:$NGINX_PORT/nginx_status"
}

# QUIT is nginx's graceful stop: requests in flight are answered first.
stop_nginx() {
    stop_process nginx QUIT
}

# ---------------------------------------------------------------------------------------------
# Prometheus and exporters
# ---------------------------------------------------------------------------------------------
prometheus_conf() { printf '%s' "$STACK_DIR/prometheus/prometheus.yml"; }

render_prometheus_conf() {
    local targets="" port
    for port in $API_PORTS; do
        [[ -n "$targets" ]] && targets+=", "
        targets+="'127.0.0.1:$port'"
    done
    render_template "$REPO/observability/prometheus/prometheus.yml" "$(prometheus_conf)" \
        REPO="$REPO" \
        API_TARGETS="$targets" \
        CONSUMER_PORT="$CONSUMER_PORT" \
        RABBITMQ_PROMETHEUS_PORT="$RABBITMQ_PROMETHEUS_PORT" \
        NGINX_EXPORTER_PORT="$NGINX_EXPORTER_PORT" \
        NODE_EXPORTER_PORT="$NODE_EXPORTER_PORT" \
        PROMETHEUS_PORT="$PROMETHEUS_PORT"
}

check_prometheus_conf() {
    promtool check config "$(prometheus_conf)"
}

start_prometheus() {
    if ! is_running prometheus; then
        render_prometheus_conf
        check_prometheus_conf >/dev/null || die "promtool rejected $(prometheus_conf) (template: observability/prometheus/prometheus.yml)"
        mkdir -p "$STACK_DIR/prometheus/data"
    fi
    start_process prometheus "$PROMETHEUS_PORT" prometheus \
        --config.file="$(prometheus_conf)" \
        --storage.tsdb.path="$STACK_DIR/prometheus/data" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
        --web.enable-lifecycle
    wait_until prometheus "$READY_TIMEOUT" "$(pid_of prometheus)" \
        http_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

start_nginx_exporter() {
    start_process nginx-exporter "$NGINX_EXPORTER_PORT" prometheus-nginx-exporter \
        -nginx.scrape-uri "http://127.0.0.1:$NGINX_PORT/nginx_status" \
        -web.listen-address "127.0.0.1:$NGINX_EXPORTER_PORT"
    wait_until nginx-exporter "$READY_TIMEOUT" "$(pid_of nginx-exporter)" \
        http_ok "http://127.0.0.1:$NGINX_EXPORTER_PORT/metrics"
}

start_node_exporter() {
    start_process node-exporter "$NODE_EXPORTER_PORT" prometheus-node-exporter \
        --web.listen-address="127.0.0.1:$NODE_EXPORTER_PORT"
    wait_until node-exporter "$READY_TIMEOUT" "$(pid_of node-exporter)" \
        http_ok "http://127.0.0.1:$NODE_EXPORTER_PORT/metrics"
}

# ---------------------------------------------------------------------------------------------
# Whole stacks
# ---------------------------------------------------------------------------------------------

# Stops in the reverse order of start: the API replicas flush their last batches to RabbitMQ
# while the consumer still runs, and the consumer finishes before the broker and the store go.
stop_stack() {
    load_stack_env
    if [[ ! -d "$PID_DIR" ]] || [[ -z "$(ls -A "$PID_DIR" 2>/dev/null)" ]]; then
        log "$STACK stack: nothing running"
        return 0
    fi
    stop_process node-exporter
    stop_process nginx-exporter
    stop_process prometheus
    stop_nginx
    stop_apis
    stop_consumer
    stop_mongo
    stop_rabbitmq
    stop_epmd
    # Anything else that left a pid file (a component added later, say).
    local file
    for file in "$PID_DIR"/*.pid; do
        [[ -e "$file" ]] || continue
        stop_process "$(basename "$file" .pid)"
    done
    log "$STACK stack stopped"
}

# name<TAB>port lines, in start order.
stack_components() {
    printf 'epmd\t%s\n' "$EPMD_PORT"
    printf 'rabbitmq\t%s (management %s, metrics %s)\n' "$AMQP_PORT" "$RABBITMQ_MGMT_PORT" "$RABBITMQ_PROMETHEUS_PORT"
    if [[ "${MONGO_KIND:-}" == external ]]; then
        printf 'mongo\texternal: %s\n' "$MONGO_URL"
    else
        printf 'mongo\t%s%s\n' "$MONGO_PORT" "${MONGO_KIND:+ ($MONGO_KIND)}"
    fi
    [[ "$STACK" == test ]] && return 0
    printf 'consumer\t%s\n' "$CONSUMER_PORT"
    local i=0 port
    for port in $API_PORTS; do
        i=$((i + 1))
        printf 'api-%s\t%s\n' "$i" "$port"
    done
    printf 'nginx\t%s\n' "$NGINX_PORT"
    printf 'prometheus\t%s\n' "$PROMETHEUS_PORT"
    printf 'nginx-exporter\t%s\n' "$NGINX_EXPORTER_PORT"
    printf 'node-exporter\t%s\n' "$NODE_EXPORTER_PORT"
}

print_status() {
    load_stack_env
    printf '%s stack (%s)\n' "$STACK" "$STACK_DIR"
    printf '  %-15s %-8s %-8s %s\n' NAME STATE PID PORT
    local name port state pid
    while IFS=$'\t' read -r name port; do
        if is_running "$name"; then
            state=running
            pid="$(pid_of "$name")"
        else
            state=stopped
            pid=-
        fi
        if [[ "$name" == mongo && "${MONGO_KIND:-}" == external ]]; then
            state=external
        fi
        printf '  %-15s %-8s %-8s %s\n' "$name" "$state" "$pid" "$port"
    done < <(stack_components)
}

print_urls() {
    cat <<EOF

Paredão is up:
  site                 http://127.0.0.1:$NGINX_PORT/
  API (through nginx)  http://127.0.0.1:$NGINX_PORT/api/...
  Swagger UI           http://127.0.0.1:$NGINX_PORT/swagger/
  RabbitMQ management  http://127.0.0.1:$RABBITMQ_MGMT_PORT/  (guest / guest)
  Prometheus           http://127.0.0.1:$PROMETHEUS_PORT/
  MongoDB              $(printf '%s' "$MONGO_URL" | sed -E 's#//[^/@]+@#//***@#')

Vote (solving the captcha as the page does):
  ./run.sh vote ana
Make 20% of votes fail on purpose (the SRE drill), then turn it off:
  ./run.sh fault 0.2    ./run.sh fault 0

Logs: ./run.sh logs [name]    Status: ./run.sh status    Stop: ./run.sh down
EOF
}

# ---------------------------------------------------------------------------------------------
# Test stack
# ---------------------------------------------------------------------------------------------

# free_ports <count> [port to avoid...]
# Ports nothing is bound to right now, taken at random from TEST_PORT_MIN..TEST_PORT_MAX so they
# stay out of the ephemeral range and RabbitMQ's CLI range.
free_ports() {
    python3 - "$TEST_PORT_MIN" "$TEST_PORT_MAX" "$@" <<'EOF'
import random, socket, sys
low, high, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
avoid = {int(p) for p in sys.argv[4:]}
chosen = []
for _ in range(10000):
    if len(chosen) == count:
        break
    port = random.randint(low, high)
    if port in avoid or port in chosen or 35672 <= port <= 35682:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    chosen.append(port)
if len(chosen) < count:
    sys.exit("no free ports left in %d-%d" % (low, high))
print(*chosen)
EOF
}

choose_test_ports() {
    local api_ports local_ports
    read -ra api_ports <<<"$API_PORTS"
    local_ports=(
        "$NGINX_PORT" "${api_ports[@]}" "$CONSUMER_PORT" "$AMQP_PORT" "$RABBITMQ_DIST_PORT" "$EPMD_PORT"
        "$RABBITMQ_MGMT_PORT" "$RABBITMQ_PROMETHEUS_PORT" "$MONGO_PORT" "$PROMETHEUS_PORT"
        "$NGINX_EXPORTER_PORT" "$NODE_EXPORTER_PORT"
    )
    local ports
    ports="$(free_ports 6 "${local_ports[@]}")" || die "could not find free ports for the test stack"
    read -r AMQP_PORT RABBITMQ_DIST_PORT EPMD_PORT RABBITMQ_MGMT_PORT RABBITMQ_PROMETHEUS_PORT MONGO_PORT <<<"$ports"
}

# Free ports for nginx, two API replicas and the consumer, next to the broker's and the store's.
choose_app_ports() {
    local ports api_1 api_2
    ports="$(free_ports 4 "$AMQP_PORT" "$RABBITMQ_DIST_PORT" "$EPMD_PORT" "$RABBITMQ_MGMT_PORT" \
        "$RABBITMQ_PROMETHEUS_PORT" "$MONGO_PORT")"
    read -r NGINX_PORT api_1 api_2 CONSUMER_PORT <<<"$ports"
    API_PORTS="$api_1 $api_2"
}

# The stack a vote travels through: broker, store, consumer, API replicas, nginx.
start_app_stack() {
    make_stack_dirs
    start_rabbitmq
    start_mongo
    save_stack_env
    start_consumer
    start_apis
    start_nginx
}

# Starts RabbitMQ and the store of a fresh test stack. RabbitMQ boots while `during_boot` runs
# (compiling the tests), and is waited for afterwards.
start_test_stack() {
    local during_boot="$1"
    make_stack_dirs
    start_epmd
    launch_rabbitmq
    start_mongo
    save_stack_env
    "$during_boot"
    wait_rabbitmq
}

export_test_env() {
    export PAREDAO_TEST_AMQP_URL
    PAREDAO_TEST_AMQP_URL="$(amqp_url)"
    export PAREDAO_TEST_MONGO_URL="$MONGO_URL"
    export PAREDAO_TEST_RABBITMQ_MGMT_URL="http://127.0.0.1:$RABBITMQ_MGMT_PORT"
    export PAREDAO_TEST_RUN_DIR="$STACK_DIR"
    # For the tests that raise a broker alarm (run alone, after the others: see run_rust_tests).
    export PAREDAO_TEST_RABBITMQCTL="$STACK_DIR/rabbitmq/rabbitmqctl"
    # For the tests that start a store of their own (to kill it).
    export PAREDAO_TEST_SECANTUSD="$SECANTUSD"
    log "test stack: PAREDAO_TEST_AMQP_URL=$PAREDAO_TEST_AMQP_URL"
    log "test stack: PAREDAO_TEST_MONGO_URL=$PAREDAO_TEST_MONGO_URL"
    log "test stack: PAREDAO_TEST_RABBITMQ_MGMT_URL=$PAREDAO_TEST_RABBITMQ_MGMT_URL"
}

has_nextest() {
    cargo nextest --version >/dev/null 2>&1
}

# --- test steps: each one runs under `set -e` in its own subshell (see run_step) -------------

compile_tests() {
    cd "$REPO"
    if has_nextest; then
        cargo nextest run --workspace --no-run
    else
        cargo test --workspace --no-run
    fi
}

run_rust_tests() {
    cd "$REPO"
    if has_nextest; then
        cargo nextest run --workspace --no-fail-fast
        # The ignored tests put the shared broker into a resource alarm, which would block every
        # other test's publishes: they run here, alone.
        cargo nextest run --workspace --no-fail-fast --run-ignored only --test-threads 1
    else
        cargo test --workspace --no-fail-fast
        cargo test --workspace --no-fail-fast -- --ignored --test-threads 1
    fi
}

test_prometheus_config() {
    render_prometheus_conf
    check_prometheus_conf
}

# Alerting/recording rules live in observability/prometheus/rules/*.yml, their unit tests
# (`promtool test rules` files) in observability/prometheus/tests/*.yml.
prometheus_rule_files() { compgen -G "$REPO/observability/prometheus/rules/*.yml" || true; }
prometheus_rule_tests() { compgen -G "$REPO/observability/prometheus/tests/*.yml" || true; }

test_prometheus_rules() {
    local rules tests
    mapfile -t rules < <(prometheus_rule_files)
    mapfile -t tests < <(prometheus_rule_tests)
    promtool check rules "${rules[@]}"
    if ((${#tests[@]} > 0)); then
        promtool test rules "${tests[@]}"
    fi
}

test_nginx_config() {
    render_nginx_conf
    check_nginx_conf
}

# --- test bookkeeping -------------------------------------------------------------------------
STEP_RESULTS=()
STEP_FAILED=0

# run_step <title> <function>
# set -e is off inside any function called from `if`, so each step runs in a subshell that
# turns it back on: the first failing command fails the step.
run_step() {
    local title="$1"
    shift
    log "$title"
    local start rc
    start="$(now_ms)"
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    if ((rc == 0)); then
        STEP_RESULTS+=("$(printf 'PASS  %-22s %s' "$title" "$(elapsed "$start")")")
    else
        STEP_RESULTS+=("$(printf 'FAIL  %-22s %s (exit %s)' "$title" "$(elapsed "$start")" "$rc")")
        STEP_FAILED=$((STEP_FAILED + 1))
    fi
    return 0
}

skip_step() {
    STEP_RESULTS+=("$(printf 'SKIP  %-22s %s' "$1" "$2")")
}

has_step_passed() {
    local title="$1" result
    for result in "${STEP_RESULTS[@]}"; do
        [[ "$result" == "PASS  $title "* ]] && return 0
    done
    return 1
}

print_test_summary() {
    printf '\n==> test summary\n'
    local result
    for result in "${STEP_RESULTS[@]}"; do
        printf '  %s\n' "$result"
    done
    printf '  logs of the test stack: %s\n' "$LOG_DIR"
    if ((STEP_FAILED > 0)); then
        printf 'test run FAILED: %d step(s) failed\n' "$STEP_FAILED"
    else
        printf 'test run OK: every step passed\n'
    fi
}

# Hook: browser tests (headless Chromium driven by node) go here, once there are pages to test.
run_browser_tests() {
    if has_step_passed "compile tests"; then
        run_step "browser tests" browser_tests
    else
        skip_step "browser tests" "the services did not compile"
    fi
}

# The pages in headless Chromium against the real thing: a consumer, two API replicas and nginx
# on the test stack (debug binaries from the test build, configuration/e2e.yaml), on free ports.
browser_tests() {
    "$REPO/preflight.sh" browser
    API_BIN="$REPO/target/debug/api"
    CONSUMER_BIN="$REPO/target/debug/consumer"
    APP_ENV=e2e
    choose_app_ports
    start_consumer
    start_apis
    start_nginx
    # The next step (dashboard queries) measures this same stack.
    printf 'NGINX_PORT=%s\nAPI_PORTS="%s"\nCONSUMER_PORT=%s\n' "$NGINX_PORT" "$API_PORTS" "$CONSUMER_PORT" \
        >"$STACK_DIR/e2e-ports.env"
    rm -rf "$REPO/test-artifacts"
    log "browser tests against http://127.0.0.1:$NGINX_PORT (screenshots in test-artifacts/)"
    # The run directory and the replicas' ports: the nginx tests pause a replica by its pid file.
    (cd "$REPO/e2e" && PAREDAO_E2E_URL="http://127.0.0.1:$NGINX_PORT" PAREDAO_E2E_ARTIFACTS="$REPO/test-artifacts" \
        PAREDAO_E2E_RUN_DIR="$STACK_DIR" PAREDAO_E2E_API_PORTS="$API_PORTS" \
        node --test --test-concurrency=1 tests/)
}

# Every Grafana panel's query against a real Prometheus that scraped the browser tests' stack
# (nginx, two API replicas, the consumer, RabbitMQ, the exporters) during a short real load with
# the deliberate error path on.
dashboard_queries() {
    # shellcheck source=/dev/null
    source "$STACK_DIR/e2e-ports.env"
    read -r PROMETHEUS_PORT NGINX_EXPORTER_PORT NODE_EXPORTER_PORT <<<"$(free_ports 3 "$NGINX_PORT" $API_PORTS \
        "$CONSUMER_PORT" "$AMQP_PORT" "$RABBITMQ_DIST_PORT" "$EPMD_PORT" "$RABBITMQ_MGMT_PORT" \
        "$RABBITMQ_PROMETHEUS_PORT" "$MONGO_PORT")"
    start_nginx_exporter
    start_node_exporter
    start_prometheus
    local prom="http://127.0.0.1:$PROMETHEUS_PORT" base="http://127.0.0.1:$NGINX_PORT"
    cmd_fault 0.3 >/dev/null
    python3 "$REPO/scripts/smoke_load.py" "$base" --seconds 20 --expect-faults
    # Readiness, not a guess: Prometheus has scraped the faults at least twice (rate needs two).
    log "waiting for Prometheus to have scraped the injected faults"
    wait_until "prometheus data" 60 "$(pid_of prometheus)" prometheus_has \
        "$prom" 'sum(rate(paredao_votes_rejected_total{reason="injected_fault"}[1m])) > 0'
    python3 "$REPO/observability/grafana/check_dashboards.py" --prometheus "$prom"
    # The recording rules evaluate to data too (the alerts are covered by promtool's unit tests).
    wait_until "recording rules" 30 "$(pid_of prometheus)" prometheus_has "$prom" 'job:paredao_votes_accepted:rate1m'
    cmd_fault 0 >/dev/null
}

# The API against its own OpenAPI document, through nginx, with schemathesis (PyPI, in its own
# venv made on first use): property-based requests to every operation (valid and invalid data,
# methods the spec does not declare, stateful sequences along its links), and every answer must
# be documented: no 5xx, status, content type, headers and body as the spec says. On the browser
# tests' stack (configuration/e2e.yaml). Bounded: a fixed number of examples per operation, and
# `timeout` over each run.
#   - positive_data_acceptance is left out: a schema-valid vote is still refused without a solved
#     captcha and a real participant, which no generator can make.
#   - /health/* is not routed by nginx (orchestrators ask each replica): checked on a replica.
#   - /api/admin/fault (401 without the token, which is not given) skips the fuzzing phase:
#     generating its bodies trips a CPython 3.11.7 bug in hypothesis ("AST constructor recursion
#     depth mismatch"); examples, coverage and stateful phases still cover it.
SCHEMATHESIS_MAX_EXAMPLES="${PAREDAO_SCHEMATHESIS_MAX_EXAMPLES:-100}"
schemathesis_tests() {
    local venv="$REPO/.venv-schemathesis"
    if [[ ! -x "$venv/bin/schemathesis" ]]; then
        log "installing schemathesis into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis || die "pip install schemathesis failed"
    fi
    # shellcheck source=/dev/null
    source "$STACK_DIR/e2e-ports.env"
    local base="http://127.0.0.1:$NGINX_PORT" replica="http://127.0.0.1:${API_PORTS%% *}"
    local common=(--checks all --exclude-checks positive_data_acceptance --max-examples "$SCHEMATHESIS_MAX_EXAMPLES"
        --workers 2 --request-timeout 15 --no-color)
    local rc=0
    log "schemathesis through nginx ($base), $SCHEMATHESIS_MAX_EXAMPLES examples per operation"
    timeout 240 "$venv/bin/schemathesis" run "$base/api-docs/openapi.json" --url "$base" "${common[@]}" \
        --exclude-path-regex '^/health/' --phases examples,coverage,stateful || rc=1
    timeout 240 "$venv/bin/schemathesis" run "$base/api-docs/openapi.json" --url "$base" "${common[@]}" \
        --exclude-path-regex '^/health/|^/api/admin/fault$' --phases fuzzing || rc=1
    log "schemathesis on a replica ($replica): /health/*"
    timeout 120 "$venv/bin/schemathesis" run "$base/api-docs/openapi.json" --url "$replica" "${common[@]}" \
        --include-path-regex '^/health/' || rc=1
    return "$rc"
}

# prometheus_has <url> <query>: the query returns at least one series.
prometheus_has() {
    curl -fsS --get --data-urlencode "query=$2" "$1/api/v1/query" | grep -q '"result":\[{'
}

graylog_pack() {
    python3 "$REPO/observability/graylog/check_content_pack.py"
    bash "$REPO/observability/graylog/test_provision.sh"
}

cleanup_test_stack() {
    local rc=$?
    trap - EXIT
    stop_stack || true
    exit "$rc"
}

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

# The benchmark: its own stack (run/bench, free ports, release binaries, INFO logs on, captcha
# on at a trivial difficulty, per-client limits off because the load generator is one address),
# then paredao-load through nginx. Extra arguments go to paredao-load (see its --help).
cmd_bench() {
    preflight
    build_release
    log "building the load generator (release)"
    (cd "$REPO" && cargo build --release -p loadgen) || die "cargo build failed"
    use_stack bench
    (stop_stack)
    rm -rf "$STACK_DIR"
    choose_test_ports
    choose_app_ports
    # On two cores one replica (with its two worker threads) may beat two competing ones.
    [[ "${PAREDAO_BENCH_API_REPLICAS:-2}" == 1 ]] && API_PORTS="${API_PORTS%% *}"
    # Every vote still carries a real, verified, single-use challenge; only the work is trivial
    # (the server's cost to verify is one hash whatever the difficulty).
    export APP_CAPTCHA__DIFFICULTY__BASE="${PAREDAO_BENCH_DIFFICULTY:-10}"
    export APP_CAPTCHA__DIFFICULTY__FREE_PER_WINDOW=4000000000
    export APP_RATE_LIMIT__ENABLED=false
    NGINX_VOTE_RATE=1000000r/s
    NGINX_VOTE_BURST=1000000
    # paredao-load opens up to 7,000 connections from each of its addresses (127.0.1.N);
    # limit_conn takes at most 65535.
    NGINX_REQUESTS_PER_ADDRESS=60000
    trap 'stop_stack' EXIT
    start_app_stack
    local pids=() name
    for name in nginx api-1 api-2 consumer rabbitmq mongo; do
        is_running "$name" || continue
        pids+=(--pid "$name=$(pid_of "$name")")
    done
    log "benchmark against http://127.0.0.1:$NGINX_PORT ($(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB)"
    # The load generator stands for a crowd with CPUs of its own: it runs ahead of the stack on
    # the shared cores (where allowed), so that its own delays stay out of the latencies it
    # measures (it reports what is left of them as `client lag`).
    nice -n -10 "$REPO/target/release/paredao-load" --base "http://127.0.0.1:$NGINX_PORT" --paredao paredao-1 \
        --out "$REPO/target/bench" "${pids[@]}" "$@"
}

# ---------------------------------------------------------------------------------------------
# The fault suite (issue #11)
# ---------------------------------------------------------------------------------------------

# The chaos stack's settings, the bench's: captcha verified but trivial, per-client limits off
# (the load generator is one address). Exported, so that a component restarted by
# `chaos-fault` gets the same ones (and APP_CAPTCHA__EXPIRES_SECS, when set, reaches the APIs).
chaos_settings() {
    export APP_CAPTCHA__DIFFICULTY__BASE="${PAREDAO_BENCH_DIFFICULTY:-10}"
    export APP_CAPTCHA__DIFFICULTY__FREE_PER_WINDOW=4000000000
    export APP_RATE_LIMIT__ENABLED=false
    NGINX_VOTE_RATE=1000000r/s
    NGINX_VOTE_BURST=1000000
    # nginx's limit_conn takes at most 65535; the suite opens a few hundred connections.
    NGINX_REQUESTS_PER_ADDRESS=60000
}

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
    chaos_settings
    trap 'stop_stack' EXIT
    start_app_stack
    log "chaos suite against http://127.0.0.1:$NGINX_PORT (run dir $STACK_DIR)"
    "$REPO/target/release/paredao-load" chaos --base "http://127.0.0.1:$NGINX_PORT" --api-ports "$API_PORTS" \
        --mgmt "http://127.0.0.1:$RABBITMQ_MGMT_PORT" --run-sh "$REPO/run.sh" --pid-dir "$PID_DIR" --out "$REPO/target/chaos" \
        --command "./run.sh chaos${*:+ $*}" "$@"
}

# One fault on the running chaos stack; only its own processes, by their pid files.
cmd_chaos_fault() {
    [[ $# -ge 1 ]] || die "usage: ./run.sh chaos-fault kill|stop|start NAME | term-all | up | consumers N | alarm on|off"
    use_stack chaos
    [[ -f "$STACK_DIR/stack.env" ]] || die "no chaos stack: start one with ./run.sh chaos"
    load_stack_env
    chaos_settings
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

# ansible-playbook from its own venv (made on first use), run from ansible/ so ansible.cfg applies.
cmd_ansible() {
    [[ $# -ge 1 ]] || die "usage: ./run.sh ansible native.yml|site.yml [-i inventories/example] [ansible-playbook args]"
    local venv="$REPO/.venv-ansible"
    if [[ ! -x "$venv/bin/ansible-playbook" ]]; then
        log "installing ansible into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check ansible ansible-lint || die "pip install ansible failed"
    fi
    cd "$REPO/ansible" && exec "$venv/bin/ansible-playbook" "$@"
}

# One vote for participant $1 (of paredão $2, default the current one) through the local nginx.
cmd_vote() {
    [[ $# -ge 1 ]] || die "usage: ./run.sh vote PARTICIPANT [PAREDAO]"
    python3 "$REPO/scripts/vote.py" "$1" "http://127.0.0.1:$NGINX_PORT" "${2:-current}"
}

# The deliberate error path, for every API replica (they share the setting through the store).
cmd_fault() {
    [[ $# -eq 1 ]] || die "usage: ./run.sh fault RATIO   (0 to 1; 0 turns it off)"
    curl -fsS -X PUT -H "Authorization: Bearer $(admin_token)" -H 'content-type: application/json' \
        -d "{\"vote_error_ratio\": $1}" "http://127.0.0.1:$NGINX_PORT/api/admin/fault"
    echo
}

cmd_build() {
    build_release
}

cmd_test() {
    preflight
    # Leftovers of an interrupted run, stopped by their pid files before the directory goes.
    (use_stack test && stop_stack)
    use_stack test
    rm -rf "$STACK_DIR"
    choose_test_ports
    trap cleanup_test_stack EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "starting the test stack in $STACK_DIR"
    local stack_start
    stack_start="$(now_ms)"
    start_test_stack compile_step
    log "test stack ready, tests compiled, in $(elapsed "$stack_start")"
    export_test_env

    if has_step_passed "compile tests"; then
        run_step "rust tests" run_rust_tests
    else
        skip_step "rust tests" "the tests did not compile"
    fi
    # The code's shape, kept by the tools: formatting (rustfmt.toml) and every clippy lint.
    run_step "format (cargo fmt --check)" cargo fmt --all --check
    run_step "lints (cargo clippy -D warnings)" cargo clippy --workspace --all-targets --locked -- -D warnings
    run_step "prometheus config" test_prometheus_config
    if [[ -n "$(prometheus_rule_files)" ]]; then
        run_step "prometheus rules" test_prometheus_rules
    else
        skip_step "prometheus rules" "no rules in observability/prometheus/rules/"
    fi
    run_step "nginx config" test_nginx_config
    run_step "grafana dashboards (structure)" python3 "$REPO/observability/grafana/check_dashboards.py"
    run_step "graylog content pack and provisioning" graylog_pack
    run_step "deployment files (compose, Dockerfiles, k8s)" bash "$REPO/deploy/validate.sh"
    if has_step_passed "compile tests"; then
        # The native play, for real, against this machine: the debug binaries of the test build.
        run_step "ansible (lint, native play on localhost)" bash "$REPO/ansible/test_native.sh" \
            "$STACK_DIR/ansible-native" "$REPO/target/debug"
    else
        skip_step "ansible (lint, native play on localhost)" "the services did not compile"
    fi
    run_browser_tests
    # On the browser tests' stack whenever it came up (a failed page test does not stop it), and
    # before the dashboard queries, which turn the deliberate error path on for a while.
    if [[ -f "$STACK_DIR/e2e-ports.env" ]] && is_running nginx; then
        run_step "schemathesis (OpenAPI)" schemathesis_tests
    else
        skip_step "schemathesis (OpenAPI)" "the browser tests' stack did not run"
    fi
    if has_step_passed "browser tests"; then
        run_step "grafana dashboard queries (live)" dashboard_queries
    else
        skip_step "grafana dashboard queries (live)" "the browser tests' stack did not run"
    fi

    # Stopped here rather than by the trap, so that the summary is the last thing printed.
    trap - EXIT
    stop_stack
    print_test_summary
    ((STEP_FAILED == 0))
}

# Compiles the tests while RabbitMQ boots (both take seconds; they overlap).
compile_step() {
    run_step "compile tests" compile_tests
}

usage() {
    # The comment block at the top of this file, whatever its length.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

main() {
    local verb="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$verb" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs "$@" ;;
        test) cmd_test "$@" ;;
        build) cmd_build "$@" ;;
        vote) cmd_vote "$@" ;;
        compose) exec "$REPO/deploy/compose.sh" "$@" ;;
        ansible) cmd_ansible "$@" ;;
        fault) cmd_fault "$@" ;;
        bench) cmd_bench "$@" ;;
        chaos) cmd_chaos "$@" ;;
        chaos-fault) cmd_chaos_fault "$@" ;;
        -h | --help | help) usage ;;
        "") usage; exit 2 ;;
        *) printf 'unknown command: %s\n\n' "$verb" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
