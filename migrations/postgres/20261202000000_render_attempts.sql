-- Renders tried for a report mail, counted before each render starts so that
-- a render that takes the process down counts too; past the last one the
-- mail goes out with the transcript as text instead of the PDF.
ALTER TABLE outbox ADD COLUMN render_attempts INTEGER NOT NULL DEFAULT 0;

-- TRUE while a sender or a finalizing pipeline holds the mail (its
-- next_attempt_at is a lease), FALSE while it waits for a retry: a node's
-- start makes the waiting ones due at once without stealing another node's
-- claim.
ALTER TABLE outbox ADD COLUMN claimed BOOLEAN NOT NULL DEFAULT FALSE;
