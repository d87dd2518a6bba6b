#!/usr/bin/env bash
# Smoke test of the load path, for CI: a few hundred visitors chat for a few
# seconds against a real server (Redis-backed when Redis answers, else the
# memory store). No timing assertion; exits non-zero on any protocol error,
# failed handshake or error frame.
#
#   scripts/perf/smoke.sh            # debug build (what the tests built)
#   PROFILE=release scripts/perf/smoke.sh
PROFILE=${PROFILE:-debug}
source "$(dirname "$0")/lib.sh"
SESSIONS=${SESSIONS:-300}

build
if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  start_server
else
  echo "no Redis at $REDIS_URL: smoke-testing the memory store" >&2
  STORE=memory start_server
fi
generators smoke 2 "$SESSIONS" --ramp 1 --interval-ms 400 --jitter --warmup 0.5 --duration 3 --strict
rc=0
wait_generators smoke 2 || rc=1
summary "$RUN_DIR/smoke.json"
answers=$(field "$RUN_DIR/smoke.json" answers)
if ((rc != 0 || answers == 0)); then
  echo "smoke: FAILED (see the generator logs: KEEP=1 $0)" >&2
  tail -5 "$RUN_DIR"/smoke.*.log "$RUN_DIR/server.log" >&2 || true
  exit 1
fi
echo "smoke: ok"
