//! The widget on other sites: `allowed_origins` guards the visitor WebSocket
//! and the CORS answers of `POST /end_session`; `/widget.js` and the demo site.

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::app::*;

const SHOP: &str = "https://shop.example";

async fn spawn_with_allowlist() -> TestApp {
    let mut settings = test_settings(StoreKind::Memory);
    settings.allowed_origins = vec![SHOP.to_owned()];
    spawn_app_with(settings).await
}

/// The status of a WebSocket upgrade sent with `origin`, and the JSON body
/// of a refusal.
async fn upgrade_status(app: &TestApp, origin: Option<&str>) -> (u16, Option<Value>) {
    let mut request = app.ws_url(None).into_client_request().expect("ws request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_ws, response)) => (response.status().as_u16(), None),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok());
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("upgrade failed without an HTTP answer: {other}"),
    }
}

#[actix_web::test]
async fn the_visitor_socket_refuses_origins_outside_the_allowlist() {
    let app = spawn_with_allowlist().await;
    assert_eq!(upgrade_status(&app, Some(SHOP)).await.0, 101);
    assert_eq!(
        upgrade_status(&app, None).await.0,
        101,
        "non-browser clients"
    );
    let own = format!("http://{}", app.addr);
    assert_eq!(
        upgrade_status(&app, Some(&own)).await.0,
        101,
        "the demo page"
    );
    let (status, body) = upgrade_status(&app, Some("https://evil.example")).await;
    assert_eq!(status, 403);
    let body = body.expect("a JSON error body");
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"], "forbidden");
}

#[actix_web::test]
async fn an_empty_allowlist_lets_any_origin_connect() {
    let app = spawn_app(StoreKind::Memory).await;
    assert_eq!(
        upgrade_status(&app, Some("https://anyone.example")).await.0,
        101
    );
}

#[actix_web::test]
async fn end_session_answers_cors_preflights_for_allowed_origins_only() {
    let app = spawn_with_allowlist().await;
    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/end_session"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let res = preflight(SHOP).await.expect("preflight");
    assert_eq!(res.status(), 204);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("access-control-allow-origin").as_deref(), Some(SHOP));
    assert!(header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
    assert!(header("access-control-allow-headers").is_some_and(|h| h.contains("content-type")));

    let res = preflight("https://evil.example").await.expect("preflight");
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let res = app
        .http
        .post(app.url("/end_session"))
        .header("origin", SHOP)
        .json(&serde_json::json!({"session_id": "01J00000000000000000000000"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 404, "the call itself runs");
    assert_eq!(
        res.headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(SHOP.as_bytes())
    );
}

#[actix_web::test]
async fn serves_the_widget_script_cached_and_compressed() {
    let app = spawn_app(StoreKind::Memory).await;
    let res = app
        .http
        .get(app.url("/widget.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("widget.js");
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        header("content-type"),
        "application/javascript; charset=utf-8"
    );
    assert_eq!(header("content-encoding"), "gzip");
    assert!(header("cache-control").contains("max-age="));
    let etag = header("etag");
    assert!(etag.starts_with("W/\""), "{etag}");

    let res = app
        .http
        .get(app.url("/widget.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("revalidation");
    assert_eq!(res.status(), 304);
}

#[actix_web::test]
async fn the_home_page_is_the_demo_site_with_the_widget() {
    let app = spawn_app(StoreKind::Memory).await;
    let res = app.http.get(app.url("/")).send().await.expect("home");
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("html");
    assert!(html.contains("GreenCycle EPR"));
    assert!(html.contains("src=\"/widget.js\""));
}
