//! The SessionActor's message handlers: connections attach and leave,
//! visitor frames, the end of the session, a handover to another node.

use actix::prelude::*;
use bytestring::ByteString;

use super::actor::{Lifecycle, SessionActor};
use super::messages::*;
use crate::domain::EndReason;
use crate::wire::ErrorCode;

impl Handler<Connect> for SessionActor {
    type Result = Result<ByteString, SessionGone>;

    fn handle(&mut self, msg: Connect, _ctx: &mut Self::Context) -> Self::Result {
        if self.state != Lifecycle::Live || (msg.only_if_attached && self.connections.is_empty()) {
            return Err(SessionGone);
        }
        let limit = self.registry.deps().bounds.connections_per_session;
        while self.connections.len() >= limit {
            // The oldest socket makes room: most likely a forgotten tab.
            let (conn_id, socket) = self.connections.remove(0);
            tracing::debug!(session_id = %self.id, conn_id, "too many sockets; closing the oldest");
            metrics::counter!(crate::telemetry::names::FRAMES_REFUSED, "code" => ErrorCode::TooManyConnections.as_str()).increment(1);
            socket.do_send(SocketFrame {
                text: crate::wire::ServerFrame::error(
                    ErrorCode::TooManyConnections,
                    "this chat is open in too many windows; this one was closed",
                ),
                ended: false,
                close: Some(SocketClose::Replaced),
            });
        }
        self.connections.push((msg.conn_id, msg.socket));
        if self.connections.len() == 1 {
            self.publish_view();
        }
        Ok(self.session_frame(msg.resumed, msg.previous_session_id.as_deref()))
    }
}

impl Handler<Disconnect> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        self.connections.retain(|(id, _)| *id != msg.conn_id);
        if self.connections.is_empty() && self.state == Lifecycle::Live {
            self.publish_view();
            if !self.has_activity() {
                self.drop_when_abandoned(ctx);
            }
        }
    }
}

impl Handler<HandOver> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: HandOver, ctx: &mut Self::Context) {
        if self.state != Lifecycle::Live {
            return;
        }
        tracing::info!(session_id = %self.id, "session handed over to another node");
        self.state = Lifecycle::Ended;
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        for (_, socket) in self.connections.drain(..) {
            socket.do_send(SocketFrame {
                text: ByteString::new(),
                ended: false,
                close: Some(SocketClose::Moved),
            });
        }
        ctx.stop();
    }
}

impl Handler<GetTranscript> for SessionActor {
    type Result = MessageResult<GetTranscript>;

    fn handle(&mut self, _: GetTranscript, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.transcript.clone())
    }
}

impl Handler<VisitorFrame> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: VisitorFrame, ctx: &mut Self::Context) {
        let conn_id = msg.conn_id;
        let client_msg_id = match &msg.command {
            VisitorCommand::Message { client_msg_id, .. } => client_msg_id.clone(),
            _ => None,
        };
        if self.state != Lifecycle::Live {
            // An end frame while the session is already finishing is answered
            // by the `ended` frame that finish sends; it is not an error.
            if matches!(msg.command, VisitorCommand::End) {
                return;
            }
            self.refuse(
                conn_id,
                ErrorCode::SessionEnded,
                "this session has ended; start a new one",
                client_msg_id.as_deref(),
                None,
            );
            return;
        }
        if let Err(wait) = self.take_frame_budget() {
            self.refuse(
                conn_id,
                ErrorCode::RateLimited,
                "too many messages; slow down",
                client_msg_id.as_deref(),
                Some(wait),
            );
            return;
        }
        match msg.command {
            VisitorCommand::Contact(contact) => self.on_contact(ctx, conn_id, contact),
            VisitorCommand::Message {
                text,
                client_msg_id,
            } => self.on_message(ctx, conn_id, text, client_msg_id),
            VisitorCommand::End => self.finalize(ctx, EndReason::Visitor, None),
            VisitorCommand::History { before_seq } => {
                self.send_to(conn_id, self.history_page(before_seq));
            }
        }
    }
}

impl Handler<FrameRefused> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: FrameRefused, _ctx: &mut Self::Context) {
        // Only the cost matters: the socket has answered the frame already.
        let _ = self.take_frame_budget();
    }
}

impl Handler<EndSession> for SessionActor {
    // A plain future, not an actor future: the answer must outlive the
    // actor, which stops as soon as it has finalized.
    type Result = ResponseFuture<EndOutcome>;

    fn handle(&mut self, msg: EndSession, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.state == Lifecycle::Live {
            self.report_waiter = msg.report_done;
        }
        self.finalize(ctx, msg.reason, Some(tx));
        Box::pin(async move { rx.await.unwrap_or(EndOutcome::AlreadyFinalized) })
    }
}

impl Handler<GetView> for SessionActor {
    type Result = MessageResult<GetView>;

    fn handle(&mut self, _: GetView, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(if self.state == Lifecycle::Live {
            self.view()
        } else {
            None
        })
    }
}
