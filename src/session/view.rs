//! SESSION of PROTOCOL §4: what the sales team sees of a live session.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::scoring::{Priority, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewState {
    /// The visitor has the widget open.
    Active,
    /// No connection right now; the session waits for its timeout.
    Away,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub session_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub lead_score: i32,
    pub priority: Priority,
    pub engagement_score: u8,
    pub total_queries: u32,
    pub first_interaction: DateTime<Utc>,
    pub last_interaction: DateTime<Utc>,
    pub state: ViewState,
    pub node: String,
    pub signals: Vec<Signal>,
    /// Orders this node's views of one session (later is higher); not sent.
    /// Views from other nodes carry 0 and arrive in order anyway.
    #[serde(skip)]
    pub rev: u64,
}

/// Most urgent first: priority, then lead score, then the latest activity.
pub fn urgency(a: &SessionView, b: &SessionView) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(b.lead_score.cmp(&a.lead_score))
        .then(b.last_interaction.cmp(&a.last_interaction))
        .then(a.session_id.cmp(&b.session_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, priority: Priority, score: i32, minute: u32) -> SessionView {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 24, 10, minute, 0)
            .single()
            .expect("valid time");
        SessionView {
            session_id: id.into(),
            name: None,
            email: None,
            phone: None,
            organization: None,
            lead_score: score,
            priority,
            engagement_score: 0,
            total_queries: 0,
            first_interaction: at,
            last_interaction: at,
            state: ViewState::Active,
            node: "n".into(),
            signals: vec![],
            rev: 0,
        }
    }

    #[test]
    fn orders_by_priority_then_score_then_recency() {
        let mut v = [
            view("a", Priority::Medium, 30, 1),
            view("b", Priority::Critical, 85, 1),
            view("c", Priority::Medium, 30, 5),
            view("d", Priority::Medium, 35, 0),
        ];
        v.sort_by(urgency);
        let ids: Vec<&str> = v.iter().map(|s| s.session_id.as_str()).collect();
        assert_eq!(ids, vec!["b", "d", "c", "a"]);
    }
}
