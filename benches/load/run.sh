#!/usr/bin/env bash
# Load test: edgesplit against nginx and HAProxy doing the same job (sticky 10 % staging split, one
# injected decision header), with the origins alone ("direct") as the ceiling and a TCP relay as the
# floor. HTTP/1.1, HTTPS/1.1, h2c and HTTP/2 over TLS, interleaved rounds, medians with the min-max
# spread. Loopback only.
# See benches/load/README.md. Everything is a setting in the environment:
#
#   ROUNDS=3 DURATION=10 WARMUP=3 CONNS=64 H2_STREAMS=10 CLIENT_THREADS=1
#   PROTOCOLS="h1 h1tls h2c h2tls" CONTENDERS="direct relay edgesplit nginx haproxy" (relay: the floor,
#   HAProxy in TCP mode doing no HTTP work; see lib.sh)
#   BASE_PORT=27100 (ports BASE_PORT+1 .. +54)   SKIP_BUILD=1 (use target/release/edgesplit as it is,
#   or EDGESPLIT_BIN=PATH)
#   RESULTS=FILE (also write the markdown there)  KEEP_WORK=1 (keep the temp folder with raw outputs)
#   NICE=-10 (nice value of every bench process; default -10 as root, else 0)
#   PIN=1 (the client on the first core; origins and proxy, one worker each, on the last: issue 17's
#   per-core comparison)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
H2_STREAMS=${H2_STREAMS:-10}
CLIENT_THREADS=${CLIENT_THREADS:-1}
PROTOCOLS=${PROTOCOLS:-"h1 h1tls h2c h2tls"}
CONTENDERS=${CONTENDERS:-"direct relay edgesplit nginx haproxy"}

read -r -a PROTOS <<<"$PROTOCOLS"
read -r -a WHO <<<"$CONTENDERS"
MEASUREMENTS=$((ROUNDS * ${#PROTOS[@]} * ${#WHO[@]}))
EXPECTED=$((MEASUREMENTS * (WARMUP + DURATION + 1) + 20))
BOUND=$((MEASUREMENTS * (WARMUP + DURATION + 15) + 120))

ensure_tools wrk h2load nginx haproxy openssl curl ss
edgesplit_binary

make_work
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
load1=${LOAD_START%% *}
if awk "BEGIN {exit !($load1 > 1.0)}"; then
  log "warning: load average $load1 before starting: something else is using the CPU, expect noise (see the spread column)"
fi
log "$MEASUREMENTS measurements (${ROUNDS} rounds x ${#PROTOS[@]} protocols x ${#WHO[@]} contenders, ${WARMUP}s warm-up + ${DURATION}s each)"
log "expected about $((EXPECTED / 60))m$((EXPECTED % 60))s; hard time bound $((BOUND / 60))m$((BOUND % 60))s (every process is killed then)"
start_watchdog "$BOUND"
check_ports_free
make_cert
start_origins
for w in "${WHO[@]}"; do
  case $w in
    direct) ;;
    edgesplit) start_edgesplit ;;
    nginx) start_nginx ;;
    haproxy) start_haproxy ;;
    relay) start_relay ;;
    *) die "unknown contender $w" ;;
  esac
done

# --- checks: each proxy really answers 200 over every protocol, splits, pins, injects --------------------
FAILED_CHECKS=0
fail() { log "CHECK FAILED: $*"; FAILED_CHECKS=$((FAILED_CHECKS + 1)); }

cookie_names() {
  case $1 in
    edgesplit) echo "edgesplit-cd edgesplit-entity" ;;
    *) echo "cd ent" ;;
  esac
}

check_contender() {
  local who=$1 url h2url tlsurl hdr body echo i jar got side want cd ent banner first n
  url=$(url_for "$who" h1)
  hdr=$(curl -s -D - -o "$WORK/check-body" "$url" | tr -d '\r')
  body=$(cat "$WORK/check-body")
  [[ $hdr == "HTTP/1.1 200"* ]] || fail "$who: $url did not answer 200"
  [[ $body == primary || $body == staging ]] || fail "$who: body '$body'"
  for proto in h2c h2tls h1tls; do
    case $proto in
      h2c) got=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' "$(url_for "$who" h2c)") ;;
      h2tls) got=$(curl -sk --http2 -o /dev/null -w '%{http_version} %{http_code}' "$(url_for "$who" h2tls)") ;;
      h1tls) got=$(curl -sk --http1.1 -o /dev/null -w '%{http_version} %{http_code}' "$(url_for "$who" h1tls)") ;;
    esac
    want="2 200"; [ $proto = h1tls ] && want="1.1 200"
    [ "$got" = "$want" ] || fail "$who $proto: got '$got', want '$want'"
  done
  tls=$(curl -skv --http1.1 -o /dev/null "$(url_for "$who" h1tls)" 2>&1 | sed -n 's/.*SSL connection using \(.*\)/\1/p' | tr -d '\r')
  if [ "$who" = direct ] || [ "$who" = relay ]; then log "check $who: 200 over h1, h1tls, h2c, h2tls; TLS: $tls"; return; fi

  read -r cd ent <<<"$(cookie_names "$who")"
  grep -qi "^set-cookie: $cd=" <<<"$hdr" || fail "$who: no $cd cookie set"
  grep -qi "^set-cookie: $ent=" <<<"$hdr" || fail "$who: no $ent entity cookie set"

  # The decision header reaches the origin, and a client cannot forge it.
  echo=$(curl -s -H 'x-evidently-banner: forged' "${url}__echo")
  banner=$(sed -n 's/^x-evidently-banner: //p' <<<"$echo")
  [[ $banner == classic || $banner == bold ]] || fail "$who: origin saw x-evidently-banner '$banner'"
  grep -q '^x-forwarded-for: 127.0.0.1$' <<<"$echo" || fail "$who: no X-Forwarded-For at the origin"
  grep -q "^via: 1.1 " <<<"$echo" || fail "$who: no Via at the origin"

  # Stickiness: find a staging and a primary session, replay each cookie 20 times.
  for side in staging primary; do
    jar="$WORK/jar-$who-$side"
    for i in $(seq 400); do
      rm -f "$jar"
      [ "$(curl -s -c "$jar" "$url")" = "$side" ] && break
    done
    [ "$i" -lt 400 ] || { fail "$who: no $side answer in 400 fresh requests"; continue; }
    n=0
    for i in $(seq 20); do [ "$(curl -s -b "$jar" -c "$jar" "$url")" = "$side" ] && n=$((n + 1)); done
    [ $n = 20 ] || fail "$who: a $side session was served by $side only $n times out of 20"
    # The entity keeps its variation.
    first=""; n=0
    for i in $(seq 10); do
      banner=$(curl -s -b "$jar" "${url}__echo" | sed -n 's/^x-evidently-banner: //p')
      [ -z "$first" ] && first=$banner
      [ "$banner" = "$first" ] && n=$((n + 1))
    done
    [ $n = 10 ] || fail "$who: the entity's variation changed across requests"
  done
  # The stickiness cookie stops at the proxy; the entity cookie goes on.
  got=$(curl -s -b "$WORK/jar-$who-staging" "${url}__echo" | sed -n 's/^cookie: //p')
  if grep -Eq "(^|; )$cd=" <<<"$got"; then fail "$who: the origin received the $cd cookie"; fi
  log "check $who: 200 over h1, h1tls, h2c, h2tls; sets $cd and $ent; origin sees x-evidently-banner, X-Forwarded-For, Via; a forged banner is replaced; staging and primary sessions stay pinned (20/20); the entity keeps its variation; a pinned request reaches the origin with Cookie '${got}'; TLS: $tls"
}

for w in "${WHO[@]}"; do check_contender "$w"; done
[ "$FAILED_CHECKS" = 0 ] || die "$FAILED_CHECKS checks failed; not measuring"

# --- measurement ----------------------------------------------------------------------------------------
cat > "$WORK/done.lua" <<'EOF'
-- Only a done() hook: wrk keeps its static, pipelined request path (no per-request Lua).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.status, e.connect, e.read, e.write, e.timeout))
end
EOF

client() { # proto url seconds outfile
  local proto=$1 url=$2 secs=$3 out=$4
  case $proto in
    h1|h1tls) timeout $((secs + 30)) "${CLIENT_RUN[@]}" wrk -t"$CLIENT_THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$WORK/done.lua" "$url" >"$out" 2>&1 ;;
    h2c|h2tls) timeout $((secs + 30)) "${CLIENT_RUN[@]}" h2load -t"$CLIENT_THREADS" -c"$CONNS" -m"$H2_STREAMS" -D"$secs" "$url" >"$out" 2>&1 ;;
  esac
}

CLK_TCK=$(getconf CLK_TCK)
# The process whose CPU time is charged to a contender (direct: the primary origin).
contender_pid() {
  case $1 in
    direct) echo "$ORIGIN_PRIMARY_PID" ;; edgesplit) echo "$EDGESPLIT_PID" ;;
    nginx) echo "$NGINX_PID" ;; haproxy) echo "$HAPROXY_PID" ;; relay) echo "$RELAY_PID" ;;
  esac
}

MANIFEST="$WORK/manifest.tsv"
: >"$MANIFEST"
mkdir -p "$WORK/raw"
for round in $(seq "$ROUNDS"); do
  for proto in "${PROTOS[@]}"; do
    # Rotate the order each round so no contender always runs first (or after the same neighbour).
    n=${#WHO[@]}
    for k in $(seq 0 $((n - 1))); do
      who=${WHO[$(((k + round - 1) % n))]}
      url=$(url_for "$who" "$proto")
      raw="$WORK/raw/r$round-$proto-$who.txt"
      client "$proto" "$url" "$WARMUP" "$raw.warmup" || true
      pid=$(contender_pid "$who")
      p0=$(origin_requests $P_H1); s0=$(origin_requests $S_H1); read -r c0 u0 < <(cpu_ticks "$pid")
      client "$proto" "$url" "$DURATION" "$raw" || log "client exited non-zero for $who $proto (see $raw)"
      read -r c1 u1 < <(cpu_ticks "$pid"); p1=$(origin_requests $P_H1); s1=$(origin_requests $S_H1)
      # (-1: the first read of each pair is counted by the second.)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$proto" "$who" "$raw" $((p1 - p0 - 1)) $((s1 - s0 - 1)) \
        "$(( (c1 - c0) * 1000000 / CLK_TCK ))" "$(( (u1 - u0) * 1000000 / CLK_TCK ))" >>"$MANIFEST"
      log "round $round $proto $who: $(grep -E '^(Requests/sec|finished in)' "$raw" | head -1)"
    done
  done
done

{
  if [ -n "${PIN:-}" ]; then
    layout="pinned (PIN=1): the client alone on core 0, both origins and the proxy on core $LAST_CPU, one worker each (nginx 1 worker, HAProxy 1 thread, edgesplit 1 Tokio worker), so req/s is per proxy core"
  else
    layout="shared by the client, both origins and the proxy"
  fi
  echo "Measured $(date -u +'%Y-%m-%d %H:%M UTC'); $(describe_build); $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $layout; load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(h2load --version | head -1), $(nginx -v 2>&1 | cut -d' ' -f3), HAProxy $(haproxy -v | head -1 | cut -d' ' -f3). $ROUNDS rounds of ${DURATION}s after ${WARMUP}s warm-up; $CONNS connections, $CLIENT_THREADS client thread(s); h2load $H2_STREAMS streams per connection. Every bench process at nice $NICE."
  echo
  "$PYTHON" "$LOAD_DIR/report.py" "$MANIFEST"
} | tee "${RESULTS:-/dev/null}"
[ -n "${KEEP_WORK:-}" ] && log "raw outputs kept in $WORK"
exit 0
