//! The cluster-wide admin feed: every node publishes its sessions' changes on
//! one Redis pub/sub channel (`leadchat:feed`, batched per flush) while some
//! other node has admins watching (`interest.rs`), and merges the other
//! nodes' into its own AdminFeed, so an admin connected to any node sees
//! every live session. A node that starts says `hello` and the others
//! republish what they hold.

use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::feed::AdminFeed;
use super::messages::{ChannelSubscribed, RemoteEvent};
use super::view::SessionView;
use std::sync::Arc;

use crate::domain::EndReason;
use crate::domain::TranscriptEntry;
use crate::scoring::Priority;
use crate::session::relay::RelayEvent;
use crate::session::{EndOutcome, EndSession, HandOver, SessionRegistry};
use crate::store::conn::RedisConn;

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
    /// `node` has admins watching and wants the others' changes
    /// (`interest.rs`); `fresh`: it holds none of them yet.
    Interest {
        node: String,
        fresh: bool,
    },
    /// `node` asks `owner` to let go of a session a visitor reconnected to.
    Release {
        node: String,
        owner: String,
        session_id: String,
    },
    /// `node` stopped its actor for the session; its writes are all stored.
    Released {
        node: String,
        session_id: String,
    },
    /// `node` asks `owner` to end a session it holds (an admin on `node`
    /// pressed "End this chat"); the session is finalized where it lives,
    /// so its visitor gets `ended` there.
    EndRemote {
        node: String,
        owner: String,
        session_id: String,
        /// Who ended it: an admin, or the visitor (`POST /end_session` on a
        /// node the session does not live on).
        #[serde(default = "admin_reason")]
        reason: EndReason,
    },
    /// `node` (the owner) answers `requester`'s `EndRemote`.
    EndedRemote {
        node: String,
        requester: String,
        session_id: String,
        outcome: RemoteEnd,
    },
    /// A tab relayed between two nodes (`session::relay`).
    Relay(RelayEvent),
}

fn admin_reason() -> EndReason {
    EndReason::Admin
}

/// What became of a forwarded end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteEnd {
    Finalized,
    AlreadyFinalized,
    Unavailable,
    /// The owner no longer holds the session (it moved, or ended).
    NotHere,
}

impl BusEvent {
    fn node(&self) -> &str {
        match self {
            BusEvent::Changed { node, .. }
            | BusEvent::Closed { node, .. }
            | BusEvent::Hello { node }
            | BusEvent::Interest { node, .. }
            | BusEvent::Release { node, .. }
            | BusEvent::Released { node, .. }
            | BusEvent::EndRemote { node, .. }
            | BusEvent::EndedRemote { node, .. } => node,
            BusEvent::Relay(event) => event.node(),
        }
    }
}

/// How long a release waits for writes held during a Redis outage.
const RELEASE_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Publishing side, held by the AdminFeed.
#[derive(Clone)]
pub struct FeedBus {
    conn: RedisConn,
    channel: String,
}

impl FeedBus {
    pub fn new(conn: RedisConn, channel: String) -> Self {
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
/// after a Redis outage, and hands other nodes' events to `feed`. In a Redis
/// Cluster a message published on any node reaches subscribers on every
/// node, so the listener subscribes on one seed and moves to the next when
/// that one is gone.
pub fn spawn_listener(
    seeds: Vec<String>,
    channel: String,
    node: String,
    bus: FeedBus,
    feed: Addr<AdminFeed>,
    registry: Arc<SessionRegistry>,
) {
    actix::spawn(async move {
        for redis_url in seeds.iter().cycle() {
            match listen(redis_url, &channel, &node, &bus, &feed, &registry).await {
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
    registry: &Arc<SessionRegistry>,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    feed.do_send(ChannelSubscribed);
    // This node's own changes come back on the channel: recognised by their
    // first bytes, they are skipped without parsing.
    let own_changes = own_changes_prefix(node);
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
        if payload.starts_with(&own_changes) {
            continue;
        }
        match serde_json::from_str::<BusEvent>(&payload) {
            Ok(BusEvent::Release {
                owner, session_id, ..
            }) if owner == node => {
                release(registry, bus, node, session_id);
            }
            Ok(BusEvent::Released {
                node: from,
                session_id,
            }) if from != node => {
                registry.handover_done(&session_id);
            }
            Ok(BusEvent::EndRemote {
                node: from,
                owner,
                session_id,
                reason,
            }) if owner == node => {
                end_here(registry, bus, node, from, session_id, reason);
            }
            Ok(BusEvent::EndedRemote {
                requester,
                session_id,
                outcome,
                ..
            }) if requester == node => {
                registry.forwarded_end_done(&session_id, outcome);
            }
            Ok(BusEvent::Relay(event)) if event.to() == node => {
                registry.relay().receive(registry, event);
            }
            Ok(
                BusEvent::Relay(_)
                | BusEvent::Release { .. }
                | BusEvent::Released { .. }
                | BusEvent::EndRemote { .. }
                | BusEvent::EndedRemote { .. },
            ) => {}
            Ok(event) if event.node() != node => feed.do_send(RemoteEvent(event)),
            Ok(_) => {}
            Err(err) => tracing::debug!(error = %err, "ignoring a malformed admin feed event"),
        }
    }
    Ok(())
}

/// How this node's `Changed` events begin: serde writes the tag, then the
/// fields in declaration order.
fn own_changes_prefix(node: &str) -> String {
    let node = serde_json::to_string(node).unwrap_or_default();
    format!(r#"{{"kind":"changed","node":{node},"#)
}

/// Stops this node's actor for the session (after its pending writes) and
/// says so, so the node the visitor moved to can load the final state.
fn release(registry: &Arc<SessionRegistry>, bus: &FeedBus, node: &str, session_id: String) {
    let registry = Arc::clone(registry);
    let bus = bus.clone();
    let node = node.to_owned();
    actix::spawn(async move {
        if let Some(id) = crate::domain::SessionId::parse(&session_id)
            && let Some(addr) = registry.get(id)
        {
            let _ = addr.send(HandOver).await;
        }
        // Writes held during a Redis outage go out before the new owner
        // loads the session.
        if !registry.deps().store.flushed(RELEASE_FLUSH_WAIT).await {
            tracing::warn!(session_id, "handing over before held writes reached Redis");
        }
        bus.publish(&BusEvent::Released { node, session_id }).await;
    });
}

/// Ends a session this node holds for an admin on `requester`, and says
/// how that went.
fn end_here(
    registry: &Arc<SessionRegistry>,
    bus: &FeedBus,
    node: &str,
    requester: String,
    session_id: String,
    reason: EndReason,
) {
    let registry = Arc::clone(registry);
    let bus = bus.clone();
    let node = node.to_owned();
    actix::spawn(async move {
        let addr = crate::domain::SessionId::parse(&session_id).and_then(|id| registry.get(id));
        let outcome = match addr {
            None => RemoteEnd::NotHere,
            Some(addr) => match addr
                .send(EndSession {
                    reason,
                    report_done: None,
                })
                .await
            {
                Ok(EndOutcome::Finalized) => RemoteEnd::Finalized,
                Ok(EndOutcome::AlreadyFinalized) | Err(_) => RemoteEnd::AlreadyFinalized,
                Ok(EndOutcome::Unavailable) => RemoteEnd::Unavailable,
            },
        };
        bus.publish(&BusEvent::EndedRemote {
            node,
            requester,
            session_id,
            outcome,
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_changes_are_recognised_by_their_first_bytes() {
        let mine = BusEvent::Changed {
            node: "web-1 \"a\"".into(),
            sessions: Vec::new(),
        };
        let theirs = BusEvent::Changed {
            node: "web-2".into(),
            sessions: Vec::new(),
        };
        let prefix = own_changes_prefix("web-1 \"a\"");
        let encoded = |e: &BusEvent| serde_json::to_string(e).expect("encodes");
        assert!(encoded(&mine).starts_with(&prefix), "{}", encoded(&mine));
        assert!(!encoded(&theirs).starts_with(&prefix));
        let closed = BusEvent::Closed {
            node: "web-1 \"a\"".into(),
            session_id: "x".into(),
            reason: "visitor".into(),
            priority: Priority::Low,
            report: None,
        };
        assert!(!encoded(&closed).starts_with(&prefix));
    }
}
