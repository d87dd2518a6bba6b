//! Builds the whole node — store, actors, HTTP server — from settings.
//! `main` and the integration tests use the same `Application::build`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix::{Actor, Recipient};
use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::bot::{KnowledgeBase, Responder};
use crate::http::{self, Admission, AppState};
use crate::report::{FinalizeSession, ReportActor};
use crate::scoring::{Engine, ScoringConfig};
use crate::session::{SessionDeps, SessionRegistry};
use crate::settings::Settings;
use crate::store::keys::Keys;
use crate::store::{MemoryStore, RedisStore, SharedStore};
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
        let store: SharedStore = match &settings.redis_url {
            Some(url) => {
                Arc::new(RedisStore::connect(url, Keys::new(settings.redis_prefix.clone())).await?)
            }
            None => {
                tracing::info!(
                    "no LEADCHAT_REDIS_URL: using the embedded in-memory store (one node, no crash recovery)"
                );
                Arc::new(MemoryStore::new())
            }
        };
        if settings.allowed_origins.is_empty() {
            tracing::warn!(
                "allowed_origins is empty: any web site may embed the widget; set LEADCHAT_ALLOWED_ORIGINS to your sites' origins"
            );
        }
        let responder: Arc<dyn Responder> = Arc::new(load_knowledge(&settings)?);
        let engine = Engine::new(load_scoring(&settings)?)?;
        let report = report.unwrap_or_else(|| ReportActor.start().recipient());

        let registry = SessionRegistry::new(SessionDeps {
            store: Arc::clone(&store),
            responder,
            engine,
            report,
            inactivity_timeout: settings.inactivity_timeout.0,
            rate: settings.limits.rate,
            node: node.clone(),
        });
        let max_connections = settings
            .limits
            .max_connections
            .unwrap_or_else(Admission::default_max);
        let state = web::Data::new(AppState {
            settings: Arc::clone(&settings),
            registry: Arc::clone(&registry),
            store,
            metrics: telemetry::metrics_handle(),
            admission: Admission::new(max_connections),
            next_conn_id: AtomicU64::new(1),
        });

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
