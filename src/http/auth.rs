//! The one auth seam: a request becomes a [`Principal`] here, and every 401
//! and 403 of the admin surface comes from here. Handlers say what they need
//! by taking an extractor — [`Admin`] for REST (the `Authorization: Bearer`
//! header only: a token in a URL ends up in logs and histories) and
//! [`AdminSocket`] for the admin WebSocket (also `?token=`, since browsers
//! cannot give a WebSocket headers). Tokens are compared in constant time
//! and never logged.
//!
//! Today the one credential is the admin token; signed-in users and API keys
//! (with their roles) become further credentials resolved here.

use std::future::{Ready, ready};

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::wire::ErrorCode;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything of the admin surface.
    Admin,
}

/// Who made the request, as far as the server could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
}

/// Where a request may carry its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    HeaderOrQuery,
}

/// Extractor: a request by an admin, credential in the `Authorization`
/// header. Put it first among a handler's arguments, so a caller without
/// it learns nothing from how its other arguments fail.
#[derive(Debug)]
pub struct Admin(pub Principal);

/// Extractor: as [`Admin`], the credential also taken from `?token=`; for
/// `/admin/ws` only.
#[derive(Debug)]
pub struct AdminSocket(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(req, Source::Header).and_then(|p| require(p, Role::Admin).map(Admin)))
    }
}

impl FromRequest for AdminSocket {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            principal(req, Source::HeaderOrQuery)
                .and_then(|p| require(p, Role::Admin).map(AdminSocket)),
        )
    }
}

/// The principal of `req` from its `Authorization` header, for handlers
/// whose need depends on the request (`/metrics` off its own listener).
pub fn admin(req: &HttpRequest) -> Result<Principal, ApiError> {
    principal(req, Source::Header).and_then(|p| require(p, Role::Admin))
}

fn require(principal: Principal, role: Role) -> Result<Principal, ApiError> {
    if principal.role == role {
        Ok(principal)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized,
            "this needs another role",
        ))
    }
}

fn principal(req: &HttpRequest, source: Source) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered on the app");
    let Some(expected) = state.settings.admin_token.as_ref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminDisabled,
            "the admin API is disabled: set LEADCHAT_ADMIN_TOKEN",
        ));
    };
    let from_query = (source == Source::HeaderOrQuery)
        .then(|| {
            web::Query::<TokenQuery>::from_query(req.query_string())
                .ok()
                .and_then(|q| q.into_inner().token)
        })
        .flatten();
    let given = bearer(req).map(str::to_owned).or(from_query);
    let given = given.as_deref().unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(Principal { role: Role::Admin })
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or wrong admin token",
        ))
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}
