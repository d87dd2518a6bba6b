//! A real SMTP server (mailin-embedded) that keeps what it receives; on
//! request it answers the end of DATA slowly or refuses recipients.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, response};

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone, Default)]
pub struct Inbox {
    pub mails: Arc<Mutex<Vec<Received>>>,
    /// A slow server: it takes this long to answer the end of DATA.
    pub data_end_delay: Option<std::time::Duration>,
    /// Mails whose DATA began (a send in progress counts).
    pub started: Arc<std::sync::atomic::AtomicUsize>,
    /// SMTP sessions opened (one per connection), to see a pool at work.
    pub sessions: Arc<std::sync::atomic::AtomicUsize>,
    /// Refuse every recipient with this answer (a 4xx or 5xx).
    pub reject_rcpt: Option<Response>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Inbox {
    /// A server that takes `delay` to answer the end of each mail's DATA.
    pub fn slow(delay: std::time::Duration) -> Self {
        Self {
            data_end_delay: Some(delay),
            ..Self::default()
        }
    }

    /// A server that refuses every recipient with `answer`.
    pub fn refusing(answer: Response) -> Self {
        Self {
            reject_rcpt: Some(answer),
            ..Self::default()
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.mails.lock().expect("inbox lock").clone()
    }
}

impl Handler for Inbox {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> Response {
        self.sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        response::OK
    }

    fn rcpt(&mut self, _to: &str) -> Response {
        self.reject_rcpt.clone().unwrap_or(response::OK)
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(delay) = self.data_end_delay {
            std::thread::sleep(delay);
        }
        let mail = Received {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        };
        self.mails.lock().expect("inbox lock").push(mail);
        response::OK
    }
}

/// A free port with nothing listening on it (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Serves SMTP on `port` in background threads for the rest of the test run.
pub fn serve_on(port: u16, inbox: Inbox) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind SMTP port");
    serve(listener, inbox);
}

/// Serves SMTP for `inbox` on a free port; the port.
pub fn start_with(inbox: Inbox) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    serve(listener, inbox);
    port
}

fn serve(listener: TcpListener, inbox: Inbox) {
    let mut server = Server::new(inbox);
    // mailin serves one connection per thread, and lettre's pool keeps idle
    // connections open and may briefly open more than `max_size` (a returned
    // connection is recycled by a spawned task, so a quick next send opens a
    // new one). 8 threads deadlocked the 8-in-flight test; 32 leave headroom.
    server
        .with_name("test.local")
        .with_num_threads(32)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("test SMTP server stopped: {e}");
        }
    });
}

pub fn start() -> (u16, Inbox) {
    let inbox = Inbox::default();
    // Bound once and kept: a port picked first and bound later can be
    // taken meanwhile by another test's server.
    let port = start_with(inbox.clone());
    (port, inbox)
}
