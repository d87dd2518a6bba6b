//! The admin REST API (PROTOCOL §3): archived sessions with filters, one
//! session with its transcript and mail status, its PDF. Bearer token, or
//! `token=` in the query for browsers; compared in constant time and never
//! logged.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::archive::{MailStatus, SessionQuery};
use crate::domain::SessionId;
use crate::wire::ErrorCode;

/// `Ok` when the request carries the admin token.
pub fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = state.settings.admin_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminDisabled,
            "the admin API is disabled: set LEADCHAT_ADMIN_TOKEN",
        ));
    };
    let from_header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token);
    let given = from_header
        .map(str::to_owned)
        .or(from_query)
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or wrong admin token",
        ))
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `YYYY-MM-DD` or RFC 3339; inclusive.
    from: Option<String>,
    to: Option<String>,
    priority: Option<String>,
    /// The end reason: `inactivity`, `visitor`, `admin`.
    status: Option<String>,
    mail: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn parse_time(key: &str, raw: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("`{key}` must be YYYY-MM-DD or RFC 3339")))?;
    let time = if end_of_day {
        day.and_hms_milli_opt(23, 59, 59, 999)
    } else {
        day.and_hms_opt(0, 0, 0)
    };
    Ok(time.expect("valid wall-clock time").and_utc())
}

/// `GET /api/sessions`: archived sessions, newest first, filtered and paged.
pub async fn list_sessions(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let q = query.into_inner();
    if let Some(p) = &q.priority
        && p.parse::<crate::scoring::Priority>().is_err()
    {
        return Err(ApiError::bad_request(
            "`priority` must be low, medium, high or critical",
        ));
    }
    let mail_status = match q.mail.as_deref() {
        None => None,
        Some(raw) => Some(
            MailStatus::parse(raw)
                .ok_or_else(|| ApiError::bad_request("`mail` must be pending, sent or failed"))?,
        ),
    };
    let query = SessionQuery {
        from: q
            .from
            .as_deref()
            .map(|t| parse_time("from", t, false))
            .transpose()?,
        to: q
            .to
            .as_deref()
            .map(|t| parse_time("to", t, true))
            .transpose()?,
        priority: q.priority,
        end_reason: q.status,
        mail_status,
        text: q.q.filter(|t| !t.trim().is_empty()),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
        offset: q.offset.unwrap_or(0).max(0),
    };
    let page = state
        .archive
        .list_sessions(&query)
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "sessions": page.items,
        "total": page.total,
        "limit": query.limit,
        "offset": query.offset,
    })))
}

/// `GET /api/sessions/{id}`: one archived session with its transcript,
/// signals and mail status.
pub async fn get_session(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = SessionId::parse(&path).ok_or_else(|| ApiError::not_found("no such session"))?;
    let detail = state
        .archive
        .get_session(&id.to_string())
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    let s = &detail.session;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "session_id": s.session_id,
        "name": s.name, "email": s.email, "phone": s.phone, "organization": s.organization,
        "lead_score": s.lead_score, "priority": s.priority, "engagement_score": s.engagement_score,
        "total_queries": s.total_queries, "signals": s.signals,
        "first_interaction": s.first_interaction, "last_interaction": s.last_interaction,
        "finalized_at": s.finalized_at, "end_reason": s.end_reason, "node": s.node,
        "state": "archived",
        "report": s.report_path.as_ref().map(|_| format!("/api/sessions/{}/report.pdf", s.session_id)),
        "transcript": s.messages,
        "mail": detail.mail.map(|m| serde_json::json!({
            "status": m.status, "attempts": m.attempts, "last_error": m.last_error,
            "sent_at": m.sent_at, "recipients": m.recipients, "message_id": m.message_id,
        })),
    })))
}

/// `GET /api/sessions/{id}/report.pdf`: the archived report.
pub async fn report_pdf(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = SessionId::parse(&path).ok_or_else(|| ApiError::not_found("no such session"))?;
    let detail = state
        .archive
        .get_session(&id.to_string())
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    let path = detail.session.report_path.ok_or_else(|| {
        ApiError::not_found("the report of this session has not been rendered yet")
    })?;
    let bytes = tokio::fs::read(&path).await.map_err(|err| {
        tracing::warn!(session_id = %id, error = %err, "archived report file is missing");
        ApiError::not_found("the report file is missing")
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "Content-Disposition",
            format!("inline; filename=\"session_{id}.pdf\""),
        ))
        .body(bytes))
}

fn internal(err: crate::archive::ArchiveError) -> ApiError {
    tracing::error!(error = %err, "archive query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the archive is unavailable",
    )
}
