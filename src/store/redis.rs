//! The production store: PROTOCOL §5's key layout on Redis, one pipelined
//! MULTI per visitor event, through a `ConnectionManager` that reconnects on
//! its own after a Redis restart, or through the Redis Cluster client.

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use super::conn::{RedisConn, ThreadConnections};

use super::keys::Keys;
use super::{
    FINALIZED_TTL_SECS, LeadRecord, SessionStore, SessionUpdate, StoreError, StoredSession,
};
use crate::domain::{Contact, Role, SessionId, TranscriptEntry};
use crate::scoring::{LeadScore, Priority, Signal};
use crate::telemetry::names;

pub struct RedisStore {
    /// Shared by every thread; also what the admin feed's bus publishes on.
    conn: RedisConn,
    /// On one Redis: each actix thread's own connection (see `conn.rs`).
    local: Option<ThreadConnections>,
    keys: Keys,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    metrics::counter!(names::STORE_ERRORS).increment(1);
    StoreError::Unavailable(e.to_string())
}

fn observe(op: &'static str, started: Instant) {
    metrics::histogram!(names::STORE_LATENCY, "op" => op).record(started.elapsed().as_secs_f64());
}

impl RedisStore {
    /// A store on one Redis.
    pub async fn connect(url: &str, keys: Keys) -> Result<Self, StoreError> {
        let conn = RedisConn::single(url).await.map_err(unavailable)?;
        let local = Some(ThreadConnections::new(url).map_err(unavailable)?);
        Ok(Self { conn, local, keys })
    }

    /// A store on a Redis Cluster, reached through any of `seeds`.
    pub async fn connect_cluster(seeds: &[&str], keys: Keys) -> Result<Self, StoreError> {
        let conn = RedisConn::cluster(seeds).await.map_err(unavailable)?;
        Ok(Self {
            conn,
            local: None,
            keys,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The shared connection.
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// The connection for a command from this thread.
    fn conn(&self) -> RedisConn {
        self.local
            .as_ref()
            .and_then(ThreadConnections::current)
            .unwrap_or_else(|| self.conn.clone())
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(raw: Option<&String>) -> Option<DateTime<Utc>> {
    raw.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The `lead:{ID}` fields that changed with this event.
fn lead_fields(update: &SessionUpdate) -> Result<Vec<(&'static str, String)>, StoreError> {
    let score = &update.lead.score;
    let mut fields = vec![
        ("lead_score", score.lead_score.to_string()),
        ("priority", score.priority.as_str().to_owned()),
        ("engagement_score", score.engagement_score.to_string()),
        ("total_queries", update.lead.total_queries.to_string()),
        ("last_interaction", ts(update.last_interaction)),
    ];
    if update.first_write {
        fields.push(("first_interaction", ts(update.first_interaction)));
    }
    if update.first_write || update.signals_changed {
        let signals = serde_json::to_string(&score.signals)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        fields.push(("signals", signals));
    }
    Ok(fields)
}

fn parse_lead(h: &HashMap<String, String>) -> Option<LeadRecord> {
    let lead_score = h.get("lead_score")?.parse().ok()?;
    let priority = h
        .get("priority")
        .and_then(|p| p.parse::<Priority>().ok())
        .unwrap_or(Priority::Low);
    let signals: Vec<Signal> = h
        .get("signals")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    Some(LeadRecord {
        score: LeadScore {
            lead_score,
            engagement_score: h
                .get("engagement_score")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            priority,
            signals,
        },
        total_queries: h
            .get("total_queries")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// Sessions written by the Python deployment have only the `chat` list:
/// rebuild entries from its `"User: …"` lines.
fn entries_from_chat(lines: &[String], at: DateTime<Utc>) -> Vec<TranscriptEntry> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let (role, text) = match line.split_once(": ") {
                Some(("User", t)) => (Role::User, t),
                Some(("Bot", t)) => (Role::Bot, t),
                _ => (Role::Bot, line.as_str()),
            };
            TranscriptEntry {
                seq: i as u64 + 1,
                role,
                text: text.to_owned(),
                at,
                client_msg_id: None,
            }
        })
        .collect()
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, id: SessionId) -> Result<Option<StoredSession>, StoreError> {
        let started = Instant::now();
        let mut conn = self.conn();
        type Loaded = (
            HashMap<String, String>,
            HashMap<String, String>,
            Vec<String>,
            Vec<String>,
            bool,
        );
        let (session, lead, log, chat, finalized): Loaded = redis::pipe()
            .hgetall(self.keys.session(id))
            .hgetall(self.keys.lead(id))
            .lrange(self.keys.log(id), 0, -1)
            .lrange(self.keys.chat(id), 0, -1)
            .exists(self.keys.finalized(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        observe("load", started);
        if session.is_empty() && lead.is_empty() && log.is_empty() && chat.is_empty() {
            return Ok(finalized.then(|| StoredSession::finalized_stub(id)));
        }
        let last_interaction = parse_ts(session.get("last_interaction"))
            .or_else(|| parse_ts(lead.get("last_interaction")));
        let entries = if log.is_empty() {
            entries_from_chat(&chat, last_interaction.unwrap_or_else(Utc::now))
        } else {
            let mut entries: Vec<TranscriptEntry> = log
                .iter()
                .map(|raw| {
                    serde_json::from_str(raw)
                        .map_err(|e| StoreError::Corrupt(format!("session {id} log: {e}")))
                })
                .collect::<Result<_, _>>()?;
            // A write retried after its reply was lost appends its lines a
            // second time; their seq gives them away.
            let mut last = 0;
            entries.retain(|e: &TranscriptEntry| {
                let fresh = e.seq > last;
                last = last.max(e.seq);
                fresh
            });
            entries
        };
        let contact = Contact::restore(
            session.get("user_name").map(String::as_str),
            session.get("email").map(String::as_str),
            session.get("phone").map(String::as_str),
            session.get("organization").map(String::as_str),
        );
        Ok(Some(StoredSession {
            id,
            contact,
            contact_collected: session
                .get("user_data_collected")
                .is_some_and(|v| v == "true"),
            lead: parse_lead(&lead),
            entries,
            first_interaction: parse_ts(lead.get("first_interaction")),
            last_interaction,
            finalized,
            node: session.get("node").cloned(),
        }))
    }

    async fn persist(&self, update: &SessionUpdate) -> Result<(), StoreError> {
        let started = Instant::now();
        let id = update.id;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut session_fields: Vec<(&str, String)> =
            vec![("last_interaction", ts(update.last_interaction))];
        if update.first_write {
            // Added field: which node owns the session (the sweeper asks).
            session_fields.push(("node", update.node.clone()));
        }
        if let Some(contact) = &update.contact {
            session_fields.extend([
                ("user_data_collected", "true".to_owned()),
                ("user_name", contact.name().unwrap_or_default().to_owned()),
                ("email", contact.email().unwrap_or_default().to_owned()),
                ("phone", contact.phone().unwrap_or_default().to_owned()),
                (
                    "organization",
                    contact.organization().unwrap_or_default().to_owned(),
                ),
            ]);
        }
        let session_key = self.keys.session(id);
        pipe.hset_multiple(&session_key, &session_fields).ignore();
        if update.first_write && update.contact.is_none() {
            pipe.hset_nx(&session_key, "user_data_collected", "false")
                .ignore();
        }
        pipe.hset_multiple(self.keys.lead(id), &lead_fields(update)?)
            .ignore();
        if !update.new_entries.is_empty() {
            let lines: Vec<String> = update
                .new_entries
                .iter()
                .map(TranscriptEntry::chat_line)
                .collect();
            let log = update
                .new_entries
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            pipe.rpush(self.keys.chat(id), lines).ignore();
            pipe.rpush(self.keys.log(id), log).ignore();
        }
        let member = id.to_string();
        let deadline = update.deadline.timestamp_millis();
        let mut conn = self.conn();
        if self.conn.is_cluster() {
            // The deadline index is one key for all sessions, so in a
            // cluster it lives in another slot than the session: it is
            // written beside the MULTI, and both must succeed before the
            // event is acknowledged. Whichever lands alone is harmless: a
            // later deadline without the event (the visitor resends), or
            // the event without its new deadline (an orphan is swept a
            // little early, after its owner is gone).
            let mut index = self.conn();
            let (written, indexed) = tokio::join!(
                pipe.query_async::<()>(&mut conn),
                index.zadd::<_, _, _, ()>(self.keys.deadlines(), &member, deadline)
            );
            written.and(indexed).map_err(unavailable)?;
        } else {
            pipe.zadd(self.keys.deadlines(), member, deadline).ignore();
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        observe("persist", started);
        Ok(())
    }

    async fn try_finalize(&self, id: SessionId) -> Result<bool, StoreError> {
        let started = Instant::now();
        let mut conn = self.conn();
        let ttl = FINALIZED_TTL_SECS as i64;
        let (took,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(self.keys.finalized(id))
            .arg("true")
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .expire(self.keys.session(id), ttl)
            .ignore()
            .expire(self.keys.lead(id), ttl)
            .ignore()
            .expire(self.keys.chat(id), ttl)
            .ignore()
            .expire(self.keys.log(id), ttl)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        observe("finalize", started);
        Ok(took.is_some())
    }

    async fn is_finalized(&self, id: SessionId) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.exists(self.keys.finalized(id))
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn expired(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut conn = self.conn();
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.deadlines())
            .arg("-inf")
            .arg(before.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(ids.iter().filter_map(|raw| SessionId::parse(raw)).collect())
    }

    async fn forget_deadline(&self, id: SessionId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.zrem(self.keys.deadlines(), id.to_string())
            .await
            .map_err(unavailable)
    }

    async fn heartbeat(&self, node: &str, ttl: std::time::Duration) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        conn.pset_ex(self.keys.node(node), "alive", ms)
            .await
            .map_err(unavailable)
    }

    async fn node_alive(&self, node: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.exists(self.keys.node(node)).await.map_err(unavailable)
    }

    async fn node_stopped(&self, node: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.del(self.keys.node(node)).await.map_err(unavailable)
    }

    async fn set_owner(&self, id: SessionId, node: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.hset(self.keys.session(id), "node", node)
            .await
            .map_err(unavailable)
    }

    fn kind(&self) -> &'static str {
        if self.conn.is_cluster() {
            "redis-cluster"
        } else {
            "redis"
        }
    }
}
