# The store: the user's own MongoDB (PAREDAO_MONGO_URL, local stack only), a local mongod, or
# SecantusDB. start_mongo sets MONGO_URL and MONGO_KIND; stop_mongo.
# Sourced by run.sh: defines settings and functions, starts nothing.
# shellcheck shell=bash disable=SC2034 # MONGO_URL and MONGO_KIND are read by the other files

# PAREDAO_SECANTUSD: another command for the stand-in (e.g. one under a memory tracer).
SECANTUSD="${PAREDAO_SECANTUSD:-$REPO/.venv/bin/secantusd-py}"

# Set by start_mongo (or read back from the stack's stack.env).
MONGO_URL=""
MONGO_KIND=""

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
    # --cache-size: WiredTiger's cache, at most this much of the store's memory
    # (PAREDAO_STORE_CACHE_SIZE, e.g. 256M; SecantusDB's own default is 1G). The soak's growth of
    # the store's RSS is not it (BENCHMARKS.md).
    start_process mongo "$MONGO_PORT" "$SECANTUSD" --host 127.0.0.1 --port "$MONGO_PORT" \
        --sync-on-commit --cache-size "${PAREDAO_STORE_CACHE_SIZE:-1G}" --storage-path "$STACK_DIR/mongo"
    wait_until mongo "$READY_TIMEOUT" "$(pid_of mongo)" port_open "$MONGO_PORT"
}

stop_mongo() {
    stop_process mongo
}
