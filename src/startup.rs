//! Builds the whole node — store, actors, HTTP server — from settings.
//! `main` and the integration tests use the same `Application::build`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Recipient};
use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware, web};

use crate::admin::{self, AdminFeed};
use crate::archive::Archive;
use crate::bot::{KnowledgeBase, Responder};
use crate::cluster::{ClusterChannel, Routes};
use crate::events::{DomainEvent, EventSink};
use crate::http::{self, Admission, AppState, ClientLimits};
use crate::jobs::runner::RunningJobs;
use crate::jobs::{JobRunner, Jobs, Prune, RunnerOptions};
use crate::mail::{MailTransport, MailerActor, MailerDeps, StopMailer};
use crate::report::{
    Brand, Drain, FinalizeSession, LogoImage, RenderPool, ReportActor, ReportDeps, ReportRenderer,
};
use crate::scoring::{Engine, ScoringConfig};
use crate::session::{SessionDeps, SessionRegistry, Subscribers, Sweeper, ViewDemand};
use crate::settings::Settings;
use crate::store::keys::Keys;
use crate::store::{EmbeddedStore, MemoryStore, RedisStore, SharedStore, WriteBuffer};
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("cannot open the session store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Knowledge(#[from] crate::bot::KnowledgeError),
    #[error("scoring configuration: {0}")]
    Scoring(#[from] crate::scoring::ScoringError),
    #[error("cannot open the archive: {0}")]
    Archive(#[from] crate::archive::ArchiveError),
    #[error("cannot load the report template or fonts: {0}")]
    Render(#[from] crate::report::RenderError),
    #[error("mail transport: {0}")]
    Mail(#[from] crate::mail::MailError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    server: Server,
    registry: Arc<SessionRegistry>,
    pipeline: Pipeline,
    jobs: RunningJobs,
    grace: std::time::Duration,
    shutdown: crate::shutdown::Shutdown,
}

/// What a caller of `build_with` plugs into the node.
#[derive(Default)]
pub struct Hooks {
    /// Finalized sessions go here instead of the node's own ReportActor
    /// (tests count what arrives).
    pub report: Option<Recipient<FinalizeSession>>,
    /// Subscribers of the domain events (`crate::events`).
    pub events: Vec<Recipient<DomainEvent>>,
}

/// The finalize pipeline's actors.
struct Pipeline {
    report: Addr<ReportActor>,
    mailer: Addr<MailerActor>,
}

impl Pipeline {
    fn start(
        settings: &Settings,
        archive: Archive,
        store: SharedStore,
        events: EventSink,
    ) -> Result<Self, StartupError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let renderer =
            ReportRenderer::new(settings.report_template.as_deref(), &settings.fonts_dir)?;
        let renderer = RenderPool::new(renderer, cores, settings.report.render_timeout.0);
        let brand = Brand {
            name: settings.brand.name.clone(),
            color: settings.brand.color.clone(),
            logo: load_logo(settings),
        };
        let transport = match &settings.smtp_url {
            Some(url) => MailTransport::from_url(url.expose())?,
            None => {
                tracing::info!(dir = %settings.outbox_dir.display(), "no LEADCHAT_SMTP_URL: report mails are written as .eml files");
                MailTransport::outbox(settings.outbox_dir.clone())
            }
        };
        let mail_to = settings.mail_recipients();
        let mailer = MailerActor::new(MailerDeps {
            archive: archive.clone(),
            transport,
            renderer: renderer.clone(),
            brand: brand.clone(),
            mail_from: settings.mail_from.clone(),
            mail_to: mail_to.clone(),
            report_dir: settings.report_dir.clone(),
            poll_interval: settings.mail_poll_interval.0,
            lease: settings.mail_lease.0,
            max_in_flight: 8,
            events: events.clone(),
        })
        .start();
        let report = ReportActor::new(ReportDeps {
            archive,
            store,
            renderer,
            mailer: mailer.clone(),
            report_dir: settings.report_dir.clone(),
            brand,
            mail_from: settings.mail_from.clone(),
            mail_to,
            events,
        })
        .start();
        Ok(Self { report, mailer })
    }
}

fn load_logo(settings: &Settings) -> Option<LogoImage> {
    let path = settings.brand.logo.as_ref()?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => "svg",
        _ => "png",
    };
    match std::fs::read(path) {
        Ok(bytes) => Some(LogoImage {
            bytes,
            format: format.into(),
        }),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot read the brand logo; reports go out without it");
            None
        }
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, Hooks::default()).await
    }

    /// As `build`, with the `hooks` given (tests).
    pub async fn build_with(settings: Settings, hooks: Hooks) -> Result<Self, StartupError> {
        let report = hooks.report;
        let settings = Arc::new(settings);
        let node = settings.node_name();
        let (store, cluster): (SharedStore, Option<ClusterChannel>) = match &settings.redis_url {
            Some(url) => {
                let keys = Keys::new(settings.redis_prefix.clone());
                let redis = if settings.redis_cluster {
                    RedisStore::connect_cluster(&settings.redis_seeds(), keys.clone()).await?
                } else {
                    RedisStore::connect(url.expose(), keys.clone()).await?
                };
                let cluster = ClusterChannel::new(redis.connection(), keys.feed());
                let buffered = WriteBuffer::start(Arc::new(redis), settings.redis_write_buffer);
                (buffered, Some(cluster))
            }
            None if settings.embedded_memory => {
                tracing::warn!(
                    "embedded_memory is set: live sessions are kept in memory only and lost when the process ends (for tests)"
                );
                (Arc::new(MemoryStore::new()), None)
            }
            None => {
                let store =
                    EmbeddedStore::open(&settings.embedded_dir(), settings.embedded_sync).await?;
                tracing::info!(
                    path = %store.path().display(),
                    sync = ?settings.embedded_sync,
                    "no LEADCHAT_REDIS_URL: live sessions are kept in the embedded store on local disk (one node)"
                );
                (Arc::new(store), None)
            }
        };
        if settings.allowed_origins.is_empty() {
            tracing::warn!(
                "allowed_origins is empty: any web site may embed the widget; set LEADCHAT_ALLOWED_ORIGINS to your sites' origins"
            );
        }
        let responder: Arc<dyn Responder> = Arc::new(load_knowledge(&settings)?);
        let engine = Engine::new(load_scoring(&settings)?)?;
        let archive = Archive::connect(settings.database_url.expose()).await?;
        let domain_events = EventSink::new(hooks.events);
        let pipeline = Pipeline::start(
            &settings,
            archive.clone(),
            Arc::clone(&store),
            domain_events.clone(),
        )?;
        let report = report.unwrap_or_else(|| pipeline.report.clone().recipient());

        let shutdown = crate::shutdown::Shutdown::default();
        let (job_queue, jobs) = start_jobs(&settings, &archive, &shutdown);
        // The feed is the sessions' first subscriber and holds their
        // registry: its address exists before it starts.
        let demand = ViewDemand::default();
        let mut registry = None;
        let feed = AdminFeed::create(|ctx| {
            let events = Subscribers::new(ctx.address().recipient(), demand.clone(), domain_events);
            let sessions = SessionRegistry::new(SessionDeps {
                store: Arc::clone(&store),
                responder,
                engine,
                report,
                events,
                cluster: cluster.clone(),
                inactivity_timeout: settings.inactivity_timeout.0,
                empty_session_grace: settings.limits.empty_session_grace.0,
                rate: settings.limits.rate,
                bounds: crate::session::SessionBounds::from_limits(&settings.limits),
                node: node.clone(),
                shutdown: shutdown.clone(),
            });
            registry = Some(Arc::clone(&sessions));
            AdminFeed::new(node.clone(), cluster.clone(), demand, sessions)
        });
        let registry = registry.expect("the feed's constructor built the registry");
        if let Some(cluster) = cluster {
            let sessions = Arc::clone(&registry);
            let channel = cluster.clone();
            let routes = Routes::default().route(&crate::session::peers::KINDS, move |payload| {
                crate::session::peers::receive(&sessions, &channel, &payload);
            });
            let routes = admin::replication::routes(routes, feed.clone(), cluster, node.clone());
            crate::cluster::spawn_listener(
                settings
                    .redis_seeds()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                Keys::new(settings.redis_prefix.clone()).feed(),
                routes,
            );
        }
        Sweeper::new(
            Arc::clone(&registry),
            archive.clone(),
            settings.sweep_interval.0,
        )
        .start();
        let max_connections = settings
            .limits
            .max_connections
            .unwrap_or_else(Admission::default_max);
        if settings.admin_token.is_none() {
            tracing::warn!("LEADCHAT_ADMIN_TOKEN is not set: the admin API and feed are disabled");
        }
        let requested = settings.listen_addr()?;
        let (listener, addr) = bind(requested)?;
        http::set_write_deadline(&listener, settings.limits.client_timeout.0);
        let metrics_listener = settings.metrics_addr()?.map(bind).transpose()?;
        let admission = Admission::new(max_connections);
        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            registry: Arc::clone(&registry),
            store,
            archive,
            jobs: job_queue,
            feed,
            metrics: telemetry::metrics_handle(),
            admission: admission.clone(),
            client_limits: ClientLimits::new(
                settings.limits.sessions_per_client,
                settings.limits.sockets_per_client,
            ),
            trusted_proxies: settings.trusted_proxy_nets(),
            metrics_addr: metrics_listener.as_ref().map(|(_, a)| *a),
        });
        let metrics_addr = state.metrics_addr;
        let workers = settings.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let server = HttpServer::new(move || {
            // Outermost last: the budget first, then the metrics address,
            // the page headers, the body deadline.
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(http::body_deadline))
                .wrap(middleware::from_fn(http::security_headers))
                .wrap(middleware::from_fn(http::metrics_listener))
                .wrap(middleware::from_fn(http::budget))
                .configure(http::routes)
        })
        // Signals are ours (`run_until_stopped`): sockets close at once, so
        // connections left after this are requests in flight, given a few
        // seconds.
        .disable_signals()
        .shutdown_timeout(HTTP_SHUTDOWN_TIMEOUT.min(settings.shutdown_grace.0.as_secs()))
        .backlog(4096)
        // Chat frames are small and an ack is followed at once by the
        // bot's answer: with Nagle on, an answer written apart from its
        // ack can wait for the client's delayed ACK (40–200 ms).
        .tcp_nodelay(true)
        // Every connection takes a slot of the budget as it opens; past
        // the hard cap the server stops accepting rather than running
        // out of descriptors (the cap is per worker).
        .on_connect(admission.on_connect())
        .workers(workers)
        .max_connections(admission.accept_cap().div_ceil(workers))
        .client_request_timeout(std::time::Duration::from_secs(10));
        let mut server = server
            .listen(listener)
            .map_err(|source| StartupError::Listen {
                addr: requested,
                source,
            })?;
        if let Some((listener, metrics_addr)) = metrics_listener {
            server = server
                .listen(listener)
                .map_err(|source| StartupError::Listen {
                    addr: metrics_addr,
                    source,
                })?;
            tracing::info!("metrics on {metrics_addr}");
        }
        let server = server.run();
        tracing::info!(node = %node, max_connections, "listening on {addr}");
        Ok(Self {
            addr,
            metrics_addr,
            server,
            registry,
            pipeline,
            jobs,
            grace: settings.shutdown_grace.0,
            shutdown,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` answers without auth, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn registry(&self) -> Arc<SessionRegistry> {
        Arc::clone(&self.registry)
    }

    /// A handle that stops the HTTP server (tests; SIGTERM goes through
    /// `stop`).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// What stops the node as SIGTERM does (`Shutdown::trigger`).
    pub fn shutdown(&self) -> crate::shutdown::Shutdown {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM / Ctrl-C (or `shutdown().trigger()`). Every
    /// acknowledged event is already in the store, so live sessions survive
    /// the restart; they are not finalized. Sockets are closed at once
    /// (1012); reports in flight, then the mails in flight, get the grace
    /// period; queued mails stay in the durable outbox for the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            registry,
            pipeline,
            jobs,
            grace,
            shutdown,
            ..
        } = self;
        let handle = server.handle();
        let signals = shutdown.clone();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop signal received; closing connections");
            signals.trigger();
        });
        let stopping = shutdown.wait();
        let live_at_stop = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&live_at_stop);
        let counted = std::sync::Arc::clone(&registry);
        actix_web::rt::spawn(async move {
            stopping.await;
            // Counted before the workers stop and take their actors along.
            seen.store(counted.live_count(), std::sync::atomic::Ordering::Release);
            handle.stop(true).await;
        });
        let served = server.await;
        if !shutdown.stopping() {
            // Stopped through the server handle: the same stop from here on.
            live_at_stop.store(registry.live_count(), std::sync::atomic::Ordering::Release);
            shutdown.trigger();
        }
        // The workers and their session actors are gone: other nodes resume
        // this node's sessions at once rather than after its heartbeat.
        let deps = registry.deps();
        if let Err(err) = deps.store.node_stopped(&deps.node).await {
            tracing::warn!(error = %err, "cannot tell the store this node stopped; its heartbeat runs out instead");
        }
        let started = std::time::Instant::now();
        let drained = tokio::time::timeout(grace, async {
            let _ = pipeline.report.send(Drain).await;
            let _ = pipeline.mailer.send(Drain).await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over; unfinished mails stay queued in the outbox");
        }
        if !jobs.drain(grace.saturating_sub(started.elapsed())).await {
            tracing::warn!(
                in_flight = jobs.in_flight(),
                "grace period over; unfinished jobs run again when their lease runs out"
            );
        }
        // The mailer's SMTP pool is dropped here, inside the runtime (its
        // drop spawns a task; outside a runtime that panics).
        let _ = pipeline.mailer.send(StopMailer).await;
        tracing::info!(
            live_sessions = live_at_stop.load(std::sync::atomic::Ordering::Acquire),
            "stopped; live sessions stay in the store"
        );
        served
    }
}

/// How long in-flight HTTP requests get once the node stops (sockets are
/// closed at once; reports and mails have their own grace).
const HTTP_SHUTDOWN_TIMEOUT: u64 = 3;

/// The durable jobs of this node: the runner with a handler per kind, and
/// the recurring schedules.
fn start_jobs(
    settings: &Settings,
    archive: &Archive,
    shutdown: &crate::shutdown::Shutdown,
) -> (Jobs, RunningJobs) {
    let jobs = Jobs::new(archive.clone());
    let options = RunnerOptions {
        concurrency: settings.jobs.concurrency,
        poll_interval: settings.jobs.poll_interval.0,
        lease: settings.jobs.lease.0,
    };
    let runner = JobRunner::new(&jobs, options).register(Prune {
        archive: archive.clone(),
        keep: settings.jobs.keep.0,
    });
    crate::jobs::schedule::start(
        jobs.clone(),
        vec![crate::jobs::prune_schedule()],
        shutdown.clone(),
    );
    (jobs, runner.start(shutdown.clone()))
}

/// SIGTERM or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn bind(requested: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let fail = |source| StartupError::Listen {
        addr: requested,
        source,
    };
    let listener = TcpListener::bind(requested).map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    Ok((listener, addr))
}

fn load_knowledge(settings: &Settings) -> Result<KnowledgeBase, StartupError> {
    if settings.knowledge_file.exists() {
        return Ok(KnowledgeBase::load(&settings.knowledge_file)?);
    }
    tracing::warn!(path = %settings.knowledge_file.display(), "knowledge base not found; using the built-in sample");
    KnowledgeBase::from_toml(include_str!("../config/knowledge.toml")).map_err(|message| {
        StartupError::Knowledge(crate::bot::KnowledgeError::Invalid {
            path: "built-in".into(),
            message,
        })
    })
}

fn load_scoring(settings: &Settings) -> Result<ScoringConfig, StartupError> {
    if settings.scoring_file.exists() {
        return Ok(ScoringConfig::load(&settings.scoring_file)?);
    }
    tracing::warn!(path = %settings.scoring_file.display(), "scoring config not found; using the built-in defaults");
    Ok(ScoringConfig::default())
}
