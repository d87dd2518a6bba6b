//! SessionRegistry: finds the live actor of a session id, rebuilds it from the
//! store after a restart, or starts a fresh session. Actors remove themselves
//! when they stop.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Recipient};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::actor::SessionActor;
use crate::admin::AdminFeed;
use crate::bot::Responder;
use crate::domain::SessionId;
use crate::report::FinalizeSession;
use crate::scoring::Engine;
use crate::settings::RateSetting;
use crate::store::{SharedStore, StoreError};

/// What every session actor of this node shares.
pub struct SessionDeps {
    pub store: SharedStore,
    pub responder: Arc<dyn Responder>,
    pub engine: Engine,
    pub report: Recipient<FinalizeSession>,
    /// This node's admin feed.
    pub feed: Addr<AdminFeed>,
    pub inactivity_timeout: Duration,
    pub rate: RateSetting,
    pub node: String,
}

pub struct SessionRegistry {
    live: DashMap<SessionId, Addr<SessionActor>>,
    deps: Arc<SessionDeps>,
}

/// Where a session id stands.
#[derive(Debug)]
pub enum Lookup {
    Live(Addr<SessionActor>),
    Finalized,
    Unknown,
}

/// The session a new connection attaches to.
#[derive(Debug)]
pub struct OpenedSession {
    pub id: SessionId,
    pub addr: Addr<SessionActor>,
    pub resumed: bool,
    /// The id the visitor asked for when it could not be resumed.
    pub previous_session_id: Option<String>,
}

impl SessionRegistry {
    pub fn new(deps: SessionDeps) -> Arc<Self> {
        Arc::new(Self {
            live: DashMap::new(),
            deps: Arc::new(deps),
        })
    }

    pub fn deps(&self) -> &Arc<SessionDeps> {
        &self.deps
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The live actor of `id` on this node, without touching the store.
    pub fn get(&self, id: SessionId) -> Option<Addr<SessionActor>> {
        self.live
            .get(&id)
            .map(|a| a.clone())
            .filter(Addr::connected)
    }

    pub fn live_ids(&self) -> Vec<SessionId> {
        self.live.iter().map(|e| *e.key()).collect()
    }

    /// The live actor, or the session rebuilt from the store.
    pub async fn find_or_restore(self: &Arc<Self>, id: SessionId) -> Result<Lookup, StoreError> {
        if let Some(addr) = self.live.get(&id).map(|a| a.clone())
            && addr.connected()
        {
            return Ok(Lookup::Live(addr));
        }
        let Some(stored) = self.deps.store.load(id).await? else {
            return Ok(Lookup::Unknown);
        };
        if stored.finalized {
            return Ok(Lookup::Finalized);
        }
        // Two connections may restore the same session at once: the first
        // actor in the map wins and the other copy is never started.
        let addr = match self.live.entry(id) {
            Entry::Occupied(mut e) if !e.get().connected() => {
                let addr = SessionActor::restore(stored, Arc::clone(self)).start();
                e.insert(addr.clone());
                addr
            }
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(v) => {
                tracing::info!(session_id = %id, "session restored from the store");
                v.insert(SessionActor::restore(stored, Arc::clone(self)).start())
                    .clone()
            }
        };
        Ok(Lookup::Live(addr))
    }

    /// The session for a new connection: the requested one when it is live
    /// or stored and not finalized, else a fresh one.
    pub async fn open(
        self: &Arc<Self>,
        requested: Option<&str>,
    ) -> Result<OpenedSession, StoreError> {
        let mut previous = None;
        if let Some(raw) = requested.filter(|r| !r.is_empty()) {
            if let Some(id) = SessionId::parse(raw)
                && let Lookup::Live(addr) = self.find_or_restore(id).await?
            {
                return Ok(OpenedSession {
                    id,
                    addr,
                    resumed: true,
                    previous_session_id: None,
                });
            }
            previous = Some(raw.chars().take(64).collect());
        }
        Ok(self.open_fresh(previous))
    }

    /// Starts a new session; `previous` is echoed to the widget.
    pub fn open_fresh(self: &Arc<Self>, previous: Option<String>) -> OpenedSession {
        let id = SessionId::new();
        let addr = SessionActor::fresh(id, Arc::clone(self)).start();
        self.live.insert(id, addr.clone());
        OpenedSession {
            id,
            addr,
            resumed: false,
            previous_session_id: previous,
        }
    }

    /// Called by an actor as it stops; leaves a newer actor for the id alone.
    pub(super) fn remove(&self, id: SessionId, addr: &Addr<SessionActor>) {
        self.live.remove_if(&id, |_, current| current == addr);
    }
}
