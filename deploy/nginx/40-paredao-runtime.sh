#!/bin/sh
# Run by the official nginx image's entrypoint (/docker-entrypoint.d/) before nginx starts.
# Writes the six runtime includes of /etc/nginx/nginx.conf from the environment:
#   PAREDAO_API_UPSTREAM   host:port of the API replicas (default api:8081; in Kubernetes use the
#                          Service's full name, e.g. api.paredao.svc.cluster.local:8081, because
#                          nginx's resolver does not apply resolv.conf search domains)
#   PAREDAO_RESOLVER       DNS server for re-resolving it (default: first nameserver in
#                          /etc/resolv.conf, which is 127.0.0.11 on a Docker network)
#   PAREDAO_SYSLOG_SERVER  host:port of Graylog's syslog UDP input (default graylog:1514; empty
#                          disables). Used only if the host resolves now: nginx refuses to start
#                          with an unresolvable syslog host, and the logging profile is optional.
#   PAREDAO_VOTES_IN_FLIGHT  the surge guard: votes this nginx lets through at once, to all the
#                          replicas together (default 192); beyond it nginx answers 503
#                          `overloaded` itself. A fleet figure: nginx finds the replicas by DNS and
#                          does not know how many there are, so set replicas x 96 (as run.sh does)
#   PAREDAO_READS_IN_FLIGHT  the same for the other /api/ requests (default 1024: replicas x 512)
#   PAREDAO_REQUESTS_PER_ADDRESS  the slow-client guard: requests in flight per client address
#                          (default 128); beyond it nginx refuses (503 `overloaded` on the API,
#                          429 on the pages). A load generator is thousands of connections per
#                          address: raise it for one.
#   PAREDAO_NGINX_CONF_DIR where to write them (default /etc/nginx/paredao; deploy/validate.sh
#                          points it at a scratch folder to check the output with nginx -t)
set -eu

conf="${PAREDAO_NGINX_CONF_DIR:-/etc/nginx/paredao}"
upstream="${PAREDAO_API_UPSTREAM:-api:8081}"
resolver="${PAREDAO_RESOLVER:-$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)}"
resolver="${resolver:-127.0.0.11}"
syslog="${PAREDAO_SYSLOG_SERVER-graylog:1514}"
votes_in_flight="${PAREDAO_VOTES_IN_FLIGHT:-192}"
reads_in_flight="${PAREDAO_READS_IN_FLIGHT:-1024}"
requests_per_address="${PAREDAO_REQUESTS_PER_ADDRESS:-128}"

# A bound must be a positive whole number; say which variable is wrong rather than let nginx fail.
for bound in "PAREDAO_VOTES_IN_FLIGHT=$votes_in_flight" "PAREDAO_READS_IN_FLIGHT=$reads_in_flight" \
             "PAREDAO_REQUESTS_PER_ADDRESS=$requests_per_address"; do
  case "${bound#*=}" in
    ''|*[!0-9]*|0*) echo "paredao: ${bound%%=*} must be a positive whole number, not '${bound#*=}'" >&2; exit 1 ;;
  esac
done

# An IPv6 nameserver must be bracketed for nginx.
case "$resolver" in
  *:*) case "$resolver" in \[*) ;; *) resolver="[$resolver]" ;; esac ;;
esac

printf 'resolver %s valid=10s ipv6=off;\nresolver_timeout 2s;\n' "$resolver" > "$conf/resolver.conf"
# `resolve` (re-resolve at run time) is for names; an IPv4 literal is used as it is.
# max_fails/fail_timeout: out only when it fails to answer, back within a second (see the
# comment in upstream api of nginx.conf).
case "${upstream%:*}" in
  *[!0-9.]*) printf 'server %s resolve max_fails=3 fail_timeout=1s;\n' "$upstream" > "$conf/upstream.conf" ;;
  *)         printf 'server %s max_fails=3 fail_timeout=1s;\n' "$upstream" > "$conf/upstream.conf" ;;
esac

printf 'limit_conn votes_in_flight %s;\n' "$votes_in_flight" > "$conf/votes-in-flight.conf"
printf 'limit_conn reads_in_flight %s;\n' "$reads_in_flight" > "$conf/reads-in-flight.conf"
printf 'limit_conn per_address %s;\n' "$requests_per_address" > "$conf/requests-per-address.conf"

if [ -n "$syslog" ] && getent hosts "${syslog%:*}" >/dev/null 2>&1; then
  printf 'access_log syslog:server=%s,tag=nginx_access json;\n' "$syslog" > "$conf/access-syslog.conf"
  echo "paredao: access log also to syslog $syslog"
else
  : > "$conf/access-syslog.conf"
  echo "paredao: syslog server '${syslog}' not set or not resolvable; access log to stdout only"
fi
echo "paredao: API upstream $upstream (resolver $resolver)"
echo "paredao: surge guard at $votes_in_flight votes and $reads_in_flight reads in flight"
echo "paredao: at most $requests_per_address requests in flight per client address"
