//! This node's job runner: claims due jobs of the kinds it has handlers for,
//! at most `concurrency` at a time, and runs each as a task of its own — on
//! a thread and runtime of its own at nice 10, so however many jobs are due
//! the chats keep their cores (README: the chat p99 while jobs run).
//!
//! A running job's lease is renewed every third of the lease, so a long
//! attempt keeps its claim while a dead node's claims run out and are taken
//! by another node. A claim that was lost anyway (the database was
//! unreachable past the lease) is fenced: the late outcome is not recorded
//! (`archive::jobs`, `Claim`). A handler that panics counts as a failed
//! attempt. The runner stops claiming when the node stops; `drain` waits
//! for the attempts in flight.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use tokio::sync::{Notify, Semaphore};

use super::{JobError, JobHandler, Jobs};
use crate::archive::{Archive, Job, JobState};
use crate::shutdown::Shutdown;
use crate::telemetry::names;

/// How the runner claims.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Attempts running at once on this node.
    pub concurrency: usize,
    /// How often the runner looks for due jobs when nothing woke it (jobs
    /// enqueued on this node wake it at once; other nodes' within this).
    pub poll_interval: Duration,
    /// How long a claim holds before another node may take the job.
    pub lease: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
        }
    }
}

/// The handlers by kind, and how to claim.
pub struct JobRunner {
    archive: Archive,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    options: RunnerOptions,
    wake: Arc<Notify>,
    /// Fired by `RunningJobs::kill`: everything stops where it is.
    killed: Shutdown,
}

/// The running runner.
pub struct RunningJobs {
    permits: Arc<Semaphore>,
    concurrency: usize,
    killed: Shutdown,
}

impl JobRunner {
    pub fn new(jobs: &Jobs, options: RunnerOptions) -> Self {
        Self {
            archive: jobs.archive().clone(),
            handlers: HashMap::new(),
            options,
            wake: Arc::clone(jobs.wake()),
            killed: Shutdown::default(),
        }
    }

    /// Registers `handler` for its kind (a second one for a kind replaces
    /// the first).
    pub fn register(mut self, handler: impl JobHandler) -> Self {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    /// The kinds this runner claims.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// Starts claiming on a thread of its own at a lower CPU priority
    /// (nice 10), so jobs never take a core from the chats while they need
    /// it; stops claiming when `shutdown` fires, and the thread ends once
    /// the attempts in flight are over (or at `kill`, or when the
    /// `RunningJobs` is dropped).
    pub fn start(self, shutdown: Shutdown) -> RunningJobs {
        let concurrency = self.options.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let killed = self.killed.clone();
        let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
        let run_permits = Arc::clone(&permits);
        let spawned = std::thread::Builder::new()
            .name("leadchat-jobs".into())
            .spawn(move || {
                lower_priority();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot start the job runner's runtime; no jobs run on this node");
                        return;
                    }
                };
                let killed = self.killed.clone();
                runtime.block_on(async move {
                    self.run(Arc::clone(&run_permits), shutdown).await;
                    // The attempts in flight finish unless the node is
                    // going away at once.
                    tokio::select! {
                        _ = run_permits.acquire_many(all) => {}
                        () = killed.wait() => {}
                    }
                });
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the job runner's thread; no jobs run on this node");
        }
        RunningJobs {
            permits,
            concurrency,
            killed,
        }
    }

    async fn run(self, permits: Arc<Semaphore>, shutdown: Shutdown) {
        if self.handlers.is_empty() {
            return;
        }
        let kinds = self.kinds();
        let runner = Arc::new(self);
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        let killed = runner.killed.wait();
        tokio::pin!(killed);
        loop {
            if shutdown.stopping() || runner.killed.stopping() {
                return;
            }
            let free = permits.available_permits();
            let mut full = false;
            if free > 0 {
                match runner
                    .archive
                    .claim_jobs(&kinds, Utc::now(), free as i64, runner.options.lease)
                    .await
                {
                    Ok(jobs) => {
                        full = jobs.len() == free;
                        for job in jobs {
                            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                                break;
                            };
                            let runner = Arc::clone(&runner);
                            tokio::spawn(async move {
                                runner.attempt(job).await;
                                drop(permit);
                                // Room again: a saturated loop claims more.
                                runner.wake.notify_one();
                            });
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot claim jobs"),
                }
            }
            if full {
                // There may be more due already.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = runner.wake.notified() => {}
                () = tokio::time::sleep(runner.options.poll_interval) => {}
                () = &mut stopping => return,
                () = &mut killed => return,
            }
        }
    }

    /// One attempt of `job`: run it, renewing its lease, and record how it
    /// went.
    async fn attempt(&self, job: Job) {
        let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
            return;
        };
        let claim = job.claim();
        let started = Instant::now();
        let run = AssertUnwindSafe(handler.run(&job)).catch_unwind();
        tokio::pin!(run);
        let renew_every = self.options.lease / 3;
        let killed = self.killed.wait();
        tokio::pin!(killed);
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                // Gone as with the process: nothing is recorded.
                () = &mut killed => return,
                () = tokio::time::sleep(renew_every) => {
                    let now = Utc::now();
                    let until = now + chrono::Duration::from_std(self.options.lease).unwrap_or_default();
                    match self.archive.renew_job(claim, until, now).await {
                        Ok(true) => {}
                        Ok(false) => {
                            // Cancelled, or claimed again after our lease ran
                            // out: this attempt's outcome would not count.
                            tracing::warn!(job_id = job.id, kind = %job.kind, "a running job's claim was lost; its attempt is abandoned");
                            count(&job.kind, "lost", started);
                            return;
                        }
                        Err(err) => tracing::warn!(job_id = job.id, error = %err, "cannot renew a running job's lease"),
                    }
                }
            }
        };
        let outcome =
            outcome.unwrap_or_else(|_| Err(JobError::retry("the job's handler panicked")));
        let now = Utc::now();
        let recorded = match outcome {
            Ok(()) => self
                .archive
                .complete_job(claim, now)
                .await
                .map(|ours| ours.then_some(JobState::Done)),
            Err(err) => {
                let retry_at = match &err {
                    JobError::Retry { after, .. } => {
                        let attempt = u32::try_from(job.attempts).unwrap_or(u32::MAX);
                        let wait = after.unwrap_or_else(|| handler.retry_after(attempt));
                        Some(now + chrono::Duration::from_std(wait).unwrap_or_default())
                    }
                    JobError::Permanent(_) => None,
                };
                let message = err.to_string();
                let state = self.archive.fail_job(claim, &message, retry_at, now).await;
                if let Ok(Some(state)) = &state {
                    if *state == JobState::Dead {
                        tracing::warn!(job_id = job.id, kind = %job.kind, attempts = job.attempts, error = %message, "job is dead");
                    } else {
                        tracing::info!(job_id = job.id, kind = %job.kind, attempt = job.attempts, error = %message, "job attempt failed; retried later");
                    }
                }
                state
            }
        };
        let outcome = match recorded {
            Ok(Some(JobState::Done)) => "done",
            Ok(Some(JobState::Dead)) => "dead",
            Ok(Some(_)) => "retry",
            Ok(None) => "lost",
            Err(err) => {
                // The lease runs out and the job is run again: at least once.
                tracing::warn!(job_id = job.id, error = %err, "cannot record a job's outcome");
                "lost"
            }
        };
        count(&job.kind, outcome, started);
    }
}

/// How much lower the runner's thread runs than the chats.
const RUNNER_NICE: i32 = 10;

/// nice 10 on this thread only (Linux applies `setpriority` to a thread id
/// alone).
#[cfg(target_os = "linux")]
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(tid), RUNNER_NICE) {
        tracing::warn!(error = %err, "cannot lower the job runner's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    let _ = RUNNER_NICE;
}

fn count(kind: &str, outcome: &'static str, started: Instant) {
    metrics::counter!(names::JOB_RUNS, "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::JOB_DURATION, "kind" => kind.to_owned())
        .record(started.elapsed().as_secs_f64());
}

impl RunningJobs {
    /// Waits until the attempts in flight are over (the runner claims
    /// nothing new once the node stops); false when `grace` ran out first —
    /// those jobs' leases run out and another node, or the next start, runs
    /// them again.
    pub async fn drain(&self, grace: Duration) -> bool {
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.permits.acquire_many(all))
            .await
            .is_ok()
    }

    /// Attempts running now.
    pub fn in_flight(&self) -> usize {
        self.concurrency - self.permits.available_permits()
    }

    /// Stops everything where it is, as killing the process would: no new
    /// claims, attempts dropped mid-way, nothing recorded; their leases run
    /// out and another node runs them again (tests; a node stops through its
    /// shutdown).
    pub fn kill(&self) {
        self.killed.trigger();
    }
}

impl Drop for RunningJobs {
    /// Nobody can drain the runner any more: its thread ends.
    fn drop(&mut self) {
        self.killed.trigger();
    }
}
