//! Real leadchat processes for multi-node tests: start one with settings
//! from the environment, talk to it over WebSockets, and the fixture the
//! nodes of one test share. Used by `process.rs` and `scale_out.rs`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::pg::Schema;
use super::smtp;

pub use super::REDIS_URL;

pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every line the process logged (stdout and stderr), as it comes.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Sends SIGTERM, as an operator's `systemctl stop` does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code, or `None` when it was
    /// still running after `wait`.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// SIGTERM, then the exit status (at most 60 s later).
    pub fn terminate_and_wait(&mut self) -> std::process::ExitStatus {
        self.terminate();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(envs: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadchat"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env("LEADCHAT_LISTEN", "127.0.0.1:0")
        .env("LEADCHAT_WORKERS", "1")
        // Every test client is 127.0.0.1.
        .env("LEADCHAT_LIMITS__SESSIONS_PER_CLIENT", "100000")
        .env("LEADCHAT_LIMITS__SOCKETS_PER_CLIENT", "100000")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn leadchat");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let errors = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            errors.lock().expect("log lock").push(line);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.lock().expect("log lock").push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server logs `listening on ADDR`");
    Server { child, addr, log }
}

pub async fn recv(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

/// Opens a session on `addr`, leaves contact details and one message.
pub async fn chat_on(addr: &str, n: usize) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    let id = recv(&mut ws).await["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    ws.send(Message::text(json!({"type":"contact","name":format!("Visitor {n}"),"email":format!("v{n}@firm.example")}).to_string())).await.expect("send");
    assert_eq!(recv(&mut ws).await["type"], "contact_ok");
    ws.send(Message::text(
        json!({"type":"message","text":"pricing for 100 units?","client_msg_id":"m"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "ack");
    id
}

/// What the nodes of one test share: a Redis key prefix, an archive (a
/// PostgreSQL schema, or a SQLite file for a single node), an SMTP sink and
/// a report folder.
pub struct Shared {
    pub prefix: String,
    /// Dropped with the fixture.
    pub schema: Option<Schema>,
    pub db: String,
    pub smtp_url: String,
    pub reports: String,
    pub inbox: smtp::Inbox,
    /// `LEADCHAT_REDIS_URL` (a Redis Cluster's seeds when `cluster`).
    pub redis_url: String,
    pub cluster: bool,
    _dir: tempfile::TempDir,
}

impl Shared {
    pub fn new(postgres: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let schema = postgres.then(Schema::new);
        let db = match &schema {
            Some(schema) => schema.url(),
            None => format!("sqlite://{}/archive.db", dir.path().display()),
        };
        let (smtp_port, inbox) = smtp::start();
        Self {
            prefix: format!("test:{}:", ulid::Ulid::new()),
            schema,
            db,
            smtp_url: format!("smtp://127.0.0.1:{smtp_port}"),
            reports: dir.path().join("reports").display().to_string(),
            inbox,
            redis_url: REDIS_URL.to_owned(),
            cluster: false,
            _dir: dir,
        }
    }

    /// The environment of a node, plus `extra` settings.
    pub fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("LEADCHAT_REDIS_URL", self.redis_url.as_str()),
            (
                "LEADCHAT_REDIS_CLUSTER",
                if self.cluster { "true" } else { "false" },
            ),
            ("LEADCHAT_REDIS_PREFIX", self.prefix.as_str()),
            ("LEADCHAT_DATABASE_URL", self.db.as_str()),
            ("LEADCHAT_SMTP_URL", self.smtp_url.as_str()),
            ("LEADCHAT_REPORT_DIR", self.reports.as_str()),
            ("LEADCHAT_SWEEP_INTERVAL", "1s"),
        ];
        env.extend_from_slice(extra);
        env
    }
}

pub async fn wait_for(inbox: &smtp::Inbox, n: usize, wait: Duration) -> Vec<smtp::Received> {
    let deadline = std::time::Instant::now() + wait;
    while inbox.received().len() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    inbox.received()
}
