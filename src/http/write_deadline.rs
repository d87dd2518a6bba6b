//! The write deadline of every connection, enforced by the kernel rather
//! than by the socket actor. An actix WebSocket actor runs inside its
//! response body: once a client stops reading, the server's send buffer
//! fills, actix stops polling the body, and the actor — heartbeat included —
//! is never polled again. Nothing in user space can then close the
//! connection, because the dispatcher waits on the blocked write. So the
//! listening socket carries `TCP_USER_TIMEOUT` (inherited by every accepted
//! connection): when written data stays unacknowledged, or the peer's window
//! stays shut, for `limits.client_timeout`, the kernel aborts the
//! connection, the blocked write fails, and actix drops the connection and
//! stops its actor, whatever the actor was doing.

use std::net::TcpListener;
use std::time::Duration;

/// Sets the write deadline on `listener`; a warning where the platform has
/// no `TCP_USER_TIMEOUT` (connections then rely on the heartbeat alone).
pub fn set_write_deadline(listener: &TcpListener, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if let Err(err) = socket2::SockRef::from(listener).set_tcp_user_timeout(Some(timeout)) {
            tracing::warn!(error = %err, "cannot set TCP_USER_TIMEOUT: a client that stops reading is closed only by the heartbeat");
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (listener, timeout);
        tracing::warn!(
            "no TCP_USER_TIMEOUT on this platform: a client that stops reading is closed only by the heartbeat"
        );
    }
}
