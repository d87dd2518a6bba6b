//! Messages the ReportActor takes.

use actix::Message;
use chrono::{DateTime, Utc};

use crate::domain::{Contact, EndReason, SessionId, TranscriptEntry};
use crate::scoring::LeadScore;

/// Everything a report needs about a session that has just been finalized.
#[derive(Debug, Clone)]
pub struct FinalizedSession {
    pub id: SessionId,
    pub contact: Contact,
    pub lead: LeadScore,
    pub total_queries: u32,
    pub first_interaction: DateTime<Utc>,
    pub last_interaction: DateTime<Utc>,
    pub finalized_at: DateTime<Utc>,
    pub reason: EndReason,
    pub node: String,
    pub transcript: Vec<TranscriptEntry>,
}

impl FinalizedSession {
    /// `session_{ID}.pdf`, the report's file name (PROTOCOL §3, §6).
    pub fn report_file_name(&self) -> String {
        self.id.report_file_name()
    }
}

/// How the report step ended, for a caller that waits (`/end_session`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Archived, PDF written, mail handed to the mailer.
    Rendered,
    /// Archived and queued, but the PDF could not be rendered now; the mailer
    /// renders it again before sending.
    Queued,
    /// Another trigger or node archived it first; nothing was done twice.
    AlreadyArchived,
}

/// Archive, render and mail the report of a session whose finalized guard the
/// sender holds. Sent exactly once per session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FinalizeSession {
    pub session: FinalizedSession,
    pub done: Option<tokio::sync::oneshot::Sender<ReportOutcome>>,
}

/// Resolves once every report in progress has finished (graceful shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;
