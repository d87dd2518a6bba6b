//! Live session state behind one interface: Redis in production, the
//! embedded SQLite store when no Redis is configured (one node, durable on
//! local disk), and memory for tests that want it. All pass the same
//! contract tests (`tests/api/store_contract.rs`).

mod buffer;
pub mod conn;
mod embedded;
pub mod keys;
mod memory;
pub mod migrate;
mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Contact, SessionId, TranscriptEntry};
use crate::scoring::LeadScore;

pub use buffer::WriteBuffer;
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use redis::RedisStore;

/// How long the finalized guard (and the finished session's keys) live.
pub const FINALIZED_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The lead figures as they are kept in `lead:{ID}`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRecord {
    pub score: LeadScore,
    pub total_queries: u32,
}

/// One visitor event's worth of changes, written in a single round trip.
#[derive(Debug, Clone)]
pub struct SessionUpdate {
    pub id: SessionId,
    /// Written when it changed (the contact frame), else left as it is.
    pub contact: Option<Contact>,
    pub new_entries: Vec<TranscriptEntry>,
    pub lead: LeadRecord,
    pub first_interaction: DateTime<Utc>,
    pub last_interaction: DateTime<Utc>,
    /// When the session times out if nothing else happens (the sweep index).
    pub deadline: DateTime<Utc>,
    /// The node that owns the session now.
    pub node: String,
    /// The first write of this session's actor: it also writes what later
    /// writes leave alone (the owning node, the first interaction, the
    /// `user_data_collected` default).
    pub first_write: bool,
    /// The signals differ from the last write; they are encoded only then.
    pub signals_changed: bool,
}

/// A session as read back from the store.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub id: SessionId,
    pub contact: Contact,
    pub contact_collected: bool,
    pub lead: Option<LeadRecord>,
    pub entries: Vec<TranscriptEntry>,
    pub first_interaction: Option<DateTime<Utc>>,
    pub last_interaction: Option<DateTime<Utc>>,
    pub finalized: bool,
    /// The node that last wrote it.
    pub node: Option<String>,
}

impl StoredSession {
    /// What is left of a session whose data went to its report.
    pub fn finalized_stub(id: SessionId) -> Self {
        Self {
            id,
            contact: Contact::default(),
            contact_collected: false,
            lead: None,
            entries: Vec::new(),
            first_interaction: None,
            last_interaction: None,
            finalized: true,
            node: None,
        }
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Everything known about a session; `None` when nothing was ever stored.
    async fn load(&self, id: SessionId) -> Result<Option<StoredSession>, StoreError>;

    /// Appends entries and rewrites the contact and lead figures, atomically.
    async fn persist(&self, update: &SessionUpdate) -> Result<(), StoreError>;

    /// Takes the finalized guard (`SET NX`, 7-day TTL). `true` for the one
    /// caller that took it; everyone else gets `false`.
    async fn try_finalize(&self, id: SessionId) -> Result<bool, StoreError>;

    async fn is_finalized(&self, id: SessionId) -> Result<bool, StoreError>;

    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Sessions whose deadline is before `before`, oldest first: the
    /// sweeper's work list, O(expired) however many sessions are live.
    async fn expired(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Takes a session off the deadline index once its report is archived.
    async fn forget_deadline(&self, id: SessionId) -> Result<(), StoreError>;

    /// Says this node is alive for `ttl`.
    async fn heartbeat(&self, node: &str, ttl: std::time::Duration) -> Result<(), StoreError>;

    async fn node_alive(&self, node: &str) -> Result<bool, StoreError>;

    /// Says this node has stopped (its sessions' actors are gone): another
    /// node resumes them at once instead of waiting out the heartbeat.
    async fn node_stopped(&self, node: &str) -> Result<(), StoreError>;

    /// Records `node` as the session's owner (a restore or a handover).
    async fn set_owner(&self, id: SessionId, node: &str) -> Result<(), StoreError>;

    /// A short name for logs and `/ready`.
    fn kind(&self) -> &'static str;

    /// Waits (at most `within`) until no write of this node is held back
    /// in memory; `true` once everything acknowledged is in the store.
    async fn flushed(&self, within: std::time::Duration) -> bool {
        let _ = within;
        true
    }
}

pub type SharedStore = Arc<dyn SessionStore>;
