//! Row shapes as sqlx reads them, and how values are bound per back end.
//!
//! The row structs derive `FromRow` generically, so one definition decodes
//! both SQLite and PostgreSQL rows; conversion to the model types happens here
//! so the query modules stay about SQL.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::types::Json;

use super::error::ArchiveError;
use super::model::{ArchivedMessage, ArchivedSession, MailStatus, OutboxMail, SessionSummary};
use crate::domain::{EndReason, Role};
use crate::scoring::{Priority, Signal};

/// PostgreSQL keeps microseconds; truncating first makes a round trip exact.
pub(crate) fn pg_ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// SQLite stores text. chrono's default encoding drops trailing zero digits,
/// which breaks text ordering ("…:00+00:00" vs "…:00.5+00:00" is fine, but
/// ".500+" vs ".500000+" is not); one fixed layout keeps `<=` on text correct.
pub(crate) fn sqlite_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// The lower-cased haystack for the admin search box, built in Rust so case
/// folding is Unicode-aware on both back ends.
pub(crate) fn search_text(s: &ArchivedSession) -> String {
    [&s.name, &s.email, &s.organization]
        .into_iter()
        .flatten()
        .map(|v| v.to_lowercase())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `%text%` for LIKE, with the wildcards in the user's text escaped by `\`.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The outbox columns, in `OutboxRow` order; a macro so it can go into `concat!`
/// (sqlx only takes `&'static str` as trusted SQL).
macro_rules! outbox_columns {
    () => {
        "id, session_id, recipients, subject, attempts, render_attempts, next_attempt_at, status, last_error, sent_at, message_id"
    };
}
pub(crate) use outbox_columns;

macro_rules! session_columns {
    () => {
        "session_id, name, email, phone, organization, lead_score, priority, engagement_score, \
         total_queries, signals, first_interaction, last_interaction, finalized_at, end_reason, \
         node, report_path"
    };
}
pub(crate) use session_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    session_id: String,
    recipients: Json<Vec<String>>,
    subject: String,
    attempts: i32,
    render_attempts: i32,
    next_attempt_at: DateTime<Utc>,
    status: String,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    message_id: String,
}

impl TryFrom<OutboxRow> for OutboxMail {
    type Error = ArchiveError;

    fn try_from(r: OutboxRow) -> Result<Self, ArchiveError> {
        Ok(OutboxMail {
            status: parse_status(&r.status)?,
            id: r.id,
            session_id: r.session_id,
            recipients: r.recipients.0,
            subject: r.subject,
            attempts: r.attempts,
            render_attempts: r.render_attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            sent_at: r.sent_at,
            message_id: r.message_id,
        })
    }
}

fn parse_priority(s: &str) -> Result<Priority, ArchiveError> {
    s.parse()
        .map_err(|_| ArchiveError::Corrupt(format!("priority {s:?}")))
}

fn parse_reason(s: &str) -> Result<EndReason, ArchiveError> {
    EndReason::parse(s).ok_or_else(|| ArchiveError::Corrupt(format!("end reason {s:?}")))
}

pub(crate) fn parse_status(s: &str) -> Result<MailStatus, ArchiveError> {
    MailStatus::parse(s).ok_or_else(|| ArchiveError::Corrupt(format!("mail status {s:?}")))
}

pub(crate) fn outbox_mails(rows: Vec<OutboxRow>) -> Result<Vec<OutboxMail>, ArchiveError> {
    rows.into_iter().map(OutboxMail::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    session_id: String,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    organization: Option<String>,
    lead_score: i32,
    priority: String,
    engagement_score: i32,
    total_queries: i32,
    signals: Json<Vec<Signal>>,
    first_interaction: DateTime<Utc>,
    last_interaction: DateTime<Utc>,
    finalized_at: DateTime<Utc>,
    end_reason: String,
    node: String,
    report_path: Option<String>,
}

impl SessionRow {
    /// The session with its transcript; a value no leadchat writes (an
    /// unknown priority, reason or role) is `Corrupt`, not a default.
    pub(crate) fn with_messages(
        self,
        messages: Vec<MessageRow>,
    ) -> Result<ArchivedSession, ArchiveError> {
        Ok(ArchivedSession {
            session_id: self.session_id,
            name: self.name,
            email: self.email,
            phone: self.phone,
            organization: self.organization,
            lead_score: self.lead_score,
            priority: parse_priority(&self.priority)?,
            engagement_score: self.engagement_score,
            total_queries: self.total_queries,
            signals: self.signals.0,
            first_interaction: self.first_interaction,
            last_interaction: self.last_interaction,
            finalized_at: self.finalized_at,
            end_reason: parse_reason(&self.end_reason)?,
            node: self.node,
            report_path: self.report_path,
            messages: messages
                .into_iter()
                .map(ArchivedMessage::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    seq: i64,
    role: String,
    text: String,
    at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for ArchivedMessage {
    type Error = ArchiveError;

    fn try_from(r: MessageRow) -> Result<Self, ArchiveError> {
        Ok(ArchivedMessage {
            seq: r.seq,
            role: Role::parse(&r.role)
                .ok_or_else(|| ArchiveError::Corrupt(format!("role {:?}", r.role)))?,
            text: r.text,
            at: r.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    session_id: String,
    name: Option<String>,
    email: Option<String>,
    organization: Option<String>,
    lead_score: i32,
    priority: String,
    total_queries: i32,
    finalized_at: DateTime<Utc>,
    end_reason: String,
    mail_status: Option<String>,
}

impl TryFrom<SummaryRow> for SessionSummary {
    type Error = ArchiveError;

    fn try_from(r: SummaryRow) -> Result<Self, ArchiveError> {
        Ok(SessionSummary {
            mail_status: r.mail_status.as_deref().map(parse_status).transpose()?,
            session_id: r.session_id,
            name: r.name,
            email: r.email,
            organization: r.organization,
            lead_score: r.lead_score,
            priority: parse_priority(&r.priority)?,
            total_queries: r.total_queries,
            finalized_at: r.finalized_at,
            end_reason: parse_reason(&r.end_reason)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(priority: &str, end_reason: &str) -> SessionRow {
        let now = Utc::now();
        SessionRow {
            session_id: "s".into(),
            name: None,
            email: None,
            phone: None,
            organization: None,
            lead_score: 10,
            priority: priority.into(),
            engagement_score: 1,
            total_queries: 1,
            signals: Json(vec![Signal {
                name: "pricing".into(),
                points: 10,
                evidence: "price".into(),
            }]),
            first_interaction: now,
            last_interaction: now,
            finalized_at: now,
            end_reason: end_reason.into(),
            node: "n".into(),
            report_path: None,
        }
    }

    fn line(role: &str) -> MessageRow {
        MessageRow {
            seq: 1,
            role: role.into(),
            text: "hi".into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn rows_decode_into_typed_values() {
        let s = row("high", "visitor")
            .with_messages(vec![line("user"), line("bot")])
            .expect("valid");
        assert_eq!(s.priority, Priority::High);
        assert_eq!(s.end_reason, EndReason::Visitor);
        assert_eq!(s.signals[0].points, 10);
        assert_eq!(
            s.messages.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::User, Role::Bot]
        );
    }

    #[test]
    fn a_value_no_leadchat_writes_is_corrupt_not_a_default() {
        for (priority, reason, role) in [
            ("urgent", "visitor", "user"),
            ("high", "visitor_left", "user"),
            ("high", "visitor", "agent?"),
        ] {
            let got = row(priority, reason).with_messages(vec![line(role)]);
            assert!(
                matches!(got, Err(ArchiveError::Corrupt(_))),
                "{priority}/{reason}/{role}: {got:?}"
            );
        }
    }
}
