//! Admission control: a process may hold only as many sockets as its file
//! descriptor limit allows. Past `limits.max_connections` new WebSocket
//! upgrades are refused at once with 503 instead of hanging.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone)]
pub struct Admission {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// Held by a WebSocket connection for its lifetime; frees its slot on drop.
#[derive(Debug)]
pub struct ConnectionTicket(Arc<AtomicUsize>);

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// The default limit: the soft `RLIMIT_NOFILE` less a margin for Redis and
    /// database connections, files and the listening sockets.
    pub fn default_max() -> usize {
        let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        let soft = usize::try_from(soft).unwrap_or(usize::MAX);
        let margin = (soft / 40).max(64);
        soft.saturating_sub(margin).max(1)
    }

    pub fn try_admit(&self) -> Option<ConnectionTicket> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| ConnectionTicket(Arc::clone(&self.open)))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_slots_on_drop() {
        let a = Admission::new(2);
        let t1 = a.try_admit().expect("first");
        let _t2 = a.try_admit().expect("second");
        assert!(a.try_admit().is_none());
        drop(t1);
        assert!(a.try_admit().is_some());
    }

    #[test]
    fn default_leaves_a_margin_under_the_fd_limit() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        assert!((Admission::default_max() as u64) < soft);
    }
}
