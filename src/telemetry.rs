//! The tracing subscriber (built once per process) and the Prometheus
//! recorder behind `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber: `LOG_FORMAT=json` for machines, pretty for
/// people; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests) fails harmlessly: the first subscriber stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder. `metrics` has one global recorder,
/// so every application built in this process (tests build many) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency_buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)
                .expect("static bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Someone else installed a recorder first: keep a private one
                // so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Histograms keep every sample until they are folded into their buckets:
/// without this, a node nobody scrapes grows by a few bytes per chat turn,
/// and the first scrape then folds millions of samples on a worker thread.
fn spawn_upkeep(handle: PrometheusHandle) {
    const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let spawned = std::thread::Builder::new()
        .name("leadchat-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start the metrics upkeep thread; histograms grow until scraped");
    }
}

/// Metric names in one place, so dashboards and code agree.
pub mod names {
    pub const LIVE_SESSIONS: &str = "leadchat_live_sessions";
    /// The registry's own count, read at scrape time (cross-check of the gauge).
    pub const LIVE_SESSIONS_INDEXED: &str = "leadchat_registry_sessions";
    pub const CONNECTIONS: &str = "leadchat_connections";
    /// Sessions in this node's admin feed (its own and the other nodes').
    pub const FEED_SESSIONS: &str = "leadchat_feed_sessions";
    pub const CONNECTIONS_REFUSED: &str = "leadchat_connections_refused_total";
    pub const MESSAGES: &str = "leadchat_messages_total";
    pub const FRAMES_REFUSED: &str = "leadchat_frames_refused_total";
    /// Frames not queued for a socket whose bounded mailbox was full (it
    /// stopped reading).
    pub const SOCKET_FRAMES_DROPPED: &str = "leadchat_socket_frames_dropped_total";
    pub const STORE_LATENCY: &str = "leadchat_store_latency_seconds";
    pub const STORE_ERRORS: &str = "leadchat_store_errors_total";
    /// Times the embedded store rewound its WAL to the beginning.
    pub const STORE_WAL_RESETS: &str = "leadchat_store_wal_resets_total";
    /// Jobs in the archive, labelled by `kind` and `state` (read at scrape).
    pub const JOBS: &str = "leadchat_jobs";
    /// Job attempts run on this node, by `kind` and `outcome`
    /// (done|retry|dead|lost).
    pub const JOB_RUNS: &str = "leadchat_job_runs_total";
    /// How long one job attempt ran, by `kind`.
    pub const JOB_DURATION: &str = "leadchat_job_duration_seconds";
    /// Recurring slots this node enqueued (another node may have been first).
    pub const JOB_SLOTS: &str = "leadchat_job_schedule_slots_total";
    /// Writes held in memory while the store is unreachable.
    pub const STORE_BUFFERED: &str = "leadchat_store_buffered_writes";
    /// Writes refused because the buffer was full.
    pub const STORE_BUFFER_REFUSED: &str = "leadchat_store_buffer_refused_total";
    pub const SESSIONS_FINALIZED: &str = "leadchat_sessions_finalized_total";
    pub const SESSIONS_DROPPED: &str = "leadchat_sessions_dropped_total";
    pub const REPLY_LATENCY: &str = "leadchat_reply_latency_seconds";
    pub const RENDER_LATENCY: &str = "leadchat_report_render_seconds";
    pub const FINALIZE_LATENCY: &str = "leadchat_finalize_seconds";
    pub const REPORTS: &str = "leadchat_reports_total";
    pub const MAILS_SENT: &str = "leadchat_mails_sent_total";
    pub const MAILS_FAILED: &str = "leadchat_mails_failed_total";
    pub const MAILS_RETRIED: &str = "leadchat_mails_retried_total";
    pub const MAIL_LATENCY: &str = "leadchat_mail_send_seconds";
}
