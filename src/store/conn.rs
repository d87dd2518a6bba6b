//! One Redis connection type for both deployments: a single Redis (or one
//! behind Sentinel/a proxy) through a `ConnectionManager`, or a Redis Cluster
//! through the cluster client, which follows slot moves and failovers.
//! Every command leadchat sends names keys of one hash slot, so both carry
//! the same pipelines; only the deadline index is written apart in a cluster
//! (see `RedisStore::persist`).
//!
//! On one Redis, every actix thread (each HTTP worker, where the session
//! actors live) gets a connection of its own: a command then goes out and its
//! reply comes back on the thread that asked, with no hop to a connection
//! driven by another thread — two thread wake-ups fewer per visitor event.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long connecting and each reply may take before the write counts as
/// failed (and is buffered or refused).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}

impl RedisConn {
    /// Connects to `url`, one Redis.
    pub async fn single(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self::Single(
            ConnectionManager::new_with_config(client, manager_config()).await?,
        ))
    }

    /// Connects to a Redis Cluster through any of `seeds`; the client learns
    /// the slot map from whichever answers.
    pub async fn cluster(seeds: &[&str]) -> redis::RedisResult<Self> {
        let client = redis::cluster::ClusterClientBuilder::new(seeds.iter().copied())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(3)
            .build()?;
        Ok(Self::Cluster(client.get_async_connection().await?))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How long a thread whose connection could not be opened uses the shared
/// one before it tries again.
const LOCAL_RETRY: Duration = Duration::from_secs(1);

enum Slot {
    Connecting,
    Ready(ConnectionManager),
    Failed(Instant),
}

thread_local! {
    /// This thread's connections, by `ThreadConnections::id` (a process may
    /// hold several stores: tests do).
    static THREAD_CONNECTIONS: RefCell<HashMap<u64, Slot>> = RefCell::new(HashMap::new());
}

/// One Redis connection per actix thread, opened on the thread's first use.
pub struct ThreadConnections {
    client: redis::Client,
    id: u64,
}

impl ThreadConnections {
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Self {
            client: redis::Client::open(url)?,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// This thread's connection once it is open. The first call on an actix
    /// thread starts opening it in the background and answers `None`, as
    /// every call does until it is up (or outside actix threads): the caller
    /// then uses the shared connection.
    pub fn current(&self) -> Option<RedisConn> {
        let arbiter = actix::Arbiter::try_current()?;
        THREAD_CONNECTIONS.with(|slots| {
            let mut slots = slots.borrow_mut();
            match slots.get(&self.id) {
                Some(Slot::Ready(conn)) => return Some(RedisConn::Single(conn.clone())),
                Some(Slot::Connecting) => return None,
                Some(Slot::Failed(at)) if at.elapsed() < LOCAL_RETRY => return None,
                _ => {}
            }
            slots.insert(self.id, Slot::Connecting);
            let client = self.client.clone();
            let id = self.id;
            // Spawned on this very thread, so the slot it fills is this one's.
            arbiter.spawn(async move {
                let slot = match ConnectionManager::new_with_config(client, manager_config()).await
                {
                    Ok(conn) => Slot::Ready(conn),
                    Err(err) => {
                        tracing::debug!(error = %err, "cannot open this thread's Redis connection; using the shared one");
                        Slot::Failed(Instant::now())
                    }
                };
                THREAD_CONNECTIONS.with(|slots| slots.borrow_mut().insert(id, slot));
            });
            None
        })
    }
}

impl Drop for ThreadConnections {
    fn drop(&mut self) {
        // Only this thread's slot can be reached; the others go with their
        // threads (an HTTP worker's ends with the server).
        let _ = THREAD_CONNECTIONS.try_with(|slots| slots.borrow_mut().remove(&self.id));
    }
}
