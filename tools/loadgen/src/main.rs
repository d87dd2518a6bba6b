//! loadgen: drives leadchat's visitor WebSocket (PROTOCOL §2) with many
//! simulated visitors and reports handshakes/s, message throughput and the
//! send → bot answer latency distribution. `loadgen merge` adds up the `--json`
//! reports of generators that ran side by side.

mod stats;
mod visitor;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::sync::{Barrier, Semaphore};
use tokio::time::Instant;

use stats::{Report, Stats};

/// The same allocator as the server: the generator shares the machine, and
/// glibc's malloc costs it more CPU per message.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use visitor::Plan;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for leadchat's visitor WebSocket",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Adds up `--json` reports of generators that ran at the same time.
    Merge {
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The visitor WebSocket; the host must be an IP address.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// Simulated visitors, each with its own connection and session.
    #[arg(long, default_value_t = 100)]
    sessions: u64,
    /// Seconds over which connections are opened (0 = as fast as
    /// --connect-concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Each session sends a message every this many milliseconds.
    #[arg(long)]
    interval_ms: Option<u64>,
    /// Total messages per second over all sessions (sets --interval-ms).
    #[arg(long, conflicts_with = "interval_ms")]
    rate: Option<f64>,
    /// Spread each interval uniformly over 50–150 % of itself.
    #[arg(long)]
    jitter: bool,
    /// Seconds measured after ramp and warm-up; with --idle, seconds held
    /// after the last session is ready.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds after the ramp before latencies are recorded.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open the sessions, give contact, hold them; report handshakes/s.
    #[arg(long)]
    idle: bool,
    /// Churn: each session sends this many messages, then ends — every other
    /// one with `end`, the rest by just disconnecting, left to the server's
    /// inactivity timeout — and its slot opens a new session at once, until
    /// the end of the run.
    #[arg(long, conflicts_with = "idle", value_name = "MESSAGES")]
    churn: Option<u64>,
    /// With --idle: once all sessions are ready, each sends one message at the
    /// same moment (lines up inactivity deadlines), then waits for `ended`.
    #[arg(long, requires = "idle")]
    sync_message: bool,
    /// Source addresses to spread client ports over: `127.0.0.2-127.0.0.9`
    /// or a comma list.
    #[arg(long)]
    source_ips: Option<String>,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Tokio worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Written (with the connect figures) once every session is ready or failed.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The visitors' contact name (shows in the report mail's subject).
    #[arg(long, default_value = "Load Test")]
    name: String,
    /// Exit 1 on any protocol error, failed connect or error frame.
    #[arg(long)]
    strict: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Merge { files, json }) => merge(&files, json),
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cli.run.threads.max(1))
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            let report = runtime.block_on(run(&cli.run))?;
            let failed = report.protocol_errors > 0
                || report.connect_failures > 0
                || report.ready < report.sessions
                || !report.errors.is_empty();
            emit(&report, cli.run.json)?;
            // Held idle connections are not closed one by one: exiting drops them.
            std::process::exit(if cli.run.strict && failed { 1 } else { 0 });
        }
    }
}

fn emit(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        report.print_text();
    }
    Ok(())
}

fn merge(files: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let reports = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {f:?}"))?;
            serde_json::from_str::<Report>(text.trim()).with_context(|| format!("parsing {f:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    emit(&Report::merge(&reports)?, json)
}

fn target_of(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("ws://")
        .context("--url must start with ws://")?;
    let host = rest.split('/').next().unwrap_or(rest);
    host.parse()
        .with_context(|| format!("--url host {host:?} must be IP:PORT"))
}

/// `127.0.0.2-127.0.0.9` (last octet varies) or `127.0.0.2,127.0.0.5`.
fn parse_sources(spec: &str) -> anyhow::Result<Vec<IpAddr>> {
    if let Some((a, b)) = spec.split_once('-') {
        let a: Ipv4Addr = a.trim().parse().context("source range start")?;
        let b: Ipv4Addr = b.trim().parse().context("source range end")?;
        let (a, b) = (u32::from(a), u32::from(b));
        anyhow::ensure!(a <= b, "empty source range {spec}");
        return Ok((a..=b).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))).collect());
    }
    spec.split(',')
        .map(|s| s.trim().parse().context("source address"))
        .collect()
}

async fn run(args: &RunArgs) -> anyhow::Result<Report> {
    let target = target_of(&args.url)?;
    let sources = match &args.source_ips {
        Some(spec) => parse_sources(spec)?,
        None => Vec::new(),
    };
    let interval = match (args.idle, args.rate, args.interval_ms) {
        (true, _, _) => None,
        (false, Some(rate), _) => Some(Duration::from_secs_f64(args.sessions as f64 / rate)),
        (false, None, Some(ms)) => Some(Duration::from_millis(ms)),
        (false, None, None) => anyhow::bail!("give --interval-ms, --rate or --idle"),
    };
    let t0 = Instant::now() + Duration::from_millis(100);
    let ramp = Duration::from_secs_f64(args.ramp);
    let measure_from = t0 + ramp + Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.duration);
    // Idle sessions hold until the process exits.
    let stop_at = if args.idle {
        t0 + Duration::from_secs(86_400)
    } else {
        measure_from + window
    };
    let stats = Arc::new(Stats::new());
    let plan = Arc::new(Plan {
        target,
        url: args.url.clone(),
        interval,
        jitter: args.jitter,
        measure_from,
        stop_at,
        name: args.name.clone(),
        churn: args.churn.map(|m| m.max(1)),
        sync_message: args
            .sync_message
            .then(|| Arc::new(Barrier::new(args.sessions as usize))),
        connect_gate: Arc::new(Semaphore::new(args.connect_concurrency.max(1))),
        stats: Arc::clone(&stats),
    });
    let mut tasks = Vec::with_capacity(args.sessions as usize);
    for n in 0..args.sessions {
        let source = (!sources.is_empty()).then(|| sources[(n as usize) % sources.len()]);
        let start = t0 + ramp.mul_f64(n as f64 / args.sessions.max(1) as f64);
        tasks.push(tokio::spawn(visitor::run(
            Arc::clone(&plan),
            n,
            source,
            start,
        )));
    }

    wait_connected(args, &stats).await?;
    let report_now = || stats.report(args.sessions, window, t0.into_std());
    if let Some(path) = &args.ready_file {
        tokio::fs::write(path, serde_json::to_string(&report_now())?).await?;
    }
    if args.idle && !args.sync_message {
        tokio::time::sleep(window).await;
        let mut report = report_now();
        report.window_secs = 0.0;
        return Ok(report);
    }
    let give_up = if args.idle {
        Instant::now() + window
    } else {
        stop_at + Duration::from_secs(35)
    };
    for task in tasks {
        if tokio::time::timeout_at(give_up, task).await.is_err() {
            stats.protocol_error("unfinished");
        }
    }
    let mut report = report_now();
    if args.idle {
        report.window_secs = 0.0;
    }
    Ok(report)
}

/// Waits until every session is ready or failed, printing progress.
async fn wait_connected(args: &RunArgs, stats: &Stats) -> anyhow::Result<()> {
    let mut last_print = Instant::now();
    loop {
        let ready = stats.ready.load(Ordering::Relaxed);
        let failed = stats.connect_failures.load(Ordering::Relaxed);
        if ready + failed >= args.sessions {
            eprintln!("loadgen: {ready} ready, {failed} failed");
            return Ok(());
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            eprintln!("loadgen: connecting… {ready} ready, {failed} failed");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
