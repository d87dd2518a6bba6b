//! The admin REST API (PROTOCOL §3): archived sessions with filters, one
//! session with its transcript and mail status, its PDF. Every handler takes
//! the [`Admin`] extractor first: who may call is decided in `auth`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::auth::Admin;
use super::session_detail::SessionDetailJson;
use super::{ApiError, AppState};
use crate::admin::{ListLive, SessionView};
use crate::archive::{MailStatus, SessionQuery};
use crate::domain::{EndReason, SessionId};
use crate::session::RemoteEnd;
use crate::session::{EndOutcome, EndSession, GetTranscript, Lookup};
use crate::wire::ErrorCode;

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
    /// `live` lists the sessions going on now instead of the archive.
    state: Option<String>,
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
    _: Admin,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if q.state.as_deref() == Some("live") {
        return list_live(&state, &q).await;
    }
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

/// The live sessions of this node, most urgent first, filtered like the
/// archive.
async fn list_live(state: &AppState, q: &ListQuery) -> Result<HttpResponse, ApiError> {
    let sessions = state
        .feed
        .send(ListLive)
        .await
        .map_err(|_| ApiError::unavailable("the admin feed is restarting"))?;
    let text =
        q.q.as_deref()
            .map(str::to_lowercase)
            .filter(|t| !t.trim().is_empty());
    let matches = |s: &SessionView| {
        q.priority
            .as_deref()
            .is_none_or(|p| s.priority.as_str() == p)
            && text.as_deref().is_none_or(|t| {
                [&s.name, &s.email, &s.organization]
                    .iter()
                    .any(|f| f.as_deref().is_some_and(|v| v.to_lowercase().contains(t)))
            })
    };
    let filtered: Vec<&SessionView> = sessions.iter().filter(|s| matches(s)).collect();
    let limit = usize::try_from(q.limit.unwrap_or(50).clamp(1, 500)).unwrap_or(50);
    let offset = usize::try_from(q.offset.unwrap_or(0).max(0)).unwrap_or(0);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "sessions": filtered.iter().skip(offset).take(limit).collect::<Vec<_>>(),
        "total": filtered.len(),
        "limit": limit,
        "offset": offset,
    })))
}

#[derive(Debug, Deserialize)]
pub struct DaysQuery {
    days: Option<u32>,
}

/// `GET /api/stats/daily?days=14`: archived sessions per finalization day
/// and priority, oldest first, every day present.
pub async fn daily_stats(
    _: Admin,
    query: web::Query<DaysQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let days = query.days.unwrap_or(14).clamp(1, 366);
    let today = Utc::now().date_naive();
    let first = today - chrono::Days::new(u64::from(days - 1));
    let since = first
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let counts = state
        .archive
        .counts_by_day_and_priority(since)
        .await
        .map_err(internal)?;
    let rows: Vec<serde_json::Value> = first
        .iter_days()
        .take(days as usize)
        .map(|day| {
            let mut row = serde_json::json!({"day": day.to_string(), "low": 0, "medium": 0, "high": 0, "critical": 0});
            for (d, priority, n) in &counts {
                if *d == day && row.get(priority.as_str()).is_some() {
                    row[priority.as_str()] = serde_json::json!(n);
                }
            }
            row
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "days": rows })))
}

/// `POST /api/sessions/{id}/end`: a salesperson ends a live session; it is
/// finalized as usual, with reason `admin`.
pub async fn end_session(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let outcome = match state.registry.get(id) {
        Some(addr) => end_here(&addr).await,
        None => end_anywhere(&state, id).await?,
    };
    let status = match outcome {
        EndOutcome::Finalized => "success",
        EndOutcome::AlreadyFinalized => "already_finalized",
        EndOutcome::Unavailable => {
            return Err(ApiError::unavailable(
                "session store unavailable; try again",
            ));
        }
    };
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "status": status, "session_id": id.to_string() })))
}

async fn end_here(addr: &actix::Addr<crate::session::SessionActor>) -> EndOutcome {
    addr.send(EndSession {
        reason: EndReason::Admin,
        report_done: None,
    })
    .await
    .unwrap_or(EndOutcome::AlreadyFinalized)
}

/// A session not live on this node: its owner ends it (over the cluster
/// channel), or, when no live node holds it, it is restored here and ended.
async fn end_anywhere(state: &AppState, id: SessionId) -> Result<EndOutcome, ApiError> {
    let unavailable = |_| ApiError::unavailable("session store unavailable; try again");
    if let Some(outcome) = state
        .registry
        .end_on_owner(id, EndReason::Admin)
        .await
        .map_err(unavailable)?
    {
        return Ok(match outcome {
            RemoteEnd::Finalized => EndOutcome::Finalized,
            RemoteEnd::Unavailable => EndOutcome::Unavailable,
            RemoteEnd::AlreadyFinalized | RemoteEnd::NotHere => EndOutcome::AlreadyFinalized,
        });
    }
    match state
        .registry
        .find_or_restore(id)
        .await
        .map_err(unavailable)?
    {
        Lookup::Live(addr) => Ok(end_here(&addr).await),
        Lookup::Finalized => Ok(EndOutcome::AlreadyFinalized),
        Lookup::Unknown => Err(ApiError::not_found("no such session")),
    }
}

/// `GET /api/sessions/{id}`: one session with its transcript and signals —
/// live from its actor, else from the archive with its mail status.
pub async fn get_session(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    // Live on any node: the feed holds its view; the transcript comes from
    // its actor here, or from the store, where the owner wrote every line
    // it acknowledged.
    if let Ok(live) = state.feed.send(ListLive).await
        && let Some(view) = live.into_iter().find(|s| s.session_id == id.to_string())
    {
        let transcript = match state.registry.get(id) {
            Some(addr) => addr.send(GetTranscript).await.ok(),
            None => None,
        };
        let transcript = match transcript {
            Some(t) => Some(t),
            None => state
                .store
                .load(id)
                .await
                .ok()
                .flatten()
                .filter(|s| !s.finalized)
                .map(|s| s.entries),
        };
        if let Some(transcript) = transcript {
            return Ok(HttpResponse::Ok().json(SessionDetailJson::live(&view, &transcript)));
        }
    }
    let detail = archived(&state, id).await?;
    Ok(HttpResponse::Ok().json(SessionDetailJson::archived(
        &detail.session,
        detail.mail.as_ref(),
    )))
}

/// `GET /api/sessions/{id}/report.pdf`: the archived report.
pub async fn report_pdf(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&path)?;
    let detail = archived(&state, id).await?;
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
            format!("inline; filename=\"{}\"", id.report_file_name()),
        ))
        .body(bytes))
}

/// The session id of the path.
fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).ok_or_else(|| ApiError::not_found("no such session"))
}

async fn archived(
    state: &AppState,
    id: SessionId,
) -> Result<crate::archive::SessionDetail, ApiError> {
    state
        .archive
        .get_session(&id.to_string())
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("no such session"))
}

fn internal(err: crate::archive::ArchiveError) -> ApiError {
    tracing::error!(error = %err, "archive query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the archive is unavailable",
    )
}

#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/jobs?state=&kind=`: the durable jobs, newest first (PROTOCOL
/// §12, JOB).
pub async fn list_jobs(
    _: Admin,
    query: web::Query<JobsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let job_state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(crate::archive::JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request("state is one of pending, running, done, dead, cancelled")
        })?),
    };
    let jobs = state
        .archive
        .list_jobs(
            job_state,
            q.kind.as_deref().filter(|k| !k.is_empty()),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "jobs": jobs })))
}

/// `POST /api/jobs/{id}/retry`: makes a job due now, dead or not (as
/// `leadchat jobs retry`); `200` JOB, `404` for no such job, `409` when it
/// is running or done.
pub async fn retry_job(
    _: Admin,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let changed = state.jobs.retry(id).await.map_err(internal)?;
    job_answer(&state, id, changed, "a running or done job is not retried").await
}

/// `POST /api/jobs/{id}/cancel`: cancels a job that has not run yet (as
/// `leadchat jobs cancel`); `200` JOB, `404`, `409` when it is running or
/// over.
pub async fn cancel_job(
    _: Admin,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let changed = state
        .archive
        .cancel_job(id, chrono::Utc::now())
        .await
        .map_err(internal)?;
    job_answer(&state, id, changed, "only a pending job can be cancelled").await
}

async fn job_answer(
    state: &AppState,
    id: i64,
    changed: bool,
    refused: &str,
) -> Result<HttpResponse, ApiError> {
    let job = state
        .archive
        .job(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("no such job"))?;
    if !changed {
        return Err(ApiError::conflict(format!(
            "{refused} (it is {})",
            job.state.as_str()
        )));
    }
    Ok(HttpResponse::Ok().json(job))
}
