//! The one outbound HTTP client against a local stand-in server: what every
//! call sends, and how each way of failing is reported.

use std::time::{Duration, Instant};

use leadchat::outbound::{ClientOptions, HttpClient, OutboundError, USER_AGENT};
use reqwest::Method;
use serde_json::json;

use crate::support::stand_in::{Reply, StandIn};

fn client(timeout: Duration) -> HttpClient {
    HttpClient::new(&ClientOptions {
        timeout,
        ..ClientOptions::default()
    })
    .expect("client")
}

#[actix_web::test]
async fn a_call_carries_the_user_agent_its_headers_and_its_json() {
    let api = StandIn::start();
    api.script([Reply::json(200, json!({"ok": true}))]);
    let http = client(Duration::from_secs(5));
    let answer: serde_json::Value = http
        .send_json(
            http.request(Method::POST, &api.url("/v1/hook?x=1"))
                .bearer_auth("k3y")
                .json(&json!({"type": "session.finalized"})),
        )
        .await
        .expect("a 200");
    assert_eq!(answer, json!({"ok": true}));
    let got = api.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/v1/hook?x=1");
    assert_eq!(got[0].header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("leadchat/"));
    assert_eq!(got[0].header("authorization"), Some("Bearer k3y"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].json(), json!({"type": "session.finalized"}));
}

#[actix_web::test]
async fn a_redirect_is_not_followed_unless_asked() {
    let api = StandIn::start();
    api.always(Reply::status(302).header("location", "/elsewhere"));
    let http = client(Duration::from_secs(5));
    let err = http
        .send(http.request(Method::POST, &api.url("/hook")))
        .await
        .expect_err("a 3xx is a failure");
    assert!(
        matches!(&err, OutboundError::Redirect { status: 302, location: Some(l) } if l == "/elsewhere"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(api.requests().len(), 1, "nothing followed the redirect");

    let following = HttpClient::new(&ClientOptions {
        redirects: 3,
        ..ClientOptions::default()
    })
    .expect("client");
    let api = StandIn::start();
    api.script([Reply::status(302).header("location", "/there")]);
    following
        .send(following.request(Method::GET, &api.url("/here")))
        .await
        .expect("followed to a 200");
    let paths: Vec<_> = api.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/here", "/there"]);
}

#[actix_web::test]
async fn a_slow_server_times_out_at_the_total_time_out() {
    let api = StandIn::start();
    api.always(Reply::status(200).after(Duration::from_secs(5)));
    let http = client(Duration::from_millis(300));
    let started = Instant::now();
    let err = http
        .send(http.request(Method::GET, &api.url("/slow")))
        .await
        .expect_err("too slow");
    assert!(matches!(err, OutboundError::Timeout), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A request may set a shorter time-out of its own.
    let started = Instant::now();
    let err = client(Duration::from_secs(30))
        .send(
            http.request(Method::GET, &api.url("/slow"))
                .timeout(Duration::from_millis(200)),
        )
        .await
        .expect_err("too slow");
    assert!(matches!(err, OutboundError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[actix_web::test]
async fn error_statuses_say_whether_and_when_to_try_again() {
    let api = StandIn::start();
    api.script([
        Reply::status(503)
            .header("retry-after", "7")
            .body("try later"),
        Reply::json(429, json!({"error": {"message": "rate limit"}})).header("retry-after", "2"),
        Reply::status(410).body("gone for good"),
        Reply::status(400).body("x".repeat(5000).as_str()),
    ]);
    let http = client(Duration::from_secs(5));
    let call = || http.send(http.request(Method::POST, &api.url("/hook")));

    let unavailable = call().await.expect_err("503");
    assert_eq!(unavailable.status(), Some(503));
    assert!(unavailable.is_retryable());
    assert_eq!(unavailable.retry_after(), Some(Duration::from_secs(7)));
    assert!(
        unavailable.to_string().contains("try later"),
        "{unavailable}"
    );

    let limited = call().await.expect_err("429");
    assert!(limited.is_retryable());
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
    assert!(limited.to_string().contains("rate limit"), "{limited}");

    let gone = call().await.expect_err("410");
    assert_eq!(gone.status(), Some(410));
    assert!(!gone.is_retryable());

    let bad = call().await.expect_err("400");
    let OutboundError::Status { body, .. } = &bad else {
        panic!("{bad:?}")
    };
    assert_eq!(body.len(), 1024, "only the start of an error body is kept");
}

#[actix_web::test]
async fn a_refused_connection_is_retryable_and_shows_no_url() {
    let port = crate::support::smtp::free_port();
    let http = client(Duration::from_secs(5));
    let err = http
        .send(http.request(
            Method::GET,
            &format!("http://127.0.0.1:{port}/sheets?key=s3cret-key"),
        ))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, OutboundError::Connect(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let invalid = http
        .send(http.request(Method::GET, "not a url"))
        .await
        .expect_err("invalid");
    assert!(!invalid.is_retryable(), "{invalid:?}");
}

#[actix_web::test]
async fn an_answer_too_large_or_not_json_is_a_body_error() {
    let api = StandIn::start();
    let huge = format!(
        "{{\"text\":\"{}\"}}",
        "x".repeat(leadchat::outbound::MAX_BODY_BYTES)
    );
    api.script([
        Reply::json(200, json!({})).body(&huge),
        Reply::status(200).body("<html>not json</html>"),
    ]);
    let http = client(Duration::from_secs(10));
    let call = || http.send_json::<serde_json::Value>(http.request(Method::GET, &api.url("/v1")));
    let large = call().await.expect_err("too large");
    assert!(
        matches!(&large, OutboundError::Body(m) if m.contains("over")),
        "{large:?}"
    );
    let garbage = call().await.expect_err("not JSON");
    assert!(
        matches!(&garbage, OutboundError::Body(m) if m.contains("JSON")),
        "{garbage:?}"
    );
    assert!(garbage.is_retryable());
}
