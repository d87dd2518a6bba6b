#!/usr/bin/env bash
# Finalization burst: N sessions (contact given) send one message at the same
# moment, so their inactivity deadlines fall within the same second; each must
# be rendered and mailed exactly once to a local SMTP sink. Meanwhile another
# group of CHAT sessions keeps chatting and its p99 is measured over the drain.
# Issue 8 target: 10,000 sessions drained within 3 minutes, chat p99 < 15 ms.
# The chat group stops CHAT_SECS after the deadline, so its own sessions time
# out (and are reported) only after the 3-minute window it measures.
#
#   scripts/perf/burst.sh [N=10000]
#   TIMEOUT=30 (inactivity timeout, s) CHAT=2000 CHAT_RATE=1000 CHAT_SECS=150
#   LIMIT=200 (seconds after the deadline before giving up) BUILD=0
source "$(dirname "$0")/lib.sh"
N=${1:-10000}
TIMEOUT=${TIMEOUT:-30}
CHAT=${CHAT:-2000}
CHAT_RATE=${CHAT_RATE:-1000}
CHAT_SECS=${CHAT_SECS:-150}
LIMIT=${LIMIT:-200}
SINK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

build
python3 "$ROOT/scripts/perf/smtp_sink.py" --port "$SINK_PORT" --stats "$RUN_DIR/sink.json" --group Burst >"$RUN_DIR/sink.log" 2>&1 &
SINK_PID=$!
while [[ ! -s $RUN_DIR/sink.json ]]; do sleep 0.1; done
start_server LEADCHAT_SMTP_URL="smtp://127.0.0.1:$SINK_PORT" LEADCHAT_INACTIVITY_TIMEOUT="${TIMEOUT}s"

# The burst group: open, contact, then one message each at the same moment.
generators burst 1 "$N" --name "Burst Visitor" --idle --sync-message --connect-concurrency 256 \
  --duration "$((TIMEOUT + LIMIT))"
wait_ready burst 1
sync_at=$(date +%s.%N)
deadline=$(python3 -c "print($sync_at + $TIMEOUT)")
echo "burst: $N sessions synchronised; their deadline is in ${TIMEOUT}s" >&2

# The chat group, from other source addresses, measured from the deadline on.
BURST_PIDS=("${PIDS[@]}")
PIDS=()
chat_ramp=5
"$LOADGEN_BIN" --url "ws://$SERVER_ADDR/ws" --sessions "$CHAT" --name "Chat Visitor" --source-ips 127.0.0.20-127.0.0.21 \
  --rate "$CHAT_RATE" --jitter --ramp "$chat_ramp" --warmup "$((TIMEOUT - chat_ramp - 1))" \
  --duration "$CHAT_SECS" --json >"$RUN_DIR/chat.0.json" 2>"$RUN_DIR/chat.0.log" &
PIDS+=($!)

# Wait for the sink to have every mail, or give up LIMIT seconds after the deadline.
while :; do
  mails=$(field "$RUN_DIR/sink.json" groups.Burst.mails)
  now=$(date +%s)
  ((mails >= N)) && break
  python3 -c "import sys; sys.exit(0 if $now > $deadline + $LIMIT else 1)" && break
  sleep 1
done
sleep 3 # late duplicates would land now
for pid in "${PIDS[@]}"; do wait "$pid" || true; done
PIDS=("${BURST_PIDS[@]}")
wait_generators burst 1 || true
"$LOADGEN_BIN" merge --json "$RUN_DIR/chat.0.json" >"$RUN_DIR/chat.json"

echo "burst group:"
summary "$RUN_DIR/burst.json"
echo "chat group during the drain ($CHAT sessions, $CHAT_RATE msg/s):"
summary "$RUN_DIR/chat.json"
python3 - "$RUN_DIR/sink.json" "$deadline" "$N" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["groups"]["Burst"]
deadline, n = float(sys.argv[2]), int(sys.argv[3])
if s["mails"]:
    drain = s["last"] - deadline
    span = max(s["last"] - s["first"], 1e-3)
    print(f"sink: {s['mails']} mails ({s['distinct']} distinct Message-IDs, {s['duplicates']} duplicates)"
          f" of {n}; first {s['first'] - deadline:.1f}s after the deadline,"
          f" last {drain:.1f}s after it; {s['mails'] / span:.0f} mails/s;"
          f" {s['bytes'] / s['mails'] / 1024:.0f} KiB per mail")
else:
    print(f"sink: no mail of {n}")
PY
curl -s -H "Authorization: Bearer $PERF_ADMIN_TOKEN" "http://$SERVER_ADDR/metrics" | grep -E '^leadchat_(sessions_finalized_total|reports_total|mails_sent_total|mails_failed_total|mails_retried_total|report_render_seconds_(sum|count))' || true
