//! The SQL archive of finalized sessions, the durable mail outbox and the
//! durable jobs table (`jobs.rs`).
//!
//! One [`Archive`] type serves SQLite (one node, a file next to the server)
//! and PostgreSQL (several nodes sharing one database); the URL picks the back
//! end. Both are kept as typed sqlx pools rather than sqlx `Any`, because `Any`
//! has no chrono or JSON types. The query code is written once and expanded
//! for each pool by the `on_pool!` macro, so both back ends run the same SQL
//! (`$N` placeholders work on both) and the same tests.
//!
//! Guarantees:
//! - `archive_session` writes the session, its transcript and a pending mail in
//!   one transaction, and is idempotent on `session_id`: the primary key is the
//!   exactly-once backstop for "mail the report once".
//! - `claim_due_mails` leases mails atomically (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL), so nodes sharing one database do not send the same mail twice
//!   within a lease.
//! - Timestamps are kept to the microsecond (PostgreSQL's precision) on both.
//!
//! The flow (`report::actor`, `mail::actor`): the finalize pipeline calls
//! `archive_session` first, with the mail held (`NewMail::held_until`), so
//! the lead is durable before anything is rendered; it renders and writes
//! the PDF, sets `report_path`, and hands the mail's id to the mailer, which
//! takes it back with `claim_held_mail` and sends it, renewing
//! the claim (`renew_claim`) while the send runs, then `mark_sent`,
//! `mark_retry(id, err, now + backoff(attempts))` or `mark_failed`. A mail
//! whose node died meanwhile becomes due when its hold or claim runs out:
//! any node's poller takes it with `claim_due_mails`, renders the PDF again
//! if it is missing (each try counted by `count_render_attempt`, after the
//! last one sent with the transcript as text), and sends it the same way.
//! At start `release_claims_at_start` makes this node's claims due at once.

mod error;
mod jobs;
pub mod model;
mod outbox;
mod rows;
mod sessions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

pub use error::{ArchiveError, redact_url};
pub use jobs::{Claim, Enqueued, Job, JobState, NewJob};
pub use model::*;

/// Runs `$body` once per back end with `$pool` bound to the typed pool and
/// `$ts` to the function that turns a `DateTime<Utc>` into the value bound
/// for that back end (fixed-layout text on SQLite, so text order is time order).
macro_rules! on_pool {
    ($archive:expr, |$pool:ident, $ts:ident| $body:expr) => {
        match &$archive.backend {
            $crate::archive::Backend::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $ts = $crate::archive::rows::sqlite_ts;
                $body
            }
            $crate::archive::Backend::Postgres($pool) => {
                #[allow(unused_variables)]
                let $ts = $crate::archive::rows::pg_ts;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller waits for a pooled connection before the call fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite serialises writers; a writer waits this long for the lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The archive; cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Archive {
    pub(crate) backend: Backend,
    /// The URL with its password replaced, for `Debug` and errors.
    redacted_url: String,
    schema: Option<String>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("backend", &self.backend_name())
            .field("url", &self.redacted_url)
            .field("schema", &self.schema)
            .finish()
    }
}

impl Archive {
    /// Opens the archive at `url` and applies pending migrations.
    ///
    /// - `sqlite://PATH` (relative or, with a third slash, absolute) creates the
    ///   file and its folder if missing and turns on WAL; `sqlite::memory:` is a
    ///   private in-memory database (one connection, gone when dropped).
    /// - `postgres://…` (or `postgresql://…`); `?schema=NAME` keeps all tables
    ///   in that schema, creating it if missing.
    pub async fn connect(url: &str) -> Result<Self, ArchiveError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (base, schema) = split_schema(url)?;
            Self::connect_postgres(url, &base, schema).await
        } else {
            Err(ArchiveError::InvalidUrl {
                url: redact_url(url),
                reason: "expected sqlite:… or postgres://…".to_owned(),
            })
        }
    }

    /// Opens a PostgreSQL archive whose tables live in `schema` (created if
    /// missing); used to give each test or tenant its own namespace.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, ArchiveError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ArchiveError::InvalidUrl {
                url: redact_url(url),
                reason: "a schema needs a postgres:// URL".to_owned(),
            });
        }
        let (base, _) = split_schema(url)?;
        Self::connect_postgres(url, &base, Some(schema.to_owned())).await
    }

    /// `"sqlite"` or `"postgres"`, for logs and the health endpoint.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Readiness probe: one round trip to the database.
    pub async fn ping(&self) -> Result<(), ArchiveError> {
        on_pool!(self, |pool, _ts| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        on_pool!(self, |pool, _ts| pool.close().await)
    }

    async fn connect_sqlite(url: &str) -> Result<Self, ArchiveError> {
        let connect_err = |reason: String| ArchiveError::Connect {
            url: url.to_owned(),
            reason,
        };
        let rest = url.trim_start_matches("sqlite:");
        let in_memory = rest == ":memory:" || rest.starts_with(":memory:?");
        let mut options = SqliteConnectOptions::new()
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool_options = if in_memory {
            // Every in-memory connection is its own database: keep exactly one, forever.
            options = options.in_memory(true);
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(ArchiveError::InvalidUrl {
                    url: url.to_owned(),
                    reason: "no file path".to_owned(),
                });
            }
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| connect_err(format!("cannot create folder: {e}")))?;
            }
            // WAL lets the admin view read while the mailer writes; NORMAL
            // sync is durable across process crashes, which is what WAL needs.
            options = options
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool_options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| connect_err(ArchiveError::from(e).to_string()))?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Archive {
            backend: Backend::Sqlite(pool),
            redacted_url: url.to_owned(),
            schema: None,
        })
    }

    async fn connect_postgres(
        url: &str,
        base: &str,
        schema: Option<String>,
    ) -> Result<Self, ArchiveError> {
        let redacted = redact_url(url);
        let connect_err = |e: sqlx::Error| ArchiveError::Connect {
            url: redacted.clone(),
            reason: ArchiveError::from(e).to_string(),
        };
        let mut options = PgConnectOptions::from_str(base).map_err(connect_err)?;
        if let Some(schema) = &schema {
            if !valid_schema(schema) {
                return Err(ArchiveError::InvalidSchema);
            }
            // Created on a throwaway connection before the pool sets
            // search_path to it; the name was checked to be a plain identifier.
            let mut conn = options.connect().await.map_err(connect_err)?;
            let ddl = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(&mut conn)
                .await?;
            conn.close().await.map_err(connect_err)?;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Archive {
            backend: Backend::Postgres(pool),
            redacted_url: redacted,
            schema,
        })
    }
}

/// Splits `?schema=NAME` off a PostgreSQL URL (sqlx does not know the parameter).
fn split_schema(url: &str) -> Result<(String, Option<String>), ArchiveError> {
    let mut parsed = url::Url::parse(url).map_err(|e| ArchiveError::InvalidUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })?;
    let mut schema = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "schema" {
                schema = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), schema))
}

/// A schema name we can splice into DDL without quoting worries.
fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_off() {
        let (base, schema) =
            split_schema("postgres://u:p@h:5432/db?schema=test_1&sslmode=disable").expect("parse");
        assert_eq!(base, "postgres://u:p@h:5432/db?sslmode=disable");
        assert_eq!(schema.as_deref(), Some("test_1"));
    }

    #[test]
    fn passwords_are_redacted() {
        let r = redact_url("postgres://user:s3cret@host/db");
        assert!(!r.contains("s3cret"));
        assert!(r.contains("user:***@host"));
        assert_eq!(redact_url("not a url s3cret"), "<unparseable URL>");
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema("test_ab12"));
        assert!(!valid_schema("Test"));
        assert!(!valid_schema("x\"; DROP"));
        assert!(!valid_schema(""));
    }
}
