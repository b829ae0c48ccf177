# ./run.sh vote NAME [PAREDAO]: one vote through the local nginx, solving the captcha as the
# page does (scripts/vote.py). Sourced by run.sh, which calls cmd_vote.
# shellcheck shell=bash

# One vote for participant $1 (of paredão $2, default the current one) through the local nginx.
cmd_vote() {
    [[ $# -ge 1 ]] || die "usage: ./run.sh vote PARTICIPANT [PAREDAO]"
    python3 "$REPO/scripts/vote.py" "$1" "http://127.0.0.1:$NGINX_PORT" "${2:-current}"
}
