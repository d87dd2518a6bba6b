# Shared by the scripts in scripts/perf: starts a Redis-backed leadchat and
# runs loadgen processes side by side. Source it; do not run it.
#
# Environment:
#   PROFILE       release (default) or debug: which build to run
#   LEADCHAT_BIN  the server binary   (default $CARGO_TARGET_DIR/$PROFILE/leadchat)
#   LOADGEN_BIN   the generator       (default $CARGO_TARGET_DIR/$PROFILE/loadgen)
#   REDIS_URL     default redis://127.0.0.1:6379
#   BUILD=0       use the binaries as they are, do not run cargo build
#   KEEP=1        keep the run directory (logs, JSON reports)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LEADCHAT_BIN=${LEADCHAT_BIN:-$TARGET/$PROFILE/leadchat}
LOADGEN_BIN=${LOADGEN_BIN:-$TARGET/$PROFILE/loadgen}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/leadchat-perf.XXXXXX")
REDIS_PREFIX="bench:$(basename "$RUN_DIR"):"
SERVER_PID=""
SERVER_ADDR=""
PIDS=()

build() {
  [[ ${BUILD:-1} == 0 ]] && return 0
  local flag=()
  [[ $PROFILE == release ]] && flag=(--release)
  (cd "$ROOT" && cargo build "${flag[@]}" -p leadchat -p loadgen --bin leadchat --bin loadgen >&2)
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}" ${SINK_PID:-}; do kill "$pid" 2>/dev/null || true; done
  stop_server
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "run directory: $RUN_DIR" >&2; else rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT

# start_server [VAR=value …]: (STORE=embedded: without Redis, the embedded
# store in the run directory; STORE=memory: without Redis, in memory) starts leadchat on a free port with Redis, its
# own SQLite file, report and outbox directories; sets SERVER_PID and SERVER_ADDR.
# Load generators are all 127.0.0.1: the per-client limits are lifted, and
# /metrics needs the admin token.
PERF_ADMIN_TOKEN=${PERF_ADMIN_TOKEN:-perf-admin-token-0000}
start_server() {
  mkdir -p "$RUN_DIR/reports" "$RUN_DIR/outbox"
  local store=(LEADCHAT_REDIS_URL="$REDIS_URL" LEADCHAT_REDIS_PREFIX="$REDIS_PREFIX")
  case ${STORE:-redis} in
    embedded) store=(LEADCHAT_EMBEDDED_DIR="$RUN_DIR/live") ;;
    memory) store=(LEADCHAT_EMBEDDED_MEMORY=true) ;;
  esac
  env LEADCHAT_LISTEN=127.0.0.1:0 "${store[@]}" \
    LEADCHAT_DATABASE_URL="sqlite://$RUN_DIR/archive.db" \
    LEADCHAT_REPORT_DIR="$RUN_DIR/reports" \
    LEADCHAT_OUTBOX_DIR="$RUN_DIR/outbox" \
    LEADCHAT_LIMITS__RATE=1000/1s \
    LEADCHAT_LIMITS__SESSIONS_PER_CLIENT=10000000 LEADCHAT_LIMITS__SOCKETS_PER_CLIENT=10000000 \
    LEADCHAT_ADMIN_TOKEN="$PERF_ADMIN_TOKEN" \
    RUST_LOG="${RUST_LOG:-warn,leadchat::startup=info}" NO_COLOR=1 \
    "$@" "$LEADCHAT_BIN" serve >"$RUN_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 300); do
    SERVER_ADDR=$(sed 's/\x1b\[[0-9;]*m//g' "$RUN_DIR/server.log" |
      grep -o 'listening on [0-9.:]*' | head -1 | cut -d' ' -f3 || true)
    [[ -n $SERVER_ADDR ]] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$RUN_DIR/server.log" >&2
      echo "leadchat did not start" >&2
      exit 1
    fi
    sleep 0.1
  done
  [[ -n $SERVER_ADDR ]] || { echo "leadchat did not log its address" >&2; exit 1; }
  echo "leadchat pid $SERVER_PID on $SERVER_ADDR (redis prefix $REDIS_PREFIX)" >&2
}

stop_server() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
  return 0
}

# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# cores_used TICKS_BEFORE TICKS_AFTER SECONDS: average cores busy.
cores_used() { python3 -c "import os,sys; t=os.sysconf('SC_CLK_TCK'); print(f'{($2-$1)/t/$3:.2f}')"; }

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# generators NAME PROCS SESSIONS [loadgen args…]: runs PROCS generators with
# SESSIONS in all, each from its own two source addresses (127.0.0.2 onwards;
# ~28k client ports per address), in the background. Their JSON reports go to
# $RUN_DIR/NAME.N.json, and a ready marker to $RUN_DIR/NAME.N.ready.
generators() {
  local name=$1 procs=$2 sessions=$3
  shift 3
  local i per=$((sessions / procs))
  for i in $(seq 0 $((procs - 1))); do
    local n=$per
    ((i == procs - 1)) && n=$((sessions - per * (procs - 1)))
    local a=$((2 + 2 * i)) b=$((3 + 2 * i))
    "$LOADGEN_BIN" --url "ws://$SERVER_ADDR/ws" --sessions "$n" \
      --source-ips "127.0.0.$a-127.0.0.$b" --json \
      --ready-file "$RUN_DIR/$name.$i.ready" "$@" \
      >"$RUN_DIR/$name.$i.json" 2>"$RUN_DIR/$name.$i.log" &
    PIDS+=($!)
  done
}

# wait_ready NAME PROCS: until every generator of NAME has opened its sessions.
wait_ready() {
  local name=$1 procs=$2 i
  for i in $(seq 0 $((procs - 1))); do
    while [[ ! -s $RUN_DIR/$name.$i.ready ]]; do sleep 0.2; done
  done
}

# wait_generators NAME PROCS: waits for them and prints the merged JSON report.
# Returns 1 if a generator failed.
wait_generators() {
  local name=$1 procs=$2 i rc=0 files=()
  for pid in "${PIDS[@]}"; do wait "$pid" || rc=1; done
  PIDS=()
  for i in $(seq 0 $((procs - 1))); do files+=("$RUN_DIR/$name.$i.json"); done
  "$LOADGEN_BIN" merge --json "${files[@]}" >"$RUN_DIR/$name.json" || rc=1
  return $rc
}

# summary FILE: the human-readable figures of a merged report.
summary() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_ms"]
print(f"  sessions {r['sessions']} ready {r['ready']} failed {r['connect_failures']}"
      f" | {r['handshakes_per_s']:.0f} handshakes/s over {r['connect_secs']:.1f}s"
      f" ({r['processes']} generator processes)")
if r["sent"]:
    print(f"  sent {r['sent']} acks {r['acks']} answers {r['answers']}"
          f" | {r['msgs_per_s']:.0f} msgs/s measured over {r['window_secs']:.0f}s")
    print(f"  latency send->bot ms: p50 {l['p50']:.2f} p90 {l['p90']:.2f}"
          f" p99 {l['p99']:.2f} p99.9 {l['p999']:.2f} max {l['max']:.2f}")
    print(f"  late sends {r['late_sends']} (max lag {r['max_lag_ms']:.1f} ms)")
print(f"  ended {r['ended']} protocol errors {r['protocol_errors']} errors {r['errors']}")
EOF
}

# jq-free field access: field FILE a.b
field() {
  python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"
}
