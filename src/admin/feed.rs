//! AdminFeed: owns this node's live view of every session (SESSION of
//! PROTOCOL §4) and the admin sockets subscribed to it. Changes are coalesced
//! and flushed every `FLUSH` so a busy node sends each admin at most one
//! update per session per flush; frames are serialised once and shared. A
//! subscriber whose mailbox is full is sent a fresh snapshot once it drains,
//! so a slow admin never slows a chat.
//!
//! The feed holds views only while somebody wants them — an admin here, or
//! another node that asked (`interest.rs`) — and says so through
//! `ViewDemand`: with nobody watching, sessions build no views and send the
//! feed nothing, and the first admin's snapshot is gathered from the live
//! sessions themselves. The cluster side is in `feed_cluster.rs`. Takes
//! `SessionEvent` (the live views and closes of this node's sessions),
//! `Subscribe`, `Unsubscribe`, `Watch`, `ListLive`, `RemoteEvent` and
//! `ChannelSubscribed`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use serde::Serialize;

use super::interest::Interest;
use super::messages::*;
use super::replication::FeedEvent;
use crate::cluster::ClusterChannel;
use crate::domain::{Role, TranscriptEntry};
use crate::session::{GetView, SessionRegistry};
use crate::session::{SessionEvent, SessionView, ViewDemand, urgency};

/// Well under the 100 ms the protocol allows from change to admin screen.
const FLUSH: Duration = Duration::from_millis(20);
/// How long a first admin waits for the other nodes to republish their
/// sessions (see `interest.rs`) before it gets its snapshot.
pub(super) const SETTLE: Duration = Duration::from_millis(150);

struct Subscriber {
    socket: Recipient<AdminFrame>,
    watching: Option<String>,
    /// Missed a frame: gets a whole snapshot at the next flush.
    lagging: bool,
}

pub struct AdminFeed {
    pub(super) node: String,
    /// The cluster channel; `None` on a single node without Redis.
    pub(super) bus: Option<ClusterChannel>,
    pub(super) live: HashMap<String, SessionView>,
    subscribers: HashMap<u64, Subscriber>,
    pub(super) dirty: HashSet<String>,
    /// Frames waiting for the next flush, in order (ended sessions, lines).
    pending: Vec<(Option<String>, ByteString)>,
    /// This node's changes waiting to be published to the other nodes.
    pub(super) outgoing: HashMap<String, Vec<TranscriptEntry>>,
    /// Which nodes want this node's changes, and whether this one wants theirs.
    pub(super) interest: Interest,
    /// Told to sessions: whether to send their changes.
    demand: ViewDemand,
    /// Where this node's own views are gathered from when demand starts.
    registry: Arc<SessionRegistry>,
    /// Gatherings in progress (demand holds while they run).
    gathering: usize,
    /// First looks being prepared: their own views gathered, the other
    /// nodes given `SETTLE` to answer. Demand holds until the snapshot is
    /// taken, or the views gathered for it would be dropped meanwhile.
    preparing: usize,
    /// Sessions that ended while views were being gathered.
    closed_while_gathering: HashSet<String>,
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
    /// The feed of `registry`'s sessions; `demand` is what the sessions
    /// read to know whether views are wanted (the one their `Subscribers`
    /// hold).
    pub fn new(
        node: String,
        bus: Option<ClusterChannel>,
        demand: ViewDemand,
        registry: Arc<SessionRegistry>,
    ) -> Self {
        Self {
            node,
            bus,
            demand,
            registry,
            gathering: 0,
            preparing: 0,
            closed_while_gathering: HashSet::new(),
            live: HashMap::new(),
            subscribers: HashMap::new(),
            dirty: HashSet::new(),
            pending: Vec::new(),
            outgoing: HashMap::new(),
            interest: Interest::default(),
        }
    }

    /// A session changed, here or on another node.
    pub(super) fn apply_change(&mut self, view: SessionView, new_entries: &[TranscriptEntry]) {
        if self.holds_newer(&view) {
            return; // a gathered view already newer than this change
        }
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

    pub(super) fn apply_close(
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

    /// A view of this session newer than `view` is already held (a change
    /// and a gathered view can arrive in either order).
    fn holds_newer(&self, view: &SessionView) -> bool {
        self.live
            .get(&view.session_id)
            .is_some_and(|held| held.rev > view.rev)
    }

    pub(super) fn has_subscribers(&self) -> bool {
        !self.subscribers.is_empty()
    }

    /// Whether this node's own sessions' views are held (and kept current).
    pub(super) fn holds_own_views(&self) -> bool {
        self.demand.wanted()
    }

    /// Does anybody want views now: an admin here, another node, or a
    /// gathering still under way?
    fn wanted_now(&mut self) -> bool {
        !self.subscribers.is_empty()
            || self.gathering > 0
            || self.preparing > 0
            || self.interest.remote_wanted(Instant::now())
    }

    /// Nobody wants views any more: sessions stop sending them, and this
    /// node's own are dropped (they would only go stale).
    fn release_views_if_unwanted(&mut self) {
        if self.demand.wanted() && !self.wanted_now() {
            self.demand.set(false);
            let node = self.node.clone();
            self.live.retain(|_, v| v.node != node);
            self.dirty.retain(|id| self.live.contains_key(id));
            self.outgoing.clear();
        }
    }

    /// Starts the demand if it is off, and gathers every live session's
    /// view from the sessions themselves (changes from then on arrive as
    /// `SessionEvent::Changed`; the newer of the two wins by `rev`).
    pub(super) fn gather_own_views(&mut self) -> ResponseActFuture<Self, ()> {
        if self.demand.wanted() {
            return Box::pin(fut::ready(()));
        }
        self.demand.set(true);
        self.gathering += 1;
        let addrs = self.registry.live_addrs();
        let asks = futures_util::future::join_all(addrs.into_iter().map(|a| a.send(GetView)));
        Box::pin(asks.into_actor(self).map(|answers, act, _| {
            act.gathering -= 1;
            for view in answers.into_iter().flatten().flatten() {
                if !act.closed_while_gathering.contains(&view.session_id) && !act.holds_newer(&view)
                {
                    act.live.insert(view.session_id.clone(), view);
                }
            }
            if act.gathering == 0 {
                act.closed_while_gathering.clear();
            }
        }))
    }

    /// Gathers what a first look needs: this node's views, and the other
    /// nodes' when they are not held yet (they are asked, then given
    /// `SETTLE` to answer).
    /// The caller must call `prepared` once it has used the views.
    fn prepare_views(&mut self, ctx: &mut Context<Self>) -> ResponseActFuture<Self, ()> {
        self.preparing += 1;
        let gathered = self.gather_own_views();
        let settle = self.ask_for_remote_views(ctx);
        Box::pin(gathered.then(move |(), act, _| {
            let wait = if settle {
                futures_util::future::Either::Left(actix::clock::sleep(SETTLE))
            } else {
                futures_util::future::Either::Right(futures_util::future::ready(()))
            };
            wait.into_actor(act)
        }))
    }

    /// A first look prepared by `prepare_views` has been taken.
    fn prepared(&mut self) {
        self.preparing = self.preparing.saturating_sub(1);
    }

    /// Admins are watching but the sessions were told nobody is (the demand
    /// lapsed between two admins, say): gather again, so the feed never
    /// stays silent while someone looks at it.
    fn restore_demand_if_watched(&mut self, ctx: &mut Context<Self>) {
        if !self.subscribers.is_empty() && !self.demand.wanted() {
            let gathered = self.gather_own_views();
            ctx.spawn(gathered.map(|(), act, _| {
                act.dirty.extend(act.live.keys().cloned());
            }));
        }
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
            act.release_views_if_unwanted();
            act.restore_demand_if_watched(ctx);
            act.flush();
            metrics::gauge!(crate::telemetry::names::FEED_SESSIONS).set(act.live.len() as f64);
        });
    }
}

impl Handler<SessionEvent> for AdminFeed {
    type Result = ();

    fn handle(&mut self, event: SessionEvent, ctx: &mut Self::Context) {
        match event {
            SessionEvent::Changed { view, new_entries } => {
                self.session_changed(view, new_entries);
            }
            SessionEvent::Closed {
                session_id,
                reason,
                priority,
                report,
            } => self.session_closed(ctx, session_id, reason.as_str(), priority, report),
        }
    }
}

impl AdminFeed {
    fn session_changed(&mut self, view: SessionView, new_entries: Vec<TranscriptEntry>) {
        if !self.demand.wanted() {
            return; // sent just before the demand ended
        }
        if self.bus.is_some() && self.interest.remote_wanted(Instant::now()) {
            self.outgoing
                .entry(view.session_id.clone())
                .or_default()
                .extend(new_entries.iter().cloned());
        }
        self.apply_change(view, &new_entries);
    }

    fn session_closed(
        &mut self,
        ctx: &mut Context<Self>,
        session_id: String,
        reason: &str,
        priority: crate::scoring::Priority,
        report: Option<String>,
    ) {
        if self.gathering > 0 {
            // Its view may be among those being gathered: keep it out.
            self.closed_while_gathering.insert(session_id.clone());
        }
        if !self.live.contains_key(&session_id) {
            return; // never shown (a silent session dropped at its timeout)
        }
        self.outgoing.remove(&session_id);
        self.apply_close(&session_id, reason, priority, report.as_deref());
        let event = FeedEvent::Closed {
            node: self.node.clone(),
            session_id,
            reason: reason.to_owned(),
            priority,
            report,
        };
        let watching = !self.subscribers.is_empty();
        self.publish(ctx, Some(event), watching);
    }
}

impl Handler<Subscribe> for AdminFeed {
    type Result = ResponseActFuture<Self, ByteString>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let prepared = self.prepare_views(ctx);
        // Subscribed only with the snapshot, so no update comes first.
        Box::pin(prepared.map(move |(), act, _| {
            act.prepared();
            act.subscribers.insert(
                msg.subscriber,
                Subscriber {
                    socket: msg.socket,
                    watching: None,
                    lagging: false,
                },
            );
            act.snapshot()
        }))
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
        let prepared = self.prepare_views(ctx);
        Box::pin(prepared.map(|(), act, _| {
            act.prepared();
            let mut sessions: Vec<SessionView> = act.live.values().cloned().collect();
            sessions.sort_by(urgency);
            sessions
        }))
    }
}
