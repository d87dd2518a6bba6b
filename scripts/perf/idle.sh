#!/usr/bin/env bash
# Idle sessions: N visitors connect, give contact and hold (issue 8 target:
# 19,000 in one process at <= 16 KB RSS each, >= 5,000 handshakes/s).
# Prints the server's RSS before and with the sessions open, RSS per session
# and handshakes/s (upgrade + session frame + contact_ok, all generators).
#
#   scripts/perf/idle.sh [SESSIONS=19000]
#   PROCS=2 CONC=256 HOLD=15 BUILD=0
source "$(dirname "$0")/lib.sh"
SESSIONS=${1:-19000}
PROCS=${PROCS:-2}

build
start_server
sleep 2
before=$(rss_kb "$SERVER_PID")
generators idle "$PROCS" "$SESSIONS" --idle --connect-concurrency "${CONC:-256}" --duration "${HOLD:-15}"
wait_ready idle "$PROCS"
sleep 3 # let the sessions' first store writes and timers settle
after=$(rss_kb "$SERVER_PID")
live=$(curl -s -H "Authorization: Bearer $PERF_ADMIN_TOKEN" "http://$SERVER_ADDR/metrics" | awk '/^leadchat_live_sessions / {print $2}')
wait_generators idle "$PROCS" || true
summary "$RUN_DIR/idle.json"
python3 - "$before" "$after" "$(field "$RUN_DIR/idle.json" ready)" "${live:-?}" <<'PY'
import sys
before, after, ready, live = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
per = (after - before) * 1024 / max(ready, 1)
print(f"RSS before {before/1024:.1f} MiB, with {ready} sessions {after/1024:.1f} MiB"
      f" (live_sessions gauge {live}): {per/1024:.1f} KiB per session")
PY
