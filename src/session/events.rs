//! What a session tells the rest of the node: the live view of it (for the
//! admin feed) and the domain events of `crate::events` (for webhooks and
//! whatever else subscribes). A session holds [`Subscribers`] — recipients
//! handed to it at start — and knows nothing of who they are.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::{Message, Recipient};

use super::view::SessionView;
use crate::domain::{EndReason, TranscriptEntry};
use crate::events::{DomainEvent, EventSink};
use crate::scoring::Priority;

/// One thing a session says.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum SessionEvent {
    /// The live view changed (a visitor event, a socket came or went);
    /// `new_entries` are the transcript lines since the last change. Sent
    /// only while somebody wants views ([`ViewDemand`]).
    Changed {
        view: SessionView,
        new_entries: Vec<TranscriptEntry>,
    },
    /// The session left the live view.
    Closed {
        session_id: String,
        reason: EndReason,
        priority: Priority,
        /// `session_{ID}.pdf`, or `None` for a session dropped without a report.
        report: Option<String>,
    },
}

/// Whether anybody wants live views now (an admin watching, here or on
/// another node). Set by the admin feed, read by every session on each
/// change: with nobody watching, sessions build no views at all.
#[derive(Debug, Clone, Default)]
pub struct ViewDemand(Arc<AtomicBool>);

impl ViewDemand {
    pub fn wanted(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, wanted: bool) {
        self.0.store(wanted, Ordering::Release);
    }
}

/// Who hears a node's sessions: live views and closes go to the feed, the
/// domain events to the node's [`EventSink`].
#[derive(Clone, Default)]
pub struct Subscribers {
    views: Option<Recipient<SessionEvent>>,
    domain: EventSink,
    demand: ViewDemand,
}

impl Subscribers {
    /// `feed` takes the live views while `demand` says so, and every
    /// `Closed`; `domain` the domain events.
    pub fn new(feed: Recipient<SessionEvent>, demand: ViewDemand, domain: EventSink) -> Self {
        Self {
            views: Some(feed),
            domain,
            demand,
        }
    }

    pub fn views_wanted(&self) -> bool {
        self.demand.wanted()
    }

    pub fn send(&self, event: SessionEvent) {
        if let Some(feed) = &self.views {
            feed.do_send(event);
        }
    }

    pub fn domain(&self, event: DomainEvent) {
        self.domain.send(event);
    }
}
