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
#   ./run.sh admin create NAME [--role admin|producer]
#                          a production team account (admin by default) in the local stack's store;
#                          the password is asked for without echo, or read as one line from stdin
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

# The library (shared helpers, one file per stack component, the test steps) and one file per
# verb, all under scripts/run/. Sourcing them defines settings and functions; it starts nothing.
# shellcheck source=scripts/run/lib/common.sh
source "$REPO/scripts/run/lib/common.sh"
# shellcheck source=scripts/run/lib/rabbitmq.sh
source "$REPO/scripts/run/lib/rabbitmq.sh"
# shellcheck source=scripts/run/lib/store.sh
source "$REPO/scripts/run/lib/store.sh"
# shellcheck source=scripts/run/lib/app.sh
source "$REPO/scripts/run/lib/app.sh"
# shellcheck source=scripts/run/lib/nginx.sh
source "$REPO/scripts/run/lib/nginx.sh"
# shellcheck source=scripts/run/lib/prometheus.sh
source "$REPO/scripts/run/lib/prometheus.sh"
# shellcheck source=scripts/run/lib/stack.sh
source "$REPO/scripts/run/lib/stack.sh"
# shellcheck source=scripts/run/lib/test_steps.sh
source "$REPO/scripts/run/lib/test_steps.sh"
# shellcheck source=scripts/run/up.sh
source "$REPO/scripts/run/up.sh"
# shellcheck source=scripts/run/test.sh
source "$REPO/scripts/run/test.sh"
# shellcheck source=scripts/run/bench.sh
source "$REPO/scripts/run/bench.sh"
# shellcheck source=scripts/run/chaos.sh
source "$REPO/scripts/run/chaos.sh"
# shellcheck source=scripts/run/ansible.sh
source "$REPO/scripts/run/ansible.sh"
# shellcheck source=scripts/run/vote.sh
source "$REPO/scripts/run/vote.sh"
# shellcheck source=scripts/run/fault.sh
source "$REPO/scripts/run/fault.sh"
# shellcheck source=scripts/run/admin.sh
source "$REPO/scripts/run/admin.sh"

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
        admin) cmd_admin "$@" ;;
        bench) cmd_bench "$@" ;;
        chaos) cmd_chaos "$@" ;;
        chaos-fault) cmd_chaos_fault "$@" ;;
        -h | --help | help) usage ;;
        "") usage; exit 2 ;;
        *) printf 'unknown command: %s\n\n' "$verb" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
