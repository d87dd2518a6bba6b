//! What a run measured: counters shared by every simulated visitor, the
//! latency histograms, and the report they add up to. A report serialises its
//! histograms so that the reports of several generator processes can be merged
//! into one exact set of percentiles (`loadgen merge`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, up to 10 minutes.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid")
}

/// Shared by all visitor tasks of one process.
pub struct Stats {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub ready: AtomicU64,
    pub sent: AtomicU64,
    pub acks: AtomicU64,
    pub answers: AtomicU64,
    pub ended: AtomicU64,
    /// Churn: sessions left without `end`, for the server to time out.
    pub abandoned: AtomicU64,
    pub late_sends: AtomicU64,
    pub max_lag_us: AtomicU64,
    /// Frames or events the protocol does not allow: a missing answer, a
    /// dropped connection, a bot answer before its ack.
    pub protocol_errors: AtomicU64,
    /// `error` frames by code (e.g. `rate_limited`), and protocol errors by kind.
    errors: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Histogram<u64>>,
    handshake: Mutex<Histogram<u64>>,
    /// When the last session of the connect phase became ready.
    last_ready: Mutex<Option<Instant>>,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            connects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            answers: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            late_sends: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(new_histogram()),
            handshake: Mutex::new(new_histogram()),
            last_ready: Mutex::new(None),
        }
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, code: &str) {
        let mut errors = self.errors.lock().expect("stats lock is never poisoned");
        *errors.entry(code.to_owned()).or_default() += 1;
    }

    pub fn protocol_error(&self, kind: &str) {
        Self::count(&self.protocol_errors);
        self.error(&format!("protocol:{kind}"));
    }

    pub fn record_latency(&self, latency: Duration) {
        record(&self.latency, latency);
    }

    /// A session finished its handshake and contact; `took` is from its
    /// first SYN to `contact_ok`.
    pub fn record_ready(&self, took: Duration) {
        Self::count(&self.ready);
        record(&self.handshake, took);
        *self
            .last_ready
            .lock()
            .expect("stats lock is never poisoned") = Some(Instant::now());
    }

    /// The generator sent a message later than planned: it (or the server
    /// holding the previous answer) fell behind the schedule.
    pub fn record_lag(&self, lag: Duration) {
        Self::count(&self.late_sends);
        self.max_lag_us
            .fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn report(&self, sessions: u64, window: Duration, connect_began: Instant) -> Report {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let latency = self.latency.lock().expect("stats lock").clone();
        let handshake = self.handshake.lock().expect("stats lock").clone();
        let connect_secs = self
            .last_ready
            .lock()
            .expect("stats lock")
            .map_or(0.0, |t| t.duration_since(connect_began).as_secs_f64());
        let mut report = Report {
            sessions,
            ready: load(&self.ready),
            connect_failures: load(&self.connect_failures),
            connect_secs,
            handshakes_per_s: 0.0,
            window_secs: window.as_secs_f64(),
            sent: load(&self.sent),
            acks: load(&self.acks),
            answers: load(&self.answers),
            measured: 0,
            msgs_per_s: 0.0,
            latency_ms: Percentiles::default(),
            handshake_ms: Percentiles::default(),
            late_sends: load(&self.late_sends),
            max_lag_ms: load(&self.max_lag_us) as f64 / 1000.0,
            ended: load(&self.ended),
            abandoned: load(&self.abandoned),
            protocol_errors: load(&self.protocol_errors),
            errors: self.errors.lock().expect("stats lock").clone(),
            latency_hist: encode(&latency),
            handshake_hist: encode(&handshake),
            processes: 1,
        };
        report.derive(&latency, &handshake);
        report
    }
}

fn record(hist: &Mutex<Histogram<u64>>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, 600_000_000);
    hist.lock()
        .expect("stats lock is never poisoned")
        .saturating_record(us);
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// One run's figures; `--json` prints it, `merge` adds several up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub sessions: u64,
    pub ready: u64,
    pub connect_failures: u64,
    /// From the first connect to the last `contact_ok`.
    pub connect_secs: f64,
    /// Sessions made ready (upgrade + session frame + contact) per second.
    pub handshakes_per_s: f64,
    /// The measurement window: after the ramp, until the end.
    pub window_secs: f64,
    pub sent: u64,
    pub acks: u64,
    pub answers: u64,
    /// Answers whose latency was recorded (sent inside the window).
    pub measured: u64,
    pub msgs_per_s: f64,
    /// Intended send time → bot answer received.
    pub latency_ms: Percentiles,
    pub handshake_ms: Percentiles,
    pub late_sends: u64,
    pub max_lag_ms: f64,
    pub ended: u64,
    #[serde(default)]
    pub abandoned: u64,
    pub protocol_errors: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency_hist: String,
    pub handshake_hist: String,
    pub processes: u32,
}

impl Report {
    fn derive(&mut self, latency: &Histogram<u64>, handshake: &Histogram<u64>) {
        self.measured = latency.len();
        self.msgs_per_s = if self.window_secs > 0.0 {
            self.measured as f64 / self.window_secs
        } else {
            0.0
        };
        self.handshakes_per_s = if self.connect_secs > 0.0 {
            self.ready as f64 / self.connect_secs
        } else {
            0.0
        };
        self.latency_ms = Percentiles::of(latency);
        self.handshake_ms = Percentiles::of(handshake);
    }

    /// Several processes that ran side by side: counts and rates add up,
    /// the connect phase lasted as long as the slowest one's.
    pub fn merge(reports: &[Report]) -> anyhow::Result<Report> {
        let mut it = reports.iter();
        let mut total = it.next().context("nothing to merge")?.clone();
        let mut latency = decode(&total.latency_hist)?;
        let mut handshake = decode(&total.handshake_hist)?;
        for r in it {
            latency.add(decode(&r.latency_hist)?)?;
            handshake.add(decode(&r.handshake_hist)?)?;
            total.sessions += r.sessions;
            total.ready += r.ready;
            total.connect_failures += r.connect_failures;
            total.connect_secs = total.connect_secs.max(r.connect_secs);
            total.window_secs = total.window_secs.max(r.window_secs);
            total.sent += r.sent;
            total.acks += r.acks;
            total.answers += r.answers;
            total.late_sends += r.late_sends;
            total.max_lag_ms = total.max_lag_ms.max(r.max_lag_ms);
            total.ended += r.ended;
            total.abandoned += r.abandoned;
            total.protocol_errors += r.protocol_errors;
            total.processes += r.processes;
            for (code, n) in &r.errors {
                *total.errors.entry(code.clone()).or_default() += n;
            }
        }
        total.latency_hist = encode(&latency);
        total.handshake_hist = encode(&handshake);
        total.derive(&latency, &handshake);
        Ok(total)
    }

    pub fn print_text(&self) {
        let l = &self.latency_ms;
        let h = &self.handshake_ms;
        println!(
            "sessions {} ready {} connect_failures {} in {:.2}s = {:.0} handshakes/s (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
            self.sessions,
            self.ready,
            self.connect_failures,
            self.connect_secs,
            self.handshakes_per_s,
            h.p50,
            h.p99,
            h.max
        );
        println!(
            "sent {} acks {} answers {} | window {:.1}s measured {} = {:.0} msgs/s",
            self.sent, self.acks, self.answers, self.window_secs, self.measured, self.msgs_per_s
        );
        println!(
            "latency send->bot (ms): p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        println!(
            "late sends {} (max lag {:.1} ms) | ended {} abandoned {} | protocol errors {} | errors {:?}",
            self.late_sends,
            self.max_lag_ms,
            self.ended,
            self.abandoned,
            self.protocol_errors,
            self.errors
        );
    }
}

fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("serialising into a Vec cannot fail");
    B64.encode(buf)
}

fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = B64.decode(s).context("histogram is not base64")?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .context("histogram does not deserialise")?;
    Ok(h)
}
