//! The same contract for every store: memory, the embedded SQLite store and
//! Redis; and what only the embedded store promises (its data outlives the
//! process).

use std::sync::Arc;

use chrono::Utc;
use leadchat::domain::{Contact, Role, SessionId, TranscriptEntry};
use leadchat::scoring::LeadScore;
use leadchat::settings::EmbeddedSync;
use leadchat::store::keys::Keys;
use leadchat::store::{
    EmbeddedStore, LeadRecord, MemoryStore, RedisStore, SessionStore, SessionUpdate,
};

use crate::support::app::REDIS_URL;

/// Every store, and the folder the embedded one lives in.
async fn stores() -> (Vec<Arc<dyn SessionStore>>, tempfile::TempDir) {
    let (redis, _) = redis_store().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let embedded = EmbeddedStore::open(dir.path(), EmbeddedSync::Normal)
        .await
        .expect("the embedded store opens");
    (
        vec![
            Arc::new(MemoryStore::new()),
            Arc::new(embedded),
            Arc::new(redis),
        ],
        dir,
    )
}

/// The stores that keep a deadline index and node leases (not memory).
async fn durable_stores() -> (Vec<Arc<dyn SessionStore>>, tempfile::TempDir) {
    let (mut all, dir) = stores().await;
    all.retain(|s| s.kind() != "memory");
    (all, dir)
}

/// A Redis store under a key prefix of its own, and the prefix.
async fn redis_store() -> (RedisStore, String) {
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let store = RedisStore::connect(REDIS_URL, Keys::new(prefix.clone()))
        .await
        .expect("Redis must be running on 127.0.0.1:6379");
    (store, prefix)
}

/// A plain connection, to read and write keys behind the store's back.
async fn raw_redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("conn")
}

fn entry(seq: u64, role: Role, text: &str) -> TranscriptEntry {
    TranscriptEntry {
        seq,
        role,
        text: text.into(),
        at: Utc::now(),
        client_msg_id: (role == Role::User).then(|| format!("c{seq}")),
    }
}

#[actix_web::test]
async fn persisted_events_load_back_in_order() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let id = SessionId::new();
        assert!(
            store.load(id).await.expect("load").is_none(),
            "{}",
            store.kind()
        );
        let contact = Contact::parse("Ana", "ana@example.com", "", "Org").expect("valid");
        let lead = LeadRecord {
            score: LeadScore::default(),
            total_queries: 1,
        };
        let now = Utc::now();
        store
            .persist(&SessionUpdate {
                id,
                contact: None,
                new_entries: vec![entry(1, Role::Bot, "hi"), entry(2, Role::User, "q #1 $ *")],
                lead: lead.clone(),
                first_interaction: now,
                last_interaction: now,
                deadline: now,
                node: "n1".into(),
                first_write: true,
                signals_changed: true,
            })
            .await
            .expect("persist");
        store
            .persist(&SessionUpdate {
                id,
                contact: Some(contact.clone()),
                new_entries: vec![entry(3, Role::Bot, "a ✓")],
                lead,
                first_interaction: now,
                last_interaction: now,
                deadline: now,
                node: "n1".into(),
                first_write: false,
                signals_changed: false,
            })
            .await
            .expect("persist");
        let loaded = store.load(id).await.expect("load").expect("stored");
        assert_eq!(
            loaded.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "{}",
            store.kind()
        );
        assert_eq!(loaded.entries[1].text, "q #1 $ *");
        assert_eq!(loaded.entries[1].client_msg_id.as_deref(), Some("c2"));
        assert!(loaded.contact_collected);
        assert_eq!(loaded.contact, contact);
        assert_eq!(loaded.lead.expect("lead").total_queries, 1);
        assert_eq!(loaded.node.as_deref(), Some("n1"), "{}", store.kind());
        assert!(loaded.first_interaction.is_some(), "{}", store.kind());
        assert!(!loaded.finalized);
    }
}

#[actix_web::test]
async fn the_finalized_guard_is_taken_exactly_once_under_concurrency() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let id = SessionId::new();
        let attempts = (0..16).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.try_finalize(id).await.expect("finalize") })
        });
        let mut taken = 0;
        for a in attempts {
            if a.await.expect("task") {
                taken += 1;
            }
        }
        assert_eq!(taken, 1, "{}", store.kind());
        assert!(store.is_finalized(id).await.expect("check"));
        assert!(store.load(id).await.expect("load").expect("stub").finalized);
    }
}

#[actix_web::test]
async fn redis_keys_follow_the_protocol_layout() {
    let (store, prefix) = redis_store().await;
    let id = SessionId::new();
    let now = Utc::now();
    let contact = Contact::parse("Ravi", "ravi@firm.in", "9876543210", "Firm").expect("valid");
    store
        .persist(&SessionUpdate {
            id,
            contact: Some(contact),
            new_entries: vec![entry(1, Role::User, "hello")],
            lead: LeadRecord {
                score: LeadScore::default(),
                total_queries: 1,
            },
            first_interaction: now,
            last_interaction: now,
            deadline: now,
            node: "n1".into(),
            first_write: true,
            signals_changed: true,
        })
        .await
        .expect("persist");
    let mut conn = raw_redis().await;
    let session: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}session:{{{id}}}"))
        .query_async(&mut conn)
        .await
        .expect("hgetall");
    assert_eq!(session["user_data_collected"], "true");
    assert_eq!(session["user_name"], "Ravi");
    assert_eq!(session["email"], "ravi@firm.in");
    assert!(session.contains_key("last_interaction"));
    let lead: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}lead:{{{id}}}"))
        .query_async(&mut conn)
        .await
        .expect("hgetall");
    for field in [
        "lead_score",
        "priority",
        "engagement_score",
        "total_queries",
        "first_interaction",
        "last_interaction",
    ] {
        assert!(lead.contains_key(field), "lead:{{ID}} lacks {field}");
    }
    let chat: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}session:{{{id}}}:chat"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("lrange");
    assert_eq!(chat, vec!["User: hello".to_owned()]);
    assert!(store.try_finalize(id).await.expect("finalize"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{prefix}session:{{{id}}}:finalized"))
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!(ttl > 6 * 24 * 3600, "7-day TTL, got {ttl}");
}

#[actix_web::test]
async fn a_python_era_session_with_only_a_chat_list_loads() {
    let (store, prefix) = redis_store().await;
    let id = SessionId::new();
    let mut conn = raw_redis().await;
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{prefix}session:{{{id}}}:chat"))
        .arg("User: hi")
        .arg("Bot: hello: there")
        .query_async(&mut conn)
        .await
        .expect("rpush");
    let loaded = store.load(id).await.expect("load").expect("stored");
    assert_eq!(loaded.entries.len(), 2);
    assert_eq!(loaded.entries[0].role, Role::User);
    assert_eq!(loaded.entries[1].text, "hello: there");
}

#[actix_web::test]
async fn later_writes_rewrite_the_signals_only_when_they_changed() {
    let (store, _) = redis_store().await;
    let id = SessionId::new();
    let now = Utc::now();
    let scored = |name: &str, points: i32| LeadRecord {
        score: LeadScore {
            lead_score: points,
            signals: vec![leadchat::scoring::Signal {
                name: name.into(),
                points,
                evidence: "pricing".into(),
            }],
            ..LeadScore::default()
        },
        total_queries: 1,
    };
    let write = |lead: LeadRecord, first_write: bool, signals_changed: bool| SessionUpdate {
        id,
        contact: None,
        new_entries: Vec::new(),
        lead,
        first_interaction: now,
        last_interaction: now,
        deadline: now,
        node: "n1".into(),
        first_write,
        signals_changed,
    };
    store
        .persist(&write(scored("pricing", 10), true, true))
        .await
        .expect("persist");
    store
        .persist(&write(scored("pricing", 10), false, false))
        .await
        .expect("persist");
    let lead = store.load(id).await.expect("load").expect("stored").lead;
    assert_eq!(lead.expect("lead").score.signals[0].name, "pricing");
    store
        .persist(&write(scored("budget", 25), false, true))
        .await
        .expect("persist");
    let loaded = store.load(id).await.expect("load").expect("stored");
    let lead = loaded.lead.expect("lead");
    assert_eq!(lead.score.lead_score, 25);
    assert_eq!(lead.score.signals[0].name, "budget");
    assert_eq!(loaded.node.as_deref(), Some("n1"));
}

fn update(
    id: SessionId,
    entries: Vec<TranscriptEntry>,
    deadline: chrono::DateTime<Utc>,
) -> SessionUpdate {
    let now = Utc::now();
    SessionUpdate {
        id,
        contact: None,
        new_entries: entries,
        lead: LeadRecord {
            score: LeadScore::default(),
            total_queries: 1,
        },
        first_interaction: now,
        last_interaction: now,
        deadline,
        node: "n1".into(),
        first_write: true,
        signals_changed: true,
    }
}

#[actix_web::test]
async fn the_deadline_index_lists_expired_sessions_oldest_first_until_forgotten() {
    let (stores, _dir) = durable_stores().await;
    for store in stores {
        let now = Utc::now();
        let (old, older, later) = (SessionId::new(), SessionId::new(), SessionId::new());
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        for (id, deadline) in [(old, at(-10)), (older, at(-20)), (later, at(3600))] {
            store
                .persist(&update(id, vec![entry(1, Role::User, "hi")], deadline))
                .await
                .expect("persist");
        }
        let expired = store.expired(now, 1000).await.expect("expired");
        let ours: Vec<SessionId> = expired
            .into_iter()
            .filter(|id| [old, older, later].contains(id))
            .collect();
        assert_eq!(ours, vec![older, old], "{}", store.kind());
        assert!(store.try_finalize(older).await.expect("finalize"));
        store.forget_deadline(older).await.expect("forget");
        let expired = store.expired(now, 1000).await.expect("expired");
        assert!(!expired.contains(&older), "{}", store.kind());
        assert!(expired.contains(&old), "{}", store.kind());
        assert!(
            store.is_finalized(older).await.expect("guard"),
            "{}",
            store.kind()
        );
        assert!(
            !store.try_finalize(older).await.expect("finalize"),
            "the guard outlives the index: {}",
            store.kind()
        );
    }
}

#[actix_web::test]
async fn a_node_is_alive_while_its_heartbeat_lasts() {
    let (stores, _dir) = durable_stores().await;
    for store in stores {
        let node = format!("node-{}", ulid::Ulid::new());
        assert!(
            !store.node_alive(&node).await.expect("alive?"),
            "{}",
            store.kind()
        );
        store
            .heartbeat(&node, std::time::Duration::from_millis(1500))
            .await
            .expect("beat");
        assert!(
            store.node_alive(&node).await.expect("alive?"),
            "{}",
            store.kind()
        );
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
        assert!(
            !store.node_alive(&node).await.expect("alive?"),
            "{}",
            store.kind()
        );
    }
}

#[actix_web::test]
async fn a_retried_write_does_not_store_its_lines_twice() {
    let (stores, _dir) = stores().await;
    for store in stores {
        if store.kind() == "memory" {
            continue; // it has no lost answers to retry after
        }
        let id = SessionId::new();
        let write = update(id, vec![entry(1, Role::User, "once")], Utc::now());
        store.persist(&write).await.expect("persist");
        store.persist(&write).await.expect("persist again");
        let loaded = store.load(id).await.expect("load").expect("stored");
        assert_eq!(loaded.entries.len(), 1, "{}", store.kind());
    }
}

#[actix_web::test]
async fn the_embedded_store_keeps_everything_written_across_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = SessionId::new();
    let done = SessionId::new();
    let contact = Contact::parse("Ana", "ana@example.com", "", "Org").expect("valid");
    {
        let store = Arc::new(
            EmbeddedStore::open(dir.path(), EmbeddedSync::Normal)
                .await
                .expect("open"),
        );
        // Many sessions at once: they share group commits.
        let writes = (0..200).map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let other = SessionId::new();
                store
                    .persist(&update(
                        other,
                        vec![entry(1, Role::User, &format!("m{n}"))],
                        Utc::now(),
                    ))
                    .await
                    .expect("persist");
                other
            })
        });
        let mut others = Vec::new();
        for w in writes {
            others.push(w.await.expect("task"));
        }
        let mut first = update(
            id,
            vec![entry(1, Role::Bot, "hi"), entry(2, Role::User, "q")],
            Utc::now(),
        );
        first.contact = Some(contact.clone());
        store.persist(&first).await.expect("persist");
        let mut second = update(id, vec![entry(3, Role::Bot, "a")], Utc::now());
        second.first_write = false;
        second.signals_changed = false;
        store.persist(&second).await.expect("persist");
        assert!(store.try_finalize(done).await.expect("finalize"));
        for other in &others {
            assert_eq!(
                store
                    .load(*other)
                    .await
                    .expect("load")
                    .expect("stored")
                    .entries
                    .len(),
                1
            );
        }
        // Dropped: the writer closes behind it (kill -9 is tests/process.rs's).
    }
    let store = EmbeddedStore::open(dir.path(), EmbeddedSync::Full)
        .await
        .expect("reopen");
    let loaded = store.load(id).await.expect("load").expect("stored");
    assert_eq!(
        loaded.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(loaded.contact, contact, "a later write keeps the contact");
    assert!(loaded.contact_collected);
    assert!(!loaded.finalized);
    assert!(store.is_finalized(done).await.expect("guard"));
    assert!(!store.try_finalize(done).await.expect("finalize"));
    assert!(store.try_finalize(id).await.expect("finalize"));
}

/// Sessions that never stop writing leave the side checkpoint no gap to
/// catch up in; the writer itself must fold the WAL in now and then, or the
/// WAL grows by every page every commit writes (2 GB after 20 s at 5,000
/// messages a second, each page a fresh block the kernel zeroes first).
#[actix_web::test]
async fn the_embedded_wal_stays_bounded_under_writes_that_never_pause() {
    const WRITERS: usize = 32;
    const WRITES_EACH: usize = 400;
    const LIMIT: u64 = 32 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        EmbeddedStore::open(dir.path(), EmbeddedSync::Normal)
            .await
            .expect("open"),
    );
    let mut wal = store.path().as_os_str().to_owned();
    wal.push("-wal");
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = SessionId::new();
                for seq in 1..=WRITES_EACH as u64 {
                    let mut next = update(
                        id,
                        vec![entry(seq, Role::User, &"x".repeat(3000))],
                        Utc::now(),
                    );
                    next.first_write = seq == 1;
                    store.persist(&next).await.expect("persist");
                }
            })
        })
        .collect();
    let mut largest = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for w in writers {
        w.await.expect("writer");
    }
    let data = (WRITERS * WRITES_EACH * 3000) as u64;
    let db = std::fs::metadata(store.path())
        .expect("database file")
        .len();
    assert!(
        db >= data,
        "everything written reached the database file ({db} bytes)"
    );
    assert!(
        largest <= LIMIT,
        "the WAL grew to {largest} bytes while {data} bytes of messages were written"
    );
}
