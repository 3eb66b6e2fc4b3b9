#!/usr/bin/env bash
# benches/smtp.sh: SMTP through casarray's listen.smtp, straight to the
# hub, and through HAProxy in TCP mode (`mode tcp`, `option smtpchk`), in
# the same run, on 127.0.0.1 only.
#
# It builds nothing: run `cargo build --release` first (or point
# CASARRAY_BIN at a binary). Needs python3 (the load generator is Python's
# standard library: one process per connection slot, raw sockets) and
# openssl; HAProxy is measured when installed (apt-get install -y haproxy,
# as for benches/load.sh).
#
# What runs: one mock server with a hub transport (`mock-server --smtp`,
# its store on /dev/shm when there is one, so that fsync does not dominate),
# and in front of it, each with one worker thread:
#     casarray  ([listen] smtp, [smtp] health = "ehlo", banner-verified connect)
#     haproxy   (mode tcp, option smtpchk, nbthread 1)
# Cases (DUR seconds each, after WARMUP seconds unmeasured):
#     sessions  C_SESS parallel clients, each a loop of whole sessions:
#               connect, greeting, EHLO, MAIL, RCPT, DATA (1 KiB), QUIT
#     bulk      C_BULK parallel sessions, each sending 1 MiB messages
#               one after the other (MB/s of message data acknowledged)
# Every message goes to alice@lab.com with a fixed Message-ID: the hub
# spools, parses and deduplicates each one, and the store does not grow.
# and prints one markdown table: sessions/s, MB/s, the proxy's CPU (% of
# one core) and the ratios casarray/direct and casarray/HAProxy.
#
# Environment (defaults):
#   CASARRAY_BIN=<repo>/target/release/casarray
#   DUR=10 (max 30)  WARMUP=2  C_SESS=8  C_BULK=2
#   BASE_PORT=19400: hub +1 (HTTP +2), casarray +10 (admin +11, https +12), haproxy +20
#
# Every process started here runs in its own session and is stopped by its
# recorded process group on exit; nothing is killed by name.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASARRAY_BIN=${CASARRAY_BIN:-$ROOT/target/release/casarray}
DUR=${DUR:-10}
WARMUP=${WARMUP:-2}
C_SESS=${C_SESS:-8}
C_BULK=${C_BULK:-2}
BASE_PORT=${BASE_PORT:-19400}
((DUR > 30)) && DUR=30
((DUR < 1)) && DUR=1

ADDR=127.0.0.1
P_HUB=$((BASE_PORT + 1))
P_HTTP=$((BASE_PORT + 2))
P_CAS=$((BASE_PORT + 10))
P_CAS_ADMIN=$((BASE_PORT + 11))
P_CAS_HTTPS=$((BASE_PORT + 12))
P_HAP=$((BASE_PORT + 20))
HZ=$(getconf CLK_TCK)

say() { printf '[smtp %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  say "$*"
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

for tool in python3 openssl setsid; do
  have "$tool" || die "missing $tool"
done
[[ -x "$CASARRAY_BIN" ]] || die "no $CASARRAY_BIN: cargo build --release first"

GROUPS_STARTED=()
declare -A PID_OF
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
  [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# launch LABEL CMD...: in its own session (process group), logs in WORK/logs.
launch() {
  local label=$1
  shift
  setsid "$@" >"$WORK/logs/$label.out" 2>"$WORK/logs/$label.err" &
  local pid=$!
  GROUPS_STARTED+=("$pid")
  PID_OF[$label]=$pid
}

# ready_smtp PORT: a 220 greeting within 30 s.
ready_smtp() {
  python3 - "$1" <<'EOF' || die "nothing greets on port $1"
import socket, sys, time
deadline = time.time() + 30
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
            if s.recv(512).startswith(b"220"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

SHM=/dev/shm
[[ -d $SHM && -w $SHM ]] || SHM=${TMPDIR:-/tmp}
WORK=$(mktemp -d "$SHM/casarray-smtp-bench.XXXXXX")
mkdir -p "$WORK/logs" "$WORK/conf"

# ------------------------------------------------------------- the hub
launch hub env RUST_LOG=warn "$CASARRAY_BIN" mock-server --name EX1 \
  --listen "$ADDR:$P_HTTP" --store "$WORK/store" --smtp "$ADDR:$P_HUB" \
  --smtp-max-size $((4 * 1024 * 1024))
ready_smtp "$P_HUB"
say "hub on $P_HUB (store $WORK/store)"

# ------------------------------------------------------------- casarray
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=mail.lab.com -keyout "$WORK/conf/key.pem" -out "$WORK/conf/cert.pem" 2>/dev/null
cat >"$WORK/conf/casarray.toml" <<EOF
[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"
site = "Default-First-Site-Name"

[listen]
https = "$ADDR:$P_CAS_HTTPS"
admin = "$ADDR:$P_CAS_ADMIN"
smtp = "$ADDR:$P_CAS"

[tls]
cert = "cert.pem"
key = "key.pem"

[smtp]
health = "ehlo"

[runtime]
workers = 1

[[member]]
name = "EX1"
address = "$ADDR:$P_HTTP"
fqdn = "ex1.lab.local"
smtp = "$ADDR:$P_HUB"
EOF
launch casarray env RUST_LOG=warn "$CASARRAY_BIN" serve --config "$WORK/conf/casarray.toml"
ready_smtp "$P_CAS"
TARGETS=(direct casarray)
declare -A PORT_OF=([direct]=$P_HUB [casarray]=$P_CAS)
declare -A PROC_OF=([direct]="" [casarray]=casarray)

# ------------------------------------------------------------- haproxy
if have haproxy; then
  cat >"$WORK/conf/haproxy.cfg" <<EOF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend smtp
  bind $ADDR:$P_HAP
  default_backend hubs
backend hubs
  option smtpchk EHLO bench.example
  server ex1 $ADDR:$P_HUB check inter 1s
EOF
  haproxy -c -q -f "$WORK/conf/haproxy.cfg"
  launch haproxy haproxy -db -f "$WORK/conf/haproxy.cfg"
  ready_smtp "$P_HAP"
  TARGETS+=(haproxy)
  PORT_OF[haproxy]=$P_HAP
  PROC_OF[haproxy]=haproxy
else
  say "haproxy not installed: measured without it"
fi

# ------------------------------------------------------------- load
cat >"$WORK/load.py" <<'EOF'
"""SMTP load: CASE sessions|bulk, PORT, CONNS, SECONDS, WARMUP. Prints
'sessions N bytes B seconds S errors E'."""
import multiprocessing as mp
import socket
import sys
import time

case, port, conns, secs, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
# A fixed Message-ID: the hub reads, parses and deduplicates every
# message, and the mailbox does not grow between targets.
SMALL = b"Subject: bench\r\nMessage-ID: <bench-small@test.com>\r\n\r\n" + (b"x" * 78 + b"\r\n") * 12
LINE = b"y" * 998 + b"\r\n"
BIG = b"Subject: bulk\r\nMessage-ID: <bench-bulk@test.com>\r\n\r\n" + LINE * 1048


class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reply()

    def reply(self):
        while True:
            i = self.buf.find(b"\r\n")
            while i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if len(line) < 4 or line[3:4] != b"-":
                    if not line[:1] in (b"2", b"3"):
                        raise OSError(line.decode(errors="replace"))
                    return line
                i = self.buf.find(b"\r\n")
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk

    def say(self, data, replies=1):
        self.s.sendall(data)
        for _ in range(replies):
            self.reply()

    def message(self, body):
        # Pipelined MAIL, RCPT, DATA, then the data and its dot.
        self.say(b"MAIL FROM:<carol@test.com>\r\nRCPT TO:<alice@lab.com>\r\nDATA\r\n", 3)
        self.say(body + b".\r\n")


def worker(q, start, stop):
    n = nbytes = errors = 0
    c = None
    while time.time() < stop:
        try:
            if case == "sessions":
                c = Conn()
                c.say(b"EHLO bench.example\r\n")
                c.message(SMALL)
                c.say(b"QUIT\r\n")
                c.s.close()
                c = None
                size = len(SMALL)
            else:
                if c is None:
                    c = Conn()
                    c.say(b"EHLO bench.example\r\n")
                c.message(BIG)
                size = len(BIG)
            if time.time() >= start:
                n += 1
                nbytes += size
        except OSError:
            errors += 1
            c = None
    q.put((n, nbytes, errors))


if __name__ == "__main__":
    t0 = time.time()
    start, stop = t0 + warm, t0 + warm + secs
    q = mp.Queue()
    procs = [mp.Process(target=worker, args=(q, start, stop)) for _ in range(conns)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    print("sessions %d bytes %d seconds %.3f errors %d" % (
        sum(r[0] for r in res), sum(r[1] for r in res), secs, sum(r[2] for r in res)))
EOF

declare -A SESS_RATE MBPS CPU_SESS CPU_BULK ERRS
for t in "${TARGETS[@]}"; do
  port=${PORT_OF[$t]}
  proc=${PROC_OF[$t]}
  for case in sessions bulk; do
    conns=$C_SESS
    [[ $case == bulk ]] && conns=$C_BULK
    before=0
    [[ -n $proc ]] && before=$(cpu_ticks "${PID_OF[$proc]}")
    out=$(python3 "$WORK/load.py" "$case" "$port" "$conns" "$DUR" "$WARMUP")
    after=0
    [[ -n $proc ]] && after=$(cpu_ticks "${PID_OF[$proc]}")
    # CPU over warm-up and measure both: per cent of one core.
    cpu=$(awk -v a="$before" -v b="$after" -v hz="$HZ" -v d="$DUR" -v w="$WARMUP" \
      'BEGIN { printf "%.0f", (b - a) / hz / (d + w) * 100 }')
    read -r _ n _ bytes _ secs _ errs <<<"$out"
    say "$t $case: $out (proxy CPU ${cpu}%)"
    ERRS[$t]=$((${ERRS[$t]:-0} + errs))
    if [[ $case == sessions ]]; then
      SESS_RATE[$t]=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
      CPU_SESS[$t]=$cpu
    else
      MBPS[$t]=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1048576 }')
      CPU_BULK[$t]=$cpu
    fi
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
{
  echo "| target | sessions/s | proxy CPU (sessions) | MB/s (1 MiB messages) | proxy CPU (bulk) | errors |"
  echo "|---|---|---|---|---|---|"
  for t in "${TARGETS[@]}"; do
    c1=${CPU_SESS[$t]}
    c2=${CPU_BULK[$t]}
    [[ -z ${PROC_OF[$t]} ]] && c1=- && c2=-
    echo "| $t | ${SESS_RATE[$t]} | ${c1}% | ${MBPS[$t]} | ${c2}% | ${ERRS[$t]} |"
  done
  echo
  echo "casarray/direct: sessions $(ratio "${SESS_RATE[casarray]}" "${SESS_RATE[direct]}"), MB/s $(ratio "${MBPS[casarray]}" "${MBPS[direct]}")"
  if [[ -n ${SESS_RATE[haproxy]:-} ]]; then
    echo "casarray/HAProxy: sessions $(ratio "${SESS_RATE[casarray]}" "${SESS_RATE[haproxy]}"), MB/s $(ratio "${MBPS[casarray]}" "${MBPS[haproxy]}")"
  fi
  echo
  echo "($(nproc) cores, $(uname -r); $C_SESS session clients, $C_BULK bulk sessions, ${DUR}s after ${WARMUP}s; $(have haproxy && haproxy -v | head -1 | awk '{print "haproxy " $3}'))"
} | tee "$WORK/table.md"
