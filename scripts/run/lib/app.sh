# The services: preflight and the release build (build_release), the consumers, the API
# replicas, and the machine's secrets they are given (run/secrets/).
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash

API_BIN="$REPO/target/release/api"
CONSUMER_BIN="$REPO/target/release/consumer"

# host:port of a Graylog GELF TCP input for the services' logs (none by default).
GRAYLOG_GELF="${PAREDAO_GRAYLOG_GELF:-}"
# The key that signs captcha challenges: made once per machine, shared by every replica, never
# committed (run/ is git-ignored).
SECRETS_DIR="$RUN_ROOT/secrets"

# Which configuration/<name>.yaml the services layer over base.yaml.
APP_ENV="${APP_ENVIRONMENT:-local}"

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
    start_service "$name" "$port" "$CONSUMER_BIN" APP_CONSUMER__PORT="$port"
    wait_until "$name" "$READY_TIMEOUT" "$(pid_of "$name")" \
        http_ok "http://127.0.0.1:$port/health/ready"
}

# start_service NAME PORT BIN [VAR=VALUE...]: one of our services, with what every one of them
# is given (the environment's file, the broker, the store, the log sink) and its own variables.
start_service() {
    local name="$1" port="$2" bin="$3"
    shift 3
    start_process "$name" "$port" env \
        APP_ENVIRONMENT="$APP_ENV" \
        APP_BROKER__URL="$(amqp_url)" \
        APP_STORE__URL="$MONGO_URL" \
        APP_TELEMETRY__GELF_ADDRESS="$GRAYLOG_GELF" \
        "$@" \
        "$bin"
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
        start_service "api-$i" "$port" "$API_BIN" \
            APP_APPLICATION__PORT="$port" \
            APP_CAPTCHA__HMAC_KEY="$(captcha_hmac_key)" \
            APP_ADMIN__TOKEN="$(admin_token)" \
            APP_UPLOADS__DIR="$STACK_DIR/uploads"
    done
    i=0
    for port in $API_PORTS; do
        i=$((i + 1))
        wait_until "api-$i" "$READY_TIMEOUT" "$(pid_of "api-$i")" \
            http_ok "http://127.0.0.1:$port/health/ready"
    done
}

stop_apis() {
    stop_numbered api
}

# The consumer and any further ones that start_consumer COUNT started.
stop_consumer() {
    stop_numbered consumer
    stop_process consumer
}

# stop_numbered PREFIX: every process PREFIX-N of this stack, by its pid file.
stop_numbered() {
    local file
    for file in "$PID_DIR/$1"-*.pid; do
        [[ -e "$file" ]] || continue
        stop_process "$(basename "$file" .pid)"
    done
}
