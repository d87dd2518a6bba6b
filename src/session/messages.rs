//! Messages the SessionActor takes, and what it pushes to its connections.

use actix::{Message, Recipient};
use bytestring::ByteString;

use crate::domain::{Contact, EndReason};

/// How many `SocketFrame`s a socket's mailbox holds; a session drops frames
/// for a socket past it (one that stopped reading) rather than queue them.
pub const SOCKET_MAILBOX: usize = 64;

/// A ready-to-send text frame for one visitor connection. `ended` tells the
/// connection that its session is gone.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SocketFrame {
    pub text: ByteString,
    pub ended: bool,
    /// Close the socket after `text` (which may be empty).
    pub close: Option<SocketClose>,
}

/// Why the session closes one of its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketClose {
    /// The session lives on another node now: the widget reconnects (1013).
    Moved,
    /// A newer socket took the last of `limits.connections_per_session`
    /// (4008); the widget does not reconnect on its own.
    Replaced,
    /// A relayed tab's session lived on a node that stopped: the widget
    /// reconnects and resumes where it lands (1012).
    OwnerGone,
}

/// A connection attaches to the session; answered with the `session` frame.
#[derive(Debug, Message)]
#[rtype(result = "Result<ByteString, SessionGone>")]
pub struct Connect {
    pub conn_id: u64,
    pub socket: Recipient<SocketFrame>,
    pub resumed: bool,
    pub previous_session_id: Option<String>,
    /// Attach only when the session already has a socket here (a tab on
    /// another node is relayed to a session its other tab keeps here);
    /// else `SessionGone`, and the other node takes the session over.
    pub only_if_attached: bool,
}

/// The session is finalizing or finalized: the connection must open a new one.
#[derive(Debug, Clone, Copy)]
pub struct SessionGone;

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub conn_id: u64,
}

/// A visitor frame, already parsed at the edge.
#[derive(Debug)]
pub enum VisitorCommand {
    Contact(Contact),
    Message {
        text: String,
        client_msg_id: Option<String>,
    },
    End,
    /// A page of the lines before `before_seq`.
    History {
        before_seq: u64,
    },
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct VisitorFrame {
    pub conn_id: u64,
    pub command: VisitorCommand,
}

/// The socket refused a frame at the edge (too large, not JSON, …): it
/// still costs a frame of the session's rate.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FrameRefused;

/// Finalize the session now (REST `/end_session`, admin).
#[derive(Debug, Message)]
#[rtype(result = "EndOutcome")]
pub struct EndSession {
    pub reason: EndReason,
    /// Told when the report is archived and rendered (`/end_session` waits).
    pub report_done: Option<tokio::sync::oneshot::Sender<crate::report::ReportOutcome>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// This call finalized it; the report is on its way.
    Finalized,
    /// Someone else already did (another trigger, another node).
    AlreadyFinalized,
    /// The store could not take the guard; nothing changed, try again.
    Unavailable,
}

/// The whole transcript so far (an admin starts watching the session).
#[derive(Debug, Message)]
#[rtype(result = "Vec<crate::domain::TranscriptEntry>")]
pub struct GetTranscript;

/// How the session looks now (the admin feed starts watching); `None` for
/// a session with nothing to show yet.
#[derive(Debug, Message)]
#[rtype(result = "Option<super::view::SessionView>")]
pub struct GetView;

/// Another node took the session over (the visitor reconnected there): stop
/// without finalizing; everything acknowledged is already in the store.
/// Answered once every earlier event of the session has been written.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HandOver;
