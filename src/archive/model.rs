//! Plain data going into and coming out of the archive.
//!
//! No actor or database types appear here, so the rest of the server can
//! build and read these values without knowing which back end is in use.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{EndReason, Role};
use crate::scoring::{Priority, Signal};

/// A finalized chat session as it is kept for the sales team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedSession {
    pub session_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub lead_score: i32,
    pub priority: Priority,
    pub engagement_score: i32,
    pub total_queries: i32,
    /// What the score was made of (kept as a JSON array).
    pub signals: Vec<Signal>,
    pub first_interaction: DateTime<Utc>,
    pub last_interaction: DateTime<Utc>,
    pub finalized_at: DateTime<Utc>,
    pub end_reason: EndReason,
    /// The node that finalized the session (useful when several share one database).
    pub node: String,
    pub report_path: Option<String>,
    pub messages: Vec<ArchivedMessage>,
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedMessage {
    pub seq: i64,
    pub role: Role,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// The report mail to queue together with the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub recipients: Vec<String>,
    pub subject: String,
    /// The `Message-ID` the composed mail will carry, kept so a resend can be
    /// recognised downstream.
    pub message_id: String,
    /// The mail is not due before then: the caller (the finalizing
    /// pipeline) will send it itself once its report is rendered, and takes
    /// it with `Archive::claim_held_mail`. Should its node die first, any
    /// poller sends it after this. `None`: due at once.
    pub held_until: Option<DateTime<Utc>>,
}

/// Where a queued mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailStatus {
    Pending,
    Sent,
    /// Permanently failed (5xx or out of attempts); never retried.
    Failed,
}

impl MailStatus {
    /// The text stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Pending => "pending",
            MailStatus::Sent => "sent",
            MailStatus::Failed => "failed",
        }
    }

    /// Parses the stored text; `None` for anything the schema would not allow.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(MailStatus::Pending),
            "sent" => Some(MailStatus::Sent),
            "failed" => Some(MailStatus::Failed),
            _ => None,
        }
    }
}

/// A row of the durable outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: i64,
    pub session_id: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub attempts: i32,
    /// Renders of the report tried for this mail (a crash mid-render counts).
    pub render_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub status: MailStatus,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub message_id: String,
}

/// What `archive_session` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// Session, transcript and a pending mail were stored; `mail_id` is the outbox row.
    Archived { mail_id: i64 },
    /// The session was already there; nothing was written.
    AlreadyArchived,
}

/// A session with the state of its report mail, as the admin view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDetail {
    pub session: ArchivedSession,
    pub mail: Option<OutboxMail>,
}

/// Filters and paging for `list_sessions`. `Default` lists everything, 50 at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    /// Inclusive lower bound on `finalized_at`.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `finalized_at`.
    pub to: Option<DateTime<Utc>>,
    pub priority: Option<String>,
    pub end_reason: Option<String>,
    pub mail_status: Option<MailStatus>,
    /// Case-insensitive substring of name, e-mail or organization.
    pub text: Option<String>,
    /// Page size, clamped to 0..=1000.
    pub limit: i64,
    /// Rows to skip; negative counts as 0.
    pub offset: i64,
}

impl Default for SessionQuery {
    fn default() -> Self {
        SessionQuery {
            from: None,
            to: None,
            priority: None,
            end_reason: None,
            mail_status: None,
            text: None,
            limit: 50,
            offset: 0,
        }
    }
}

/// One line of the admin list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub organization: Option<String>,
    pub lead_score: i32,
    pub priority: Priority,
    pub total_queries: i32,
    pub finalized_at: DateTime<Utc>,
    pub end_reason: EndReason,
    pub mail_status: Option<MailStatus>,
}

/// A page of results and the number of rows matching the filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// One bar of the "sessions per day" chart: day (UTC), priority, sessions.
pub type DayCount = (NaiveDate, String, i64);

/// Outbox health for the admin dashboard and alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailStats {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    /// When the oldest pending mail is next due; a value far in the past means
    /// the mailer is not keeping up.
    pub oldest_pending_due: Option<DateTime<Utc>>,
}
