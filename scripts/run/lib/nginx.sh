# nginx in front: its guards (flood, surge, slow clients) and Graylog syslog output, its config
# rendered from proxy/nginx.conf and checked with nginx -t, start_nginx and stop_nginx.
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash

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
