//! The one shape of `GET /api/sessions/{id}`, live or archived: SESSION of
//! PROTOCOL §4 (`state` is `active`, `away` or `archived`) and its
//! transcript as `[{"seq","role","text","at"}…]` (§12's shape; the widget's
//! own `client_msg_id` stays out). An archived session adds when and why it
//! ended, its report's address and its mail.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{ArchivedMessage, ArchivedSession, MailStatus, OutboxMail};
use crate::domain::{EndReason, Role, TranscriptEntry};
use crate::scoring::{Priority, Signal};
use crate::session::{SessionView, ViewState};

#[derive(Debug, Serialize)]
pub struct SessionDetailJson<'a> {
    session_id: &'a str,
    name: Option<&'a str>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    organization: Option<&'a str>,
    lead_score: i32,
    priority: Priority,
    engagement_score: i32,
    total_queries: i64,
    signals: &'a [Signal],
    first_interaction: DateTime<Utc>,
    last_interaction: DateTime<Utc>,
    state: &'static str,
    node: &'a str,
    transcript: Vec<Line<'a>>,
    #[serde(flatten)]
    archived: Option<Archived<'a>>,
}

#[derive(Debug, Serialize)]
struct Line<'a> {
    seq: u64,
    role: Role,
    text: &'a str,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Archived<'a> {
    finalized_at: DateTime<Utc>,
    end_reason: EndReason,
    /// `/api/sessions/{id}/report.pdf`, when a PDF was rendered.
    report: Option<String>,
    mail: Option<Mail<'a>>,
}

#[derive(Debug, Serialize)]
struct Mail<'a> {
    status: MailStatus,
    attempts: i32,
    last_error: Option<&'a str>,
    sent_at: Option<DateTime<Utc>>,
    recipients: &'a [String],
    message_id: &'a str,
}

impl<'a> SessionDetailJson<'a> {
    /// A live session: the feed's view and the transcript so far.
    pub fn live(view: &'a SessionView, transcript: &'a [TranscriptEntry]) -> Self {
        Self {
            session_id: &view.session_id,
            name: view.name.as_deref(),
            email: view.email.as_deref(),
            phone: view.phone.as_deref(),
            organization: view.organization.as_deref(),
            lead_score: view.lead_score,
            priority: view.priority,
            engagement_score: i32::from(view.engagement_score),
            total_queries: i64::from(view.total_queries),
            signals: &view.signals,
            first_interaction: view.first_interaction,
            last_interaction: view.last_interaction,
            state: match view.state {
                ViewState::Active => "active",
                ViewState::Away => "away",
            },
            node: &view.node,
            transcript: transcript
                .iter()
                .map(|e| Line {
                    seq: e.seq,
                    role: e.role,
                    text: &e.text,
                    at: e.at,
                })
                .collect(),
            archived: None,
        }
    }

    /// An archived session and its mail.
    pub fn archived(s: &'a ArchivedSession, mail: Option<&'a OutboxMail>) -> Self {
        let line = |m: &'a ArchivedMessage| Line {
            seq: u64::try_from(m.seq).unwrap_or_default(),
            role: m.role,
            text: &m.text,
            at: m.at,
        };
        Self {
            session_id: &s.session_id,
            name: s.name.as_deref(),
            email: s.email.as_deref(),
            phone: s.phone.as_deref(),
            organization: s.organization.as_deref(),
            lead_score: s.lead_score,
            priority: s.priority,
            engagement_score: s.engagement_score,
            total_queries: i64::from(s.total_queries),
            signals: &s.signals,
            first_interaction: s.first_interaction,
            last_interaction: s.last_interaction,
            state: "archived",
            node: &s.node,
            transcript: s.messages.iter().map(line).collect(),
            archived: Some(Archived {
                finalized_at: s.finalized_at,
                end_reason: s.end_reason,
                report: s
                    .report_path
                    .as_ref()
                    .map(|_| format!("/api/sessions/{}/report.pdf", s.session_id)),
                mail: mail.map(|m| Mail {
                    status: m.status,
                    attempts: m.attempts,
                    last_error: m.last_error.as_deref(),
                    sent_at: m.sent_at,
                    recipients: &m.recipients,
                    message_id: &m.message_id,
                }),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(value: &serde_json::Value) -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_live_and_an_archived_session_share_one_shape_and_one_line_shape() {
        let at = Utc::now();
        let view = SessionView {
            session_id: "01J".into(),
            name: Some("Asha".into()),
            email: None,
            phone: None,
            organization: None,
            lead_score: 12,
            priority: Priority::Medium,
            engagement_score: 3,
            total_queries: 1,
            first_interaction: at,
            last_interaction: at,
            state: ViewState::Away,
            node: "web-1".into(),
            signals: Vec::new(),
            rev: 7,
        };
        let lines = [TranscriptEntry {
            seq: 1,
            role: Role::User,
            text: "hi".into(),
            at,
            client_msg_id: Some("m1".into()),
        }];
        let live = serde_json::to_value(SessionDetailJson::live(&view, &lines)).expect("json");
        let archived_session = ArchivedSession {
            session_id: "01J".into(),
            name: Some("Asha".into()),
            email: None,
            phone: None,
            organization: None,
            lead_score: 12,
            priority: Priority::Medium,
            engagement_score: 3,
            total_queries: 1,
            signals: Vec::new(),
            first_interaction: at,
            last_interaction: at,
            finalized_at: at,
            end_reason: EndReason::Visitor,
            node: "web-1".into(),
            report_path: None,
            messages: vec![ArchivedMessage {
                seq: 1,
                role: Role::User,
                text: "hi".into(),
                at,
            }],
        };
        let archived = serde_json::to_value(SessionDetailJson::archived(&archived_session, None))
            .expect("json");
        assert_eq!(live["state"], "away");
        assert_eq!(archived["state"], "archived");
        assert_eq!(live["transcript"], archived["transcript"], "one line shape");
        assert!(live["transcript"][0].get("client_msg_id").is_none());
        let extra: Vec<String> = keys(&archived)
            .into_iter()
            .filter(|k| !keys(&live).contains(k))
            .collect();
        assert_eq!(extra, ["end_reason", "finalized_at", "mail", "report"]);
        assert_eq!(archived["mail"], serde_json::Value::Null);
        assert_eq!(archived["report"], serde_json::Value::Null);
    }
}
