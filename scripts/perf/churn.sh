#!/usr/bin/env bash
# Churn: SLOTS visitors at a time open a session, give contact, send MESSAGES
# messages (one every INTERVAL_MS, jittered), then end it — every other one
# with `end`, the rest by disconnecting and leaving it to the inactivity
# timeout — and open a new one at once, for MINUTES. Every session is
# reported and mailed to a local SMTP sink. Issue 8 target: memory stays
# flat; no actor, timer, registry entry or Redis key is left behind.
#
# Every SAMPLE seconds it prints the server's RSS, the live-session and
# connection gauges, the registry size, the admin feed's live map, the
# finalized and mailed counts, and the run's Redis keys (all, without a TTL,
# in the deadline index). After the run it waits for the last abandoned
# sessions to time out and checks that everything is back to zero.
#
#   scripts/perf/churn.sh [MINUTES=30]
#   SLOTS=1000 MESSAGES=20 INTERVAL_MS=2000 TIMEOUT=20 SAMPLE=60 BUILD=0
source "$(dirname "$0")/lib.sh"
MINUTES=${1:-30}
SLOTS=${SLOTS:-1000}
MESSAGES=${MESSAGES:-20}
INTERVAL_MS=${INTERVAL_MS:-2000}
TIMEOUT=${TIMEOUT:-20}
SAMPLE=${SAMPLE:-60}
PROCS=${PROCS:-2}
SINK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

build
python3 "$ROOT/scripts/perf/smtp_sink.py" --port "$SINK_PORT" --stats "$RUN_DIR/sink.json" --group Churn >"$RUN_DIR/sink.log" 2>&1 &
SINK_PID=$!
while [[ ! -s $RUN_DIR/sink.json ]]; do sleep 0.1; done
start_server LEADCHAT_SMTP_URL="smtp://127.0.0.1:$SINK_PORT" LEADCHAT_INACTIVITY_TIMEOUT="${TIMEOUT}s"

# metric NAME: the sum of NAME's series, whatever their labels.
metric() {
  awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2; n++} END {if (n) print s}' "$RUN_DIR/metrics.txt"
}
sample() {
  curl -s -H "Authorization: Bearer $PERF_ADMIN_TOKEN" "http://$SERVER_ADDR/metrics" >"$RUN_DIR/metrics.txt"
  local keys
  keys=$(python3 "$ROOT/scripts/perf/redis_keys.py" --url "$REDIS_URL" --prefix "$REDIS_PREFIX")
  python3 - "$1" "$(rss_kb "$SERVER_PID")" "$keys" "$RUN_DIR/sink.json" \
    "$(metric leadchat_live_sessions)" "$(metric leadchat_registry_sessions)" \
    "$(metric leadchat_connections)" "$(metric leadchat_feed_sessions)" \
    "$(metric leadchat_sessions_finalized_total)" <<'PY' | tee -a "$RUN_DIR/samples.txt"
import json, sys
t, rss, keys, sink = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.load(open(sys.argv[4]))
g = lambda v: v if v else "0"
mails = sink["groups"].get("Churn", {}).get("mails", 0)
dups = sink["groups"].get("Churn", {}).get("duplicates", 0)
print(f"{t:>6} {rss/1024:8.1f} {g(sys.argv[5]):>6} {g(sys.argv[6]):>6} {g(sys.argv[7]):>6} {g(sys.argv[8]):>6}"
      f" {g(sys.argv[9]):>9} {mails:>7} {dups:>4} {keys['keys']:>7} {keys['keys_without_ttl']:>6} {keys['deadline_index']:>6}")
PY
}

generators churn "$PROCS" "$SLOTS" --churn "$MESSAGES" --interval-ms "$INTERVAL_MS" --jitter \
  --name "Churn Visitor" --ramp 10 --warmup 0 --duration "$((MINUTES * 60))" --connect-concurrency 64
echo "churn: $SLOTS slots, $MESSAGES messages each every ${INTERVAL_MS} ms, inactivity timeout ${TIMEOUT}s, ${MINUTES} min" >&2
printf '%6s %8s %6s %6s %6s %6s %9s %7s %4s %7s %6s %6s\n' \
  "t(s)" "RSS MiB" "live" "reg" "conns" "feed" "finalized" "mailed" "dup" "keys" "no-ttl" "index"
start=$(date +%s)
sample 0
end=$((start + MINUTES * 60))
while (($(date +%s) + SAMPLE <= end)); do
  sleep "$SAMPLE"
  sample "$(($(date +%s) - start))"
done
rc=0
wait_generators churn "$PROCS" || rc=1
# The last abandoned sessions time out, then their reports go out.
sleep "$((TIMEOUT + 15))"
sample "end"
summary "$RUN_DIR/churn.json"
python3 - "$RUN_DIR/samples.txt" "$RUN_DIR/churn.json" "$RUN_DIR/sink.json" <<'PY' || rc=1
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
r = json.load(open(sys.argv[2]))
sink = json.load(open(sys.argv[3]))["groups"].get("Churn", {})
timed = [x for x in rows if x[0] != "end"]
warm = [x for x in timed if int(x[0]) >= 300] or timed
rss = [float(x[1]) for x in warm]
final = rows[-1]
print(f"RSS after warm-up: first {rss[0]:.1f} MiB, min {min(rss):.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}")
print(f"sessions opened {r['ready']}, ended with `end` {r['ended']}, abandoned {r['abandoned']};"
      f" mailed {sink.get('mails', 0)} ({sink.get('duplicates', 0)} duplicates)")
problems = []
if int(final[2]) or int(final[3]) or int(final[4]):
    problems.append(f"after the run: live {final[2]}, registry {final[3]}, connections {final[4]} (want 0)")
if int(final[5]):
    problems.append(f"admin feed still lists {final[5]} sessions")
if int(final[10]) or int(final[11]):
    problems.append(f"{final[10]} keys without TTL, {final[11]} in the deadline index (want 0)")
if sink.get("duplicates", 0):
    problems.append(f"{sink['duplicates']} sessions mailed twice")
if sink.get("mails", 0) != r["ready"]:
    problems.append(f"{r['ready']} sessions opened but {sink.get('mails', 0)} mailed")
if r["protocol_errors"] or r["connect_failures"]:
    problems.append(f"{r['protocol_errors']} protocol errors, {r['connect_failures']} failed connects")
for p in problems:
    print("churn: " + p)
sys.exit(1 if problems else 0)
PY
exit $rc
