//! Messages the AdminFeed and admin sockets take.

use actix::{Message, Recipient};
use bytestring::ByteString;

use crate::session::SessionView;

/// Ready-to-send frames for one admin socket: everything of one flush in one
/// message, so a burst costs each socket one mailbox slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AdminFrame(pub Vec<ByteString>);

/// An admin socket joins the feed; answered with the snapshot frame.
#[derive(Debug, Message)]
#[rtype(result = "ByteString")]
pub struct Subscribe {
    pub subscriber: u64,
    pub socket: Recipient<AdminFrame>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub subscriber: u64,
}

/// Follow one session's transcript (`None` stops).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub subscriber: u64,
    pub session_id: Option<String>,
}

/// The live sessions, most urgent first (the admin API's live list).
#[derive(Debug, Message)]
#[rtype(result = "Vec<SessionView>")]
pub struct ListLive;

/// Another node's change, from the cluster channel.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteEvent(pub super::replication::FeedEvent);

/// The cluster channel was (re)subscribed: events may have been missed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ChannelSubscribed;
