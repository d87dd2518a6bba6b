//! REST calls of PROTOCOL §3 that are not admin calls.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::domain::{EndReason, SessionId};
use crate::report::ReportOutcome;
use crate::session::RemoteEnd;
use crate::session::{EndOutcome, EndSession, Lookup};
use crate::wire::ErrorCode;

/// How long `/end_session` waits for the PDF before answering anyway.
const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Deserialize)]
struct EndSessionBody {
    session_id: Option<String>,
}

/// `POST /end_session`: the id from a JSON body, else the `session_id`
/// cookie. Finalizes through the session's own finalize path.
pub async fn end_session(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<EndSessionBody>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
            .session_id
    };
    let raw = from_body
        .or_else(|| req.cookie("session_id").map(|c| c.value().to_owned()))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("give `session_id` in a JSON body or a cookie"))?;
    let id = SessionId::parse(&raw).ok_or_else(|| ApiError::not_found("no such session"))?;

    let unavailable = |e: crate::store::StoreError| {
        ApiError::unavailable(format!("session store unavailable: {}", kind_only(&e)))
    };
    // A session another live node holds is ended there, where its visitor's
    // sockets are (its report is then prepared there: answered `queued`).
    if state.registry.get(id).is_none()
        && let Some(remote) = state
            .registry
            .end_on_owner(id, EndReason::Visitor)
            .await
            .map_err(unavailable)?
    {
        let outcome = match remote {
            RemoteEnd::Finalized => EndOutcome::Finalized,
            RemoteEnd::Unavailable => EndOutcome::Unavailable,
            RemoteEnd::AlreadyFinalized | RemoteEnd::NotHere => EndOutcome::AlreadyFinalized,
        };
        return answer(id, outcome, false);
    }
    let lookup = state
        .registry
        .find_or_restore(id)
        .await
        .map_err(unavailable)?;
    let (report_tx, report_rx) = tokio::sync::oneshot::channel();
    let outcome = match lookup {
        Lookup::Unknown => return Err(ApiError::not_found("no such session")),
        Lookup::Finalized => EndOutcome::AlreadyFinalized,
        Lookup::Live(addr) => match addr
            .send(EndSession {
                reason: EndReason::Visitor,
                report_done: Some(report_tx),
            })
            .await
        {
            Ok(outcome) => outcome,
            // The actor stopped between lookup and send: it finalized.
            Err(_) => EndOutcome::AlreadyFinalized,
        },
    };
    // "PDF generated" means it: wait for the render (bounded; the mail is
    // queued durably either way, and a report not ready in time is
    // answered 202 "queued").
    let rendered = outcome == EndOutcome::Finalized
        && match tokio::time::timeout(REPORT_WAIT, report_rx).await {
            Ok(Ok(ReportOutcome::Rendered | ReportOutcome::AlreadyArchived)) => true,
            _ => {
                tracing::warn!(session_id = %id, "report not rendered in time; it stays queued");
                false
            }
        };
    answer(id, outcome, rendered)
}

fn answer(id: SessionId, outcome: EndOutcome, rendered: bool) -> Result<HttpResponse, ApiError> {
    let report = id.report_file_name();
    match outcome {
        EndOutcome::Finalized if rendered => Ok(HttpResponse::Ok().json(serde_json::json!({
            "status": "success",
            "message": "PDF generated",
            "session_id": id.to_string(),
            "report": report,
        }))),
        EndOutcome::Finalized => Ok(HttpResponse::Accepted().json(serde_json::json!({
            "status": "queued",
            "message": "the session is finalized; its report is still being prepared and will be mailed",
            "session_id": id.to_string(),
            "report": report,
        }))),
        EndOutcome::AlreadyFinalized => Ok(HttpResponse::Ok().json(serde_json::json!({
            "status": "already_finalized",
            "message": "this session was already finalized; nothing was sent again",
            "session_id": id.to_string(),
            "report": report,
        }))),
        EndOutcome::Unavailable => Err(ApiError::unavailable(
            "session store unavailable; try again",
        )),
    }
}

/// Store errors carry connection details; answers only say which part failed.
fn kind_only(err: &crate::store::StoreError) -> &'static str {
    match err {
        crate::store::StoreError::Unavailable(_) => "unreachable",
        crate::store::StoreError::Corrupt(_) => "corrupt data",
    }
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when the store answers, else 503 naming what failed.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut failed = Vec::new();
    if let Err(err) = state.store.ping().await {
        tracing::warn!(error = %err, "readiness: store did not answer");
        failed.push(state.store.kind());
    }
    if let Err(err) = state.archive.ping().await {
        tracing::warn!(error = %err, "readiness: database did not answer");
        failed.push("database");
    }
    if failed.is_empty() {
        HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "store": state.store.kind(),
            "database": state.archive.backend_name(),
        }))
    } else {
        HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(serde_json::json!({
            "status": "error",
            "error": ErrorCode::Unavailable.as_str(),
            "message": format!("not ready: {} unreachable", failed.join(", ")),
            "failed": failed,
        }))
    }
}

/// `GET /metrics`: without auth on the metrics address when there is one
/// (`request_guard::metrics_listener` keeps that address to this route),
/// else with the admin token only.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let on_own_address = state
        .metrics_addr
        .is_some_and(|addr| req.app_config().local_addr() == addr);
    if state.metrics_addr.is_some() && !on_own_address {
        return Err(ApiError::not_found(
            "metrics are served on LEADCHAT_METRICS_LISTEN",
        ));
    }
    if !on_own_address {
        super::auth::admin(&req)?;
    }
    metrics::gauge!(crate::telemetry::names::LIVE_SESSIONS_INDEXED)
        .set(state.registry.live_count() as f64);
    // Every state of each kind present, so a state that emptied reads 0.
    if let Ok(counts) = state.archive.job_counts().await {
        let mut kinds: Vec<&str> = counts.iter().map(|(k, _, _)| k.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            for job_state in crate::archive::JobState::ALL {
                let n = counts
                    .iter()
                    .find(|(k, s, _)| k == kind && *s == job_state)
                    .map_or(0, |(_, _, n)| *n);
                metrics::gauge!(
                    crate::telemetry::names::JOBS,
                    "kind" => kind.to_owned(),
                    "state" => job_state.as_str()
                )
                .set(n as f64);
            }
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such route",
    ))
}
