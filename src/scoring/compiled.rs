//! Turns a validated `ScoringConfig` into lookup tables that make scanning a
//! message a single pass: a phrase index keyed by the first word's stem, a
//! deletion-neighbourhood index for one-edit typos, and word sets for
//! negation, currencies, multipliers and units.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use super::Priority;
use super::config::{AmountKind, ScoringConfig, ScoringError, Source, invalid};
use super::text::{FastMap, Fnv, Kind, hash_skipping, stem, tokenize};

pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

/// Keywords at least this long (in bytes) also match with one typo; shorter
/// ones produce too many false friends ("rate" vs "late").
pub(crate) const FUZZY_MIN_LEN: usize = 6;

#[derive(Debug)]
pub(crate) enum PatTok {
    Stem(Box<str>),
    Exact(Box<str>),
    Number,
}

#[derive(Debug)]
pub(crate) struct Pattern {
    pub toks: Box<[PatTok]>,
    pub intent: u16,
    /// Normalised keyword text, used to verify typo candidates.
    pub word: Box<str>,
}

#[derive(Debug, Default)]
pub(crate) struct Matcher {
    pub patterns: Vec<Pattern>,
    /// First-word stem -> pattern ids, longest pattern first so that
    /// "purchase manager" wins over "purchase".
    pub index: FastMap<Box<str>, Vec<u32>>,
    /// Hash of a keyword with one byte deleted (or none) -> pattern ids.
    pub fuzzy: FastMap<u64, Vec<u32>>,
}

#[derive(Debug)]
pub(crate) struct CompiledIntent {
    pub name: Box<str>,
    pub negated_name: Box<str>,
    pub points: i32,
    pub negatable: bool,
    pub negated_points: i32,
    pub max_count: u8,
    pub amount: Option<AmountKind>,
    pub tiers: Vec<(f64, i32)>,
    pub floor: Option<Priority>,
    pub cap: Option<Priority>,
}

impl CompiledIntent {
    /// Points for an amount, or `None` below the first tier.
    pub fn tier_points(&self, value: f64) -> Option<i32> {
        self.tiers
            .iter()
            .rev()
            .find(|(min, _)| value >= *min)
            .map(|&(_, p)| p)
    }
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pub cfg: ScoringConfig,
    pub intents: Vec<CompiledIntent>,
    pub visitor: Matcher,
    pub bot: Matcher,
    pub neg_before: FastSet<Box<str>>,
    pub neg_after: FastSet<Box<str>>,
    pub clause_breaks: FastSet<Box<str>>,
    pub not_negations: FastSet<(Box<str>, Box<str>)>,
    /// Marker ("rs", "₹", "usd") -> rate to the reference currency.
    pub currency: FastMap<Box<str>, f64>,
    pub default_rate: f64,
    pub multipliers: FastMap<Box<str>, f64>,
    pub units: FastSet<Box<str>>,
    pub quantity_verbs: FastSet<Box<str>>,
    pub quantity_fillers: FastSet<Box<str>>,
    pub question_words: FastSet<Box<str>>,
    /// Intent that bare amounts of each kind count towards, by `AmountKind as usize`.
    pub amount_alone: [Option<u16>; 2],
}

fn word_set(list: &[String]) -> FastSet<Box<str>> {
    list.iter().map(|w| normalise_word(w).into()).collect()
}

/// Normalises a single configured word exactly as the tokeniser would.
fn normalise_word(w: &str) -> String {
    let t = tokenize(w);
    t.toks
        .iter()
        .filter(|t| matches!(t.kind, Kind::Word | Kind::Number))
        .map(|x| t.norm(x))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Compiled {
    pub fn new(cfg: ScoringConfig) -> Result<Self, ScoringError> {
        cfg.validate()?;
        let mut intents = Vec::with_capacity(cfg.intents.len());
        let mut visitor = Matcher::default();
        let mut bot = Matcher::default();
        let mut amount_alone = [None, None];
        for (id, (name, it)) in cfg.intents.iter().enumerate() {
            let id = u16::try_from(id).map_err(|_| invalid("intents", "too many intents"))?;
            let matcher = match it.source {
                Source::Visitor => &mut visitor,
                Source::Bot => &mut bot,
            };
            for (k, kw) in it.keywords.iter().enumerate() {
                add_pattern(matcher, kw, id, it.fuzzy)
                    .map_err(|m| invalid(format!("intents.{name}.keywords[{k}]"), m))?;
            }
            if let (true, Some(kind)) = (it.amount_alone, it.amount) {
                amount_alone[kind as usize] = Some(id);
            }
            intents.push(CompiledIntent {
                name: name.as_str().into(),
                negated_name: it
                    .negated_name
                    .clone()
                    .unwrap_or_else(|| format!("no_{name}"))
                    .into(),
                points: it.points,
                negatable: it.negatable,
                negated_points: it.negated_points,
                max_count: it.max_count,
                amount: it.amount,
                tiers: it.amount_tiers.iter().map(|t| (t.min, t.points)).collect(),
                floor: it.floor,
                cap: it.cap,
            });
        }
        for m in [&mut visitor, &mut bot] {
            let pats = &m.patterns;
            for ids in m.index.values_mut() {
                ids.sort_by_key(|&i| std::cmp::Reverse(pats[i as usize].toks.len()));
            }
        }
        let n = &cfg.negation;
        let not_negations = n
            .not_negations
            .iter()
            .filter_map(|s| {
                let mut it = s.split_whitespace().map(normalise_word);
                Some((it.next()?.into(), it.next()?.into()))
            })
            .collect();
        let a = &cfg.amounts;
        let mut currency = FastMap::default();
        for (code, c) in &a.currencies {
            currency.insert(normalise_word(code).into(), c.rate);
            for m in &c.markers {
                currency.insert(normalise_word(m).into(), c.rate);
            }
        }
        let default_rate = a
            .currencies
            .get(&a.default_currency)
            .map_or(1.0, |c| c.rate);
        Ok(Self {
            intents,
            visitor,
            bot,
            neg_before: word_set(&n.before),
            neg_after: word_set(&n.after),
            clause_breaks: word_set(&n.clause_breaks),
            not_negations,
            currency,
            default_rate,
            multipliers: a
                .multipliers
                .iter()
                .map(|(k, v)| (normalise_word(k).into(), *v))
                .collect(),
            units: a
                .quantity_units
                .iter()
                .map(|u| stem(&normalise_word(u)).into())
                .collect(),
            quantity_verbs: a
                .quantity_verbs
                .iter()
                .map(|u| stem(&normalise_word(u)).into())
                .collect(),
            quantity_fillers: word_set(&a.quantity_fillers),
            question_words: word_set(&cfg.engagement.question_words),
            amount_alone,
            cfg,
        })
    }
}

fn add_pattern(m: &mut Matcher, kw: &str, intent: u16, fuzzy: bool) -> Result<(), String> {
    let (exact, body) = match kw.strip_prefix('=') {
        Some(rest) => (true, rest),
        None => (false, kw),
    };
    let mut toks = Vec::new();
    for piece in body.split_whitespace() {
        if piece == "#" {
            toks.push(PatTok::Number);
            continue;
        }
        let t = tokenize(piece);
        for tok in &t.toks {
            match tok.kind {
                Kind::Word => {
                    let w = t.norm(tok);
                    toks.push(if exact {
                        PatTok::Exact(w.into())
                    } else {
                        PatTok::Stem(stem(w).into())
                    });
                }
                Kind::Number => toks.push(PatTok::Exact(t.norm(tok).into())),
                _ => return Err(format!("`{kw}`: only words, numbers and `#` are allowed")),
            }
        }
    }
    let key: Box<str> = match toks.first() {
        Some(PatTok::Stem(s)) => s.clone(),
        Some(PatTok::Exact(s)) if !s.starts_with(|c: char| c.is_ascii_digit()) => stem(s).into(),
        Some(_) => return Err(format!("`{kw}`: must start with a word")),
        None => return Err("empty keyword".into()),
    };
    let word = normalise_word(body);
    let id = m.patterns.len() as u32;
    if fuzzy && !exact && toks.len() == 1 && word.is_ascii() && word.len() >= FUZZY_MIN_LEN {
        let b = word.as_bytes();
        for skip in 0..=b.len() {
            let ids = m.fuzzy.entry(hash_skipping(b, skip)).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    m.index.entry(key).or_default().push(id);
    m.patterns.push(Pattern {
        toks: toks.into_boxed_slice(),
        intent,
        word: word.into(),
    });
    Ok(())
}
