//! Session identifiers: ULIDs, so they sort by creation time and are safe in
//! file names (`session_{ID}.pdf`) and Redis keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// A well-formed session id. Parsing rejects anything that is not a ULID, so
/// a visitor-supplied id can never smuggle `}` or `/` into a key or a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(Ulid);

impl SessionId {
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    /// `session_{ID}.pdf`, the report's file name (PROTOCOL §3, §6); the
    /// one place it is spelled.
    pub fn report_file_name(&self) -> String {
        format!("session_{self}.pdf")
    }

    /// Parses a visitor-supplied id; `None` for anything malformed.
    pub fn parse(raw: &str) -> Option<Self> {
        Ulid::from_str(raw.trim()).ok().map(Self)
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for SessionId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("not a session id: {value:?}"))
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> Self {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn rejects_key_and_path_injection() {
        assert_eq!(SessionId::parse("abc}:chat"), None);
        assert_eq!(SessionId::parse("../../etc/passwd"), None);
        assert_eq!(SessionId::parse(""), None);
    }
}
