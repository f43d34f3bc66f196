# Shared by run.sh and memory.sh (sourced, not run): tools, ports, the certificate, the origins and
# the three proxies' configurations, process bookkeeping. Everything listens on 127.0.0.1 only and
# everything written goes under $WORK (a mktemp folder removed on exit).
#
# The job every proxy is configured for (see README.md beside this file for the equivalence):
#   - a sticky 10 % weight split: a request without a valid stickiness cookie draws staging with
#     probability 0.10, else primary; the response sets a cookie pinning the choice (both arms);
#     a request with the cookie goes where it says;
#   - one Evidently-style decision injected as a request header: `x-evidently-banner: classic|bold`,
#     a 50/50 split by hash of the entity id, taken from an entity cookie or, when there is none, a new
#     random id that the response sets as the entity cookie;
#   - forwarding headers: X-Forwarded-For/-Proto/-Host and Via;
#   - HTTP/1.1 keep-alive to the origins, HTTP/1.1 + HTTP/2 (h2c and TLS ALPN) to clients;
#   - no access log.

LOAD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LOAD_DIR/../.." && pwd)
PYTHON=${PYTHON:-python3}
NPROC=$(nproc)   # nginx workers and HAProxy threads, as edgesplit runs one Tokio worker per core
# Every process of the bench (origins, proxies, clients) runs at this nice value, all the same, so that
# other work on the box (a compile) gets less of the CPU than the bench; raising priority needs root.
if [ -z "${NICE:-}" ]; then
  if [ "$(id -u)" = 0 ]; then NICE=-10; else NICE=0; fi
fi
RUN=(nice -n "$NICE")
# PIN=1 (issue 17's layout): the client alone on the first core; the origins and the proxy together on
# the last, with one worker each (nginx 1 worker, HAProxy 1 thread, edgesplit 1 Tokio worker: it sizes
# itself to the cores its affinity allows). req/s is then what one core of proxy serves, shared with the
# origins as on a real host, and not who spreads best over cores the client also needs.
CLIENT_RUN=("${RUN[@]}")
if [ -n "${PIN:-}" ]; then
  LAST_CPU=$(($(nproc) - 1))
  [ "$LAST_CPU" -ge 1 ] || { echo "PIN needs at least 2 cores" >&2; exit 1; }
  NPROC=1
  RUN=(taskset -c "$LAST_CPU" nice -n "$NICE")
  CLIENT_RUN=(taskset -c 0 nice -n "$NICE")
fi

# --- ports (all on 127.0.0.1) ---------------------------------------------------------------------------
BASE_PORT=${BASE_PORT:-27100}
P_H1=$((BASE_PORT + 1))   P_TLS=$((BASE_PORT + 2))   P_H2C=$((BASE_PORT + 3))    # primary origin
S_H1=$((BASE_PORT + 11))  S_TLS=$((BASE_PORT + 12))  S_H2C=$((BASE_PORT + 13))   # staging origin
E_H1=$((BASE_PORT + 21))  E_TLS=$((BASE_PORT + 22))  E_ADMIN=$((BASE_PORT + 29)) # edgesplit (h1 + h2c on E_H1)
N_H1=$((BASE_PORT + 31))  N_TLS=$((BASE_PORT + 32))  N_H2C=$((BASE_PORT + 33))   # nginx
H_H1=$((BASE_PORT + 41))  H_TLS=$((BASE_PORT + 42))                               # haproxy (h1 + h2c on H_H1)
R_H1=$((BASE_PORT + 51))  R_TLS=$((BASE_PORT + 52))  R_H2C=$((BASE_PORT + 53))   # relay (HAProxy, TCP mode)
R_H2TLS=$((BASE_PORT + 54))
ALL_PORTS="$P_H1 $P_TLS $P_H2C $S_H1 $S_TLS $S_H2C $E_H1 $E_TLS $E_ADMIN $N_H1 $N_TLS $N_H2C $H_H1 $H_TLS $R_H1 $R_TLS $R_H2C $R_H2TLS"

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools ----------------------------------------------------------------------------------------------
# Installs what is missing from Debian (we are root on the bench machine). $@: commands wanted.
ensure_tools() {
  local missing=() cmd pkg
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 && continue
    case $cmd in
      h2load) pkg=nghttp2-client ;;
      ss) pkg=iproute2 ;;
      *) pkg=$cmd ;;
    esac
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (apt-get)"
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or run as root"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages enable and try to start their own services; policy-rc.d usually prevents it in
  # containers, but make sure no system nginx/haproxy competes for the CPU.
  for cmd in nginx haproxy; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$cmd" 2>/dev/null; then
      systemctl stop "$cmd" || true
    fi
  done
}

# Sets EDGESPLIT_BIN: with SKIP_BUILD, the binary as it is (EDGESPLIT_BIN, or target/release/edgesplit);
# otherwise a fresh release build.
edgesplit_binary() {
  if [ -n "${SKIP_BUILD:-}" ]; then
    EDGESPLIT_BIN=${EDGESPLIT_BIN:-"$REPO_DIR/target/release/edgesplit"}
    [ -x "$EDGESPLIT_BIN" ] || die "SKIP_BUILD set but no $EDGESPLIT_BIN"
  else
    build_edgesplit
  fi
}

build_edgesplit() {
  log "building edgesplit (cargo build --release --locked --bin edgesplit)"
  (cd "$REPO_DIR" && cargo build --release --locked --bin edgesplit) >&2
  EDGESPLIT_BIN="$REPO_DIR/target/release/edgesplit"
  [ -x "$EDGESPLIT_BIN" ] || die "no $EDGESPLIT_BIN"
}

# Which edgesplit was measured, for the report.
describe_build() {
  local commit dirty built
  commit=$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(cd "$REPO_DIR" && [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] &&
    echo " + uncommitted changes in src/" || true)
  built=$(date -u -r "$EDGESPLIT_BIN" +'%Y-%m-%d %H:%M UTC')
  if [ -n "${SKIP_BUILD:-}" ]; then
    echo "edgesplit binary built $built (SKIP_BUILD: not rebuilt, so not necessarily commit $commit$dirty)"
  else
    echo "edgesplit built from commit $commit$dirty ($built)"
  fi
}

# --- workspace and processes ----------------------------------------------------------------------------
PIDS=()
cleanup() {
  local pid all=() i
  if [ -n "${WATCHDOG_PID:-}" ]; then
    for pid in $(tree_pids "$WATCHDOG_PID"); do kill "$pid" 2>/dev/null || true; done
  fi
  # The processes this script started and their children (nginx workers), by PID only.
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && all+=($(tree_pids "$pid"))
  done
  for pid in "${all[@]}"; do kill "$pid" 2>/dev/null || true; done
  for i in $(seq 30); do
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
    [ -z "${pid:-}" ] && break
    sleep 0.1
  done
  for pid in "${all[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [ -n "${WORK:-}" ] && [ -d "$WORK" ] && [ -z "${KEEP_WORK:-}" ] && rm -rf "$WORK"
  return 0
}

make_work() {
  WORK=$(mktemp -d /tmp/edgesplit-load.XXXXXX)
  chmod 755 "$WORK"   # nginx workers run as nobody when started as root
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# Kills the whole script after $1 seconds whatever happens (the EXIT trap still cleans up).
start_watchdog() {
  local secs=$1 me=$$
  ( sleep "$secs"; echo "time bound of ${secs}s reached, stopping" >&2; kill -TERM "$me" ) &
  WATCHDOG_PID=$!
}

check_ports_free() {
  local p
  for p in $ALL_PORTS; do
    if ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
      die "port $p is in use; set BASE_PORT to another range (ports BASE_PORT+1..+54 are used)"
    fi
  done
}

wait_port() {
  local port=$1 i
  # WAIT_SECS: how long a server may take to listen (10 s; longer under valgrind).
  for i in $(seq $((${WAIT_SECS:-10} * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 5 "$WORK"/*/*.log >&2 2>/dev/null || true
  die "nothing listens on 127.0.0.1:$port (the logs are above; KEEP_WORK=1 keeps $WORK)"
}

# Every PID of the process tree rooted at $1 (nginx's master + workers).
tree_pids() {
  local p=$1 c
  echo "$p"
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}

# Sum of VmRSS (KiB) over the process tree rooted at $1.
rss_kib() {
  local total=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# CPU time (clock ticks) used so far by the process tree rooted at $1: "user+system user".
cpu_ticks() {
  local total=0 user=0 p u s
  for p in $(tree_pids "$1"); do
    read -r u s < <(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12, $13}') || true
    total=$((total + ${u:-0} + ${s:-0}))
    user=$((user + ${u:-0}))
  done
  echo "$total $user"
}

# --- certificate ----------------------------------------------------------------------------------------
# One self-signed ECDSA P-256 certificate for 127.0.0.1/localhost, used by every TLS listener.
make_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null || die "openssl failed"
  chmod 644 "$WORK/key.pem"
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"
}

# --- origins --------------------------------------------------------------------------------------------
# The start of an nginx.conf for $1 (its folder) with $2 workers, up to the open `http {` block: no access
# log, temp files in the folder, long keep-alive. Origins and the nginx contender share it.
nginx_head() {
  local dir=$1 workers=$2
  cat <<EOF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
EOF
}

# Two one-worker nginx origins. `/` answers "primary\n" or "staging\n"; `/__status` is stub_status
# (its request counter gives each origin's share); `/__echo` returns the headers a proxy injected, for
# the checks only (the measured path `/` does no echoing).
write_origin() {
  local side=$1 h1=$2 tls=$3 h2c=$4 dir="$WORK/origin-$1"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<EOF
$(nginx_head "$dir" 1)
  server {
    listen 127.0.0.1:$h1 backlog=4096;
    listen 127.0.0.1:$tls ssl http2 backlog=4096;
    listen 127.0.0.1:$h2c http2 backlog=4096;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;   # 1.22's default stops at TLSv1.2; the others speak 1.3
    default_type text/plain;
    location / { return 200 "$side\n"; }
    location = /__status { stub_status; }
    location = /__echo {
      return 200 "served-by: $side\nx-evidently-banner: \$http_x_evidently_banner\nx-forwarded-for: \$http_x_forwarded_for\nx-forwarded-proto: \$http_x_forwarded_proto\nx-forwarded-host: \$http_x_forwarded_host\nvia: \$http_via\ncookie: \$http_cookie\n";
    }
  }
}
EOF
}

start_origins() {
  local side
  for side in primary staging; do
    if [ $side = primary ]; then write_origin primary $P_H1 $P_TLS $P_H2C; else write_origin staging $S_H1 $S_TLS $S_H2C; fi
    "${RUN[@]}" nginx -e "$WORK/origin-$side/error.log" -c "$WORK/origin-$side/nginx.conf" >"$WORK/origin-$side/stdout.log" 2>&1 &
    PIDS+=($!)
    eval "ORIGIN_${side^^}_PID=$!"
  done
  wait_port $P_H1; wait_port $S_H1
}

# Requests an origin has served so far (stub_status "requests"), not counting this read itself.
origin_requests() {
  local port=$1 n
  n=$(curl -s --max-time 5 "http://127.0.0.1:$port/__status" | awk 'NR==3 {print $3}')
  echo $(( ${n:-0} - 1 ))
}

# --- edgesplit ------------------------------------------------------------------------------------------
# The policy is written in the file ([distribution.policy], SingleWeight 0.1 with stickiness); the
# decision is a launch-driven 50/50 feature declared in the file, as in config/demo.toml.
write_edgesplit() {
  local dir="$WORK/edgesplit"
  mkdir -p "$dir"
  cat > "$dir/edgesplit.toml" <<EOF
[[listener]]
name = "http"          # HTTP/1.1 and h2c (prior knowledge)
listen = "127.0.0.1:$E_H1"

[[listener]]
name = "https"         # ALPN h2, http/1.1
listen = "127.0.0.1:$E_TLS"
[[listener.tls]]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"

[admin]
listen = "127.0.0.1:$E_ADMIN"
$ADMIN_AUTH

[log]
level = "warn"
access_log = false

[timeouts]
client_idle = "300s"   # memory.sh holds 10,000 idle connections for a while
config_poll = "0s"

[limits]
max_connections = 30000

[continuous_deployment]
cookie_key = "load-test-key-0123456789abcdef0123456789abcdef"

[[distribution]]
id = "bench"
domains = ["*"]
staging_dns_name = "staging.bench.local"

[distribution.primary]
origins = ["http://127.0.0.1:$P_H1"]

[distribution.staging]
origins = ["http://127.0.0.1:$S_H1"]

# 10 % of sessions to staging, sticky (the edgesplit-cd cookie): CloudFront's SingleWeight.
[distribution.policy]
type = "SingleWeight"
weight = 0.1
idle_ttl = 300
maximum_ttl = 600

# One decision injected as x-evidently-banner (entity from the edgesplit-entity cookie, issued when absent).
[distribution.evidently]
project = "bench"
features = [{ feature = "banner" }]

[[evidently.projects]]
name = "bench"

[[evidently.features]]
project = "bench"
name = "banner"
variations = [{ name = "classic", value = { stringValue = "classic" } }, { name = "bold", value = { stringValue = "bold" } }]

[[evidently.launches]]
project = "bench"
name = "banner-rollout"
status = "RUNNING"
groups = [{ name = "classic", feature = "banner", variation = "classic" }, { name = "bold", feature = "banner", variation = "bold" }]
[[evidently.launches.scheduledSplitsConfig.steps]]
startTime = 0
groupWeights = { classic = 50000, bold = 50000 }
EOF
}

start_edgesplit() {
  # Builds with SigV4 on the admin API need a key pair (the bench never calls the API); older builds
  # reject the keys as unknown. Use whichever this build accepts.
  ADMIN_AUTH=$'access_key_id = "bench"\nsecret_access_key = "bench-secret-not-used"'
  write_edgesplit
  if ! "$EDGESPLIT_BIN" check --config "$WORK/edgesplit/edgesplit.toml" >"$WORK/edgesplit/check.log" 2>&1; then
    ADMIN_AUTH=""
    write_edgesplit
    "$EDGESPLIT_BIN" check --config "$WORK/edgesplit/edgesplit.toml" >"$WORK/edgesplit/check.log" 2>&1 ||
      die "edgesplit check rejected the bench config: $(cat "$WORK/edgesplit/check.log")"
  fi
  "${RUN[@]}" "$EDGESPLIT_BIN" run --config "$WORK/edgesplit/edgesplit.toml" >"$WORK/edgesplit/stdout.log" 2>&1 &
  EDGESPLIT_PID=$!
  PIDS+=($!)
  wait_port $E_H1; wait_port $E_TLS
}

# --- nginx ----------------------------------------------------------------------------------------------
write_nginx() {
  local dir="$WORK/nginx"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<EOF
$(nginx_head "$dir" "$NPROC")

  upstream primary { server 127.0.0.1:$P_H1; keepalive 256; keepalive_requests 10000000; }
  upstream staging { server 127.0.0.1:$S_H1; keepalive 256; keepalive_requests 10000000; }

  # Sticky 10 % split: a cd cookie of s or p pins; anything else draws (split_clients hashes the
  # per-request random \$request_id, so each new session is an independent 10 % draw).
  split_clients "\${request_id}" \$cd_draw { 10% s; * p; }
  map \$cookie_cd \$cd { s s; p p; default \$cd_draw; }
  map \$cd \$cd_pool { s staging; default primary; }

  # The decision: entity id from the ent cookie, else this request's random id (set as the cookie);
  # a 50/50 split by hash of the entity id (murmur2 in split_clients).
  map \$cookie_ent \$entity { "" \$request_id; default \$cookie_ent; }
  map \$cookie_ent \$ent_set_cookie { "" "ent=\$request_id; Max-Age=34560000; Path=/; HttpOnly; SameSite=Lax"; default ""; }
  split_clients "banner/\${entity}" \$banner { 50% classic; * bold; }

  # The stickiness cookie is not forwarded to the origins (other cookies are).
  map \$http_cookie \$cookie_to_origin {
    "~^cd=[^;]*(?:;\\s*)?(?<b>.*)\$" "\$b";
    "~^(?<a>.*?);\\s*cd=[^;]*(?<b>.*)\$" "\$a\$b";
    default \$http_cookie;
  }

  server {
    listen 127.0.0.1:$N_H1 backlog=4096;
    listen 127.0.0.1:$N_TLS ssl http2 backlog=4096;
    listen 127.0.0.1:$N_H2C http2 backlog=4096;   # nginx 1.22: a plain http2 port speaks h2c only
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;   # 1.22's default stops at TLSv1.2; the others speak 1.3
    location / {
      proxy_pass http://\$cd_pool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header Via "1.1 nginx";
      proxy_set_header x-evidently-banner \$banner;
      proxy_set_header Cookie \$cookie_to_origin;
      add_header Set-Cookie "cd=\$cd; Max-Age=300; Path=/; HttpOnly; SameSite=Lax" always;
      add_header Set-Cookie \$ent_set_cookie always;
      add_header Via "1.1 nginx" always;
    }
  }
}
EOF
}

start_nginx() {
  write_nginx
  nginx -t -q -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" || die "nginx rejected the bench config"
  "${RUN[@]}" nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=($!)
  wait_port $N_H1; wait_port $N_TLS; wait_port $N_H2C
}

# --- HAProxy --------------------------------------------------------------------------------------------
# The global section of both HAProxy configurations (the contender and the relay).
haproxy_global() {
  cat <<EOF
global
  nbthread $NPROC
  maxconn 30000
  no strict-limits   # the fd hard limit may be below 2 x maxconn: warn, do not fail
  log stderr local0 warning
EOF
}

# Checks and starts HAProxy on $WORK/$1/haproxy.cfg, in the foreground of its own process; its PID is
# the last of PIDS.
run_haproxy() {
  local name=$1
  haproxy -c -q -f "$WORK/$name/haproxy.cfg" || die "haproxy rejected the $name config"
  "${RUN[@]}" haproxy -db -f "$WORK/$name/haproxy.cfg" >"$WORK/$name/stdout.log" 2>&1 &
  PIDS+=($!)
}

write_haproxy() {
  local dir="$WORK/haproxy"
  mkdir -p "$dir"
  cat > "$dir/haproxy.cfg" <<EOF
$(haproxy_global)

defaults
  mode http
  timeout connect 3s
  timeout client 300s
  timeout server 30s
  timeout http-keep-alive 300s
  timeout http-request 10s
  http-reuse always

frontend bench
  bind 127.0.0.1:$H_H1 backlog 4096                                         # HTTP/1.1, and h2c by preface
  bind 127.0.0.1:$H_TLS ssl crt $WORK/haproxy.pem alpn h2,http/1.1 backlog 4096
  maxconn 30000
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http unless { ssl_fc }
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request add-header Via "1.1 haproxy"

  # Sticky 10 % split: a cd cookie of s or p pins; anything else draws rand(100) < 10.
  http-request set-var(txn.cd) req.cook(cd) if { req.cook(cd) -m str s p }
  http-request set-var(txn.cd) str(s) if !{ var(txn.cd) -m found } { rand(100) lt 10 }
  http-request set-var(txn.cd) str(p) if !{ var(txn.cd) -m found }

  # The decision: entity id from the ent cookie, else a new uuid (set as the cookie); 50/50 by hash.
  http-request set-var(txn.ent) req.cook(ent) if { req.cook(ent) -m len gt 0 }
  http-request set-var(txn.newent) uuid if !{ var(txn.ent) -m found }
  http-request set-var(txn.ent) var(txn.newent) if { var(txn.newent) -m found }
  http-request set-var(txn.bucket) var(txn.ent),crc32(1),mod(100)
  http-request set-header x-evidently-banner classic if { var(txn.bucket) -m int lt 50 }
  http-request set-header x-evidently-banner bold unless { var(txn.bucket) -m int lt 50 }

  # The stickiness cookie is not forwarded to the origins (other cookies are).
  http-request replace-header Cookie ^cd=[^;]*(;\\s*)?(.*)$ \\2
  http-request replace-header Cookie ^(.*?);\\s*cd=[^;]*(.*)$ \\1\\2
  http-request del-header Cookie if { req.hdr(cookie) -m len 0 }

  http-response add-header Set-Cookie "cd=%[var(txn.cd)]; Max-Age=300; Path=/; HttpOnly; SameSite=Lax"
  http-response add-header Set-Cookie "ent=%[var(txn.newent)]; Max-Age=34560000; Path=/; HttpOnly; SameSite=Lax" if { var(txn.newent) -m found }
  http-response add-header Via "1.1 haproxy"

  use_backend staging if { var(txn.cd) -m str s }
  default_backend primary

backend primary
  server p1 127.0.0.1:$P_H1 maxconn 30000

backend staging
  server s1 127.0.0.1:$S_H1 maxconn 30000
EOF
}

start_haproxy() {
  write_haproxy
  run_haproxy haproxy
  HAPROXY_PID=${PIDS[-1]}
  wait_port $H_H1; wait_port $H_TLS
}

# Starts contender $1 (edgesplit, nginx or haproxy) and sets CONTENDER_PID (the process whose tree is the
# contender), CONTENDER_PORT (HTTP/1.1) and CONTENDER_TLS_PORT (HTTPS).
start_contender() {
  case $1 in
    edgesplit) start_edgesplit; CONTENDER_PID=$EDGESPLIT_PID; CONTENDER_PORT=$E_H1; CONTENDER_TLS_PORT=$E_TLS ;;
    nginx) start_nginx; CONTENDER_PID=$NGINX_PID; CONTENDER_PORT=$N_H1; CONTENDER_TLS_PORT=$N_TLS ;;
    haproxy) start_haproxy; CONTENDER_PID=$HAPROXY_PID; CONTENDER_PORT=$H_H1; CONTENDER_TLS_PORT=$H_TLS ;;
    *) die "unknown contender $1" ;;
  esac
}

# --- relay: the floor of any proxy on this box, not a contender ---------------------------------------------
# HAProxy in TCP mode copying bytes between each client connection and its own connection to the primary
# origin: no HTTP parsing, no split, no headers (TLS is terminated, then plain bytes go on). It makes the
# same socket calls per request as an HTTP proxy (a read and a write on each side), so its req/s bounds
# what any HTTP proxy that forwards each request over its own origin connection can reach here.
write_relay() {
  local dir="$WORK/relay"
  mkdir -p "$dir"
  cat > "$dir/haproxy.cfg" <<EOF
$(haproxy_global)

defaults
  mode tcp
  timeout connect 3s
  timeout client 300s
  timeout server 300s

listen relay_h1
  bind 127.0.0.1:$R_H1 backlog 4096
  bind 127.0.0.1:$R_TLS ssl crt $WORK/haproxy.pem alpn http/1.1 backlog 4096
  maxconn 30000
  server p1 127.0.0.1:$P_H1 maxconn 30000

listen relay_h2
  bind 127.0.0.1:$R_H2C backlog 4096
  bind 127.0.0.1:$R_H2TLS ssl crt $WORK/haproxy.pem alpn h2 backlog 4096
  maxconn 30000
  server p1 127.0.0.1:$P_H2C maxconn 30000
EOF
}

start_relay() {
  write_relay
  run_haproxy relay
  RELAY_PID=${PIDS[-1]}
  wait_port $R_H1; wait_port $R_TLS; wait_port $R_H2C; wait_port $R_H2TLS
}

# URL of a contender for a protocol: h1 (plain HTTP/1.1), h1tls (HTTPS/1.1), h2c, h2tls.
url_for() {
  local who=$1 proto=$2
  case "$who:$proto" in
    direct:h1) echo "http://127.0.0.1:$P_H1/" ;;   direct:h1tls|direct:h2tls) echo "https://127.0.0.1:$P_TLS/" ;;
    direct:h2c) echo "http://127.0.0.1:$P_H2C/" ;;
    edgesplit:h1|edgesplit:h2c) echo "http://127.0.0.1:$E_H1/" ;; edgesplit:h1tls|edgesplit:h2tls) echo "https://127.0.0.1:$E_TLS/" ;;
    nginx:h1) echo "http://127.0.0.1:$N_H1/" ;;    nginx:h1tls|nginx:h2tls) echo "https://127.0.0.1:$N_TLS/" ;;
    nginx:h2c) echo "http://127.0.0.1:$N_H2C/" ;;
    haproxy:h1|haproxy:h2c) echo "http://127.0.0.1:$H_H1/" ;; haproxy:h1tls|haproxy:h2tls) echo "https://127.0.0.1:$H_TLS/" ;;
    relay:h1) echo "http://127.0.0.1:$R_H1/" ;;     relay:h1tls) echo "https://127.0.0.1:$R_TLS/" ;;
    relay:h2c) echo "http://127.0.0.1:$R_H2C/" ;;  relay:h2tls) echo "https://127.0.0.1:$R_H2TLS/" ;;
    *) die "no url for $who $proto" ;;
  esac
}
