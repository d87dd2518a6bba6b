//! `GET /api/jobs` (PROTOCOL §12): the durable jobs, to the admin only.

use chrono::Utc;
use leadchat::archive::{Archive, JobState, NewJob};
use serde_json::json;

use crate::support::app::*;

const TOKEN: &str = "jobs-admin-token-0123";

/// A node with the admin API on, and its archive opened beside it.
async fn node_and_archive() -> (TestApp, Archive) {
    let mut settings = test_settings(StoreKind::Memory);
    settings.admin_token = Some(TOKEN.into());
    let db = settings.database_url.expose().to_owned();
    let app = settings.spawn().await;
    let archive = Archive::connect(&db).await.expect("archive");
    (app, archive)
}

#[actix_web::test]
async fn the_admin_lists_jobs_by_state_and_kind() {
    let (app, archive) = node_and_archive().await;
    let now = Utc::now();
    let new = |kind: &str, key: &str| NewJob {
        kind: kind.into(),
        payload: json!({"secret": "not shown"}),
        due_at: now,
        max_attempts: 3,
        dedupe_key: Some(key.into()),
        subject: Some("01JSESSION".into()),
    };
    let mail = archive
        .enqueue(&new("report.mail", "mail:1"), now)
        .await
        .expect("enqueue")
        .id();
    let hook = dead_job(&archive, &new("webhook", "hook:1"), "HTTP 410").await;

    let all = app.admin_json("/api/jobs", TOKEN).await;
    let ids: Vec<i64> = all["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        // The node's own hourly prune is listed too.
        .filter(|j| j["kind"] != "jobs.prune")
        .map(|j| j["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [hook, mail], "newest first");
    let job = &all["jobs"][0];
    let mut keys: Vec<&str> = job
        .as_object()
        .expect("JOB")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attempts",
            "created_at",
            "dedupe_key",
            "due_at",
            "id",
            "kind",
            "last_error",
            "state",
            "subject"
        ]
    );
    assert_eq!(job["state"], JobState::Dead.as_str());
    assert_eq!(job["last_error"], "HTTP 410");
    assert_eq!(job["subject"], "01JSESSION");

    let pending = app
        .admin_json("/api/jobs?state=pending&kind=report.mail", TOKEN)
        .await;
    assert_eq!(pending["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(pending["jobs"][0]["id"], mail);
    let none = app.admin_json("/api/jobs?kind=followup", TOKEN).await;
    assert_eq!(none["jobs"], json!([]));

    // The gauges, read when /metrics is scraped.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        r#"leadchat_jobs{kind="webhook",state="dead"} 1"#,
        r#"leadchat_jobs{kind="webhook",state="pending"} 0"#,
        r#"leadchat_jobs{kind="report.mail",state="pending"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing");
    }

    let bad = app
        .http
        .get(app.url("/api/jobs?state=stuck"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status().as_u16(), 400);
    let anonymous = app
        .http
        .get(app.url("/api/jobs"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
}

/// The node prunes finished jobs through a job of its own: the latest
/// hourly slot is caught up at start, run once, and removes what is older
/// than `jobs.keep`, leaving younger and unfinished jobs alone.
#[actix_web::test]
async fn finished_jobs_older_than_jobs_keep_are_pruned_by_the_hourly_prune_job() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.admin_token = Some(TOKEN.into());
    settings.jobs.keep = leadchat::settings::HumanDuration(std::time::Duration::from_secs(3600));
    let db = settings.database_url.expose().to_owned();
    let archive = Archive::connect(&db).await.expect("archive");
    let long_ago = Utc::now() - chrono::Duration::hours(3);
    let old = |key: &str| NewJob {
        kind: "test.old".into(),
        payload: json!({}),
        due_at: long_ago,
        max_attempts: 1,
        dedupe_key: Some(key.into()),
        subject: None,
    };
    let finished = archive
        .enqueue(&old("old:1"), long_ago)
        .await
        .expect("enqueue")
        .id();
    let claimed = archive
        .claim_jobs(
            &["test.old"],
            long_ago,
            1,
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("claim");
    archive
        .complete_job(claimed[0].claim(), long_ago)
        .await
        .expect("done");
    let unfinished = archive
        .enqueue(&old("old:2"), long_ago)
        .await
        .expect("enqueue")
        .id();

    let app = settings.spawn().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let prune = loop {
        let listed = app.admin_json("/api/jobs?kind=jobs.prune", TOKEN).await;
        if listed["jobs"][0]["state"] == "done" {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(prune["jobs"].as_array().map(Vec::len), Some(1), "{prune}");
    let key = prune["jobs"][0]["dedupe_key"].as_str().expect("a slot key");
    assert!(key.starts_with("jobs.prune@"), "{key}");
    assert!(
        archive.job(finished).await.expect("read").is_none(),
        "pruned"
    );
    assert!(
        archive.job(unfinished).await.expect("read").is_some(),
        "a pending job is never pruned"
    );
    app.stop().await;
}

/// `POST /api/jobs/{id}/retry` and `…/cancel`: a pending job is cancelled,
/// a cancelled or dead one comes back (and a kind the node runs is run at
/// once); a done, running or unknown one is refused with a clear answer.
#[actix_web::test]
async fn the_admin_cancels_and_retries_jobs() {
    let (app, archive) = node_and_archive().await;
    let now = Utc::now();
    let new = |kind: &str, key: &str, due_at| NewJob {
        kind: kind.into(),
        payload: json!({}),
        due_at,
        max_attempts: 1,
        dedupe_key: Some(key.into()),
        subject: None,
    };
    let later = now + chrono::Duration::hours(1);
    // A prune job due in an hour: the node has a handler for its kind.
    let prune = archive
        .enqueue(&new("jobs.prune", "prune:later", later), now)
        .await
        .expect("enqueue")
        .id();
    // A job of a kind no node here runs, dead after its one attempt.
    let dead = dead_job(&archive, &new("test.nobody", "nobody:1", now), "HTTP 400").await;
    let post = |path: String| {
        let req = app.http.post(app.url(&path)).bearer_auth(TOKEN);
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.expect("JSON"))
        }
    };

    let (status, body) = post(format!("/api/jobs/{prune}/cancel")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["id"].as_i64(), &body["state"]),
        (Some(prune), &json!("cancelled"))
    );
    let (status, body) = post(format!("/api/jobs/{prune}/cancel")).await;
    assert_eq!(status, 409, "cancelled once: {body}");
    assert_eq!(body["error"], "conflict");

    // Retried: due now, and this node's runner takes it at once.
    let (status, body) = post(format!("/api/jobs/{prune}/retry")).await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let job = archive.job(prune).await.expect("read").expect("job");
        if job.state == JobState::Done {
            assert_eq!(job.attempts, 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retried and run: {job:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, body) = post(format!("/api/jobs/{prune}/retry")).await;
    assert_eq!(status, 409, "a done job is not retried: {body}");

    let (status, body) = post(format!("/api/jobs/{dead}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "pending");
    assert_eq!(
        body["last_error"], "HTTP 400",
        "the last error stays until the next attempt"
    );

    let (status, body) = post("/api/jobs/999999/retry".into()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found");
    let anonymous = app
        .http
        .post(app.url(&format!("/api/jobs/{dead}/cancel")))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    app.stop().await;
}

/// Enqueues `job` (due now, of a kind this node does not run), claims it
/// and fails it for good with `error`; its id.
async fn dead_job(archive: &Archive, job: &NewJob, error: &str) -> i64 {
    let now = Utc::now();
    let id = archive.enqueue(job, now).await.expect("enqueue").id();
    let claimed = archive
        .claim_jobs(
            &[job.kind.as_str()],
            now,
            1,
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("claim");
    assert_eq!(claimed.first().map(|j| j.id), Some(id));
    archive
        .fail_job(claimed[0].claim(), error, None, now)
        .await
        .expect("fail");
    id
}
