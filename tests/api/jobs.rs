//! `GET /api/jobs` (PROTOCOL §12): the durable jobs, to the admin only.

use chrono::Utc;
use leadchat::archive::{Archive, JobState, NewJob};
use serde_json::json;

use crate::support::app::*;

const TOKEN: &str = "jobs-admin-token-0123";

#[actix_web::test]
async fn the_admin_lists_jobs_by_state_and_kind() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.admin_token = Some(TOKEN.into());
    let db = settings.database_url.expose().to_owned();
    let app = settings.spawn().await;
    let archive = Archive::connect(&db).await.expect("archive");
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
    let hook = archive
        .enqueue(&new("webhook", "hook:1"), now)
        .await
        .expect("enqueue")
        .id();
    let claimed = archive
        .claim_jobs(&["webhook"], now, 1, std::time::Duration::from_secs(60))
        .await
        .expect("claim");
    archive
        .fail_job(claimed[0].claim(), "HTTP 410", None, now)
        .await
        .expect("fail");

    let all = app.admin_json("/api/jobs", TOKEN).await;
    let ids: Vec<i64> = all["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
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
