//! Domain events (PROTOCOL §12): what happened to a lead, told to whoever
//! subscribed — webhooks, follow-ups, whatever comes next — as `Recipient`s
//! handed over at start. The sessions send `session.started`,
//! `contact.collected` and `lead.priority_changed` once what they report is
//! stored; the finalize pipeline sends `session.finalized` once the session
//! is archived and `report.mailed` once the mail is accepted. Events of one
//! session are sent in order. Nobody here knows who listens.

use std::sync::Arc;

use actix::{Message, Recipient};
use chrono::{DateTime, Utc};

use crate::domain::{Contact, EndReason};
use crate::scoring::{Priority, Signal};

/// One thing that happened to a lead.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum DomainEvent {
    /// `session.started`: its first visitor event is stored.
    SessionStarted {
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
    /// `session.finalized`: the session, its transcript and its mail are
    /// in the archive (once, whichever node finalized it).
    SessionFinalized {
        session_id: String,
        reason: EndReason,
        at: DateTime<Utc>,
    },
    /// `report.mailed`: the report mail was accepted by the mail server.
    ReportMailed {
        session_id: String,
        recipients: Vec<String>,
        message_id: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent {
    /// The PROTOCOL §12 event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::SessionStarted { .. } => "session.started",
            Self::ContactCollected { .. } => "contact.collected",
            Self::PriorityChanged { .. } => "lead.priority_changed",
            Self::SessionFinalized { .. } => "session.finalized",
            Self::ReportMailed { .. } => "report.mailed",
        }
    }

    /// The session it is about.
    pub fn session_id(&self) -> &str {
        match self {
            Self::SessionStarted { session_id, .. }
            | Self::ContactCollected { session_id, .. }
            | Self::PriorityChanged { session_id, .. }
            | Self::SessionFinalized { session_id, .. }
            | Self::ReportMailed { session_id, .. } => session_id,
        }
    }
}

/// The subscribers of the domain events; clone it freely. Empty by default:
/// then sending costs nothing.
#[derive(Clone, Default)]
pub struct EventSink(Arc<Vec<Recipient<DomainEvent>>>);

impl EventSink {
    pub fn new(subscribers: Vec<Recipient<DomainEvent>>) -> Self {
        Self(Arc::new(subscribers))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn send(&self, event: DomainEvent) {
        if let Some((last, rest)) = self.0.split_last() {
            for subscriber in rest {
                subscriber.do_send(event.clone());
            }
            last.do_send(event);
        }
    }
}
