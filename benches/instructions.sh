#!/usr/bin/env bash
# benches/instructions.sh: CPU instructions per request, counted under
# valgrind's callgrind, for casarray and (when installed) HAProxy in front of
# the same nginx backend: a figure that a noisy, shared machine cannot move
# (the same binary, config and request count give the same count, whatever
# else the machine does), to sit next to benches/load.sh's req/s.
#
# It builds nothing: run `cargo build --release` first (or point CASARRAY_BIN
# at a binary; CASARRAY_BIN_B at a second one for an A/B of two builds).
# Needs valgrind, curl, openssl, nginx; haproxy optional:
#     apt-get install -y valgrind curl openssl nginx haproxy
#
# What it does, for each proxy: starts it under callgrind (one worker,
# TLS 1.3, keep-alive to the backend, health checks every hour so none run
# during the count, no access log), warms it up with WARMUP requests, then
# counts (callgrind_control zero, then dump) one request on a new TLS
# connection and N requests on another, and prints the proxy's instructions
# per request on a kept connection, (Ir(N) - Ir(1)) / (N - 1), for 1 KiB
# answers. The client is curl with the URLs in one config (one connection
# per run, reused for every request of the run).
#
# Environment (defaults):
#   CASARRAY_BIN=<repo>/target/release/casarray  CASARRAY_BIN_B=  (unset: no B)
#   N=2000  WARMUP=200  PROXIES="casarray haproxy"  BASE_PORT=19400
#   PATH_SMALL=/EWS/small (1 KiB answer)
#   HTTP=1.1 | 2  (the client's protocol on the front; 2: HTTP/2 by ALPN,
#                 the requests one after another on one connection; the
#                 proxies speak HTTP/1.1 to the backend either way)
#   OUT_DIR=  (if set, the callgrind files are copied there: read them with
#             callgrind_annotate --threshold=99 FILE)
#
# Output: a markdown table: proxy, requests, instructions, instructions per
# request, the ratio to HAProxy, and heap allocations per request (calls
# into malloc, calloc and realloc counted by callgrind; python3 reads them).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASARRAY_BIN=${CASARRAY_BIN:-$ROOT/target/release/casarray}
CASARRAY_BIN_B=${CASARRAY_BIN_B:-}
N=${N:-2000}
WARMUP=${WARMUP:-200}
PROXIES=${PROXIES:-casarray haproxy}
BASE_PORT=${BASE_PORT:-19400}
PATH_SMALL=${PATH_SMALL:-/EWS/small}
HTTP=${HTTP:-1.1}
case $HTTP in
  1.1) CURL_HTTP=--http1.1 ;;
  2) CURL_HTTP=--http2 ;;
  *)
    echo "HTTP must be 1.1 or 2, not $HTTP" >&2
    exit 2
    ;;
esac

ADDR=127.0.0.1
P_B1=$((BASE_PORT + 1))
P_CAS=$((BASE_PORT + 10))
P_CAS_ADMIN=$((BASE_PORT + 11))
P_HAP=$((BASE_PORT + 20))

say() { printf '[instructions %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  say "$*"
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

for tool in valgrind callgrind_control curl openssl nginx setsid; do
  have "$tool" || die "missing $tool (apt-get install -y valgrind curl openssl nginx)"
done

PIDS=()
WORK=$(mktemp -d /tmp/casarray-instr.XXXXXX)
chmod 755 "$WORK"
OUT_DIR=${OUT_DIR:-}
cleanup() {
  local p
  if [[ -n "$OUT_DIR" ]]; then
    mkdir -p "$OUT_DIR"
    cp "$WORK"/*.callgrind.* "$OUT_DIR"/ 2>/dev/null || true
  fi
  for p in "${PIDS[@]}"; do
    kill -TERM -- "-$p" 2>/dev/null || true
  done
  sleep 0.5
  for p in "${PIDS[@]}"; do
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# launch LOG CMD...: CMD in a session of its own; prints its pid.
launch() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  PIDS+=("$!")
  echo "$!"
}

# ready URL PID LOG: waits up to 120 s (valgrind starts slowly).
ready() {
  local i
  for ((i = 0; i < 1200; i++)); do
    curl -skf -o /dev/null --max-time 5 "$1" && return 0
    kill -0 "$2" 2>/dev/null || {
      tail -20 "$3" >&2
      die "$1: the process exited"
    }
    sleep 0.1
  done
  die "$1 did not answer within 120 s"
}

mkdir -p "$WORK/backend" "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 7 \
  -subj "/CN=mail.lab.com" -addext "subjectAltName=DNS:mail.lab.com" \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/bundle.pem"
chmod 644 "$WORK"/tls/*
SMALL_TEXT=$(printf 'x%.0s' $(seq 1023))
cat >"$WORK/backend.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/backend/cb;
  proxy_temp_path $WORK/backend/p;
  fastcgi_temp_path $WORK/backend/f;
  uwsgi_temp_path $WORK/backend/u;
  scgi_temp_path $WORK/backend/s;
  keepalive_requests 10000000;
  default_type text/plain;
  server {
    listen $ADDR:$P_B1;
    location ~* /healthcheck\.htm\$ { return 200 "200 OK<br/>EX1"; }
    location / { return 200 "$SMALL_TEXT\n"; }
  }
}
EOF
bpid=$(launch "$WORK/backend/out.log" nginx -p "$WORK/backend/" -e "$WORK/backend/error.log" -c "$WORK/backend.conf")
ready "http://$ADDR:$P_B1/EWS/healthcheck.htm" "$bpid" "$WORK/backend/out.log"

# urls FILE COUNT URL: a curl config asking for URL COUNT times.
urls() {
  local i
  : >"$1"
  for ((i = 0; i < $2; i++)); do
    printf 'url = "%s"\noutput = "/dev/null"\n' "$3" >>"$1"
  done
}

# count LABEL URL CMD...: instructions of CMD (under callgrind) for N
# keep-alive requests to URL, after WARMUP.
count() {
  local label=$1 url=$2
  shift 2
  local out=$WORK/$label.callgrind
  local log=$WORK/$label.log
  local pid
  pid=$(launch "$log" valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$out.%p" "$@")
  ready "$url$PATH_SMALL" "$pid" "$log"
  local got
  got=$(curl -sk "$CURL_HTTP" --tlsv1.3 -o /dev/null -w '%{http_version}' "$url$PATH_SMALL")
  [[ $got == "$HTTP" ]] || die "$label spoke HTTP/$got, not HTTP/$HTTP"
  # Each curl run is one keep-alive connection. Warm up; then count one
  # request on a new connection (a handshake + 1 request) and N requests on
  # a new connection (a handshake + N); the difference over N - 1 is the
  # cost of a request on a kept connection, handshake excluded.
  urls "$WORK/warm.curl" "$WARMUP" "$url$PATH_SMALL"
  urls "$WORK/n.curl" "$N" "$url$PATH_SMALL"
  urls "$WORK/one.curl" 1 "$url$PATH_SMALL"
  curl -sk "$CURL_HTTP" --tlsv1.3 -K "$WORK/warm.curl"
  callgrind_control -z "$pid" >/dev/null
  curl -sk "$CURL_HTTP" --tlsv1.3 -K "$WORK/one.curl"
  callgrind_control -d "one" "$pid" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  curl -sk "$CURL_HTTP" --tlsv1.3 -K "$WORK/n.curl"
  callgrind_control -d "n" "$pid" >/dev/null
  kill -TERM -- "-$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  local one n aone an
  one=$(total "$out.$pid" one)
  n=$(total "$out.$pid" n)
  aone=$(allocs "$out.$pid" one)
  an=$(allocs "$out.$pid" n)
  # N requests on a new connection = one handshake + N requests; one
  # request on a new connection = one handshake + 1 request.
  echo "$label $one $n $aone $an"
}

# allocs FILEPREFIX TRIGGER: calls into the allocator's entry points in the
# dump made with TRIGGER (callgrind names a function once, then by id).
allocs() {
  local f
  for f in "$1".*; do
    if grep -q "^desc: Trigger: dump $2\$" "$f"; then
      python3 - "$f" <<'PY'
import re, sys
entry = {"_rjem_malloc", "_rjem_calloc", "_rjem_realloc", "_rjem_mallocx",
         "_rjem_rallocx", "malloc", "calloc", "realloc"}
names, total, fn, cfn = {}, 0, "", ""
# "fn=(12) name" defines id 12, "fn=(12)" uses it, "fn=name" (strings
# not compressed) names it outright.
pat = re.compile(r"^(c?fn)=(?:\((\d+)\))? ?(.*)$")
for line in open(sys.argv[1], errors="replace"):
    m = pat.match(line.rstrip("\n"))
    if m:
        kind, i, name = m.groups()
        if i is None:
            i = name
        if name:
            names[i] = name
        if kind == "fn":
            fn = names.get(i, "")
        else:
            cfn = names.get(i, "")
    elif line.startswith("calls=") and cfn in entry and fn not in entry and "rjem" not in fn:
        total += int(line.split("=")[1].split()[0])
print(total)
PY
      return
    fi
  done
  echo 0
}

# total FILEPREFIX TRIGGER: the Ir total of the dump made with TRIGGER.
total() {
  local f
  for f in "$1".*; do
    if grep -q "^desc: Trigger: dump $2\$" "$f"; then
      awk '/^summary:/ {print $2}' "$f"
      return
    fi
  done
  die "no dump '$2' for $1"
}

cas_config() { # FILE
  cat >"$1" <<EOF
[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"
public_names = ["mail.lab.com", "$ADDR"]

[listen]
https = "$ADDR:$P_CAS"
admin = "$ADDR:$P_CAS_ADMIN"

[tls]
cert = "$WORK/tls/cert.pem"
key = "$WORK/tls/key.pem"
watch = false

[health]
interval = "1h"
timeout = "30s"

[runtime]
workers = 1

[[service]]
name = "ews"

[[member]]
name = "EX1"
address = "$ADDR:$P_B1"
EOF
}

# No access log (RUST_LOG=warn), as HAProxy runs with `no log`. Set here,
# not through `env`: valgrind must run the proxy itself, not a wrapper that
# execs it.
export RUST_LOG=warn
ROWS=()
wants() { [[ " $PROXIES " == *" $1 "* ]]; }
if wants casarray; then
  [[ -x "$CASARRAY_BIN" ]] || die "no $CASARRAY_BIN: cargo build --release first"
  cas_config "$WORK/casarray.toml"
  ROWS+=("$(count casarray "https://$ADDR:$P_CAS" "$CASARRAY_BIN" serve --config "$WORK/casarray.toml")")
  if [[ -n "$CASARRAY_BIN_B" ]]; then
    ROWS+=("$(count casarray-B "https://$ADDR:$P_CAS" "$CASARRAY_BIN_B" serve --config "$WORK/casarray.toml")")
  fi
fi
if wants haproxy && have haproxy; then
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 1000
defaults
  mode http
  no log
  option http-keep-alive
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend array
  bind $ADDR:$P_HAP ssl crt $WORK/tls/bundle.pem alpn h2,http/1.1
  default_backend cas
backend cas
  http-reuse always
  option httpchk GET /EWS/healthcheck.htm
  default-server check inter 1h
  server ex1 $ADDR:$P_B1
EOF
  ROWS+=("$(count haproxy "https://$ADDR:$P_HAP" haproxy -db -f "$WORK/haproxy.cfg")")
fi

hap=""
for r in "${ROWS[@]}"; do
  read -r label one n _ _ <<<"$r"
  [[ $label == haproxy ]] && hap=$(((n - one) / (N - 1)))
done
echo
echo "HTTP/$HTTP on the front, 1 KiB answers:"
echo
echo "| proxy | requests | Ir (N on a new connection) | Ir (1 on a new connection) | Ir per request | vs HAProxy | allocations per request |"
echo "|---|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do
  read -r label one n aone an <<<"$r"
  per=$(((n - one) / (N - 1)))
  ratio="-"
  if [[ -n "$hap" && $label != haproxy ]]; then
    ratio=$(awk -v a="$per" -v b="$hap" 'BEGIN { printf "%.2f", a / b }')
  fi
  apr=$(awk -v a="$an" -v b="$aone" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / (n - 1) }')
  echo "| $label | $N | $n | $one | $per | $ratio | $apr |"
done
