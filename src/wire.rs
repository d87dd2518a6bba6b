//! The widget's wire protocol (PROTOCOL §2) and the stable error codes used
//! in error frames and JSON error answers, in one table.

use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Role, TranscriptEntry};

/// Every `code` a client can see. Clients branch on these: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, a binary frame, or a field of the wrong type.
    BadFrame,
    /// JSON with a `type` this server does not know.
    UnknownType,
    /// A frame over `limits.max_frame_bytes`.
    TooLarge,
    /// Contact details that do not parse; `field` names which.
    InvalidContact,
    /// Over the session's frame budget; `retry_after_ms` says when to retry.
    RateLimited,
    /// The session was finalized; start a new one.
    SessionEnded,
    /// The store did not take the write; nothing was logged, resend later.
    Unavailable,
    /// REST: the request is malformed or lacks a field.
    BadRequest,
    /// REST: no such session.
    NotFound,
    /// REST: missing or wrong admin token.
    Unauthorized,
    /// REST: the admin API is switched off (no token configured).
    AdminDisabled,
    /// REST: the server is at its connection limit.
    Overloaded,
    /// HTTP: the page's `Origin` is not in `allowed_origins`.
    Forbidden,
    /// The session took `limits.max_messages` visitor messages; nothing more
    /// is logged.
    SessionFull,
    /// Too many sockets: per client (HTTP 429 before the upgrade) or per
    /// session (the oldest socket is told so, then closed with 4008).
    TooManyConnections,
    /// HTTP 408: the request body did not arrive within `limits.body_read_timeout`.
    RequestTimeout,
    /// REST: the request is valid but the thing is not in a state that
    /// allows it (a running job cannot be cancelled).
    Conflict,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::BadFrame,
        ErrorCode::UnknownType,
        ErrorCode::TooLarge,
        ErrorCode::InvalidContact,
        ErrorCode::RateLimited,
        ErrorCode::SessionEnded,
        ErrorCode::Unavailable,
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::AdminDisabled,
        ErrorCode::Overloaded,
        ErrorCode::Forbidden,
        ErrorCode::SessionFull,
        ErrorCode::TooManyConnections,
        ErrorCode::RequestTimeout,
        ErrorCode::Conflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidContact => "invalid_contact",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::AdminDisabled => "admin_disabled",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::SessionFull => "session_full",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Conflict => "conflict",
        }
    }
}

/// A frame from the widget, after JSON parsing. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Contact {
        #[serde(default)]
        name: String,
        #[serde(default)]
        email: String,
        #[serde(default)]
        phone: String,
        #[serde(default)]
        organization: String,
    },
    Message {
        text: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    End,
    /// A page of older history: the lines before `before_seq`.
    History {
        before_seq: u64,
    },
}

/// One history line as the widget sees it.
#[derive(Debug, Serialize)]
pub struct HistoryLine<'a> {
    pub seq: u64,
    pub role: Role,
    pub text: &'a str,
    pub at: DateTime<Utc>,
}

impl<'a> From<&'a TranscriptEntry> for HistoryLine<'a> {
    fn from(e: &'a TranscriptEntry) -> Self {
        Self {
            seq: e.seq,
            role: e.role,
            text: &e.text,
            at: e.at,
        }
    }
}

/// A frame to the widget.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Session {
        session_id: String,
        resumed: bool,
        contact_collected: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_session_id: Option<&'a str>,
        history: Vec<HistoryLine<'a>>,
        /// Older lines exist: page back with a `history` frame.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        history_truncated: bool,
    },
    /// A page of older history, oldest first; `complete` when it reaches
    /// the first line.
    History {
        lines: Vec<HistoryLine<'a>>,
        complete: bool,
    },
    ContactOk,
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
        seq: u64,
    },
    Message {
        role: Role,
        seq: u64,
        text: &'a str,
        at: DateTime<Utc>,
    },
    Ended {
        reason: &'a str,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame<'_> {
    /// Serialised once, then shared by every connection it goes to.
    pub fn encode(&self) -> ByteString {
        serde_json::to_string(self)
            .expect("server frames hold only strings, numbers and times")
            .into()
    }

    pub fn error(code: ErrorCode, message: &str) -> ByteString {
        ServerFrame::Error {
            code,
            message,
            field: None,
            client_msg_id: None,
            retry_after_ms: None,
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_frames_and_ignores_unknown_fields() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"message","text":"hi","client_msg_id":"a1","x":1}"#)
                .expect("valid");
        assert!(matches!(f, ClientFrame::Message { ref text, .. } if text == "hi"));
        let f: ClientFrame = serde_json::from_str(r#"{"type":"end"}"#).expect("valid");
        assert!(matches!(f, ClientFrame::End));
    }

    #[test]
    fn error_frames_match_the_protocol() {
        let text = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down",
            field: None,
            client_msg_id: Some("m1"),
            retry_after_ms: Some(500),
        }
        .encode();
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 500);
    }

    #[test]
    fn every_error_code_serialises_as_its_table_name() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).expect("json"), code.as_str());
        }
    }

    /// A code in the table that nothing sends is a lie in the protocol docs.
    #[test]
    fn every_error_code_is_used_somewhere() {
        let mut sources = String::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src is readable") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("wire.rs")
                {
                    sources.push_str(&std::fs::read_to_string(&path).expect("source is readable"));
                }
            }
        }
        for code in ErrorCode::ALL {
            let name = format!("ErrorCode::{code:?}");
            assert!(
                sources.contains(&name),
                "{name} is in the table but never used"
            );
        }
    }
}
