//! Rate limit, frame size and slow frames, heartbeats, admission control.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::*;

#[actix_web::test]
async fn frames_over_the_rate_are_refused_and_not_logged() {
    for kind in BOTH {
        let mut settings = test_settings(kind);
        settings.limits.rate = leadchat::settings::RateSetting {
            frames: 3,
            per: Duration::from_secs(30),
        };
        let app = spawn_app_with(settings).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        for i in 0..3 {
            ws.message("hello", &format!("ok{i}")).await;
        }
        ws.send(json!({"type":"message","text":"one too many","client_msg_id":"over"}))
            .await;
        let err = ws.recv().await;
        assert_eq!(err["code"], "rate_limited");
        assert_eq!(err["client_msg_id"], "over");
        assert!(
            err["retry_after_ms"]
                .as_u64()
                .is_some_and(|ms| ms > 0 && ms <= 10_000),
            "{err}"
        );
        // The budget is per session: a second tab shares it.
        let (mut tab, _) = app.connect(Some(&id)).await;
        tab.send(json!({"type":"message","text":"from tab two","client_msg_id":"tab"}))
            .await;
        assert_eq!(tab.recv().await["code"], "rate_limited");
        let (_ws, resumed) = app.connect(Some(&id)).await;
        let users = resumed["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|h| h["role"] == "user")
            .count();
        assert_eq!(users, 3);
    }
}

#[actix_web::test]
async fn a_client_that_stops_answering_pings_loses_its_connection_not_its_session() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.heartbeat_interval =
        leadchat::settings::HumanDuration(Duration::from_millis(200));
    settings.limits.client_timeout = leadchat::settings::HumanDuration(Duration::from_millis(700));
    let app = spawn_app_with(settings).await;
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.message("hello", "h1").await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut closed = false;
    while let Some(frame) = futures_util::StreamExt::next(&mut ws.inner).await {
        if matches!(
            frame,
            Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_)
        ) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the server closes an unresponsive connection");
    let (_ws, resumed) = app.connect(Some(&id)).await;
    assert_eq!(resumed["resumed"], true);
}

#[actix_web::test]
async fn upgrades_past_max_connections_get_503_with_retry_after() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.max_connections = Some(2);
    let app = spawn_app_with(settings).await;
    let (_a, _) = app.connect(None).await;
    let (_b, _) = app.connect(None).await;
    let err = tokio_tungstenite::connect_async(app.ws_url(None))
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => {
            assert_eq!(res.status().as_u16(), 503);
            assert!(res.headers().contains_key("retry-after"));
        }
        other => panic!("expected an HTTP 503, got {other:?}"),
    }
    drop(_a);
    assert!(
        eventually(Duration::from_secs(3), || std::net::TcpStream::connect(
            app.addr
        )
        .is_ok())
        .await,
        "server still up"
    );
}

/// Opens a raw WebSocket (handshake by hand) so a test can send frames byte
/// by byte.
async fn raw_socket(app: &TestApp) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        app.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("handshake");
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.expect("response");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"),
        "upgrade refused"
    );
    tcp
}

/// Reads until the peer closes the TCP connection; `false` on time-out.
async fn closed_within(tcp: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[actix_web::test]
async fn a_frame_that_trickles_its_bytes_is_timed_out() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.frame_read_timeout =
        leadchat::settings::HumanDuration(Duration::from_millis(800));
    let app = spawn_app_with(settings).await;
    let mut tcp = raw_socket(&app).await;
    // A masked text frame declaring 1 MiB, then one byte every 100 ms.
    let mut header = vec![0x81u8, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.expect("header");
    let started = std::time::Instant::now();
    let trickle = async {
        loop {
            if tcp.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
    };
    trickle.await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "connection was not closed: {:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn a_frame_declaring_a_gigabyte_is_refused_at_once() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut tcp = raw_socket(&app).await;
    let mut header = vec![0x81u8, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.expect("header");
    assert!(closed_within(&mut tcp, Duration::from_secs(3)).await);
}

/// A WebSocket spoken by hand: frames are written as raw bytes, and the
/// server's (unmasked) frames are parsed from what arrives.
struct RawWs {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
}

const CLOSE: u8 = 0x8;
const TEXT: u8 = 0x1;

impl RawWs {
    async fn open(app: &TestApp, path: &str) -> Self {
        let mut tcp = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            app.addr
        );
        tcp.write_all(request.as_bytes()).await.expect("handshake");
        let mut buf = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("response");
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        assert!(buf.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        buf.drain(..end);
        Self { tcp, buf }
    }

    /// One masked frame from the client.
    async fn frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let key = [0x0f, 0xa5, 0x3c, 0x96];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.tcp.write_all(&f).await.expect("write");
    }

    /// The next server frame; `None` when the connection closed or nothing
    /// came within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.buf.len() >= 2 {
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let opcode = self.buf[0] & 0x0f;
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = vec![0u8; 65536];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The next text frame as JSON.
    async fn json(&mut self) -> serde_json::Value {
        loop {
            let (opcode, payload) = self
                .next(Duration::from_secs(10))
                .await
                .expect("a frame within 10 s");
            if opcode == TEXT {
                return serde_json::from_slice(&payload).expect("JSON");
            }
        }
    }

    /// The close code the server sent before closing the TCP connection;
    /// `None` when it did not close within `wait`.
    async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut code = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((CLOSE, payload)) if payload.len() >= 2 => {
                    code = Some(u16::from_be_bytes([payload[0], payload[1]]));
                }
                Some(_) => continue,
                None => {
                    let mut rest = [0u8; 16];
                    let closed = matches!(
                        tokio::time::timeout(Duration::from_millis(100), self.tcp.read(&mut rest))
                            .await,
                        Ok(Ok(0)) | Ok(Err(_))
                    );
                    return if closed || code.is_some() {
                        code.or(Some(0))
                    } else {
                        None
                    };
                }
            }
        }
    }
}

#[actix_web::test]
async fn a_control_frame_declaring_16_mib_closes_the_connection_with_1002_at_once() {
    let app = spawn_app(StoreKind::Memory).await;
    for opcode in [0x8u8, 0x9, 0xA] {
        let mut ws = RawWs::open(&app, "/ws").await;
        assert_eq!(ws.json().await["type"], "session");
        // The header alone, declaring 16 MiB; the payload never comes.
        let mut header = vec![0x80 | opcode, 0x80 | 127];
        header.extend_from_slice(&(16u64 << 20).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        ws.tcp.write_all(&header).await.expect("header");
        assert_eq!(
            ws.close_code(Duration::from_secs(5)).await,
            Some(1002),
            "opcode {opcode:#x}"
        );
    }
    // 126 bytes is already one too many (RFC 6455 §5.5).
    let mut ws = RawWs::open(&app, "/ws").await;
    ws.json().await;
    ws.frame(true, 0x9, &[b'p'; 126]).await;
    assert_eq!(ws.close_code(Duration::from_secs(5)).await, Some(1002));
    // A ping of 125 bytes is fine and answered.
    let mut ws = RawWs::open(&app, "/ws").await;
    ws.json().await;
    ws.frame(true, 0x9, &[b'p'; 125]).await;
    let (opcode, payload) = ws.next(Duration::from_secs(5)).await.expect("pong");
    assert_eq!((opcode, payload.len()), (0xA, 125));
}

#[actix_web::test]
async fn a_continuation_with_nothing_to_continue_closes_with_1002() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut ws = RawWs::open(&app, "/ws").await;
    ws.json().await;
    ws.frame(true, 0x0, b"orphan").await;
    assert_eq!(ws.close_code(Duration::from_secs(5)).await, Some(1002));
}

#[actix_web::test]
async fn fragments_are_joined_and_count_together_toward_max_frame_bytes() {
    let app = spawn_app(StoreKind::Memory).await;
    let mut ws = RawWs::open(&app, "/ws").await;
    ws.json().await;
    let text = br#"{"type":"message","text":"in three parts","client_msg_id":"f1"}"#;
    ws.frame(false, TEXT, &text[..10]).await;
    ws.frame(false, 0x0, &text[10..30]).await;
    ws.frame(true, 0x0, &text[30..]).await;
    let ack = ws.json().await;
    assert_eq!(
        (ack["type"].as_str(), ack["client_msg_id"].as_str()),
        (Some("ack"), Some("f1"))
    );
    assert_eq!(ws.json().await["role"], "bot");
    // Twelve fragments of 1,000 bytes: each small, together over 8 KiB.
    ws.frame(false, TEXT, &[b' '; 1000]).await;
    for _ in 0..10 {
        ws.frame(false, 0x0, &[b' '; 1000]).await;
    }
    ws.frame(true, 0x0, &[b' '; 1000]).await;
    assert_eq!(ws.json().await["code"], "too_large");
    // The connection and the session go on.
    ws.frame(
        true,
        TEXT,
        br#"{"type":"message","text":"after","client_msg_id":"f2"}"#,
    )
    .await;
    assert_eq!(ws.json().await["client_msg_id"], "f2");
}

#[actix_web::test]
async fn refused_frames_count_against_the_rate_and_a_flood_of_them_closes_the_socket() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.rate = leadchat::settings::RateSetting {
        frames: 4,
        per: Duration::from_secs(60),
    };
    let app = spawn_app_with(settings).await;
    let (mut ws, _) = app.connect(None).await;
    for _ in 0..2 {
        ws.send_raw(tokio_tungstenite::tungstenite::Message::text("not json"))
            .await;
        assert_eq!(ws.recv().await["code"], "bad_frame");
    }
    ws.message("one", "r1").await;
    ws.message("two", "r2").await;
    ws.send(json!({"type":"message","text":"three","client_msg_id":"r3"}))
        .await;
    assert_eq!(
        ws.recv().await["code"],
        "rate_limited",
        "2 refused + 2 messages = 4"
    );

    let (mut ws, _) = app.connect(None).await;
    for _ in 0..101 {
        ws.send_raw(tokio_tungstenite::tungstenite::Message::text("{"))
            .await;
    }
    let mut code = None;
    while let Ok(Some(frame)) = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut ws.inner),
    )
    .await
    {
        match frame {
            Ok(tokio_tungstenite::tungstenite::Message::Close(Some(c))) => {
                code = Some(u16::from(c.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(
        code,
        Some(1008),
        "the 101st refused frame in 10 s closes the socket"
    );
}

#[actix_web::test]
async fn a_session_takes_at_most_max_messages() {
    for kind in BOTH {
        let mut settings = test_settings(kind);
        settings.limits.max_messages = 3;
        let app = spawn_app_with(settings).await;
        let (mut ws, session) = app.connect(None).await;
        let id = session["session_id"].as_str().expect("id").to_owned();
        for i in 0..3 {
            ws.message("hello", &format!("m{i}")).await;
        }
        ws.send(json!({"type":"message","text":"one more","client_msg_id":"m3"}))
            .await;
        let err = ws.recv().await;
        assert_eq!(err["code"], "session_full", "{err}");
        assert_eq!(err["client_msg_id"], "m3");
        // A resend of a stored message is still acked.
        ws.send(json!({"type":"message","text":"hello","client_msg_id":"m1"}))
            .await;
        assert_eq!(ws.recv().await["type"], "ack");
        let (_ws, resumed) = app.connect(Some(&id)).await;
        let users = resumed["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter(|h| h["role"] == "user")
            .count();
        assert_eq!(users, 3, "the refused message was not logged");
    }
}

#[actix_web::test]
async fn a_new_socket_past_connections_per_session_closes_the_oldest_with_4008() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.connections_per_session = 2;
    let app = spawn_app_with(settings).await;
    let (mut first, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    let (mut second, _) = app.connect(Some(&id)).await;
    let (mut third, _) = app.connect(Some(&id)).await;
    assert_eq!(first.recv().await["code"], "too_many_connections");
    let mut code = None;
    while let Ok(Some(frame)) = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut first.inner),
    )
    .await
    {
        match frame {
            Ok(tokio_tungstenite::tungstenite::Message::Close(Some(c))) => {
                code = Some(u16::from(c.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(4008));
    // The two newest both stay and both get the answers.
    let (ack, _) = third.message("still two tabs", "c1").await;
    assert_eq!(second.recv().await["seq"], ack["seq"]);
    assert_eq!(second.recv().await["role"], "bot");
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_closed_within_the_client_timeout() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.heartbeat_interval =
        leadchat::settings::HumanDuration(Duration::from_millis(500));
    settings.limits.client_timeout = leadchat::settings::HumanDuration(Duration::from_secs(2));
    settings.limits.rate = leadchat::settings::RateSetting {
        frames: 10_000,
        per: Duration::from_secs(10),
    };
    let app = spawn_app_with(settings).await;
    // A long chat: 60 messages of 7,000 characters (~420 KB a history page).
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    let text = "x".repeat(7000);
    for i in 0..60 {
        ws.message(&text, &format!("l{i}")).await;
    }
    // A socket that asks for megabytes of history and never reads them.
    let mut stuck = RawWs::open(&app, &format!("/ws?session_id={id}")).await;
    for _ in 0..40 {
        stuck
            .frame(true, TEXT, br#"{"type":"history","before_seq":1000}"#)
            .await;
    }
    // Only writes from here on: a write fails once the server has dropped
    // the connection (its kernel answers with a reset).
    let started = std::time::Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(20) {
        let ping = [0x89u8, 0x80, 1, 2, 3, 4];
        if stuck.tcp.write_all(&ping).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(closed, "the stuck connection is still open after 20 s");
    eprintln!("stuck socket closed after {:?}", started.elapsed());
    // The session is untouched: it lives until its own timeout.
    let (_ws, resumed) = app.connect(Some(&id)).await;
    assert_eq!(resumed["resumed"], true);
}
