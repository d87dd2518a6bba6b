//! The engine: folds observed messages and contact facts into a
//! `LeadTracker`, and turns a tracker into an explained `LeadScore`.
//!
//! Everything here is a pure function of (config, events in order); the
//! clock only enters through the timestamps the caller passes in, which is
//! what makes replaying a transcript reproduce the live score.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use super::compiled::Compiled;
use super::config::{AmountKind, ScoringConfig, ScoringError};
use super::scan::{Findings, email_domain, scan};
use super::tracker::{LeadTracker, truncate};
use super::{ContactFacts, LeadScore, Priority, Signal};

/// Compiled scoring rules. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Compiled>,
    /// What a scan found in each bot answer seen so far. The bot answers
    /// from a short list, so every chat turn would scan the same texts again;
    /// the findings depend on the text alone.
    bot_findings: Arc<DashMap<Box<str>, Arc<Findings>>>,
}

/// Distinct bot answers remembered; past it, further ones are scanned each
/// time (a responder that writes free text).
const BOT_FINDINGS_KEPT: usize = 1024;

/// How an e-mail domain is classed against the configured lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    Business,
    Free,
    Disposable,
}

fn domain_listed(domain: &str, list: &[String]) -> bool {
    let first_label = domain.split('.').next().unwrap_or(domain);
    list.iter().any(|entry| {
        if entry.contains('.') {
            domain == entry
                || domain
                    .strip_suffix(entry.as_str())
                    .is_some_and(|p| p.ends_with('.'))
        } else {
            first_label == entry
        }
    })
}

impl Default for Engine {
    fn default() -> Self {
        match Self::new(ScoringConfig::default()) {
            Ok(e) => e,
            Err(e) => panic!("embedded config/scoring.toml does not compile: {e}"),
        }
    }
}

impl Engine {
    pub fn new(config: ScoringConfig) -> Result<Self, ScoringError> {
        Ok(Self {
            inner: Arc::new(Compiled::new(config)?),
            bot_findings: Arc::new(DashMap::new()),
        })
    }

    pub fn config(&self) -> &ScoringConfig {
        &self.inner.cfg
    }

    /// Classifies an e-mail domain ("acme.com", "gmail.com") with the config's lists.
    pub fn classify_domain(&self, domain: &str) -> EmailKind {
        let c = &self.inner.cfg.contact;
        let d = domain.trim().to_lowercase();
        if domain_listed(&d, &c.disposable_domains) {
            EmailKind::Disposable
        } else if domain_listed(&d, &c.free_mail_domains) {
            EmailKind::Free
        } else {
            EmailKind::Business
        }
    }

    pub fn observe_visitor(&self, t: &mut LeadTracker, text: &str, at: DateTime<Utc>) {
        let c = &*self.inner;
        let f = scan(c, &c.visitor, text, true);
        let e = &c.cfg.engagement;
        t.note_visitor(
            at,
            f.words,
            f.question,
            e.deep_question_words,
            e.reply_cap_seconds,
            e.substantive_words,
        );
        self.fold(t, text, &f);
        if let Some(d) = &f.email_domain {
            t.contact.email_domain = Some(d.as_str().into());
        }
        t.contact.phone |= f.phone;
    }

    pub fn observe_bot(&self, t: &mut LeadTracker, text: &str, at: DateTime<Utc>) {
        let c = &*self.inner;
        t.note_bot(at);
        let f = match self.bot_findings.get(text) {
            Some(f) => Arc::clone(&f),
            None => {
                let f = Arc::new(scan(c, &c.bot, text, false));
                if self.bot_findings.len() < BOT_FINDINGS_KEPT {
                    self.bot_findings.insert(text.into(), Arc::clone(&f));
                }
                f
            }
        };
        self.fold(t, text, &f);
    }

    /// Merges contact facts; a `None` field leaves what is already known.
    pub fn observe_contact(&self, t: &mut LeadTracker, contact: &ContactFacts<'_>) {
        if present(contact.name).is_some() {
            t.contact.name = true;
        }
        if present(contact.phone).is_some_and(|p| p.bytes().filter(u8::is_ascii_digit).count() >= 7)
        {
            t.contact.phone = true;
        }
        if let Some(o) = present(contact.organization) {
            t.contact.organization = Some(truncate(o).into());
        }
        if let Some(d) = present(contact.email).and_then(email_domain) {
            t.contact.email_domain = Some(d.into());
        }
    }

    /// Folds one message's findings: per intent, the last stance in the
    /// message wins and the strongest evidence for that stance is kept.
    fn fold(&self, t: &mut LeadTracker, text: &str, f: &Findings) {
        let c = &*self.inner;
        // (intent, negated, points, start, end) — at most a handful per message.
        let mut verdicts: Vec<(u16, bool, i32, u32, u32)> = Vec::new();
        for h in &f.hits {
            let it = &c.intents[usize::from(h.intent)];
            let points = if h.negated {
                it.negated_points
            } else {
                it.points
            };
            match verdicts.iter_mut().find(|v| v.0 == h.intent) {
                Some(v) if v.1 != h.negated || points.abs() > v.2.abs() => {
                    *v = (h.intent, h.negated, points, h.start, h.end);
                }
                Some(_) => {}
                None => verdicts.push((h.intent, h.negated, points, h.start, h.end)),
            }
        }
        let mut extra: Vec<(u16, i32, String)> = Vec::new();
        for kind in [AmountKind::Money, AmountKind::Quantity] {
            let Some(a) = f.amounts[kind as usize] else {
                continue;
            };
            let mut attached = false;
            for v in verdicts.iter_mut().filter(|v| !v.1) {
                let it = &c.intents[usize::from(v.0)];
                if it.amount != Some(kind) {
                    continue;
                }
                attached = true;
                if let Some(p) = it.tier_points(a.value).filter(|p| *p > v.2) {
                    v.2 = p;
                    // Quote keyword and amount together when they are close.
                    if a.start.abs_diff(v.4) <= 24 || v.3.abs_diff(a.end) <= 24 {
                        (v.3, v.4) = (v.3.min(a.start), v.4.max(a.end));
                    } else {
                        let ev = format!(
                            "{} … {}",
                            slice(text, v.3, v.4),
                            slice(text, a.start, a.end)
                        );
                        extra.push((v.0, p, ev));
                        v.2 = i32::MIN;
                    }
                }
            }
            let alone = c.amount_alone[kind as usize].filter(|_| !attached);
            if let Some(id) = alone {
                let it = &c.intents[usize::from(id)];
                if let Some(p) = it.tier_points(a.value) {
                    let ev = slice(text, a.start, a.end).to_owned();
                    extra.push((id, p, ev));
                }
            }
        }
        for (id, negated, points, s, e) in verdicts {
            if points != i32::MIN {
                let mc = c.intents[usize::from(id)].max_count;
                t.apply(id, negated, points, slice(text, s, e), mc);
            }
        }
        for (id, points, ev) in extra {
            let mc = c.intents[usize::from(id)].max_count;
            t.apply(id, false, points, &ev, mc);
        }
    }

    /// Engagement level 0..=10 and a short human explanation.
    pub fn engagement(&self, t: &LeadTracker, now: DateTime<Utc>) -> (u8, String) {
        let e = &self.inner.cfg.engagement;
        let reached = |list: &[u32], v: u32| list.iter().filter(|&&x| v >= x).count();
        let msgs = u32::from(t.visitor_messages);
        let secs = t.last_visitor_at.map_or(0, |l| {
            (l.min(now) - t.first_at)
                .num_seconds()
                .clamp(0, i64::from(u32::MAX)) as u32
        });
        let avg_words = t.words.checked_div(msgs).unwrap_or(0);
        let mut level = reached(&e.visitor_messages, u32::from(t.substantive))
            + reached(&e.questions, u32::from(t.questions))
            + reached(&e.deep_questions, u32::from(t.deep_questions))
            + reached(&e.avg_words, avg_words)
            + reached(&e.session_seconds, secs);
        // One quick answer says little; an average over two or more does.
        let avg_reply = (t.replies >= 2).then(|| t.reply_secs / u32::from(t.replies));
        if let Some(r) = avg_reply {
            level += e.reply_seconds.iter().filter(|&&x| r <= x).count();
        }
        let level = level.min(10) as u8;
        let mut why = format!(
            "{msgs} msgs, {} questions, {avg_words} words/msg, {}m{:02}s",
            t.questions,
            secs / 60,
            secs % 60
        );
        if let Some(r) = avg_reply {
            why.push_str(&format!(", replies in ~{r}s"));
        }
        (level, why)
    }

    pub fn evaluate(&self, t: &LeadTracker, now: DateTime<Utc>) -> LeadScore {
        let c = &*self.inner;
        let mut signals = Vec::with_capacity(t.hits.len() + 6);
        let (mut floor, mut cap) = (Priority::Low, Priority::Critical);
        for h in &t.hits {
            let it = &c.intents[usize::from(h.intent)];
            if h.negated {
                if h.points != 0 {
                    signals.push(signal(&it.negated_name, h.points, &h.evidence));
                }
                continue;
            }
            floor = floor.max(it.floor.unwrap_or(Priority::Low));
            cap = cap.min(it.cap.unwrap_or(Priority::Critical));
            signals.push(signal(&it.name, h.points, &h.evidence));
        }
        let k = &c.cfg.contact;
        let ct = &t.contact;
        if ct.name {
            signals.push(signal("name", k.name, "provided"));
        }
        if let Some(d) = &ct.email_domain {
            signals.push(signal("email", k.email, d));
            match self.classify_domain(d) {
                EmailKind::Business => signals.push(signal("business_email", k.business_email, d)),
                EmailKind::Free => signals.push(signal("free_email", k.free_email, d)),
                EmailKind::Disposable => {
                    signals.push(signal("disposable_email", k.disposable_email, d));
                }
            }
        }
        if ct.phone {
            signals.push(signal("phone", k.phone, "provided"));
        }
        if let Some(o) = &ct.organization {
            signals.push(signal("organization", k.organization, o));
        }
        let (engagement_score, why) = self.engagement(t, now);
        if engagement_score > 0 {
            let points = i32::from(engagement_score) * c.cfg.engagement.points_per_level;
            signals.push(signal("engagement", points, &why));
        }
        let lead_score = signals
            .iter()
            .fold(0i32, |acc, s| acc.saturating_add(s.points));
        let th = &c.cfg.priority;
        let by_score = if lead_score >= th.critical {
            Priority::Critical
        } else if lead_score >= th.high {
            Priority::High
        } else if lead_score >= th.medium {
            Priority::Medium
        } else {
            Priority::Low
        };
        LeadScore {
            lead_score,
            engagement_score,
            priority: by_score.max(floor).min(cap),
            signals,
        }
    }
}

fn present(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn slice(text: &str, start: u32, end: u32) -> &str {
    text.get(start as usize..end as usize).unwrap_or("")
}

fn signal(name: &str, points: i32, evidence: &str) -> Signal {
    Signal {
        name: name.to_owned(),
        points,
        evidence: evidence.to_owned(),
    }
}
