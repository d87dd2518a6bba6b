//! Typed, validated settings. Precedence, lowest first:
//! built-in defaults < `config/default.toml` < the file named by
//! `LEADCHAT_CONFIG` < environment variables (`LEADCHAT_LISTEN`,
//! `LEADCHAT_LIMITS__MAX_FRAME_BYTES`, … — `__` separates nested keys).
//! A bad value stops start-up with one line naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::secret::{Secret, SecretUrl};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod origins;
pub mod proxies;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read settings: {0}")]
    Source(String),
}

impl SettingsError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// A duration written the way people write it: `300s`, `5m`, `1500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Self(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(t.trim()).map(Self).map_err(|e| {
                serde::de::Error::custom(format!(
                    "expected a duration like `300s`, `5m` or `1500ms` ({e})"
                ))
            }),
        }
    }
}

/// `limits.rate`: visitor frames allowed per window, written `20/10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSetting {
    pub frames: u32,
    pub per: Duration,
}

impl Serialize for RateSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{}/{}",
            self.frames,
            humantime::format_duration(self.per)
        ))
    }
}

impl<'de> Deserialize<'de> for RateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "expected FRAMES/WINDOW like `20/10s`, got {text:?}"
            ))
        };
        let (frames, per) = text.split_once('/').ok_or_else(bad)?;
        let frames: u32 = frames.trim().parse().map_err(|_| bad())?;
        let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
        if frames == 0 || per.is_zero() {
            return Err(bad());
        }
        Ok(Self { frames, per })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub listen: String,
    /// One Redis (`redis://HOST:PORT[/DB]`), or with `redis_cluster` the
    /// comma-separated seed nodes of a Redis Cluster.
    pub redis_url: Option<SecretUrl>,
    /// `redis_url` names a Redis Cluster.
    pub redis_cluster: bool,
    /// Visitor writes held in memory while Redis is unreachable; past it,
    /// writes are refused with `unavailable` until Redis is back.
    pub redis_write_buffer: usize,
    /// Prefix for every Redis key this node writes; lets tests and several
    /// deployments share one Redis. Empty in production.
    pub redis_prefix: String,
    // -- embedded store (no Redis) --
    /// Where the embedded store keeps live sessions (`live.db`); unset =
    /// beside the SQLite archive (`data/` with PostgreSQL).
    pub embedded_dir: Option<PathBuf>,
    /// `normal`: a commit survives a crash of the process (kill -9), not a
    /// power loss; `full`: also a power loss, one fsync per group commit.
    pub embedded_sync: EmbeddedSync,
    /// Tests only: keep live sessions in memory, lost when the process ends.
    pub embedded_memory: bool,
    // --
    pub database_url: SecretUrl,
    pub inactivity_timeout: HumanDuration,
    pub sweep_interval: HumanDuration,
    pub smtp_url: Option<SecretUrl>,
    pub outbox_dir: PathBuf,
    pub mail_from: String,
    pub mail_to: String,
    pub report_dir: PathBuf,
    pub admin_token: Option<Secret>,
    pub node_id: Option<String>,
    /// How long a shutdown waits for in-flight reports and mails.
    pub shutdown_grace: HumanDuration,
    pub knowledge_file: PathBuf,
    pub scoring_file: PathBuf,
    /// A custom Typst template; unset = the built-in one.
    pub report_template: Option<PathBuf>,
    pub fonts_dir: PathBuf,
    /// How often the mailer looks for due mails in the outbox.
    pub mail_poll_interval: HumanDuration,
    /// How long a claimed mail stays hidden from other senders; renewed
    /// every third of it while its send runs.
    pub mail_lease: HumanDuration,
    pub workers: Option<usize>,
    /// Web origins (`https://shop.example`) whose pages may embed the widget:
    /// the visitor WebSocket refuses other `Origin`s with 403 and CORS answers
    /// only these. Empty = any origin (a warning is logged at start). A TOML
    /// array, or comma-separated in `LEADCHAT_ALLOWED_ORIGINS`.
    #[serde(deserialize_with = "origins::deserialize")]
    pub allowed_origins: Vec<String>,
    pub brand: BrandSettings,
    pub limits: Limits,
    // -- clients and access (issue 14) --
    /// Proxies whose `X-Forwarded-For` names the client (see
    /// [`proxies`]); empty = the peer is the client.
    #[serde(deserialize_with = "proxies::deserialize")]
    pub trusted_proxies: Vec<String>,
    /// `/metrics` on its own address, without auth (`LEADCHAT_METRICS_LISTEN`);
    /// unset = on the main listener with the admin token only.
    pub metrics_listen: Option<String>,
    /// `report.*`: what one PDF render may cost.
    pub report: ReportLimits,
    /// `jobs.*`: the durable jobs (PROTOCOL §12).
    pub jobs: JobSettings,
}

/// `jobs.*` (`LEADCHAT_JOBS__KEEP`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSettings {
    /// Finished jobs (done, dead, cancelled) are removed this long after
    /// they last changed (PROTOCOL §7, default 14 days).
    pub keep: HumanDuration,
    /// Job attempts one node runs at once.
    pub concurrency: usize,
    /// How often a node looks for jobs another node enqueued.
    pub poll_interval: HumanDuration,
    /// How long a claimed job is this node's before another may take it;
    /// renewed every third of it while the job runs.
    pub lease: HumanDuration,
}

/// `embedded_sync`: how hard a commit of the embedded store is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddedSync {
    /// WAL, `synchronous=NORMAL`: durable once the WAL write returns, so a
    /// killed process loses nothing; a power loss may lose the last commits.
    #[default]
    Normal,
    /// WAL, `synchronous=FULL`: the WAL is fsynced at every group commit.
    Full,
}

/// Bounds of one report render (PROTOCOL §2 "Bounds").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportLimits {
    /// A render still running after this fails (the mail is rebuilt later).
    pub render_timeout: HumanDuration,
    /// Peak memory one render may take, in bytes (default 512 MiB). The
    /// largest transcript the bounds allow is measured under it (README,
    /// performance table); see docs/limits.md.
    pub render_memory: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrandSettings {
    pub name: String,
    pub color: String,
    pub logo: Option<PathBuf>,
    pub bot_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub rate: RateSetting,
    pub client_timeout: HumanDuration,
    pub heartbeat_interval: HumanDuration,
    /// A frame whose bytes have not all arrived in this time closes the
    /// connection: a trickled frame must not hold a socket forever.
    pub frame_read_timeout: HumanDuration,
    /// Open WebSockets past which upgrades get 503; unset = a margin under
    /// the process's file-descriptor limit. Plain HTTP connections count too.
    pub max_connections: Option<usize>,
    // --- session bounds (PROTOCOL §2 "Bounds") ---
    /// Visitor messages one session takes; past it `session_full`.
    pub max_messages: u32,
    /// History lines the session frame of a resume replays (a greeting is a
    /// line); older ones are paged with `history` frames.
    pub history_replay: usize,
    /// Sockets one session holds; a new one closes the oldest with 4008.
    pub connections_per_session: usize,
    // -- per client and per request (issue 14) --
    /// New sessions one client address may open in any 60 s.
    pub sessions_per_client: u32,
    /// Visitor sockets one client address may hold at once.
    pub sockets_per_client: u32,
    /// A request body not received in this time is refused with 408.
    pub body_read_timeout: HumanDuration,
    /// A fresh session nobody said anything in is dropped this long after its
    /// last socket left, instead of at the inactivity timeout.
    pub empty_session_grace: HumanDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            redis_url: None,
            redis_cluster: false,
            redis_write_buffer: 100_000,
            redis_prefix: String::new(),
            embedded_dir: None,
            embedded_sync: EmbeddedSync::Normal,
            embedded_memory: false,
            database_url: "sqlite://data/leadchat.db".into(),
            inactivity_timeout: HumanDuration(Duration::from_secs(300)),
            sweep_interval: HumanDuration(Duration::from_secs(60)),
            smtp_url: None,
            outbox_dir: "outbox".into(),
            mail_from: "leadchat@localhost".into(),
            mail_to: "sales@localhost".into(),
            report_dir: "reports".into(),
            admin_token: None,
            node_id: None,
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            knowledge_file: "config/knowledge.toml".into(),
            scoring_file: "config/scoring.toml".into(),
            report_template: None,
            fonts_dir: crate::report::default_fonts_dir(),
            mail_poll_interval: HumanDuration(Duration::from_secs(1)),
            mail_lease: HumanDuration(Duration::from_secs(120)),
            workers: None,
            allowed_origins: Vec::new(),
            brand: BrandSettings {
                name: "Leadchat".into(),
                color: "#1f6feb".into(),
                logo: None,
                bot_name: "Assistant".into(),
            },
            limits: Limits {
                max_frame_bytes: 8 * 1024,
                rate: RateSetting {
                    frames: 20,
                    per: Duration::from_secs(10),
                },
                client_timeout: HumanDuration(Duration::from_secs(30)),
                heartbeat_interval: HumanDuration(Duration::from_secs(10)),
                frame_read_timeout: HumanDuration(Duration::from_secs(10)),
                max_connections: None,
                max_messages: 300,
                history_replay: 100,
                connections_per_session: 5,
                sessions_per_client: 10,
                sockets_per_client: 20,
                body_read_timeout: HumanDuration(Duration::from_secs(10)),
                empty_session_grace: HumanDuration(Duration::from_secs(10)),
            },
            trusted_proxies: Vec::new(),
            metrics_listen: None,
            report: ReportLimits {
                render_timeout: HumanDuration(Duration::from_secs(60)),
                render_memory: 512 * 1024 * 1024,
            },
            jobs: JobSettings {
                keep: HumanDuration(Duration::from_secs(14 * 24 * 3600)),
                concurrency: 16,
                poll_interval: HumanDuration(Duration::from_secs(1)),
                lease: HumanDuration(Duration::from_secs(60)),
            },
        }
    }
}

impl Settings {
    /// Loads the layered settings from the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let base = Path::new("config/default.toml");
        if base.exists() {
            figment = figment.merge(Toml::file(base));
        }
        if let Ok(path) = std::env::var("LEADCHAT_CONFIG") {
            if !Path::new(&path).exists() {
                return Err(SettingsError::invalid(
                    "LEADCHAT_CONFIG",
                    format!("file {path:?} does not exist"),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(
            Env::prefixed("LEADCHAT_")
                .ignore(&["CONFIG"])
                .split("__")
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            let message = e.kind.to_string();
            if key.is_empty() {
                SettingsError::Source(message)
            } else {
                SettingsError::Invalid { key, message }
            }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.listen_addr()?;
        if self.inactivity_timeout.0 < Duration::from_millis(100) {
            return Err(SettingsError::invalid(
                "inactivity_timeout",
                "must be at least 100ms",
            ));
        }
        if self.sweep_interval.0.is_zero() {
            return Err(SettingsError::invalid(
                "sweep_interval",
                "must be more than zero",
            ));
        }
        if self.redis_url.is_some() {
            let seeds = self.redis_seeds();
            if seeds.is_empty()
                || !seeds.iter().all(|url| {
                    url.starts_with("redis://")
                        || url.starts_with("rediss://")
                        || url.starts_with("unix://")
                })
            {
                return Err(SettingsError::invalid(
                    "redis_url",
                    "expected redis://HOST:PORT[/DB] (with redis_cluster: a comma-separated list)",
                ));
            }
            if seeds.len() > 1 && !self.redis_cluster {
                return Err(SettingsError::invalid(
                    "redis_url",
                    "several URLs need redis_cluster = true",
                ));
            }
        }
        if self.redis_cluster && self.redis_url.is_none() {
            return Err(SettingsError::invalid(
                "redis_cluster",
                "needs redis_url to name the cluster's nodes",
            ));
        }
        if self.redis_write_buffer == 0 {
            return Err(SettingsError::invalid(
                "redis_write_buffer",
                "must be at least 1",
            ));
        }
        let database_url = self.database_url.expose();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(SettingsError::invalid(
                "database_url",
                "expected sqlite://PATH or postgres://…",
            ));
        }
        if let Some(url) = self.smtp_url.as_ref().map(SecretUrl::expose)
            && !(url.starts_with("smtp://")
                || url.starts_with("smtps://")
                || url.starts_with("smtp+starttls://"))
        {
            return Err(SettingsError::invalid(
                "smtp_url",
                "expected smtp://HOST:PORT or smtps://USER:PASS@HOST:PORT",
            ));
        }
        if self.mail_recipients().is_empty() {
            return Err(SettingsError::invalid(
                "mail_to",
                "needs at least one address",
            ));
        }
        if !(256..=1024 * 1024).contains(&self.limits.max_frame_bytes) {
            return Err(SettingsError::invalid(
                "limits.max_frame_bytes",
                "must be between 256 and 1048576",
            ));
        }
        if self.limits.max_messages == 0
            || self.limits.history_replay == 0
            || self.limits.connections_per_session == 0
        {
            return Err(SettingsError::invalid(
                "limits",
                "max_messages, history_replay and connections_per_session must be at least 1",
            ));
        }
        if self.limits.heartbeat_interval.0.is_zero()
            || self.limits.client_timeout.0 <= self.limits.heartbeat_interval.0
        {
            return Err(SettingsError::invalid(
                "limits.client_timeout",
                "must be longer than limits.heartbeat_interval",
            ));
        }
        if self.limits.sessions_per_client == 0 || self.limits.sockets_per_client == 0 {
            return Err(SettingsError::invalid(
                "limits.sessions_per_client",
                "sessions_per_client and sockets_per_client must be at least 1",
            ));
        }
        if self.limits.body_read_timeout.0.is_zero() {
            return Err(SettingsError::invalid(
                "limits.body_read_timeout",
                "must be more than zero",
            ));
        }
        self.metrics_addr()?;
        if self.jobs.concurrency == 0 || self.jobs.poll_interval.0.is_zero() {
            return Err(SettingsError::invalid(
                "jobs.concurrency",
                "jobs.concurrency and jobs.poll_interval must be more than zero",
            ));
        }
        if self.jobs.lease.0 < Duration::from_secs(3) {
            return Err(SettingsError::invalid("jobs.lease", "must be at least 3s"));
        }
        if self.report.render_timeout.0 < Duration::from_millis(100) {
            return Err(SettingsError::invalid(
                "report.render_timeout",
                "must be at least 100ms",
            ));
        }
        if self.report.render_memory < 64 * 1024 * 1024 {
            return Err(SettingsError::invalid(
                "report.render_memory",
                "must be at least 64 MiB (67108864 bytes)",
            ));
        }
        if matches!(&self.admin_token, Some(t) if t.expose().len() < 16) {
            return Err(SettingsError::invalid(
                "admin_token",
                "must be at least 16 characters",
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.listen.parse().map_err(|_| {
            SettingsError::invalid(
                "listen",
                format!("expected ADDRESS:PORT, got {:?}", self.listen),
            )
        })
    }

    /// `metrics_listen` as an address; an empty value means unset.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, SettingsError> {
        match self.metrics_listen.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                SettingsError::invalid(
                    "metrics_listen",
                    format!("expected ADDRESS:PORT, got {text:?}"),
                )
            }),
        }
    }

    /// The parsed `trusted_proxies` (validated when the settings loaded).
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| proxies::parse(p))
            .collect()
    }

    /// Whether a browser page at `origin` may use the widget API; see
    /// [`origins::is_allowed`].
    pub fn origin_allowed(&self, origin: &str, own_host: Option<&str>) -> bool {
        origins::is_allowed(&self.allowed_origins, origin, own_host)
    }

    pub fn mail_recipients(&self) -> Vec<String> {
        self.mail_to
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The embedded store's folder: the setting, else the SQLite archive's
    /// folder, else `data/`.
    pub fn embedded_dir(&self) -> PathBuf {
        if let Some(dir) = self
            .embedded_dir
            .as_ref()
            .filter(|d| !d.as_os_str().is_empty())
        {
            return dir.clone();
        }
        let archive = self
            .database_url
            .expose()
            .strip_prefix("sqlite:")
            .filter(|rest| !rest.starts_with(":memory:"))
            .map(|rest| rest.trim_start_matches("//"))
            .and_then(|rest| rest.split('?').next())
            .filter(|path| !path.is_empty());
        match archive.map(Path::new).and_then(Path::parent) {
            Some(parent) if parent.as_os_str().is_empty() => PathBuf::from("."),
            Some(parent) => parent.to_path_buf(),
            None => PathBuf::from("data"),
        }
    }

    /// The Redis URLs to connect through: one, or a cluster's seeds.
    pub fn redis_seeds(&self) -> Vec<&str> {
        self.redis_url
            .as_ref()
            .map(|urls| urls.expose())
            .map(|urls| {
                urls.split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// This node's name: the setting, else host name and pid.
    pub fn node_name(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "leadchat".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

pub use crate::secret::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut f = Figment::from(Serialized::defaults(Settings::default()));
        for (k, v) in pairs {
            f = f.merge(Toml::string(&format!("{k} = {v}")));
        }
        Settings::from_figment(f)
    }

    #[test]
    fn defaults_are_valid() {
        let s = with(&[]).expect("defaults");
        assert_eq!(s.inactivity_timeout.0, Duration::from_secs(300));
        assert_eq!(s.limits.rate.frames, 20);
    }

    #[test]
    fn parses_human_durations() {
        assert_eq!(
            with(&[("inactivity_timeout", "\"1500ms\"")])
                .expect("ok")
                .inactivity_timeout
                .0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            with(&[("inactivity_timeout", "\"5m\"")])
                .expect("ok")
                .inactivity_timeout
                .0,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn allowed_origins_take_the_comma_separated_form_env_vars_give() {
        assert!(with(&[]).expect("defaults").allowed_origins.is_empty());
        let s = with(&[(
            "allowed_origins",
            "\"https://shop.example, http://localhost:3000\"",
        )])
        .expect("ok");
        assert_eq!(
            s.allowed_origins,
            ["https://shop.example", "http://localhost:3000"]
        );
        let err = with(&[("allowed_origins", "\"shop.example\"")]).expect_err("bad");
        assert!(err.to_string().contains("allowed_origins"), "{err}");
    }

    #[test]
    fn client_limits_and_metrics_listen_parse() {
        let s = with(&[]).expect("defaults");
        assert_eq!(s.limits.sessions_per_client, 10);
        assert_eq!(s.limits.sockets_per_client, 20);
        assert_eq!(s.limits.body_read_timeout.0, Duration::from_secs(10));
        assert!(s.trusted_proxies.is_empty() && s.metrics_addr().expect("ok").is_none());
        let s = with(&[
            ("trusted_proxies", "\"10.0.0.0/8, 127.0.0.1\""),
            ("metrics_listen", "\"127.0.0.1:9100\""),
        ])
        .expect("ok");
        assert_eq!(s.trusted_proxy_nets().len(), 2);
        assert!(s.metrics_addr().expect("ok").is_some());
        let err = with(&[("trusted_proxies", "\"proxy.local\"")]).expect_err("bad");
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
        let err = with(&[("metrics_listen", "\"nowhere\"")]).expect_err("bad");
        assert!(err.to_string().contains("metrics_listen"), "{err}");
    }

    #[test]
    fn the_embedded_store_lives_beside_the_sqlite_archive_unless_told() {
        let s = with(&[]).expect("defaults");
        assert_eq!(s.embedded_dir(), PathBuf::from("data"));
        let s = with(&[("database_url", "\"sqlite:///var/lib/lc/archive.db\"")]).expect("ok");
        assert_eq!(s.embedded_dir(), PathBuf::from("/var/lib/lc"));
        let s = with(&[("database_url", "\"postgres://db/lc\"")]).expect("ok");
        assert_eq!(s.embedded_dir(), PathBuf::from("data"));
        let s = with(&[("embedded_dir", "\"/srv/live\"")]).expect("ok");
        assert_eq!(s.embedded_dir(), PathBuf::from("/srv/live"));
        assert_eq!(s.embedded_sync, EmbeddedSync::Normal);
        let s = with(&[("embedded_sync", "\"full\"")]).expect("ok");
        assert_eq!(s.embedded_sync, EmbeddedSync::Full);
        let err = with(&[("embedded_sync", "\"sometimes\"")]).expect_err("bad");
        assert!(err.to_string().contains("embedded_sync"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = with(&[("inactivity_timeout", "\"soon\"")]).expect_err("bad");
        assert!(err.to_string().contains("inactivity_timeout"), "{err}");
        let err = with(&[("listen", "\"nowhere\"")]).expect_err("bad");
        assert!(err.to_string().contains("`listen`"), "{err}");
    }
}
