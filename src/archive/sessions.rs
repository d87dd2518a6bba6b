//! Writing finalized sessions and reading them back for the admin view.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Database, Postgres, QueryBuilder, Sqlite, Transaction};

use super::error::ArchiveError;
use super::model::{
    ArchiveOutcome, ArchivedSession, DayCount, NewMail, Page, SessionDetail, SessionQuery,
    SessionSummary,
};
use super::rows::{
    MessageRow, OutboxRow, SessionRow, SummaryRow, like_pattern, outbox_columns, search_text,
    session_columns,
};
use super::{Archive, Backend, on_pool};

/// Transcript rows per multi-row INSERT; 5 parameters each stays far below
/// both back ends' parameter limits.
const MESSAGE_BATCH: usize = 500;

/// Starting a transaction that will write.
pub(crate) trait BeginWrite {
    type Db: Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = Sqlite;
    /// `BEGIN IMMEDIATE` takes the write lock up front, so a racing writer
    /// waits on the busy timeout instead of failing with SQLITE_BUSY when it
    /// later tries to upgrade a read transaction.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

/// Appends the `WHERE` clause of a `SessionQuery` to a builder; a macro so it
/// can bind each back end's timestamp type.
macro_rules! push_session_filters {
    ($qb:ident, $q:expr, $ts:ident) => {{
        $qb.push(" WHERE 1 = 1");
        if let Some(from) = $q.from {
            $qb.push(" AND s.finalized_at >= ").push_bind($ts(from));
        }
        if let Some(to) = $q.to {
            $qb.push(" AND s.finalized_at < ").push_bind($ts(to));
        }
        if let Some(priority) = &$q.priority {
            $qb.push(" AND s.priority = ").push_bind(priority.clone());
        }
        if let Some(reason) = &$q.end_reason {
            $qb.push(" AND s.end_reason = ").push_bind(reason.clone());
        }
        if let Some(status) = $q.mail_status {
            $qb.push(" AND o.status = ").push_bind(status.as_str());
        }
        if let Some(text) = $q.text.as_deref().filter(|t| !t.is_empty()) {
            $qb.push(" AND s.search_text LIKE ")
                .push_bind(like_pattern(text))
                .push(" ESCAPE '\\'");
        }
    }};
}

impl Archive {
    /// Stores a finalized session, its transcript and a pending report mail in
    /// one transaction. A second call for the same `session_id` — a retry, or
    /// another node racing — writes nothing and returns `AlreadyArchived`.
    #[tracing::instrument(skip_all, fields(session_id = %session.session_id))]
    pub async fn archive_session(
        &self,
        session: &ArchivedSession,
        mail: &NewMail,
    ) -> Result<ArchiveOutcome, ArchiveError> {
        let now = Utc::now();
        let search = search_text(session);
        on_pool!(self, |pool, ts| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ", search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 $14, $15, $16, $17) ON CONFLICT (session_id) DO NOTHING"
            ))
            .bind(&session.session_id)
            .bind(&session.name)
            .bind(&session.email)
            .bind(&session.phone)
            .bind(&session.organization)
            .bind(session.lead_score)
            .bind(session.priority.as_str())
            .bind(session.engagement_score)
            .bind(session.total_queries)
            .bind(Json(&session.signals))
            .bind(ts(session.first_interaction))
            .bind(ts(session.last_interaction))
            .bind(ts(session.finalized_at))
            .bind(session.end_reason.as_str())
            .bind(&session.node)
            .bind(&session.report_path)
            .bind(&search)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                tracing::info!("session already archived");
                return Ok(ArchiveOutcome::AlreadyArchived);
            }
            for chunk in session.messages.chunks(MESSAGE_BATCH) {
                let mut qb =
                    QueryBuilder::new("INSERT INTO messages (session_id, seq, role, text, at) ");
                qb.push_values(chunk, |mut row, m| {
                    row.push_bind(&session.session_id)
                        .push_bind(m.seq)
                        .push_bind(m.role.as_str())
                        .push_bind(&m.text)
                        .push_bind(ts(m.at));
                });
                qb.build().execute(&mut *tx).await?;
            }
            let mail_id: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (session_id, recipients, subject, attempts, render_attempts, \
                 claimed, next_attempt_at, status, message_id, created_at) \
                 VALUES ($1, $2, $3, 0, $7, $8, $4, 'pending', $5, $6) RETURNING id",
            )
            .bind(&session.session_id)
            .bind(Json(&mail.recipients))
            .bind(&mail.subject)
            .bind(ts(mail.held_until.unwrap_or(now)))
            .bind(&mail.message_id)
            .bind(ts(now))
            // A held mail's pipeline renders its report next: that render
            // is counted here, before it starts.
            .bind(i32::from(mail.held_until.is_some()))
            // Held: claimed by its pipeline until the hold runs out.
            .bind(mail.held_until.is_some())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(mail_id, "session archived, report mail queued");
            Ok(ArchiveOutcome::Archived { mail_id })
        })
    }

    /// Records where the rendered PDF was kept.
    pub async fn set_report_path(&self, session_id: &str, path: &str) -> Result<(), ArchiveError> {
        let updated = on_pool!(self, |pool, _ts| {
            sqlx::query("UPDATE sessions SET report_path = $2 WHERE session_id = $1")
                .bind(session_id)
                .bind(path)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(ArchiveError::SessionNotFound(session_id.to_owned()));
        }
        Ok(())
    }

    /// One session with its transcript (in `seq` order) and its report mail.
    pub async fn get_session(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, ArchiveError> {
        on_pool!(self, |pool, _ts| {
            // Read in one transaction so the three reads see one snapshot.
            let mut tx = pool.begin().await?;
            let row: Option<SessionRow> = sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE session_id = $1"
            ))
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let messages: Vec<MessageRow> = sqlx::query_as(
                "SELECT seq, role, text, at FROM messages WHERE session_id = $1 ORDER BY seq",
            )
            .bind(session_id)
            .fetch_all(&mut *tx)
            .await?;
            let mail: Option<OutboxRow> = sqlx::query_as(concat!(
                "SELECT ",
                outbox_columns!(),
                " FROM outbox WHERE session_id = $1"
            ))
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(SessionDetail {
                session: row.with_messages(messages)?,
                mail: mail.map(TryInto::try_into).transpose()?,
            }))
        })
    }

    /// Sessions matching `query`, newest first, and how many match in all.
    pub async fn list_sessions(
        &self,
        query: &SessionQuery,
    ) -> Result<Page<SessionSummary>, ArchiveError> {
        const FROM: &str = " FROM sessions s LEFT JOIN outbox o ON o.session_id = s.session_id";
        let limit = query.limit.clamp(0, 1000);
        let offset = query.offset.max(0);
        on_pool!(self, |pool, ts| {
            let mut count = QueryBuilder::new("SELECT COUNT(*)");
            count.push(FROM);
            push_session_filters!(count, query, ts);
            let total: i64 = count.build_query_scalar().fetch_one(pool).await?;

            let mut select = QueryBuilder::new(
                "SELECT s.session_id, s.name, s.email, s.organization, s.lead_score, s.priority, \
                 s.total_queries, s.finalized_at, s.end_reason, o.status AS mail_status",
            );
            select.push(FROM);
            push_session_filters!(select, query, ts);
            select
                .push(" ORDER BY s.finalized_at DESC, s.session_id LIMIT ")
                .push_bind(limit)
                .push(" OFFSET ")
                .push_bind(offset);
            let rows: Vec<SummaryRow> = select.build_query_as().fetch_all(pool).await?;
            let items = rows
                .into_iter()
                .map(SessionSummary::try_from)
                .collect::<Result<_, _>>()?;
            Ok(Page { items, total })
        })
    }

    /// Sessions finalized since `since`, per UTC day and priority, oldest day
    /// first (the admin's 14-day chart).
    pub async fn counts_by_day_and_priority(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<DayCount>, ArchiveError> {
        // The only SQL that differs: how a timestamp becomes a UTC date.
        let rows = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT substr(finalized_at, 1, 10) AS day, priority, COUNT(*) AS n \
                     FROM sessions WHERE finalized_at >= $1 \
                     GROUP BY day, priority ORDER BY day, priority",
                )
                .bind(super::rows::sqlite_ts(since))
                .fetch_all(pool)
                .await?
            }
            Backend::Postgres(pool) => sqlx::query_as(
                "SELECT (finalized_at AT TIME ZONE 'UTC')::date AS day, priority, COUNT(*) AS n \
                     FROM sessions WHERE finalized_at >= $1 \
                     GROUP BY day, priority ORDER BY day, priority",
            )
            .bind(super::rows::pg_ts(since))
            .fetch_all(pool)
            .await?,
        };
        Ok(rows)
    }
}
