#![allow(dead_code)] // shared by several test binaries, each using a part
//! A real SMTP server (mailin-embedded) that keeps what it receives.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, response};

#[derive(Debug, Clone)]
pub struct Received {
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

    pub fn received(&self) -> Vec<Received> {
        self.mails.lock().expect("inbox lock").clone()
    }
}

impl Handler for Inbox {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
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
    let mut server = Server::new(inbox);
    server
        .with_name("test.local")
        .with_num_threads(32)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
}

pub fn start() -> (u16, Inbox) {
    let inbox = Inbox::default();
    let port = free_port();
    serve_on(port, inbox.clone());
    (port, inbox)
}
