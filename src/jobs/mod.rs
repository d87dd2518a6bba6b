//! Durable jobs: everything that must happen later or elsewhere (PROTOCOL
//! §12). The rows live in the archive's `jobs` table (`archive::jobs`); this
//! module runs them.
//!
//! - A [`JobHandler`] registers for one kind and runs one attempt of a job.
//!   Delivery is at least once — a node that dies mid-job leaves a lease
//!   that runs out, and another node runs the job again — so every handler
//!   is idempotent.
//! - The [`runner`] claims due jobs of the kinds this node handles, runs
//!   them under a concurrency limit, renews their leases while they run and
//!   records the outcome; a failed attempt is retried after an exponential
//!   back-off with full jitter ([`backoff`]), `dead` after the last one.
//! - The [`schedule`] turns cron expressions into jobs: each slot is
//!   enqueued under a dedupe key naming the slot, so one slot runs once
//!   however many nodes share the database.
//!
//! The jobs this module itself owns: `jobs.prune`, the hourly removal of
//! finished jobs older than `jobs.keep`.

mod backoff;
pub mod runner;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use thiserror::Error;
use tokio::sync::Notify;

pub use backoff::backoff;
pub use runner::{JobRunner, RunnerOptions};
pub use schedule::{Schedule, ScheduleError};

use crate::archive::{Archive, ArchiveError, Enqueued, Job, NewJob};
use crate::outbound::OutboundError;

/// One attempt of a job failed.
#[derive(Debug, Error)]
pub enum JobError {
    /// Worth another attempt: after `after` when the other side said when
    /// (`Retry-After`), else after the handler's back-off.
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Retrying cannot mend it (a payload that does not parse, a receiver
    /// that refused the request itself): the job is `dead` at once.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self::Retry {
            message: message.to_string(),
            after: None,
        }
    }

    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }
}

impl From<ArchiveError> for JobError {
    fn from(err: ArchiveError) -> Self {
        Self::retry(err)
    }
}

impl From<OutboundError> for JobError {
    fn from(err: OutboundError) -> Self {
        if err.is_retryable() {
            Self::Retry {
                after: err.retry_after(),
                message: err.to_string(),
            }
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

/// Runs the jobs of one kind. Delivery is at least once: `run` must be
/// idempotent (a job whose worker died is run again).
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// The kind it runs, as stored (`report.mail`, `webhook.deliver`, …).
    fn kind(&self) -> &'static str;

    /// One attempt.
    async fn run(&self, job: &Job) -> Result<(), JobError>;

    /// The wait before the next attempt after `attempt` failed ones, when
    /// the failure did not say; full-jitter exponential from 5 s to 1 h.
    fn retry_after(&self, attempt: u32) -> Duration {
        backoff(attempt, Duration::from_secs(5), Duration::from_secs(3600))
    }
}

/// Enqueues jobs and wakes this node's runner, so a job due now starts at
/// once rather than at the next poll. Clone it freely.
#[derive(Clone)]
pub struct Jobs {
    archive: Archive,
    wake: Arc<Notify>,
}

impl Jobs {
    pub fn new(archive: Archive) -> Self {
        Self {
            archive,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Adds `job` unless its dedupe key is taken (then the existing job's
    /// id comes back as `Duplicate`).
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, ArchiveError> {
        let enqueued = self.archive.enqueue(job, Utc::now()).await?;
        if matches!(enqueued, Enqueued::Created(_)) && job.due_at <= Utc::now() {
            self.wake.notify_one();
        }
        Ok(enqueued)
    }

    /// Makes job `id` due now, dead or not; false when it is running, done
    /// or unknown (`leadchat jobs retry`, `POST /api/jobs/{id}/retry`).
    pub async fn retry(&self, id: i64) -> Result<bool, ArchiveError> {
        let changed = self.archive.retry_job(id, Utc::now()).await?;
        if changed {
            self.wake.notify_one();
        }
        Ok(changed)
    }

    pub(crate) fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }
}

/// The kind that removes finished jobs older than `jobs.keep`.
pub const PRUNE: &str = "jobs.prune";

/// Removes done, dead and cancelled jobs last touched more than `keep` ago
/// (`jobs.prune`, hourly).
pub struct Prune {
    pub archive: Archive,
    pub keep: Duration,
}

#[async_trait]
impl JobHandler for Prune {
    fn kind(&self) -> &'static str {
        PRUNE
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let keep = chrono::Duration::from_std(self.keep)
            .map_err(|_| JobError::permanent("jobs.keep is too long"))?;
        let before: DateTime<Utc> = Utc::now() - keep;
        let removed = self.archive.prune_jobs(before).await?;
        if removed > 0 {
            tracing::info!(removed, "finished jobs older than jobs.keep removed");
        }
        Ok(())
    }
}

/// The hourly prune (at a minute past, in UTC).
pub fn prune_schedule() -> Schedule {
    Schedule::parse(PRUNE, "0 1 * * * *", chrono_tz::UTC).expect("a valid built-in schedule")
}
