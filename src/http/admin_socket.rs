//! AdminSocket: one admin feed connection (`GET /admin/ws`). Subscribes to
//! the AdminFeed, forwards its frames, and lets the admin watch one session's
//! transcript (`{"type":"watch","session_id":…}`, `{"type":"unwatch"}`).
//! Takes `AdminFrame`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use serde::{Deserialize, Serialize};

use crate::admin::{AdminFeed, AdminFrame, ListLive, Subscribe, Unsubscribe, Watch};
use crate::archive::Archive;
use crate::domain::{Role, SessionId, TranscriptEntry};
use crate::session::{GetTranscript, SessionRegistry};
use crate::wire::{ErrorCode, ServerFrame};

const HEARTBEAT: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AdminSocket {
    pub id: u64,
    pub feed: Addr<AdminFeed>,
    pub registry: Arc<SessionRegistry>,
    pub archive: Archive,
    last_seen: Instant,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AdminCommand {
    Watch { session_id: String },
    Unwatch,
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    role: Role,
    text: &'a str,
    at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "transcript")]
struct TranscriptFrame<'a> {
    session_id: &'a str,
    live: bool,
    history: Vec<Line<'a>>,
}

impl AdminSocket {
    pub fn new(
        id: u64,
        feed: Addr<AdminFeed>,
        registry: Arc<SessionRegistry>,
        archive: Archive,
    ) -> Self {
        Self {
            id,
            feed,
            registry,
            archive,
            last_seen: Instant::now(),
        }
    }

    /// Starts following a session: the feed first (so no line is missed),
    /// then the history from the live actor or the archive.
    fn watch(&mut self, ctx: &mut ws::WebsocketContext<Self>, raw: String) {
        let Some(id) = SessionId::parse(&raw) else {
            ctx.text(ServerFrame::error(ErrorCode::NotFound, "no such session"));
            return;
        };
        self.feed.do_send(Watch {
            subscriber: self.id,
            session_id: Some(id.to_string()),
        });
        let live = self.registry.get(id);
        let archive = self.archive.clone();
        let feed = self.feed.clone();
        let fetch = async move {
            if let Some(addr) = live
                && let Ok(history) = addr.send(GetTranscript).await
            {
                return Some((true, history));
            }
            let Some(detail) = archive.get_session(&id.to_string()).await.ok().flatten() else {
                // Live on another node: its new lines arrive from now on.
                let elsewhere = feed
                    .send(ListLive)
                    .await
                    .ok()?
                    .iter()
                    .any(|s| s.session_id == id.to_string());
                return elsewhere.then(|| (true, Vec::new()));
            };
            let history = detail
                .session
                .messages
                .into_iter()
                .map(|m| TranscriptEntry {
                    seq: u64::try_from(m.seq).unwrap_or(0),
                    role: m.role,
                    text: m.text,
                    at: m.at,
                    client_msg_id: None,
                })
                .collect();
            Some((false, history))
        };
        ctx.spawn(
            fetch
                .into_actor(self)
                .map(move |found, _, ctx| match found {
                    Some((live, history)) => {
                        let frame = TranscriptFrame {
                            session_id: &id.to_string(),
                            live,
                            history: history
                                .iter()
                                .map(|e| Line {
                                    seq: e.seq,
                                    role: e.role,
                                    text: &e.text,
                                    at: e.at,
                                })
                                .collect(),
                        };
                        ctx.text(serde_json::to_string(&frame).unwrap_or_default());
                    }
                    None => ctx.text(ServerFrame::error(ErrorCode::NotFound, "no such session")),
                }),
        );
    }
}

impl Actor for AdminSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        super::close_on_shutdown(&self.registry.deps().shutdown, self, ctx);
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_seen.elapsed() > CLIENT_TIMEOUT {
                ctx.close(Some(CloseReason {
                    code: CloseCode::Away,
                    description: Some("admin client timeout".into()),
                }));
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        let subscribe = Subscribe {
            subscriber: self.id,
            socket: ctx.address().recipient(),
        };
        ctx.wait(self.feed.send(subscribe).into_actor(self).map(
            |snapshot, _, ctx| match snapshot {
                Ok(frame) => ctx.text(frame),
                Err(_) => ctx.stop(),
            },
        ));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.feed.do_send(Unsubscribe {
            subscriber: self.id,
        });
    }
}

impl Handler<AdminFrame> for AdminSocket {
    type Result = ();

    fn handle(&mut self, msg: AdminFrame, ctx: &mut Self::Context) {
        for frame in msg.0 {
            ctx.text(frame);
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for AdminSocket {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => match serde_json::from_str::<AdminCommand>(&text) {
                Ok(AdminCommand::Watch { session_id }) => self.watch(ctx, session_id),
                Ok(AdminCommand::Unwatch) => self.feed.do_send(Watch {
                    subscriber: self.id,
                    session_id: None,
                }),
                Err(_) => ctx.text(ServerFrame::error(
                    ErrorCode::BadFrame,
                    "expected {\"type\":\"watch\",\"session_id\":…} or {\"type\":\"unwatch\"}",
                )),
            },
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}
