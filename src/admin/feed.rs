//! AdminFeed: owns this node's live view of every session (SESSION of
//! PROTOCOL §4) and the admin sockets subscribed to it. Changes are coalesced
//! and flushed every `FLUSH` so a busy node sends each admin at most one
//! update per session per flush; frames are serialised once and shared. A
//! subscriber whose mailbox is full is sent a fresh snapshot once it drains,
//! so a slow admin never slows a chat. Takes `SessionChanged`,
//! `SessionClosed`, `Subscribe`, `Unsubscribe`, `Watch` and `ListLive`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use serde::Serialize;

use super::bus::{BusEvent, FeedBus};
use super::interest::Interest;
use super::messages::*;
use super::view::{SessionView, urgency};
use crate::domain::{Role, TranscriptEntry};

/// Well under the 100 ms the protocol allows from change to admin screen.
const FLUSH: Duration = Duration::from_millis(20);
/// How long a first admin waits for the other nodes to republish their
/// sessions (see `interest.rs`) before it gets its snapshot.
const SETTLE: Duration = Duration::from_millis(150);

struct Subscriber {
    socket: Recipient<AdminFrame>,
    watching: Option<String>,
    /// Missed a frame: gets a whole snapshot at the next flush.
    lagging: bool,
}

pub struct AdminFeed {
    node: String,
    /// The cluster channel; `None` on a single node without Redis.
    bus: Option<FeedBus>,
    live: HashMap<String, SessionView>,
    subscribers: HashMap<u64, Subscriber>,
    dirty: HashSet<String>,
    /// Frames waiting for the next flush, in order (ended sessions, lines).
    pending: Vec<(Option<String>, ByteString)>,
    /// This node's changes waiting to be published to the other nodes.
    outgoing: HashMap<String, Vec<TranscriptEntry>>,
    /// Which nodes want this node's changes, and whether this one wants theirs.
    interest: Interest,
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
    pub fn new(node: String, bus: Option<FeedBus>) -> Self {
        Self {
            node,
            bus,
            live: HashMap::new(),
            subscribers: HashMap::new(),
            dirty: HashSet::new(),
            pending: Vec::new(),
            outgoing: HashMap::new(),
            interest: Interest::default(),
        }
    }

    /// A session changed, here or on another node.
    fn apply_change(&mut self, view: SessionView, new_entries: &[TranscriptEntry]) {
        let id = view.session_id.clone();
        let watched = self
            .subscribers
            .values()
            .any(|s| s.watching.as_deref() == Some(id.as_str()));
        if watched {
            for e in new_entries {
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
        self.live.insert(id.clone(), view);
        self.dirty.insert(id);
    }

    fn apply_close(
        &mut self,
        session_id: &str,
        reason: &str,
        priority: crate::scoring::Priority,
        report: Option<&str>,
    ) {
        let known = self.live.remove(session_id).is_some();
        self.dirty.remove(session_id);
        if known {
            let frame = encode(&FeedFrame::SessionEnded {
                session_id,
                reason,
                priority,
                report,
            });
            self.pending.push((None, frame));
        }
    }

    /// Sends this node's batched changes to the other nodes that want them,
    /// and this node's own interest when it is due (`watching`: admins are
    /// connected here).
    fn publish(&mut self, ctx: &mut Context<Self>, event: Option<BusEvent>, watching: bool) {
        let Some(bus) = self.bus.clone() else {
            self.outgoing.clear();
            return;
        };
        let now = Instant::now();
        let mut events = Vec::new();
        if let Some(fresh) = self.interest.announce_due(watching, now) {
            events.push(BusEvent::Interest {
                node: self.node.clone(),
                fresh,
            });
        }
        if self.interest.remote_wanted(now) {
            if !self.outgoing.is_empty() {
                let sessions = std::mem::take(&mut self.outgoing)
                    .into_iter()
                    .filter_map(|(id, lines)| self.live.get(&id).map(|v| (v.clone(), lines)))
                    .collect();
                events.push(BusEvent::Changed {
                    node: self.node.clone(),
                    sessions,
                });
            }
            events.extend(event);
        } else {
            self.outgoing.clear();
        }
        if events.is_empty() {
            return;
        }
        ctx.spawn(
            async move {
                for e in &events {
                    bus.publish(e).await;
                }
            }
            .into_actor(self),
        );
    }

    /// Every session this node owns goes out with the next publish.
    fn republish_own(&mut self) {
        let mine: Vec<String> = self
            .live
            .values()
            .filter(|v| v.node == self.node)
            .map(|v| v.session_id.clone())
            .collect();
        for id in mine {
            self.outgoing.entry(id).or_default();
        }
    }

    /// Without admins for a while, this node stops holding the other nodes'
    /// sessions: they may have stopped publishing, and stale views must not
    /// reach a later snapshot.
    fn drop_lapsed_remote_views(&mut self) {
        if self
            .interest
            .lapsed(!self.subscribers.is_empty(), Instant::now())
        {
            let node = self.node.clone();
            self.live.retain(|_, v| v.node == node);
            self.dirty.retain(|id| self.live.contains_key(id));
        }
    }

    /// When this node does not hold the other nodes' sessions yet, asks for
    /// them; `true` when an answer should be waited for (`SETTLE`).
    fn ask_for_remote_views(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.bus.is_none() || self.interest.holding() {
            return false;
        }
        self.publish(ctx, None, true);
        true
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
        if self.subscribers.is_empty() {
            // Nobody is watching: the live map is enough for a later snapshot.
            self.dirty.clear();
            self.pending.clear();
            return;
        }
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
        ctx.run_interval(FLUSH, |act, ctx| {
            let watching = !act.subscribers.is_empty();
            act.publish(ctx, None, watching);
            act.drop_lapsed_remote_views();
            act.flush();
            metrics::gauge!(crate::telemetry::names::FEED_SESSIONS).set(act.live.len() as f64);
        });
    }
}

impl Handler<SessionChanged> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: SessionChanged, _: &mut Self::Context) {
        if self.bus.is_some() && self.interest.remote_wanted(Instant::now()) {
            self.outgoing
                .entry(msg.view.session_id.clone())
                .or_default()
                .extend(msg.new_entries.iter().cloned());
        }
        self.apply_change(msg.view, &msg.new_entries);
    }
}

impl Handler<SessionClosed> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, ctx: &mut Self::Context) {
        if !self.live.contains_key(&msg.session_id) {
            return; // never shown (a silent session dropped at its timeout)
        }
        self.outgoing.remove(&msg.session_id);
        self.apply_close(
            &msg.session_id,
            msg.reason,
            msg.priority,
            msg.report.as_deref(),
        );
        let event = BusEvent::Closed {
            node: self.node.clone(),
            session_id: msg.session_id,
            reason: msg.reason.to_owned(),
            priority: msg.priority,
            report: msg.report,
        };
        let watching = !self.subscribers.is_empty();
        self.publish(ctx, Some(event), watching);
    }
}

impl Handler<RemoteEvent> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: RemoteEvent, ctx: &mut Self::Context) {
        match msg.0 {
            BusEvent::Changed { sessions, .. } => {
                for (view, lines) in sessions {
                    self.apply_change(view, &lines);
                }
            }
            BusEvent::Closed {
                session_id,
                reason,
                priority,
                report,
                ..
            } => {
                self.apply_close(&session_id, &reason, priority, report.as_deref());
            }
            // Handled by the listener and the registry, not the feed.
            BusEvent::Release { .. } | BusEvent::Released { .. } => {}
            BusEvent::Hello { .. } => {
                // A node joined (nodes of earlier versions expect this).
                self.republish_own();
                let watching = !self.subscribers.is_empty();
                self.publish(ctx, None, watching);
            }
            BusEvent::Interest { node, fresh } => {
                if self.interest.heard(&node, fresh, Instant::now()) {
                    self.republish_own();
                    let watching = !self.subscribers.is_empty();
                    self.publish(ctx, None, watching);
                }
            }
        }
    }
}

impl Handler<ChannelSubscribed> for AdminFeed {
    type Result = ();

    fn handle(&mut self, _: ChannelSubscribed, _: &mut Self::Context) {
        self.interest.reset();
    }
}

impl Handler<Subscribe> for AdminFeed {
    type Result = ResponseActFuture<Self, ByteString>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let settle = self.ask_for_remote_views(ctx);
        let subscribe = move |act: &mut Self| {
            act.subscribers.insert(
                msg.subscriber,
                Subscriber {
                    socket: msg.socket,
                    watching: None,
                    lagging: false,
                },
            );
            act.snapshot()
        };
        if settle {
            // Subscribed only with the snapshot, so no update comes first.
            Box::pin(
                actix::clock::sleep(SETTLE)
                    .into_actor(self)
                    .map(move |(), act, _| subscribe(act)),
            )
        } else {
            Box::pin(fut::ready(subscribe(self)))
        }
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
    type Result = ResponseActFuture<Self, Vec<SessionView>>;

    fn handle(&mut self, _: ListLive, ctx: &mut Self::Context) -> Self::Result {
        let settle = self.ask_for_remote_views(ctx);
        let list = |act: &mut Self| {
            let mut sessions: Vec<SessionView> = act.live.values().cloned().collect();
            sessions.sort_by(urgency);
            sessions
        };
        if settle {
            Box::pin(
                actix::clock::sleep(SETTLE)
                    .into_actor(self)
                    .map(move |(), act, _| list(act)),
            )
        } else {
            Box::pin(fut::ready(list(self)))
        }
    }
}
