//! SessionRegistry: finds the live actor of a session id, rebuilds it from the
//! store after a restart, or starts a fresh session. Actors remove themselves
//! when they stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::{Actor, Addr, Recipient};
use bytestring::ByteString;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::actor::SessionActor;
use super::messages::SocketFrame;
use super::peers::{PeerEvent, RemoteEnd};
use super::relay::RelayHub;
use crate::bot::Responder;
use crate::cluster::ClusterChannel;
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
    /// Who hears the sessions: the admin feed's live views, and the
    /// domain events' subscribers.
    pub events: super::Subscribers,
    /// The cluster channel (Redis only): asks another node to hand over.
    pub cluster: Option<ClusterChannel>,
    pub inactivity_timeout: Duration,
    /// How long a fresh session nobody spoke in outlives its last socket.
    pub empty_session_grace: Duration,
    pub rate: RateSetting,
    pub bounds: SessionBounds,
    pub node: String,
    /// The node's stop signal: sockets close, timers finalize nothing.
    pub shutdown: crate::shutdown::Shutdown,
}

/// The per-session bounds of PROTOCOL §2.
#[derive(Debug, Clone, Copy)]
pub struct SessionBounds {
    pub max_messages: u32,
    pub history_replay: usize,
    pub connections_per_session: usize,
}

impl SessionBounds {
    pub fn from_limits(limits: &crate::settings::Limits) -> Self {
        Self {
            max_messages: limits.max_messages,
            history_replay: limits.history_replay,
            connections_per_session: limits.connections_per_session,
        }
    }
}

pub struct SessionRegistry {
    live: DashMap<SessionId, Addr<SessionActor>>,
    deps: Arc<SessionDeps>,
    /// Restores waiting for another node to release a session.
    handovers: DashMap<String, tokio::sync::oneshot::Sender<()>>,
    /// Admin ends waiting for the owning node's answer.
    forwarded_ends: DashMap<String, tokio::sync::oneshot::Sender<RemoteEnd>>,
    /// Tabs relayed to and from other nodes.
    relay: Arc<RelayHub>,
    /// Connection ids of this node: visitor and admin sockets, and the
    /// stand-ins of tabs on other nodes.
    next_conn: AtomicU64,
}

/// How long a restore waits for the previous owner to let go; a dead owner
/// never answers, and its lease (heartbeat) is checked first.
const HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// Where a session id stands.
#[derive(Debug)]
pub enum Lookup {
    Live(Addr<SessionActor>),
    Finalized,
    Unknown,
}

/// A socket asking for a session: the tab a relay would serve.
pub struct Tab {
    pub conn_id: u64,
    pub socket: Recipient<SocketFrame>,
}

/// How a connection reaches its session.
#[derive(Debug)]
pub enum Via {
    /// The session's actor is on this node.
    Local(Addr<SessionActor>),
    /// The session stays on `owner`, where another tab of the visitor is
    /// attached; this tab is relayed to it and `frame` is its `session`
    /// frame.
    Relayed { owner: String, frame: ByteString },
}

/// The session a new connection attaches to.
#[derive(Debug)]
pub struct OpenedSession {
    pub id: SessionId,
    pub via: Via,
    pub resumed: bool,
    /// The id the visitor asked for when it could not be resumed.
    pub previous_session_id: Option<String>,
}

impl SessionRegistry {
    pub fn new(deps: SessionDeps) -> Arc<Self> {
        let relay = Arc::new(RelayHub::new(deps.node.clone(), deps.cluster.clone()));
        Arc::new(Self {
            live: DashMap::new(),
            deps: Arc::new(deps),
            handovers: DashMap::new(),
            forwarded_ends: DashMap::new(),
            relay,
            next_conn: AtomicU64::new(1),
        })
    }

    pub fn relay(&self) -> &Arc<RelayHub> {
        &self.relay
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether a socket asking for `id` will resume it (live here, or stored
    /// and not finalized), without restoring or taking it over.
    pub async fn resumable(&self, id: SessionId) -> Result<bool, StoreError> {
        if self.get(id).is_some() {
            return Ok(true);
        }
        Ok(self
            .deps
            .store
            .load(id)
            .await?
            .is_some_and(|s| !s.finalized))
    }

    /// When another live node holds `id` with a socket of its own there,
    /// attaches `tab` to it through the relay; its `session` frame then.
    async fn relay_to_owner(
        &self,
        id: SessionId,
        tab: &Tab,
    ) -> Result<Option<(String, ByteString)>, StoreError> {
        if !self.relay.enabled() || self.get(id).is_some() {
            return Ok(None);
        }
        let me = self.deps.node.as_str();
        let owner = match self.deps.store.load(id).await? {
            Some(s) if !s.finalized => match s.node {
                Some(owner) if owner != me => owner,
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        if !self.deps.store.node_alive(&owner).await? {
            return Ok(None);
        }
        let frame = self
            .relay
            .open_remote(&owner, id, tab.conn_id, tab.socket.clone(), HANDOVER_WAIT)
            .await;
        Ok(frame.map(|f| (owner, f)))
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

    /// Every live actor of this node.
    pub fn live_addrs(&self) -> Vec<Addr<SessionActor>> {
        self.live.iter().map(|e| e.value().clone()).collect()
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
        let Some(mut stored) = self.deps.store.load(id).await? else {
            return Ok(Lookup::Unknown);
        };
        if stored.finalized {
            return Ok(Lookup::Finalized);
        }
        if self
            .take_over_from_owner(id, stored.node.as_deref())
            .await?
        {
            // Load again: the previous owner's last writes are in now.
            match self.deps.store.load(id).await? {
                Some(s) if !s.finalized => stored = s,
                Some(_) => return Ok(Lookup::Finalized),
                None => return Ok(Lookup::Unknown),
            }
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

    /// When another live node holds the session, asks it (over the cluster
    /// channel) to stop its actor after its pending writes, and waits for
    /// that; then records this node as the owner. `true` when a handover ran.
    async fn take_over_from_owner(
        &self,
        id: SessionId,
        owner: Option<&str>,
    ) -> Result<bool, StoreError> {
        let me = self.deps.node.as_str();
        let Some(bus) = &self.deps.cluster else {
            return Ok(false);
        };
        let moved = match owner {
            Some(owner) if owner != me && self.deps.store.node_alive(owner).await? => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.handovers.insert(id.to_string(), tx);
                let request = PeerEvent::Release {
                    node: me.to_owned(),
                    owner: owner.to_owned(),
                    session_id: id.to_string(),
                };
                bus.publish(&request).await;
                if tokio::time::timeout(HANDOVER_WAIT, rx).await.is_err() {
                    tracing::warn!(session_id = %id, owner, "previous owner did not release the session in time");
                }
                self.handovers.remove(&id.to_string());
                true
            }
            _ => false,
        };
        self.deps.store.set_owner(id, me).await?;
        Ok(moved)
    }

    /// Asks the live node that owns `id` to end it (an admin here ended a
    /// session that lives elsewhere). `None` when no other live node holds
    /// it or the owner did not answer in time: the caller takes the session
    /// over and ends it here.
    pub async fn end_on_owner(
        &self,
        id: SessionId,
        reason: crate::domain::EndReason,
    ) -> Result<Option<RemoteEnd>, StoreError> {
        let me = self.deps.node.as_str();
        let Some(bus) = &self.deps.cluster else {
            return Ok(None);
        };
        let Some(stored) = self.deps.store.load(id).await? else {
            return Ok(None);
        };
        let owner = match stored.node.as_deref() {
            Some(owner) if owner != me && !stored.finalized => owner.to_owned(),
            _ => return Ok(None),
        };
        if !self.deps.store.node_alive(&owner).await? {
            return Ok(None);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.forwarded_ends.insert(id.to_string(), tx);
        bus.publish(&PeerEvent::EndRemote {
            node: me.to_owned(),
            owner: owner.clone(),
            session_id: id.to_string(),
            reason,
        })
        .await;
        let answer = tokio::time::timeout(HANDOVER_WAIT, rx).await;
        self.forwarded_ends.remove(&id.to_string());
        match answer {
            Ok(Ok(RemoteEnd::NotHere)) | Ok(Err(_)) => Ok(None),
            Ok(Ok(outcome)) => Ok(Some(outcome)),
            Err(_) => {
                tracing::warn!(session_id = %id, owner, "owner did not answer a forwarded end in time");
                Ok(None)
            }
        }
    }

    /// The owner answered a forwarded end (cluster channel).
    pub fn forwarded_end_done(&self, session_id: &str, outcome: RemoteEnd) {
        if let Some((_, tx)) = self.forwarded_ends.remove(session_id) {
            let _ = tx.send(outcome);
        }
    }

    /// The previous owner released `session_id` (cluster channel).
    pub fn handover_done(&self, session_id: &str) {
        if let Some((_, tx)) = self.handovers.remove(session_id) {
            let _ = tx.send(());
        }
    }

    /// The session for a new connection: the requested one when it is live
    /// or stored and not finalized, else a fresh one.
    pub async fn open(
        self: &Arc<Self>,
        requested: Option<&str>,
        tab: &Tab,
    ) -> Result<OpenedSession, StoreError> {
        let mut previous = None;
        if let Some(raw) = requested.filter(|r| !r.is_empty()) {
            if let Some(id) = SessionId::parse(raw)
                && let Some((owner, frame)) = self.relay_to_owner(id, tab).await?
            {
                return Ok(OpenedSession {
                    id,
                    via: Via::Relayed { owner, frame },
                    resumed: true,
                    previous_session_id: None,
                });
            }
            if let Some(id) = SessionId::parse(raw)
                && let Lookup::Live(addr) = self.find_or_restore(id).await?
            {
                return Ok(OpenedSession {
                    id,
                    via: Via::Local(addr),
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
            via: Via::Local(addr),
            resumed: false,
            previous_session_id: previous,
        }
    }

    /// Called by an actor as it stops; leaves a newer actor for the id alone.
    pub(super) fn remove(&self, id: SessionId, addr: &Addr<SessionActor>) {
        self.live.remove_if(&id, |_, current| current == addr);
    }
}
