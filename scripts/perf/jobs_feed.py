#!/usr/bin/env python3
"""Feeds durable jobs into a running node's SQLite archive, as other nodes
would enqueue them, so a chat benchmark measures the chat while the node's
job runner works (issue 16: the chat p99 at 5,000 msg/s while jobs run).

    jobs_feed.py ARCHIVE.db RATE SECONDS      enqueue RATE jobs/s for SECONDS
    jobs_feed.py ARCHIVE.db --count SINCE     jobs done since SINCE (epoch s)

The jobs are `jobs.prune` jobs (the node's own kind: one claim, one DELETE,
one completion each), due at once, each with its own dedupe key.
"""
import datetime
import sqlite3
import sys
import time


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def feed(path, rate, seconds):
    db = sqlite3.connect(path, timeout=30)
    start = time.time()
    sent = 0
    batch = max(1, rate // 20)
    while time.time() - start < seconds:
        due = sent + batch
        now = ts(datetime.datetime.now(datetime.timezone.utc))
        rows = [
            ("jobs.prune", "{}", "pending", now, 0, 1, f"bench:{start}:{n}", None, now, now)
            for n in range(sent, due)
        ]
        db.executemany(
            "INSERT INTO jobs (kind, payload, state, due_at, attempts, max_attempts, "
            "dedupe_key, subject, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.commit()
        sent = due
        ahead = sent / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)
    print(sent)


def count(path, since):
    db = sqlite3.connect(path, timeout=30)
    after = ts(datetime.datetime.fromtimestamp(since, datetime.timezone.utc))
    done, = db.execute(
        "SELECT count(*) FROM jobs WHERE kind = 'jobs.prune' AND state = 'done' "
        "AND dedupe_key LIKE 'bench:%' AND updated_at >= ?",
        (after,),
    ).fetchone()
    print(done)


if __name__ == "__main__":
    if sys.argv[2] == "--count":
        count(sys.argv[1], float(sys.argv[3]))
    else:
        feed(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
