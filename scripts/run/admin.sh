# ./run.sh admin create NAME [--role admin|producer]: a production team account in the local
# stack's store (the first admin, typically: nobody can sign in to make one yet). The password is
# asked for on the terminal without echo, or read as one line from stdin
# (`printf '%s\n' "$PW" | ./run.sh admin create ana`); there is no default one.
# Sourced by run.sh, which calls cmd_admin.
# shellcheck shell=bash

cmd_admin() {
    [[ "${1:-}" == create && $# -ge 2 ]] || die "usage: ./run.sh admin create NAME [--role admin|producer]"
    use_stack local
    [[ -f "$STACK_DIR/stack.env" ]] || die "the local stack has not been started: ./run.sh up first"
    load_stack_env
    [[ -n "$MONGO_URL" ]] || die "the local stack's store is unknown ($STACK_DIR/stack.env has no MONGO_URL): ./run.sh up"
    [[ -x "$API_BIN" ]] || die "$API_BIN not found; run ./run.sh build (or ./run.sh up)"
    # The same environment file and store as the stack's replicas; the command connects to the
    # store only, and says so when it cannot.
    env APP_ENVIRONMENT="$APP_ENV" APP_STORE__URL="$MONGO_URL" "$API_BIN" "admin" "$@"
}
