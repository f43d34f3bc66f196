#!/usr/bin/env bash
# Soak test: wrk load through edgesplit (release build) in front of two one-worker nginx origins for
# SECONDS (default 600), while the config is rewritten and reloaded, CloudFront continuous deployment
# policies are changed through the API and Evidently launches and features are updated, every few
# seconds. Loopback only; stops by itself; every process it starts is killed on exit; everything it
# writes is in one mktemp folder. Prints a report and exits 1 if any criterion fails:
#   0 non-2xx responses, 0 socket errors (connect/read/write/timeout), every reload and API change
#   applied (and checked against the data plane where the outcome is deterministic), no error line in
#   edgesplit's log, a clean exit on SIGTERM, and RSS growth from the first minute to the end < 10 %
#   or < 8 MiB.
#
#   scripts/soak.sh [SECONDS]      SECONDS also from SOAK_SECONDS; at least 40
#
# Settings (environment): SOAK_SLICE=30 (seconds per wrk run; the report has a row per run)
#   SOAK_CONNS=32 SOAK_THREADS=1 (wrk)  SOAK_RELOAD_EVERY=5 SOAK_CF_EVERY=3 SOAK_EV_EVERY=4 (seconds)
#   SOAK_HARD_BOUND=SECONDS+240 (everything is killed then, exit 124; the build comes before the clock)
#   SKIP_BUILD=1 (use target/release/edgesplit as it is)  EDGESPLIT_BIN=PATH (that binary, no build)
#   KEEP_WORK=1 (keep the temp folder)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

SECONDS_WANTED=${1:-${SOAK_SECONDS:-600}}
SLICE=${SOAK_SLICE:-30}
CONNS=${SOAK_CONNS:-32}
THREADS=${SOAK_THREADS:-1}
[[ $SECONDS_WANTED =~ ^[0-9]+$ ]] && [ "$SECONDS_WANTED" -ge 40 ] || { echo "usage: $0 [SECONDS >= 40]" >&2; exit 2; }
[[ $SLICE =~ ^[0-9]+$ ]] && [ "$SLICE" -ge 5 ] || { echo "SOAK_SLICE must be >= 5" >&2; exit 2; }
export SOAK_SECONDS=$SECONDS_WANTED

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools, binary, venv (before the clock starts) ---------------------------------------------------
missing=()
for cmd in wrk nginx curl; do command -v $cmd >/dev/null 2>&1 || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]} (Debian: apt-get install ${missing[*]})"
  log "installing ${missing[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# What the binary is built from (taken before the build: others may commit while it runs).
# (`|| true`: with a clean tree the test fails, and under `set -e` that failure would end the script.)
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ' + uncommitted changes in src/' || true)"
if [ -z "${SKIP_BUILD:-}" ] && [ -z "${EDGESPLIT_BIN:-}" ]; then
  log "building (cargo build --release --locked --bin edgesplit)"
  cargo build --release --locked --bin edgesplit >&2
fi
# A private copy, so a concurrent cargo build cannot swap the binary under the soak.
BIN_SRC=${EDGESPLIT_BIN:-$REPO/target/release/edgesplit}
[ -x "$BIN_SRC" ] || die "no $BIN_SRC"
BIN_NOTE="$BIN_SRC, built $(date -u -r "$BIN_SRC" +'%H:%M UTC')"
PY="$REPO/.venv/bin/python"
if ! "$PY" -c 'import boto3' 2>/dev/null; then   # as scripts/test.sh makes it
  log "making .venv (tests/python/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet -r tests/python/requirements.txt
fi
DRIVER="$REPO/scripts/soak_driver.py"

# --- workspace, cleanup, hard bound ----------------------------------------------------------------------
WORK=$(mktemp -d /tmp/edgesplit-soak.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as nobody when started as root
export SOAK_WORK=$WORK
PIDS=()             # everything started here, killed (with its children) on exit, by PID

tree_pids() { # the process tree rooted at $1
  local c
  echo "$1"
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
cleanup() {
  local all=() pid i alive
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && all+=($(tree_pids "$pid")); done
  for pid in "${all[@]}"; do kill "$pid" 2>/dev/null || true; done
  for i in $(seq 50); do
    alive=""
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in "${all[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'log "stopped (SIGTERM or the hard time bound)"; exit 124' TERM
BIN="$WORK/edgesplit"
cp "$BIN_SRC" "$BIN"

BOUND=${SOAK_HARD_BOUND:-$((SECONDS_WANTED + 240))}   # setup + teardown take well under a minute
( sleep "$BOUND"; echo "[soak] hard time bound of ${BOUND}s reached" >&2; kill -TERM $$ ) &
PIDS+=($!)
log "soak of ${SECONDS_WANTED}s (wrk slices of ${SLICE}s, $CONNS connections); hard bound ${BOUND}s; work folder $WORK"

wait_port() {
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
}

# --- origins: two one-worker nginx -----------------------------------------------------------------------
read -r SOAK_PRIMARY_PORT SOAK_STAGING_PORT SOAK_PROXY_PORT SOAK_ADMIN_PORT <<<"$("$PY" "$DRIVER" ports 4)"
export SOAK_PRIMARY_PORT SOAK_STAGING_PORT SOAK_PROXY_PORT SOAK_ADMIN_PORT
for side in primary staging; do
  dir="$WORK/origin-$side"; mkdir -p "$dir/tmp"
  port=$SOAK_PRIMARY_PORT; [ $side = staging ] && port=$SOAK_STAGING_PORT
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  keepalive_requests 10000000;
  keepalive_timeout 300s;   # longer than edgesplit's upstream_idle, so edgesplit closes idle ones first
  server {
    listen 127.0.0.1:$port backlog=4096;
    default_type text/plain;
    location / { return 200 "$side\n"; }
    location = /__status { stub_status; }
  }
}
EOF
  nginx -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  PIDS+=($!)
done
wait_port "$SOAK_PRIMARY_PORT"; wait_port "$SOAK_STAGING_PORT"

origin_requests() { # requests served so far by the origin on port $1, not counting this read
  local n
  n=$(curl -s --max-time 5 "http://127.0.0.1:$1/__status" | awk 'NR==3 {print $3}')
  echo $((${n:-1} - 1))
}

# --- edgesplit ------------------------------------------------------------------------------------------
export SOAK_ACCESS_KEY_ID="soak-admin"
EDGESPLIT_ADMIN_SECRET_ACCESS_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export EDGESPLIT_ADMIN_SECRET_ACCESS_KEY
"$PY" "$DRIVER" render 0 >"$WORK/edgesplit.toml"
"$BIN" check --config "$WORK/edgesplit.toml" >"$WORK/check.log" 2>&1 || die "edgesplit check: $(cat "$WORK/check.log")"
"$BIN" run --config "$WORK/edgesplit.toml" >"$WORK/edgesplit.log" 2>&1 </dev/null &
EDGESPLIT_PID=$!
PIDS+=($EDGESPLIT_PID)
export EDGESPLIT_PID
wait_port "$SOAK_PROXY_PORT"; wait_port "$SOAK_ADMIN_PORT"

# --- the churn: reloads and API changes until told to stop -----------------------------------------------
"$PY" "$DRIVER" churn 2>"$WORK/churn.err" &
CHURN_PID=$!
PIDS+=($CHURN_PID)
for i in $(seq 600); do
  [ -f "$WORK/churn.ready" ] && break
  kill -0 $CHURN_PID 2>/dev/null || die "the churn driver exited during setup: $(tail -5 "$WORK/churn.err"; tail -3 "$WORK/events.jsonl" 2>/dev/null)"
  sleep 0.1
done
[ -f "$WORK/churn.ready" ] || die "the churn driver was not ready within 60s"

# --- RSS sampler ----------------------------------------------------------------------------------------
LOAD_START=$(date +%s)
sample() { # t, VmRSS KiB, open fds, exposures recorded so far (the Evidently exposure log fills with them)
  local rss fds exp
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$EDGESPLIT_PID"/status 2>/dev/null) || return 0
  fds=$(ls /proc/"$EDGESPLIT_PID"/fd 2>/dev/null | wc -l)
  exp=$(curl -s --max-time 3 "http://127.0.0.1:$SOAK_ADMIN_PORT/metrics" |
    awk '/^edgesplit_exposures_total\{result="recorded"\}/ {print $2}')
  echo "$(($(date +%s) - LOAD_START)) ${rss:-0} $fds ${exp:--1}" >>"$WORK/rss.tsv"
}
(
  n=0
  while kill -0 "$EDGESPLIT_PID" 2>/dev/null; do
    sample
    n=$((n + 1))
    delay=$((LOAD_START + 10 * n - $(date +%s)))
    [ $delay -gt 0 ] && sleep $delay
  done
) &
SAMPLER_PID=$!
PIDS+=($SAMPLER_PID)

# --- load: consecutive wrk slices -----------------------------------------------------------------------
cat >"$WORK/soak.lua" <<'EOF'
-- Three hosts (file.soak: file policy; api.soak: API policy + injected header; route.soak: routed by an
-- Evidently feature), a tenth of the requests POST a small body, a fifth of api.soak's carry the
-- SingleHeader policy's header. Requests are built once per thread; response() counts every status
-- outside 2xx (wrk's own errors.status counts only > 399).
local threads = {}
function setup(thread) table.insert(threads, thread) end

local reqs, i = {}, 0
non2xx, codes, first_bad = 0, {}, ""
function init(args)
  local body = string.rep("x", 64)
  for n = 1, 500 do
    local user = "user-" .. math.random(1, 1000)
    local host = ({ "file.soak", "api.soak", "route.soak" })[n % 3 + 1]
    local h = { ["Host"] = host, ["x-user-id"] = user }
    if host == "api.soak" and n % 5 == 0 then h["aws-cf-cd-soak"] = "on" end
    if n % 10 == 0 then
      h["Content-Type"] = "text/plain"
      reqs[n] = wrk.format("POST", "/soak/" .. n, h, body)
    else
      reqs[n] = wrk.format("GET", "/soak/" .. n, h)
    end
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    codes[status] = (codes[status] or 0) + 1
    if first_bad == "" then first_bad = status .. " " .. string.gsub(string.sub(body or "", 1, 120), "%s+", " ") end
  end
end
function done(summary, latency, requests)
  local bad, byc, samples = 0, {}, {}
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    for c, n in pairs(t:get("codes")) do byc[c] = (byc[c] or 0) + n end
    local f = t:get("first_bad")
    if f ~= "" then table.insert(samples, f) end
  end
  local cs = {}
  for c, n in pairs(byc) do table.insert(cs, c .. ":" .. n) end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d gt399=%d connect=%d read=%d write=%d timeout=%d codes=%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    bad, e.status, e.connect, e.read, e.write, e.timeout, table.concat(cs, ",")))
  for _, s in ipairs(samples) do io.write("SOAKBAD " .. s .. "\n") end
end
EOF

: >"$WORK/slices.txt"
end_at=$((LOAD_START + SECONDS_WANTED))
n=0
while :; do
  now=$(date +%s)
  left=$((end_at - now))
  [ $left -lt 3 ] && break
  d=$SLICE; [ $left -lt $d ] && d=$left
  n=$((n + 1))
  p0=$(origin_requests "$SOAK_PRIMARY_PORT"); s0=$(origin_requests "$SOAK_STAGING_PORT")
  start=$(date +%s.%N)
  out="$WORK/wrk-$n.txt"
  timeout -k 5 $((d + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --timeout 5s -s "$WORK/soak.lua" \
    "http://127.0.0.1:$SOAK_PROXY_PORT/" >"$out" 2>&1 &
  WRK_PID=$!
  PIDS+=($WRK_PID)
  rc=0; wait $WRK_PID || rc=$?
  end=$(date +%s.%N)
  p1=$(origin_requests "$SOAK_PRIMARY_PORT"); s1=$(origin_requests "$SOAK_STAGING_PORT")
  result=$(grep '^RESULT ' "$out" || true)
  if [ $rc = 0 ] && [ -n "$result" ]; then
    echo "SLICE ok=1 start=$start end=$end primary=$((p1 - p0 - 1)) staging=$((s1 - s0 - 1)) ${result#RESULT }" >>"$WORK/slices.txt"
    grep '^SOAKBAD ' "$out" >>"$WORK/slices.txt" || true
    log "slice $n (${d}s): ${result#RESULT }"
  else
    echo "SLICE ok=0 rc=$rc start=$start end=$end" >>"$WORK/slices.txt"
    log "slice $n: wrk exited $rc: $(tail -3 "$out")"
  fi
  kill -0 "$EDGESPLIT_PID" 2>/dev/null || { log "edgesplit is gone"; break; }
done

# --- wind down ------------------------------------------------------------------------------------------
sample
for pid in $(tree_pids "$SAMPLER_PID"); do kill "$pid" 2>/dev/null || true; done
kill -TERM "$CHURN_PID" 2>/dev/null || true
for i in $(seq 300); do kill -0 "$CHURN_PID" 2>/dev/null || break; sleep 0.1; done
curl -s --max-time 10 "http://127.0.0.1:$SOAK_ADMIN_PORT/metrics" >"$WORK/metrics.txt" || true
SOAK_STOP_RC=""
if kill -0 "$EDGESPLIT_PID" 2>/dev/null; then
  kill -TERM "$EDGESPLIT_PID"
  SOAK_STOP_RC=timeout
  for i in $(seq 150); do   # shutdown_grace is 5s
    if ! kill -0 "$EDGESPLIT_PID" 2>/dev/null; then SOAK_STOP_RC=0; wait "$EDGESPLIT_PID" || SOAK_STOP_RC=$?; break; fi
    sleep 0.1
  done
else
  wait "$EDGESPLIT_PID" || SOAK_STOP_RC=$?
  SOAK_STOP_RC="gone before the end (exit ${SOAK_STOP_RC:-0})"
fi
export SOAK_STOP_RC
[ -s "$WORK/churn.err" ] && { log "churn driver stderr:"; tail -20 "$WORK/churn.err" >&2; }

echo
echo "== edgesplit soak: $(date -u +'%Y-%m-%d %H:%M UTC'), ${SECONDS_WANTED}s, $BIN_NOTE from commit $COMMIT, wrk -t$THREADS -c$CONNS in ${SLICE}s slices, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) =="
echo
rc=0
"$PY" "$DRIVER" report || rc=$?
exit $rc
