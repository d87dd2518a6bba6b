//! Sweeper: finds sessions whose owner is gone (kill -9, power loss, a
//! restart) and finalizes them once after their deadline. It reads the
//! deadline index (`leadchat:deadlines`), so a sweep costs O(expired), not
//! O(live). It also finishes finalizations that took the guard but died
//! before the archive committed. Every node runs one; the finalized guard and
//! the idempotent archive make concurrent sweepers safe. It also keeps this
//! node's heartbeat key alive. Takes no messages; runs on timers.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::registry::{Lookup, SessionRegistry};
use crate::archive::Archive;
use crate::domain::{EndReason, SessionId};
use crate::report::{FinalizeSession, FinalizedSession};
use crate::store::StoredSession;

/// Deadlines this recent are left to their owner's own timer.
const GRACE: Duration = Duration::from_secs(2);
/// A taken guard without an archive row this long after the deadline means
/// the finalizing node died half-way.
const STALLED_FINALIZE: Duration = Duration::from_secs(60);
const BATCH: usize = 200;

pub struct Sweeper {
    registry: Arc<SessionRegistry>,
    archive: Archive,
    interval: Duration,
    sweeping: bool,
}

impl Sweeper {
    pub fn new(registry: Arc<SessionRegistry>, archive: Archive, interval: Duration) -> Self {
        Self {
            registry,
            archive,
            interval,
            sweeping: false,
        }
    }

    fn heartbeat_period(&self) -> Duration {
        self.interval.min(Duration::from_secs(5))
    }

    fn beat(&self, ctx: &mut Context<Self>) {
        let deps = Arc::clone(self.registry.deps());
        if deps.shutdown.stopping() {
            // Stopped nodes hold no sessions: the store was told so.
            return;
        }
        let ttl = self.heartbeat_period() * 3;
        ctx.spawn(
            async move {
                if let Err(err) = deps.store.heartbeat(&deps.node, ttl).await {
                    tracing::warn!(error = %err, "cannot renew this node's heartbeat");
                }
            }
            .into_actor(self),
        );
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping || self.registry.deps().shutdown.stopping() {
            // A stopping node takes over no sessions: another node or the
            // next start sweeps them.
            return;
        }
        self.sweeping = true;
        let registry = Arc::clone(&self.registry);
        let archive = self.archive.clone();
        ctx.spawn(
            async move { sweep_once(&registry, &archive).await }
                .into_actor(self)
                .map(|swept, act, _| {
                    act.sweeping = false;
                    if swept > 0 {
                        tracing::info!(
                            sessions = swept,
                            "orphaned sessions finalized by the sweeper"
                        );
                    }
                }),
        );
    }
}

impl Actor for Sweeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.beat(ctx);
        ctx.run_interval(self.heartbeat_period(), |act, ctx| act.beat(ctx));
        ctx.run_interval(self.interval, |act, ctx| act.sweep(ctx));
    }
}

/// One pass over the expired part of the index; returns how many sessions it
/// took over.
pub async fn sweep_once(registry: &Arc<SessionRegistry>, archive: &Archive) -> usize {
    let deps = Arc::clone(registry.deps());
    let now = Utc::now();
    let before = now - chrono::Duration::from_std(GRACE).unwrap_or_default();
    let ids = match deps.store.expired(before, BATCH).await {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!(error = %err, "sweep skipped: store unavailable");
            return 0;
        }
    };
    let mut taken = 0;
    for id in ids {
        if registry.get(id).is_some() {
            continue; // live here: its own timer finalizes it
        }
        match sweep_session(registry, archive, id).await {
            Ok(true) => taken += 1,
            Ok(false) => {}
            Err(err) => tracing::warn!(session_id = %id, error = %err, "cannot sweep session"),
        }
    }
    taken
}

async fn sweep_session(
    registry: &Arc<SessionRegistry>,
    archive: &Archive,
    id: SessionId,
) -> Result<bool, String> {
    let deps = registry.deps();
    let store = &deps.store;
    let Some(stored) = store.load(id).await.map_err(|e| e.to_string())? else {
        store.forget_deadline(id).await.map_err(|e| e.to_string())?;
        return Ok(false);
    };
    if stored.finalized {
        if archive
            .get_session(&id.to_string())
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            store.forget_deadline(id).await.map_err(|e| e.to_string())?;
            return Ok(false);
        }
        let deadline = stored.last_interaction.unwrap_or_else(Utc::now)
            + chrono::Duration::from_std(deps.inactivity_timeout).unwrap_or_default();
        let stalled = Utc::now() - deadline
            > chrono::Duration::from_std(STALLED_FINALIZE).unwrap_or_default();
        if !stalled {
            return Ok(false);
        }
        // The guard was taken but the archive never got it: finish the job.
        // The archive is idempotent, so a slow original finalizer is harmless.
        tracing::warn!(session_id = %id, "finalization stalled before the archive; completing it");
        deps.report.do_send(FinalizeSession {
            session: finalized_from_store(stored, &deps.node),
            done: None,
        });
        return Ok(true);
    }
    if let Some(owner) = &stored.node
        && owner != &deps.node
        && store.node_alive(owner).await.map_err(|e| e.to_string())?
    {
        return Ok(false); // its owner is alive and will finalize it
    }
    // Orphan: restore it here; its deadline has passed, so the restored
    // actor finalizes at once through the one finalize path.
    match registry
        .find_or_restore(id)
        .await
        .map_err(|e| e.to_string())?
    {
        Lookup::Live(_) => Ok(true),
        Lookup::Finalized | Lookup::Unknown => Ok(false),
    }
}

fn finalized_from_store(stored: StoredSession, node: &str) -> FinalizedSession {
    let now = Utc::now();
    let first = stored
        .first_interaction
        .or(stored.entries.first().map(|e| e.at))
        .unwrap_or(now);
    let lead = stored.lead.unwrap_or_else(|| crate::store::LeadRecord {
        score: crate::scoring::LeadScore::default(),
        total_queries: 0,
    });
    FinalizedSession {
        id: stored.id,
        contact: stored.contact,
        lead: lead.score,
        total_queries: lead.total_queries,
        first_interaction: first,
        last_interaction: stored.last_interaction.unwrap_or(first),
        finalized_at: now,
        reason: EndReason::Inactivity,
        node: node.to_owned(),
        transcript: stored.entries,
    }
}
