//! Two tabs of one visitor on two nodes: the session stays with the node that
//! holds it (the owner) while it has a socket there, and a tab that opens on
//! another node is relayed to it over the cluster channel instead of moving
//! the session back and forth.
//!
//! On the tab's node the VisitorSocket parses and screens frames as always
//! and hands the commands to `RelayHub::forward`; on the owner a
//! `RemoteSocket` stands in for the tab as one of the session's connections
//! and sends whatever the session pushes back. Every event of one node goes
//! out through one ordered queue, so a tab sees its frames in the order the
//! session sent them. A tab whose owner stops (or stops heartbeating) is
//! closed with 1012 and resumes wherever it reconnects; a `RemoteSocket`
//! whose tab's node is gone lets go of the session.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::actor::SessionActor;
use super::messages::{
    Connect, Disconnect, FrameRefused, SOCKET_MAILBOX, SocketClose, SocketFrame, VisitorCommand,
    VisitorFrame,
};
use super::peers::PeerEvent;
use crate::cluster::ClusterChannel;
use crate::domain::{Contact, SessionId};
use crate::store::SharedStore;
use crate::telemetry::names;

/// How many relay events wait for the channel before new ones are dropped.
const QUEUE: usize = 4096;

/// How often each side checks that the other side's node is still alive.
pub const PEER_CHECK: Duration = Duration::from_secs(2);

/// A relay event on the cluster channel: `node` sent it, `to` takes it.
/// `link` names the tab: its connection id on the tab's node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RelayEvent {
    /// A tab on `node` opened the session `to` holds.
    Open {
        node: String,
        to: String,
        link: u64,
        session_id: String,
    },
    /// The owner's answer: the `session` frame when the tab is attached;
    /// `None` when the owner has no socket of its own for the session (or
    /// no longer holds it), so the tab's node takes the session over.
    Opened {
        node: String,
        to: String,
        link: u64,
        frame: Option<String>,
    },
    /// A visitor command from the tab.
    In {
        node: String,
        to: String,
        link: u64,
        command: RelayCommand,
    },
    /// A frame for the tab.
    Out {
        node: String,
        to: String,
        link: u64,
        text: String,
        ended: bool,
        close: Option<SocketClose>,
    },
    /// The tab closed.
    Closed { node: String, to: String, link: u64 },
}

impl RelayEvent {
    pub fn node(&self) -> &str {
        match self {
            RelayEvent::Open { node, .. }
            | RelayEvent::Opened { node, .. }
            | RelayEvent::In { node, .. }
            | RelayEvent::Out { node, .. }
            | RelayEvent::Closed { node, .. } => node,
        }
    }

    pub fn to(&self) -> &str {
        match self {
            RelayEvent::Open { to, .. }
            | RelayEvent::Opened { to, .. }
            | RelayEvent::In { to, .. }
            | RelayEvent::Out { to, .. }
            | RelayEvent::Closed { to, .. } => to,
        }
    }
}

/// A visitor command as it crosses the channel. Contact details travel as
/// text and are parsed again on the owner, so a `Contact` is never made
/// without its checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayCommand {
    Contact {
        name: String,
        email: String,
        phone: String,
        organization: String,
    },
    Message {
        text: String,
        client_msg_id: Option<String>,
    },
    End,
    History {
        before_seq: u64,
    },
    /// The tab refused a frame at the edge: it costs a frame of the rate.
    Refused,
}

impl From<VisitorCommand> for RelayCommand {
    fn from(command: VisitorCommand) -> Self {
        match command {
            VisitorCommand::Contact(c) => RelayCommand::Contact {
                name: c.name().unwrap_or_default().to_owned(),
                email: c.email().unwrap_or_default().to_owned(),
                phone: c.phone().unwrap_or_default().to_owned(),
                organization: c.organization().unwrap_or_default().to_owned(),
            },
            VisitorCommand::Message {
                text,
                client_msg_id,
            } => RelayCommand::Message {
                text,
                client_msg_id,
            },
            VisitorCommand::End => RelayCommand::End,
            VisitorCommand::History { before_seq } => RelayCommand::History { before_seq },
        }
    }
}

impl RelayCommand {
    /// The command for the session actor; `None` for a refused frame.
    fn into_visitor(self) -> Result<Option<VisitorCommand>, ()> {
        Ok(Some(match self {
            RelayCommand::Contact {
                name,
                email,
                phone,
                organization,
            } => VisitorCommand::Contact(
                Contact::parse(&name, &email, &phone, &organization).map_err(|_| ())?,
            ),
            RelayCommand::Message {
                text,
                client_msg_id,
            } => VisitorCommand::Message {
                text,
                client_msg_id,
            },
            RelayCommand::End => VisitorCommand::End,
            RelayCommand::History { before_seq } => VisitorCommand::History { before_seq },
            RelayCommand::Refused => return Ok(None),
        }))
    }
}

/// This node's end of every relay: the tabs here whose sessions live
/// elsewhere, and the tabs elsewhere attached to sessions here.
pub struct RelayHub {
    node: String,
    queue: Option<mpsc::Sender<RelayEvent>>,
    /// Tabs on this node relayed to another node, by connection id.
    visiting: DashMap<u64, Recipient<SocketFrame>>,
    /// Opens waiting for the owner's answer.
    opening: DashMap<u64, oneshot::Sender<Option<String>>>,
    /// Tabs on other nodes attached to sessions here, by (node, link).
    hosted: DashMap<(String, u64), Addr<RemoteSocket>>,
}

impl RelayHub {
    /// Without a cluster channel there is nothing to relay to.
    pub fn new(node: String, bus: Option<ClusterChannel>) -> Self {
        let queue = bus.map(|bus| {
            let (tx, mut rx) = mpsc::channel::<RelayEvent>(QUEUE);
            // One publisher per node keeps the events in the order they were
            // queued (Redis delivers one connection's messages in order).
            actix::spawn(async move {
                while let Some(event) = rx.recv().await {
                    bus.publish(&PeerEvent::Relay(event)).await;
                }
            });
            tx
        });
        Self {
            node,
            queue,
            visiting: DashMap::new(),
            opening: DashMap::new(),
            hosted: DashMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    fn send(&self, event: RelayEvent) {
        let Some(queue) = &self.queue else {
            return;
        };
        if queue.try_send(event).is_err() {
            metrics::counter!(names::SOCKET_FRAMES_DROPPED).increment(1);
            tracing::warn!("the relay queue is full; dropping a relayed frame");
        }
    }

    /// Tabs relayed from here, and tabs hosted here (for tests and metrics).
    pub fn counts(&self) -> (usize, usize) {
        (self.visiting.len(), self.hosted.len())
    }

    /// Asks `owner` to attach the tab `link` to session `id`; the `session`
    /// frame when it did. Frames for the tab may arrive from now on and go
    /// to `socket` (its mailbox holds them until the tab has its session
    /// frame).
    pub async fn open_remote(
        &self,
        owner: &str,
        id: SessionId,
        link: u64,
        socket: Recipient<SocketFrame>,
        wait: Duration,
    ) -> Option<ByteString> {
        let (tx, rx) = oneshot::channel();
        self.visiting.insert(link, socket);
        self.opening.insert(link, tx);
        self.send(RelayEvent::Open {
            node: self.node.clone(),
            to: owner.to_owned(),
            link,
            session_id: id.to_string(),
        });
        let answer = tokio::time::timeout(wait, rx).await;
        self.opening.remove(&link);
        match answer {
            Ok(Ok(Some(frame))) if self.visiting.get(&link).is_some_and(|s| s.connected()) => {
                Some(ByteString::from(frame))
            }
            Ok(Ok(Some(_))) => {
                self.close(owner, link);
                None
            }
            _ => {
                self.visiting.remove(&link);
                None
            }
        }
    }

    /// A command from the tab `link` for its session on `owner`.
    pub fn forward(&self, owner: &str, link: u64, command: RelayCommand) {
        self.send(RelayEvent::In {
            node: self.node.clone(),
            to: owner.to_owned(),
            link,
            command,
        });
    }

    /// The tab `link` closed: `owner` lets its stand-in go.
    pub fn close(&self, owner: &str, link: u64) {
        if self.visiting.remove(&link).is_some() {
            self.send(RelayEvent::Closed {
                node: self.node.clone(),
                to: owner.to_owned(),
                link,
            });
        }
    }

    /// An event for this node from the cluster channel.
    pub fn receive(self: &Arc<Self>, registry: &Arc<super::SessionRegistry>, event: RelayEvent) {
        match event {
            RelayEvent::Open {
                node,
                link,
                session_id,
                ..
            } => {
                let hub = Arc::clone(self);
                let registry = Arc::clone(registry);
                actix::spawn(async move {
                    let frame = hub.host(&registry, &node, link, &session_id).await;
                    hub.send(RelayEvent::Opened {
                        node: hub.node.clone(),
                        to: node,
                        link,
                        frame,
                    });
                });
            }
            RelayEvent::Opened {
                node, link, frame, ..
            } => match self.opening.remove(&link) {
                Some((_, tx)) => {
                    let _ = tx.send(frame);
                }
                // Attached after the tab stopped waiting: let go again.
                None if frame.is_some() => self.send(RelayEvent::Closed {
                    node: self.node.clone(),
                    to: node,
                    link,
                }),
                None => {}
            },
            RelayEvent::In {
                node,
                link,
                command,
                ..
            } => {
                if let Some(remote) = self.hosted.get(&(node, link)) {
                    remote.do_send(RelayIn(command));
                }
            }
            RelayEvent::Out {
                node,
                link,
                text,
                ended,
                close,
                ..
            } => {
                // The tab went away before it could say so (it closed while
                // its open was on the way): the owner lets go of it.
                if self.visiting.get(&link).is_some_and(|s| !s.connected()) {
                    self.visiting.remove(&link);
                    self.send(RelayEvent::Closed {
                        node: self.node.clone(),
                        to: node,
                        link,
                    });
                    return;
                }
                let last = ended || close.is_some();
                let socket = if last {
                    self.visiting.remove(&link).map(|(_, s)| s)
                } else {
                    self.visiting.get(&link).map(|s| s.clone())
                };
                if let Some(socket) = socket {
                    super::actor::deliver(
                        &socket,
                        SocketFrame {
                            text: ByteString::from(text),
                            ended,
                            close,
                        },
                    );
                }
            }
            RelayEvent::Closed { node, link, .. } => {
                if let Some((_, remote)) = self.hosted.remove(&(node, link)) {
                    remote.do_send(LinkClosed);
                }
            }
        }
    }

    /// Attaches a stand-in for the tab to the live session here, if the
    /// session has a socket of its own here; its `session` frame if so.
    async fn host(
        self: &Arc<Self>,
        registry: &Arc<super::SessionRegistry>,
        peer: &str,
        link: u64,
        session_id: &str,
    ) -> Option<String> {
        let session = SessionId::parse(session_id).and_then(|id| registry.get(id))?;
        let conn_id = registry.next_conn_id();
        let remote = RemoteSocket {
            hub: Arc::clone(self),
            store: Arc::clone(&registry.deps().store),
            shutdown: registry.deps().shutdown.clone(),
            peer: peer.to_owned(),
            link,
            conn_id,
            session: session.clone(),
            gone: false,
        }
        .start();
        // Inserted before the session knows it, so the tab's first commands
        // find it.
        self.hosted.insert((peer.to_owned(), link), remote.clone());
        let attached = session
            .send(Connect {
                conn_id,
                socket: remote.clone().recipient(),
                resumed: true,
                previous_session_id: None,
                only_if_attached: true,
            })
            .await;
        match attached {
            Ok(Ok(frame)) => Some(frame.to_string()),
            _ => {
                self.hosted.remove(&(peer.to_owned(), link));
                remote.do_send(LinkClosed);
                None
            }
        }
    }
}

/// A command relayed from the tab.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct RelayIn(RelayCommand);

/// The tab closed, or was never attached.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct LinkClosed;

/// On the owner: one of the session's connections, standing in for a tab on
/// another node.
pub struct RemoteSocket {
    hub: Arc<RelayHub>,
    store: SharedStore,
    shutdown: crate::shutdown::Shutdown,
    peer: String,
    link: u64,
    conn_id: u64,
    session: Addr<SessionActor>,
    /// The session already dropped this connection.
    gone: bool,
}

impl RemoteSocket {
    fn out(&self, text: String, ended: bool, close: Option<SocketClose>) {
        self.hub.send(RelayEvent::Out {
            node: self.hub.node.clone(),
            to: self.peer.clone(),
            link: self.link,
            text,
            ended,
            close,
        });
    }
}

impl Actor for RemoteSocket {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(SOCKET_MAILBOX);
        // The tab's node died: nobody will close this link.
        ctx.run_interval(PEER_CHECK, |act, ctx| {
            let store = Arc::clone(&act.store);
            let peer = act.peer.clone();
            ctx.spawn(
                async move { store.node_alive(&peer).await }
                    .into_actor(act)
                    .map(|alive, act, ctx| {
                        if matches!(alive, Ok(false)) {
                            tracing::info!(peer = %act.peer, "a relayed tab's node is gone; detaching it");
                            ctx.stop();
                        }
                    }),
            );
        });
        // This node stops: the tab reconnects and resumes on a live node.
        let stopping = self.shutdown.wait();
        ctx.spawn(stopping.into_actor(self).map(|(), act, ctx| {
            act.out(String::new(), false, Some(SocketClose::OwnerGone));
            act.gone = true;
            ctx.stop();
        }));
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        if !self.gone {
            self.session.do_send(Disconnect {
                conn_id: self.conn_id,
            });
        }
        // A newer stand-in for the same tab stays.
        let me = ctx.address();
        self.hub
            .hosted
            .remove_if(&(self.peer.clone(), self.link), |_, addr| *addr == me);
    }
}

impl Handler<SocketFrame> for RemoteSocket {
    type Result = ();

    fn handle(&mut self, msg: SocketFrame, ctx: &mut Self::Context) {
        let last = msg.ended || msg.close.is_some();
        self.out(msg.text.to_string(), msg.ended, msg.close);
        if last {
            self.gone = true;
            ctx.stop();
        }
    }
}

impl Handler<RelayIn> for RemoteSocket {
    type Result = ();

    fn handle(&mut self, msg: RelayIn, _ctx: &mut Self::Context) {
        match msg.0.into_visitor() {
            Ok(Some(command)) => self.session.do_send(VisitorFrame {
                conn_id: self.conn_id,
                command,
            }),
            Ok(None) => self.session.do_send(FrameRefused),
            // The tab's node parsed these details; a node that disagrees
            // (another version) drops them rather than storing bad ones.
            Err(()) => tracing::warn!("dropping relayed contact details that do not parse"),
        }
    }
}

impl Handler<LinkClosed> for RemoteSocket {
    type Result = ();

    fn handle(&mut self, _: LinkClosed, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_events_round_trip_inside_the_bus_event() {
        let event = PeerEvent::Relay(RelayEvent::In {
            node: "a".into(),
            to: "b".into(),
            link: 7,
            command: RelayCommand::Message {
                text: "hi".into(),
                client_msg_id: Some("m1".into()),
            },
        });
        let json = serde_json::to_string(&event).expect("encodes");
        let back: PeerEvent = serde_json::from_str(&json).expect("decodes");
        let PeerEvent::Relay(RelayEvent::In { link, command, .. }) = back else {
            panic!("{json}");
        };
        assert_eq!(link, 7);
        assert!(matches!(command, RelayCommand::Message { text, .. } if text == "hi"));
        let out = PeerEvent::Relay(RelayEvent::Out {
            node: "a".into(),
            to: "b".into(),
            link: 1,
            text: String::new(),
            ended: false,
            close: Some(SocketClose::OwnerGone),
        });
        let json = serde_json::to_string(&out).expect("encodes");
        assert!(matches!(
            serde_json::from_str::<PeerEvent>(&json).expect("decodes"),
            PeerEvent::Relay(RelayEvent::Out {
                close: Some(SocketClose::OwnerGone),
                ..
            })
        ));
    }

    #[test]
    fn contact_details_are_parsed_again_on_the_owner() {
        let contact = Contact::parse("Asha", "asha@example.com", "", "Acme").expect("valid");
        let relayed = RelayCommand::from(VisitorCommand::Contact(contact.clone()));
        match relayed.into_visitor() {
            Ok(Some(VisitorCommand::Contact(back))) => assert_eq!(back, contact),
            other => panic!("{other:?}"),
        }
        let forged = RelayCommand::Contact {
            name: "x".into(),
            email: "a?cc=evil@example.com".into(),
            phone: String::new(),
            organization: String::new(),
        };
        assert!(forged.into_visitor().is_err());
    }
}
