#!/usr/bin/env bash
# Memory per connection: each proxy (same configuration as run.sh) at idle, then holding MEM_CONNS
# (default 10,000) idle keep-alive HTTP/1.1 connections that have each made one request, then after they
# close; over plain HTTP and over TLS (MEM_PROTOCOLS). RSS is VmRSS from /proc, summed over the process
# tree (nginx: master + workers). Loopback only.
#
#   MEM_CONNS=10000 MEM_PROTOCOLS="http https" CONTENDERS="edgesplit nginx haproxy" BASE_PORT=27100
#   SKIP_BUILD=1 RESULTS=FILE NICE=-10
#   AFTER_WAIT=27 (seconds after the 3 s reading for the second one: RSS 30 s after the close)
#   EDGESPLIT_BIN=PATH (with SKIP_BUILD: measure that binary instead of target/release/edgesplit)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MEM_CONNS=${MEM_CONNS:-10000}
CONTENDERS=${CONTENDERS:-"edgesplit nginx haproxy"}
read -r -a WHO <<<"$CONTENDERS"
read -r -a PROTOS <<<"${MEM_PROTOCOLS:-http https}"

ensure_tools nginx haproxy openssl curl ss
command -v "$PYTHON" >/dev/null || die "no $PYTHON (set PYTHON)"
edgesplit_binary

# Every process started from here inherits the raised limit: the client needs MEM_CONNS descriptors,
# a proxy MEM_CONNS plus its origin connections.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((MEM_CONNS + 500)) ] || die "open-files limit $(ulimit -n) is too low for $MEM_CONNS connections"

make_work
BOUND=$((${#WHO[@]} * ${#PROTOS[@]} * (150 + ${AFTER_WAIT:-27}) + 60))
log "${#WHO[@]} contenders x ${#PROTOS[@]} protocols x $MEM_CONNS connections; hard time bound $((BOUND / 60))m$((BOUND % 60))s"
start_watchdog "$BOUND"
check_ports_free
make_cert
start_origins

ROWS=()
for proto in "${PROTOS[@]}"; do
for who in "${WHO[@]}"; do
  start_contender "$who"
  pid=$CONTENDER_PID port=$CONTENDER_PORT tls_port=$CONTENDER_TLS_PORT
  case $proto in
    http) tls=0 ;;
    https) tls=1; port=$tls_port ;;
    *) die "unknown protocol $proto (http or https)" ;;
  esac
  # Idle: started, one request through (so lazily built pools and tables exist), settled.
  [ "$(curl -sk -o /dev/null -w '%{http_code}' "$proto://127.0.0.1:$port/")" = 200 ] || die "$who does not answer 200 over $proto"
  sleep 2
  idle=$(rss_kib "$pid")

  TLS=$tls "$PYTHON" "$LOAD_DIR/conns.py" "$port" "$MEM_CONNS" 120 >"$WORK/conns-$who.out" 2>&1 &
  cpid=$!
  PIDS+=("$cpid")
  for _ in $(seq 900); do
    grep -q '^READY' "$WORK/conns-$who.out" && break
    kill -0 "$cpid" 2>/dev/null || die "the client died: $(cat "$WORK/conns-$who.out")"
    sleep 0.1
  done
  ready=$(grep '^READY' "$WORK/conns-$who.out") || die "$who: the client was not ready in 90 s"
  ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$ready")
  sleep 2
  open=$(ss -Htn state established "( sport = :$port )" | wc -l)
  loaded=$(rss_kib "$pid")
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  sleep 3
  after=$(rss_kib "$pid")
  # Issue 17's bar: back within 10 MiB of idle within 30 s of the close.
  sleep "${AFTER_WAIT:-27}"
  after30=$(rss_kib "$pid")
  left=$(ss -Htn state established "( sport = :$port )" | wc -l)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  log "$who over $proto: idle ${idle} KiB, ${loaded} KiB with ${ok} connections held (${open} established), ${after} KiB 3 s after they closed (${left} still established), ${after30} KiB 30 s after"
  per=$(( (loaded - idle) * 1024 / (ok > 0 ? ok : 1) ))
  ROWS+=("| $who | $proto | $((idle / 1024)) MiB | $((loaded / 1024)) MiB | $ok ($open open) | $(( per )) B | $((after / 1024)) MiB | $((after30 / 1024)) MiB |")
done
done

{
  echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC'); $(describe_build); $(nginx -v 2>&1 | cut -d' ' -f3), HAProxy $(haproxy -v | head -1 | cut -d' ' -f3)."
  echo
  echo "| contender | protocol | RSS idle | RSS with $MEM_CONNS connections | connections held | per connection | RSS 3 s after they close | 30 s after |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "RSS is VmRSS summed over the process tree (nginx: master and 2 workers; HAProxy: one process, 2 threads; edgesplit: one process, a worker thread per core). Per connection = (RSS held - RSS idle) / connections held. nginx and HAProxy allocate their connection tables (worker_connections, maxconn = 30000) at start, so part of their per-connection cost is already in the idle figure."
} | tee "${RESULTS:-/dev/null}"
exit 0
