//! A local stand-in for a third-party HTTP API (a webhook receiver, an LLM,
//! the Graph API, Google): a real HTTP server on a free loopback port, in a
//! thread of its own, that records every request and answers from a script.
//! Each stand-in checks in its test what the real service checks (auth
//! headers, signatures, JSON shapes) on the recorded requests.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What the stand-in answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            body: body.to_string(),
            ..Self::status(status)
        }
        .header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Answers in order; when empty, `fallback`.
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
}

/// A running stand-in; the server lives until the test process ends.
#[derive(Clone)]
pub struct StandIn {
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl StandIn {
    /// Starts a stand-in that answers `200 {}` until told otherwise.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::from(Arc::clone(&state)))
                        .default_service(web::to(answer))
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = server.await;
            });
        });
        Self { addr, shared }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("lock").extend(replies);
    }

    /// Answers every request past the script with `reply`.
    pub fn always(&self, reply: Reply) {
        *self.shared.fallback.lock().expect("lock") = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    shared.requests.lock().expect("lock").push(Recorded {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    let reply = shared
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .or_else(|| shared.fallback.lock().expect("lock").clone())
        .unwrap_or_else(|| Reply::json(200, serde_json::json!({})));
    if !reply.delay.is_zero() {
        actix_web::rt::time::sleep(reply.delay).await;
    }
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(reply.status).expect("a valid status"),
    );
    for (name, value) in &reply.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.body(reply.body)
}
