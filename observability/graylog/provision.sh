#!/usr/bin/env bash
# Apply observability/graylog/content-pack.json to a running Graylog, idempotently.
#
#   GRAYLOG_URL            default http://127.0.0.1:9000
#   GRAYLOG_TOKEN          API token (used instead of user/password when set)
#   GRAYLOG_USER           default admin
#   GRAYLOG_PASSWORD       default admin
#   GRAYLOG_WAIT_SECONDS   how long to wait for /api/system/lbstatus = ALIVE (default 180)
#   GRAYLOG_POLL_SECONDS   delay between lbstatus polls (default 2)
#   CONTENT_PACK           default: content-pack.json next to this script
#
# Steps: wait for ALIVE -> upload the pack (an "already exists" answer for the same id+rev is
# fine) -> install it only if Graylog lists no installation of this pack yet.
# Needs only bash, curl, grep and sed (no jq/python), so it runs in a plain curl image.
set -euo pipefail

GRAYLOG_URL="${GRAYLOG_URL:-http://127.0.0.1:9000}"
GRAYLOG_URL="${GRAYLOG_URL%/}"
GRAYLOG_USER="${GRAYLOG_USER:-admin}"
GRAYLOG_PASSWORD="${GRAYLOG_PASSWORD:-admin}"
GRAYLOG_TOKEN="${GRAYLOG_TOKEN:-}"
GRAYLOG_WAIT_SECONDS="${GRAYLOG_WAIT_SECONDS:-180}"
GRAYLOG_POLL_SECONDS="${GRAYLOG_POLL_SECONDS:-2}"
CONTENT_PACK="${CONTENT_PACK:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/content-pack.json}"

log() { printf '[graylog-provision] %s\n' "$*"; }
die() { printf '[graylog-provision] ERROR: %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null 2>&1 || die "curl is required"
[[ -r "$CONTENT_PACK" ]] || die "content pack not readable: $CONTENT_PACK"

# The first "id"/"rev" in the file are the pack's own (check_content_pack.py enforces this).
PACK_ID="$(grep -m1 -oE '"id"[[:space:]]*:[[:space:]]*"[0-9a-f-]{36}"' "$CONTENT_PACK" | grep -oE '[0-9a-f-]{36}')" \
  || die "no pack id found in $CONTENT_PACK"
PACK_REV="$(grep -m1 -oE '"rev"[[:space:]]*:[[:space:]]*[0-9]+' "$CONTENT_PACK" | grep -oE '[0-9]+$')" \
  || die "no pack rev found in $CONTENT_PACK"

if [[ -n "$GRAYLOG_TOKEN" ]]; then
  AUTH="${GRAYLOG_TOKEN}:token"
  AUTH_DESC="API token"
else
  AUTH="${GRAYLOG_USER}:${GRAYLOG_PASSWORD}"
  AUTH_DESC="user ${GRAYLOG_USER}"
fi

BODY_FILE="$(mktemp)"
trap 'rm -f "$BODY_FILE"' EXIT

# api METHOD PATH [DATA_FILE] -> sets HTTP_STATUS, response body in $BODY_FILE.
# The credentials go to curl through stdin (-K -), so they do not show up in `ps`.
api() {
  local method="$1" path="$2" data="${3:-}"
  local args=(-sS -o "$BODY_FILE" -w '%{http_code}' -X "$method"
              -H 'X-Requested-By: paredao-provision'
              -H 'Content-Type: application/json'
              -H 'Accept: application/json'
              --connect-timeout 5 --max-time 60 -K -)
  [[ -n "$data" ]] && args+=(--data-binary "@$data")
  local auth_q="${AUTH//\\/\\\\}"   # escape \ then " for curl's config syntax
  auth_q="${auth_q//\"/\\\"}"
  HTTP_STATUS="$(printf 'user = "%s"\n' "$auth_q" | curl "${args[@]}" "${GRAYLOG_URL}${path}" 2>/dev/null)" \
    || HTTP_STATUS="${HTTP_STATUS:-000}"
}

unexpected() { # unexpected WHAT
  local body
  body="$(head -c 400 "$BODY_FILE" 2>/dev/null || true)"
  case "$HTTP_STATUS" in
    000) die "$1: could not connect to ${GRAYLOG_URL}" ;;
    401) die "$1: HTTP 401 Unauthorized, check GRAYLOG_USER/GRAYLOG_PASSWORD or GRAYLOG_TOKEN (${AUTH_DESC})" ;;
    *)   die "$1: unexpected HTTP ${HTTP_STATUS}: ${body}" ;;
  esac
}

log "Graylog ${GRAYLOG_URL}, content pack ${PACK_ID} rev ${PACK_REV} (${CONTENT_PACK##*/}), auth: ${AUTH_DESC}"

# 1. wait for the node to report ALIVE (no auth needed for lbstatus)
log "waiting up to ${GRAYLOG_WAIT_SECONDS}s for ${GRAYLOG_URL}/api/system/lbstatus to say ALIVE"
deadline=$(( $(date +%s) + GRAYLOG_WAIT_SECONDS ))
while :; do
  status="$(curl -sS --connect-timeout 2 --max-time 5 "${GRAYLOG_URL}/api/system/lbstatus" 2>/dev/null || true)"
  if [[ "$status" == *ALIVE* ]]; then
    log "Graylog is ALIVE"
    break
  fi
  if (( $(date +%s) >= deadline )); then
    die "Graylog at ${GRAYLOG_URL} not ALIVE after ${GRAYLOG_WAIT_SECONDS}s (last lbstatus answer: '${status:-no answer}')"
  fi
  sleep "$GRAYLOG_POLL_SECONDS"
done

# 2. upload (content packs are immutable per id+rev; Graylog answers 400 "... already found!")
log "uploading content pack: POST /api/system/content_packs"
api POST /api/system/content_packs "$CONTENT_PACK"
case "$HTTP_STATUS" in
  200|201)
    log "uploaded content pack ${PACK_ID} rev ${PACK_REV}" ;;
  400|409)
    if grep -qiE 'already (found|exists)' "$BODY_FILE"; then
      log "content pack ${PACK_ID} rev ${PACK_REV} already uploaded, keeping it"
    else
      unexpected "upload content pack"
    fi ;;
  *) unexpected "upload content pack" ;;
esac

# 3. install only if there is no installation of this pack yet
log "checking installations: GET /api/system/content_packs/${PACK_ID}/installations"
api GET "/api/system/content_packs/${PACK_ID}/installations"
[[ "$HTTP_STATUS" == 200 ]] || unexpected "list installations"
total="$(grep -oE '"total"[[:space:]]*:[[:space:]]*[0-9]+' "$BODY_FILE" | grep -oE '[0-9]+$' | head -n1 || true)"
if [[ -z "$total" ]]; then
  if grep -qE '"installations"[[:space:]]*:[[:space:]]*\[[[:space:]]*\]' "$BODY_FILE"; then
    total=0
  else
    die "list installations: cannot read the installation count from: $(head -c 400 "$BODY_FILE")"
  fi
fi

if (( total > 0 )); then
  log "content pack ${PACK_ID} already installed (${total} installation(s)), nothing to do"
else
  log "installing: POST /api/system/content_packs/${PACK_ID}/${PACK_REV}/installations"
  INSTALL_REQ="$(mktemp)"
  trap 'rm -f "$BODY_FILE" "$INSTALL_REQ"' EXIT
  printf '{"parameters":{},"comment":"installed by observability/graylog/provision.sh"}' > "$INSTALL_REQ"
  api POST "/api/system/content_packs/${PACK_ID}/${PACK_REV}/installations" "$INSTALL_REQ"
  case "$HTTP_STATUS" in
    200|201) log "installed content pack ${PACK_ID} rev ${PACK_REV}" ;;
    *) unexpected "install content pack" ;;
  esac
fi

log "done: inputs GELF TCP :12201 and Syslog UDP :1514, stream 'Paredão services', pipeline 'Paredão',"
log "      saved search 'API events by level, live', dashboard 'Paredão — logs'"
