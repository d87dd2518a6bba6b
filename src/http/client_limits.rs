//! Per-client limits (PROTOCOL §2 "Bounds"): one client address opens at most
//! `limits.sessions_per_client` new sessions in any 60 s and holds at most
//! `limits.sockets_per_client` visitor sockets, so one client cannot take
//! every admission slot or flood the store with fresh sessions. The client
//! is the peer, or the last `X-Forwarded-For` hop a trusted proxy added.
//! IPv6 clients are counted per /64, the block one subscriber gets.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use dashmap::DashMap;
use ipnet::IpNet;

/// The window of `sessions_per_client`.
const WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at once; past it idle entries are pruned, and a client
/// that still finds no room is refused rather than left uncounted.
const MAX_CLIENTS: usize = 100_000;

/// A client as the limits see it: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(bits.into()))
                }
            },
            v4 => Self(v4),
        }
    }
}

/// The client's address: the peer's, or — when the peer is a trusted proxy —
/// walking `X-Forwarded-For` from its end past every trusted hop.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    Some(resolve(peer, &hops, trusted))
}

fn resolve(peer: IpAddr, hops: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    for hop in hops.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = ip,
            // A hop a proxy did not write: believe no further.
            Err(_) => break,
        }
    }
    client
}

#[derive(Debug, Default)]
struct ClientState {
    sockets: u32,
    /// When this client's recent new sessions opened, oldest first.
    opened: VecDeque<Instant>,
}

impl ClientState {
    fn forget_before(&mut self, now: Instant) {
        while self.opened.front().is_some_and(|t| now - *t >= WINDOW) {
            self.opened.pop_front();
        }
    }

    fn idle(&mut self, now: Instant) -> bool {
        self.forget_before(now);
        self.sockets == 0 && self.opened.is_empty()
    }
}

#[derive(Debug)]
struct Inner {
    clients: DashMap<ClientKey, ClientState>,
    sessions_per_window: usize,
    max_sockets: u32,
    last_prune: Mutex<Option<Instant>>,
}

/// Shared by every worker; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientLimits(Arc<Inner>);

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManySockets,
    TooManyNewSessions,
    /// More distinct clients than the table holds.
    Crowded,
}

/// One visitor socket of a client; frees its place on drop.
#[derive(Debug)]
pub struct ClientSocket {
    limits: ClientLimits,
    key: ClientKey,
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        let now = Instant::now();
        if let Some(mut state) = self.limits.0.clients.get_mut(&self.key) {
            state.sockets = state.sockets.saturating_sub(1);
        }
        self.limits
            .0
            .clients
            .remove_if_mut(&self.key, |_, state| state.idle(now));
    }
}

impl ClientLimits {
    pub fn new(sessions_per_window: u32, max_sockets: u32) -> Self {
        Self(Arc::new(Inner {
            clients: DashMap::new(),
            sessions_per_window: sessions_per_window as usize,
            max_sockets,
            last_prune: Mutex::new(None),
        }))
    }

    /// A place for one more visitor socket of `key`.
    pub fn try_socket(&self, key: ClientKey) -> Result<ClientSocket, Refusal> {
        self.make_room(key)?;
        let mut state = self.0.clients.entry(key).or_default();
        if state.sockets >= self.0.max_sockets {
            return Err(Refusal::TooManySockets);
        }
        state.sockets += 1;
        drop(state);
        Ok(ClientSocket {
            limits: self.clone(),
            key,
        })
    }

    /// Counts a new session of `key`, or refuses it when the client opened
    /// `sessions_per_client` in the last 60 s. Call with a socket held, so
    /// the entry exists.
    pub fn try_new_session(&self, key: ClientKey) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut state = self.0.clients.entry(key).or_default();
        state.forget_before(now);
        if state.opened.len() >= self.0.sessions_per_window {
            return Err(Refusal::TooManyNewSessions);
        }
        state.opened.push_back(now);
        Ok(())
    }

    pub fn tracked(&self) -> usize {
        self.0.clients.len()
    }

    /// Keeps the table bounded: when full, drops idle entries (at most once a
    /// second, so a flood of addresses does not make every call a scan).
    fn make_room(&self, key: ClientKey) -> Result<(), Refusal> {
        let clients = &self.0.clients;
        if clients.len() < MAX_CLIENTS || clients.contains_key(&key) {
            return Ok(());
        }
        let now = Instant::now();
        let due = {
            let mut last = self.0.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| now - t >= Duration::from_secs(1));
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            clients.retain(|_, state| !state.idle(now));
        }
        if clients.len() < MAX_CLIENTS {
            Ok(())
        } else {
            Err(Refusal::Crowded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec!["10.0.0.0/8".parse::<IpNet>().expect("cidr")];
        let hops = ["198.51.100.1", "203.0.113.9", "10.0.0.3"];
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(resolve(ip("192.0.2.1"), &hops, &trusted), ip("192.0.2.1"));
        // Trusted peer: past every trusted hop to the first that is not.
        assert_eq!(resolve(ip("10.0.0.1"), &hops, &trusted), ip("203.0.113.9"));
        // No proxies configured: the peer.
        assert_eq!(resolve(ip("10.0.0.1"), &hops, &[]), ip("10.0.0.1"));
        // Garbage stops the walk at the proxy.
        assert_eq!(resolve(ip("10.0.0.1"), &["junk"], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_slash_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:1.2.3.4")),
            ClientKey::of(ip("1.2.3.4"))
        );
    }

    #[test]
    fn sockets_are_capped_per_client_and_freed_on_drop() {
        let limits = ClientLimits::new(10, 2);
        let a = ClientKey::of(ip("127.0.0.1"));
        let b = ClientKey::of(ip("127.0.0.2"));
        let s1 = limits.try_socket(a).expect("first");
        let _s2 = limits.try_socket(a).expect("second");
        assert_eq!(limits.try_socket(a).err(), Some(Refusal::TooManySockets));
        let sb = limits.try_socket(b).expect("another client still gets in");
        drop(s1);
        assert!(limits.try_socket(a).is_ok());
        drop(sb);
        assert_eq!(limits.tracked(), 1, "an idle client is forgotten");
    }

    #[test]
    fn new_sessions_are_capped_per_window() {
        let limits = ClientLimits::new(3, 20);
        let a = ClientKey::of(ip("127.0.0.1"));
        let _s = limits.try_socket(a).expect("socket");
        for _ in 0..3 {
            limits.try_new_session(a).expect("within the cap");
        }
        assert_eq!(limits.try_new_session(a), Err(Refusal::TooManyNewSessions));
        let b = ClientKey::of(ip("127.0.0.2"));
        assert!(limits.try_new_session(b).is_ok());
    }
}
