#!/usr/bin/env bash
# Proves the ansible deployment on this machine:
#   1. ansible-playbook --syntax-check of native.yml and site.yml
#   2. ansible-lint --profile production (offline)
#   3. native.yml against inventories/local (connection local), on private ports
#   4. native.yml again: nothing may change (idempotence)
#   5. native.yml with paredao_native_state=absent (always, from the EXIT trap), and a check that
#      none of the test stack's ports is still open
#
#   ansible/test_native.sh [PAREDAO_HOME] [BINARIES_DIR]
#     PAREDAO_HOME   where the bundle is deployed (default: <repo>/run/ansible-native)
#     BINARIES_DIR   the api and consumer binaries to ship (default: <repo>/target/release)
#
# Prints "ansible: N passed, M failed" last; exits non-zero when anything failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$REPO/.venv-ansible"
DEPLOY_HOME="${1:-$REPO/run/ansible-native}"
BINARIES_DIR="${2:-$REPO/target/release}"
LOG_DIR="$REPO/run/ansible-test-logs"

# Ports of the test deployment: none of run.sh's defaults (a local stack may be running), all below
# 32768 and outside 35672-35682.
NGINX_PORT=18080
API_PORTS="18081 18082"
CONSUMER_PORT=18091
AMQP_PORT=15673
RABBITMQ_DIST_PORT=25673
EPMD_PORT=14369
RABBITMQ_MGMT_PORT=15674
RABBITMQ_PROMETHEUS_PORT=15694
MONGO_PORT=17017
PROMETHEUS_PORT=19090
NGINX_EXPORTER_PORT=19113
NODE_EXPORTER_PORT=19100
# shellcheck disable=SC2206
ALL_PORTS=($NGINX_PORT $API_PORTS $CONSUMER_PORT $AMQP_PORT $RABBITMQ_DIST_PORT $EPMD_PORT
    $RABBITMQ_MGMT_PORT $RABBITMQ_PROMETHEUS_PORT $MONGO_PORT $PROMETHEUS_PORT
    $NGINX_EXPORTER_PORT $NODE_EXPORTER_PORT)

PASSED=0
FAILED=0
DEPLOY_ATTEMPTED=0
TORN_DOWN=0
CURRENT_STEP=""   # set while a step runs: an interrupted step counts as failed

log() { printf '==> %s\n' "$*"; }
now() { date +%s; }

# step <title> <command...>: runs it, counts it, never stops the script.
step() {
    local title="$1" start rc
    shift
    log "$title"
    start="$(now)"
    CURRENT_STEP="$title"
    set +e
    "$@"
    rc=$?
    set -e
    CURRENT_STEP=""
    if ((rc == 0)); then
        PASSED=$((PASSED + 1))
        printf 'PASS  %s (%ss)\n' "$title" "$(($(now) - start))"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL  %s (%ss, exit %s)\n' "$title" "$(($(now) - start))" "$rc"
    fi
    return 0
}

ensure_venv() {
    if [[ -x "$VENV/bin/ansible-playbook" && -x "$VENV/bin/ansible-lint" ]]; then
        log "reusing $VENV"
        return 0
    fi
    log "installing ansible and ansible-lint into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ansible ansible-lint
}

# --- the checks ---------------------------------------------------------------------------------
syntax_check() {
    ansible-playbook -i inventories/example/hosts.yml --syntax-check native.yml site.yml
}

lint() {
    # --offline: never download collections or roles (they come with the ansible package).
    ansible-lint --offline --profile production .
}

# The deployment's variables, as JSON for -e (ports must keep their types: strings for the list).
extra_vars() {
    cat <<JSON
{"paredao_home": "$DEPLOY_HOME", "paredao_binaries_dir": "$BINARIES_DIR",
 "paredao_native_nginx_port": $NGINX_PORT, "paredao_native_api_ports": "$API_PORTS",
 "paredao_native_consumer_port": $CONSUMER_PORT, "paredao_native_amqp_port": $AMQP_PORT,
 "paredao_native_rabbitmq_dist_port": $RABBITMQ_DIST_PORT, "paredao_native_epmd_port": $EPMD_PORT,
 "paredao_native_rabbitmq_mgmt_port": $RABBITMQ_MGMT_PORT,
 "paredao_native_rabbitmq_prometheus_port": $RABBITMQ_PROMETHEUS_PORT,
 "paredao_native_mongo_port": $MONGO_PORT, "paredao_native_prometheus_port": $PROMETHEUS_PORT,
 "paredao_native_nginx_exporter_port": $NGINX_EXPORTER_PORT,
 "paredao_native_node_exporter_port": $NODE_EXPORTER_PORT}
JSON
}

# native_play <log name> [more ansible-playbook arguments...]
native_play() {
    local name="$1"
    shift
    ansible-playbook -i inventories/local/hosts.yml native.yml -e "$(extra_vars)" "$@" \
        2>&1 | tee "$LOG_DIR/$name.log"
}

deploy() {
    DEPLOY_ATTEMPTED=1
    native_play deploy-1
}

# The second run must change nothing: same bundle, stack already running.
deploy_again() {
    native_play deploy-2 || return 1
    local recap
    recap="$(grep -E '^localhost +:' "$LOG_DIR/deploy-2.log" | tail -n 1)"
    printf 'recap of the second run: %s\n' "$recap"
    if [[ ! "$recap" =~ [[:space:]]changed=0[[:space:]] ]]; then
        printf 'not idempotent: these tasks changed on the second run:\n' >&2
        grep -E '^changed:' "$LOG_DIR/deploy-2.log" >&2 || true
        return 1
    fi
}

teardown() {
    TORN_DOWN=1
    native_play teardown -e paredao_native_state=absent
}

nothing_left() {
    local port left=()
    for port in "${ALL_PORTS[@]}"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            left+=("$port")
        fi
    done
    if ((${#left[@]} > 0)); then
        printf 'still listening after the teardown: %s\n' "${left[*]}" >&2
        return 1
    fi
    printf 'no test port is open any more\n'
}

finish() {
    local rc=$?
    trap - EXIT
    if [[ -n "$CURRENT_STEP" ]]; then
        FAILED=$((FAILED + 1))
        printf 'FAIL  %s (interrupted, exit %s)\n' "$CURRENT_STEP" "$rc"
        CURRENT_STEP=""
    fi
    if ((DEPLOY_ATTEMPTED == 1 && TORN_DOWN == 0)); then
        step "teardown (native.yml, paredao_native_state=absent)" teardown
        step "nothing left running" nothing_left
    fi
    printf 'ansible: %d passed, %d failed\n' "$PASSED" "$FAILED"
    if ((FAILED > 0)); then
        exit "$((rc != 0 ? rc : 1))"
    fi
    exit "$rc"
}

main() {
    cd "$HERE"
    mkdir -p "$LOG_DIR"
    trap finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ensure_venv
    export PATH="$VENV/bin:$PATH"
    export ANSIBLE_CONFIG="$HERE/ansible.cfg"
    export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 PY_COLORS=0

    step "syntax check (native.yml, site.yml)" syntax_check
    step "ansible-lint --profile production" lint

    for bin in api consumer; do
        if [[ ! -x "$BINARIES_DIR/$bin" ]]; then
            printf 'error: %s/%s is missing (build it, or pass the binaries folder as $2)\n' "$BINARIES_DIR" "$bin" >&2
            FAILED=$((FAILED + 1))
            return 1
        fi
    done
    log "deploying to $DEPLOY_HOME with the binaries of $BINARIES_DIR (nginx on 127.0.0.1:$NGINX_PORT)"
    step "native.yml: deploy, one vote counted" deploy
    step "native.yml again: changed=0" deploy_again
    step "teardown (native.yml, paredao_native_state=absent)" teardown
    step "nothing left running" nothing_left
}

main "$@"
