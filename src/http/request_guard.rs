//! Middleware every request passes (PROTOCOL §2 "Bounds", §3):
//! - `budget`: a connection that found no slot in the process-wide budget is
//!   answered 503 at once and closed; health probes answer anyway.
//! - `body_deadline`: a request body not received within
//!   `limits.body_read_timeout` is refused with 408 (a slow body must not
//!   hold a connection and its descriptor).
//! - `security_headers`: CSP with `frame-ancestors 'none'`, `nosniff` and a
//!   referrer policy on every HTML page.
//! - `metrics_listener`: on `metrics_listen`, only `/metrics` is served.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use futures_util::StreamExt;

use super::admission::ConnectionSlot;
use super::{ApiError, AppState};
use crate::wire::ErrorCode;

/// Bodies this server takes are small JSON; larger ones are refused while
/// they are read, not after.
const MAX_BODY: usize = 256 * 1024;

/// The policy of every HTML page: scripts and styles from this server only
/// (the pages keep none inline), never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The demo site's: the widget styles its shadow root with a `<style>` of
/// its own, and the sample page has an inline stylesheet.
pub const CSP_DEMO: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths that answer even when the connection is over budget: probes must
/// tell an overloaded node from a dead one.
fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

fn refuse<B>(req: ServiceRequest, err: ApiError) -> ServiceResponse<EitherBody<B>> {
    let mut res = err.error_response();
    res.head_mut().set_connection_type(ConnectionType::Close);
    req.into_response(res).map_into_right_body()
}

pub async fn budget(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let over = matches!(
        req.conn_data::<ConnectionSlot>(),
        Some(ConnectionSlot(None))
    );
    if over && !exempt(req.path()) {
        metrics::counter!(crate::telemetry::names::CONNECTIONS_REFUSED).increment(1);
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the server is at its connection limit; retry shortly",
        );
        err.retry_after_secs = Some(5);
        return Ok(refuse(req, err));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Whether the request announces a body (a WebSocket upgrade's stream of
/// frames is not one).
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::UPGRADE) {
        return false;
    }
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

enum BodyError {
    TooLarge,
    Broken,
}

pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if !has_body(&req) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let deadline = req
        .app_data::<web::Data<AppState>>()
        .map_or(Duration::from_secs(10), |s| {
            s.settings.limits.body_read_timeout.0
        });
    let mut payload = req.take_payload();
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| BodyError::Broken)?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let err = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(body)) => {
            req.set_payload(actix_web::dev::Payload::from(body));
            return Ok(next.call(req).await?.map_into_left_body());
        }
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        ),
        Ok(Err(BodyError::TooLarge)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            "the request body is too large",
        ),
        Ok(Err(BodyError::Broken)) => ApiError::bad_request("the request body was cut off"),
    };
    Ok(refuse(req, err))
}

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
        }
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(res)
}

/// On the metrics address only `/metrics` answers; elsewhere this is a no-op.
pub async fn metrics_listener(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let on_metrics = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.metrics_addr)
        .is_some_and(|addr| req.app_config().local_addr() == addr);
    if on_metrics && req.path() != "/metrics" {
        return Ok(refuse(
            req,
            ApiError::not_found("this address serves /metrics only"),
        ));
    }
    Ok(next.call(req).await?.map_into_left_body())
}
