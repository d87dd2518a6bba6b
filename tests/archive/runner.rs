//! The job runner and the recurring schedules against a real archive, on
//! both back ends: handlers run once, failures are retried until `dead`, a
//! panic is a failed attempt, a long job keeps its claim, two nodes share
//! the work without running a job twice, and a recurring slot is enqueued
//! once however many nodes reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use leadchat::archive::{Archive, Job, JobState, NewJob};
use leadchat::jobs::runner::RunningJobs;
use leadchat::jobs::{JobError, JobHandler, JobRunner, Jobs, RunnerOptions, Schedule};
use leadchat::shutdown::Shutdown;

use crate::on_both_backends;

on_both_backends!(
    a_job_runs_once_and_is_done,
    a_failing_job_is_retried_until_its_last_attempt_then_dead,
    a_permanent_failure_is_dead_after_one_attempt,
    a_handler_that_panics_fails_that_attempt_only,
    a_job_longer_than_its_lease_keeps_its_claim,
    two_nodes_share_the_jobs_and_run_each_once,
    a_stopping_node_claims_nothing_and_drains_what_runs,
    a_recurring_slot_is_enqueued_once_across_nodes,
    a_missed_slot_is_caught_up_once_at_start,
    a_node_killed_mid_job_leaves_it_to_another_after_its_lease,
);

/// What a test handler does on each attempt, and what it saw.
#[derive(Clone, Default)]
struct Script {
    /// Attempts per job id.
    runs: Arc<Mutex<HashMap<i64, u32>>>,
    /// Attempts running now, and the most at once.
    running: Arc<Mutex<(u32, u32)>>,
}

impl Script {
    fn attempts(&self, id: i64) -> u32 {
        self.runs
            .lock()
            .expect("lock")
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> u32 {
        self.runs.lock().expect("lock").values().sum()
    }
}

/// `outcome(attempt)` decides each attempt; `hold` is how long it runs.
struct TestHandler {
    kind: &'static str,
    script: Script,
    hold: Duration,
    outcome: fn(u32) -> Result<(), JobError>,
}

#[async_trait]
impl JobHandler for TestHandler {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let attempt = {
            let mut runs = self.script.runs.lock().expect("lock");
            let n = runs.entry(job.id).or_default();
            *n += 1;
            *n
        };
        {
            let mut running = self.script.running.lock().expect("lock");
            running.0 += 1;
            running.1 = running.1.max(running.0);
        }
        tokio::time::sleep(self.hold).await;
        self.script.running.lock().expect("lock").0 -= 1;
        (self.outcome)(attempt)
    }

    fn retry_after(&self, _attempt: u32) -> Duration {
        Duration::from_millis(20)
    }
}

fn ok(_: u32) -> Result<(), JobError> {
    Ok(())
}

fn options() -> RunnerOptions {
    RunnerOptions {
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
        lease: Duration::from_secs(30),
    }
}

fn node(
    a: &Archive,
    options: RunnerOptions,
    handler: TestHandler,
) -> (Jobs, RunningJobs, Shutdown) {
    let jobs = Jobs::new(a.clone());
    let shutdown = Shutdown::default();
    let running = JobRunner::new(&jobs, options)
        .register(handler)
        .start(shutdown.clone());
    (jobs, running, shutdown)
}

fn job(kind: &str, max_attempts: i32) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload: serde_json::json!({"n": 1}),
        due_at: Utc::now(),
        max_attempts,
        dedupe_key: None,
        subject: None,
    }
}

/// Waits (up to 20 s) until job `id` is in `state`.
async fn settled(a: &Archive, id: i64, state: JobState) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = a.job(id).await.expect("read").expect("the job");
        if job.state == state {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} is {:?}, not {state:?}: {job:?}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_job_runs_once_and_is_done(a: &Archive) {
    let script = Script::default();
    let (jobs, _running, _stop) = node(
        a,
        options(),
        TestHandler {
            kind: "test.ok",
            script: script.clone(),
            hold: Duration::ZERO,
            outcome: ok,
        },
    );
    let other = jobs
        .enqueue(&job("test.other", 3))
        .await
        .expect("enqueue")
        .id();
    let id = jobs
        .enqueue(&job("test.ok", 3))
        .await
        .expect("enqueue")
        .id();
    let done = settled(a, id, JobState::Done).await;
    assert_eq!(done.attempts, 1);
    assert_eq!(done.last_error, None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(script.attempts(id), 1, "run once");
    let untouched = a.job(other).await.expect("read").expect("the job");
    assert_eq!(
        (untouched.state, untouched.attempts),
        (JobState::Pending, 0),
        "a kind without a handler here is left to the nodes that have one"
    );
}

async fn a_failing_job_is_retried_until_its_last_attempt_then_dead(a: &Archive) {
    let script = Script::default();
    let (jobs, _running, _stop) = node(
        a,
        options(),
        TestHandler {
            kind: "test.flaky",
            script: script.clone(),
            hold: Duration::ZERO,
            outcome: |attempt| {
                Err(JobError::retry(format!(
                    "receiver down (attempt {attempt})"
                )))
            },
        },
    );
    let id = jobs
        .enqueue(&job("test.flaky", 3))
        .await
        .expect("enqueue")
        .id();
    let dead = settled(a, id, JobState::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("receiver down (attempt 3)")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(script.attempts(id), 3, "no attempt after the last");

    // A failure that says when to come back is not retried before then.
    let script = Script::default();
    let (jobs, _running, _stop) = node(
        a,
        options(),
        TestHandler {
            kind: "test.later",
            script: script.clone(),
            hold: Duration::ZERO,
            outcome: |_| {
                Err(JobError::Retry {
                    message: "429".into(),
                    after: Some(Duration::from_secs(3600)),
                })
            },
        },
    );
    let id = jobs
        .enqueue(&job("test.later", 3))
        .await
        .expect("enqueue")
        .id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        let job = a.job(id).await.expect("read").expect("job");
        if job.attempts == 1 && job.state == JobState::Pending {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed once: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wait = waiting.due_at - Utc::now();
    assert!(
        wait > chrono::Duration::minutes(59),
        "Retry-After honoured: due in {wait}"
    );
}

async fn a_permanent_failure_is_dead_after_one_attempt(a: &Archive) {
    let script = Script::default();
    let (jobs, _running, _stop) = node(
        a,
        options(),
        TestHandler {
            kind: "test.refused",
            script: script.clone(),
            hold: Duration::ZERO,
            outcome: |_| Err(JobError::permanent("the payload names no session")),
        },
    );
    let id = jobs
        .enqueue(&job("test.refused", 8))
        .await
        .expect("enqueue")
        .id();
    let dead = settled(a, id, JobState::Dead).await;
    assert_eq!(dead.attempts, 1);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("the payload names no session")
    );
}

async fn a_handler_that_panics_fails_that_attempt_only(a: &Archive) {
    let script = Script::default();
    let (jobs, running, _stop) = node(
        a,
        options(),
        TestHandler {
            kind: "test.panics",
            script: script.clone(),
            hold: Duration::ZERO,
            outcome: |attempt| {
                assert!(attempt > 1, "the first attempt panics");
                Ok(())
            },
        },
    );
    let id = jobs
        .enqueue(&job("test.panics", 3))
        .await
        .expect("enqueue")
        .id();
    let done = settled(a, id, JobState::Done).await;
    assert_eq!(done.attempts, 2);
    assert_eq!(script.attempts(id), 2);
    // The runner survived: it still runs jobs.
    let next = jobs
        .enqueue(&job("test.panics", 3))
        .await
        .expect("enqueue")
        .id();
    settled(a, next, JobState::Done).await;
    assert_eq!(running.in_flight(), 0);
}

async fn a_job_longer_than_its_lease_keeps_its_claim(a: &Archive) {
    let short = RunnerOptions {
        lease: Duration::from_millis(600),
        ..options()
    };
    let script = Script::default();
    let handler = |script: &Script| TestHandler {
        kind: "test.long",
        script: script.clone(),
        hold: Duration::from_secs(2),
        outcome: ok,
    };
    let (jobs, _one, _stop_one) = node(a, short.clone(), handler(&script));
    // A second node polls all along: it never takes the running job.
    let (_jobs, _two, _stop_two) = node(a, short, handler(&script));
    let id = jobs
        .enqueue(&job("test.long", 3))
        .await
        .expect("enqueue")
        .id();
    let done = settled(a, id, JobState::Done).await;
    assert_eq!(done.attempts, 1, "the lease was renewed: {done:?}");
    assert_eq!(script.attempts(id), 1);
}

async fn two_nodes_share_the_jobs_and_run_each_once(a: &Archive) {
    let script = Script::default();
    let handler = |script: &Script| TestHandler {
        kind: "test.shared",
        script: script.clone(),
        hold: Duration::from_millis(2),
        outcome: ok,
    };
    let (jobs, _one, _s1) = node(a, options(), handler(&script));
    let (_jobs, _two, _s2) = node(a, options(), handler(&script));
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(
            jobs.enqueue(&job("test.shared", 3))
                .await
                .expect("enqueue")
                .id(),
        );
    }
    for id in &ids {
        settled(a, *id, JobState::Done).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in &ids {
        assert_eq!(script.attempts(*id), 1, "job {id} ran once");
    }
    assert_eq!(script.total(), 200);
    let most = script.running.lock().expect("lock").1;
    assert!(most <= 8, "at most 4 per node at once: {most}");
}

async fn a_stopping_node_claims_nothing_and_drains_what_runs(a: &Archive) {
    let script = Script::default();
    let (jobs, running, stop) = node(
        a,
        options(),
        TestHandler {
            kind: "test.drain",
            script: script.clone(),
            hold: Duration::from_millis(500),
            outcome: ok,
        },
    );
    let first = jobs
        .enqueue(&job("test.drain", 3))
        .await
        .expect("enqueue")
        .id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while running.in_flight() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.trigger();
    let later = jobs
        .enqueue(&job("test.drain", 3))
        .await
        .expect("enqueue")
        .id();
    assert!(running.drain(Duration::from_secs(10)).await, "drained");
    assert_eq!(
        a.job(first).await.expect("read").expect("the job").state,
        JobState::Done
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = a.job(later).await.expect("read").expect("the job");
    assert_eq!(
        (left.state, left.attempts),
        (JobState::Pending, 0),
        "{left:?}"
    );
}

async fn a_recurring_slot_is_enqueued_once_across_nodes(a: &Archive) {
    let every_second = Schedule::parse("test.tick", "* * * * * *", chrono_tz::UTC).expect("valid");
    let mut stops = Vec::new();
    for _ in 0..3 {
        let stop = Shutdown::default();
        leadchat::jobs::schedule::start(
            Jobs::new(a.clone()),
            vec![every_second.clone()],
            stop.clone(),
        );
        stops.push(stop);
    }
    tokio::time::sleep(Duration::from_millis(3300)).await;
    for stop in &stops {
        stop.trigger();
    }
    let ticks = a
        .list_jobs(None, Some("test.tick"), 1000)
        .await
        .expect("list");
    let mut slots: Vec<_> = ticks
        .iter()
        .map(|j| j.dedupe_key.clone().expect("a slot key"))
        .collect();
    slots.sort();
    let n = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), n, "one job per slot: {slots:?}");
    // The slot just past (caught up at start) and three or four more.
    assert!((3..=5).contains(&n), "{n} slots: {slots:?}");
    for tick in &ticks {
        let key = tick.dedupe_key.as_deref().expect("a key");
        assert_eq!(
            key,
            format!(
                "test.tick@{}",
                tick.payload["slot"].as_str().expect("a slot")
            )
        );
    }
}

async fn a_missed_slot_is_caught_up_once_at_start(a: &Archive) {
    // Hourly at minute 0: the latest slot is at most an hour old.
    let hourly = Schedule::parse("test.hourly", "0 0 * * * *", chrono_tz::UTC).expect("valid");
    let mut never = Schedule::parse("test.stale", "0 0 0 1 1 *", chrono_tz::UTC).expect("valid");
    never.catch_up = Duration::from_secs(60);
    for _ in 0..2 {
        let stop = Shutdown::default();
        leadchat::jobs::schedule::start(
            Jobs::new(a.clone()),
            vec![hourly.clone(), never.clone()],
            stop.clone(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.trigger();
    }
    let caught = a
        .list_jobs(None, Some("test.hourly"), 10)
        .await
        .expect("list");
    assert_eq!(caught.len(), 1, "{caught:?}");
    let slot = hourly.latest_at(Utc::now()).expect("a slot");
    assert_eq!(caught[0].due_at, slot);
    let stale = a
        .list_jobs(None, Some("test.stale"), 10)
        .await
        .expect("list");
    assert!(
        stale.is_empty() || Utc::now() - stale[0].due_at < chrono::Duration::seconds(60),
        "a slot older than catch_up is not run: {stale:?}"
    );
}

async fn a_node_killed_mid_job_leaves_it_to_another_after_its_lease(a: &Archive) {
    let short = RunnerOptions {
        lease: Duration::from_millis(900),
        ..options()
    };
    let script = Script::default();
    let (jobs, dying, _s1) = node(
        a,
        short.clone(),
        TestHandler {
            kind: "test.killed",
            script: script.clone(),
            hold: Duration::from_secs(3600),
            outcome: ok,
        },
    );
    let id = jobs
        .enqueue(&job("test.killed", 3))
        .await
        .expect("enqueue")
        .id();
    settled(a, id, JobState::Running).await;
    dying.kill();
    let killed_at = tokio::time::Instant::now();
    let (_jobs, _survivor, _s2) = node(
        a,
        short,
        TestHandler {
            kind: "test.killed",
            script: script.clone(),
            hold: Duration::ZERO,
            outcome: ok,
        },
    );
    let done = settled(a, id, JobState::Done).await;
    assert_eq!(done.attempts, 2, "run again: {done:?}");
    assert_eq!(script.attempts(id), 2);
    assert!(
        killed_at.elapsed() >= Duration::from_millis(300),
        "not before the dead node's lease ran out"
    );
}
