//! Per-session incremental state. It holds counters and the matched signals
//! with short evidence, never the messages themselves, so that thousands of
//! live sessions stay within their memory budget.

use chrono::{DateTime, Utc};

/// Evidence longer than this is cut: it is an explanation, not a transcript.
pub(crate) const EVIDENCE_MAX: usize = 60;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IntentHit {
    pub intent: u16,
    pub negated: bool,
    /// Messages this intent has scored in (bounded by `max_count`).
    pub count: u8,
    pub points: i32,
    pub evidence: Box<str>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContactState {
    pub name: bool,
    pub phone: bool,
    pub organization: Option<Box<str>>,
    pub email_domain: Option<Box<str>>,
}

/// Incremental lead state for one chat session; feed it through
/// [`Engine`](super::Engine)'s `observe_*` methods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadTracker {
    pub(crate) first_at: DateTime<Utc>,
    pub(crate) last_visitor_at: Option<DateTime<Utc>>,
    /// Time of the bot message the visitor has not answered yet.
    pub(crate) pending_bot_at: Option<DateTime<Utc>>,
    pub(crate) visitor_messages: u16,
    /// Visitor messages long enough to count for engagement.
    pub(crate) substantive: u16,
    pub(crate) questions: u16,
    pub(crate) deep_questions: u16,
    pub(crate) words: u32,
    pub(crate) replies: u16,
    pub(crate) reply_secs: u32,
    pub(crate) hits: Vec<IntentHit>,
    pub(crate) contact: ContactState,
}

impl LeadTracker {
    pub fn new(first_interaction: DateTime<Utc>) -> Self {
        Self {
            first_at: first_interaction,
            ..Self::default()
        }
    }

    pub fn first_interaction(&self) -> DateTime<Utc> {
        self.first_at
    }

    pub fn visitor_messages(&self) -> u32 {
        u32::from(self.visitor_messages)
    }

    pub fn questions(&self) -> u32 {
        u32::from(self.questions)
    }

    /// Approximate heap + inline size, for memory accounting and tests.
    pub fn approx_bytes(&self) -> usize {
        let heap: usize = self
            .hits
            .iter()
            .map(|h| h.evidence.len() + std::mem::size_of::<IntentHit>())
            .sum::<usize>()
            + self.contact.organization.as_ref().map_or(0, |s| s.len())
            + self.contact.email_domain.as_ref().map_or(0, |s| s.len());
        std::mem::size_of::<Self>() + heap
    }

    /// Folds one message's verdict on an intent into the session.
    /// A change of stance replaces the old one (the visitor changed their
    /// mind); the same stance only strengthens the evidence, or accumulates
    /// when the intent is allowed to count more than once.
    pub(crate) fn apply(
        &mut self,
        intent: u16,
        negated: bool,
        points: i32,
        evidence: &str,
        max_count: u8,
    ) {
        let fresh = || IntentHit {
            intent,
            negated,
            count: 1,
            points,
            evidence: truncate(evidence).into(),
        };
        match self.hits.iter_mut().find(|h| h.intent == intent) {
            None => self.hits.push(fresh()),
            Some(h) if h.negated != negated => *h = fresh(),
            Some(h) if max_count > 1 => {
                if h.count < max_count {
                    h.count += 1;
                    h.points = h.points.saturating_add(points);
                }
            }
            Some(h) => {
                if points.abs() > h.points.abs() {
                    h.points = points;
                    h.evidence = truncate(evidence).into();
                }
            }
        }
    }

    pub(crate) fn note_bot(&mut self, at: DateTime<Utc>) {
        // Keep the earliest unanswered bot message: latency is how long the
        // visitor took to respond to the bot, not to its last bubble.
        if self.pending_bot_at.is_none() {
            self.pending_bot_at = Some(at);
        }
    }

    pub(crate) fn note_visitor(
        &mut self,
        at: DateTime<Utc>,
        words: u32,
        question: bool,
        deep_words: u32,
        reply_cap: u32,
        substantive_words: u32,
    ) {
        if let Some(bot_at) = self.pending_bot_at.take() {
            let secs = (at - bot_at).num_seconds().clamp(0, i64::from(reply_cap));
            self.replies = self.replies.saturating_add(1);
            self.reply_secs = self.reply_secs.saturating_add(secs as u32);
        }
        self.visitor_messages = self.visitor_messages.saturating_add(1);
        if words >= substantive_words {
            self.substantive = self.substantive.saturating_add(1);
        }
        self.words = self.words.saturating_add(words);
        if question {
            self.questions = self.questions.saturating_add(1);
            if words >= deep_words {
                self.deep_questions = self.deep_questions.saturating_add(1);
            }
        }
        self.last_visitor_at = Some(self.last_visitor_at.map_or(at, |l| l.max(at)));
    }
}

/// Cuts at a char boundary and marks the cut.
pub(crate) fn truncate(s: &str) -> String {
    let s = s.trim();
    if s.len() <= EVIDENCE_MAX {
        return s.to_owned();
    }
    let mut end = EVIDENCE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s[..end].trim_end())
}
