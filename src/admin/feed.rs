//! AdminFeed: owns this node's live view of every session (SESSION of
//! PROTOCOL §4) and the admin sockets subscribed to it. Changes are coalesced
//! and flushed every `FLUSH` so a busy node sends each admin at most one
//! update per session per flush; frames are serialised once and shared. A
//! subscriber whose mailbox is full is sent a fresh snapshot once it drains,
//! so a slow admin never slows a chat. Takes `SessionChanged`,
//! `SessionClosed`, `Subscribe`, `Unsubscribe`, `Watch` and `ListLive`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use serde::Serialize;

use super::messages::*;
use super::view::{SessionView, urgency};
use crate::domain::Role;

/// Well under the 100 ms the protocol allows from change to admin screen.
const FLUSH: Duration = Duration::from_millis(20);

struct Subscriber {
    socket: Recipient<AdminFrame>,
    watching: Option<String>,
    /// Missed a frame: gets a whole snapshot at the next flush.
    lagging: bool,
}

#[derive(Default)]
pub struct AdminFeed {
    live: HashMap<String, SessionView>,
    subscribers: HashMap<u64, Subscriber>,
    dirty: HashSet<String>,
    /// Frames waiting for the next flush, in order (ended sessions, lines).
    pending: Vec<(Option<String>, ByteString)>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FeedFrame<'a> {
    Snapshot {
        sessions: Vec<&'a SessionView>,
    },
    SessionUpdated {
        session: &'a SessionView,
    },
    SessionEnded {
        session_id: &'a str,
        reason: &'a str,
        priority: crate::scoring::Priority,
        report: Option<&'a str>,
    },
    Message {
        session_id: &'a str,
        seq: u64,
        role: Role,
        text: &'a str,
        at: chrono::DateTime<chrono::Utc>,
    },
}

fn encode(frame: &FeedFrame<'_>) -> ByteString {
    serde_json::to_string(frame)
        .expect("feed frames hold only strings, numbers and times")
        .into()
}

impl AdminFeed {
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> ByteString {
        let mut sessions: Vec<&SessionView> = self.live.values().collect();
        sessions.sort_by(|a, b| urgency(a, b));
        encode(&FeedFrame::Snapshot { sessions })
    }

    fn send(sub: &mut Subscriber, frames: Vec<ByteString>) {
        if sub.lagging || frames.is_empty() {
            return;
        }
        if sub.socket.try_send(AdminFrame(frames)).is_err() {
            sub.lagging = true;
        }
    }

    fn flush(&mut self) {
        if self.dirty.is_empty()
            && self.pending.is_empty()
            && !self.subscribers.values().any(|s| s.lagging)
        {
            return;
        }
        let mut updates: Vec<&SessionView> = self
            .dirty
            .iter()
            .filter_map(|id| self.live.get(id))
            .collect();
        updates.sort_by(|a, b| urgency(a, b));
        let updates: Vec<ByteString> = updates
            .into_iter()
            .map(|s| encode(&FeedFrame::SessionUpdated { session: s }))
            .collect();
        self.dirty.clear();
        let pending = std::mem::take(&mut self.pending);
        let snapshot = self
            .subscribers
            .values()
            .any(|s| s.lagging)
            .then(|| self.snapshot());
        for sub in self.subscribers.values_mut() {
            if sub.lagging {
                // Recovered only if the snapshot itself gets through.
                if let Some(snap) = &snapshot
                    && sub.socket.try_send(AdminFrame(vec![snap.clone()])).is_ok()
                {
                    sub.lagging = false;
                }
                continue;
            }
            let mut batch = updates.clone();
            // Transcript lines go only to admins watching that session.
            batch.extend(
                pending
                    .iter()
                    .filter(|(session, _)| {
                        session.is_none() || session.as_deref() == sub.watching.as_deref()
                    })
                    .map(|(_, frame)| frame.clone()),
            );
            Self::send(sub, batch);
        }
    }
}

impl Actor for AdminFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(FLUSH, |act, _| act.flush());
    }
}

impl Handler<SessionChanged> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: SessionChanged, _: &mut Self::Context) {
        let id = msg.view.session_id.clone();
        let watched = self
            .subscribers
            .values()
            .any(|s| s.watching.as_deref() == Some(id.as_str()));
        if watched {
            for e in &msg.new_entries {
                let frame = encode(&FeedFrame::Message {
                    session_id: &id,
                    seq: e.seq,
                    role: e.role,
                    text: &e.text,
                    at: e.at,
                });
                self.pending.push((Some(id.clone()), frame));
            }
        }
        self.live.insert(id.clone(), msg.view);
        self.dirty.insert(id);
    }
}

impl Handler<SessionClosed> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _: &mut Self::Context) {
        let known = self.live.remove(&msg.session_id).is_some();
        self.dirty.remove(&msg.session_id);
        if known {
            let frame = encode(&FeedFrame::SessionEnded {
                session_id: &msg.session_id,
                reason: msg.reason,
                priority: msg.priority,
                report: msg.report.as_deref(),
            });
            self.pending.push((None, frame));
        }
    }
}

impl Handler<Subscribe> for AdminFeed {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> Self::Result {
        self.subscribers.insert(
            msg.subscriber,
            Subscriber {
                socket: msg.socket,
                watching: None,
                lagging: false,
            },
        );
        MessageResult(self.snapshot())
    }
}

impl Handler<Unsubscribe> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        self.subscribers.remove(&msg.subscriber);
    }
}

impl Handler<Watch> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) {
        if let Some(sub) = self.subscribers.get_mut(&msg.subscriber) {
            sub.watching = msg.session_id;
        }
    }
}

impl Handler<ListLive> for AdminFeed {
    type Result = MessageResult<ListLive>;

    fn handle(&mut self, _: ListLive, _: &mut Self::Context) -> Self::Result {
        let mut sessions: Vec<SessionView> = self.live.values().cloned().collect();
        sessions.sort_by(urgency);
        MessageResult(sessions)
    }
}
