//! Rate limit, frame size and slow frames, heartbeats, admission control.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

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
