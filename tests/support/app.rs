//! `spawn_app()`: the real server on port 0 with its own store (the embedded
//! SQLite store in the test's folder, memory, or Redis under a key prefix of
//! its own), plus a typed WebSocket client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler};
use futures_util::{SinkExt, StreamExt};
use leadchat::report::FinalizeSession;
use leadchat::settings::Settings;
use leadchat::startup::Application;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub use super::REDIS_URL;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// No Redis, live sessions in memory (`embedded_memory`).
    Memory,
    /// No Redis, live sessions in the embedded store on disk, as a node
    /// without Redis runs in production.
    Embedded,
    Redis,
}

/// A node without Redis as it runs in production, and one with Redis.
pub const BOTH: [StoreKind; 2] = [StoreKind::Embedded, StoreKind::Redis];

/// Records every finalized session the server hands over.
#[derive(Default, Clone)]
pub struct Finalized(pub Arc<Mutex<Vec<leadchat::report::FinalizedSession>>>);

impl Finalized {
    pub fn count(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
    pub fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .map(|s| s.id.to_string())
            .collect()
    }
}

struct Collector(Finalized);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<FinalizeSession> for Collector {
    type Result = ();
    fn handle(&mut self, msg: FinalizeSession, _: &mut Self::Context) {
        self.0.0.lock().expect("lock").push(msg.session);
        // Collected is as good as rendered: `/end_session` answers 200.
        if let Some(done) = msg.done {
            let _ = done.send(leadchat::report::ReportOutcome::Rendered);
        }
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The `metrics_listen` address, when the settings set one.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Holds the archive, reports and outbox of this app.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    pub finalized: Finalized,
    pub http: reqwest::Client,
    pub registry: std::sync::Arc<leadchat::session::SessionRegistry>,
    handle: actix_web::dev::ServerHandle,
    /// The node's run: over once its reports and mails are drained and its
    /// SMTP pool is dropped (inside the runtime).
    run: std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl TestApp {
    pub fn ws_url(&self, session_id: Option<&str>) -> String {
        match session_id {
            Some(id) => format!("ws://{}/ws?session_id={id}", self.addr),
            None => format!("ws://{}/ws", self.addr),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn connect(&self, session_id: Option<&str>) -> (WsClient, Value) {
        let mut ws = WsClient::connect(&self.ws_url(session_id)).await;
        let first = ws.recv().await;
        assert_eq!(
            first["type"], "session",
            "first frame must be the session frame: {first}"
        );
        (ws, first)
    }

    pub async fn end_session(&self, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url("/end_session"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.expect("json answer"))
    }

    /// `GET path` with the admin token, as JSON.
    pub async fn admin_json(&self, path: &str, token: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Stops the node as SIGTERM does and waits until it has stopped:
    /// sockets closed, reports and mails in flight drained.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
        let run = self.run.lock().expect("the run handle").take();
        if let Some(run) = run {
            tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("the node stops within its grace period")
                .expect("the node's run task")
                .expect("the node stopped cleanly");
        }
    }

    /// Whether this node holds session `id` with no socket attached
    /// (waits up to `wait` for it).
    pub async fn away(&self, id: &str, wait: Duration) -> bool {
        let id = leadchat::domain::SessionId::parse(id).expect("a session id");
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if let Some(addr) = self.registry.get(id)
                && let Ok(Some(view)) = addr.send(leadchat::session::GetView).await
                && view.state == leadchat::admin::ViewState::Away
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// (tabs here relayed to another node, tabs elsewhere relayed here).
    pub fn relayed(&self) -> (usize, usize) {
        self.registry.relay().counts()
    }
}

/// A test's settings and the temporary folder they point into (archive,
/// reports, outbox, the embedded store); the app spawned from them keeps the
/// folder. Derefs to [`Settings`], so a test changes what it needs in place.
#[derive(Clone)]
pub struct TestSettings {
    pub settings: Settings,
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// Subscribers of the sessions' domain events.
    pub events: Vec<actix::Recipient<leadchat::events::DomainEvent>>,
}

impl std::ops::Deref for TestSettings {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl std::ops::DerefMut for TestSettings {
    fn deref_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }
}

impl TestSettings {
    /// The server with a collector in place of the report pipeline.
    pub async fn spawn(self) -> TestApp {
        spawn(self, true).await
    }

    /// The server with its real report pipeline (archive, PDF, mail).
    pub async fn spawn_full(self) -> TestApp {
        spawn(self, false).await
    }
}

/// Settings for one test in a fresh temporary folder: port 0, its own Redis
/// key prefix, its own SQLite archive, report and outbox folders.
pub fn test_settings(kind: StoreKind) -> TestSettings {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    let mut settings = Settings {
        database_url: format!("sqlite://{}", path.join("archive.db").display()).into(),
        report_dir: path.join("reports"),
        outbox_dir: path.join("outbox"),
        listen: "127.0.0.1:0".into(),
        workers: Some(1),
        redis_prefix: format!("test:{}:", ulid::Ulid::new()),
        redis_url: (kind == StoreKind::Redis).then(|| REDIS_URL.into()),
        embedded_memory: kind == StoreKind::Memory,
        ..Settings::default()
    };
    // Every test client is 127.0.0.1: the per-client limits are tested
    // where a test sets them.
    settings.limits.sessions_per_client = 10_000;
    settings.limits.sockets_per_client = 10_000;
    TestSettings {
        settings,
        dir: std::sync::Arc::new(dir),
        events: Vec::new(),
    }
}

pub async fn spawn_app(kind: StoreKind) -> TestApp {
    test_settings(kind).spawn().await
}

/// [`TestSettings::spawn`].
pub async fn spawn_app_with(settings: TestSettings) -> TestApp {
    settings.spawn().await
}

/// [`TestSettings::spawn_full`].
pub async fn spawn_full_app(settings: TestSettings) -> TestApp {
    settings.spawn_full().await
}

async fn spawn(test: TestSettings, collect: bool) -> TestApp {
    let TestSettings {
        settings,
        dir,
        events,
    } = test;
    if std::env::var_os("TEST_LOG").is_some() {
        leadchat::telemetry::init_tracing();
    }
    let finalized = Finalized::default();
    let collector = collect.then(|| Collector(finalized.clone()).start().recipient());
    let hooks = leadchat::startup::Hooks {
        report: collector,
        events,
    };
    let app = Application::build_with(settings, hooks)
        .await
        .expect("the application starts (is Redis running on 127.0.0.1:6379?)");
    let addr = app.addr();
    let metrics_addr = app.metrics_addr();
    let handle = app.server_handle();
    let registry = app.registry();
    let run = actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        addr,
        metrics_addr,
        dir,
        finalized,
        http: reqwest::Client::new(),
        registry,
        handle,
        run: std::sync::Mutex::new(Some(run)),
    }
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct WsClient {
    pub inner: Stream,
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket upgrade");
        Self { inner }
    }

    pub async fn send(&mut self, frame: Value) {
        self.inner
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.inner.send(msg).await.expect("send");
    }

    /// The next text frame as JSON (pings are answered on the way).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(Duration::from_secs(10))
            .await
            .expect("a frame within 10 s")
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.next_before(deadline).await? {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(&t).expect("server frames are JSON"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The close code the server closes with, skipping other frames; `None`
    /// when the connection ends without one or stays open past `wait`.
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.next_before(deadline).await? {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next message, unless the stream ends or `deadline` passes first.
    async fn next_before(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
        tokio::time::timeout_at(deadline, self.inner.next())
            .await
            .ok()?
    }

    pub async fn message(&mut self, text: &str, client_msg_id: &str) -> (Value, Value) {
        self.send(json!({"type":"message","text":text,"client_msg_id":client_msg_id}))
            .await;
        let ack = self.recv().await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let reply = self.recv().await;
        assert_eq!(reply["type"], "message", "{reply}");
        (ack, reply)
    }
}

/// Polls until `f` holds or the time is up.
pub async fn eventually(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}
