//! A visitor who reconnects to another node while the first is alive: the
//! session moves, nothing is lost or doubled, one report.

use std::time::Duration;

use leadchat::settings::HumanDuration;
use serde_json::json;

use crate::helpers::*;

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

    let (mut on_b, moved) = node_b.connect(Some(&id)).await;
    assert_eq!(moved["resumed"], true, "{moved}");
    assert_eq!(moved["history"].as_array().map(Vec::len), Some(3));
    // Node A let go: its socket is closed so the widget reconnects.
    assert!(
        on_a.try_recv(Duration::from_secs(3)).await.is_none(),
        "node A's socket closes"
    );

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
