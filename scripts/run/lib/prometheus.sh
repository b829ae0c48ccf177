# Prometheus, its config rendered from observability/prometheus/prometheus.yml and checked
# with promtool, and the nginx and node exporters it scrapes.
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash

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
