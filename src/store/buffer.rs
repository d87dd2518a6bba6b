//! Keeps chats going while Redis is away. A visitor event whose write fails
//! because the store is unreachable is held here, in order, and acknowledged;
//! later writes queue behind it until a flusher has written everything back,
//! oldest first. The buffer is bounded (`redis_write_buffer` writes): once it
//! is full, writes are refused with `unavailable` and the widget resends, as
//! it does without a buffer. While anything is held, `/ready` says not ready
//! and no session is finalized (its guard waits for its writes).
//!
//! What is held lives in this process only: a node killed while Redis is
//! also down loses what it held. A Redis restart alone loses nothing that
//! Redis acknowledged when AOF is on (README, "Redis trouble").

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{SessionStore, SessionUpdate, SharedStore, StoreError, StoredSession};
use crate::domain::SessionId;
use crate::telemetry::names;

/// Writes flushed side by side (each of a different session).
const FLUSH_BATCH: usize = 256;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

pub struct WriteBuffer {
    inner: SharedStore,
    capacity: usize,
    /// Set while anything is held: new writes queue behind it.
    degraded: AtomicBool,
    queue: Mutex<VecDeque<SessionUpdate>>,
    wake: Notify,
}

impl WriteBuffer {
    /// Wraps `inner` and starts the task that flushes what is held. The task
    /// ends when the returned store is dropped.
    pub fn start(inner: SharedStore, capacity: usize) -> Arc<Self> {
        let buffer = Arc::new(Self {
            inner,
            capacity,
            degraded: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
        });
        tokio::spawn(flush_forever(Arc::downgrade(&buffer)));
        buffer
    }

    /// How many writes wait for the store.
    pub fn held(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SessionUpdate>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hold(&self, update: &SessionUpdate, reason: &str) -> Result<(), StoreError> {
        let mut queue = self.lock();
        if queue.len() >= self.capacity {
            metrics::counter!(names::STORE_BUFFER_REFUSED).increment(1);
            return Err(StoreError::Unavailable(format!(
                "store unreachable and the write buffer is full ({} writes)",
                self.capacity
            )));
        }
        if queue.is_empty() {
            tracing::warn!(
                reason,
                "store unreachable: holding writes in memory until it is back"
            );
        }
        queue.push_back(update.clone());
        self.degraded.store(true, Ordering::Release);
        metrics::gauge!(names::STORE_BUFFERED).set(queue.len() as f64);
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    /// Writes the oldest held writes (at most one per session, so each
    /// session's stay in order) and takes the written ones off the queue.
    /// `Ok(true)` when the queue is empty afterwards.
    async fn flush_some(&self) -> Result<bool, StoreError> {
        let batch: Vec<SessionUpdate> = {
            let queue = self.lock();
            let mut seen = HashSet::new();
            queue
                .iter()
                .take(FLUSH_BATCH)
                .take_while(|u| seen.insert(u.id))
                .cloned()
                .collect()
        };
        if batch.is_empty() {
            return Ok(true);
        }
        let results =
            futures_util::future::join_all(batch.iter().map(|u| self.inner.persist(u))).await;
        let mut queue = self.lock();
        let taken: Vec<SessionUpdate> = queue.drain(..batch.len()).collect();
        let mut failure = None;
        for (update, result) in taken.into_iter().zip(results).rev() {
            match result {
                Ok(()) => {}
                Err(StoreError::Unavailable(e)) => {
                    queue.push_front(update);
                    failure = Some(StoreError::Unavailable(e));
                }
                Err(StoreError::Corrupt(e)) => {
                    // It can never be written; holding it would stop the rest.
                    tracing::error!(session_id = %update.id, error = %e, "dropping a held write the store refuses");
                }
            }
        }
        metrics::gauge!(names::STORE_BUFFERED).set(queue.len() as f64);
        if let Some(err) = failure {
            return Err(err);
        }
        if queue.is_empty() {
            self.degraded.store(false, Ordering::Release);
            tracing::info!("store is back: every held write is flushed");
            return Ok(true);
        }
        Ok(false)
    }
}

async fn flush_forever(buffer: Weak<WriteBuffer>) {
    let mut retry = RETRY_MIN;
    loop {
        let Some(this) = buffer.upgrade() else {
            return;
        };
        if !this.degraded.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(Duration::from_secs(1), this.wake.notified()).await;
            continue;
        }
        match this.flush_some().await {
            Ok(_) => retry = RETRY_MIN,
            Err(err) => {
                tracing::debug!(error = %err, held = this.held(), "store still unreachable");
                drop(this);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

fn still_held() -> StoreError {
    StoreError::Unavailable("writes are held in memory until the store is back".into())
}

#[async_trait]
impl SessionStore for WriteBuffer {
    async fn load(&self, id: SessionId) -> Result<Option<StoredSession>, StoreError> {
        self.inner.load(id).await
    }

    async fn persist(&self, update: &SessionUpdate) -> Result<(), StoreError> {
        if self.degraded.load(Ordering::Acquire) {
            return self.hold(update, "earlier writes are still held");
        }
        match self.inner.persist(update).await {
            Err(StoreError::Unavailable(reason)) => self.hold(update, &reason),
            other => other,
        }
    }

    async fn try_finalize(&self, id: SessionId) -> Result<bool, StoreError> {
        // The guard goes after the session's writes, never before them.
        if self.degraded.load(Ordering::Acquire) {
            return Err(still_held());
        }
        self.inner.try_finalize(id).await
    }

    async fn is_finalized(&self, id: SessionId) -> Result<bool, StoreError> {
        self.inner.is_finalized(id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.degraded.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable(format!(
                "{} writes held until the store is back",
                self.held()
            )));
        }
        self.inner.ping().await
    }

    async fn expired(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.inner.expired(before, limit).await
    }

    async fn forget_deadline(&self, id: SessionId) -> Result<(), StoreError> {
        self.inner.forget_deadline(id).await
    }

    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<(), StoreError> {
        self.inner.heartbeat(node, ttl).await
    }

    async fn node_alive(&self, node: &str) -> Result<bool, StoreError> {
        self.inner.node_alive(node).await
    }

    async fn node_stopped(&self, node: &str) -> Result<(), StoreError> {
        self.inner.node_stopped(node).await
    }

    async fn set_owner(&self, id: SessionId, node: &str) -> Result<(), StoreError> {
        self.inner.set_owner(id, node).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn flushed(&self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        while self.degraded.load(Ordering::Acquire) {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}
