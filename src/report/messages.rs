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
        format!("session_{}.pdf", self.id)
    }
}

/// Render, archive and mail the report of a session whose finalized guard the
/// sender holds. Sent exactly once per session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FinalizeSession {
    pub session: FinalizedSession,
}
