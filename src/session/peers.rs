//! The sessions' messages to other nodes, on the cluster channel
//! (`crate::cluster`): handover of a session to the node its visitor
//! reconnected to, a forwarded end of a session another node holds, and
//! tabs relayed between nodes (`relay.rs`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::registry::SessionRegistry;
use super::relay::RelayEvent;
use super::{EndOutcome, EndSession, HandOver};
use crate::cluster::ClusterChannel;
use crate::domain::{EndReason, SessionId};

/// A session message between nodes. `node` is the sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PeerEvent {
    /// `node` asks `owner` to let go of a session a visitor reconnected to.
    Release {
        node: String,
        owner: String,
        session_id: String,
    },
    /// `node` stopped its actor for the session; its writes are all stored.
    Released { node: String, session_id: String },
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
    /// A tab relayed between two nodes (`relay.rs`).
    Relay(RelayEvent),
}

/// The kinds this module takes off the cluster channel.
pub const KINDS: [&str; 5] = ["release", "released", "end_remote", "ended_remote", "relay"];

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

/// How long a release waits for writes held during a Redis outage.
const RELEASE_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Takes one message of [`KINDS`] from the channel (the JSON text).
pub fn receive(registry: &Arc<SessionRegistry>, channel: &ClusterChannel, payload: &str) {
    let node = registry.deps().node.as_str();
    let event = match serde_json::from_str::<PeerEvent>(payload) {
        Ok(event) => event,
        Err(err) => {
            tracing::debug!(error = %err, "ignoring a malformed session message from another node");
            return;
        }
    };
    match event {
        PeerEvent::Release {
            owner, session_id, ..
        } if owner == node => release(registry, channel, session_id),
        PeerEvent::Released {
            node: from,
            session_id,
        } if from != node => registry.handover_done(&session_id),
        PeerEvent::EndRemote {
            node: from,
            owner,
            session_id,
            reason,
        } if owner == node => end_here(registry, channel, from, session_id, reason),
        PeerEvent::EndedRemote {
            requester,
            session_id,
            outcome,
            ..
        } if requester == node => registry.forwarded_end_done(&session_id, outcome),
        PeerEvent::Relay(event) if event.to() == node => registry.relay().receive(registry, event),
        // For another node.
        _ => {}
    }
}

/// Stops this node's actor for the session (after its pending writes) and
/// says so, so the node the visitor moved to can load the final state.
fn release(registry: &Arc<SessionRegistry>, channel: &ClusterChannel, session_id: String) {
    let registry = Arc::clone(registry);
    let channel = channel.clone();
    actix::spawn(async move {
        if let Some(id) = SessionId::parse(&session_id)
            && let Some(addr) = registry.get(id)
        {
            let _ = addr.send(HandOver).await;
        }
        // Writes held during a Redis outage go out before the new owner
        // loads the session.
        if !registry.deps().store.flushed(RELEASE_FLUSH_WAIT).await {
            tracing::warn!(session_id, "handing over before held writes reached Redis");
        }
        let node = registry.deps().node.clone();
        channel
            .publish(&PeerEvent::Released { node, session_id })
            .await;
    });
}

/// Ends a session this node holds for `requester`, and says how that went.
fn end_here(
    registry: &Arc<SessionRegistry>,
    channel: &ClusterChannel,
    requester: String,
    session_id: String,
    reason: EndReason,
) {
    let registry = Arc::clone(registry);
    let channel = channel.clone();
    actix::spawn(async move {
        let addr = SessionId::parse(&session_id).and_then(|id| registry.get(id));
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
        let node = registry.deps().node.clone();
        channel
            .publish(&PeerEvent::EndedRemote {
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
    fn every_message_starts_with_a_kind_this_module_takes() {
        let events = [
            PeerEvent::Release {
                node: "a".into(),
                owner: "b".into(),
                session_id: "s".into(),
            },
            PeerEvent::Released {
                node: "a".into(),
                session_id: "s".into(),
            },
            PeerEvent::EndRemote {
                node: "a".into(),
                owner: "b".into(),
                session_id: "s".into(),
                reason: EndReason::Visitor,
            },
            PeerEvent::EndedRemote {
                node: "a".into(),
                requester: "b".into(),
                session_id: "s".into(),
                outcome: RemoteEnd::NotHere,
            },
            PeerEvent::Relay(RelayEvent::Closed {
                node: "a".into(),
                to: "b".into(),
                link: 1,
            }),
        ];
        for event in events {
            let json = serde_json::to_string(&event).expect("encodes");
            let kind = crate::cluster::kind_of(&json).expect("a leading kind");
            assert!(KINDS.contains(&kind), "{json}");
        }
        // What a node of the previous release sends still parses.
        let old = r#"{"kind":"end_remote","node":"a","owner":"b","session_id":"s"}"#;
        assert!(matches!(
            serde_json::from_str::<PeerEvent>(old),
            Ok(PeerEvent::EndRemote {
                reason: EndReason::Admin,
                ..
            })
        ));
    }
}
