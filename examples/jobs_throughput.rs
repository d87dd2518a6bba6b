//! Jobs claimed and completed per second on the archive's `jobs` table
//! (issue 16: ≥ 1,000/s on SQLite, ≥ 2,000/s on PostgreSQL).
//!
//!     cargo run --release --example jobs_throughput -- [JOBS] [WORKERS] [BATCH]
//!
//! Enqueues JOBS jobs (each with a dedupe key, as a report mail has), then
//! WORKERS tasks claim BATCH at a time with a lease and complete each one
//! with its own statement, as a runner does. SQLite in a temporary file;
//! PostgreSQL in a schema of its own on 127.0.0.1:5432, dropped afterwards.

use std::time::{Duration, Instant};

use chrono::Utc;
use leadchat::archive::{Archive, NewJob};

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let jobs = args.next().unwrap_or(20_000);
    let workers = args.next().unwrap_or(4);
    let batch = args.next().unwrap_or(50);

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/archive.db", dir.path().display());
    let archive = Archive::connect(&sqlite).await.expect("sqlite");
    run("SQLite", &archive, jobs, workers, batch).await;

    let schema = format!(
        "jobs_bench_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let pg = "postgres://postgres@127.0.0.1:5432/test";
    let archive = Archive::connect_with_schema(pg, &schema)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    run("PostgreSQL", &archive, jobs, workers, batch).await;
    let pool = sqlx::PgPool::connect(pg).await.expect("pg");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .expect("drop schema");
}

async fn run(name: &str, archive: &Archive, jobs: usize, workers: usize, batch: usize) {
    let now = Utc::now();
    let started = Instant::now();
    for i in 0..jobs {
        archive
            .enqueue(
                &NewJob {
                    kind: "bench".into(),
                    payload: serde_json::json!({"session_id": format!("s-{i}")}),
                    due_at: now,
                    max_attempts: 3,
                    dedupe_key: Some(format!("bench:{i}")),
                    subject: None,
                },
                now,
            )
            .await
            .expect("enqueue");
    }
    let enqueued = started.elapsed();
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let archive = archive.clone();
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let claimed = archive
                        .claim_jobs(
                            &["bench"],
                            Utc::now(),
                            batch as i64,
                            Duration::from_secs(60),
                        )
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return done;
                    }
                    for job in claimed {
                        assert!(
                            archive
                                .complete_job(job.claim(), Utc::now())
                                .await
                                .expect("complete")
                        );
                        done += 1;
                    }
                }
            })
        })
        .collect();
    let mut done = 0;
    for t in tasks {
        done += t.await.expect("worker");
    }
    let took = started.elapsed();
    assert_eq!(done, jobs, "every job ran once");
    println!(
        "{name}: {jobs} jobs enqueued in {:.2} s ({:.0}/s); claimed and completed by {workers} workers, {batch} a claim, in {:.2} s: {:.0} jobs/s",
        enqueued.as_secs_f64(),
        jobs as f64 / enqueued.as_secs_f64(),
        took.as_secs_f64(),
        jobs as f64 / took.as_secs_f64()
    );
}
