# Whole stacks: stop_stack, the status table and the URLs of the local stack; free ports for the
# test, bench and chaos stacks; start_app_stack (what a vote travels through) and start_test_stack.
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash

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
