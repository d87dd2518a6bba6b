-- Durable jobs (PROTOCOL §12): everything that must happen later or
-- elsewhere. A job is claimed with a lease (state 'running', lease_until);
-- attempts counts claims, so a run that took its node down counts too and
-- fences a late completion by a worker whose lease ran out.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead', 'cancelled')),
    due_at       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    lease_until  TEXT,
    last_error   TEXT,
    -- Where a job must happen once: a second enqueue with the key is a no-op.
    dedupe_key   TEXT UNIQUE,
    subject      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, due_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);
