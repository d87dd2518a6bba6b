//! What a session tells the rest of the node: the live view of it (for the
//! admin feed) and the domain events of PROTOCOL §12 (for webhooks and
//! whatever else subscribes). A session holds [`Subscribers`] — recipients
//! handed to it at start — and knows nothing of who they are.
//!
//! A domain event is sent only once what it reports is stored: after the
//! write is acknowledged, in the order of the session's events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::{Message, Recipient};
use chrono::{DateTime, Utc};

use super::view::SessionView;
use crate::domain::{Contact, EndReason, TranscriptEntry};
use crate::scoring::{Priority, Signal};

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
    /// `session.started`: its first visitor event is stored.
    Started {
        session_id: String,
        channel: &'static str,
        at: DateTime<Utc>,
    },
    /// `contact.collected`: the visitor's details are stored.
    ContactCollected {
        session_id: String,
        contact: Contact,
        at: DateTime<Utc>,
    },
    /// `lead.priority_changed`.
    PriorityChanged {
        session_id: String,
        from: Priority,
        to: Priority,
        lead_score: i32,
        signals: Vec<Signal>,
        at: DateTime<Utc>,
    },
}

impl SessionEvent {
    /// The PROTOCOL §12 event type; `None` for the live-view messages.
    pub fn event_type(&self) -> Option<&'static str> {
        match self {
            Self::Changed { .. } | Self::Closed { .. } => None,
            Self::Started { .. } => Some("session.started"),
            Self::ContactCollected { .. } => Some("contact.collected"),
            Self::PriorityChanged { .. } => Some("lead.priority_changed"),
        }
    }
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

/// Who hears a node's sessions. Live views go to `views`; domain events to
/// every recipient in `domain`.
#[derive(Clone, Default)]
pub struct Subscribers {
    views: Vec<Recipient<SessionEvent>>,
    domain: Vec<Recipient<SessionEvent>>,
    demand: ViewDemand,
}

impl Subscribers {
    /// `feed` takes the live views while `demand` says so, and every
    /// `Closed`.
    pub fn new(feed: Recipient<SessionEvent>, demand: ViewDemand) -> Self {
        Self {
            views: vec![feed],
            domain: Vec::new(),
            demand,
        }
    }

    /// Adds a subscriber to the domain events.
    pub fn with_domain(mut self, subscriber: Recipient<SessionEvent>) -> Self {
        self.domain.push(subscriber);
        self
    }

    pub fn views_wanted(&self) -> bool {
        self.demand.wanted()
    }

    pub fn send(&self, event: SessionEvent) {
        let to = match event {
            SessionEvent::Changed { .. } | SessionEvent::Closed { .. } => &self.views,
            _ => &self.domain,
        };
        if let Some((last, rest)) = to.split_last() {
            for subscriber in rest {
                subscriber.do_send(event.clone());
            }
            last.do_send(event);
        }
    }
}
