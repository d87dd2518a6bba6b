//! The cluster-wide admin feed: every node publishes its sessions' changes on
//! one Redis pub/sub channel (`leadchat:feed`, batched per flush) and merges
//! the other nodes' into its own AdminFeed, so an admin connected to any node
//! sees every live session. A node that starts says `hello` and the others
//! republish what they hold.

use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::feed::AdminFeed;
use super::messages::RemoteEvent;
use super::view::SessionView;
use crate::domain::TranscriptEntry;
use crate::scoring::Priority;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    Changed {
        node: String,
        sessions: Vec<(SessionView, Vec<TranscriptEntry>)>,
    },
    Closed {
        node: String,
        session_id: String,
        reason: String,
        priority: Priority,
        report: Option<String>,
    },
    Hello {
        node: String,
    },
}

impl BusEvent {
    fn node(&self) -> &str {
        match self {
            BusEvent::Changed { node, .. }
            | BusEvent::Closed { node, .. }
            | BusEvent::Hello { node } => node,
        }
    }
}

/// Publishing side, held by the AdminFeed.
#[derive(Clone)]
pub struct FeedBus {
    conn: ConnectionManager,
    channel: String,
}

impl FeedBus {
    pub fn new(conn: ConnectionManager, channel: String) -> Self {
        Self { conn, channel }
    }

    pub async fn publish(&self, event: &BusEvent) {
        let Ok(payload) = serde_json::to_string(event) else {
            return;
        };
        let mut conn = self.conn.clone();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(err) = sent {
            tracing::debug!(error = %err, "cannot publish to the admin feed channel");
        }
    }
}

/// Listens to the channel for as long as the process runs, reconnecting
/// after a Redis outage, and hands other nodes' events to `feed`.
pub fn spawn_listener(
    redis_url: String,
    channel: String,
    node: String,
    bus: FeedBus,
    feed: Addr<AdminFeed>,
) {
    actix::spawn(async move {
        loop {
            match listen(&redis_url, &channel, &node, &bus, &feed).await {
                Ok(()) => tracing::warn!("admin feed channel closed; resubscribing"),
                Err(err) => {
                    tracing::warn!(error = %err, "admin feed channel unavailable; retrying")
                }
            }
            if !feed.connected() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen(
    url: &str,
    channel: &str,
    node: &str,
    bus: &FeedBus,
    feed: &Addr<AdminFeed>,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Subscribed first, then asked: nothing republished can be missed.
    bus.publish(&BusEvent::Hello {
        node: node.to_owned(),
    })
    .await;
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        if !feed.connected() {
            return Ok(());
        }
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        match serde_json::from_str::<BusEvent>(&payload) {
            Ok(event) if event.node() != node => feed.do_send(RemoteEvent(event)),
            Ok(_) => {}
            Err(err) => tracing::debug!(error = %err, "ignoring a malformed admin feed event"),
        }
    }
    Ok(())
}
