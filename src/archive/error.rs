//! The archive's one error type.
//!
//! `Display` never carries SQL text or credentials: these messages end up in
//! logs and in admin error frames, where a leaked password or query is a
//! liability. The database's own message is kept (it names the constraint or
//! the connection problem, which is what an operator needs).

use thiserror::Error;

/// Everything that can go wrong in `Archive`.
#[derive(Debug, Error)]
pub enum ArchiveError {
    /// The URL was not `sqlite:…` or `postgres://…`, or could not be parsed.
    #[error("invalid archive URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The PostgreSQL schema name is not a plain lower-case identifier.
    #[error("invalid schema name (use [a-z_][a-z0-9_]*, at most 63 characters)")]
    InvalidSchema,
    /// Could not open the database or its folder.
    #[error("cannot open archive {url}: {reason}")]
    Connect { url: String, reason: String },
    /// Applying the migrations failed.
    #[error("archive migration failed: {0}")]
    Migrate(String),
    /// A query failed; `code` is the SQLSTATE / SQLite code when the database gave one.
    #[error("archive database error{}: {message}", code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default())]
    Database {
        code: Option<String>,
        message: String,
    },
    /// No outbox row with this id.
    #[error("no outbox mail with id {0}")]
    MailNotFound(i64),
    /// No archived session with this id.
    #[error("no archived session {0:?}")]
    SessionNotFound(String),
    /// An argument out of range (e.g. a lease longer than chrono can represent).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A stored value the application cannot read back (e.g. an unknown status).
    #[error("archive holds an unreadable value: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for ArchiveError {
    fn from(e: sqlx::Error) -> Self {
        // Only the parts that cannot contain SQL text are kept; sqlx's own
        // Display is avoided for variants that might echo the query or URL.
        let (code, message) = match &e {
            sqlx::Error::Database(db) => {
                (db.code().map(|c| c.into_owned()), db.message().to_owned())
            }
            sqlx::Error::Io(io) => (None, format!("i/o error: {io}")),
            sqlx::Error::Tls(_) => (None, "TLS error".to_owned()),
            sqlx::Error::Protocol(_) => (None, "protocol error".to_owned()),
            sqlx::Error::RowNotFound => (None, "row not found".to_owned()),
            sqlx::Error::ColumnNotFound(c) => (None, format!("column not found: {c}")),
            sqlx::Error::ColumnDecode { index, .. } => {
                (None, format!("cannot decode column {index}"))
            }
            sqlx::Error::Decode(_) => (None, "cannot decode value".to_owned()),
            sqlx::Error::PoolTimedOut => (None, "timed out waiting for a connection".to_owned()),
            sqlx::Error::PoolClosed => (None, "connection pool closed".to_owned()),
            sqlx::Error::Configuration(_) => (None, "configuration error".to_owned()),
            _ => (None, "database driver error".to_owned()),
        };
        ArchiveError::Database { code, message }
    }
}

impl From<sqlx::migrate::MigrateError> for ArchiveError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError as M;
        let message = match e {
            M::Execute(inner) | M::ExecuteMigration(inner, _) => {
                ArchiveError::from(inner).to_string()
            }
            M::VersionMissing(v) => format!("applied migration {v} is missing from this build"),
            M::VersionMismatch(v) => format!("migration {v} was changed after it was applied"),
            M::Dirty(v) => format!("migration {v} is partially applied"),
            _ => "migration error".to_owned(),
        };
        ArchiveError::Migrate(message)
    }
}

pub use crate::secret::redact_url;
