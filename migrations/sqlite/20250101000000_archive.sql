-- Archive of finalized chat sessions and the durable mail outbox (SQLite).
-- Timestamps are TEXT in one fixed RFC 3339 layout (UTC, microseconds) written
-- by the application, so that comparing the text compares the instants.
CREATE TABLE sessions (
    session_id        TEXT PRIMARY KEY NOT NULL,
    name              TEXT,
    email             TEXT,
    phone             TEXT,
    organization      TEXT,
    -- lower-cased name/email/organization, built in Rust so that case folding
    -- is Unicode-aware on both back ends (SQLite's lower() is ASCII only)
    search_text       TEXT NOT NULL,
    lead_score        INTEGER NOT NULL,
    priority          TEXT NOT NULL,
    engagement_score  INTEGER NOT NULL,
    total_queries     INTEGER NOT NULL,
    signals           TEXT NOT NULL,
    first_interaction TEXT NOT NULL,
    last_interaction  TEXT NOT NULL,
    finalized_at      TEXT NOT NULL,
    end_reason        TEXT NOT NULL,
    node              TEXT NOT NULL,
    report_path       TEXT
);
CREATE INDEX sessions_finalized_at ON sessions (finalized_at);

CREATE TABLE messages (
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    role       TEXT NOT NULL,
    text       TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- UNIQUE: one report mail per session, whatever the callers do
    session_id      TEXT NOT NULL UNIQUE REFERENCES sessions (session_id) ON DELETE CASCADE,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    last_error      TEXT,
    sent_at         TEXT,
    message_id      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
