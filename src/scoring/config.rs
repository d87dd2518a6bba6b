//! The scoring configuration as written in `config/scoring.toml`: weights,
//! keyword lists and thresholds, with validation that names the offending key.
//!
//! Only shape and sanity are checked here; turning the lists into matchers is
//! `compiled.rs`'s job, so a config can be inspected or edited before use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Priority;

/// The default configuration shipped with the crate.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../config/scoring.toml");

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error("cannot read scoring config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse scoring config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid scoring config at `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ScoringError {
    ScoringError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    pub priority: PriorityThresholds,
    pub negation: NegationConfig,
    pub amounts: AmountsConfig,
    pub contact: ContactConfig,
    pub engagement: EngagementConfig,
    pub intents: BTreeMap<String, IntentConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityThresholds {
    pub medium: i32,
    pub high: i32,
    pub critical: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NegationConfig {
    /// Negators that precede what they negate ("not", "no", "dont").
    pub before: Vec<String>,
    /// Negators that follow what they negate (Hindi word order: "demo nahi").
    pub after: Vec<String>,
    /// Max words between a `before` negator and the keyword.
    pub window: u8,
    /// Max words between the keyword and an `after` negator.
    pub after_window: u8,
    /// Words that end a negation's scope ("but", "lekin").
    pub clause_breaks: Vec<String>,
    /// Two-word phrases starting with a negator that do not negate ("not sure").
    pub not_negations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountsConfig {
    /// Currency assumed for "5 lakh" or "10k" without a marker.
    pub default_currency: String,
    pub currencies: BTreeMap<String, CurrencyConfig>,
    pub multipliers: BTreeMap<String, f64>,
    pub quantity_units: Vec<String>,
    pub quantity_verbs: Vec<String>,
    pub quantity_fillers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyConfig {
    /// Value of one unit in the reference currency that money tiers use.
    pub rate: f64,
    pub markers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    pub name: i32,
    pub email: i32,
    pub phone: i32,
    pub organization: i32,
    pub business_email: i32,
    pub free_email: i32,
    pub disposable_email: i32,
    /// Also pick e-mails and phone numbers out of what the visitor types.
    pub detect_in_text: bool,
    pub free_mail_domains: Vec<String>,
    pub disposable_domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementConfig {
    /// Lead-score points per engagement level (engagement_score 0..=10).
    pub points_per_level: i32,
    pub visitor_messages: Vec<u32>,
    pub questions: Vec<u32>,
    pub deep_questions: Vec<u32>,
    pub deep_question_words: u32,
    pub avg_words: Vec<u32>,
    pub session_seconds: Vec<u32>,
    /// Descending: one level for each threshold the average reply is at or under.
    pub reply_seconds: Vec<u32>,
    pub reply_cap_seconds: u32,
    /// Messages with fewer words do not count towards `visitor_messages`.
    pub substantive_words: u32,
    pub question_words: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Visitor,
    Bot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmountKind {
    Money,
    Quantity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub min: f64,
    pub points: i32,
}

fn yes() -> bool {
    true
}
fn one() -> u8 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentConfig {
    #[serde(default)]
    pub source: Source,
    pub points: i32,
    pub keywords: Vec<String>,
    #[serde(default = "yes")]
    pub negatable: bool,
    #[serde(default)]
    pub negated_points: i32,
    #[serde(default)]
    pub negated_name: Option<String>,
    /// In how many messages the intent may score; 1 = "counts once".
    #[serde(default = "one")]
    pub max_count: u8,
    #[serde(default)]
    pub amount: Option<AmountKind>,
    #[serde(default)]
    pub amount_alone: bool,
    #[serde(default)]
    pub amount_tiers: Vec<Tier>,
    #[serde(default)]
    pub floor: Option<Priority>,
    #[serde(default)]
    pub cap: Option<Priority>,
    #[serde(default = "yes")]
    pub fuzzy: bool,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        match Self::from_toml_str(DEFAULT_CONFIG_TOML) {
            Ok(c) => c,
            // The file is compiled in and covered by tests; failing here is a build defect.
            Err(e) => panic!("embedded config/scoring.toml is invalid: {e}"),
        }
    }
}

impl ScoringConfig {
    pub fn from_toml_str(s: &str) -> Result<Self, ScoringError> {
        let cfg: Self = toml::from_str(s)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ScoringError> {
        let s = std::fs::read_to_string(path).map_err(|source| ScoringError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&s)
    }

    /// Checks value ranges and cross-references; keyword syntax is checked
    /// when the engine compiles the config.
    pub fn validate(&self) -> Result<(), ScoringError> {
        let p = &self.priority;
        if !(p.medium < p.high && p.high < p.critical) {
            return Err(invalid(
                "priority",
                "thresholds must satisfy medium < high < critical",
            ));
        }
        let n = &self.negation;
        if n.window == 0 {
            return Err(invalid("negation.window", "must be at least 1"));
        }
        for (i, s) in n.not_negations.iter().enumerate() {
            if s.split_whitespace().count() != 2 {
                return Err(invalid(
                    format!("negation.not_negations[{i}]"),
                    "must be two words",
                ));
            }
        }
        let a = &self.amounts;
        if !a.currencies.contains_key(&a.default_currency) {
            return Err(invalid(
                "amounts.default_currency",
                format!(
                    "`{}` is not a key of amounts.currencies",
                    a.default_currency
                ),
            ));
        }
        for (code, c) in &a.currencies {
            if !(c.rate.is_finite() && c.rate > 0.0) {
                return Err(invalid(
                    format!("amounts.currencies.{code}.rate"),
                    "must be > 0",
                ));
            }
        }
        for (m, v) in &a.multipliers {
            if !(v.is_finite() && *v > 0.0) {
                return Err(invalid(format!("amounts.multipliers.{m}"), "must be > 0"));
            }
        }
        for (key, list) in [
            ("contact.free_mail_domains", &self.contact.free_mail_domains),
            (
                "contact.disposable_domains",
                &self.contact.disposable_domains,
            ),
        ] {
            for (i, d) in list.iter().enumerate() {
                if d.is_empty() || d.contains('@') || d.chars().any(char::is_uppercase) {
                    return Err(invalid(
                        format!("{key}[{i}]"),
                        "must be a lower-case domain or provider name without '@'",
                    ));
                }
            }
        }
        let e = &self.engagement;
        for (key, list, ascending) in [
            ("visitor_messages", &e.visitor_messages, true),
            ("questions", &e.questions, true),
            ("deep_questions", &e.deep_questions, true),
            ("avg_words", &e.avg_words, true),
            ("session_seconds", &e.session_seconds, true),
            ("reply_seconds", &e.reply_seconds, false),
        ] {
            let ordered = list
                .windows(2)
                .all(|w| if ascending { w[0] < w[1] } else { w[0] > w[1] });
            if !ordered {
                let dir = if ascending { "ascending" } else { "descending" };
                return Err(invalid(
                    format!("engagement.{key}"),
                    format!("must be strictly {dir}"),
                ));
            }
        }
        if self.intents.is_empty() {
            return Err(invalid("intents", "at least one intent is required"));
        }
        let mut alone: [Option<&str>; 2] = [None, None];
        for (name, it) in &self.intents {
            let key = |f: &str| format!("intents.{name}.{f}");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(
                    format!("intents.{name}"),
                    "name must be ASCII letters, digits or '_'",
                ));
            }
            if it.keywords.is_empty() && !it.amount_alone {
                return Err(invalid(key("keywords"), "must not be empty"));
            }
            if it.max_count == 0 {
                return Err(invalid(key("max_count"), "must be at least 1"));
            }
            if it.amount.is_none() && (it.amount_alone || !it.amount_tiers.is_empty()) {
                return Err(invalid(
                    key("amount"),
                    "required when amount_alone or amount_tiers is set",
                ));
            }
            if it.amount.is_some() && it.amount_tiers.is_empty() {
                return Err(invalid(key("amount_tiers"), "required when amount is set"));
            }
            if !it.amount_tiers.windows(2).all(|w| w[0].min < w[1].min) {
                return Err(invalid(
                    key("amount_tiers"),
                    "`min` must be strictly ascending",
                ));
            }
            if it.floor.zip(it.cap).is_some_and(|(f, c)| f > c) {
                return Err(invalid(key("floor"), "floor is above cap"));
            }
            if it.source == Source::Bot && it.amount.is_some() {
                return Err(invalid(
                    key("amount"),
                    "amounts are only read from the visitor",
                ));
            }
            if let (true, Some(kind)) = (it.amount_alone, it.amount) {
                let slot = &mut alone[kind as usize];
                if let Some(other) = slot {
                    return Err(invalid(
                        key("amount_alone"),
                        format!("intent `{other}` already claims bare {kind:?} amounts"),
                    ));
                }
                *slot = Some(name);
            }
        }
        Ok(())
    }
}
