//! Admin-feed replication over the cluster channel (`crate::cluster`): every
//! node publishes its sessions' changes (batched per flush) while some
//! other node has admins watching (`interest.rs`), and merges the other
//! nodes' into its own AdminFeed, so an admin connected to any node sees
//! every live session. A node that (re)subscribes says `hello` and the
//! others republish what they hold.

use actix::Addr;
use serde::{Deserialize, Serialize};

use super::feed::AdminFeed;
use super::messages::{ChannelSubscribed, RemoteEvent};
use crate::cluster::{ClusterChannel, Routes};
use crate::domain::TranscriptEntry;
use crate::scoring::Priority;
use crate::session::SessionView;

/// A feed message between nodes. `node` is the sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeedEvent {
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
}

/// The kinds the feed takes off the cluster channel.
pub const KINDS: [&str; 4] = ["changed", "closed", "hello", "interest"];

impl FeedEvent {
    fn node(&self) -> &str {
        match self {
            FeedEvent::Changed { node, .. }
            | FeedEvent::Closed { node, .. }
            | FeedEvent::Hello { node }
            | FeedEvent::Interest { node, .. } => node,
        }
    }
}

/// The feed's routes on the cluster channel: other nodes' events go to
/// `feed`; after each (re)subscription the feed is told (it may have
/// missed events) and the other nodes are asked to republish.
pub fn routes(
    routes: Routes,
    feed: Addr<AdminFeed>,
    channel: ClusterChannel,
    node: String,
) -> Routes {
    // This node's own changes come back on the channel: recognised by their
    // first bytes, they are skipped without parsing.
    let own_changes = own_changes_prefix(&node);
    let me = node.clone();
    let to_feed = feed.clone();
    let alive = feed.clone();
    routes
        .route(&KINDS, move |payload| {
            if payload.starts_with(&own_changes) {
                return;
            }
            match serde_json::from_str::<FeedEvent>(&payload) {
                Ok(event) if event.node() != me => to_feed.do_send(RemoteEvent(event)),
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "ignoring a malformed admin feed event"),
            }
        })
        .on_subscribed(move || {
            feed.do_send(ChannelSubscribed);
            let channel = channel.clone();
            let node = node.clone();
            actix::spawn(async move { channel.publish(&FeedEvent::Hello { node }).await });
        })
        .while_alive(move || alive.connected())
}

/// How this node's `Changed` events begin: serde writes the tag, then the
/// fields in declaration order.
fn own_changes_prefix(node: &str) -> String {
    let node = serde_json::to_string(node).unwrap_or_default();
    format!(r#"{{"kind":"changed","node":{node},"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_changes_are_recognised_by_their_first_bytes() {
        let mine = FeedEvent::Changed {
            node: "web-1 \"a\"".into(),
            sessions: Vec::new(),
        };
        let theirs = FeedEvent::Changed {
            node: "web-2".into(),
            sessions: Vec::new(),
        };
        let prefix = own_changes_prefix("web-1 \"a\"");
        let encoded = |e: &FeedEvent| serde_json::to_string(e).expect("encodes");
        assert!(encoded(&mine).starts_with(&prefix), "{}", encoded(&mine));
        assert!(!encoded(&theirs).starts_with(&prefix));
        let closed = FeedEvent::Closed {
            node: "web-1 \"a\"".into(),
            session_id: "x".into(),
            reason: "visitor".into(),
            priority: Priority::Low,
            report: None,
        };
        assert!(!encoded(&closed).starts_with(&prefix));
        for event in [mine, closed, FeedEvent::Hello { node: "a".into() }] {
            let json = encoded(&event);
            assert!(KINDS.contains(&crate::cluster::kind_of(&json).expect("a kind")));
        }
    }
}
