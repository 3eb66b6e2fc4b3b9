#!/usr/bin/env bash
# benches/routing.sh: mailbox-aware routing on and off, the same load
# through the same array in front of the lab's DAG (two mock servers, DB01
# active on EX1 with alice, DB02 on EX2 with bob), on 127.0.0.1 only.
#
# With routing on, each EWS request (X-AnchorMailbox: alice or bob, in
# turn) goes straight to the server holding its mailbox's active copy;
# with `[proxy] mailbox_routing = false` the array balances round robin
# and about half the requests land on the other server, which proxies them
# server to server (the extra hop Exchange 2013+ front ends make and that
# HAProxy, nginx, F5 and KEMP leave to Exchange). Prints req/s, p50, p99
# and the array's CPU for both, side by side.
#
# It builds nothing: `cargo build --release` first (or CASARRAY_BIN=...).
# Needs wrk, curl. Environment (defaults): CASARRAY_BIN=target/release/casarray
# DUR=10 (max 30) WARMUP=2 CONNS=20 THREADS=1 BASE_PORT=19600.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASARRAY_BIN=${CASARRAY_BIN:-$ROOT/target/release/casarray}
DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-20}
THREADS=${THREADS:-1}
BASE_PORT=${BASE_PORT:-19600}
((DUR > 30)) && DUR=30
HTTPS_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
HZ=$(getconf CLK_TCK)

say() { printf '[routing %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  say "$*"
  exit 1
}
for tool in wrk curl setsid; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool (apt-get install -y wrk curl)"
done
[[ -x "$CASARRAY_BIN" ]] || die "no $CASARRAY_BIN: cargo build --release first"

WORK=$(mktemp -d /tmp/casarray-routing.XXXXXX)
LAB_PGID=""
cleanup() {
  if [[ -n "$LAB_PGID" ]]; then
    kill -INT -- "-$LAB_PGID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 -- "-$LAB_PGID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$LAB_PGID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting the lab in $WORK"
RUST_LOG=warn setsid "$CASARRAY_BIN" lab --dir "$WORK/lab" --https "127.0.0.1:$HTTPS_PORT" \
  --admin "127.0.0.1:$ADMIN_PORT" >"$WORK/lab.out" 2>&1 </dev/null &
LAB_PGID=$!

CA=$WORK/lab/certs/ca.crt
URL="https://mail.lab.com:$HTTPS_PORT"
RESOLVE=(--resolve "mail.lab.com:$HTTPS_PORT:127.0.0.1")
ADMIN="http://127.0.0.1:$ADMIN_PORT"
ready() {
  local i
  for ((i = 0; i < 600; i++)); do
    if [[ -f $CA ]] && curl -sf --cacert "$CA" "${RESOLVE[@]}" -o /dev/null --max-time 2 "$URL/owa/healthcheck.htm" &&
      curl -sf --max-time 2 "$ADMIN/api/databases" | grep -q '"active":"EX1"' &&
      curl -sf --max-time 2 "$ADMIN/api/databases" | grep -q '"active":"EX2"'; then
      return 0
    fi
    kill -0 "$LAB_PGID" 2>/dev/null || {
      tail -30 "$WORK/lab.out" >&2
      die "the lab exited"
    }
    sleep 0.1
  done
  die "the lab was not ready within 60 s"
}
ready
ARRAY_PID=$(pgrep -g "$LAB_PGID" -f "casarray serve" | head -1)
[[ -n "$ARRAY_PID" ]] || die "no array process"

cat >"$WORK/ews.lua" <<'EOF'
local body = '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></soap:Body></soap:Envelope>'
local users = {
  { "alice@lab.com", "Basic YWxpY2VAbGFiLmNvbTpBbGljZSFsYWIx" },
  { "bob@lab.com", "Basic Ym9iQGxhYi5jb206Qm9iIWxhYjE=" },
}
local n = 0
request = function()
  n = n + 1
  local u = users[(n % 2) + 1]
  return wrk.format("POST", "/EWS/Exchange.asmx", {
    ["Host"] = "mail.lab.com",
    ["Content-Type"] = "text/xml; charset=utf-8",
    ["X-AnchorMailbox"] = u[1],
    ["Authorization"] = u[2],
  }, body)
end
EOF

cpu_ticks() { # PID: user+system ticks
  local rest fields
  rest=$(cat "/proc/$1/stat")
  rest=${rest##*) }
  read -ra fields <<<"$rest"
  echo $((fields[11] + fields[12]))
}

# run LABEL: one measured wrk run; prints a table row.
run() {
  local label=$1 out t0 t1
  # wrk resolves mail.lab.com itself: use the IP and send Host.
  wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$WORK/ews.lua" "https://127.0.0.1:$HTTPS_PORT" >/dev/null 2>&1 || true
  t0=$(cpu_ticks "$ARRAY_PID")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/ews.lua" "https://127.0.0.1:$HTTPS_PORT")
  t1=$(cpu_ticks "$ARRAY_PID")
  echo "$out" >"$WORK/$label.wrk"
  local rps p50 p99 errs cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v d="$DUR" 'BEGIN { printf "%.0f", 100 * t / hz / d }')
  echo "| $label | $rps | $p50 | $p99 | ${errs:-0} | $cpu |"
}

set_routing() { # true|false: rewrite the config, wait for the reload
  local before
  before=$(curl -s "$ADMIN/metrics" | awk '/^casarray_config_reloads_total\{result="success"\}/ {print $2}')
  if grep -q '^mailbox_routing' "$WORK/lab/casarray.toml"; then
    sed -i "s/^mailbox_routing = .*/mailbox_routing = $1/" "$WORK/lab/casarray.toml"
  else
    printf '\n[proxy]\nmailbox_routing = %s\n' "$1" >>"$WORK/lab/casarray.toml"
  fi
  for _ in $(seq 300); do
    local now
    now=$(curl -s "$ADMIN/metrics" | awk '/^casarray_config_reloads_total\{result="success"\}/ {print $2}')
    [[ "$now" != "$before" ]] && return 0
    sleep 0.1
  done
  die "the array did not reload"
}

echo "| mailbox routing | req/s | p50 | p99 | non-2xx | array CPU % |"
echo "|---|---|---|---|---|---|"
run "on (straight to the active copy)"
set_routing false
run "off (round robin: half proxied by a member)"
set_routing true
run "on again"
