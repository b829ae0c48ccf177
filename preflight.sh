#!/usr/bin/env bash
# Installs what Paredão needs on a fresh Debian 12 machine.
#
#   ./preflight.sh            same as `./preflight.sh core`
#   ./preflight.sh core       RabbitMQ, nginx, Prometheus + exporters, curl, wrk, SecantusDB venv,
#                             the vote page's captcha widget (frontend/node_modules)
#   ./preflight.sh browser    Chromium, the browser tests' npm packages (e2e/node_modules) and the
#                             captcha widget the tested pages load
#
# Idempotent: every component checks what is already there first, `apt-get update` runs at most
# once and only when a package is missing, and a working venv is reused. Nothing is started here:
# the servers are started by ./run.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$REPO/.venv"
SECANTUSDB_VERSION="${SECANTUSDB_VERSION:-0.7.0b3}"
PYTHON="${PYTHON:-python3}"
# apt and dpkg are verbose; their output goes here and is shown only when they fail.
APT_LOG="$REPO/run/preflight-apt.log"

export DEBIAN_FRONTEND=noninteractive

SUDO=""
APT_UPDATED=0
TEMP_POLICY_RC=""

log() { printf '==> %s\n' "$*"; }
die() { printf 'preflight: error: %s\n' "$*" >&2; exit 1; }

# apt needs root; use sudo when we are not root and it exists.
need_root() {
    if [[ $EUID -eq 0 ]]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        die "installing packages needs root (or sudo); run this script as root"
    fi
}

# Prints the packages among "$@" that are not installed yet.
apt_missing() {
    local pkg
    for pkg in "$@"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# Without systemd, a postinst may still try to start its daemon through invoke-rc.d (nginx would
# take port 80, RabbitMQ 5672). Container images ship a policy-rc.d that denies that; when the
# machine has none, we install one for the duration of this script only.
deny_service_starts() {
    [[ -e /usr/sbin/policy-rc.d ]] && return 0
    TEMP_POLICY_RC=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$TEMP_POLICY_RC" >/dev/null
    $SUDO chmod 0755 "$TEMP_POLICY_RC"
    trap 'restore_service_starts' EXIT
}

restore_service_starts() {
    if [[ -n "$TEMP_POLICY_RC" ]]; then
        $SUDO rm -f "$TEMP_POLICY_RC"
        TEMP_POLICY_RC=""
    fi
}

# run_logged <what> <command...>: runs the command with its output in APT_LOG.
run_logged() {
    local what="$1"
    shift
    mkdir -p "$(dirname "$APT_LOG")"
    if ! "$@" >>"$APT_LOG" 2>&1; then
        tail -n 30 "$APT_LOG" >&2
        die "$what failed (full output: $APT_LOG)"
    fi
}

apt_update_once() {
    [[ $APT_UPDATED -eq 1 ]] && return 0
    log "apt-get update"
    run_logged "apt-get update" $SUDO apt-get update
    APT_UPDATED=1
}

# apt_ensure [apt-get install flags...] -- package...
apt_ensure() {
    local flags=()
    while [[ $# -gt 0 && "$1" != "--" ]]; do flags+=("$1"); shift; done
    shift
    local missing
    mapfile -t missing < <(apt_missing "$@")
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "already installed: $*"
        return 0
    fi
    need_root
    deny_service_starts
    apt_update_once
    log "installing ${missing[*]}"
    run_logged "apt-get install ${missing[*]}" $SUDO apt-get install -y "${flags[@]}" "${missing[@]}"
}

install_rabbitmq() {
    # The recommends pull in a whole desktop-ish Erlang; the broker needs none of them.
    apt_ensure --no-install-recommends -- rabbitmq-server
}

install_nginx() {
    apt_ensure -- nginx
}

install_prometheus() {
    # `prometheus` also ships promtool, which ./run.sh test uses to check the config and rules.
    apt_ensure -- prometheus prometheus-node-exporter prometheus-nginx-exporter
}

install_tools() {
    apt_ensure -- curl wrk
}

venv_is_ready() {
    [[ -x "$VENV/bin/secantusd-py" ]] || return 1
    local version
    version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("secantusdb"))' 2>/dev/null)" \
        || return 1
    [[ "$version" == "$SECANTUSDB_VERSION" ]]
}

# SecantusDB stands in for MongoDB on machines that have no mongod (no registry here has one).
install_secantusdb() {
    if venv_is_ready; then
        log "already installed: secantusdb $SECANTUSDB_VERSION in $VENV"
        return 0
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; Python 3.11 is needed for SecantusDB"
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        log "creating Python venv at $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" || die "could not create the venv at $VENV (python3-venv missing?)"
    fi
    log "installing secantusdb==$SECANTUSDB_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "secantusdb==$SECANTUSDB_VERSION" \
        || die "pip install secantusdb==$SECANTUSDB_VERSION failed"
    venv_is_ready || die "secantusd-py is missing from $VENV after install"
}

preflight_core() {
    install_rabbitmq
    install_nginx
    install_prometheus
    install_tools
    install_secantusdb
    # The vote page cannot send a vote without the captcha widget, which nginx serves from here.
    npm_ci "$REPO/frontend"
}

# Debian's Chromium: browser downloads (`npx playwright install`) are not reachable here, and
# playwright-core drives the system browser just as well.
install_chromium() {
    apt_ensure --no-install-recommends -- chromium fonts-dejavu-core
}

# Installs the exact versions of a package-lock.json, unless node_modules already matches it.
npm_ci() {
    local dir="$1"
    command -v npm >/dev/null 2>&1 || die "npm not found; Node.js 20 with npm is needed for $dir"
    if [[ -f "$dir/node_modules/.package-lock.json" ]] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed" 2>/dev/null; then
        log "already installed: npm packages of ${dir#"$REPO"/}"
        return 0
    fi
    log "installing npm packages of ${dir#"$REPO"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $dir failed"
    cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"
}

preflight_browser() {
    install_chromium
    npm_ci "$REPO/e2e"
    npm_ci "$REPO/frontend"
}

main() {
    local groups=("$@")
    [[ ${#groups[@]} -eq 0 ]] && groups=(core)
    local group
    for group in "${groups[@]}"; do
        case "$group" in
            core) preflight_core ;;
            browser) preflight_browser ;;
            *) die "unknown group '$group' (known: core, browser)" ;;
        esac
    done
    restore_service_starts
    log "preflight ok"
}

main "$@"
