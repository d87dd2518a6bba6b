//! The admin feed (PROTOCOL §4) and the live side of the admin API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::*;

const TOKEN: &str = "feed-token-0123456789";

async fn admin_app() -> TestApp {
    admin_app_on(StoreKind::Memory).await
}

/// One node on `kind`: the feed must behave the same with Redis (where it
/// also listens on the cluster channel) as without.
async fn admin_app_on(kind: StoreKind) -> TestApp {
    let mut settings = test_settings(kind);
    settings.admin_token = Some(TOKEN.into());
    spawn_full_app(settings).await
}

async fn admin(app: &TestApp) -> WsClient {
    WsClient::connect(&format!("ws://{}/admin/ws?token={TOKEN}", app.addr)).await
}

/// The next feed frame of `kind` (other frames are skipped).
async fn next_of(ws: &mut WsClient, kind: &str) -> Value {
    loop {
        let frame = ws.recv().await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[actix_web::test]
async fn the_feed_refuses_a_missing_or_wrong_token_before_the_upgrade() {
    let app = admin_app().await;
    for url in [
        format!("ws://{}/admin/ws", app.addr),
        format!("ws://{}/admin/ws?token=wrong", app.addr),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status().as_u16(), 401)
            }
            other => panic!("expected 401, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn admins_see_sessions_appear_change_priority_and_end_live() {
    for kind in BOTH {
        admins_see_sessions_appear_change_priority_and_end_live_on(kind).await;
    }
}

async fn admins_see_sessions_appear_change_priority_and_end_live_on(kind: StoreKind) {
    let app = admin_app_on(kind).await;
    let mut feed = admin(&app).await;
    let snapshot = feed.recv().await;
    assert_eq!(snapshot, json!({"type":"snapshot","sessions":[]}));

    let (mut visitor, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    let sent = Instant::now();
    visitor.message("Hi, what is your pricing?", "a1").await;
    let update = next_of(&mut feed, "session_updated").await;
    let seen_after = sent.elapsed();
    let s = &update["session"];
    assert_eq!(s["session_id"], id.as_str());
    assert_eq!(s["total_queries"], 1);
    assert_eq!(s["state"], "active");
    for field in [
        "name",
        "email",
        "phone",
        "organization",
        "lead_score",
        "priority",
        "engagement_score",
        "first_interaction",
        "last_interaction",
        "node",
        "signals",
    ] {
        assert!(s.get(field).is_some(), "SESSION lacks {field}");
    }
    let before = s["priority"].as_str().expect("priority").to_owned();
    assert!(seen_after < Duration::from_secs(2), "{seen_after:?}");

    visitor.send(json!({"type":"contact","name":"Anil Mehta","email":"anil@mehta-polymers.com","organization":"Mehta Polymers"})).await;
    assert_eq!(visitor.recv().await["type"], "contact_ok");
    visitor
        .message(
            "Can we book a demo next week? We want to buy before March.",
            "a2",
        )
        .await;
    let mut last = next_of(&mut feed, "session_updated").await;
    while last["session"]["total_queries"] != 2 {
        last = next_of(&mut feed, "session_updated").await;
    }
    assert_ne!(
        last["session"]["priority"],
        before.as_str(),
        "the priority climbed: {last}"
    );
    assert_eq!(last["session"]["name"], "Anil Mehta");

    // A second admin connecting now gets the session in its snapshot.
    let mut other = admin(&app).await;
    let snap = other.recv().await;
    assert_eq!(snap["sessions"][0]["session_id"], id.as_str());

    visitor.send(json!({"type":"end"})).await;
    let ended = next_of(&mut feed, "session_ended").await;
    assert_eq!(ended["session_id"], id.as_str());
    assert_eq!(ended["reason"], "visitor");
    assert_eq!(ended["report"], format!("session_{id}.pdf"));
    assert!(ended["priority"].is_string());
}

#[actix_web::test]
async fn the_snapshot_is_most_urgent_first() {
    for kind in BOTH {
        the_snapshot_is_most_urgent_first_on(kind).await;
    }
}

async fn the_snapshot_is_most_urgent_first_on(kind: StoreKind) {
    let app = admin_app_on(kind).await;
    let (mut cold, _) = app.connect(None).await;
    cold.message("hello", "c").await;
    let (mut hot, hot_session) = app.connect(None).await;
    hot.send(json!({"type":"contact","name":"Dana","email":"dana@bigcorp-industries.com","organization":"BigCorp"})).await;
    assert_eq!(hot.recv().await["type"], "contact_ok");
    hot.message(
        "We need a quote for 5000 units, budget approved, demo this week please",
        "h",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut feed = admin(&app).await;
    let snap = feed.recv().await;
    let sessions = snap["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["session_id"], hot_session["session_id"]);
}

#[actix_web::test]
async fn an_admin_watches_a_transcript_grow() {
    for kind in BOTH {
        an_admin_watches_a_transcript_grow_on(kind).await;
    }
}

async fn an_admin_watches_a_transcript_grow_on(kind: StoreKind) {
    let app = admin_app_on(kind).await;
    let (mut visitor, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    visitor.message("first question", "w1").await;
    let mut feed = admin(&app).await;
    feed.recv().await;
    feed.send(json!({"type":"watch","session_id": id})).await;
    let transcript = next_of(&mut feed, "transcript").await;
    assert_eq!(transcript["live"], true);
    assert_eq!(transcript["history"].as_array().map(Vec::len), Some(3));
    visitor.message("second question", "w2").await;
    let line = next_of(&mut feed, "message").await;
    assert_eq!(line["session_id"], id.as_str());
    assert_eq!(line["text"], "second question");
    assert_eq!(line["seq"], 4);
    let reply = next_of(&mut feed, "message").await;
    assert_eq!(reply["role"], "bot");
}

#[actix_web::test]
async fn a_stuck_admin_socket_does_not_slow_the_chats() {
    let app = admin_app().await;
    // An admin that never reads its socket.
    let _stuck = admin(&app).await;
    let mut visitors = Vec::new();
    for _ in 0..20 {
        visitors.push(app.connect(None).await.0);
    }
    let started = Instant::now();
    for round in 0..10 {
        for (i, v) in visitors.iter_mut().enumerate() {
            v.message(
                &format!(
                    "question {round} about pricing and a long text to fill the admin's buffers {}",
                    "x".repeat(400)
                ),
                &format!("{i}-{round}"),
            )
            .await;
        }
    }
    // 200 acknowledged round trips; a blocked feed would stall them for good.
    assert!(started.elapsed() < Duration::from_secs(60));
    let live: Value = app.admin_json("/api/sessions?state=live", TOKEN).await;
    assert_eq!(live["total"], 20);
}

#[actix_web::test]
async fn the_admin_api_lists_live_sessions_ends_one_and_counts_by_day() {
    let app = admin_app().await;
    let (mut visitor, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    visitor.message("do you do battery EPR?", "l1").await;
    let live: Value = app.admin_json("/api/sessions?state=live", TOKEN).await;
    assert_eq!(live["sessions"][0]["session_id"], id.as_str());
    let one: Value = app.admin_json(&format!("/api/sessions/{id}"), TOKEN).await;
    assert_eq!(one["transcript"].as_array().map(Vec::len), Some(3));

    let res = app
        .http
        .post(app.url(&format!("/api/sessions/{id}/end")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        visitor.recv().await,
        json!({"type":"ended","reason":"admin"})
    );

    let mut archived = false;
    for _ in 0..50 {
        let res = app
            .http
            .get(app.url(&format!("/api/sessions/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("req");
        let body: Value = res.json().await.expect("json");
        if body["state"] == "archived" {
            assert_eq!(body["end_reason"], "admin");
            archived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(archived, "the session moved to the archive");
    let stats: Value = app.admin_json("/api/stats/daily?days=14", TOKEN).await;
    let days = stats["days"].as_array().expect("days");
    assert_eq!(days.len(), 14);
    let today = &days[13];
    let total: i64 = ["low", "medium", "high", "critical"]
        .iter()
        .map(|p| today[p].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(total, 1, "{today}");
}

#[actix_web::test]
async fn an_admin_on_one_node_sees_the_sessions_of_another() {
    let mut a = test_settings(StoreKind::Redis);
    a.admin_token = Some(TOKEN.into());
    a.node_id = Some("node-a".into());
    let prefix = a.redis_prefix.clone();
    let node_a = spawn_full_app(a).await;
    let (mut early, early_session) = node_a.connect(None).await;
    early
        .message("a session from before node B started", "e")
        .await;

    // Node B joins later: its hello makes node A republish what it holds.
    let mut b = test_settings(StoreKind::Redis);
    b.admin_token = Some(TOKEN.into());
    b.node_id = Some("node-b".into());
    b.redis_prefix = prefix;
    let node_b = spawn_full_app(b).await;
    let early_id = early_session["session_id"].as_str().expect("id").to_owned();
    let mut known = false;
    for _ in 0..40 {
        let mut probe = admin(&node_b).await;
        let snap = probe.recv().await;
        if snap["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v["session_id"] == early_id.as_str()))
        {
            known = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(known, "node B's snapshot lists node A's earlier session");

    let mut feed = admin(&node_b).await;
    assert_eq!(feed.recv().await["type"], "snapshot");
    let (mut visitor, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    visitor.message("pricing for 300 tonnes please", "x").await;
    let mut seen = next_of(&mut feed, "session_updated").await;
    while seen["session"]["session_id"] != id.as_str() {
        seen = next_of(&mut feed, "session_updated").await;
    }
    assert_eq!(seen["session"]["node"], "node-a");

    visitor.send(json!({"type":"end"})).await;
    let ended = next_of(&mut feed, "session_ended").await;
    assert_eq!(ended["session_id"], id.as_str());
}

/// The `kind`s of the cluster channel's events from `node` within `wait`.
async fn channel_kinds_from(
    messages: &mut (impl futures_util::Stream<Item = redis::Msg> + Unpin),
    node: &str,
    wait: Duration,
) -> Vec<String> {
    use futures_util::StreamExt;
    let until = tokio::time::Instant::now() + wait;
    let mut kinds = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout_at(until, messages.next()).await {
        let payload: String = msg.get_payload().expect("text payload");
        let event: Value = serde_json::from_str(&payload).expect("json event");
        if event["node"] == node {
            kinds.push(event["kind"].as_str().unwrap_or_default().to_owned());
        }
    }
    kinds
}

#[actix_web::test]
async fn a_node_publishes_its_changes_only_while_an_admin_somewhere_watches() {
    let mut a = test_settings(StoreKind::Redis);
    a.admin_token = Some(TOKEN.into());
    a.node_id = Some("quiet-a".into());
    let prefix = a.redis_prefix.clone();
    let node_a = spawn_full_app(a).await;
    let client = redis::Client::open(REDIS_URL).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("subscribe");
    pubsub
        .subscribe(format!("{prefix}leadchat:feed"))
        .await
        .expect("subscribe");
    let mut channel = pubsub.into_on_message();

    let (mut visitor, _) = node_a.connect(None).await;
    visitor.message("pricing for 300 tonnes please", "1").await;
    visitor.message("and for batteries?", "2").await;
    let quiet = channel_kinds_from(&mut channel, "quiet-a", Duration::from_millis(400)).await;
    assert!(
        !quiet.iter().any(|k| k == "changed"),
        "nobody watches: nothing is published, got {quiet:?}"
    );

    // An admin on node B: node A's sessions reach B's first snapshot, and
    // A's changes are published from then on.
    let mut b = test_settings(StoreKind::Redis);
    b.admin_token = Some(TOKEN.into());
    b.node_id = Some("watching-b".into());
    b.redis_prefix = prefix;
    let node_b = spawn_full_app(b).await;
    let mut feed = admin(&node_b).await;
    let snapshot = feed.recv().await;
    assert_eq!(snapshot["type"], "snapshot");
    assert!(
        snapshot["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v["node"] == "quiet-a")),
        "the first snapshot on B lists A's session: {snapshot}"
    );
    visitor.message("can we book a call?", "3").await;
    let watched = channel_kinds_from(&mut channel, "quiet-a", Duration::from_millis(400)).await;
    assert!(
        watched.iter().any(|k| k == "changed"),
        "an admin watches: A publishes, got {watched:?}"
    );
}

#[actix_web::test]
async fn a_session_that_changed_while_nobody_watched_is_current_in_the_next_snapshot() {
    let app = admin_app().await;
    let (mut visitor, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    visitor.message("hello", "n1").await;
    let mut first = admin(&app).await;
    let snap = first.recv().await;
    assert_eq!(snap["sessions"][0]["total_queries"], 1);
    drop(first);
    // The feed lets go of its views once nobody watches; the session goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    visitor.message("what does registration cost?", "n2").await;
    visitor.message("and how long does it take?", "n3").await;
    let mut second = admin(&app).await;
    let snap = second.recv().await;
    let sessions = snap["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{snap}");
    assert_eq!(sessions[0]["session_id"], id.as_str());
    assert_eq!(sessions[0]["total_queries"], 3, "{snap}");
}

/// Issue 14 item 12: in a cluster, an admin on one node reads and ends a
/// session that lives on another; its visitor is told `ended` by `admin`
/// on the node it is connected to.
#[actix_web::test]
async fn an_admin_reads_and_ends_a_session_owned_by_another_node() {
    let mut a = test_settings(StoreKind::Redis);
    a.admin_token = Some(TOKEN.into());
    a.node_id = Some("owner-a".into());
    let prefix = a.redis_prefix.clone();
    let node_a = spawn_full_app(a).await;
    let mut b = test_settings(StoreKind::Redis);
    b.admin_token = Some(TOKEN.into());
    b.node_id = Some("other-b".into());
    b.redis_prefix = prefix;
    let node_b = spawn_full_app(b).await;

    let (mut visitor, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    visitor.message("what does EPR for tyres cost?", "t1").await;

    let detail: Value = node_b
        .admin_json(&format!("/api/sessions/{id}"), TOKEN)
        .await;
    assert_eq!(detail["session_id"], id.as_str(), "{detail}");
    assert_eq!(detail["node"], "owner-a");
    assert_eq!(detail["transcript"].as_array().map(Vec::len), Some(3));

    let res = node_b
        .http
        .post(node_b.url(&format!("/api/sessions/{id}/end")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(
        visitor.recv().await,
        json!({"type":"ended","reason":"admin"})
    );
}
