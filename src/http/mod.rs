//! The HTTP edge: routes, the visitor WebSocket, error mapping. Nothing
//! imports this module; it imports the rest.

mod admin_api;
mod admin_assets;
mod admin_socket;
mod admission;
pub mod auth;
mod client_limits;
mod cross_origin;
mod error;
mod frame_guard;
mod request_guard;
mod rest;
mod session_detail;
mod visitor_socket;
mod widget;
mod write_deadline;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, middleware, web};
use actix_web_actors::ws;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

pub use admission::Admission;
pub use client_limits::ClientLimits;
pub use error::ApiError;
pub use request_guard::{body_deadline, budget, metrics_listener, security_headers};
pub use write_deadline::set_write_deadline;

use crate::session::SessionRegistry;
use crate::settings::Settings;
use crate::store::SharedStore;
use crate::telemetry::names;
use crate::wire::ErrorCode;

/// Shared by every handler of every worker.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub registry: Arc<SessionRegistry>,
    pub store: SharedStore,
    pub archive: crate::archive::Archive,
    /// Enqueues durable jobs and wakes this node's runner.
    pub jobs: crate::jobs::Jobs,
    pub feed: actix::Addr<crate::admin::AdminFeed>,
    pub metrics: PrometheusHandle,
    pub admission: Admission,
    /// Sockets and new sessions per client address.
    pub client_limits: ClientLimits,
    /// `trusted_proxies`, parsed once.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The bound `metrics_listen` address, when metrics have their own.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Every route; `startup` wraps them in `request_guard`'s middleware.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(error::json_config())
        .route("/ws", web::get().to(visitor_ws))
        .service(
            web::resource("/end_session")
                .wrap(middleware::from_fn(cross_origin::cors))
                .route(web::post().to(rest::end_session)),
        )
        .service(
            web::resource("/widget.js")
                .wrap(middleware::Compress::default())
                .route(web::get().to(widget::script)),
        )
        .route("/health", web::get().to(rest::health))
        .route("/ready", web::get().to(rest::ready))
        .route("/metrics", web::get().to(rest::metrics))
        .route("/admin/ws", web::get().to(admin_ws))
        .route("/api/stats/daily", web::get().to(admin_api::daily_stats))
        .route(
            "/api/sessions/{id}/end",
            web::post().to(admin_api::end_session),
        )
        .route("/api/sessions", web::get().to(admin_api::list_sessions))
        .route("/api/jobs", web::get().to(admin_api::list_jobs))
        .route("/api/jobs/{id}/retry", web::post().to(admin_api::retry_job))
        .route(
            "/api/jobs/{id}/cancel",
            web::post().to(admin_api::cancel_job),
        )
        .route("/api/sessions/{id}", web::get().to(admin_api::get_session))
        .route(
            "/api/sessions/{id}/report.pdf",
            web::get().to(admin_api::report_pdf),
        )
        .route("/", web::get().to(widget::demo_site))
        .route("/site.js", web::get().to(widget::demo_script))
        .configure(admin_assets::routes)
        .default_service(web::to(rest::not_found));
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    session_id: Option<String>,
}

/// `GET /ws`: the origin check, admission, then the upgrade; the socket actor
/// takes it from there.
async fn visitor_ws(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // Before admission, so refused pages cannot use up connection slots.
    cross_origin::check(req.headers(), &state.settings)?;
    let query = web::Query::<WsQuery>::from_query(req.query_string())
        .map(|q| q.into_inner().session_id)
        .unwrap_or(None);
    let ticket = admit_visitor(&req, &state, query.as_deref()).await?;
    let limits = &state.settings.limits;
    let conn_id = state.registry.next_conn_id();
    let actor = visitor_socket::VisitorSocket::new(
        conn_id,
        Arc::clone(&state.registry),
        query,
        limits,
        ticket,
    );
    let (events_tx, events_rx) = futures_channel::mpsc::unbounded();
    let guarded = frame_guard::FrameGuard::new(
        payload,
        limits.max_frame_bytes,
        limits.frame_read_timeout.0,
        events_tx,
    );
    let codec = actix_http::ws::Codec::new().max_size(limits.max_frame_bytes);
    let (_addr, response) = ws::WsResponseBuilder::new(actor, &req, guarded)
        .codec(codec)
        .start_with_addr()?;
    _addr.do_send(GuardEvents(Some(events_rx)));
    Ok(response)
}

/// Admission of a visitor socket, before the upgrade: the client's socket
/// place, the process-wide slot (held by the connection since it opened),
/// then — unless it resumes a live session — one of the client's new
/// sessions. Refusals are 429 `too_many_connections` or 503 `overloaded`.
async fn admit_visitor(
    req: &HttpRequest,
    state: &AppState,
    requested: Option<&str>,
) -> Result<admission::ConnectionTicket, ApiError> {
    use client_limits::{ClientKey, Refusal};
    let too_many = |refusal: Refusal| {
        metrics::counter!(names::CONNECTIONS_REFUSED).increment(1);
        let (status, code, message, retry) = match refusal {
            Refusal::TooManySockets => (
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyConnections,
                "this address holds too many chat connections; close some first",
                5,
            ),
            Refusal::TooManyNewSessions => (
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyConnections,
                "this address opened too many new chats in the last minute",
                60,
            ),
            Refusal::Crowded => (
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "the server is at its connection limit; retry shortly",
                5,
            ),
        };
        let mut err = ApiError::new(status, code, message);
        err.retry_after_secs = Some(retry);
        err
    };
    let ip = client_limits::client_ip(req, &state.trusted_proxies)
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let key = ClientKey::of(ip);
    let client = state.client_limits.try_socket(key).map_err(too_many)?;
    let ticket = match req.conn_data::<admission::ConnectionSlot>() {
        // `request_guard::budget` already refused a connection without a slot.
        Some(_) => admission::ConnectionTicket::client_only(client),
        None => state
            .admission
            .try_admit()
            .ok_or_else(|| too_many(Refusal::Crowded))?
            .with_client(client),
    };
    if !resumes_live_session(state, requested).await {
        state.client_limits.try_new_session(key).map_err(too_many)?;
    }
    Ok(ticket)
}

/// Whether `requested` names a session this socket will resume (live here,
/// or in the store and not finalized): a resume is not a new session.
async fn resumes_live_session(state: &AppState, requested: Option<&str>) -> bool {
    let Some(id) = requested.and_then(crate::domain::SessionId::parse) else {
        return false;
    };
    matches!(state.registry.resumable(id).await, Ok(true))
}

/// Hands the frame guard's event channel to the socket actor, which adds it
/// as a stream.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct GuardEvents(Option<futures_channel::mpsc::UnboundedReceiver<frame_guard::GuardEvent>>);

impl actix::Handler<GuardEvents> for visitor_socket::VisitorSocket {
    type Result = ();

    fn handle(&mut self, mut msg: GuardEvents, ctx: &mut Self::Context) {
        use actix::AsyncContext;
        if let Some(rx) = msg.0.take() {
            ctx.add_stream(rx);
        }
    }
}

/// `GET /admin/ws`: the token is checked before the upgrade (401 otherwise).
async fn admin_ws(
    _: auth::AdminSocket,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let id = state.registry.next_conn_id();
    let actor = admin_socket::AdminSocket::new(
        id,
        state.feed.clone(),
        Arc::clone(&state.registry),
        state.archive.clone(),
    );
    ws::start(actor, &req, payload)
}

/// Closes a WebSocket actor's connection with 1012 (service restart) as soon
/// as the node starts stopping, so the client reconnects to another node.
fn close_on_shutdown<A>(
    shutdown: &crate::shutdown::Shutdown,
    act: &A,
    ctx: &mut actix_web_actors::ws::WebsocketContext<A>,
) where
    A: actix::Actor<Context = actix_web_actors::ws::WebsocketContext<A>>,
{
    use actix::{ActorFutureExt, AsyncContext, WrapFuture};
    let stopping = shutdown.wait();
    ctx.spawn(stopping.into_actor(act).map(|(), _, ctx| {
        ctx.close(Some(actix_web_actors::ws::CloseReason {
            code: actix_web_actors::ws::CloseCode::Restart,
            description: Some("server restarting; reconnect".into()),
        }));
        actix::ActorContext::stop(ctx);
    }));
}
