#!/bin/bash
# casarray health check for containers: GET /healthz on the admin listener
# and succeed on a 200. Bash's /dev/tcp does the HTTP, so the image needs no
# curl. Exit codes follow Docker's HEALTHCHECK: 0 healthy, 1 unhealthy.
#
# CASARRAY_ADMIN  host:port of the admin listener (default 127.0.0.1:9090;
#                 IPv6 as [::1]:9090). A wildcard listen address
#                 (0.0.0.0:9090) is reached on 127.0.0.1.
# CASARRAY_HEALTH_TIMEOUT  seconds to wait for the answer (default 2).
set -uo pipefail
# A peer that closes early must make this exit 1, not die of SIGPIPE.
trap '' PIPE

addr="${CASARRAY_ADMIN:-127.0.0.1:9090}"
wait_s="${CASARRAY_HEALTH_TIMEOUT:-2}"
port="${addr##*:}"
host="${addr%:*}"
host="${host#[}"
host="${host%]}"

unhealthy() {
  echo "casarray unhealthy: $*" >&2
  exit 1
}

case "$port" in
  '' | *[!0-9]*) unhealthy "CASARRAY_ADMIN=$addr is not host:port" ;;
esac

# A refused connection fails the redirection at once; loopback never hangs
# on connect, and the read below is bounded.
{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || unhealthy "nothing listens on $addr"
request=$'GET /healthz HTTP/1.1\r\nHost: '"$addr"$'\r\nConnection: close\r\n\r\n'
printf '%s' "$request" >&3 2>/dev/null || unhealthy "cannot send to $addr"
status=""
IFS= read -r -t "$wait_s" status <&3 || true
exec 3>&-

case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  '') unhealthy "no answer from $addr within ${wait_s}s" ;;
  *) unhealthy "$addr/healthz answered: ${status%$'\r'}" ;;
esac
