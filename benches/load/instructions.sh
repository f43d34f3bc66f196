#!/usr/bin/env bash
# User-space instructions per request (issue 17): edgesplit, nginx and HAProxy doing run.sh's job over
# HTTP/1.1 (the sticky 10 % split, the injected decision, forwarding headers, clients without cookies),
# one after the other, each under valgrind's callgrind. It counts every instruction the proxy's threads
# run in user space, libraries included (not the kernel's share, which is the same socket calls for all
# three: see syscalls.sh). On this shared 2-core box req/s moves by several per cent from run to run;
# this count moves by well under one, so it is the figure to judge a change to the request path by.
#
# Each proxy runs with one worker (nginx 1 worker, HAProxy 1 thread, edgesplit 1 Tokio worker), twice:
# started under callgrind, WARM requests, then N1 (first run) or N2 (second) requests with
# `h2load --h1 -c16`, then stopped (SIGTERM), when callgrind writes its counts. The difference between
# the two runs' counts over N2 - N1 is the cost of a request, with start-up, warm-up and shutdown
# cancelled out. No callgrind_control: nginx's worker runs as nobody, out of its reach. Loopback only,
# bounded in time.
#
#   N1=5000 N2=25000 WARM=2000 CONTENDERS="edgesplit nginx haproxy" SKIP_BUILD=1 EDGESPLIT_BIN=PATH
#   RESULTS=FILE (also write the table there) BASE_PORT=27100 TOP=20 (also list the costliest functions)
#   KEEP_CG=DIR (keep the callgrind files there, for callgrind_annotate --inclusive=yes or --tree=caller)
set -euo pipefail
export PIN=1 # one worker each (see lib.sh); valgrind runs a process's threads one at a time anyway
source "$(dirname "$0")/lib.sh"

CONTENDERS=${CONTENDERS:-"edgesplit nginx haproxy"}
N1=${N1:-5000}
N2=${N2:-25000}
WARM=${WARM:-2000}
read -r -a WHO <<<"$CONTENDERS"
ensure_tools nginx haproxy h2load openssl curl valgrind
edgesplit_binary

make_work
start_watchdog $((${#WHO[@]} * 2 * 150 + 60))
check_ports_free
make_cert
start_origins # not under valgrind

PLAIN_RUN=("${RUN[@]}")
mkdir -p "$WORK/cg"
chmod 777 "$WORK/cg" # nginx workers run as nobody
h1load() { # url requests: prints how many succeeded
  "${CLIENT_RUN[@]}" h2load --h1 -c16 -n"$2" "$1" >"$WORK/h2load.out" 2>&1 || die "h2load failed: $(tail -3 "$WORK/h2load.out")"
  awk '/^requests:/ {print $8}' "$WORK/h2load.out"
}

# Instructions of one life of contender $1 that served WARM + $2 requests.
one_life() {
  local who=$1 n=$2 pid port ok p
  RUN=("${PLAIN_RUN[@]}" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg/$who-$n.%p")
  export WAIT_SECS=120
  start_contender "$who"
  pid=$CONTENDER_PID port=$CONTENDER_PORT
  RUN=("${PLAIN_RUN[@]}")
  h1load "http://127.0.0.1:$port/" "$WARM" >/dev/null
  ok=$(h1load "http://127.0.0.1:$port/" "$n")
  [ "$ok" = "$n" ] || die "$who: $ok of $n requests succeeded"
  # SIGTERM: each proxy stops (nginx's master stops its worker) and callgrind writes its counts.
  kill -TERM "$pid"
  for p in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null || true
  sleep 0.5 # a worker's last write
  cat "$WORK"/cg/"$who-$n".* 2>/dev/null | awk '/^summary:/ {s += $2} END {print s + 0}'
}

# TOP=N: the N functions with the most instructions of their own, per request, in the second life
# (start-up and warm-up included, a few per cent of it), summed over the contender's processes.
top_functions() { # who
  local f
  for f in "$WORK"/cg/"$1-$N2".*; do callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null; done |
    awk -v n=$((WARM + N2)) -v top="$TOP" '
      /^ *[0-9][0-9,]* \( *[0-9.]+%\)  [^*<>=]/ && !/PROGRAM TOTALS|events annotated|x\)$/ {
        ir = $1; gsub(",", "", ir)
        name = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\)  /, "", name)
        sub(/ \[[^]]*\]$/, "", name)                       # the object file
        sub(/^(.*\.(rs|c|h|S)|\?\?\?):/, "", name)         # the source file, if known
        sum[name] += ir
      }
      END { for (k in sum) printf "%8.0f  %s\n", sum[k] / n, k }' | sort -rn | head -n "$TOP"
}

table="| contender | user-space instructions / request |
|---|--:|"
for who in "${WHO[@]}"; do
  log "$who: $WARM + $N1 requests under callgrind"
  a=$(one_life "$who" "$N1")
  log "$who: $WARM + $N2 requests under callgrind"
  b=$(one_life "$who" "$N2")
  [ "$a" -gt 0 ] && [ "$b" -gt "$a" ] || die "$who: no usable counts ($a, $b) in $WORK/cg"
  table="$table
| $who | $(awk -v a="$a" -v b="$b" -v n=$((N2 - N1)) 'BEGIN {printf "%.1fk", (b - a) / n / 1000}') |"
  if [ -n "${TOP:-}" ]; then
    echo "$who: the $TOP functions with the most instructions of their own, per request:"
    top_functions "$who" || true # head closing the pipe early is fine
  fi
  if [ -n "${KEEP_CG:-}" ]; then mkdir -p "$KEEP_CG" && cp "$WORK"/cg/"$who"-* "$KEEP_CG"/; fi
done

out="Measured $(date -u +'%Y-%m-%d %H:%M UTC'); $(describe_build). Each proxy with one worker under valgrind $(valgrind --version | sed 's/valgrind-//') (callgrind), over HTTP/1.1 keep-alive with \`h2load --h1 -c16\`: (instructions of a life with $WARM + $N2 requests - one with $WARM + $N1) / $((N2 - N1)), every thread of the proxy's processes, user space only.

$table"
echo "$out"
[ -z "${RESULTS:-}" ] || echo "$out" >"$RESULTS"
