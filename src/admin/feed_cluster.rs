//! The AdminFeed's cluster side: publishing this node's changes on the
//! cluster channel while other nodes want them, announcing this node's own
//! interest, and merging the other nodes' events (`replication.rs`, `interest.rs`).

use std::time::Instant;

use actix::prelude::*;

use super::feed::AdminFeed;
use super::messages::{ChannelSubscribed, RemoteEvent};
use super::replication::FeedEvent;

impl AdminFeed {
    /// Sends this node's batched changes to the other nodes that want them,
    /// and this node's own interest when it is due (`watching`: admins are
    /// connected here).
    pub(super) fn publish(
        &mut self,
        ctx: &mut Context<Self>,
        event: Option<FeedEvent>,
        watching: bool,
    ) {
        let Some(bus) = self.bus.clone() else {
            self.outgoing.clear();
            return;
        };
        let now = Instant::now();
        let mut events = Vec::new();
        if let Some(fresh) = self.interest.announce_due(watching, now) {
            events.push(FeedEvent::Interest {
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
                events.push(FeedEvent::Changed {
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
    pub(super) fn republish_own(&mut self) {
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
    pub(super) fn drop_lapsed_remote_views(&mut self) {
        if self.interest.lapsed(self.has_subscribers(), Instant::now()) {
            let node = self.node.clone();
            self.live.retain(|_, v| v.node == node);
            self.dirty.retain(|id| self.live.contains_key(id));
        }
    }

    /// When this node does not hold the other nodes' sessions yet, asks for
    /// them; `true` when an answer should be waited for (`SETTLE`).
    pub(super) fn ask_for_remote_views(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.bus.is_none() || self.interest.holding() {
            return false;
        }
        self.publish(ctx, None, true);
        true
    }
}

impl Handler<RemoteEvent> for AdminFeed {
    type Result = ();

    fn handle(&mut self, msg: RemoteEvent, ctx: &mut Self::Context) {
        match msg.0 {
            FeedEvent::Changed { sessions, .. } => {
                for (view, lines) in sessions {
                    self.apply_change(view, &lines);
                }
            }
            FeedEvent::Closed {
                session_id,
                reason,
                priority,
                report,
                ..
            } => {
                self.apply_close(&session_id, &reason, priority, report.as_deref());
            }
            FeedEvent::Hello { .. } => {
                // A node joined (nodes of earlier versions expect this).
                if self.holds_own_views() {
                    self.republish_own();
                    let watching = self.has_subscribers();
                    self.publish(ctx, None, watching);
                }
            }
            FeedEvent::Interest { node, fresh } => {
                if self.interest.heard(&node, fresh, Instant::now()) {
                    // Everything this node holds goes out, once its own
                    // views are in.
                    let gathered = self.gather_own_views();
                    ctx.spawn(gathered.map(|(), act, ctx| {
                        act.republish_own();
                        let watching = act.has_subscribers();
                        act.publish(ctx, None, watching);
                    }));
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
