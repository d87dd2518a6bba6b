//! Three leadchat processes on one Redis, and on a Redis Cluster: a killed
//! node's sessions are finalized once by the others, and a visitor who moves
//! across all three ends with one transcript and one report.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use support::nodes::*;
use support::{redis_server, smtp};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ADMIN_TOKEN: &str = "scale-out-admin-token";

/// Session ids named in the mails' Message-IDs, with how often each came.
fn reported(inbox: &smtp::Inbox) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for mail in inbox.received() {
        if let Some(id) = mail
            .data
            .split("Message-ID: <session-")
            .nth(1)
            .and_then(|rest| rest.get(..26))
        {
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test]
async fn three_nodes_on_a_redis_cluster_finalize_a_killed_nodes_sessions_once() {
    let cluster = redis_server::RedisCluster::start();
    let mut shared = Shared::new(true);
    shared.redis_url = cluster.urls();
    shared.cluster = true;
    let env = shared.env(&[("LEADCHAT_INACTIVITY_TIMEOUT", "3s")]);
    let mut a = start(&env);
    let b = start(&env);
    let c = start(&env);
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(chat_on(&a.addr, n).await);
    }
    for n in 12..18 {
        ids.push(chat_on(&b.addr, n).await);
    }
    a.child.kill().expect("kill -9 node A");
    a.child.wait().expect("reaped");

    wait_for(&shared.inbox, ids.len(), Duration::from_secs(40)).await;
    // Past every node's next sweep: nothing more may come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = reported(&shared.inbox);
    for id in &ids {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "session {id} reported once: {seen:?}"
        );
    }
    assert_eq!(shared.inbox.received().len(), ids.len(), "no other mail");
    drop((b, c));
}

/// Connects to `addr` (resuming `id`), returns the socket and the session frame.
async fn open(addr: &str, id: Option<&str>) -> (Ws, Value) {
    let url = match id {
        Some(id) => format!("ws://{addr}/ws?session_id={id}"),
        None => format!("ws://{addr}/ws"),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let first = recv(&mut ws).await;
    assert_eq!(first["type"], "session", "{first}");
    (ws, first)
}

async fn say(ws: &mut Ws, text: &str, client_msg_id: &str) -> Value {
    ws.send(Message::text(
        json!({"type":"message","text":text,"client_msg_id":client_msg_id}).to_string(),
    ))
    .await
    .expect("send");
    let ack = recv(ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(recv(ws).await["type"], "message");
    ack
}

#[tokio::test]
async fn a_visitor_moving_across_three_nodes_ends_with_one_transcript_and_one_report() {
    let shared = Shared::new(true);
    let env = shared.env(&[
        ("LEADCHAT_INACTIVITY_TIMEOUT", "4s"),
        ("LEADCHAT_ADMIN_TOKEN", ADMIN_TOKEN),
    ]);
    let nodes = [start(&env), start(&env), start(&env)];
    // Every node subscribed to the cluster channel.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (mut ws, session) = open(&nodes[0].addr, None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.send(Message::text(
        json!({"type":"contact","name":"Kiran","email":"kiran@firm.example"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "contact_ok");
    say(&mut ws, "question one, on node A", "q1").await;
    // Each new tab opens while the one before is still open: it is relayed
    // to the node that holds the session, then the old tab closes.
    for (n, node) in nodes.iter().enumerate().skip(1) {
        let (mut next, moved) = open(&node.addr, Some(&id)).await;
        assert_eq!(moved["resumed"], true, "{moved}");
        assert_eq!(
            moved["history"].as_array().map(Vec::len),
            Some(1 + 2 * n),
            "{moved}"
        );
        // A resend of the last question is recognised, not logged again.
        let again = say_again(&mut next, n).await;
        assert_eq!(again["type"], "ack");
        let ack = say(
            &mut next,
            &format!("question {}, on node {n}", n + 1),
            &format!("q{}", n + 1),
        )
        .await;
        assert_eq!(ack["seq"], 2 * n as u64 + 2);
        ws = next;
    }
    ws.send(Message::text(json!({"type":"end"}).to_string()))
        .await
        .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "ended");

    wait_for(&shared.inbox, 1, Duration::from_secs(20)).await;
    // Past the old owners' deadlines: none of them reports again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(reported(&shared.inbox).get(&id), Some(&1));
    assert_eq!(shared.inbox.received().len(), 1);

    let archived: Value = reqwest::Client::new()
        .get(format!("http://{}/api/sessions/{id}", nodes[0].addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(archived["state"], "archived", "{archived}");
    let lines: Vec<&str> = archived["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        lines,
        [
            "question one, on node A",
            "question 2, on node 1",
            "question 3, on node 2"
        ]
    );
    drop(nodes);
}

/// Resends the question asked before the move (`q{n}`).
async fn say_again(ws: &mut Ws, n: usize) -> Value {
    let text = if n == 1 {
        "question one, on node A".to_owned()
    } else {
        format!("question {n}, on node {}", n - 1)
    };
    ws.send(Message::text(
        json!({"type":"message","text":text,"client_msg_id":format!("q{n}")}).to_string(),
    ))
    .await
    .expect("send");
    recv(ws).await
}

/// The close code a socket ends with, skipping other frames; `None` when it
/// stays open past `wait`.
async fn close_code(ws: &mut Ws, wait: Duration) -> Option<u16> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Err(_) => return Some(0),
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_tab_relayed_to_a_killed_node_closes_with_1012_and_resumes_with_every_acked_line() {
    let shared = Shared::new(false);
    let env = shared.env(&[("LEADCHAT_INACTIVITY_TIMEOUT", "20s")]);
    let mut a = start(&env);
    let b = start(&env);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (mut on_a, session) = open(&a.addr, None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    on_a.send(Message::text(
        json!({"type":"contact","name":"Divya","email":"divya@firm.example"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut on_a).await["type"], "contact_ok");
    say(&mut on_a, "asked in the tab on node A", "a1").await;
    // The visitor's second tab lands on node B and is relayed to node A.
    let (mut on_b, relayed) = open(&b.addr, Some(&id)).await;
    assert_eq!(relayed["resumed"], true, "{relayed}");
    let ack = say(&mut on_b, "asked in the tab on node B", "b1").await;
    assert_eq!(ack["seq"], 4);
    assert_eq!(recv(&mut on_a).await["seq"], 4, "node A's tab sees it");

    a.child.kill().expect("kill -9 node A");
    a.child.wait().expect("reaped");
    // Node A's heartbeat lapses (3 × 1 s); node B tells the tab to reconnect.
    assert_eq!(
        close_code(&mut on_b, Duration::from_secs(15)).await,
        Some(1012)
    );

    let (mut again, resumed) = open(&b.addr, Some(&id)).await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    let lines: Vec<(u64, String)> = resumed["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap_or(0),
                l["role"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines.iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "{lines:?}"
    );
    let ack = say(&mut again, "and on node B itself", "b2").await;
    assert_eq!(ack["seq"], 6);
    again
        .send(Message::text(json!({"type":"end"}).to_string()))
        .await
        .expect("send");
    assert_eq!(recv(&mut again).await["type"], "ended");
    wait_for(&shared.inbox, 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reported(&shared.inbox).get(&id), Some(&1));
    drop(b);
}
