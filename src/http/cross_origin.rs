//! The widget runs on other sites' pages, so the browser sends an `Origin`
//! with its WebSocket upgrade and its REST calls. Both are held to
//! `allowed_origins`: the upgrade is refused with 403, and CORS answers only
//! allowed origins. A request without `Origin` comes from a non-browser client
//! (curl, a back end), which the same-origin policy does not concern: allowed.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::{ApiError, AppState};
use crate::settings::Settings;
use crate::wire::ErrorCode;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// `Ok(None)` when the request has no `Origin`, `Ok(Some(origin))` when the
/// origin may use the widget API, else the 403 to answer.
pub fn check(headers: &HeaderMap, settings: &Settings) -> Result<Option<HeaderValue>, ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let own_host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match origin.to_str() {
        Ok(text) if settings.origin_allowed(text, own_host) => Ok(Some(origin.clone())),
        _ => {
            tracing::debug!(origin = ?origin, "refused a request from an origin not in allowed_origins");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "this web site may not use the chat; add its origin to allowed_origins",
            ))
        }
    }
}

/// CORS for the REST calls the widget makes: answers preflights itself and
/// adds the allow headers to the real answer. The origin is echoed, never
/// `*`, with `Vary: Origin`, so caches keep answers per site.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let checked = match req.app_data::<web::Data<AppState>>() {
        Some(state) => check(req.headers(), &state.settings),
        None => Ok(None),
    };
    let origin = match checked {
        Ok(Some(origin)) => origin,
        Ok(None) => return Ok(next.call(req).await?.map_into_left_body()),
        Err(err) => return Err(err.into()),
    };
    let is_preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let answer = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_SECS))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(answer).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(res.map_into_left_body())
}
