#!/usr/bin/env bash
# Steady chat load: SESSIONS live visitors send RATE messages/s in all (each
# one every SESSIONS/RATE seconds, jittered), measured for DURATION seconds
# after the ramp. Issue 8 targets: 5,000 msg/s over 15,000 sessions with
# p99 <= 5 ms; 10,000 msg/s with p99 <= 15 ms.
#
#   scripts/perf/steady.sh RATE [SESSIONS=15000]
#   DURATION=30 PROCS=2 RAMP_RATE=3000 (sessions opened per second) BUILD=0
#   JOBS_RATE=N: other "nodes" enqueue N durable jobs/s into the server's
#   archive while it is measured; its job runner runs them beside the chat.
source "$(dirname "$0")/lib.sh"
RATE=${1:?usage: steady.sh RATE [SESSIONS]}
SESSIONS=${2:-15000}
PROCS=${PROCS:-2}
DURATION=${DURATION:-30}
RAMP=$(python3 -c "print(max(1, $SESSIONS / ${RAMP_RATE:-3000}))")

build
start_server
# steady_run NAME: one measured run against the running server; prints figures.
generators steady "$PROCS" "$SESSIONS" --rate "$(python3 -c "print($RATE / $PROCS)")" --jitter \
  --ramp "$RAMP" --warmup 3 --duration "$DURATION" --connect-concurrency 128
wait_ready steady "$PROCS"
t0=$(cpu_ticks "$SERVER_PID")
s0=$(date +%s.%N)
if [[ ${JOBS_RATE:-0} -gt 0 ]]; then
  "$(dirname "$0")/jobs_feed.py" "$RUN_DIR/archive.db" "$JOBS_RATE" "$((DURATION - 2))" \
    >"$RUN_DIR/jobs_fed" &
  FEEDER_PID=$!
fi
sleep "$(python3 -c "print(max(1, $DURATION - 2))")"
t1=$(cpu_ticks "$SERVER_PID")
s1=$(date +%s.%N)
rc=0
wait_generators steady "$PROCS" || rc=1
echo "steady: $RATE msg/s requested over $SESSIONS sessions"
if [[ ${JOBS_RATE:-0} -gt 0 ]]; then
  wait "$FEEDER_PID"
  done_jobs=$("$(dirname "$0")/jobs_feed.py" "$RUN_DIR/archive.db" --count "$s0")
  echo "  jobs: $(cat "$RUN_DIR/jobs_fed") enqueued, $done_jobs run by the node" \
    "($(python3 -c "print(round($done_jobs / ($s1 - $s0)))")/s)"
fi
summary "$RUN_DIR/steady.json"
echo "  server CPU $(cores_used "$t0" "$t1" "$(python3 -c "print($s1 - $s0)")") cores, RSS $(($(rss_kb "$SERVER_PID") / 1024)) MiB"
exit $rc
