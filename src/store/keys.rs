//! Every Redis key leadchat touches is built here (PROTOCOL §5). The braces
//! are literal hash tags: all keys of one session share a Redis Cluster slot.

use crate::domain::SessionId;

#[derive(Debug, Clone, Default)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` is empty in production; tests give each run its own.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `session:{ID}` — contact details and `user_data_collected`.
    pub fn session(&self, id: SessionId) -> String {
        format!("{}session:{{{id}}}", self.prefix)
    }

    /// `lead:{ID}` — score, priority, engagement, counters.
    pub fn lead(&self, id: SessionId) -> String {
        format!("{}lead:{{{id}}}", self.prefix)
    }

    /// `session:{ID}:chat` — `"User: …"` / `"Bot: …"`, oldest first.
    pub fn chat(&self, id: SessionId) -> String {
        format!("{}session:{{{id}}}:chat", self.prefix)
    }

    /// `session:{ID}:log` (leadchat's addition) — the same lines as JSON with
    /// `seq`, time and `client_msg_id`, so a resumed session replays them
    /// exactly and recognises resends.
    pub fn log(&self, id: SessionId) -> String {
        format!("{}session:{{{id}}}:log", self.prefix)
    }

    /// `session:{ID}:finalized` — `"true"`, set once with NX: the guard
    /// against a second report.
    pub fn finalized(&self, id: SessionId) -> String {
        format!("{}session:{{{id}}}:finalized", self.prefix)
    }

    /// `leadchat:deadlines` (added) — sorted set of live sessions by deadline
    /// (epoch ms), what the sweeper reads to find orphans.
    pub fn deadlines(&self) -> String {
        format!("{}leadchat:deadlines", self.prefix)
    }

    /// `leadchat:feed` (added) — pub/sub channel of the cluster-wide admin feed.
    pub fn feed(&self) -> String {
        format!("{}leadchat:feed", self.prefix)
    }

    /// `leadchat:node:NAME` (added) — present while that node is alive.
    pub fn node(&self, name: &str) -> String {
        format!("{}leadchat:node:{name}", self.prefix)
    }

    /// The Python deployment's keys for a session, without hash-tag braces.
    pub fn legacy(&self, raw_id: &str) -> [(String, String); 4] {
        let p = &self.prefix;
        [
            (
                format!("{p}session:{raw_id}"),
                format!("{p}session:{{{raw_id}}}"),
            ),
            (format!("{p}lead:{raw_id}"), format!("{p}lead:{{{raw_id}}}")),
            (
                format!("{p}session:{raw_id}:chat"),
                format!("{p}session:{{{raw_id}}}:chat"),
            ),
            (
                format!("{p}session:{raw_id}:finalized"),
                format!("{p}session:{{{raw_id}}}:finalized"),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_protocol_layout() {
        let id = SessionId::parse("01JD0000000000000000000000").expect("valid ulid");
        let k = Keys::new("");
        assert_eq!(k.session(id), "session:{01JD0000000000000000000000}");
        assert_eq!(k.lead(id), "lead:{01JD0000000000000000000000}");
        assert_eq!(k.chat(id), "session:{01JD0000000000000000000000}:chat");
        assert_eq!(
            k.finalized(id),
            "session:{01JD0000000000000000000000}:finalized"
        );
        assert_eq!(
            Keys::new("t1:").lead(id),
            "t1:lead:{01JD0000000000000000000000}"
        );
    }
}
