# ./run.sh fault RATIO: make that share (0 to 1) of votes fail on purpose with 500; 0 turns it
# off. Sourced by run.sh, which calls cmd_fault (and so does the test step dashboard_queries).
# shellcheck shell=bash

# The deliberate error path, for every API replica (they share the setting through the store).
cmd_fault() {
    [[ $# -eq 1 ]] || die "usage: ./run.sh fault RATIO   (0 to 1; 0 turns it off)"
    curl -fsS -X PUT -H "Authorization: Bearer $(admin_token)" -H 'content-type: application/json' \
        -d "{\"vote_error_ratio\": $1}" "http://127.0.0.1:$NGINX_PORT/api/admin/fault"
    echo
}
