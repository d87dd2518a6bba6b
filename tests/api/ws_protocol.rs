//! PROTOCOL §2, frame by frame.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::app::*;

#[actix_web::test]
async fn a_new_session_opens_with_the_bots_greeting() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (_ws, session) = app.connect(None).await;
        assert_eq!(session["resumed"], false);
        assert_eq!(session["contact_collected"], false);
        assert!(
            session["session_id"]
                .as_str()
                .is_some_and(|s| s.len() == 26)
        );
        assert_eq!(session["history"][0]["seq"], 1);
        assert_eq!(session["history"][0]["role"], "bot");
    }
}

#[actix_web::test]
async fn a_message_is_acked_then_answered_with_consecutive_seqs() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, _) = app.connect(None).await;
        let (ack, reply) = ws
            .message("How much does EPR registration cost?", "m1")
            .await;
        assert_eq!(ack["client_msg_id"], "m1");
        assert_eq!(ack["seq"], 2);
        assert_eq!(reply["role"], "bot");
        assert_eq!(reply["seq"], 3);
        assert!(
            reply["text"].as_str().is_some_and(|t| t.contains('₹')),
            "{reply}"
        );
        let (ack, reply) = ws.message("and the timeline?", "m2").await;
        assert_eq!(
            (ack["seq"].as_u64(), reply["seq"].as_u64()),
            (Some(4), Some(5))
        );
    }
}

#[actix_web::test]
async fn a_resent_client_msg_id_is_acked_again_but_not_logged_twice() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        let (first, _) = ws.message("hello", "same").await;
        ws.send(json!({"type":"message","text":"hello","client_msg_id":"same"}))
            .await;
        let again = ws.recv().await;
        assert_eq!(again["type"], "ack");
        assert_eq!(again["seq"], first["seq"]);
        assert!(
            ws.try_recv(Duration::from_millis(300)).await.is_none(),
            "no second bot answer"
        );
        drop(ws);
        let (_ws, resumed) = app.connect(Some(&id)).await;
        let users = resumed["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|h| h["role"] == "user")
            .count();
        assert_eq!(users, 1);
    }
}

#[actix_web::test]
async fn contact_details_are_validated_field_by_field() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        ws.send(json!({"type":"contact","name":"Priya","email":"not-an-email"}))
            .await;
        let err = ws.recv().await;
        assert_eq!(err["type"], "error");
        assert_eq!(err["code"], "invalid_contact");
        assert_eq!(err["field"], "email");
        ws.send(json!({"type":"contact","name":"Priya Shah","email":"priya@acme.in","phone":"+91 98765 43210","organization":"Acme"})).await;
        assert_eq!(ws.recv().await["type"], "contact_ok");
        drop(ws);
        let (_ws, resumed) = app.connect(Some(&id)).await;
        assert_eq!(resumed["contact_collected"], true);
    }
}

#[actix_web::test]
async fn bad_frames_get_error_frames_and_the_session_carries_on() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, _) = app.connect(None).await;
        ws.send_raw(Message::text("not json")).await;
        assert_eq!(ws.recv().await["code"], "bad_frame");
        ws.send(json!({"type":"teleport"})).await;
        assert_eq!(ws.recv().await["code"], "unknown_type");
        ws.send(json!({"type":"message"})).await;
        assert_eq!(ws.recv().await["code"], "bad_frame");
        ws.send(json!({"type":"message","text":"   "})).await;
        assert_eq!(ws.recv().await["code"], "bad_frame");
        ws.send_raw(Message::binary(vec![1u8, 2, 3])).await;
        assert_eq!(ws.recv().await["code"], "bad_frame");
        ws.send(json!({"type":"message","text":"x".repeat(9000)}))
            .await;
        assert_eq!(ws.recv().await["code"], "too_large");
        ws.send(json!({"type":"message","text":"y".repeat(200_000)}))
            .await;
        assert_eq!(ws.recv().await["code"], "too_large");
        let (ack, _) = ws.message("still here?", "after-errors").await;
        assert_eq!(ack["seq"], 2);
    }
}

#[actix_web::test]
async fn a_resumed_session_replays_its_history_and_an_unknown_one_starts_fresh() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        ws.message("Tell me about plastic EPR 🙂 — प्लास्टिक", "r1")
            .await;
        drop(ws);
        let (_ws, resumed) = app.connect(Some(&id)).await;
        assert_eq!(resumed["resumed"], true);
        assert_eq!(resumed["session_id"], id.as_str());
        let history = resumed["history"].as_array().expect("history");
        assert_eq!(history.len(), 3);
        assert_eq!(history[1]["text"], "Tell me about plastic EPR 🙂 — प्लास्टिक");
        assert!(history[1]["at"].as_str().is_some_and(|t| t.ends_with('Z')));

        let (_ws, fresh) = app.connect(Some("01JUNKNOWN0000000000000000")).await;
        assert_eq!(fresh["resumed"], false);
        assert_eq!(fresh["previous_session_id"], "01JUNKNOWN0000000000000000");
        assert_ne!(fresh["session_id"], "01JUNKNOWN0000000000000000");
    }
}

#[actix_web::test]
async fn every_tab_of_a_session_gets_every_bot_answer() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut a, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        let (mut b, _) = app.connect(Some(&id)).await;
        let (_, reply) = a.message("pricing please", "t1").await;
        let echo = b.recv().await;
        assert_eq!(
            (echo["role"].as_str(), echo["seq"].as_u64()),
            (Some("user"), Some(2))
        );
        let other = b.recv().await;
        assert_eq!(other["seq"], reply["seq"]);
        assert_eq!(other["text"], reply["text"]);
    }
}

#[actix_web::test]
async fn the_end_frame_finalizes_once_and_later_frames_are_refused() {
    for kind in BOTH {
        let app = spawn_app(kind).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        ws.message("I need a quote for 500 tonnes", "e1").await;
        ws.send(json!({"type":"end"})).await;
        let ended = ws.recv().await;
        assert_eq!(ended, json!({"type":"ended","reason":"visitor"}));
        // Ending again is not an error: the visitor already has its frame.
        ws.send(json!({"type":"end"})).await;
        ws.send(json!({"type":"message","text":"hello?","client_msg_id":"late"}))
            .await;
        assert_eq!(ws.recv().await["code"], "session_ended");
        let (status, body) = app.end_session(json!({"session_id": id})).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("already_finalized"))
        );
        assert!(eventually(Duration::from_secs(2), || app.finalized.count() == 1).await);
        assert_eq!(app.finalized.ids(), vec![id.clone()]);
        // A finalized id starts a fresh session.
        let (_ws, again) = app.connect(Some(&id)).await;
        assert_eq!(again["resumed"], false);
        assert_eq!(again["previous_session_id"], id.as_str());
    }
}

#[actix_web::test]
async fn inactivity_finalizes_once_and_an_empty_session_is_dropped_without_a_report() {
    for kind in BOTH {
        let mut settings = test_settings(kind);
        settings.inactivity_timeout = leadchat::settings::HumanDuration(Duration::from_secs(2));
        let app = spawn_app_with(settings).await;
        let (mut talker, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        talker.message("do you handle battery EPR?", "i1").await;
        let (mut silent, _) = app.connect(None).await;
        let started = std::time::Instant::now();
        let ended = talker.recv().await;
        assert_eq!(ended, json!({"type":"ended","reason":"inactivity"}));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1500),
            "ended too early: {waited:?}"
        );
        assert_eq!(silent.recv().await["type"], "ended");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.finalized.ids(), vec![id]);
        let report = &app.finalized.0.lock().expect("lock")[0];
        assert_eq!(report.total_queries, 1);
        assert_eq!(report.transcript.len(), 3);
    }
}

#[actix_web::test]
async fn pings_and_reconnects_do_not_reset_the_inactivity_timer() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.inactivity_timeout = leadchat::settings::HumanDuration(Duration::from_secs(2));
    let app = spawn_app_with(settings).await;
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.message("hello", "p1").await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ws.send_raw(Message::Ping(vec![1].into())).await;
        let (_again, _) = app.connect(Some(&id)).await;
    }
    let ended = ws.recv().await;
    assert_eq!(ended["type"], "ended");
    assert!(
        started.elapsed() < Duration::from_millis(2600),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn a_resume_replays_the_last_lines_and_older_ones_come_in_history_pages() {
    for kind in BOTH {
        let mut settings = test_settings(kind);
        settings.limits.history_replay = 5;
        settings.limits.rate = leadchat::settings::RateSetting {
            frames: 7,
            per: Duration::from_secs(60),
        };
        let app = spawn_app_with(settings).await;
        let (mut ws, session) = app.connect(None).await;
        assert!(
            session.get("history_truncated").is_none(),
            "a greeting alone is not truncated: {session}"
        );
        let id = session["session_id"].as_str().expect("id").to_owned();
        for i in 0..4 {
            ws.message(&format!("question {i}"), &format!("h{i}")).await;
        }
        // greeting + 4 × (visitor, bot) = 9 lines, seqs 1..=9.
        let (mut tab, resumed) = app.connect(Some(&id)).await;
        let replayed: Vec<u64> = resumed["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|l| l["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(replayed, vec![5, 6, 7, 8, 9]);
        assert_eq!(resumed["history_truncated"], true);

        tab.send(json!({"type":"history","before_seq":5})).await;
        let page = tab.recv().await;
        assert_eq!(page["type"], "history", "{page}");
        let seqs: Vec<u64> = page["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert_eq!(page["complete"], true);
        assert_eq!(page["lines"][1]["text"], "question 0");

        tab.send(json!({"type":"history","before_seq":8})).await;
        let page = tab.recv().await;
        assert_eq!(page["lines"].as_array().map(Vec::len), Some(7));
        assert_eq!(page["complete"], true);

        // A history request is a frame of the rate: 4 messages + 2 pages
        // + this one make 7; the next is one too many.
        tab.send(json!({"type":"history","before_seq":3})).await;
        assert_eq!(tab.recv().await["type"], "history");
        tab.send(json!({"type":"history","before_seq":3})).await;
        assert_eq!(tab.recv().await["code"], "rate_limited");
    }
}

#[actix_web::test]
async fn a_history_page_holds_at_most_a_hundred_lines() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.rate = leadchat::settings::RateSetting {
        frames: 1000,
        per: Duration::from_secs(10),
    };
    let app = spawn_app_with(settings).await;
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    for i in 0..60 {
        ws.message(&format!("line {i}"), &format!("p{i}")).await;
    }
    // 121 lines: the resume replays 100 (the default), the page the rest.
    let (mut tab, resumed) = app.connect(Some(&id)).await;
    assert_eq!(resumed["history"].as_array().map(Vec::len), Some(100));
    assert_eq!(resumed["history"][0]["seq"], 22);
    assert_eq!(resumed["history_truncated"], true);
    tab.send(json!({"type":"history","before_seq":122})).await;
    let page = tab.recv().await;
    assert_eq!(page["lines"].as_array().map(Vec::len), Some(100));
    assert_eq!(page["lines"][0]["seq"], 22);
    assert_eq!(page["complete"], false);
    tab.send(json!({"type":"history","before_seq":22})).await;
    let page = tab.recv().await;
    assert_eq!(page["lines"].as_array().map(Vec::len), Some(21));
    assert_eq!(page["complete"], true);
}
