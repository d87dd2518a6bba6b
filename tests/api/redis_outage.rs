//! Redis goes away mid-chat: the node keeps answering from memory, holds
//! its writes (bounded), says not-ready, and writes everything back in order
//! when Redis returns. With AOF (`appendfsync always`) what Redis
//! acknowledged survives a kill -9 of Redis.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::app::*;
use crate::support::redis_server::RedisServer;

async fn ready(app: &TestApp) -> (u16, String) {
    let res = app.http.get(app.url("/ready")).send().await.expect("ready");
    (res.status().as_u16(), res.text().await.expect("body"))
}

async fn wait_ready(app: &TestApp, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (status, body) = ready(app).await;
        if status == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ready again within {wait:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The seqs of `session:{ID}:log` as Redis holds them.
async fn logged_seqs(url: &str, key: &str) -> Vec<u64> {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let lines: Vec<String> = conn.lrange(key, 0, -1).await.expect("lrange");
    lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["seq"]
                .as_u64()
                .expect("seq")
        })
        .collect()
}

#[actix_web::test]
async fn chats_go_on_while_redis_is_down_and_every_write_reaches_it_afterwards() {
    let redis_dir = tempfile::tempdir().expect("temp dir");
    let mut redis = RedisServer::start_aof(redis_dir.path());
    let mut settings = test_settings(StoreKind::Redis);
    settings.redis_url = Some(redis.url().into());
    settings.redis_write_buffer = 3;
    settings.admin_token = Some("outage-admin-token-123".into());
    let log_key = |id: &str| format!("{}session:{{{id}}}:log", settings.redis_prefix);
    let app = spawn_app_with(settings.clone()).await;

    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.send(json!({"type":"contact","name":"Asha","email":"asha@firm.example"}))
        .await;
    assert_eq!(ws.recv().await["type"], "contact_ok");
    ws.message("what does the audit cost?", "m1").await;

    redis.kill();
    // Answered from memory, acknowledged, held.
    for (n, text) in ["m2", "m3", "m4"].iter().zip(["a", "b", "c"]) {
        let (ack, reply) = ws.message(&format!("question {text}"), n).await;
        assert_eq!(ack["client_msg_id"], *n);
        assert!(reply["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "not ready while writes are held: {body}");
    // The buffer is bounded: the fourth held write is refused, to be resent.
    ws.send(json!({"type":"message","text":"question d","client_msg_id":"m5"}))
        .await;
    let refused = ws.recv().await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{refused}"
    );
    assert_eq!(refused["client_msg_id"], "m5");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("outage-admin-token-123")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    // (A process-wide gauge: other tests share it, so only its presence.)
    assert!(
        metrics.contains("leadchat_store_buffered_writes"),
        "{metrics}"
    );

    redis.restart();
    wait_ready(&app, Duration::from_secs(20)).await;
    assert_eq!(
        logged_seqs(&redis.url(), &log_key(&id)).await,
        (1..=9).collect::<Vec<_>>(),
        "the greeting and every acknowledged line reached Redis, in order"
    );
    let (ack, _) = ws.message("question d", "m5").await;
    assert_eq!(ack["seq"], 10);

    // AOF with appendfsync always: a kill -9 of Redis loses nothing it took.
    redis.kill();
    redis.restart();
    assert_eq!(
        logged_seqs(&redis.url(), &log_key(&id)).await,
        (1..=11).collect::<Vec<_>>()
    );
    wait_ready(&app, Duration::from_secs(20)).await;
    ws.send(json!({"type":"end"})).await;
    assert_eq!(ws.recv().await["type"], "ended");
    assert!(eventually(Duration::from_secs(5), || app.finalized.count() == 1).await);
    let report = app.finalized.0.lock().expect("lock")[0].clone();
    let seqs: Vec<u64> = report.transcript.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_session_is_not_finalized_before_its_held_writes_are_stored() {
    let redis_dir = tempfile::tempdir().expect("temp dir");
    let mut redis = RedisServer::start_aof(redis_dir.path());
    let mut settings = test_settings(StoreKind::Redis);
    settings.redis_url = Some(redis.url().into());
    settings.inactivity_timeout = leadchat::settings::HumanDuration(Duration::from_secs(1));
    let app = spawn_app_with(settings).await;

    let (mut ws, _) = app.connect(None).await;
    ws.send(json!({"type":"contact","name":"Ravi","email":"ravi@firm.example"}))
        .await;
    assert_eq!(ws.recv().await["type"], "contact_ok");
    redis.kill();
    ws.message("held while Redis is down", "m1").await;
    // The deadline passes with Redis away: the guard cannot be taken, and
    // must not be taken ahead of the held write once Redis is back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.finalized.count(), 0);
    redis.restart();
    assert!(
        eventually(Duration::from_secs(20), || app.finalized.count() == 1).await,
        "finalized once Redis is back"
    );
    let report = app.finalized.0.lock().expect("lock")[0].clone();
    assert_eq!(report.transcript.len(), 3, "greeting, question, answer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.finalized.count(), 1, "and only once");
}
