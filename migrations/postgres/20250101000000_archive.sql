-- Archive of finalized chat sessions and the durable mail outbox (PostgreSQL).
CREATE TABLE sessions (
    session_id        TEXT PRIMARY KEY NOT NULL,
    name              TEXT,
    email             TEXT,
    phone             TEXT,
    organization      TEXT,
    -- lower-cased name/email/organization, built in Rust so that both back
    -- ends fold case the same way
    search_text       TEXT NOT NULL,
    lead_score        INTEGER NOT NULL,
    priority          TEXT NOT NULL,
    engagement_score  INTEGER NOT NULL,
    total_queries     INTEGER NOT NULL,
    signals           JSONB NOT NULL,
    first_interaction TIMESTAMPTZ NOT NULL,
    last_interaction  TIMESTAMPTZ NOT NULL,
    finalized_at      TIMESTAMPTZ NOT NULL,
    end_reason        TEXT NOT NULL,
    node              TEXT NOT NULL,
    report_path       TEXT
);
CREATE INDEX sessions_finalized_at ON sessions (finalized_at);

CREATE TABLE messages (
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    role       TEXT NOT NULL,
    text       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    -- UNIQUE: one report mail per session, whatever the callers do
    session_id      TEXT NOT NULL UNIQUE REFERENCES sessions (session_id) ON DELETE CASCADE,
    recipients      JSONB NOT NULL,
    subject         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    message_id      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
