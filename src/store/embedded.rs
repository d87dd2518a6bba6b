//! The embedded store: live sessions in a SQLite file of their own
//! (`EMBEDDED_DIR/live.db`), for one node without Redis. Every write is
//! committed before the event is acknowledged, so a SIGTERM or a kill -9
//! loses no acknowledged message; after a restart the visitor resumes and
//! the sweeper finalizes what timed out meanwhile, as with Redis.
//!
//! One thread owns the writing connection. Requests queue on a channel; the
//! thread takes everything queued, runs it in order in one transaction and
//! answers after the commit (a group commit), so a commit costs the same for
//! one write as for a thousand. Consecutive writes are one statement per
//! table (`json_each` over the batch). The WAL is checkpointed by a second
//! connection in the background, so acknowledgements rarely wait for one;
//! but under writes that never pause that checkpoint never reaches the
//! writer's last commit, and SQLite only rewinds a WAL that is wholly in the
//! database file. So once the WAL holds `WAL_RESET_FRAMES` pages the writer
//! folds in the remainder itself between two batches (what the side
//! checkpoint left: about one tick of writes), and the next commit writes
//! the WAL from its start again: its file stays a few MB and reused.
//!
//! Durability: WAL with `synchronous=NORMAL` (the default) makes a commit
//! durable against a crash of the process — the WAL write is in the kernel
//! when `write()` returns — but not against a power loss or a kernel crash,
//! which may lose the last commits (the file stays consistent).
//! `embedded_sync = "full"` fsyncs the WAL on every group commit and survives
//! those too, at the cost of the disk's fsync time per batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::{
    FINALIZED_TTL_SECS, LeadRecord, SessionStore, SessionUpdate, StoreError, StoredSession,
};
use crate::domain::{Contact, SessionId, TranscriptEntry};
use crate::scoring::{LeadScore, Priority, Signal};
use crate::settings::EmbeddedSync;
use crate::telemetry::names;

/// The file in the embedded folder.
pub const FILE_NAME: &str = "live.db";
/// Requests one group commit takes at most.
const MAX_BATCH: usize = 4096;
/// Requests waiting for the writer; past it callers wait to queue.
const QUEUE: usize = 65_536;
/// Short, so each checkpoint and its fsyncs are small: at 5,000 msg/s a
/// 100 ms tick with a 2,048-frame reset gave p99 24 ms, this gives 8 ms
/// (README, performance). Idle, a tick finds nothing to copy.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);
/// WAL frames (pages) past which the writer folds the rest of the WAL in
/// itself, so the next commit starts the WAL over from its beginning. A
/// checkpoint from the side never catches the writer's tip, and a WAL that
/// is never reset grows by every page every commit writes (measured: 110 MB/s
/// at 5,000 msg/s, each frame a fresh file block the kernel zeroes first).
/// Small, so what the writer copies and fsyncs in the acknowledgement path
/// is small too; the WAL file stays about 5 MB at 5,000 msg/s.
const WAL_RESET_FRAMES: i64 = 128;
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS live_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    contact TEXT,
    contact_collected INTEGER NOT NULL DEFAULT 0,
    lead TEXT,
    signals TEXT,
    first_interaction INTEGER,
    last_interaction INTEGER,
    deadline INTEGER,
    node TEXT,
    finalized_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS live_sessions_by_deadline
    ON live_sessions(deadline) WHERE deadline IS NOT NULL;
CREATE TABLE IF NOT EXISTS live_entries (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_nodes (
    name TEXT PRIMARY KEY NOT NULL,
    alive_until INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Rows of consecutive writes, upserted in order (a later write of the same
/// session wins). Contact, signals and first interaction are kept when a
/// write leaves them out.
const UPSERT_SESSIONS: &str = "
INSERT INTO live_sessions
    (id, contact, contact_collected, lead, signals, first_interaction,
     last_interaction, deadline, node)
SELECT value->>'id', value->>'contact', value->>'contact' IS NOT NULL,
       value->>'lead', value->>'signals', value->>'first',
       value->>'last', value->>'deadline', value->>'node'
FROM json_each(?1) WHERE true ORDER BY key
ON CONFLICT(id) DO UPDATE SET
    contact = COALESCE(excluded.contact, contact),
    contact_collected = contact_collected OR excluded.contact_collected,
    lead = excluded.lead,
    signals = COALESCE(excluded.signals, signals),
    first_interaction = COALESCE(first_interaction, excluded.first_interaction),
    last_interaction = excluded.last_interaction,
    deadline = CASE WHEN finalized_at IS NULL THEN excluded.deadline ELSE deadline END,
    node = excluded.node";

/// A write retried after its answer was lost carries lines already stored:
/// their (session, seq) gives them away and the first copy stays.
const INSERT_ENTRIES: &str = "
INSERT OR IGNORE INTO live_entries (session_id, seq, entry)
SELECT value->>'id', value->>'seq', value->>'entry' FROM json_each(?1)";

/// The store: a handle on the writer thread's queue. Cheap to share.
pub struct EmbeddedStore {
    queue: mpsc::Sender<Request>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Answer, StoreError>>,
}

enum Op {
    /// A session row and its new lines, already encoded as JSON objects.
    Persist {
        session: String,
        entries: Vec<String>,
    },
    Load(SessionId),
    Finalize(SessionId, i64),
    IsFinalized(SessionId, i64),
    Expired(i64, usize),
    Forget(SessionId),
    Heartbeat(String, i64),
    NodeAlive(String, i64),
    SetOwner(SessionId, String),
    Ping,
}

enum Answer {
    Done,
    Flag(bool),
    Loaded(Option<Box<StoredSession>>),
    Ids(Vec<SessionId>),
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    metrics::counter!(names::STORE_ERRORS).increment(1);
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

fn now_ms() -> i64 {
    millis(Utc::now())
}

fn ttl_ms() -> i64 {
    i64::try_from(FINALIZED_TTL_SECS * 1000).unwrap_or(i64::MAX)
}

#[derive(Serialize, Deserialize, Default)]
struct ContactRow {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    organization: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct LeadRow {
    lead_score: i32,
    engagement_score: u8,
    priority: Priority,
    total_queries: u32,
}

#[derive(Serialize)]
struct SessionRow<'a> {
    id: String,
    /// JSON text, only when the contact changed.
    contact: Option<String>,
    lead: String,
    /// JSON text, only when the signals changed.
    signals: Option<String>,
    first: i64,
    last: i64,
    deadline: i64,
    node: &'a str,
}

#[derive(Serialize)]
struct EntryRow<'a> {
    id: &'a str,
    seq: u64,
    /// The line as JSON text, as Redis keeps it in `session:{ID}:log`.
    entry: String,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn encode(update: &SessionUpdate) -> Result<Op, StoreError> {
    let id = update.id.to_string();
    let contact = match &update.contact {
        Some(c) => Some(
            serde_json::to_string(&ContactRow {
                name: c.name().map(str::to_owned),
                email: c.email().map(str::to_owned),
                phone: c.phone().map(str::to_owned),
                organization: c.organization().map(str::to_owned),
            })
            .map_err(corrupt)?,
        ),
        None => None,
    };
    let score = &update.lead.score;
    let lead = serde_json::to_string(&LeadRow {
        lead_score: score.lead_score,
        engagement_score: score.engagement_score,
        priority: score.priority,
        total_queries: update.lead.total_queries,
    })
    .map_err(corrupt)?;
    let signals = if update.first_write || update.signals_changed {
        Some(serde_json::to_string(&score.signals).map_err(corrupt)?)
    } else {
        None
    };
    let session = serde_json::to_string(&SessionRow {
        id: id.clone(),
        contact,
        lead,
        signals,
        first: millis(update.first_interaction),
        last: millis(update.last_interaction),
        deadline: millis(update.deadline),
        node: &update.node,
    })
    .map_err(corrupt)?;
    let entries = update
        .new_entries
        .iter()
        .map(|e| {
            serde_json::to_string(&EntryRow {
                id: &id,
                seq: e.seq,
                entry: serde_json::to_string(e).map_err(corrupt)?,
            })
            .map_err(corrupt)
        })
        .collect::<Result<_, _>>()?;
    Ok(Op::Persist { session, entries })
}

impl EmbeddedStore {
    /// Opens (creating if missing) `dir/live.db` and starts its writer thread,
    /// which ends when the last handle is dropped.
    pub async fn open(dir: &Path, sync: EmbeddedSync) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        let (queue, requests) = mpsc::channel(QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("leadchat-embedded".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(unavailable(e)));
                        return;
                    }
                };
                runtime.block_on(writer(thread_path, sync, requests, ready_tx));
            })
            .map_err(unavailable)?;
        ready_rx
            .await
            .map_err(|_| unavailable("the writer thread did not start"))??;
        Ok(Self { queue, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call(&self, op: Op) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { op, reply })
            .await
            .map_err(|_| unavailable("the writer has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the writer has stopped"))?
    }

    async fn flag(&self, op: Op) -> Result<bool, StoreError> {
        match self.call(op).await? {
            Answer::Flag(b) => Ok(b),
            _ => Err(StoreError::Corrupt("unexpected answer".into())),
        }
    }
}

fn options(path: &Path, sync: EmbeddedSync) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match sync {
            EmbeddedSync::Normal => SqliteSynchronous::Normal,
            EmbeddedSync::Full => SqliteSynchronous::Full,
        })
        .busy_timeout(BUSY_TIMEOUT)
        // The checkpointer connection does it, off the acknowledgement path.
        .pragma("wal_autocheckpoint", "0")
        // A checkpointed WAL is cut back to this size (bytes).
        .pragma("journal_size_limit", "67108864")
        .disable_statement_logging()
}

async fn open_connections(
    path: &Path,
    sync: EmbeddedSync,
) -> Result<(SqliteConnection, SqliteConnection), StoreError> {
    let mut conn = options(path, sync).connect().await.map_err(unavailable)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .map_err(unavailable)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{} was written by a newer leadchat (schema {version})",
            path.display()
        )));
    }
    sqlx::raw_sql(SCHEMA)
        .execute(&mut conn)
        .await
        .map_err(unavailable)?;
    // A constant, not input: PRAGMA takes no bound parameters.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA user_version = {SCHEMA_VERSION}"
    )))
    .execute(&mut conn)
    .await
    .map_err(unavailable)?;
    let checkpointer = options(path, sync).connect().await.map_err(unavailable)?;
    Ok((conn, checkpointer))
}

async fn writer(
    path: PathBuf,
    sync: EmbeddedSync,
    mut requests: mpsc::Receiver<Request>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let (mut conn, checkpointer) = match open_connections(&path, sync).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let reset_wal = Arc::new(AtomicBool::new(false));
    let checkpoints = tokio::spawn(checkpoint_loop(checkpointer, reset_wal.clone()));
    let mut last_prune = Instant::now();
    let mut batch = Vec::with_capacity(64);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        run_batch(&mut conn, std::mem::take(&mut batch)).await;
        if reset_wal.swap(false, Ordering::Relaxed) {
            // Between batches nothing else writes: this pass copies what the
            // side checkpoint left (its last ~100 ms) and the next commit
            // rewinds the WAL.
            match checkpoint(&mut conn).await {
                Ok((frames, done)) if done == frames => {
                    metrics::counter!(names::STORE_WAL_RESETS).increment(1)
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "embedded store: checkpoint failed"),
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(e) = prune(&mut conn).await {
                tracing::warn!(error = %e, "embedded store: cannot prune finished sessions");
            }
        }
    }
    checkpoints.abort();
    // Every handle is gone: fold the WAL into the file and close.
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "embedded store: close failed");
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: the WAL's frames and how many of them
/// are now in the database file.
async fn checkpoint(conn: &mut SqliteConnection) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    Ok((row.try_get(1)?, row.try_get(2)?))
}

/// Folds the WAL into the database file from the side, off the
/// acknowledgement path, and asks the writer to finish the job once the WAL
/// is long enough to be worth rewinding.
async fn checkpoint_loop(mut conn: SqliteConnection, reset_wal: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match checkpoint(&mut conn).await {
            Ok((frames, _)) if frames >= WAL_RESET_FRAMES => {
                reset_wal.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "embedded store: checkpoint failed"),
        }
    }
}

/// Runs `batch` in order in one transaction and answers each request after
/// the commit. Any database error fails the whole batch: nothing of it is
/// acknowledged, and callers resend.
async fn run_batch(conn: &mut SqliteConnection, batch: Vec<Request>) {
    let started = Instant::now();
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();
    let outcome = async {
        let mut tx = conn.begin().await?;
        let mut answers = Vec::with_capacity(ops.len());
        let mut i = 0;
        while i < ops.len() {
            if matches!(ops[i], Op::Persist { .. }) {
                let end = ops[i..]
                    .iter()
                    .position(|op| !matches!(op, Op::Persist { .. }))
                    .map_or(ops.len(), |n| i + n);
                persist_run(&mut tx, &ops[i..end]).await?;
                answers.extend((i..end).map(|_| Ok(Answer::Done)));
                i = end;
            } else {
                answers.push(run_one(&mut tx, &ops[i]).await?);
                i += 1;
            }
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(answers)
    }
    .await;
    metrics::histogram!(names::STORE_LATENCY, "op" => "commit")
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = replies.len(), "embedded store: batch failed");
            for reply in replies {
                let _ = reply.send(Err(unavailable(&e)));
            }
        }
    }
}

async fn persist_run(conn: &mut SqliteConnection, ops: &[Op]) -> Result<(), sqlx::Error> {
    let mut sessions = String::from("[");
    let mut entries = String::from("[");
    for op in ops {
        if let Op::Persist {
            session,
            entries: lines,
        } = op
        {
            if sessions.len() > 1 {
                sessions.push(',');
            }
            sessions.push_str(session);
            for line in lines {
                if entries.len() > 1 {
                    entries.push(',');
                }
                entries.push_str(line);
            }
        }
    }
    sessions.push(']');
    entries.push(']');
    sqlx::query(UPSERT_SESSIONS)
        .bind(sessions)
        .execute(&mut *conn)
        .await?;
    if entries.len() > 2 {
        sqlx::query(INSERT_ENTRIES)
            .bind(entries)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// One request other than a write. A row that cannot be decoded is that
/// request's error, not the batch's.
async fn run_one(
    conn: &mut SqliteConnection,
    op: &Op,
) -> Result<Result<Answer, StoreError>, sqlx::Error> {
    Ok(match op {
        Op::Persist { .. } => Ok(Answer::Done),
        Op::Load(id) => load(conn, *id)
            .await?
            .map(|s| Answer::Loaded(s.map(Box::new))),
        Op::Finalize(id, now) => {
            // The guard: only the first caller changes the row. A guard
            // older than the TTL counts as gone, as an expired Redis key.
            let changed = sqlx::query(
                "INSERT INTO live_sessions (id, finalized_at) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET finalized_at = excluded.finalized_at
                 WHERE finalized_at IS NULL OR finalized_at <= ?2 - ?3",
            )
            .bind(id.to_string())
            .bind(now)
            .bind(ttl_ms())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(Answer::Flag(changed == 1))
        }
        Op::IsFinalized(id, now) => {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM live_sessions WHERE id = ?1 AND finalized_at > ?2 - ?3",
            )
            .bind(id.to_string())
            .bind(now)
            .bind(ttl_ms())
            .fetch_optional(&mut *conn)
            .await?;
            Ok(Answer::Flag(found.is_some()))
        }
        Op::Expired(before, limit) => {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM live_sessions
                 WHERE deadline IS NOT NULL AND deadline <= ?1
                 ORDER BY deadline LIMIT ?2",
            )
            .bind(before)
            .bind(i64::try_from(*limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
            Ok(Answer::Ids(
                rows.iter()
                    .filter_map(|raw| SessionId::parse(raw))
                    .collect(),
            ))
        }
        Op::Forget(id) => {
            let id = id.to_string();
            sqlx::query("UPDATE live_sessions SET deadline = NULL WHERE id = ?1")
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            // A finished session is in the archive now: only its guard stays.
            sqlx::query(
                "DELETE FROM live_entries WHERE session_id = ?1 AND EXISTS
                 (SELECT 1 FROM live_sessions WHERE id = ?1 AND finalized_at IS NOT NULL)",
            )
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE live_sessions SET contact = NULL, lead = NULL, signals = NULL
                 WHERE id = ?1 AND finalized_at IS NOT NULL",
            )
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            Ok(Answer::Done)
        }
        Op::Heartbeat(node, until) => {
            sqlx::query(
                "INSERT INTO live_nodes (name, alive_until) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET alive_until = excluded.alive_until",
            )
            .bind(node)
            .bind(until)
            .execute(&mut *conn)
            .await?;
            Ok(Answer::Done)
        }
        Op::NodeAlive(node, now) => {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM live_nodes WHERE name = ?1 AND alive_until > ?2")
                    .bind(node)
                    .bind(now)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(Answer::Flag(found.is_some()))
        }
        Op::SetOwner(id, node) => {
            sqlx::query("UPDATE live_sessions SET node = ?2 WHERE id = ?1")
                .bind(id.to_string())
                .bind(node)
                .execute(&mut *conn)
                .await?;
            Ok(Answer::Done)
        }
        Op::Ping => {
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            Ok(Answer::Done)
        }
    })
}

async fn load(
    conn: &mut SqliteConnection,
    id: SessionId,
) -> Result<Result<Option<StoredSession>, StoreError>, sqlx::Error> {
    let key = id.to_string();
    let Some(row) = sqlx::query(
        "SELECT contact, contact_collected, lead, signals, first_interaction,
                last_interaction, node, finalized_at
         FROM live_sessions WHERE id = ?1",
    )
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Ok(None));
    };
    let finalized_at: Option<i64> = row.try_get("finalized_at")?;
    let finalized = finalized_at.is_some_and(|at| at > now_ms() - ttl_ms());
    let lead: Option<String> = row.try_get("lead")?;
    let lines: Vec<String> =
        sqlx::query_scalar("SELECT entry FROM live_entries WHERE session_id = ?1 ORDER BY seq")
            .bind(&key)
            .fetch_all(&mut *conn)
            .await?;
    if lead.is_none() && lines.is_empty() {
        // Only a guard (or a guard that expired) is left.
        return Ok(Ok(finalized.then(|| StoredSession::finalized_stub(id))));
    }
    Ok(decode(id, &row, lead, &lines, finalized))
}

fn decode(
    id: SessionId,
    row: &sqlx::sqlite::SqliteRow,
    lead: Option<String>,
    lines: &[String],
    finalized: bool,
) -> Result<Option<StoredSession>, StoreError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("session {id} {what}: {e}"))
    };
    let get_text = |col: &str| -> Result<Option<String>, StoreError> {
        row.try_get::<Option<String>, _>(col)
            .map_err(|e| bad(col, &e))
    };
    let get_int = |col: &str| -> Result<Option<i64>, StoreError> {
        row.try_get::<Option<i64>, _>(col).map_err(|e| bad(col, &e))
    };
    let contact = match get_text("contact")? {
        Some(raw) => {
            let c: ContactRow = serde_json::from_str(&raw).map_err(|e| bad("contact", &e))?;
            Contact::restore(
                c.name.as_deref(),
                c.email.as_deref(),
                c.phone.as_deref(),
                c.organization.as_deref(),
            )
        }
        None => Contact::default(),
    };
    let signals: Vec<Signal> = match get_text("signals")? {
        Some(raw) => serde_json::from_str(&raw).map_err(|e| bad("signals", &e))?,
        None => Vec::new(),
    };
    let lead = match lead {
        Some(raw) => {
            let l: LeadRow = serde_json::from_str(&raw).map_err(|e| bad("lead", &e))?;
            Some(LeadRecord {
                score: LeadScore {
                    lead_score: l.lead_score,
                    engagement_score: l.engagement_score,
                    priority: l.priority,
                    signals,
                },
                total_queries: l.total_queries,
            })
        }
        None => None,
    };
    let entries = lines
        .iter()
        .map(|raw| serde_json::from_str::<TranscriptEntry>(raw).map_err(|e| bad("log", &e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(StoredSession {
        id,
        contact,
        contact_collected: get_int("contact_collected")?.is_some_and(|v| v != 0),
        lead,
        entries,
        first_interaction: from_millis(get_int("first_interaction")?),
        last_interaction: from_millis(get_int("last_interaction")?),
        finalized,
        node: get_text("node")?,
    }))
}

/// Drops what Redis would have let expire: guards older than the TTL (with
/// anything left of their sessions) and nodes long gone.
async fn prune(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let cutoff = now_ms() - ttl_ms();
    let mut tx = conn.begin().await?;
    sqlx::query(
        "DELETE FROM live_entries WHERE session_id IN
         (SELECT id FROM live_sessions WHERE finalized_at <= ?1)",
    )
    .bind(cutoff)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM live_sessions WHERE finalized_at <= ?1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM live_nodes WHERE alive_until <= ?1")
        .bind(now_ms() - 3_600_000)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

fn observe(op: &'static str, started: Instant) {
    metrics::histogram!(names::STORE_LATENCY, "op" => op).record(started.elapsed().as_secs_f64());
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn load(&self, id: SessionId) -> Result<Option<StoredSession>, StoreError> {
        let started = Instant::now();
        let answer = self.call(Op::Load(id)).await?;
        observe("load", started);
        match answer {
            Answer::Loaded(s) => Ok(s.map(|s| *s)),
            _ => Err(StoreError::Corrupt("unexpected answer".into())),
        }
    }

    async fn persist(&self, update: &SessionUpdate) -> Result<(), StoreError> {
        let started = Instant::now();
        self.call(encode(update)?).await?;
        observe("persist", started);
        Ok(())
    }

    async fn try_finalize(&self, id: SessionId) -> Result<bool, StoreError> {
        let started = Instant::now();
        let took = self.flag(Op::Finalize(id, now_ms())).await?;
        observe("finalize", started);
        Ok(took)
    }

    async fn is_finalized(&self, id: SessionId) -> Result<bool, StoreError> {
        self.flag(Op::IsFinalized(id, now_ms())).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call(Op::Ping).await.map(|_| ())
    }

    async fn expired(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SessionId>, StoreError> {
        match self.call(Op::Expired(millis(before), limit)).await? {
            Answer::Ids(ids) => Ok(ids),
            _ => Err(StoreError::Corrupt("unexpected answer".into())),
        }
    }

    async fn forget_deadline(&self, id: SessionId) -> Result<(), StoreError> {
        self.call(Op::Forget(id)).await.map(|_| ())
    }

    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.call(Op::Heartbeat(node.to_owned(), now_ms().saturating_add(ttl)))
            .await
            .map(|_| ())
    }

    async fn node_alive(&self, node: &str) -> Result<bool, StoreError> {
        self.flag(Op::NodeAlive(node.to_owned(), now_ms())).await
    }

    async fn node_stopped(&self, node: &str) -> Result<(), StoreError> {
        self.call(Op::Heartbeat(node.to_owned(), now_ms()))
            .await
            .map(|_| ())
    }

    async fn set_owner(&self, id: SessionId, node: &str) -> Result<(), StoreError> {
        self.call(Op::SetOwner(id, node.to_owned()))
            .await
            .map(|_| ())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}
