#!/usr/bin/env bash
# benches/load.sh: casarray side by side with HAProxy and nginx, and with
# the backend straight, under the same wrk load, on 127.0.0.1 only.
#
# It builds nothing: run `cargo build --release` first (or point
# CASARRAY_BIN at a binary). Needs wrk, openssl, curl and nginx (the
# backends are two nginx servers, one worker each); HAProxy and the nginx
# proxy are measured when installed:
#     apt-get install -y wrk haproxy nginx curl openssl nghttp2-client
#
# What runs: two nginx backends answering /EWS/healthcheck.htm ("200 OK"),
# /EWS/1m (1 MiB) and any other path (1 KiB); in front of them, each with
# the same certificate, TLS 1.3, session tickets and a session cache, keep-
# alive to the backends, round robin, WORKERS worker threads/processes:
#     casarray  (target/release/casarray serve, [runtime] workers = WORKERS)
#     haproxy   (nbthread WORKERS)
#     nginx     (worker_processes WORKERS)
# Cases (wrk -t THREADS, DUR seconds each, after WARMUP seconds unmeasured):
#     small  1 KiB keep-alive, C_SMALL connections
#     big    1 MiB keep-alive, C_BIG connections
#     close  1 KiB, Connection: close: a new connection per request
#            (wrk offers the previous TLS session: resumed handshakes)
#     full   full TLS handshakes: FULL_PROCS parallel `openssl s_time -new`
#     h2     1 KiB over HTTP/2 (ALPN h2 on the front; the proxies still
#            speak HTTP/1.1 to the backends): h2load (Debian's
#            nghttp2-client), C_H2 connections x M_H2 concurrent streams,
#            THREADS threads; p50/p99 from h2load's per-request log. Not
#            run against the backend (it speaks no h2)
# and prints the negotiated TLS version and cipher and whether each proxy
# resumes sessions, then one markdown table: req/s, MB/s, p50, p99, errors,
# the proxy's CPU and the load generator's (in % of one core), req/s per
# proxy core, and the ratios casarray/direct and casarray/HAProxy (and
# casarray/nginx), raw and per core. No proxy logs requests (casarray runs
# with RUST_LOG=warn, which turns its access log off).
#
# Environment (defaults):
#   CASARRAY_BIN=<repo>/target/release/casarray
#   WORKERS=1  DUR=10 (max 10)  WARMUP=2  THREADS=1
#   C_SMALL=50  C_BIG=10  C_CLOSE=50  FULL_PROCS=4  C_H2=10  M_H2=10
#   CASES="small big close full h2"   KEY_TYPE=ec256 | rsa2048
#   PROXIES="casarray haproxy nginx"   (absent ones are skipped)
#   BASE_PORT=19000: backends +1 +2, casarray +10 (admin +11), haproxy +20, nginx +30
#   OUT_DIR=  (if set, raw wrk outputs, configs, logs and table.md are copied there)
#
# Every process started here runs in its own session and is stopped by its
# recorded process group on exit; nothing is killed by name.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASARRAY_BIN=${CASARRAY_BIN:-$ROOT/target/release/casarray}
WORKERS=${WORKERS:-1}
DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-1}
C_SMALL=${C_SMALL:-50}
C_BIG=${C_BIG:-10}
C_CLOSE=${C_CLOSE:-50}
FULL_PROCS=${FULL_PROCS:-4}
C_H2=${C_H2:-10}
M_H2=${M_H2:-10}
CASES=${CASES:-small big close full h2}
KEY_TYPE=${KEY_TYPE:-ec256}
PROXIES=${PROXIES:-casarray haproxy nginx}
BASE_PORT=${BASE_PORT:-19000}
OUT_DIR=${OUT_DIR:-}

((DUR > 10)) && DUR=10
((DUR < 1)) && DUR=1
((WARMUP > 10)) && WARMUP=10

ADDR=127.0.0.1
P_B1=$((BASE_PORT + 1))
P_B2=$((BASE_PORT + 2))
P_CAS=$((BASE_PORT + 10))
P_CAS_ADMIN=$((BASE_PORT + 11))
P_HAP=$((BASE_PORT + 20))
P_NGX=$((BASE_PORT + 30))
HZ=$(getconf CLK_TCK)

say() { printf '[load %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  say "$*"
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

for tool in wrk openssl curl nginx setsid ss pgrep; do
  have "$tool" || die "missing $tool (apt-get install -y wrk haproxy nginx curl openssl)"
done
if [[ " $CASES " == *" h2 "* ]] && ! have h2load; then
  die "missing h2load for the h2 case (apt-get install -y nghttp2-client), or leave h2 out of CASES"
fi

# ------------------------------------------------------------- processes
GROUPS_STARTED=()
declare -A GROUP_OF # label -> process group id
WORK=""

stop_everything() {
  local pgid i
  for pgid in "${GROUPS_STARTED[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  for pgid in "${GROUPS_STARTED[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
  done
  GROUPS_STARTED=()
}

on_exit() {
  local rc=$?
  stop_everything
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ -n "$OUT_DIR" ]]; then
      mkdir -p "$OUT_DIR"
      cp -r "$WORK/raw" "$WORK/conf" "$WORK/logs" "$OUT_DIR"/ 2>/dev/null || true
      cp "$WORK/table.md" "$OUT_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# launch LABEL CMD...: runs CMD in a new session; its pid is the group id.
launch() {
  local label=$1
  shift
  setsid "$@" >"$WORK/logs/$label.out" 2>&1 </dev/null &
  GROUPS_STARTED+=("$!")
  GROUP_OF[$label]=$!
  say "started $label (process group $!)"
}

# ready LABEL URL: waits up to 20 s for URL to answer 200.
ready() {
  local label=$1 url=$2 i
  for ((i = 0; i < 200; i++)); do
    curl -skf -o /dev/null --max-time 1 "$url" && return 0
    kill -0 "${GROUP_OF[$label]}" 2>/dev/null || {
      tail -20 "$WORK/logs/$label.out" >&2
      die "$label exited"
    }
    sleep 0.1
  done
  die "$label did not answer $url within 20 s"
}

# cpu_ticks PGID: user+system clock ticks of every process in the group.
cpu_ticks() {
  local pid rest fields total=0
  for pid in $(pgrep -g "$1"); do
    rest=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    rest=${rest##*) }
    read -ra fields <<<"$rest"
    # fields after "pid (comm) ": state ppid pgrp ...; utime, stime = 12th, 13th
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# rss_kib PGID: summed VmRSS of the group.
rss_kib() {
  local pid v total=0
  for pid in $(pgrep -g "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# ------------------------------------------------------------- setup
for port in "$P_B1" "$P_B2" "$P_CAS" "$P_CAS_ADMIN" "$P_HAP" "$P_NGX"; do
  if ss -Htln "sport = :$port" | grep -q .; then
    die "port $port is taken (set BASE_PORT)"
  fi
done

WORK=$(mktemp -d /tmp/casarray-load.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody
mkdir -p "$WORK/raw" "$WORK/conf" "$WORK/logs" "$WORK/www/EWS" "$WORK/tls"

CERT=$WORK/tls/mail.lab.com.crt
KEY=$WORK/tls/mail.lab.com.key
case $KEY_TYPE in
  ec256) KEY_ARGS=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
  rsa2048) KEY_ARGS=(-newkey rsa:2048) ;;
  *) die "KEY_TYPE is ec256 or rsa2048" ;;
esac
openssl req -x509 "${KEY_ARGS[@]}" -nodes -sha256 -days 7 -subj "/CN=mail.lab.com" \
  -addext "subjectAltName=DNS:mail.lab.com,DNS:autodiscover.lab.com" \
  -keyout "$KEY" -out "$CERT" 2>"$WORK/logs/openssl.out"
cat "$CERT" "$KEY" >"$WORK/tls/bundle.pem"
chmod 644 "$CERT" "$KEY" "$WORK/tls/bundle.pem"

head -c 1048576 /dev/urandom >"$WORK/www/EWS/1m"
chmod -R a+rX "$WORK/www"
SMALL_TEXT=$(printf 'x%.0s' $(seq 1023))

temp_paths() { # nginx temp dirs under $1
  local d
  for d in client_body proxy fastcgi uwsgi scgi; do
    printf '  %s_temp_path %s/%s;\n' "$d" "$1" "$d"
  done
}

backend_conf() { # NAME PORT
  local dir=$WORK/$1
  mkdir -p "$dir"
  cat >"$WORK/conf/$1.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $WORK/logs/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
$(temp_paths "$dir")
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  default_type text/plain;
  server {
    listen $ADDR:$2 backlog=4096;
    root $WORK/www;
    location ~* /healthcheck\.htm\$ { return 200 "200 OK<br/>$1"; }
    location = /EWS/1m { default_type application/octet-stream; }
    location / { return 200 "$SMALL_TEXT\n"; }
  }
}
EOF
}

backend_conf backend1 "$P_B1"
backend_conf backend2 "$P_B2"
launch backend1 nginx -p "$WORK/backend1/" -e "$WORK/logs/backend1.error.log" -c "$WORK/conf/backend1.conf"
launch backend2 nginx -p "$WORK/backend2/" -e "$WORK/logs/backend2.error.log" -c "$WORK/conf/backend2.conf"
ready backend1 "http://$ADDR:$P_B1/EWS/healthcheck.htm"
ready backend2 "http://$ADDR:$P_B2/EWS/healthcheck.htm"

TARGETS=(direct)
declare -A URL_OF=([direct]="http://$ADDR:$P_B1")
declare -A LOAD_GROUP=([direct]=backend1) # whose CPU a target's row shows

wants() { [[ " $PROXIES " == *" $1 "* ]]; }

if wants casarray; then
  [[ -x "$CASARRAY_BIN" ]] || die "no $CASARRAY_BIN: run cargo build --release first"
  cat >"$WORK/conf/casarray.toml" <<EOF
[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"

[listen]
https = "$ADDR:$P_CAS"
admin = "$ADDR:$P_CAS_ADMIN"

[tls]
cert = "$CERT"
key = "$KEY"
watch = false

[health]
interval = "2s"
timeout = "1s"
rise = 1
fall = 3

[runtime]
workers = $WORKERS

[[service]]
name = "ews"

[[member]]
name = "EX1"
address = "$ADDR:$P_B1"

[[member]]
name = "EX2"
address = "$ADDR:$P_B2"
EOF
  # The access log is off, as in the HAProxy and nginx configs below.
  launch casarray env RUST_LOG=warn "$CASARRAY_BIN" serve --config "$WORK/conf/casarray.toml"
  ready casarray "https://$ADDR:$P_CAS/EWS/small"
  TARGETS+=(casarray)
  URL_OF[casarray]="https://$ADDR:$P_CAS"
  LOAD_GROUP[casarray]=casarray
fi

if wants haproxy && have haproxy; then
  cat >"$WORK/conf/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  maxconn 9000
  ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
  mode http
  no log
  option http-keep-alive
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-request 30s
  timeout http-keep-alive 60s

frontend array
  bind $ADDR:$P_HAP ssl crt $WORK/tls/bundle.pem alpn h2,http/1.1
  default_backend cas

backend cas
  balance roundrobin
  http-reuse always
  option httpchk GET /EWS/healthcheck.htm
  http-check expect status 200
  default-server check inter 2s rise 1 fall 3
  server ex1 $ADDR:$P_B1
  server ex2 $ADDR:$P_B2
EOF
  haproxy -c -q -f "$WORK/conf/haproxy.cfg"
  launch haproxy haproxy -db -f "$WORK/conf/haproxy.cfg"
  ready haproxy "https://$ADDR:$P_HAP/EWS/small"
  TARGETS+=(haproxy)
  URL_OF[haproxy]="https://$ADDR:$P_HAP"
  LOAD_GROUP[haproxy]=haproxy
fi

if wants nginx; then
  mkdir -p "$WORK/nginx"
  cat >"$WORK/conf/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/logs/nginx.error.log warn;
events { worker_connections 9000; }
http {
  access_log off;
$(temp_paths "$WORK/nginx")
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  upstream cas {
    server $ADDR:$P_B1;
    server $ADDR:$P_B2;
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen $ADDR:$P_NGX ssl http2 backlog=4096;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:TLS:10m;
    location / {
      proxy_pass http://cas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffers 16 16k;
      proxy_max_temp_file_size 0;
    }
  }
}
EOF
  nginx -t -q -p "$WORK/nginx/" -e "$WORK/logs/nginx.error.log" -c "$WORK/conf/nginx.conf"
  launch nginx nginx -p "$WORK/nginx/" -e "$WORK/logs/nginx.error.log" -c "$WORK/conf/nginx.conf"
  ready nginx "https://$ADDR:$P_NGX/EWS/small"
  TARGETS+=(nginx)
  URL_OF[nginx]="https://$ADDR:$P_NGX"
  LOAD_GROUP[nginx]=nginx
fi

for t in "${TARGETS[@]}"; do
  small=$(curl -sk "${URL_OF[$t]}/EWS/small" | wc -c)
  big=$(curl -sk "${URL_OF[$t]}/EWS/1m" | wc -c)
  [[ $small == 1024 && $big == 1048576 ]] || die "$t answers $small and $big bytes, not 1024 and 1048576"
done

# ------------------------------------------------------------- TLS check
# tls_facts TARGET: "TLSv1.3 TLS_AES_256_GCM_SHA384, resumes: yes|no".
# TLS 1.3 tickets come after the handshake: the first connection sends a
# request and reads the answer before its session is saved.
tls_facts() {
  local hostport=${URL_OF[$1]#https://} sess=$WORK/raw/session.$1 first proto cipher resumes=no
  first=$(printf 'GET /EWS/small HTTP/1.1\r\nHost: mail.lab.com\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "$hostport" -servername mail.lab.com -ign_eof \
      -sess_out "$sess" 2>&1 || true)
  proto=$(awk '/^ *Protocol *:/ { print $NF; exit }' <<<"$first")
  cipher=$(awk '/^ *Cipher *:/ { print $NF; exit }' <<<"$first")
  if [[ -s $sess ]] && timeout 10 openssl s_client -connect "$hostport" -servername mail.lab.com \
    -sess_in "$sess" </dev/null 2>/dev/null | grep -q '^Reused'; then
    resumes=yes
  fi
  echo "${proto:-?} ${cipher:-?}, resumes: $resumes"
}

declare -A TLS_FACTS
for t in "${TARGETS[@]}"; do
  [[ ${URL_OF[$t]} == https://* ]] && TLS_FACTS[$t]=$(tls_facts "$t")
done

# ------------------------------------------------------------- measuring
declare -A RPS MBS P50 P99 ERRS CPU LOADCPU

# measure CASE TARGET OUT CMD...: runs CMD (output to OUT), charging the
# target's CPU (CPU) and the load generator's own (LOADCPU).
measure() {
  local key=$1.$2 out=$3 group=${GROUP_OF[${LOAD_GROUP[$2]}]} t0 t1 c0 c1 used
  shift 3
  c0=$(cpu_ticks "$group")
  t0=$(date +%s%N)
  used=$({
    TIMEFORMAT='%U %S'
    time { "$@" >"$out" 2>&1 || true; }
  } 2>&1)
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$group")
  CPU[$key]=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", c / hz / (ns / 1e9) * 100 }')
  LOADCPU[$key]=$(awk -v u="${used% *}" -v s="${used#* }" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", (u + s) / (ns / 1e9) * 100 }')
}

# wrk_case CASE TARGET PATH CONNS [HEADER]
wrk_case() {
  local c=$1 t=$2 path=$3 conns=$4 raw=$WORK/raw/$1.$2.txt
  local args=(-t"$THREADS" -c"$conns")
  [[ $# -ge 5 ]] && args+=(-H "$5")
  if ((WARMUP > 0)); then
    timeout $((WARMUP + 15)) wrk "${args[@]}" -d"${WARMUP}s" "${URL_OF[$t]}$path" >/dev/null 2>&1 || true
  fi
  sleep 1
  say "$c -> $t: wrk ${args[*]} -d${DUR}s ${URL_OF[$t]}$path"
  measure "$c" "$t" "$raw" timeout $((DUR + 20)) wrk "${args[@]}" -d"${DUR}s" --latency "${URL_OF[$t]}$path"
  local rps mbs p50 p99 errs
  read -r rps mbs p50 p99 errs < <(awk '
    function mb(v) { if (v ~ /GB$/) return v * 1024; if (v ~ /MB$/) return v + 0; if (v ~ /KB$/) return v / 1024; return v / 1048576 }
    /^Requests\/sec:/ { rps = $2 }
    /^Transfer\/sec:/ { xfer = mb($2) }
    $1 == "50%" { p50 = $2 }
    $1 == "99%" { p99 = $2 }
    /Socket errors:/ { gsub(/,/, ""); errs += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { errs += $NF }
    END { printf "%.0f %.1f %s %s %d\n", rps, xfer, (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99), errs }' "$raw")
  RPS[$c.$t]=$rps
  MBS[$c.$t]=$mbs
  P50[$c.$t]=$p50
  P99[$c.$t]=$p99
  ERRS[$c.$t]=$errs
}

# s_time_clients TARGET HOST:PORT: FULL_PROCS parallel `openssl s_time -new`.
s_time_clients() {
  local i pids=()
  for ((i = 0; i < FULL_PROCS; i++)); do
    timeout $((DUR + 20)) openssl s_time -connect "$2" -new -time "$DUR" \
      -www /EWS/small >"$WORK/raw/full.$1.$i.txt" 2>&1 &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
}

# full_case TARGET: full TLS handshakes (no session offered) for DUR s.
full_case() {
  local t=$1 t0 t1 n
  sleep 1
  say "full -> $t: openssl s_time -new x$FULL_PROCS, ${DUR}s"
  t0=$(date +%s%N)
  measure full "$t" /dev/null s_time_clients "$t" "${URL_OF[$t]#https://}"
  t1=$(date +%s%N)
  # "N connections in T real seconds": sum N, divide by our own clock.
  n=$(cat "$WORK"/raw/full."$t".*.txt | awk '/connections in [0-9]+ real seconds/ { n += $1 } END { print n + 0 }')
  RPS[full.$t]=$(awk -v n="$n" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
  MBS[full.$t]=-
  P50[full.$t]=-
  P99[full.$t]=-
  ERRS[full.$t]=0
}

# h2_case TARGET: 1 KiB answers over HTTP/2, h2load with C_H2 connections
# of M_H2 concurrent streams each. Latencies from h2load's per-request log
# (third column: microseconds to the end of the answer).
h2_case() {
  local t=$1 raw=$WORK/raw/h2.$1.txt lat=$WORK/raw/h2.$1.latency
  local args=(-t"$THREADS" -c"$C_H2" -m"$M_H2")
  sleep 1
  say "h2 -> $t: h2load ${args[*]} --warm-up-time=${WARMUP}s -D $DUR ${URL_OF[$t]}/EWS/small"
  measure h2 "$t" "$raw" timeout $((DUR + WARMUP + 20)) h2load "${args[@]}" \
    --warm-up-time="${WARMUP}s" -D "$DUR" --log-file="$lat" "${URL_OF[$t]}/EWS/small"
  grep -q 'Application protocol: h2' "$raw" || die "$t did not negotiate h2 (see $raw)"
  local rps mbs errs p50 p99
  read -r rps mbs errs < <(awk '
    function mb(v) { if (v ~ /GB\/s$/) return v * 1024; if (v ~ /MB\/s$/) return v + 0; if (v ~ /KB\/s$/) return v / 1024; return v / 1048576 }
    /^finished in/ { rps = $4; xfer = mb($6) }
    /^requests:/ { errs = $12 + $14 + $16 }
    /^status codes:/ { errs += $5 + $7 + $9 }
    END { printf "%.0f %.1f %d\n", rps, xfer, errs }' "$raw")
  read -r p50 p99 < <(cut -f3 "$lat" | sort -n | awk '
    { v[NR] = $1 }
    function ms(us) { return sprintf("%.2fms", us / 1000) }
    END { if (NR == 0) { print "- -"; exit } print ms(v[int(NR * 0.50) + 1]), ms(v[int(NR * 0.99) + 1]) }')
  RPS[h2.$t]=$rps
  MBS[h2.$t]=$mbs
  P50[h2.$t]=$p50
  P99[h2.$t]=$p99
  ERRS[h2.$t]=$errs
}

for c in $CASES; do
  for t in "${TARGETS[@]}"; do
    case $c in
      small) wrk_case small "$t" /EWS/small "$C_SMALL" ;;
      big) wrk_case big "$t" /EWS/1m "$C_BIG" ;;
      close) wrk_case close "$t" /EWS/small "$C_CLOSE" "Connection: close" ;;
      full) [[ $t == direct ]] || full_case "$t" ;;
      h2) [[ $t == direct ]] || h2_case "$t" ;;
      *) die "unknown case $c" ;;
    esac
  done
done

declare -A RSS
for t in "${TARGETS[@]}"; do
  RSS[$t]=$(($(rss_kib "${GROUP_OF[${LOAD_GROUP[$t]}]}") / 1024))
done

# ------------------------------------------------------------- report
per_core() { awk -v r="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", r / (c / 100); else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }

{
  echo "### casarray load comparison, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "$(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)); $("$CASARRAY_BIN" --version 2>/dev/null || echo casarray);" \
    "$(have haproxy && haproxy -v | head -1 | awk '{print "haproxy " $3}');" \
    "$(nginx -v 2>&1 | sed 's#.*/#nginx #');" \
    "$(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'); key $KEY_TYPE; workers $WORKERS; wrk -t$THREADS, ${DUR}s per run"
  echo
  for t in "${TARGETS[@]}"; do
    [[ -n "${TLS_FACTS[$t]:-}" ]] && echo "- $t: ${TLS_FACTS[$t]}"
  done
  echo
  echo "| case | target | req/s | MB/s | p50 | p99 | errors | CPU % | load CPU % | req/s per core | vs direct | casarray / this (per core) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in $CASES; do
    case $c in
      small) label="1 KiB keep-alive -c$C_SMALL" ;;
      big) label="1 MiB keep-alive -c$C_BIG" ;;
      close) label="1 KiB new conn/req (resumed) -c$C_CLOSE" ;;
      full) label="full handshakes x$FULL_PROCS ($KEY_TYPE)" ;;
      h2) label="1 KiB HTTP/2 -c$C_H2 -m$M_H2" ;;
    esac
    for t in "${TARGETS[@]}"; do
      k=$c.$t
      [[ -n "${RPS[$k]:-}" ]] || continue
      pc=$(per_core "${RPS[$k]}" "${CPU[$k]}")
      vs=-
      [[ -n "${RPS[$c.direct]:-}" ]] && vs=$(ratio "${RPS[$k]}" "${RPS[$c.direct]}")
      cas=-
      if [[ $t != casarray && $t != direct && -n "${RPS[$c.casarray]:-}" ]]; then
        cas="$(ratio "${RPS[$c.casarray]}" "${RPS[$k]}") ($(ratio "$(per_core "${RPS[$c.casarray]}" "${CPU[$c.casarray]}")" "$pc"))"
      fi
      echo "| $label | $t | ${RPS[$k]} | ${MBS[$k]} | ${P50[$k]} | ${P99[$k]} | ${ERRS[$k]} | ${CPU[$k]} | ${LOADCPU[$k]} | $pc | $vs | $cas |"
    done
  done
  echo
  echo "CPU % is the target's own processes during the run, in % of one core (direct: backend1);"
  echo "load CPU % is wrk's (or the s_time clients'). 2 cores = 200 %."
  echo "req/s per core = req/s / (CPU % / 100). Last column: casarray's req/s over this proxy's,"
  echo "and in brackets the same per core. RSS after the runs (MiB):$(for t in "${TARGETS[@]}"; do printf ' %s %s;' "$t" "${RSS[$t]}"; done)"
} | tee "$WORK/table.md"
