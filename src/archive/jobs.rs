//! The durable jobs table (PROTOCOL §12): one queue in the archive database
//! for everything that must happen later or elsewhere.
//!
//! - `enqueue` is idempotent on the dedupe key: a second job with the key
//!   is not created, and the first one's id comes back.
//! - `claim_jobs` takes due jobs with a lease in one statement: `pending`
//!   ones whose time has come and `running` ones whose lease ran out (their
//!   worker died). On PostgreSQL rows another node is claiming are skipped
//!   (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers. Each claim counts
//!   an attempt, and the attempt number is the claim's fence: `complete_job`
//!   and `fail_job` from a worker whose lease ran out and whose job was
//!   claimed again change nothing.
//! - A job whose lease ran out on its last attempt is `dead`, not run again.
//! - `fail_job` retries at the time the caller chose (the backoff is the
//!   runner's, see `jobs::backoff`) or, after the last attempt, makes it
//!   `dead`.
//!
//! Delivery is at least once: a handler must be idempotent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::error::ArchiveError;
use super::{Archive, Backend, on_pool};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        Self::Pending,
        Self::Running,
        Self::Done,
        Self::Dead,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Which handler runs it (`report.mail`, `webhook.deliver`, …).
    pub kind: String,
    pub payload: serde_json::Value,
    pub due_at: DateTime<Utc>,
    pub max_attempts: i32,
    /// Unique where the job must happen once.
    pub dedupe_key: Option<String>,
    /// The session, event or follow-up it is about.
    pub subject: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub state: JobState,
    #[serde(skip)]
    pub payload: serde_json::Value,
    /// Claims so far; while `running`, the number of the current claim.
    pub attempts: i32,
    #[serde(skip)]
    pub max_attempts: i32,
    pub due_at: DateTime<Utc>,
    #[serde(skip)]
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub dedupe_key: Option<String>,
    pub subject: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub updated_at: DateTime<Utc>,
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Created(i64),
    /// A job with the dedupe key exists already (in any state): its id.
    Duplicate(i64),
}

impl Enqueued {
    pub fn id(self) -> i64 {
        match self {
            Self::Created(id) | Self::Duplicate(id) => id,
        }
    }
}

/// A claimed job's fence: its id and the attempt it was claimed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub id: i64,
    pub attempt: i32,
}

impl Job {
    /// The fence to finish this claim with.
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            attempt: self.attempts,
        }
    }
}

macro_rules! job_columns {
    () => {
        "id, kind, payload, state, due_at, attempts, max_attempts, lease_until, last_error, \
         dedupe_key, subject, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    payload: Json<serde_json::Value>,
    state: String,
    due_at: DateTime<Utc>,
    attempts: i32,
    max_attempts: i32,
    lease_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    dedupe_key: Option<String>,
    subject: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<JobRow> for Job {
    type Error = ArchiveError;

    fn try_from(r: JobRow) -> Result<Self, ArchiveError> {
        Ok(Job {
            state: JobState::parse(&r.state)
                .ok_or_else(|| ArchiveError::Corrupt(format!("job state {:?}", r.state)))?,
            id: r.id,
            kind: r.kind,
            payload: r.payload.0,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            due_at: r.due_at,
            lease_until: r.lease_until,
            last_error: r.last_error,
            dedupe_key: r.dedupe_key,
            subject: r.subject,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn jobs(rows: Vec<JobRow>) -> Result<Vec<Job>, ArchiveError> {
    let mut jobs = rows
        .into_iter()
        .map(Job::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING has no defined order.
    jobs.sort_by_key(|j| (j.due_at, j.id));
    Ok(jobs)
}

/// An error message as stored: at most 2,000 bytes, cut on a character.
fn stored_error(error: &str) -> String {
    let mut end = error.len().min(2000);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].to_owned()
}

impl Archive {
    /// Adds `job`, unless one with its dedupe key exists.
    pub async fn enqueue(
        &self,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<Enqueued, ArchiveError> {
        if job.max_attempts < 1 {
            return Err(ArchiveError::InvalidArgument(
                "max_attempts must be at least 1",
            ));
        }
        let created: Option<i64> = on_pool!(self, |pool, ts| {
            sqlx::query_scalar(
                "INSERT INTO jobs (kind, payload, state, due_at, attempts, max_attempts, \
                 dedupe_key, subject, created_at, updated_at) \
                 VALUES ($1, $2, 'pending', $3, 0, $4, $5, $6, $7, $7) \
                 ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            )
            .bind(&job.kind)
            .bind(Json(&job.payload))
            .bind(ts(job.due_at))
            .bind(job.max_attempts)
            .bind(&job.dedupe_key)
            .bind(&job.subject)
            .bind(ts(now))
            .fetch_optional(pool)
            .await?
        });
        if let Some(id) = created {
            return Ok(Enqueued::Created(id));
        }
        let existing: Option<i64> = on_pool!(self, |pool, ts| {
            sqlx::query_scalar("SELECT id FROM jobs WHERE dedupe_key = $1")
                .bind(&job.dedupe_key)
                .fetch_optional(pool)
                .await?
        });
        existing
            .map(Enqueued::Duplicate)
            .ok_or_else(|| ArchiveError::Corrupt("a job insert conflicted on nothing".into()))
    }

    /// Takes up to `limit` due jobs of `kinds` (all kinds when empty) for
    /// `lease`; see the module docs.
    pub async fn claim_jobs(
        &self,
        kinds: &[&str],
        now: DateTime<Utc>,
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<Job>, ArchiveError> {
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| ArchiveError::InvalidArgument("lease too long"))?;
        let until = now + lease;
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let all_kinds = kinds.is_empty();
        // A lease that ran out on the last attempt: the job took its worker
        // down every time; it is not run again.
        on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE jobs SET state = 'dead', lease_until = NULL, updated_at = $1, \
                 last_error = COALESCE(last_error, 'the lease ran out on the last attempt') \
                 WHERE state = 'running' AND lease_until <= $1 AND attempts >= max_attempts",
            )
            .bind(ts(now))
            .execute(pool)
            .await?;
        });
        let rows: Vec<JobRow> = match &self.backend {
            Backend::Sqlite(pool) => {
                let ts = super::rows::sqlite_ts;
                sqlx::query_as(concat!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, \
                     updated_at = $1 WHERE id IN (SELECT id FROM jobs \
                     WHERE ((state = 'pending' AND due_at <= $1) OR (state = 'running' AND lease_until <= $1)) \
                     AND ($4 OR kind IN (SELECT value FROM json_each($5))) \
                     ORDER BY due_at, id LIMIT $3) RETURNING ",
                    job_columns!()
                ))
                .bind(ts(now))
                .bind(ts(until))
                .bind(limit)
                .bind(all_kinds)
                .bind(Json(&kinds))
                .fetch_all(pool)
                .await?
            }
            Backend::Postgres(pool) => {
                let ts = super::rows::pg_ts;
                sqlx::query_as(concat!(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, \
                     updated_at = $1 WHERE id IN (SELECT id FROM jobs \
                     WHERE ((state = 'pending' AND due_at <= $1) OR (state = 'running' AND lease_until <= $1)) \
                     AND ($4 OR kind = ANY($5)) \
                     ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
                    job_columns!()
                ))
                .bind(ts(now))
                .bind(ts(until))
                .bind(limit)
                .bind(all_kinds)
                .bind(&kinds)
                .fetch_all(pool)
                .await?
            }
        };
        jobs(rows)
    }

    /// Extends a running claim's lease (a long job renews while it runs);
    /// false when the claim is no longer this worker's.
    pub async fn renew_job(
        &self,
        claim: Claim,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, ArchiveError> {
        let n = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE jobs SET lease_until = $3, updated_at = $4 \
                 WHERE id = $1 AND attempts = $2 AND state = 'running'",
            )
            .bind(claim.id)
            .bind(claim.attempt)
            .bind(ts(until))
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// The claimed job is done; false when the claim was no longer this
    /// worker's (its lease ran out and the job was claimed again).
    pub async fn complete_job(
        &self,
        claim: Claim,
        now: DateTime<Utc>,
    ) -> Result<bool, ArchiveError> {
        let n = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = $3 \
                 WHERE id = $1 AND attempts = $2 AND state = 'running'",
            )
            .bind(claim.id)
            .bind(claim.attempt)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// The claimed job failed with `error`: due again at `retry_at`, or
    /// `dead` when that was its last attempt or `retry_at` is `None` (a
    /// failure that retrying cannot mend). Returns the state it is in now,
    /// or `None` when the claim was no longer this worker's.
    pub async fn fail_job(
        &self,
        claim: Claim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobState>, ArchiveError> {
        let error = stored_error(error);
        let state: Option<String> = on_pool!(self, |pool, ts| {
            sqlx::query_scalar(
                "UPDATE jobs SET \
                 state = CASE WHEN $3 AND attempts < max_attempts THEN 'pending' ELSE 'dead' END, \
                 due_at = CASE WHEN $3 AND attempts < max_attempts THEN $4 ELSE due_at END, \
                 lease_until = NULL, last_error = $5, updated_at = $6 \
                 WHERE id = $1 AND attempts = $2 AND state = 'running' RETURNING state",
            )
            .bind(claim.id)
            .bind(claim.attempt)
            .bind(retry_at.is_some())
            .bind(ts(retry_at.unwrap_or(now)))
            .bind(&error)
            .bind(ts(now))
            .fetch_optional(pool)
            .await?
        });
        state
            .map(|s| {
                JobState::parse(&s).ok_or_else(|| ArchiveError::Corrupt(format!("job state {s:?}")))
            })
            .transpose()
    }

    /// Makes a job due now, dead or not (`leadchat jobs retry`); a done or
    /// running job is left alone. False when nothing changed.
    pub async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> Result<bool, ArchiveError> {
        let n = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE jobs SET state = 'pending', due_at = $2, updated_at = $2, \
                 max_attempts = CASE WHEN attempts >= max_attempts THEN attempts + 1 ELSE max_attempts END \
                 WHERE id = $1 AND state IN ('pending', 'dead', 'cancelled')",
            )
            .bind(id)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Cancels a job that has not run to its end; false when it is running,
    /// done or dead.
    pub async fn cancel_job(&self, id: i64, now: DateTime<Utc>) -> Result<bool, ArchiveError> {
        let n = on_pool!(self, |pool, ts| {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', updated_at = $2 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(ts(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Option<Job>, ArchiveError> {
        let row: Option<JobRow> = on_pool!(self, |pool, ts| {
            sqlx::query_as(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(Job::try_from).transpose()
    }

    /// Jobs in `state` and of `kind` (each filter optional), newest first.
    pub async fn list_jobs(
        &self,
        state: Option<JobState>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Job>, ArchiveError> {
        let rows: Vec<JobRow> = on_pool!(self, |pool, ts| {
            sqlx::query_as(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR kind = $2) \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(state.map(JobState::as_str))
            .bind(kind)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Job::try_from).collect()
    }

    /// How many jobs there are of each kind in each state.
    pub async fn job_counts(&self) -> Result<Vec<(String, JobState, i64)>, ArchiveError> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool, ts| {
            sqlx::query_as("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(kind, state, n)| {
                let state = JobState::parse(&state)
                    .ok_or_else(|| ArchiveError::Corrupt(format!("job state {state:?}")))?;
                Ok((kind, state, n))
            })
            .collect()
    }

    /// Deletes finished jobs (done, dead, cancelled) last changed before
    /// `before` (`jobs.keep`); how many.
    pub async fn prune_jobs(&self, before: DateTime<Utc>) -> Result<u64, ArchiveError> {
        Ok(on_pool!(self, |pool, ts| {
            sqlx::query(
                "DELETE FROM jobs WHERE state IN ('done', 'dead', 'cancelled') AND updated_at < $1",
            )
            .bind(ts(before))
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}
