# ./run.sh bench [paredao-load args]: a benchmark stack on free ports (run/bench), loaded by
# paredao-load through nginx; writes target/bench/latest.{json,md}.
# Sourced by run.sh, which calls cmd_bench.
# shellcheck shell=bash disable=SC2034 # the NGINX_* settings are read by lib/nginx.sh

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
    load_generator_settings
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
    PAREDAO_ADMIN_TOKEN="$(admin_token)" nice -n -10 "$REPO/target/release/paredao-load" --base "http://127.0.0.1:$NGINX_PORT" --paredao paredao-1 \
        --out "$REPO/target/bench" "${pids[@]}" "$@"
}

# The settings of a stack that paredao-load drives (the bench's and the chaos suite's): every
# vote still carries a real, verified, single-use challenge; only the work is trivial (the
# server's cost to verify is one hash whatever the difficulty), and the per-client limits are off
# (the load generator is a handful of addresses). Exported, so that a component restarted later
# (`chaos-fault`) gets the same ones.
load_generator_settings() {
    export APP_CAPTCHA__DIFFICULTY__BASE="${PAREDAO_BENCH_DIFFICULTY:-10}"
    export APP_CAPTCHA__DIFFICULTY__FREE_PER_WINDOW=4000000000
    export APP_RATE_LIMIT__ENABLED=false
    NGINX_VOTE_RATE=1000000r/s
    NGINX_VOTE_BURST=1000000
    # paredao-load opens up to 7,000 connections from each of its addresses (127.0.1.N);
    # limit_conn takes at most 65535.
    NGINX_REQUESTS_PER_ADDRESS=60000
}
