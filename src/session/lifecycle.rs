//! The end of a session's life: the inactivity timer and the one finalize
//! path that the timer, the `end` frame, `POST /end_session` and the admin
//! all go through.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::actor::{Lifecycle, SessionActor};
use super::events::SessionEvent;
use super::messages::EndOutcome;
use crate::domain::EndReason;
use crate::report::{FinalizeSession, FinalizedSession};
use crate::telemetry::names;
use crate::wire::ServerFrame;

/// How soon a finalize that could not reach the store is tried again.
const FINALIZE_RETRY: Duration = Duration::from_secs(5);

impl SessionActor {
    /// Arms the timer for the deadline the session already had: a restored
    /// session keeps its deadline (last visitor activity + timeout).
    pub(super) fn start_inactivity_timer(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.registry.deps().inactivity_timeout;
        let idle = (Utc::now() - self.last_interaction)
            .to_std()
            .unwrap_or_default();
        self.schedule_inactivity(ctx, timeout.saturating_sub(idle));
    }

    /// Visitor activity: the full timeout starts again.
    pub(super) fn reset_inactivity_timer(&mut self, ctx: &mut Context<Self>) {
        let timeout = self.registry.deps().inactivity_timeout;
        self.schedule_inactivity(ctx, timeout);
    }

    fn schedule_inactivity(&mut self, ctx: &mut Context<Self>, wait: Duration) {
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.timer = Some(ctx.run_later(wait, |act, ctx| {
            act.timer = None;
            if act.registry.deps().shutdown.stopping() {
                // A stopping node finalizes nothing: the session stays in
                // the store for a resume elsewhere or the sweeper.
                return;
            }
            act.finalize(ctx, EndReason::Inactivity, None);
        }));
    }

    /// The last socket of a session nobody said anything in has gone: drop
    /// it after `empty_session_grace` (a reload or a reconnect comes back
    /// sooner) rather than at the full inactivity timeout, so open/close
    /// churn does not pile up actors. Nothing of it is in the store.
    pub(super) fn drop_when_abandoned(&mut self, ctx: &mut Context<Self>) {
        let grace = self.registry.deps().empty_session_grace;
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.timer = Some(ctx.run_later(grace, |act, ctx| {
            act.timer = None;
            if act.connections.is_empty() && !act.has_activity() {
                act.finalize(ctx, EndReason::Inactivity, None);
            } else {
                act.start_inactivity_timer(ctx);
            }
        }));
    }

    /// Finalizes once: takes the store's guard, tells every connection, hands
    /// the session to the ReportActor, then stops. The actor stops only after
    /// the guard step has finished, so nothing is dropped half-way.
    pub(super) fn finalize(
        &mut self,
        ctx: &mut Context<Self>,
        reason: EndReason,
        reply: Option<tokio::sync::oneshot::Sender<EndOutcome>>,
    ) {
        let answer = |reply: Option<tokio::sync::oneshot::Sender<EndOutcome>>, outcome| {
            if let Some(tx) = reply {
                let _ = tx.send(outcome);
            }
        };
        if self.state != Lifecycle::Live {
            answer(reply, EndOutcome::AlreadyFinalized);
            return;
        }
        self.state = Lifecycle::Finalizing;
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if reason == EndReason::Inactivity && !self.contact_collected && self.total_queries == 0 {
            // Nobody said anything: nothing to report, nothing was stored.
            metrics::counter!(names::SESSIONS_DROPPED).increment(1);
            tracing::debug!(session_id = %self.id, "empty session dropped at its timeout");
            self.end(ctx, reason, false);
            answer(reply, EndOutcome::Finalized);
            return;
        }
        let store = Arc::clone(&self.registry.deps().store);
        let id = self.id;
        let guard = async move { store.try_finalize(id).await };
        ctx.wait(guard.into_actor(self).map(move |taken, act, ctx| {
            let outcome = match taken {
                Ok(true) => {
                    act.hand_to_report(reason);
                    EndOutcome::Finalized
                }
                Ok(false) => {
                    tracing::info!(session_id = %act.id, "session was already finalized elsewhere");
                    EndOutcome::AlreadyFinalized
                }
                Err(err) => {
                    tracing::warn!(session_id = %act.id, error = %err, "cannot take the finalized guard; will retry");
                    act.state = Lifecycle::Live;
                    act.schedule_inactivity(ctx, FINALIZE_RETRY);
                    answer(reply, EndOutcome::Unavailable);
                    return;
                }
            };
            act.end(ctx, reason, outcome == EndOutcome::Finalized);
            answer(reply, outcome);
        }));
    }

    fn end(&mut self, ctx: &mut Context<Self>, reason: EndReason, reported: bool) {
        self.state = Lifecycle::Ended;
        self.registry.deps().events.send(SessionEvent::Closed {
            session_id: self.id.to_string(),
            reason,
            priority: self.score.priority,
            report: reported.then(|| self.id.report_file_name()),
        });
        let frame = ServerFrame::Ended {
            reason: reason.as_str(),
        }
        .encode();
        self.broadcast(&frame, true, None);
        self.connections.clear();
        ctx.stop();
    }

    fn hand_to_report(&mut self, reason: EndReason) {
        let deps = self.registry.deps();
        metrics::counter!(names::SESSIONS_FINALIZED, "reason" => reason.as_str()).increment(1);
        let session = FinalizedSession {
            id: self.id,
            contact: std::mem::take(&mut self.contact),
            lead: self.score.clone(),
            total_queries: self.total_queries,
            first_interaction: self.first_interaction,
            last_interaction: self.last_interaction,
            finalized_at: Utc::now(),
            reason,
            node: deps.node.clone(),
            transcript: std::mem::take(&mut self.transcript),
        };
        tracing::info!(session_id = %self.id, reason = reason.as_str(), priority = self.score.priority.as_str(), "session finalized");
        deps.report.do_send(FinalizeSession {
            session,
            done: self.report_waiter.take(),
        });
    }
}
