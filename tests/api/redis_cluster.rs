//! The chat flow against a real Redis Cluster (three `redis-server`
//! processes in cluster mode): a session's keys share a slot, sessions
//! spread over the nodes, a visitor moves between two leadchat nodes over
//! the cluster's pub/sub, and the session is finalized once.

use std::time::Duration;

use leadchat::settings::HumanDuration;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::app::*;
use crate::support::redis_server::RedisCluster;

#[actix_web::test]
async fn the_chat_flow_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let settings = |node: &str, prefix: &str| {
        let mut s = test_settings(StoreKind::Redis);
        s.redis_url = Some(cluster.urls().into());
        s.redis_cluster = true;
        s.redis_prefix = prefix.to_owned();
        s.node_id = Some(node.to_owned());
        s.inactivity_timeout = HumanDuration(Duration::from_secs(3));
        s
    };
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let node_a = spawn_app_with(settings("node-a", &prefix)).await;
    let node_b = spawn_app_with(settings("node-b", &prefix)).await;
    let ready: serde_json::Value = node_a
        .http
        .get(node_a.url("/ready"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["store"], "redis-cluster", "{ready}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Enough sessions that every node of the cluster holds some.
    let mut others = Vec::new();
    for n in 0..12 {
        let (mut ws, _) = node_a.connect(None).await;
        ws.send(
            json!({"type":"contact","name":format!("V{n}"),"email":format!("v{n}@firm.example")}),
        )
        .await;
        assert_eq!(ws.recv().await["type"], "contact_ok");
        others.push(ws);
    }
    assert!(
        cluster.keys_per_node().iter().all(|&k| k > 0),
        "sessions spread over the three nodes: {:?}",
        cluster.keys_per_node()
    );

    let (mut on_a, session) = node_a.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    on_a.send(json!({"type":"contact","name":"Meera","email":"meera@firm.example"}))
        .await;
    assert_eq!(on_a.recv().await["type"], "contact_ok");
    on_a.message("pricing for an EPR audit?", "m1").await;

    // The session's keys live in one slot, and hold what was said.
    let client = redis::cluster::ClusterClient::new(vec![cluster.nodes[0].url()]).expect("client");
    let mut conn = client.get_async_connection().await.expect("cluster");
    let keys = [
        format!("{prefix}session:{{{id}}}"),
        format!("{prefix}lead:{{{id}}}"),
        format!("{prefix}session:{{{id}}}:chat"),
        format!("{prefix}session:{{{id}}}:log"),
    ];
    let mut slots = Vec::new();
    for key in &keys {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("keyslot");
        slots.push(slot);
    }
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
    let email: String = conn.hget(&keys[0], "email").await.expect("hget");
    assert_eq!(email, "meera@firm.example");
    let chat: Vec<String> = conn.lrange(&keys[2], 0, -1).await.expect("lrange");
    assert_eq!(chat.len(), 3, "greeting, question, answer: {chat:?}");
    assert!(chat[1].starts_with("User: pricing"), "{chat:?}");
    let deadline: Option<f64> = conn
        .zscore(format!("{prefix}leadchat:deadlines"), &id)
        .await
        .expect("zscore");
    assert!(deadline.is_some(), "the session is in the deadline index");

    // The visitor moves to node B: node A lets go over the cluster channel.
    drop(on_a);
    assert!(node_a.away(&id, Duration::from_secs(2)).await);
    let (mut on_b, moved) = node_b.connect(Some(&id)).await;
    assert_eq!(moved["resumed"], true, "{moved}");
    assert_eq!(moved["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(node_b.relayed(), (0, 0), "moved, not relayed");
    let (ack, _) = on_b.message("and a demo next week", "m2").await;
    assert_eq!(ack["seq"], 4);
    on_b.send(json!({"type":"end"})).await;
    assert_eq!(on_b.recv().await["type"], "ended");

    let finalized: bool = conn
        .exists(format!("{prefix}session:{{{id}}}:finalized"))
        .await
        .expect("exists");
    assert!(finalized);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reports: Vec<_> = node_a
        .finalized
        .ids()
        .into_iter()
        .chain(node_b.finalized.ids())
        .filter(|s| *s == id)
        .collect();
    assert_eq!(reports.len(), 1, "one report");
    let report = node_b.finalized.0.lock().expect("lock")[0].clone();
    let seqs: Vec<u64> = report.transcript.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    drop(others);
}
