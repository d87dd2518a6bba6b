//! The node's stop signal. SIGTERM (or Ctrl-C) flips it once; everything
//! that must react holds a clone: sockets close at once with 1012 so widgets
//! reconnect to another node, sessions stop finalizing (a session whose
//! timer fires now is left in the store, for a resume or the sweeper), the
//! mailer claims nothing new. Nothing waits on it but those who subscribe.

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            tx: std::sync::Arc::new(watch::Sender::new(false)),
        }
    }
}

impl Shutdown {
    /// Starts the stop (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the node is stopping.
    pub fn stopping(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the node is stopping (at once if it already is).
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_trigger_and_late_waiters_at_once() {
        let s = Shutdown::default();
        assert!(!s.stopping());
        let early = tokio::spawn(s.wait());
        s.trigger();
        early.await.expect("woken");
        assert!(s.stopping());
        s.wait().await;
    }
}
