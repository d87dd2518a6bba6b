//! A visitor who reconnects to another node while the first is alive: the
//! session moves, nothing is lost or doubled, one report. A second tab on
//! another node while the first tab is open: the session stays where it is
//! and the new tab is relayed to it.

use std::time::Duration;

use leadchat::settings::HumanDuration;
use serde_json::json;

use crate::support::app::*;

#[actix_web::test]
async fn a_session_moves_to_the_node_the_visitor_reconnects_to() {
    let mut a = test_settings(StoreKind::Redis);
    a.node_id = Some("node-a".into());
    a.inactivity_timeout = HumanDuration(Duration::from_secs(2));
    let prefix = a.redis_prefix.clone();
    let node_a = spawn_app_with(a).await;
    let mut b = test_settings(StoreKind::Redis);
    b.node_id = Some("node-b".into());
    b.redis_prefix = prefix;
    b.inactivity_timeout = HumanDuration(Duration::from_secs(2));
    let node_b = spawn_app_with(b).await;
    // Both nodes subscribed to the cluster channel.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut on_a, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    let (first_ack, _) = on_a.message("first question, asked on node A", "m1").await;
    // The visitor's tab goes away (the network changed, the load balancer
    // sends it elsewhere); node A still holds the session.
    drop(on_a);
    assert!(
        node_a.away(&id, Duration::from_secs(2)).await,
        "node A saw the tab close"
    );

    let (mut on_b, moved) = node_b.connect(Some(&id)).await;
    assert_eq!(moved["resumed"], true, "{moved}");
    assert_eq!(moved["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(node_b.relayed(), (0, 0), "moved, not relayed");

    let (ack, reply) = on_b.message("second question, on node B", "m2").await;
    assert_eq!(
        (ack["seq"].as_u64(), reply["seq"].as_u64()),
        (Some(4), Some(5))
    );
    // A resend of what node A acknowledged is recognised on node B.
    on_b.send(
        json!({"type":"message","text":"first question, asked on node A","client_msg_id":"m1"}),
    )
    .await;
    let again = on_b.recv().await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["seq"], first_ack["seq"]);

    on_b.send(json!({"type":"end"})).await;
    assert_eq!(on_b.recv().await["type"], "ended");
    // Past node A's old deadline: it must not finalize a second time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(node_a.finalized.count() + node_b.finalized.count(), 1);
    let report = node_b.finalized.0.lock().expect("lock")[0].clone();
    let seqs: Vec<u64> = report.transcript.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

/// Node A and node B on one Redis, with their cluster channels subscribed.
async fn two_nodes(timeout: Duration) -> (TestApp, TestApp) {
    let mut a = test_settings(StoreKind::Redis);
    a.node_id = Some("node-a".into());
    a.inactivity_timeout = HumanDuration(timeout);
    let prefix = a.redis_prefix.clone();
    let node_a = spawn_app_with(a).await;
    let mut b = test_settings(StoreKind::Redis);
    b.node_id = Some("node-b".into());
    b.redis_prefix = prefix;
    b.inactivity_timeout = HumanDuration(timeout);
    let node_b = spawn_app_with(b).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (node_a, node_b)
}

#[actix_web::test]
async fn two_tabs_on_two_nodes_share_one_session() {
    let (node_a, node_b) = two_nodes(Duration::from_secs(30)).await;
    let (mut on_a, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    on_a.message("first question, from the tab on node A", "a1")
        .await;

    // The second tab lands on node B: it is relayed to node A, which keeps
    // the session, and neither tab is closed.
    let (mut on_b, relayed) = node_b.connect(Some(&id)).await;
    assert_eq!(relayed["resumed"], true, "{relayed}");
    assert_eq!(relayed["session_id"], id.as_str());
    assert_eq!(relayed["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(node_b.relayed(), (1, 0));
    assert_eq!(node_a.relayed(), (0, 1));

    // A contact and a message from B are answered on B and seen on A.
    on_b.send(json!({"type":"contact","name":"Ravi","email":"ravi@firm.example"}))
        .await;
    assert_eq!(on_b.recv().await["type"], "contact_ok");
    let (ack, reply) = on_b
        .message("second question, from the tab on node B", "b1")
        .await;
    assert_eq!(
        (ack["seq"].as_u64(), reply["seq"].as_u64()),
        (Some(4), Some(5))
    );
    let echo = on_a.recv().await;
    assert_eq!(
        (echo["role"].as_str(), echo["seq"].as_u64()),
        (Some("user"), Some(4)),
        "{echo}"
    );
    assert_eq!(on_a.recv().await["seq"], 5);

    // And the other way round, for a while: no tab is moved or closed.
    for i in 0..3 {
        let (ack, _) = on_a
            .message(&format!("from A, round {i}"), &format!("a{}", i + 2))
            .await;
        let seen = on_b.recv().await;
        assert_eq!(seen["seq"], ack["seq"], "{seen}");
        assert_eq!(on_b.recv().await["role"], "bot");
        let (ack, _) = on_b
            .message(&format!("from B, round {i}"), &format!("b{}", i + 2))
            .await;
        let seen = on_a.recv().await;
        assert_eq!(seen["seq"], ack["seq"], "{seen}");
        assert_eq!(on_a.recv().await["role"], "bot");
    }
    // A resend through the relay is acked again, not logged twice.
    on_b.send(json!({"type":"message","text":"second question, from the tab on node B","client_msg_id":"b1"}))
        .await;
    let again = on_b.recv().await;
    assert_eq!(
        (again["type"].as_str(), again["seq"].as_u64()),
        (Some("ack"), Some(4))
    );
    // A frame B refuses at its edge is refused there.
    on_b.send(json!({"type":"nonsense"})).await;
    assert_eq!(on_b.recv().await["code"], "unknown_type");

    // Ending from B ends the session on A: both tabs get `ended`, one report.
    on_b.send(json!({"type":"end"})).await;
    assert_eq!(
        on_b.recv().await,
        json!({"type":"ended","reason":"visitor"})
    );
    assert_eq!(
        on_a.recv().await,
        json!({"type":"ended","reason":"visitor"})
    );
    assert!(eventually(Duration::from_secs(2), || node_a.finalized.count() == 1).await);
    assert_eq!(node_b.finalized.count(), 0);
    let report = node_a.finalized.0.lock().expect("lock")[0].clone();
    assert_eq!(report.contact.email(), Some("ravi@firm.example"));
    assert_eq!(report.transcript.len(), 3 + 2 + 12);
    assert!(
        eventually(Duration::from_secs(2), || node_a.relayed() == (0, 0)
            && node_b.relayed() == (0, 0))
        .await,
        "the relay is gone with the session: {:?} {:?}",
        node_a.relayed(),
        node_b.relayed()
    );
}

#[actix_web::test]
async fn closing_the_relayed_tab_leaves_the_session_with_the_other() {
    let (node_a, node_b) = two_nodes(Duration::from_secs(30)).await;
    let (mut on_a, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    on_a.message("hello from A", "a1").await;
    let (on_b, _) = node_b.connect(Some(&id)).await;
    assert_eq!(node_a.relayed(), (0, 1));
    drop(on_b);
    assert!(
        eventually(Duration::from_secs(2), || node_a.relayed() == (0, 0)
            && node_b.relayed() == (0, 0))
        .await,
        "{:?} {:?}",
        node_a.relayed(),
        node_b.relayed()
    );
    let (ack, _) = on_a.message("still here on A", "a2").await;
    assert_eq!(ack["seq"], 4);
    // `/end_session` on B ends it where it lives.
    let (status, body) = node_b.end_session(json!({"session_id": id})).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("queued")),
        "{body}"
    );
    assert_eq!(
        on_a.recv().await,
        json!({"type":"ended","reason":"visitor"})
    );
    assert!(eventually(Duration::from_secs(2), || node_a.finalized.count() == 1).await);
    assert_eq!(node_b.finalized.count(), 0);
}

#[actix_web::test]
async fn a_relayed_tab_closes_with_1012_when_the_sessions_node_stops_and_resumes_elsewhere() {
    let (node_a, node_b) = two_nodes(Duration::from_secs(30)).await;
    let (mut on_a, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    on_a.message("asked on A", "a1").await;
    let (mut on_b, _) = node_b.connect(Some(&id)).await;
    let (ack, _) = on_b.message("asked on B, relayed to A", "b1").await;
    assert_eq!(ack["seq"], 4);

    node_a.stop().await;
    let close = on_b.close_code(Duration::from_secs(5)).await;
    assert_eq!(close, Some(1012), "the relayed tab is told to reconnect");

    // The widget reconnects (to B): every acknowledged line is there.
    let (mut again, resumed) = node_b.connect(Some(&id)).await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    let seqs: Vec<u64> = resumed["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let (ack, _) = again.message("and now on B itself", "b2").await;
    assert_eq!(ack["seq"], 6);
    assert_eq!(node_b.relayed(), (0, 0));
}
