//! Builds the whole node — store, actors, HTTP server — from settings.
//! `main` and the integration tests use the same `Application::build`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix::{Actor, Addr, Recipient};
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::admin::{self, AdminFeed, AttachRegistry, FeedDemand, bus::FeedBus};
use crate::archive::Archive;
use crate::bot::{KnowledgeBase, Responder};
use crate::http::{self, Admission, AppState};
use crate::mail::{MailTransport, MailerActor, MailerDeps};
use crate::report::{
    Brand, Drain, FinalizeSession, LogoImage, RenderPool, ReportActor, ReportDeps, ReportRenderer,
};
use crate::scoring::{Engine, ScoringConfig};
use crate::session::{SessionDeps, SessionRegistry, Sweeper};
use crate::settings::Settings;
use crate::store::keys::Keys;
use crate::store::{MemoryStore, RedisStore, SharedStore, WriteBuffer};
use crate::telemetry;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("cannot connect to Redis: {0}")]
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
    server: Server,
    registry: Arc<SessionRegistry>,
    pipeline: Pipeline,
    grace: std::time::Duration,
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
            Some(url) => MailTransport::from_url(url)?,
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
            lease: std::time::Duration::from_secs(120),
            max_in_flight: 8,
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
        Self::build_with(settings, None).await
    }

    /// As `build`, with finalized sessions going to `report` instead of the
    /// node's own ReportActor (tests count what arrives there).
    pub async fn build_with(
        settings: Settings,
        report: Option<Recipient<FinalizeSession>>,
    ) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let node = settings.node_name();
        let (store, bus): (SharedStore, Option<FeedBus>) = match &settings.redis_url {
            Some(url) => {
                let keys = Keys::new(settings.redis_prefix.clone());
                let redis = if settings.redis_cluster {
                    RedisStore::connect_cluster(&settings.redis_seeds(), keys.clone()).await?
                } else {
                    RedisStore::connect(url, keys.clone()).await?
                };
                let bus = FeedBus::new(redis.connection(), keys.feed());
                let buffered = WriteBuffer::start(Arc::new(redis), settings.redis_write_buffer);
                (buffered, Some(bus))
            }
            None => {
                tracing::info!(
                    "no LEADCHAT_REDIS_URL: using the embedded in-memory store (one node, no crash recovery)"
                );
                (Arc::new(MemoryStore::new()), None)
            }
        };
        if settings.allowed_origins.is_empty() {
            tracing::warn!(
                "allowed_origins is empty: any web site may embed the widget; set LEADCHAT_ALLOWED_ORIGINS to your sites' origins"
            );
        }
        let responder: Arc<dyn Responder> = Arc::new(load_knowledge(&settings)?);
        let engine = Engine::new(load_scoring(&settings)?)?;
        let archive = Archive::connect(&settings.database_url).await?;
        let pipeline = Pipeline::start(&settings, archive.clone(), Arc::clone(&store))?;
        let report = report.unwrap_or_else(|| pipeline.report.clone().recipient());

        let feed_demand = FeedDemand::default();
        let feed = AdminFeed::new(node.clone(), bus.clone(), feed_demand.clone()).start();
        let registry = SessionRegistry::new(SessionDeps {
            store: Arc::clone(&store),
            responder,
            engine,
            report,
            feed: feed.clone(),
            feed_demand,
            bus: bus.clone(),
            inactivity_timeout: settings.inactivity_timeout.0,
            rate: settings.limits.rate,
            node: node.clone(),
        });
        feed.do_send(AttachRegistry(Arc::clone(&registry)));
        if let Some(bus) = bus {
            let channel = Keys::new(settings.redis_prefix.clone()).feed();
            admin::bus::spawn_listener(
                settings
                    .redis_seeds()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                channel,
                node.clone(),
                bus,
                feed.clone(),
                Arc::clone(&registry),
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
        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            registry: Arc::clone(&registry),
            store,
            archive,
            feed,
            metrics: telemetry::metrics_handle(),
            admission: Admission::new(max_connections),
            next_conn_id: AtomicU64::new(1),
        });

        if settings.admin_token.is_none() {
            tracing::warn!("LEADCHAT_ADMIN_TOKEN is not set: the admin API and feed are disabled");
        }
        let requested = settings.listen_addr()?;
        let listener = TcpListener::bind(requested).map_err(|source| StartupError::Listen {
            addr: requested,
            source,
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: requested,
                source,
            })?;
        let mut server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
                .shutdown_timeout(settings.shutdown_grace.0.as_secs())
                .backlog(4096)
                // Chat frames are small and an ack is followed at once by the
                // bot's answer: with Nagle on, an answer written apart from its
                // ack can wait for the client's delayed ACK (40–200 ms).
                .tcp_nodelay(true)
                .max_connections(50_000)
                .client_request_timeout(std::time::Duration::from_secs(10));
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Listen {
                addr: requested,
                source,
            })?
            .run();
        tracing::info!(node = %node, max_connections, "listening on {addr}");
        Ok(Self {
            addr,
            server,
            registry,
            pipeline,
            grace: settings.shutdown_grace.0,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn registry(&self) -> Arc<SessionRegistry> {
        Arc::clone(&self.registry)
    }

    /// A handle that stops the server (as SIGTERM would).
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM / Ctrl-C. Every acknowledged event is already in
    /// the store, so live sessions survive the restart; they are not finalized.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        // In-flight reports, then the mails they queued, get the grace period;
        // anything unfinished stays in the durable outbox for the next start.
        let drained = tokio::time::timeout(self.grace, async {
            let _ = self.pipeline.report.send(Drain).await;
            let _ = self.pipeline.mailer.send(Drain).await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over; unfinished mails stay queued in the outbox");
        }
        tracing::info!(
            live_sessions = self.registry.live_count(),
            "stopped; live sessions stay in the store"
        );
        Ok(())
    }
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
