# RabbitMQ, one private broker per stack with its own epmd: its environment and config
# (rabbitmq_env), start_epmd, launch_rabbitmq and wait_rabbitmq (start_rabbitmq does all three),
# the stack's rabbitmqctl wrapper, stop_rabbitmq and stop_epmd.
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash disable=SC2153 # STACK is set by use_stack (lib/common.sh)

RABBITMQ_BIN=/usr/lib/rabbitmq/bin      # not /usr/sbin: that wrapper switches user and HOME

# Set by launch_rabbitmq, to tell how long the broker took to boot.
RABBITMQ_LAUNCHED_AT=""

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
