//! One conversation line and why a session ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Bot,
}

impl Role {
    /// `"user"` or `"bot"`, as `as_str` writes them.
    pub fn parse(text: &str) -> Option<Self> {
        [Role::User, Role::Bot]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Bot => "bot",
        }
    }

    /// The speaker label of the Python deployment's `session:{ID}:chat` list.
    pub fn chat_label(self) -> &'static str {
        match self {
            Role::User => "User",
            Role::Bot => "Bot",
        }
    }
}

/// One line of the transcript. `client_msg_id` is kept so that a resend after
/// a restart is still recognised as a duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub seq: u64,
    pub role: Role,
    pub text: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

impl TranscriptEntry {
    /// The line as the Python deployment stored it: `"User: …"` / `"Bot: …"`.
    pub fn chat_line(&self) -> String {
        format!("{}: {}", self.role.chat_label(), self.text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    Inactivity,
    Visitor,
    Admin,
}

impl EndReason {
    pub const ALL: [EndReason; 3] = [EndReason::Inactivity, EndReason::Visitor, EndReason::Admin];

    /// The name `as_str` writes.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Inactivity => "inactivity",
            EndReason::Visitor => "visitor",
            EndReason::Admin => "admin",
        }
    }
}
