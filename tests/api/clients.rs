//! Per-client limits, the HTTP connection budget and body deadline, page
//! headers, access to /metrics and the admin API, contact input (issue 14).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::app::*;

const TOKEN: &str = "clients-admin-token-123";

/// A visitor socket from `source` (loopback has every 127.0.0.x), with extra
/// request headers; `Err((status, body))` when the upgrade is refused.
async fn ws_from(
    app: &TestApp,
    source: &str,
    session_id: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Result<(WsClient, Value), (u16, Value)> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind the source address");
    let tcp = socket.connect(app.addr).await.expect("connect");
    let mut req = app.ws_url(session_id).into_client_request().expect("url");
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    match tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await
    {
        Ok((inner, _)) => {
            let mut ws = WsClient { inner };
            let first = ws.recv().await;
            assert_eq!(first["type"], "session", "{first}");
            Ok((ws, first))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body = res
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((res.status().as_u16(), body))
        }
        Err(other) => panic!("upgrade failed: {other:?}"),
    }
}

fn assert_too_many(refused: Result<(WsClient, Value), (u16, Value)>) {
    match refused {
        Err((429, body)) => {
            assert_eq!(body["status"], "error", "{body}");
            assert_eq!(body["error"], "too_many_connections", "{body}");
            assert!(body["message"].is_string(), "{body}");
        }
        Err(other) => panic!("expected 429 too_many_connections, got {other:?}"),
        Ok((_, frame)) => panic!("expected 429, the upgrade went through: {frame}"),
    }
}

#[actix_web::test]
async fn a_client_at_its_socket_cap_gets_429_while_another_address_connects() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.sockets_per_client = 3;
    let app = spawn_app_with(settings).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            ws_from(&app, "127.0.0.1", None, &[])
                .await
                .expect("under the cap"),
        );
    }
    assert_too_many(ws_from(&app, "127.0.0.1", None, &[]).await);
    // Another client is not starved by the first.
    let other = ws_from(&app, "127.0.0.2", None, &[])
        .await
        .expect("another address");
    // A socket that closes frees its place.
    drop(held.pop());
    assert!(
        wait_until_admitted(&app, "127.0.0.1").await,
        "the place of a closed socket is freed"
    );
    drop(other);
}

async fn wait_until_admitted(app: &TestApp, source: &str) -> bool {
    for _ in 0..40 {
        if ws_from(app, source, None, &[]).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[actix_web::test]
async fn new_sessions_per_client_are_capped_and_a_resume_is_not_new() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.sessions_per_client = 2;
    let app = spawn_app_with(settings).await;
    let (mut first, session) = ws_from(&app, "127.0.0.1", None, &[]).await.expect("1st");
    let id = session["session_id"].as_str().expect("id").to_owned();
    first.message("hello", "m1").await;
    let _second = ws_from(&app, "127.0.0.1", None, &[]).await.expect("2nd");
    assert_too_many(ws_from(&app, "127.0.0.1", None, &[]).await);
    // A resume of a live session is not a new one…
    let (_tab, resumed) = ws_from(&app, "127.0.0.1", Some(&id), &[])
        .await
        .expect("a resume is admitted");
    assert_eq!(resumed["resumed"], true, "{resumed}");
    // …but an id that resumes nothing opens a new session, and counts.
    assert_too_many(ws_from(&app, "127.0.0.1", Some("01J00000000000000000000000"), &[]).await);
    ws_from(&app, "127.0.0.2", None, &[])
        .await
        .expect("another address opens new sessions");
}

#[actix_web::test]
async fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.sockets_per_client = 1;
    settings.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = spawn_app_with(settings).await;
    let xff = |v: &'static str| [("x-forwarded-for", v)];
    // Behind the trusted proxy, each forwarded address is its own client.
    let _a = ws_from(&app, "127.0.0.1", None, &xff("198.51.100.7, 203.0.113.1"))
        .await
        .expect("first client");
    assert_too_many(ws_from(&app, "127.0.0.1", None, &xff("203.0.113.1")).await);
    let _b = ws_from(&app, "127.0.0.1", None, &xff("203.0.113.2"))
        .await
        .expect("a second client behind the proxy");
    // An untrusted peer's header is ignored: it is counted as itself.
    let _c = ws_from(&app, "127.0.0.2", None, &xff("203.0.113.3"))
        .await
        .expect("untrusted peer");
    assert_too_many(ws_from(&app, "127.0.0.2", None, &xff("203.0.113.4")).await);
}

#[actix_web::test]
async fn a_fresh_session_whose_socket_closed_goes_after_the_grace_not_the_timeout() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.inactivity_timeout = leadchat::settings::HumanDuration(Duration::from_secs(120));
    settings.limits.empty_session_grace =
        leadchat::settings::HumanDuration(Duration::from_millis(200));
    settings.limits.sessions_per_client = 100;
    let app = spawn_app_with(settings).await;
    let (spoken, first) = app.connect(None).await;
    let kept = first["session_id"].as_str().expect("id").to_owned();
    let mut spoken = spoken;
    spoken.message("hello", "m1").await;
    drop(spoken);
    let (silent, first) = app.connect(None).await;
    let empty = first["session_id"].as_str().expect("id").to_owned();
    drop(silent);
    let mut dropped = false;
    for _ in 0..40 {
        // Longer than the grace: each try's own socket re-arms it.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (_ws, again) = app.connect(Some(&empty)).await;
        if again["resumed"] == false {
            dropped = true;
            break;
        }
    }
    assert!(
        dropped,
        "an empty abandoned session is gone long before its 120 s timeout"
    );
    let (_ws, again) = app.connect(Some(&kept)).await;
    assert_eq!(again["resumed"], true, "a session with a message stays");
    assert_eq!(app.finalized.count(), 0, "nothing is reported for either");
}

/// A raw connection that sends a POST's head announcing a body, then nothing.
async fn slow_post(app: &TestApp) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    tcp.write_all(
        b"POST /end_session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ses",
    )
    .await
    .expect("write");
    tcp
}

async fn status_of(tcp: &mut tokio::net::TcpStream) -> Option<u16> {
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

#[actix_web::test]
async fn slow_bodies_get_408_and_health_answers_while_they_hold_the_budget() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.limits.max_connections = Some(4);
    settings.limits.body_read_timeout = leadchat::settings::HumanDuration(Duration::from_secs(2));
    let app = spawn_app_with(settings).await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        slow.push(slow_post(&app).await);
        // One at a time, so the first four are the ones holding slots.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // The probes answer while the budget is spent…
    let res = reqwest::Client::new()
        .get(app.url("/health"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/health answers while slow bodies are held");
    assert_eq!(res.status().as_u16(), 200);
    // …but plain HTTP counts toward the budget sockets use.
    match tokio_tungstenite::connect_async(app.ws_url(None)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 503)
        }
        other => panic!("expected 503 while HTTP holds the budget, got {other:?}"),
    }
    let mut statuses = Vec::new();
    for tcp in &mut slow {
        statuses.push(status_of(tcp).await);
    }
    let count = |code| statuses.iter().filter(|s| **s == Some(code)).count();
    assert_eq!(
        count(408),
        4,
        "the slots' slow bodies time out: {statuses:?}"
    );
    assert_eq!(count(503), 4, "the rest are refused at once: {statuses:?}");
    // Slots are free again once those connections are closed.
    drop(slow);
    let mut admitted = false;
    for _ in 0..40 {
        if tokio_tungstenite::connect_async(app.ws_url(None))
            .await
            .is_ok()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "the budget is free again");
}

#[actix_web::test]
async fn html_pages_carry_csp_nosniff_and_a_referrer_policy() {
    let app = spawn_app(StoreKind::Memory).await;
    for path in ["/", "/admin", "/admin/"] {
        let res = app.http.get(app.url(path)).send().await.expect("page");
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    let js = app
        .http
        .get(app.url("/site.js"))
        .send()
        .await
        .expect("site.js");
    assert_eq!(js.status().as_u16(), 200);
}

#[actix_web::test]
async fn metrics_need_the_admin_token_unless_on_their_own_address() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.admin_token = Some(TOKEN.into());
    let app = spawn_app_with(settings).await;
    let get = |bearer: Option<&str>| {
        let mut req = app.http.get(app.url("/metrics"));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get(None).await.expect("metrics").status().as_u16(), 401);
    assert_eq!(
        get(Some("wrong-token-wrong-token"))
            .await
            .expect("m")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        get(Some(TOKEN)).await.expect("metrics").status().as_u16(),
        200
    );

    let mut settings = test_settings(StoreKind::Memory);
    settings.admin_token = Some(TOKEN.into());
    settings.metrics_listen = Some("127.0.0.1:0".into());
    let app = spawn_app_with(settings).await;
    let own = app.metrics_addr.expect("a metrics address");
    let res = app
        .http
        .get(format!("http://{own}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status().as_u16(), 200, "no auth on the metrics address");
    assert!(res.text().await.expect("text").contains("leadchat_"));
    let res = app
        .http
        .get(format!("http://{own}/admin"))
        .send()
        .await
        .expect("admin");
    assert_eq!(
        res.status().as_u16(),
        404,
        "the metrics address serves /metrics only"
    );
    let res = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("main");
    assert_eq!(res.status().as_u16(), 404, "not on the main listener then");
}

#[actix_web::test]
async fn rest_calls_refuse_a_token_in_the_query_string() {
    let mut settings = test_settings(StoreKind::Memory);
    settings.admin_token = Some(TOKEN.into());
    let app = spawn_app_with(settings).await;
    let res = app
        .http
        .get(app.url(&format!("/api/sessions?token={TOKEN}")))
        .send()
        .await
        .expect("list");
    assert_eq!(res.status().as_u16(), 401);
    let res = app
        .http
        .get(app.url("/api/sessions"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status().as_u16(), 200);
    // The admin WebSocket keeps `?token=`: browsers cannot set its headers.
    let (_ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/admin/ws?token={TOKEN}", app.addr))
            .await
            .expect("the feed takes the query token");
}

#[actix_web::test]
async fn contact_fields_with_link_syntax_or_format_characters_get_invalid_contact() {
    let app = spawn_app(StoreKind::Memory).await;
    let (mut ws, _) = app.connect(None).await;
    for (name, email, field) in [
        (
            "Mallory",
            "m?cc=boss@corp.example&body=hi@evil.example",
            "email",
        ),
        ("Mallory", "m%40x#y@evil.example", "email"),
        ("evil\u{202E}gpj.exe", "m@evil.example", "name"),
        ("line\u{2028}break", "m@evil.example", "name"),
    ] {
        ws.send(json!({"type":"contact","name":name,"email":email}))
            .await;
        let err = ws.recv().await;
        assert_eq!(err["type"], "error", "{err}");
        assert_eq!(err["code"], "invalid_contact", "{err}");
        assert_eq!(err["field"], field, "{err}");
    }
    ws.send(json!({"type":"contact","organization":"org\u{200B}x","email":"a@b.co"}))
        .await;
    assert_eq!(ws.recv().await["field"], "organization");
    ws.send(json!({"type":"contact","name":"क्\u{200D}ष Ana","email":"o'neil+x@b.co"}))
        .await;
    assert_eq!(ws.recv().await["type"], "contact_ok");
}
