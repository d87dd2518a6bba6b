//! Sessions in a concurrent map, gone when the process ends: for tests that
//! want a store without a disk (`embedded_memory`). A node without Redis
//! uses the durable `EmbeddedStore`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{FINALIZED_TTL_SECS, SessionStore, SessionUpdate, StoreError, StoredSession};
use crate::domain::{Contact, SessionId};

#[derive(Debug, Default)]
struct Record {
    session: Option<StoredSession>,
    finalized_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    records: DashMap<SessionId, Record>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops finished sessions whose guard has expired, as Redis TTLs would.
    fn prune(&self) {
        let now = Instant::now();
        self.records
            .retain(|_, r| r.finalized_until.is_none_or(|until| until > now));
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, id: SessionId) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.records.get(&id).and_then(|r| {
            let finalized = r.finalized_until.is_some();
            match &r.session {
                Some(s) => Some(StoredSession {
                    finalized,
                    ..s.clone()
                }),
                None if finalized => Some(StoredSession::finalized_stub(id)),
                None => None,
            }
        }))
    }

    async fn persist(&self, update: &SessionUpdate) -> Result<(), StoreError> {
        let mut record = self.records.entry(update.id).or_default();
        let session = record.session.get_or_insert_with(|| StoredSession {
            id: update.id,
            contact: Contact::default(),
            contact_collected: false,
            lead: None,
            entries: Vec::new(),
            first_interaction: None,
            last_interaction: None,
            finalized: false,
            node: None,
        });
        if let Some(contact) = &update.contact {
            session.contact = contact.clone();
            session.contact_collected = true;
        }
        session.entries.extend_from_slice(&update.new_entries);
        session.lead = Some(update.lead.clone());
        session.first_interaction = Some(update.first_interaction);
        session.last_interaction = Some(update.last_interaction);
        session.node = Some(update.node.clone());
        Ok(())
    }

    async fn try_finalize(&self, id: SessionId) -> Result<bool, StoreError> {
        let until = Instant::now() + Duration::from_secs(FINALIZED_TTL_SECS);
        let took = match self.records.entry(id) {
            Entry::Occupied(mut e) => {
                let r = e.get_mut();
                if r.finalized_until.is_some() {
                    false
                } else {
                    r.finalized_until = Some(until);
                    // The session's data is handed to the report; only the
                    // guard needs to stay.
                    r.session = None;
                    true
                }
            }
            Entry::Vacant(v) => {
                v.insert(Record {
                    session: None,
                    finalized_until: Some(until),
                });
                true
            }
        };
        if took && id.to_string().ends_with('0') {
            // Roughly one call in 32: cheap amortised clean-up.
            self.prune();
        }
        Ok(took)
    }

    async fn is_finalized(&self, id: SessionId) -> Result<bool, StoreError> {
        Ok(self
            .records
            .get(&id)
            .is_some_and(|r| r.finalized_until.is_some_and(|u| u > Instant::now())))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    // The memory store dies with its only node: there are never orphans.
    async fn expired(
        &self,
        _before: chrono::DateTime<chrono::Utc>,
        _limit: usize,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(Vec::new())
    }

    async fn forget_deadline(&self, _id: SessionId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn heartbeat(&self, _node: &str, _ttl: Duration) -> Result<(), StoreError> {
        Ok(())
    }

    async fn node_alive(&self, _node: &str) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn node_stopped(&self, _node: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn set_owner(&self, id: SessionId, node: &str) -> Result<(), StoreError> {
        if let Some(mut r) = self.records.get_mut(&id)
            && let Some(s) = r.session.as_mut()
        {
            s.node = Some(node.to_owned());
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
