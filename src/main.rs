//! The `leadchat` binary: `serve` (the default), `check-config`, `migrate-keys`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use leadchat::settings::Settings;
use leadchat::startup::Application;

/// mimalloc instead of the system allocator: a chat turn makes many small,
/// short-lived allocations (frames, store commands, views) on two or more
/// worker threads, where glibc's malloc cost the server more CPU and a
/// longer latency tail (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "leadchat",
    version,
    about = "Self-hosted lead-capture chat server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve,
    /// Load and validate the settings, print them (secrets hidden), exit.
    CheckConfig,
    /// Rename the Python deployment's Redis keys (`session:ID`) to the
    /// hash-tagged layout (`session:{ID}`). Safe to run twice.
    MigrateKeys {
        /// Only print what would be renamed.
        #[arg(long)]
        dry_run: bool,
    },
    /// The durable jobs in the archive database.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
}

#[derive(Debug, Subcommand)]
enum JobsAction {
    /// The newest jobs, one line each.
    List {
        /// pending, running, done, dead or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Make a job due now, dead or not.
    Retry { id: i64 },
    /// Cancel a job that is waiting.
    Cancel { id: i64 },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    leadchat::telemetry::init_tracing();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(err) => {
            // One clear line naming the key, then a non-zero exit.
            eprintln!("leadchat: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::CheckConfig => check_config(&settings),
        Command::MigrateKeys { dry_run } => migrate_keys(&settings, dry_run),
        Command::Jobs { action } => jobs(&settings, action),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("leadchat: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)
            .await
            .context("start-up failed")?;
        app.run_until_stopped().await.context("server failed")
    })
}

/// The settings as TOML; secrets print as `<set>` and URLs without their
/// passwords (see `leadchat::secret`).
fn check_config(settings: &Settings) -> anyhow::Result<()> {
    println!(
        "{}",
        toml::to_string_pretty(settings).context("cannot print settings")?
    );
    Ok(())
}

fn migrate_keys(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    let url = settings
        .redis_url
        .as_ref()
        .map(|u| u.expose())
        .context("migrate-keys needs LEADCHAT_REDIS_URL")?;
    if settings.redis_cluster {
        anyhow::bail!(
            "migrate-keys renames keys on one Redis; run it before moving the data to a Redis Cluster"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(leadchat::store::migrate::migrate_legacy_keys(
        url,
        &settings.redis_prefix,
        dry_run,
    ))?;
    println!(
        "{} legacy sessions found, {} keys {}, {} skipped (new key already present)",
        report.sessions,
        report.renamed,
        if dry_run {
            "would be renamed"
        } else {
            "renamed"
        },
        report.skipped
    );
    Ok(())
}

fn jobs(settings: &Settings, action: JobsAction) -> anyhow::Result<()> {
    use leadchat::archive::{Archive, JobState};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let archive = Archive::connect(settings.database_url.expose())
            .await
            .context("cannot open the archive")?;
        let now = chrono::Utc::now();
        match action {
            JobsAction::List { state, kind, limit } => {
                let state = state
                    .map(|s| {
                        JobState::parse(&s).with_context(|| {
                            format!("unknown state {s:?} (pending, running, done, dead, cancelled)")
                        })
                    })
                    .transpose()?;
                let jobs = archive
                    .list_jobs(state, kind.as_deref(), limit.clamp(1, 10_000))
                    .await?;
                println!(
                    "{:>8}  {:<9}  {:<20}  {:>8}  {:<25}  error",
                    "id", "state", "kind", "attempts", "due"
                );
                for j in jobs {
                    println!(
                        "{:>8}  {:<9}  {:<20}  {:>8}  {:<25}  {}",
                        j.id,
                        j.state.as_str(),
                        j.kind,
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        j.last_error
                            .unwrap_or_default()
                            .lines()
                            .next()
                            .unwrap_or_default()
                    );
                }
                Ok(())
            }
            JobsAction::Retry { id } => {
                anyhow::ensure!(
                    archive.retry_job(id, now).await?,
                    "job {id} is not waiting, dead or cancelled (or does not exist)"
                );
                println!("job {id} is due now");
                Ok(())
            }
            JobsAction::Cancel { id } => {
                anyhow::ensure!(
                    archive.cancel_job(id, now).await?,
                    "job {id} is not waiting (or does not exist)"
                );
                println!("job {id} cancelled");
                Ok(())
            }
        }
    })
}
