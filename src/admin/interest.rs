//! Who wants the cluster feed. A node publishes its sessions' changes on the
//! cluster channel only while another node has admins watching: that node
//! announces its interest when its first admin connects and every
//! `ANNOUNCE_EVERY` after, and the others keep publishing to it for
//! `INTEREST_TTL` after each announcement. A busy node with nobody watching
//! anywhere therefore spends nothing on the feed.
//!
//! A node that has not held other nodes' views (none wanted, or its hold
//! lapsed) announces itself `fresh`; every node answers a fresh announcement
//! by republishing all its sessions, so the newcomer's snapshot is complete.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a node with admins renews its interest.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// How long an announcement holds. The announcing node drops other nodes'
/// views once its own last announcement is this old (they may have stopped
/// publishing), so it never shows stale sessions.
pub const INTEREST_TTL: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub struct Interest {
    /// Other nodes with admins, until when their announcement holds.
    remote: HashMap<String, Instant>,
    /// When this node last announced its own interest; `None` while it holds
    /// no other node's views.
    announced: Option<Instant>,
}

impl Interest {
    /// Does any other node want this node's changes?
    pub fn remote_wanted(&mut self, now: Instant) -> bool {
        self.remote.retain(|_, until| *until > now);
        !self.remote.is_empty()
    }

    /// `node` announced its interest. `true` when this node must republish
    /// every session it holds: the announcement is fresh, or `node` was not
    /// known to be interested.
    pub fn heard(&mut self, node: &str, fresh: bool, now: Instant) -> bool {
        let known = self.remote.get(node).is_some_and(|until| *until > now);
        self.remote.insert(node.to_owned(), now + INTEREST_TTL);
        fresh || !known
    }

    /// Whether this node holds other nodes' views and keeps them current.
    pub fn holding(&self) -> bool {
        self.announced.is_some()
    }

    /// Called on every flush: `Some(fresh)` when this node, with `watching`
    /// admins, should announce its interest now.
    pub fn announce_due(&mut self, watching: bool, now: Instant) -> Option<bool> {
        if !watching {
            return None;
        }
        let fresh = match self.announced {
            None => true,
            Some(at) if now.duration_since(at) >= ANNOUNCE_EVERY => false,
            Some(_) => return None,
        };
        self.announced = Some(now);
        Some(fresh)
    }

    /// Called on every flush: `true` once this node, without admins, has
    /// let its hold lapse; it should drop the other nodes' views.
    pub fn lapsed(&mut self, watching: bool, now: Instant) -> bool {
        match self.announced {
            Some(at) if !watching && now.duration_since(at) >= INTEREST_TTL => {
                self.announced = None;
                true
            }
            _ => false,
        }
    }

    /// The channel was (re)subscribed: anything may have been missed, so the
    /// next announcement is fresh.
    pub fn reset(&mut self) {
        self.announced = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_wants_changes_until_a_node_announces_and_then_for_the_ttl() {
        let t0 = Instant::now();
        let mut i = Interest::default();
        assert!(!i.remote_wanted(t0));
        assert!(i.heard("b", false, t0), "a new node gets everything");
        assert!(i.remote_wanted(t0 + INTEREST_TTL - Duration::from_millis(1)));
        assert!(!i.remote_wanted(t0 + INTEREST_TTL));
    }

    #[test]
    fn a_renewal_republishes_nothing_but_a_fresh_announcement_does() {
        let t0 = Instant::now();
        let mut i = Interest::default();
        assert!(i.heard("b", true, t0));
        assert!(!i.heard("b", false, t0 + ANNOUNCE_EVERY));
        assert!(i.heard("b", true, t0 + ANNOUNCE_EVERY));
        // Lapsed, then heard again: everything once more.
        assert!(i.heard("b", false, t0 + ANNOUNCE_EVERY * 2 + INTEREST_TTL));
    }

    #[test]
    fn a_watching_node_announces_fresh_first_then_renews() {
        let t0 = Instant::now();
        let mut i = Interest::default();
        assert_eq!(i.announce_due(false, t0), None);
        assert_eq!(i.announce_due(true, t0), Some(true));
        assert!(i.holding());
        assert_eq!(i.announce_due(true, t0 + Duration::from_secs(1)), None);
        assert_eq!(i.announce_due(true, t0 + ANNOUNCE_EVERY), Some(false));
    }

    #[test]
    fn the_hold_lapses_only_after_the_ttl_without_admins() {
        let t0 = Instant::now();
        let mut i = Interest::default();
        i.announce_due(true, t0);
        assert!(!i.lapsed(true, t0 + INTEREST_TTL * 2), "admins still watch");
        assert!(!i.lapsed(false, t0 + INTEREST_TTL - Duration::from_millis(1)));
        assert!(i.lapsed(false, t0 + INTEREST_TTL));
        assert!(!i.holding());
        assert_eq!(i.announce_due(true, t0 + INTEREST_TTL), Some(true));
    }

    #[test]
    fn a_resubscribed_channel_makes_the_next_announcement_fresh() {
        let t0 = Instant::now();
        let mut i = Interest::default();
        i.announce_due(true, t0);
        i.reset();
        assert_eq!(i.announce_due(true, t0), Some(true));
    }
}
