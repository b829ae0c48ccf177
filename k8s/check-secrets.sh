#!/usr/bin/env bash
# Refuses a paredao-secrets Secret that still holds placeholders, before anything runs with it:
#
#   k8s/check-secrets.sh FILE.yaml          a Secret manifest (stringData and/or data)
#   k8s/check-secrets.sh --live [NAMESPACE]  the Secret in the cluster (kubectl; default paredao)
#
# Refused: a missing or empty APP_CAPTCHA__HMAC_KEY, APP_BROKER__URL or APP_STORE__URL; any value
# that is `change-me` (secrets.example.yaml's), an example (`<...>`, USER:PASSWORD, example.com)
# or one repeated character; an HMAC key or admin token shorter than 32 characters.
# APP_ADMIN__TOKEN may be absent or empty (that turns /api/admin/* off). The API refuses the same
# at start; this says so before a rollout. Exits 0 when the Secret is fine, 1 with one line per
# problem otherwise.
set -euo pipefail

case "${1:-}" in
  --live)
    namespace="${2:-paredao}"
    manifest="$(kubectl -n "$namespace" get secret paredao-secrets -o yaml)" \
      || { echo "check-secrets: no Secret paredao-secrets in namespace $namespace" >&2; exit 1; }
    ;;
  ''|-h|--help)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [[ -n "${1:-}" ]]; exit $? ;;
  *)
    [[ -f "$1" ]] || { echo "check-secrets: $1: no such file" >&2; exit 1; }
    manifest="$(cat "$1")"
    ;;
esac

PAREDAO_SECRET_MANIFEST="$manifest" python3 - <<'EOF'
import base64, os, re, sys
import yaml

PLACEHOLDER = re.compile(
    r"change[-_ ]?me|changeit|placeholder|example|dummy|user:password|<[^>]*>|\$\{|^(.)\1*$",
    re.IGNORECASE)
REQUIRED = {"APP_CAPTCHA__HMAC_KEY": 32, "APP_BROKER__URL": 1, "APP_STORE__URL": 1}
OPTIONAL = {"APP_ADMIN__TOKEN": 32}

docs = [d for d in yaml.safe_load_all(os.environ["PAREDAO_SECRET_MANIFEST"]) if d]
secrets = [d for d in docs if d.get("kind") == "Secret"]
if len(secrets) != 1:
    sys.exit(f"check-secrets: expected one Secret, found {len(secrets)}")
secret = secrets[0]
values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
values.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})

problems = []
for key, min_length in {**REQUIRED, **OPTIONAL}.items():
    value = values.get(key, "").strip()
    if not value:
        if key in REQUIRED:
            problems.append(f"{key} is missing or empty")
    elif PLACEHOLDER.search(value):
        problems.append(f"{key} is a placeholder (change-me, an example, a repeated character)")
    elif len(value) < min_length:
        problems.append(f"{key} is shorter than {min_length} characters")
name = secret.get("metadata", {}).get("name")
if problems:
    print("\n".join(f"check-secrets: {p}" for p in problems), file=sys.stderr)
    sys.exit(f"check-secrets: refusing Secret {name}: create it with real values (see k8s/secrets.example.yaml)")
print(f"check-secrets: Secret {name}: no value is empty or a placeholder")
EOF
