//! VisitorSocket: one widget WebSocket connection. It parses frames at the
//! edge, answers malformed ones itself, relays the rest to its SessionActor and
//! forwards whatever the session pushes. It owns the heartbeat; the session
//! outlives it. Takes `SocketFrame` and `GuardEvent`s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};

use super::admission::ConnectionTicket;
use super::frame_guard::GuardEvent;
use crate::domain::Contact;
use crate::session::relay::{PEER_CHECK, RelayCommand};
use crate::session::{
    Connect, Disconnect, FrameRefused, OpenedSession, SessionActor, SessionRegistry, SocketClose,
    SocketFrame, Tab, Via, VisitorCommand, VisitorFrame,
};
use crate::telemetry::names;
use crate::wire::{ClientFrame, ErrorCode, ServerFrame};

const MAX_CLIENT_MSG_ID: usize = 128;

/// More refused frames than this within `REFUSED_WINDOW` close the socket
/// (1008): a client that keeps sending garbage is not a widget.
const MAX_REFUSED: usize = 100;
const REFUSED_WINDOW: Duration = Duration::from_secs(10);

/// Closes the oldest socket of a session that got one too many.
const CLOSE_REPLACED: u16 = 4008;

pub struct VisitorSocket {
    pub conn_id: u64,
    pub registry: Arc<SessionRegistry>,
    pub requested: Option<String>,
    pub heartbeat: Duration,
    pub client_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Frees the admission slot when the connection ends.
    _ticket: ConnectionTicket,
    session: Option<SessionLink>,
    ended: bool,
    last_seen: Instant,
    /// When the frames refused within the last `REFUSED_WINDOW` were.
    refused: VecDeque<Instant>,
}

/// Where this socket's session is: an actor here, or another node that
/// keeps it for the visitor's other tab (`session::relay`).
enum SessionLink {
    Local(Addr<SessionActor>),
    Relayed { owner: String },
}

impl SessionLink {
    fn command(&self, registry: &SessionRegistry, conn_id: u64, command: VisitorCommand) {
        match self {
            SessionLink::Local(addr) => addr.do_send(VisitorFrame { conn_id, command }),
            SessionLink::Relayed { owner } => {
                registry
                    .relay()
                    .forward(owner, conn_id, RelayCommand::from(command))
            }
        }
    }

    fn refused(&self, registry: &SessionRegistry, conn_id: u64) {
        match self {
            SessionLink::Local(addr) => addr.do_send(FrameRefused),
            SessionLink::Relayed { owner } => {
                registry
                    .relay()
                    .forward(owner, conn_id, RelayCommand::Refused)
            }
        }
    }

    fn detach(&self, registry: &SessionRegistry, conn_id: u64) {
        match self {
            SessionLink::Local(addr) => addr.do_send(Disconnect { conn_id }),
            SessionLink::Relayed { owner } => registry.relay().close(owner, conn_id),
        }
    }
}

impl VisitorSocket {
    pub fn new(
        conn_id: u64,
        registry: Arc<SessionRegistry>,
        requested: Option<String>,
        limits: &crate::settings::Limits,
        ticket: ConnectionTicket,
    ) -> Self {
        Self {
            conn_id,
            registry,
            requested,
            heartbeat: limits.heartbeat_interval.0,
            client_timeout: limits.client_timeout.0,
            max_frame_bytes: limits.max_frame_bytes,
            _ticket: ticket,
            session: None,
            ended: false,
            last_seen: Instant::now(),
            refused: VecDeque::new(),
        }
    }

    fn refuse(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: ErrorCode, message: &str) {
        metrics::counter!(names::FRAMES_REFUSED, "code" => code.as_str()).increment(1);
        ctx.text(ServerFrame::error(code, message));
        self.count_refused(ctx);
    }

    /// A refused frame costs a frame of the session's rate, and a socket
    /// that keeps sending them is closed.
    fn count_refused(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(session) = &self.session {
            session.refused(&self.registry, self.conn_id);
        }
        let now = Instant::now();
        while self
            .refused
            .front()
            .is_some_and(|t| now.duration_since(*t) > REFUSED_WINDOW)
        {
            self.refused.pop_front();
        }
        self.refused.push_back(now);
        if self.refused.len() > MAX_REFUSED {
            tracing::debug!(conn_id = self.conn_id, "too many refused frames; closing");
            self.refused.clear();
            ctx.close(Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("too many refused frames".into()),
            }));
            ctx.stop();
        }
    }

    /// A relayed tab closes with 1012 when its session's node stops
    /// heartbeating (killed): the widget reconnects, and the session resumes
    /// on whichever live node it lands on.
    fn watch_owner(&self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.run_interval(PEER_CHECK, |act, ctx| {
            let Some(SessionLink::Relayed { owner }) = &act.session else {
                return;
            };
            let owner = owner.clone();
            let store = Arc::clone(&act.registry.deps().store);
            ctx.spawn(
                async move { store.node_alive(&owner).await }
                    .into_actor(act)
                    .map(|alive, act, ctx| {
                        if matches!(alive, Ok(false)) {
                            <Self as Handler<SocketFrame>>::handle(
                                act,
                                SocketFrame {
                                    text: bytestring::ByteString::new(),
                                    ended: false,
                                    close: Some(SocketClose::OwnerGone),
                                },
                                ctx,
                            );
                        }
                    }),
            );
        });
    }

    /// Opens (or resumes) the session and attaches to it before any visitor
    /// frame is handled: frames wait while this runs.
    fn attach(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        requested: Option<String>,
        fresh: bool,
    ) {
        let registry = Arc::clone(&self.registry);
        let tab = Tab {
            conn_id: self.conn_id,
            socket: ctx.address().recipient(),
        };
        let fut = async move {
            if fresh {
                Ok(registry.open_fresh(requested))
            } else {
                registry.open(requested.as_deref(), &tab).await
            }
        };
        ctx.wait(fut.into_actor(self).then(|opened, act, ctx| {
            let opened: OpenedSession = match opened {
                Ok(o) => o,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot open a session: store unavailable");
                    act.refuse(
                        ctx,
                        ErrorCode::Unavailable,
                        "the chat is temporarily unavailable; reconnect shortly",
                    );
                    ctx.close(Some(CloseReason {
                        code: CloseCode::Again,
                        description: None,
                    }));
                    ctx.stop();
                    return futures_util::future::Either::Left(fut::ready(()));
                }
            };
            let addr = match opened.via {
                Via::Local(addr) => addr,
                Via::Relayed { owner, frame } => {
                    act.session = Some(SessionLink::Relayed { owner });
                    ctx.text(frame);
                    act.watch_owner(ctx);
                    return futures_util::future::Either::Left(fut::ready(()));
                }
            };
            let connect = Connect {
                conn_id: act.conn_id,
                socket: ctx.address().recipient(),
                resumed: opened.resumed,
                previous_session_id: opened.previous_session_id.clone(),
                only_if_attached: false,
            };
            futures_util::future::Either::Right(addr.clone().send(connect).into_actor(act).map(
                move |answer, act, ctx| match answer {
                    Ok(Ok(frame)) => {
                        act.session = Some(SessionLink::Local(addr));
                        ctx.text(frame);
                    }
                    // The session ended between lookup and attach: start afresh,
                    // remembering what the visitor asked for.
                    _ => {
                        let previous = opened.previous_session_id.or(Some(opened.id.to_string()));
                        act.attach(ctx, previous, true);
                    }
                },
            ))
        }));
    }

    fn on_text(&mut self, ctx: &mut ws::WebsocketContext<Self>, text: &str) {
        if text.len() > self.max_frame_bytes {
            self.refuse(ctx, ErrorCode::TooLarge, "frame is larger than the limit");
            return;
        }
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(err) => {
                let (code, message) = classify_bad_json(text, &err);
                self.refuse(ctx, code, &message);
                return;
            }
        };
        if self.ended {
            // Ending is idempotent: the visitor already has its `ended` frame
            // (an end frame racing the inactivity timer lands here).
            if matches!(frame, ClientFrame::End) {
                return;
            }
            self.refuse(
                ctx,
                ErrorCode::SessionEnded,
                "this session has ended; start a new one",
            );
            return;
        }
        let command = match frame {
            ClientFrame::Contact {
                name,
                email,
                phone,
                organization,
            } => match Contact::parse(&name, &email, &phone, &organization) {
                Ok(contact) => VisitorCommand::Contact(contact),
                Err(err) => {
                    metrics::counter!(names::FRAMES_REFUSED, "code" => ErrorCode::InvalidContact.as_str()).increment(1);
                    self.count_refused(ctx);
                    let frame = ServerFrame::Error {
                        code: ErrorCode::InvalidContact,
                        message: &err.message,
                        field: Some(err.field.as_str()),
                        client_msg_id: None,
                        retry_after_ms: None,
                    };
                    ctx.text(frame.encode());
                    return;
                }
            },
            ClientFrame::Message {
                text,
                client_msg_id,
            } => {
                if text.trim().is_empty() {
                    self.refuse(ctx, ErrorCode::BadFrame, "`text` must not be empty");
                    return;
                }
                if client_msg_id
                    .as_ref()
                    .is_some_and(|id| id.len() > MAX_CLIENT_MSG_ID)
                {
                    self.refuse(
                        ctx,
                        ErrorCode::BadFrame,
                        "`client_msg_id` is longer than 128 bytes",
                    );
                    return;
                }
                VisitorCommand::Message {
                    text,
                    client_msg_id,
                }
            }
            ClientFrame::End => VisitorCommand::End,
            ClientFrame::History { before_seq } => VisitorCommand::History { before_seq },
        };
        if let Some(session) = &self.session {
            session.command(&self.registry, self.conn_id, command);
        }
    }
}

/// Not JSON or not an object → `bad_frame`; a `type` we do not know →
/// `unknown_type`; a known type with missing or mistyped fields → `bad_frame`.
fn classify_bad_json(text: &str, err: &serde_json::Error) -> (ErrorCode, String) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return (ErrorCode::BadFrame, "frame is not valid JSON".into());
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => (
            ErrorCode::BadFrame,
            "frame must be a JSON object with a string `type`".into(),
        ),
        Some(t @ ("contact" | "message" | "end" | "history")) => {
            (ErrorCode::BadFrame, format!("invalid `{t}` frame: {err}"))
        }
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            (
                ErrorCode::UnknownType,
                format!("unknown frame type {shown:?}"),
            )
        }
    }
}

impl Actor for VisitorSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(names::CONNECTIONS).increment(1.0);
        ctx.set_mailbox_capacity(crate::session::SOCKET_MAILBOX);
        ctx.run_interval(self.heartbeat, |act, ctx| {
            if act.last_seen.elapsed() > act.client_timeout {
                tracing::debug!(
                    conn_id = act.conn_id,
                    "client did not answer pings; closing the connection"
                );
                ctx.close(Some(CloseReason {
                    code: CloseCode::Away,
                    description: Some("client timeout".into()),
                }));
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        // The node is stopping: close at once so the widget reconnects to
        // another node (1012, service restart).
        super::close_on_shutdown(&self.registry.deps().shutdown, self, ctx);
        let requested = self.requested.take();
        self.attach(ctx, requested, false);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::gauge!(names::CONNECTIONS).decrement(1.0);
        if let Some(session) = self.session.take() {
            session.detach(&self.registry, self.conn_id);
        }
    }
}

impl Handler<SocketFrame> for VisitorSocket {
    type Result = ();

    fn handle(&mut self, msg: SocketFrame, ctx: &mut Self::Context) {
        if let Some(close) = msg.close {
            self.session = None;
            if !msg.text.is_empty() {
                ctx.text(msg.text);
            }
            let (code, why) = match close {
                // The session lives on another node now; the widget reconnects.
                SocketClose::Moved => (CloseCode::Again, "session moved; reconnect"),
                SocketClose::Replaced => (
                    CloseCode::Other(CLOSE_REPLACED),
                    "too many connections for this session",
                ),
                SocketClose::OwnerGone => (CloseCode::Restart, "session's node stopped; reconnect"),
            };
            ctx.close(Some(CloseReason {
                code,
                description: Some(why.into()),
            }));
            ctx.stop();
            return;
        }
        ctx.text(msg.text);
        if msg.ended {
            self.ended = true;
            self.session = None;
        }
    }
}

impl StreamHandler<GuardEvent> for VisitorSocket {
    fn handle(&mut self, event: GuardEvent, ctx: &mut Self::Context) {
        match event {
            GuardEvent::TooLarge => {
                self.refuse(ctx, ErrorCode::TooLarge, "frame is larger than the limit")
            }
        }
    }

    // The guard's channel closing says nothing about the connection.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for VisitorSocket {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(ctx, &text),
            Ok(ws::Message::Binary(_)) => self.refuse(
                ctx,
                ErrorCode::BadFrame,
                "binary frames are not part of the protocol",
            ),
            // The frame guard joins fragments into one frame before the
            // codec; a continuation here would be a guard bug.
            Ok(ws::Message::Continuation(_)) => {
                self.refuse(ctx, ErrorCode::BadFrame, "unexpected continuation frame")
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                self.refuse(ctx, ErrorCode::TooLarge, "frame is larger than the limit")
            }
            Err(err) => {
                tracing::debug!(conn_id = self.conn_id, error = %err, "websocket protocol error; closing");
                ctx.close(Some(CloseReason {
                    code: CloseCode::Protocol,
                    description: None,
                }));
                ctx.stop();
            }
        }
    }
}
