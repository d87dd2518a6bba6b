//! The durable mail outbox: which report mails are due, and what became of them.
//!
//! A mail is `pending` until it is `sent` or permanently `failed`. Retries
//! move `next_attempt_at` forward; a claim does the same by a lease, so a mail
//! a worker is busy with is not handed to another worker (or node) until the
//! lease runs out — which is also how a mail held by a crashed worker comes back.
//! The pipeline that archives a session holds its mail the same way
//! (`NewMail::held_until`) while it renders the report, then takes it with
//! `claim_held_mail`, so pollers never race it for a mail it is preparing.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::ArchiveError;
use super::model::{MailStats, OutboxMail};
use super::rows::{OutboxRow, outbox_columns, outbox_mails, parse_status};
use super::{Archive, Backend, on_pool};

impl Archive {
    /// Pending mails due at `now`, oldest due first. Read-only: use
    /// [`Archive::claim_due_mails`] when the caller is going to send them.
    pub async fn due_mails(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxMail>, ArchiveError> {
        let rows: Vec<OutboxRow> = on_pool!(self, |pool, ts| {
            sqlx::query_as(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT $2"
            ))
            .bind(ts(now))
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        outbox_mails(rows)
    }

    /// Takes up to `limit` due mails for sending: in one statement their
    /// `next_attempt_at` moves to `now + lease`, so no other worker sees them
    /// as due meanwhile. On PostgreSQL rows another node is claiming are
    /// skipped (`FOR UPDATE SKIP LOCKED`) rather than waited for; SQLite
    /// serialises writers, which gives the same result on one node.
    ///
    /// Pick a lease longer than one send can take (the SMTP time-out is 30 s).
    /// The returned mails carry the lease expiry as `next_attempt_at`.
    pub async fn claim_due_mails(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<OutboxMail>, ArchiveError> {
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| ArchiveError::InvalidArgument("lease too long"))?;
        let until = now + lease;
        let rows: Vec<OutboxRow> = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_as(concat!(
                    "UPDATE outbox SET next_attempt_at = $2, claimed = TRUE WHERE id IN (SELECT id FROM outbox \
                     WHERE status = 'pending' AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT $3) RETURNING ",
                    outbox_columns!()
                ))
                .bind(super::rows::sqlite_ts(now))
                .bind(super::rows::sqlite_ts(until))
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            Backend::Postgres(pool) => {
                sqlx::query_as(concat!(
                    "UPDATE outbox SET next_attempt_at = $2, claimed = TRUE WHERE id IN (SELECT id FROM outbox \
                     WHERE status = 'pending' AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
                    outbox_columns!()
                ))
                .bind(super::rows::pg_ts(now))
                .bind(super::rows::pg_ts(until))
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        // RETURNING has no defined order; callers expect oldest first.
        let mut mails = outbox_mails(rows)?;
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    /// A node's start: every mail waiting for a retry is due now, so one
    /// goes out as soon as SMTP answers. On a single node (SQLite) no other
    /// process can hold a claim, so claims are released too — one left by a
    /// crash between claiming and sending must not wait out its lease. On
    /// PostgreSQL other nodes may hold live claims: those are left to their
    /// leases. Returns how many mails were made due.
    pub async fn release_claims_at_start(&self, now: DateTime<Utc>) -> Result<u64, ArchiveError> {
        let released = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1, claimed = FALSE \
                 WHERE status = 'pending' AND next_attempt_at > $1",
            )
            .bind(super::rows::sqlite_ts(now))
            .execute(pool)
            .await?
            .rows_affected(),
            Backend::Postgres(pool) => sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1 \
                 WHERE status = 'pending' AND next_attempt_at > $1 AND NOT claimed",
            )
            .bind(super::rows::pg_ts(now))
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(released)
    }

    /// Takes a mail its finalizing pipeline held (`NewMail::held_until`) for
    /// sending: succeeds only while the hold is still the one the pipeline
    /// wrote, so a poller that took the mail over after the hold ran out
    /// (the pipeline was slower than its hold) keeps it and the pipeline
    /// gets `None`. Like a claim, it moves `next_attempt_at` to `now + lease`.
    pub async fn claim_held_mail(
        &self,
        id: i64,
        held_until: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<OutboxMail>, ArchiveError> {
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| ArchiveError::InvalidArgument("lease too long"))?;
        let row: Option<OutboxRow> = on_pool!(self, |pool, ts| {
            sqlx::query_as(concat!(
                "UPDATE outbox SET next_attempt_at = $3, claimed = TRUE WHERE id = $1 \
                 AND status = 'pending' AND next_attempt_at = $2 RETURNING ",
                outbox_columns!()
            ))
            .bind(id)
            .bind(ts(held_until))
            .bind(ts(now + lease))
            .fetch_optional(pool)
            .await?
        });
        Ok(outbox_mails(row.into_iter().collect())?.pop())
    }

    /// Renews a claim while its send runs: moves the lease from `held_until`
    /// (the claim's own expiry, its token) to `until`. `false` when the claim
    /// is no longer this sender's (the mail was recorded, or another sender
    /// took it after the lease ran out). A send that outlasts one lease keeps
    /// renewing, so no second sender starts while the first still talks to
    /// the SMTP server.
    pub async fn renew_claim(
        &self,
        id: i64,
        held_until: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, ArchiveError> {
        self.move_claim(id, held_until, until, true).await
    }

    /// Moves a mail's claim from `held_until` (its token) to `until`,
    /// still claimed or not; `false` when the claim was no longer the caller's.
    async fn move_claim(
        &self,
        id: i64,
        held_until: DateTime<Utc>,
        until: DateTime<Utc>,
        claimed: bool,
    ) -> Result<bool, ArchiveError> {
        let updated = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE outbox SET next_attempt_at = $3, claimed = $4 WHERE id = $1 \
                 AND status = 'pending' AND next_attempt_at = $2",
            )
            .bind(id)
            .bind(ts(held_until))
            .bind(ts(until))
            .bind(claimed)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Gives up a pipeline's hold on its mail (its report could not be
    /// rendered): the mail is due at `due`, for a poller to rebuild, and no
    /// longer claimed. `false` when the hold was no longer the pipeline's.
    pub async fn release_held_mail(
        &self,
        id: i64,
        held_until: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Result<bool, ArchiveError> {
        self.move_claim(id, held_until, due, false).await
    }

    /// Counts a render of the mail's report before it starts, so that a
    /// render which takes the process down (memory) still counts and a
    /// restart does not loop on it. Returns the count including this one.
    pub async fn count_render_attempt(&self, id: i64) -> Result<i32, ArchiveError> {
        let count: Option<i32> = on_pool!(self, |pool, _ts| {
            sqlx::query_scalar(
                "UPDATE outbox SET render_attempts = render_attempts + 1 \
                 WHERE id = $1 AND status = 'pending' RETURNING render_attempts",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        count.ok_or(ArchiveError::MailNotFound(id))
    }

    /// The report of a claimed mail could not be rendered: keep the error
    /// and try again at `next_attempt_at`. Send attempts are not counted —
    /// nothing was sent.
    pub async fn defer_render(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), ArchiveError> {
        self.put_back(id, error, next_attempt_at, 0).await
    }

    /// The mail went out; it will never be sent again. The successful try
    /// counts as an attempt too, so `attempts` is the number of sends tried.
    pub async fn mark_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), ArchiveError> {
        let updated = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE outbox SET status = 'sent', sent_at = $2, attempts = attempts + 1, \
                 last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(ts(at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        found(updated, id)
    }

    /// A transient failure: count the attempt, keep the error, try again at
    /// `next_attempt_at` (see `mail::transport::backoff`).
    pub async fn mark_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), ArchiveError> {
        self.put_back(id, error, next_attempt_at, 1).await
    }

    /// Unclaims a pending mail until `next_attempt_at`, keeping `error` and
    /// counting `sends` more send attempts.
    async fn put_back(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
        sends: i32,
    ) -> Result<(), ArchiveError> {
        let updated = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + $4, last_error = $2, \
                 next_attempt_at = $3, claimed = FALSE WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(error)
            .bind(ts(next_attempt_at))
            .bind(sends)
            .execute(pool)
            .await?
            .rows_affected()
        });
        found(updated, id)
    }

    /// A permanent failure (5xx, or out of attempts): never retried.
    pub async fn mark_failed(&self, id: i64, error: &str) -> Result<(), ArchiveError> {
        let updated = on_pool!(self, |pool, _ts| {
            sqlx::query(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $2 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(error)
            .execute(pool)
            .await?
            .rows_affected()
        });
        found(updated, id)
    }

    /// Counts per status and the oldest pending due time.
    pub async fn mail_stats(&self) -> Result<MailStats, ArchiveError> {
        let (counts, oldest): (Vec<(String, i64)>, Option<DateTime<Utc>>) =
            on_pool!(self, |pool, _ts| {
                let counts =
                    sqlx::query_as("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
                        .fetch_all(pool)
                        .await?;
                let oldest = sqlx::query_scalar(
                    "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'",
                )
                .fetch_one(pool)
                .await?;
                (counts, oldest)
            });
        let mut stats = MailStats {
            oldest_pending_due: oldest,
            ..MailStats::default()
        };
        for (status, n) in counts {
            match parse_status(&status)? {
                super::model::MailStatus::Pending => stats.pending = n,
                super::model::MailStatus::Sent => stats.sent = n,
                super::model::MailStatus::Failed => stats.failed = n,
            }
        }
        Ok(stats)
    }
}

/// `rows_affected == 0` means no such mail, or (for retry/failed) one that
/// is no longer pending — both are caller bugs worth surfacing.
fn found(updated: u64, id: i64) -> Result<(), ArchiveError> {
    if updated == 0 {
        Err(ArchiveError::MailNotFound(id))
    } else {
        Ok(())
    }
}
