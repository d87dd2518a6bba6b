//! One simulated visitor: opens the widget WebSocket from its source address,
//! reads the `session` frame, gives contact details, then either holds the
//! connection (idle) or sends a message on a fixed schedule and times each
//! bot answer from the moment the message was *due*, so a generator or server
//! that falls behind shows up in the latency instead of hiding in it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Barrier, Semaphore};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::stats::Stats;

type Ws = WebSocketStream<TcpStream>;

/// How long a message may wait for its answer before it counts as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// A send this much behind its schedule counts as late. Below it the delay
/// is the timer's millisecond granularity, not the generator falling behind.
const LATE: Duration = Duration::from_millis(2);

/// Plain ASCII without quotes or backslashes: sent without JSON escaping.
const QUESTIONS: &[&str] = &[
    "What is EPR?",
    "How much does plastic packaging registration cost?",
    "We import electronics, do we need e-waste EPR?",
    "Can we book a call next week?",
    "How long does battery registration take?",
    "hello",
    "What documents do you need from us for the CPCB portal?",
    "kitna charges hai for 200 tonnes plastic",
];

/// What every visitor of this process shares.
pub struct Plan {
    pub target: SocketAddr,
    pub url: String,
    /// `None`: idle, hold the connection.
    pub interval: Option<Duration>,
    pub jitter: bool,
    /// Latencies of messages due before this are not recorded (ramp).
    pub measure_from: Instant,
    pub stop_at: Instant,
    /// The contact name given: it ends up in the report mail's subject, so a
    /// mail sink can tell groups of visitors apart.
    pub name: String,
    /// Churn: messages per session before it ends and a new one opens.
    pub churn: Option<u64>,
    /// Idle sessions all send one message together once every session of
    /// this process is ready (lines up their inactivity deadlines).
    pub sync_message: Option<Arc<Barrier>>,
    /// Bounds the handshakes in flight.
    pub connect_gate: Arc<Semaphore>,
    pub stats: Arc<Stats>,
}

/// The frames we look at; the rest of each frame is skipped.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    client_msg_id: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

enum Next {
    Frame(Incoming),
    Closed,
}

/// Runs one visitor from its first SYN to the end of the run.
pub async fn run(plan: Arc<Plan>, n: u64, source: Option<IpAddr>, start: Instant) {
    sleep_until(start).await;
    let ws = connect(&plan, source).await;
    if let Some(barrier) = &plan.sync_message {
        // Every visitor reaches the barrier, connected or not, or it never opens.
        barrier.wait().await;
    }
    let Some(mut ws) = ws else { return };
    let mut k = 0;
    let outcome = match (plan.interval, plan.churn) {
        (Some(interval), Some(messages)) => {
            return churn(&plan, ws, n, source, interval, messages).await;
        }
        (Some(interval), None) => chat(&plan, &mut ws, n, interval, None, &mut k)
            .await
            .map(|_| ()),
        (None, _) => idle(&plan, &mut ws, n).await,
    };
    if outcome.is_ok() {
        close(&mut ws).await;
    }
}

async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// Opens a session (upgrade, `session` frame, contact), counting it.
async fn connect(plan: &Plan, source: Option<IpAddr>) -> Option<Ws> {
    let stats = &plan.stats;
    let _permit = plan.connect_gate.acquire().await.ok();
    let began = Instant::now();
    Stats::count(&stats.connects);
    match open(plan, source).await {
        Ok(ws) => {
            stats.record_ready(began.elapsed());
            Some(ws)
        }
        Err(err) => {
            Stats::count(&stats.connect_failures);
            stats.error(&format!("connect:{}", classify(&err)));
            None
        }
    }
}

/// Churn: a session chats `messages` times, then ends — with `end` on every
/// other cycle, else by disconnecting and leaving the session to the server's
/// inactivity timeout — and the slot opens a new session, until the run is
/// over. Sessions, timers and registry entries come and go all the time.
async fn churn(
    plan: &Plan,
    mut ws: Ws,
    n: u64,
    source: Option<IpAddr>,
    interval: Duration,
    messages: u64,
) {
    let stats = &plan.stats;
    let mut k = 0;
    // Neighbouring slots start on opposite ways of ending.
    for cycle in n.. {
        match chat(plan, &mut ws, n, interval, Some(messages), &mut k).await {
            Err(_) => return,
            Ok(ChatEnd::RunOver) => return close(&mut ws).await,
            Ok(ChatEnd::Ended) => {}
            Ok(ChatEnd::Done) if cycle % 2 == 0 => {
                if let Err(err) = end_session(plan, &mut ws).await {
                    stats.protocol_error(&classify(&err));
                    return;
                }
            }
            Ok(ChatEnd::Done) => Stats::count(&stats.abandoned),
        }
        close(&mut ws).await;
        if Instant::now() >= plan.stop_at {
            return;
        }
        match connect(plan, source).await {
            Some(next) => ws = next,
            None => return,
        }
    }
}

/// Sends `end` and waits for `ended`.
async fn end_session(plan: &Plan, ws: &mut Ws) -> anyhow::Result<()> {
    ws.send(Message::text(r#"{"type":"end"}"#))
        .await
        .map_err(|e| anyhow::anyhow!("send: {e}"))?;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        match next_frame(ws, deadline).await? {
            Next::Frame(f) if f.kind == "ended" => {
                Stats::count(&plan.stats.ended);
                return Ok(());
            }
            Next::Frame(f) => unexpected(&plan.stats, &f),
            Next::Closed => anyhow::bail!("closed: waiting for ended"),
        }
    }
}

fn classify(err: &anyhow::Error) -> String {
    let text = err.to_string();
    let kind = text.split(':').next().unwrap_or("other");
    kind.chars().take(40).collect()
}

async fn open(plan: &Plan, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4().map_err(|e| anyhow::anyhow!("socket: {e}"))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| anyhow::anyhow!("bind: {e}"))?;
    }
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let stream = timeout_at(deadline, socket.connect(plan.target))
        .await
        .map_err(|_| anyhow::anyhow!("connect timeout"))?
        .map_err(|e| anyhow::anyhow!("tcp: {e}"))?;
    stream.set_nodelay(true)?;
    // Small buffers: thousands of these live in one process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(plan.url.as_str(), stream, Some(config)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("upgrade timeout"))?
    .map_err(|e| anyhow::anyhow!("upgrade: {e}"))?;
    match next_frame(&mut ws, deadline).await? {
        Next::Frame(f) if f.kind == "session" => {}
        Next::Frame(f) => anyhow::bail!("first frame: expected session, got {}", f.kind),
        Next::Closed => anyhow::bail!("closed: before the session frame"),
    }
    let contact = serde_json::json!({
        "type": "contact",
        "name": plan.name,
        "email": "load@example.com",
        "phone": "+91 98765 43210",
        "organization": "Loadgen Pvt Ltd",
    });
    ws.send(Message::text(contact.to_string()))
        .await
        .map_err(|e| anyhow::anyhow!("send: {e}"))?;
    match next_frame(&mut ws, deadline).await? {
        Next::Frame(f) if f.kind == "contact_ok" => Ok(ws),
        Next::Frame(f) => anyhow::bail!(
            "contact: expected contact_ok, got {} {}",
            f.kind,
            f.code.unwrap_or_default()
        ),
        Next::Closed => anyhow::bail!("closed: before contact_ok"),
    }
}

/// The next text frame, answering nothing itself: tungstenite queues pongs
/// to the server's pings and flushes them on the next read or write.
async fn next_frame(ws: &mut Ws, deadline: Instant) -> anyhow::Result<Next> {
    loop {
        let msg = match timeout_at(deadline, ws.next()).await {
            Err(_) => anyhow::bail!("timeout: no frame"),
            Ok(None) => return Ok(Next::Closed),
            Ok(Some(Err(e))) => anyhow::bail!("ws: {e}"),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(text) => {
                let frame: Incoming = serde_json::from_str(text.as_str())
                    .map_err(|e| anyhow::anyhow!("json: {e}"))?;
                return Ok(Next::Frame(frame));
            }
            Message::Close(_) => return Ok(Next::Closed),
            Message::Binary(_) => anyhow::bail!("binary: frame from the server"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Holds the connection until the end of the run, sending one synchronised
/// message first when asked to.
async fn idle(plan: &Plan, ws: &mut Ws, n: u64) -> anyhow::Result<()> {
    let stats = &plan.stats;
    if plan.sync_message.is_some() {
        // Recorded whatever the warm-up: these are the figures of the burst.
        let due = Instant::now().max(plan.measure_from);
        if let Err(err) = exchange(plan, ws, n, 0, due).await {
            stats.protocol_error(&classify(&err));
            return Err(err);
        }
    }
    loop {
        match next_frame(ws, plan.stop_at).await {
            Err(_) if Instant::now() >= plan.stop_at => return Ok(()),
            Err(err) => {
                stats.protocol_error(&classify(&err));
                return Err(err);
            }
            Ok(Next::Closed) => {
                stats.protocol_error("closed");
                return Err(anyhow::anyhow!("closed"));
            }
            Ok(Next::Frame(f)) if f.kind == "ended" => {
                Stats::count(&stats.ended);
                return Ok(());
            }
            Ok(Next::Frame(f)) => unexpected(stats, &f),
        }
    }
}

/// How a stretch of chatting came to an end.
enum ChatEnd {
    /// The run is over.
    RunOver,
    /// The server ended the session.
    Ended,
    /// The session sent the messages it was to send.
    Done,
}

/// Sends a message every `interval` (±50 % with jitter) until the run is
/// over or, with `limit`, after that many messages. `k` numbers the
/// messages of this visitor (their `client_msg_id`s).
async fn chat(
    plan: &Plan,
    ws: &mut Ws,
    n: u64,
    interval: Duration,
    limit: Option<u64>,
    k: &mut u64,
) -> anyhow::Result<ChatEnd> {
    let stats = &plan.stats;
    let spread = |rng: &mut rand::rngs::ThreadRng| {
        if plan.jitter {
            interval.mul_f64(rng.random_range(0.5..1.5))
        } else {
            interval
        }
    };
    // A random phase so that sessions do not send in lockstep.
    let mut due = Instant::now() + interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut sent = 0u64;
    while due < plan.stop_at {
        if limit.is_some_and(|l| sent >= l) {
            return Ok(ChatEnd::Done);
        }
        // Wait for the due time, while watching for anything the server pushes.
        loop {
            match timeout_at(due, next_frame(ws, due + ANSWER_TIMEOUT)).await {
                Err(_) => break,
                Ok(Ok(Next::Frame(f))) if f.kind == "ended" => {
                    Stats::count(&stats.ended);
                    return Ok(ChatEnd::Ended);
                }
                Ok(Ok(Next::Frame(f))) => unexpected(stats, &f),
                Ok(Ok(Next::Closed)) => {
                    stats.protocol_error("closed");
                    return Err(anyhow::anyhow!("closed"));
                }
                Ok(Err(err)) => {
                    stats.protocol_error(&classify(&err));
                    return Err(err);
                }
            }
        }
        *k += 1;
        sent += 1;
        if let Err(err) = exchange(plan, ws, n, *k, due).await {
            stats.protocol_error(&classify(&err));
            return Err(err);
        }
        due += spread(&mut rand::rng());
    }
    Ok(ChatEnd::RunOver)
}

fn unexpected(stats: &Stats, f: &Incoming) {
    match f.kind.as_str() {
        "error" => stats.error(f.code.as_deref().unwrap_or("error")),
        other => stats.protocol_error(&format!("unexpected_{other}")),
    }
}

/// One message and its answer: `ack` (with our id) then the bot's message.
/// A late send's latency runs from `due` (coordinated omission: the wait is
/// part of what a visitor would see); an on-time one's from the actual send.
async fn exchange(plan: &Plan, ws: &mut Ws, n: u64, k: u64, due: Instant) -> anyhow::Result<()> {
    let stats = &plan.stats;
    let now = Instant::now();
    let lag = now.saturating_duration_since(due);
    let clock_from = if lag > LATE {
        stats.record_lag(lag);
        due
    } else {
        now
    };
    let id = format!("{n}-{k}");
    let text = QUESTIONS[((n + k) % QUESTIONS.len() as u64) as usize];
    // Written out directly: the questions need no JSON escaping, and a
    // generator's own CPU is CPU the server does not get.
    let frame = format!(r#"{{"type":"message","text":"{text}","client_msg_id":"{id}"}}"#);
    ws.send(Message::text(frame))
        .await
        .map_err(|e| anyhow::anyhow!("send: {e}"))?;
    Stats::count(&stats.sent);
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut acked = false;
    loop {
        let f = match next_frame(ws, deadline).await? {
            Next::Frame(f) => f,
            Next::Closed => anyhow::bail!("closed: waiting for an answer"),
        };
        match (f.kind.as_str(), f.role.as_deref()) {
            ("ack", _) if f.client_msg_id.as_deref() == Some(id.as_str()) => {
                Stats::count(&stats.acks);
                acked = true;
            }
            ("message", Some("bot")) if acked => {
                Stats::count(&stats.answers);
                if due >= plan.measure_from {
                    stats.record_latency(clock_from.elapsed());
                }
                return Ok(());
            }
            ("message", Some("bot")) => anyhow::bail!("order: bot answer before the ack"),
            ("error", _) if f.client_msg_id.as_deref() == Some(id.as_str()) => {
                // Refused (e.g. rate_limited): counted, no answer will come.
                stats.error(f.code.as_deref().unwrap_or("error"));
                return Ok(());
            }
            ("ended", _) => {
                Stats::count(&stats.ended);
                anyhow::bail!("ended: while waiting for an answer");
            }
            _ => unexpected(stats, &f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_need_no_json_escaping() {
        for q in QUESTIONS {
            let encoded = serde_json::to_string(q).expect("encodes");
            assert_eq!(encoded, format!("\"{q}\""), "{q}");
        }
    }
}
