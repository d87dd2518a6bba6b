//! `POST /end_session` and the race between finalize triggers.

use std::time::Duration;

use serde_json::json;

use crate::support::app::*;

#[actix_web::test]
async fn end_session_by_json_body_finalizes_and_tells_live_sockets() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        ws.message("need a demo", "x1").await;
        let (status, body) = app.end_session(json!({"session_id": id})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "success");
        assert_eq!(body["message"], "PDF generated");
        assert_eq!(body["session_id"], id.as_str());
        assert_eq!(body["report"], format!("session_{id}.pdf"));
        assert_eq!(ws.recv().await, json!({"type":"ended","reason":"visitor"}));
        let (status, body) = app.end_session(json!({"session_id": id})).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("already_finalized"))
        );
        assert!(eventually(Duration::from_secs(2), || app.finalized.count() == 1).await);
    }
}

#[actix_web::test]
async fn end_session_reads_the_cookie_when_there_is_no_body() {
    let app = spawn_app(StoreKind::Redis).await;
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.message("hello", "k1").await;
    let res = app
        .http
        .post(app.url("/end_session"))
        .header("Cookie", format!("session_id={id}"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(ws.recv().await["reason"], "visitor");
}

#[actix_web::test]
async fn end_session_answers_unknown_and_missing_ids_with_json_errors() {
    let app = spawn_app(StoreKind::Memory).await;
    let (status, body) = app
        .end_session(json!({"session_id": "01JD0000000000000000000000"}))
        .await;
    assert_eq!(
        (status, body["status"].as_str(), body["error"].as_str()),
        (404, Some("error"), Some("not_found"))
    );
    let (status, body) = app.end_session(json!({})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let res = app
        .http
        .post(app.url("/end_session"))
        .body("{oops")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["status"], "error");
}

#[actix_web::test]
async fn finalizes_once_when_three_triggers_race() {
    for kind in BOTH {
        let mut settings = test_settings(kind);
        settings.inactivity_timeout = leadchat::settings::HumanDuration(Duration::from_millis(800));
        let app = spawn_app_with(settings).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let (mut ws, session) = app.connect(None).await;
            let id = session["session_id"].as_str().expect("id").to_owned();
            ws.message("quote please", &format!("r{i}")).await;
            // Wait until just before the deadline, then fire the end frame and
            // the REST call together, racing the inactivity timer.
            tokio::time::sleep(Duration::from_millis(780)).await;
            ws.send(json!({"type":"end"})).await;
            let (status, body) = app.end_session(json!({"session_id": id})).await;
            assert_eq!(status, 200, "{body}");
            assert!(matches!(
                body["status"].as_str(),
                Some("success" | "already_finalized")
            ));
            let ended = ws.recv().await;
            assert_eq!(ended["type"], "ended");
            assert!(
                ws.try_recv(Duration::from_millis(100)).await.is_none(),
                "exactly one ended frame"
            );
            ids.push(id);
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mut got = app.finalized.ids();
        got.sort();
        ids.sort();
        assert_eq!(got, ids, "each session finalized exactly once");
    }
}

const METRICS_TOKEN: &str = "metrics-admin-token-1234";

#[actix_web::test]
async fn health_ready_and_metrics_answer() {
    for kind in BOTH {
        let mut settings = test_settings(kind);
        settings.admin_token = Some(METRICS_TOKEN.into());
        let app = spawn_app_with(settings).await;
        let res = app
            .http
            .get(app.url("/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(res.status().as_u16(), 200);
        let res = app.http.get(app.url("/ready")).send().await.expect("ready");
        assert_eq!(res.status().as_u16(), 200);
        let (mut ws, _) = app.connect(None).await;
        ws.message("hi", "m").await;
        let text = app
            .http
            .get(app.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        for name in [
            "leadchat_live_sessions",
            "leadchat_connections",
            "leadchat_messages_total",
            "leadchat_store_latency_seconds",
        ] {
            if kind == StoreKind::Memory && name == "leadchat_store_latency_seconds" {
                continue;
            }
            assert!(text.contains(name), "{name} missing from /metrics");
        }
        let res = app.http.get(app.url("/nope")).send().await.expect("404");
        assert_eq!(res.status().as_u16(), 404);
    }
}

#[actix_web::test]
async fn a_shutdown_does_not_finalize_live_sessions() {
    let app = spawn_app(StoreKind::Redis).await;
    let (mut ws, _) = app.connect(None).await;
    ws.message("hello", "s1").await;
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.finalized.count(), 0);
}
