//! Lead scoring: turns what a visitor says (and what the bot confirms) into a
//! lead score, an engagement score and a priority, each explained by the
//! signals that produced it.
//!
//! Pure and synchronous: no I/O, no actors, no clock. A session actor owns a
//! [`LeadTracker`] and calls the [`Engine`]'s `observe_*` methods on every
//! event, then [`Engine::evaluate`]. Weights and word lists live in
//! `config/scoring.toml`; see `docs/scoring.md`.

mod compiled;
mod config;
mod engine;
mod scan;
mod text;
mod tracker;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use config::{
    AmountKind, AmountsConfig, ContactConfig, CurrencyConfig, DEFAULT_CONFIG_TOML,
    EngagementConfig, IntentConfig, NegationConfig, PriorityThresholds, ScoringConfig,
    ScoringError, Source, Tier,
};
pub use engine::{EmailKind, Engine};
pub use tracker::LeadTracker;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority `{0}` (expected low, medium, high or critical)")]
pub struct ParsePriorityError(pub String);

impl FromStr for Priority {
    type Err = ParsePriorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParsePriorityError(s.to_owned()))
    }
}

/// One reason behind a score: `evidence` quotes the words that triggered it
/// ("pricing", "500 units", "acme-industries.com").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub name: String,
    pub points: i32,
    pub evidence: String,
}

/// `Default` is the score of a session nothing is known about yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadScore {
    /// Sum of `signals[..].points`.
    pub lead_score: i32,
    /// 0..=10.
    pub engagement_score: u8,
    pub priority: Priority,
    pub signals: Vec<Signal>,
}

/// Contact details captured by the bot or a form; `None` means "unknown",
/// not "removed".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContactFacts<'a> {
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub organization: Option<&'a str>,
}
