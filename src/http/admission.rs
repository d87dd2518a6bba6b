//! Admission control: a process may hold only as many sockets as its file
//! descriptor limit allows. Every accepted connection — a WebSocket or a
//! plain HTTP one — takes a slot of `limits.max_connections` when it opens
//! (`on_connect`) and frees it when it closes; a connection that found no
//! slot is answered 503 at once and closed (`request_guard::budget`), so it
//! cannot hold a descriptor while it dribbles a body.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::Extensions;

use super::client_limits::ClientSocket;

#[derive(Debug, Clone)]
pub struct Admission {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// Held by a connection for its lifetime; frees its slots on drop: the
/// process-wide one (unless the connection holds that itself) and the
/// client's socket place.
#[derive(Debug)]
pub struct ConnectionTicket {
    open: Option<Arc<AtomicUsize>>,
    _client: Option<ClientSocket>,
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl ConnectionTicket {
    /// A visitor socket's ticket when its connection already holds the
    /// process-wide slot: only the client's socket place.
    pub fn client_only(client: ClientSocket) -> Self {
        Self {
            open: None,
            _client: Some(client),
        }
    }

    /// This ticket, also holding the client's socket place.
    pub fn with_client(mut self, client: ClientSocket) -> Self {
        self._client = Some(client);
        self
    }
}

/// What `on_connect` leaves in a connection's data: its slot, or `None`
/// when the budget was spent as it connected.
#[derive(Debug)]
pub struct ConnectionSlot(pub Option<ConnectionTicket>);

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
        // Room for Redis, the database pool, report files, the listeners —
        // and for the connections over budget that `accept_cap` lets in.
        let margin = (soft / 20).max(96);
        soft.saturating_sub(margin).max(1)
    }

    pub fn try_admit(&self) -> Option<ConnectionTicket> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| ConnectionTicket {
            open: Some(Arc::clone(&self.open)),
            _client: None,
        })
    }

    /// For `HttpServer::on_connect`: every connection takes a slot as it
    /// opens; the connection's data drops it when the connection closes.
    pub fn on_connect(&self) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let admission = self.clone();
        move |_io, data| {
            data.insert(ConnectionSlot(admission.try_admit()));
        }
    }

    /// The hard cap on accepted connections (HttpServer's, which stops
    /// `accept()` instead of failing it): the budget plus room for the
    /// connections that are over it and are being told so, or are still
    /// sending their request head.
    pub fn accept_cap(&self) -> usize {
        self.max + (self.max / 16).clamp(16, 256)
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
