#!/usr/bin/env bash
# Syscalls and context switches per request (issue 17): edgesplit and HAProxy (and nginx) doing the job
# of run.sh over HTTP/1.1, one after the other, each under `wrk -t1 -c64 -d5s`. Context switches come
# from `perf stat -e context-switches` at full speed; syscalls from `strace -c -f` attached for a second
# run (strace slows the proxy a lot, but the counts per request hold). Loopback only, bounded in time.
#
#   CONTENDERS="edgesplit haproxy nginx" SKIP_BUILD=1 EDGESPLIT_BIN=PATH BASE_PORT=27100
#   PIN=1: run.sh's pinned layout (wrk alone on core 0; origins and the proxy, one worker each, on the last)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONTENDERS=${CONTENDERS:-"edgesplit haproxy nginx"}
read -r -a WHO <<<"$CONTENDERS"
ensure_tools nginx haproxy wrk openssl curl
command -v strace >/dev/null || die "strace is needed (apt-get install strace)"
command -v perf >/dev/null || die "perf is needed (apt-get install linux-perf)"
edgesplit_binary

make_work
start_watchdog $((${#WHO[@]} * 60 + 60))
check_ports_free
make_cert
start_origins

echo "| contender | context switches / request | syscalls / request | of which |"
echo "|---|--:|--:|---|"
for who in "${WHO[@]}"; do
  start_contender "$who"
  pid=$CONTENDER_PID port=$CONTENDER_PORT
  sleep 1
  pids=$(tree_pids "$pid" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
  perf stat -e context-switches -p "$pids" -o "$WORK/perf-$who" -- sleep 6 &
  perf_pid=$!
  "${CLIENT_RUN[@]}" wrk -t1 -c64 -d5s "http://127.0.0.1:$port/" >"$WORK/wrk-perf-$who" 2>&1
  wait "$perf_pid" || true
  reqs=$(awk '/requests in/{print $1}' "$WORK/wrk-perf-$who")
  cs=$(awk '/context-switches/{gsub(",","",$1); print $1}' "$WORK/perf-$who")
  strace_args=()
  for p in $(tree_pids "$pid"); do strace_args+=(-p "$p"); done
  strace -c -f "${strace_args[@]}" -o "$WORK/strace-$who" 2>/dev/null &
  strace_pid=$!
  sleep 1
  "${CLIENT_RUN[@]}" wrk -t1 -c64 -d5s "http://127.0.0.1:$port/" >"$WORK/wrk-strace-$who" 2>&1
  kill -INT "$strace_pid"
  wait "$strace_pid" 2>/dev/null || true
  sreqs=$(awk '/requests in/{print $1}' "$WORK/wrk-strace-$who")
  awk -v who="$who" -v r="$sreqs" -v cs="$cs" -v creqs="$reqs" '
    $NF == "total" { total = $3 }
    NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ && $4 / r >= 0.01 {
      part = part sprintf("%s%s %.2f", (part == "" ? "" : ", "), $NF, $4 / r)
      if ($5 ~ /^[0-9]+$/ && $5 / r >= 0.01) part = part sprintf(" (%.2f failed)", $5 / r)
    }
    NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ { calls += $4 }
    END { printf "| %s | %.2f | %.2f | %s |\n", who, cs / creqs, calls / r, part }' "$WORK/strace-$who"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
echo
echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC'); $(describe_build). Each proxy alone with wrk -t1 -c64 over HTTP/1.1 keep-alive; syscalls of every thread of the proxy's processes; only calls made at least once per 100 requests are listed."
