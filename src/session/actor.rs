//! SessionActor: owns one live conversation — contact details, transcript,
//! lead score, the bot's turn, the rate budget and the inactivity timer — and
//! the connections attached to it. Takes `Connect`, `Disconnect`,
//! `VisitorFrame`, `FrameRefused` (a refused frame costs the rate),
//! `EndSession`, `GetTranscript`, `GetView` and `HandOver` (their handlers
//! are in `handlers.rs`, the end of life in `lifecycle.rs`; tabs relayed from
//! other nodes arrive through `relay.rs`). Every visitor event is written to
//! the store before it is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::events::SessionEvent;
use super::messages::*;
use super::registry::SessionRegistry;
use super::view::{SessionView, ViewState};
use crate::bot::ReplyContext;
use crate::domain::{Contact, Role, SessionId, TranscriptEntry};
use crate::events::DomainEvent;
use crate::scoring::{ContactFacts, LeadScore, LeadTracker};
use crate::store::{LeadRecord, SessionUpdate, StoredSession};
use crate::telemetry::names;
use crate::wire::{ErrorCode, HistoryLine, ServerFrame};

/// Lines in one `history` page (PROTOCOL §2 "Bounds").
const HISTORY_PAGE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    Live,
    Finalizing,
    Ended,
}

pub struct SessionActor {
    pub(super) id: SessionId,
    pub(super) registry: Arc<SessionRegistry>,
    pub(super) contact: Contact,
    pub(super) contact_collected: bool,
    pub(super) tracker: LeadTracker,
    pub(super) score: LeadScore,
    pub(super) total_queries: u32,
    pub(super) transcript: Vec<TranscriptEntry>,
    /// Entries up to here are in the store.
    pub(super) persisted: usize,
    /// Nothing of this actor's is in the store yet (see `SessionUpdate`).
    first_write: bool,
    /// The signals changed since the last write.
    signals_dirty: bool,
    acked: HashMap<Box<str>, u64>,
    pub(super) connections: Vec<(u64, Recipient<SocketFrame>)>,
    pub(super) first_interaction: DateTime<Utc>,
    pub(super) last_interaction: DateTime<Utc>,
    pub(super) timer: Option<SpawnHandle>,
    limiter: DefaultDirectRateLimiter,
    pub(super) state: Lifecycle,
    /// Whoever asked to end the session and waits for its report.
    pub(super) report_waiter: Option<tokio::sync::oneshot::Sender<crate::report::ReportOutcome>>,
}

impl SessionActor {
    /// A brand-new session, opened by the bot's greeting when there is one.
    pub fn fresh(id: SessionId, registry: Arc<SessionRegistry>) -> Self {
        let now = Utc::now();
        let deps = registry.deps();
        let mut actor = Self::empty(id, Arc::clone(&registry), now);
        if let Some(greeting) = deps.responder.greeting() {
            actor.push_entry(Role::Bot, greeting.to_owned(), now, None);
        }
        actor.score = deps.engine.evaluate(&actor.tracker, now);
        actor
    }

    /// A session rebuilt from the store after a restart or on another node:
    /// the transcript is replayed through the scorer so the score is exactly
    /// what it was live.
    pub fn restore(stored: StoredSession, registry: Arc<SessionRegistry>) -> Self {
        let now = Utc::now();
        let first = stored
            .first_interaction
            .or(stored.entries.first().map(|e| e.at))
            .unwrap_or(now);
        let mut actor = Self::empty(stored.id, registry, first);
        actor.last_interaction = stored.last_interaction.unwrap_or(first);
        actor.contact = stored.contact;
        actor.contact_collected = stored.contact_collected;
        actor.transcript = stored.entries;
        actor.persisted = actor.transcript.len();
        for entry in &actor.transcript {
            if let (Role::User, Some(id)) = (entry.role, &entry.client_msg_id) {
                actor.acked.insert(id.as_str().into(), entry.seq);
            }
        }
        actor.replay_score();
        actor
    }

    /// Rebuilds the tracker, the score and the query count from the contact
    /// and the transcript, as scoring them live did.
    fn replay_score(&mut self) {
        let engine = self.registry.deps().engine.clone();
        self.tracker = LeadTracker::new(self.first_interaction);
        if self.contact_collected {
            engine.observe_contact(&mut self.tracker, &facts(&self.contact));
        }
        self.total_queries = 0;
        for entry in &self.transcript {
            match entry.role {
                Role::User => {
                    engine.observe_visitor(&mut self.tracker, &entry.text, entry.at);
                    self.total_queries += 1;
                }
                Role::Bot => engine.observe_bot(&mut self.tracker, &entry.text, entry.at),
            }
        }
        self.score = engine.evaluate(&self.tracker, self.last_interaction);
        self.signals_dirty = true;
    }

    fn empty(id: SessionId, registry: Arc<SessionRegistry>, now: DateTime<Utc>) -> Self {
        let rate = registry.deps().rate;
        let period = rate.per / rate.frames;
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .expect("period is non-zero")
            .allow_burst(std::num::NonZeroU32::new(rate.frames).expect("validated non-zero"));
        Self {
            id,
            registry,
            contact: Contact::default(),
            contact_collected: false,
            tracker: LeadTracker::new(now),
            score: LeadScore::default(),
            total_queries: 0,
            transcript: Vec::new(),
            persisted: 0,
            first_write: true,
            signals_dirty: true,
            acked: HashMap::new(),
            connections: Vec::new(),
            first_interaction: now,
            last_interaction: now,
            timer: None,
            limiter: RateLimiter::direct(quota),
            state: Lifecycle::Live,
            report_waiter: None,
        }
    }

    fn push_entry(
        &mut self,
        role: Role,
        text: String,
        at: DateTime<Utc>,
        client_msg_id: Option<String>,
    ) -> u64 {
        let seq = self.transcript.last().map_or(1, |e| e.seq + 1);
        self.transcript.push(TranscriptEntry {
            seq,
            role,
            text,
            at,
            client_msg_id,
        });
        seq
    }

    pub(super) fn send_to(&self, conn_id: u64, text: ByteString) {
        if let Some((_, socket)) = self.connections.iter().find(|(id, _)| *id == conn_id) {
            deliver(
                socket,
                SocketFrame {
                    text,
                    ended: false,
                    close: None,
                },
            );
        }
    }

    pub(super) fn broadcast(&self, text: &ByteString, ended: bool, except: Option<u64>) {
        for (id, socket) in &self.connections {
            if Some(*id) != except {
                deliver(
                    socket,
                    SocketFrame {
                        text: text.clone(),
                        ended,
                        close: None,
                    },
                );
            }
        }
    }

    /// `Err` with the wait until the next frame is allowed.
    pub(super) fn take_frame_budget(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    pub(super) fn refuse(
        &self,
        conn_id: u64,
        code: ErrorCode,
        message: &str,
        client_msg_id: Option<&str>,
        retry_after: Option<Duration>,
    ) {
        metrics::counter!(names::FRAMES_REFUSED, "code" => code.as_str()).increment(1);
        let frame = ServerFrame::Error {
            code,
            message,
            field: None,
            client_msg_id,
            retry_after_ms: retry_after.map(|d| d.as_millis().max(1) as u64),
        };
        self.send_to(conn_id, frame.encode());
    }

    /// The store write for everything that changed since the last one.
    fn update(&self, contact_changed: bool) -> SessionUpdate {
        SessionUpdate {
            id: self.id,
            contact: contact_changed.then(|| self.contact.clone()),
            new_entries: self.transcript[self.persisted..].to_vec(),
            lead: LeadRecord {
                score: self.score.clone(),
                total_queries: self.total_queries,
            },
            first_interaction: self.first_interaction,
            last_interaction: self.last_interaction,
            deadline: self.last_interaction
                + chrono::Duration::from_std(self.registry.deps().inactivity_timeout)
                    .unwrap_or_default(),
            node: self.registry.deps().node.clone(),
            first_write: self.first_write,
            signals_changed: self.signals_dirty,
        }
    }

    /// Writes `update`, then runs `done` (acks, replies). Waits in the actor
    /// so events of one session are stored and answered in order. A failed
    /// write rolls the in-memory state back to what the store holds, so a
    /// resend is handled as new.
    fn persist_then(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: u64,
        client_msg_id: Option<String>,
        contact_changed: bool,
        undo: Undo,
        done: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let update = self.update(contact_changed);
        let store = Arc::clone(&self.registry.deps().store);
        let written = update.new_entries.len();
        let fut = async move { store.persist(&update).await };
        ctx.wait(fut.into_actor(self).map(move |result, act, ctx| match result {
            Ok(()) => {
                let new_from = act.persisted;
                act.persisted += written;
                act.first_write = false;
                act.signals_dirty = false;
                done(act, ctx);
                act.publish(new_from);
            }
            Err(err) => {
                tracing::warn!(session_id = %act.id, error = %err, "store write failed; event not acknowledged");
                act.rollback(undo);
                act.refuse(conn_id, ErrorCode::Unavailable, "could not save; please resend", client_msg_id.as_deref(), Some(Duration::from_secs(1)));
            }
        }));
    }

    /// After a failed write: back to what the store holds. The score is
    /// replayed rather than kept from before, so a chat turn need not copy
    /// the scoring state for a failure that almost never happens.
    fn rollback(&mut self, undo: Undo) {
        self.transcript.truncate(self.persisted);
        if let Some((contact, collected)) = undo.contact {
            self.contact = contact;
            self.contact_collected = collected;
        }
        self.last_interaction = undo.last_interaction;
        if let Some(id) = undo.client_msg_id {
            self.acked.remove(id.as_str());
        }
        self.replay_score();
    }

    pub(super) fn on_contact(&mut self, ctx: &mut Context<Self>, conn_id: u64, contact: Contact) {
        let before = Undo {
            contact: Some((self.contact.clone(), self.contact_collected)),
            last_interaction: self.last_interaction,
            client_msg_id: None,
        };
        let now = Utc::now();
        let was = Announced::before(self);
        self.contact = contact;
        self.contact_collected = true;
        self.last_interaction = now;
        let deps = Arc::clone(self.registry.deps());
        deps.engine
            .observe_contact(&mut self.tracker, &facts(&self.contact));
        self.rescore(now);
        self.reset_inactivity_timer(ctx);
        self.persist_then(ctx, conn_id, None, true, before, move |act, _| {
            act.send_to(conn_id, ServerFrame::ContactOk.encode());
            act.announce(was, true, now);
        });
    }

    pub(super) fn on_message(
        &mut self,
        ctx: &mut Context<Self>,
        conn_id: u64,
        text: String,
        client_msg_id: Option<String>,
    ) {
        if let Some(seq) = client_msg_id.as_deref().and_then(|id| self.acked.get(id)) {
            // A resend of something already stored: ack it again, nothing else.
            let ack = ServerFrame::Ack {
                client_msg_id: client_msg_id.as_deref(),
                seq: *seq,
            };
            self.send_to(conn_id, ack.encode());
            return;
        }
        if self.total_queries >= self.registry.deps().bounds.max_messages {
            self.refuse(
                conn_id,
                ErrorCode::SessionFull,
                "this chat has reached its message limit; our team will be in touch",
                client_msg_id.as_deref(),
                None,
            );
            return;
        }
        let before = Undo {
            contact: None,
            last_interaction: self.last_interaction,
            client_msg_id: client_msg_id.clone(),
        };
        let deps = Arc::clone(self.registry.deps());
        let now = Utc::now();
        let was = Announced::before(self);
        self.total_queries += 1;
        self.last_interaction = now;
        let reply = deps.responder.reply(&ReplyContext {
            text: &text,
            contact_collected: self.contact_collected,
            visitor_messages: self.total_queries,
        });
        deps.engine.observe_visitor(&mut self.tracker, &text, now);
        deps.engine.observe_bot(&mut self.tracker, &reply, now);
        let user_seq = self.push_entry(Role::User, text, now, client_msg_id.clone());
        let bot_seq = self.push_entry(Role::Bot, reply, now, None);
        if let Some(id) = &client_msg_id {
            self.acked.insert(id.as_str().into(), user_seq);
        }
        self.rescore(now);
        self.reset_inactivity_timer(ctx);
        metrics::counter!(names::MESSAGES).increment(1);
        let received = std::time::Instant::now();
        self.persist_then(
            ctx,
            conn_id,
            client_msg_id.clone(),
            false,
            before,
            move |act, _| {
                let ack = ServerFrame::Ack {
                    client_msg_id: client_msg_id.as_deref(),
                    seq: user_seq,
                };
                act.send_to(conn_id, ack.encode());
                let entry_text = |seq: u64| act.transcript.iter().rev().find(|e| e.seq == seq);
                if let Some(user) = entry_text(user_seq) {
                    // Other tabs of the same visitor see the message too.
                    let echo = ServerFrame::Message {
                        role: Role::User,
                        seq: user.seq,
                        text: &user.text,
                        at: user.at,
                    };
                    act.broadcast(&echo.encode(), false, Some(conn_id));
                }
                if let Some(bot) = entry_text(bot_seq) {
                    let frame = ServerFrame::Message {
                        role: Role::Bot,
                        seq: bot.seq,
                        text: &bot.text,
                        at: bot.at,
                    };
                    act.broadcast(&frame.encode(), false, None);
                }
                metrics::histogram!(names::REPLY_LATENCY).record(received.elapsed().as_secs_f64());
                act.announce(was, false, now);
            },
        );
    }

    /// The domain events of a visitor event now stored: the session's
    /// start, the contact details, a new priority.
    fn announce(&self, was: Announced, contact: bool, at: DateTime<Utc>) {
        let events = &self.registry.deps().events;
        let session_id = self.id.to_string();
        if !was.active {
            events.domain(DomainEvent::SessionStarted {
                session_id: session_id.clone(),
                channel: "web",
                at,
            });
        }
        if contact {
            events.domain(DomainEvent::ContactCollected {
                session_id: session_id.clone(),
                contact: self.contact.clone(),
                at,
            });
        }
        if was.priority != self.score.priority {
            events.domain(DomainEvent::PriorityChanged {
                session_id,
                from: was.priority,
                to: self.score.priority,
                lead_score: self.score.lead_score,
                signals: self.score.signals.clone(),
                at,
            });
        }
    }

    fn rescore(&mut self, now: DateTime<Utc>) {
        let engine = &self.registry.deps().engine;
        let score = engine.evaluate(&self.tracker, now);
        if score.priority != self.score.priority {
            tracing::info!(
                session_id = %self.id,
                from = self.score.priority.as_str(),
                to = score.priority.as_str(),
                lead_score = score.lead_score,
                signals = ?score.signals.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                "lead priority changed"
            );
        }
        if score.signals != self.score.signals {
            self.signals_dirty = true;
        }
        self.score = score;
    }

    /// Tells the admin feed how the session looks now, with no new lines
    /// (it was connected, left, or restored).
    pub(super) fn publish_view(&self) {
        self.publish(self.transcript.len());
    }

    /// Tells the admin feed how the session looks now, with the transcript
    /// lines from `new_from` on, while anybody watches. Sessions nobody has
    /// said anything in stay off the sales team's screen.
    pub(super) fn publish(&self, new_from: usize) {
        let deps = self.registry.deps();
        if !deps.events.views_wanted() {
            return;
        }
        let Some(view) = self.view() else {
            return;
        };
        let new_entries = self.transcript.get(new_from..).unwrap_or_default().to_vec();
        deps.events
            .send(SessionEvent::Changed { view, new_entries });
    }

    /// The SESSION of PROTOCOL §4, once there is anything to show.
    pub(super) fn view(&self) -> Option<SessionView> {
        /// Orders views of one session: a later view has a higher number.
        static REVISION: AtomicU64 = AtomicU64::new(1);
        if !self.has_activity() {
            return None;
        }
        Some(SessionView {
            session_id: self.id.to_string(),
            name: self.contact.name().map(str::to_owned),
            email: self.contact.email().map(str::to_owned),
            phone: self.contact.phone().map(str::to_owned),
            organization: self.contact.organization().map(str::to_owned),
            lead_score: self.score.lead_score,
            priority: self.score.priority,
            engagement_score: self.score.engagement_score,
            total_queries: self.total_queries,
            first_interaction: self.first_interaction,
            last_interaction: self.last_interaction,
            state: if self.connections.is_empty() {
                ViewState::Away
            } else {
                ViewState::Active
            },
            node: self.registry.deps().node.clone(),
            signals: self.score.signals.clone(),
            rev: REVISION.fetch_add(1, Ordering::Relaxed),
        })
    }

    pub(super) fn has_activity(&self) -> bool {
        self.contact_collected || self.total_queries > 0
    }

    /// The `session` frame: the last `limits.history_replay` lines, and
    /// whether older ones exist.
    pub(super) fn session_frame(&self, resumed: bool, previous: Option<&str>) -> ByteString {
        let replay = self.registry.deps().bounds.history_replay;
        let from = self.transcript.len().saturating_sub(replay);
        ServerFrame::Session {
            session_id: self.id.to_string(),
            resumed,
            contact_collected: self.contact_collected,
            previous_session_id: previous,
            history: self.transcript[from..]
                .iter()
                .map(HistoryLine::from)
                .collect(),
            history_truncated: from > 0,
        }
        .encode()
    }

    /// A `history` page: the `HISTORY_PAGE` lines before `before_seq`.
    pub(super) fn history_page(&self, before_seq: u64) -> ByteString {
        let end = self.transcript.partition_point(|e| e.seq < before_seq);
        let start = end.saturating_sub(HISTORY_PAGE);
        ServerFrame::History {
            lines: self.transcript[start..end]
                .iter()
                .map(HistoryLine::from)
                .collect(),
            complete: start == 0,
        }
        .encode()
    }
}

/// Queues a frame for a socket without letting a socket that stopped
/// reading hoard them: its mailbox is bounded (`SOCKET_MAILBOX`), and past
/// it the frame is dropped — the kernel's write deadline closes such a
/// socket soon, and a resume replays what it missed.
pub(super) fn deliver(socket: &Recipient<SocketFrame>, frame: SocketFrame) {
    let ended = frame.ended;
    if let Err(SendError::Full(frame)) = socket.try_send(frame) {
        metrics::counter!(names::SOCKET_FRAMES_DROPPED).increment(1);
        if ended {
            // The end must get through: the socket stops sending after it.
            socket.do_send(frame);
        }
    }
}

/// What a failed store write undoes besides the unwritten lines.
pub(super) struct Undo {
    /// The contact before a contact frame.
    contact: Option<(Contact, bool)>,
    last_interaction: DateTime<Utc>,
    client_msg_id: Option<String>,
}

pub(super) fn facts(c: &Contact) -> ContactFacts<'_> {
    ContactFacts {
        name: c.name(),
        email: c.email(),
        phone: c.phone(),
        organization: c.organization(),
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(names::LIVE_SESSIONS).increment(1.0);
        self.start_inactivity_timer(ctx);
        // A session restored after a restart or a move reappears on screens.
        self.publish_view();
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(names::LIVE_SESSIONS).decrement(1.0);
        self.registry.remove(self.id, &ctx.address());
    }
}

/// What a visitor event is compared with once it is stored.
#[derive(Debug, Clone, Copy)]
struct Announced {
    active: bool,
    priority: crate::scoring::Priority,
}

impl Announced {
    fn before(session: &SessionActor) -> Self {
        Self {
            active: session.has_activity(),
            priority: session.score.priority,
        }
    }
}
