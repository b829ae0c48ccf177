#!/usr/bin/env bash
# Exercise provision.sh against fake_graylog.py (Graylog itself cannot run on this machine).
# Prints "graylog provisioning: N passed, M failed" and exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
FAKE_PID=""
PASS=0
FAIL=0

cleanup() {
  if [[ -n "$FAKE_PID" ]] && kill -0 "$FAKE_PID" 2>/dev/null; then
    kill "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ok()   { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$1"; }
bad()  { FAIL=$((FAIL + 1)); printf 'FAIL - %s\n' "$1"; [[ -z "${2:-}" ]] || sed 's/^/       | /' "$2"; }
check() { # check DESCRIPTION COMMAND...
  local desc="$1"; shift
  if "$@"; then ok "$desc"; else bad "$desc"; fi
}

# ---- start the fake and wait until it answers (readiness loop, no fixed sleeps)
python3 -u "$HERE/fake_graylog.py" --user admin --password admin --token fake-token \
  >"$WORK/fake.out" 2>"$WORK/fake.err" &
FAKE_PID=$!
PORT=""
for _ in $(seq 1 200); do
  PORT="$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$WORK/fake.out" 2>/dev/null || true)"
  if [[ -n "$PORT" ]] && curl -fsS --max-time 1 "http://127.0.0.1:${PORT}/api/system/lbstatus" >/dev/null 2>&1; then
    break
  fi
  PORT=""
  kill -0 "$FAKE_PID" 2>/dev/null || break
  sleep 0.05   # poll interval of the readiness loop
done
if [[ -z "$PORT" ]]; then
  echo "fake Graylog did not come up:"; cat "$WORK/fake.err"
  echo "graylog provisioning: 0 passed, 1 failed"
  exit 1
fi
URL="http://127.0.0.1:${PORT}"
echo "fake Graylog on ${URL} (pid ${FAKE_PID})"

state() { curl -fsS "${URL}/__fake/state"; }
state_is() { # state_is KEY VALUE
  local got
  got="$(state | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])")"
  [[ "$got" == "$2" ]] || { echo "       | $1 = $got, expected $2"; return 1; }
}
run_provision() { # run_provision LOGFILE [ENV=VALUE...]
  local logfile="$1"; shift
  env GRAYLOG_URL="$URL" GRAYLOG_WAIT_SECONDS=5 GRAYLOG_POLL_SECONDS=0.2 "$@" \
    bash "$HERE/provision.sh" >"$logfile" 2>&1
}

# ---- 0. the pack itself
if python3 "$HERE/check_content_pack.py" >"$WORK/check.log" 2>&1; then
  ok "check_content_pack.py accepts content-pack.json"
else
  bad "check_content_pack.py accepts content-pack.json" "$WORK/check.log"
fi

# ---- 1. first run uploads and installs
if run_provision "$WORK/run1.log" GRAYLOG_USER=admin GRAYLOG_PASSWORD=admin; then
  ok "first provision run exits 0"
else
  bad "first provision run exits 0" "$WORK/run1.log"
fi
check "first run says it uploaded the pack" grep -q "uploaded content pack" "$WORK/run1.log"
check "first run says it installed the pack" grep -q "installed content pack" "$WORK/run1.log"

# ---- 2. second run is a no-op
if run_provision "$WORK/run2.log" GRAYLOG_USER=admin GRAYLOG_PASSWORD=admin; then
  ok "second provision run exits 0"
else
  bad "second provision run exits 0" "$WORK/run2.log"
fi
check "second run treats the 400 'already found' upload as fine" grep -q "already uploaded" "$WORK/run2.log"
check "second run skips installation" grep -q "already installed" "$WORK/run2.log"
check "fake saw 2 upload attempts" state_is upload_attempts 2
check "pack stored exactly once" state_is uploads 1
check "pack installed exactly once" state_is installations 1

# ---- 3. token auth works and stays idempotent
if run_provision "$WORK/run3.log" GRAYLOG_TOKEN=fake-token GRAYLOG_PASSWORD=wrong; then
  ok "run with GRAYLOG_TOKEN exits 0"
else
  bad "run with GRAYLOG_TOKEN exits 0" "$WORK/run3.log"
fi
check "still installed exactly once after the token run" state_is installations 1

# ---- 4. wrong password fails loudly
if run_provision "$WORK/run4.log" GRAYLOG_USER=admin GRAYLOG_PASSWORD=not-the-password; then
  bad "wrong password makes provision.sh fail" "$WORK/run4.log"
else
  ok "wrong password makes provision.sh fail (exit non-zero)"
fi
check "wrong password error mentions 401" grep -q "401" "$WORK/run4.log"
check "no installation added by the failed run" state_is installations 1

# ---- 5. a Graylog that never says ALIVE fails within the bound
start=$(date +%s)
if env GRAYLOG_URL="${URL}/not-graylog" GRAYLOG_WAIT_SECONDS=1 GRAYLOG_POLL_SECONDS=0.2 \
    bash "$HERE/provision.sh" >"$WORK/run5.log" 2>&1; then
  bad "never-ALIVE Graylog makes provision.sh fail" "$WORK/run5.log"
else
  ok "never-ALIVE Graylog makes provision.sh fail (exit non-zero)"
fi
check "never-ALIVE failure is bounded (< 10 s) and says 'not ALIVE'" \
  bash -c "(( $(date +%s) - $start < 10 )) && grep -q 'not ALIVE' '$WORK/run5.log'"

echo "graylog provisioning: ${PASS} passed, ${FAIL} failed"
(( FAIL == 0 ))
