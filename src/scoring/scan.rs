//! Reads one message in a single left-to-right pass and reports what it
//! contains: intent hits (with negation resolved), the largest money and
//! quantity amounts, e-mails and phone numbers, and word/question counts.
//!
//! The result describes only this message; folding it into a session is the
//! tracker's job, which keeps live scoring and transcript replay identical.

use super::compiled::{Compiled, Matcher, PatTok};
use super::config::AmountKind;
use super::text::{Kind, Token, Tokens, hash_skipping, stem, tokenize, within_one_edit};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub intent: u16,
    pub negated: bool,
    /// Byte span of the evidence in the original text.
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Amount {
    /// Money in the reference currency, or a plain count.
    pub value: f64,
    pub start: u32,
    pub end: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub hits: Vec<Hit>,
    /// Largest amount of each kind, by `AmountKind as usize`.
    pub amounts: [Option<Amount>; 2],
    pub email_domain: Option<String>,
    pub phone: bool,
    pub words: u32,
    pub question: bool,
}

fn is_term(k: Kind) -> bool {
    matches!(k, Kind::Word | Kind::Number)
}

/// Tries every pattern starting at token `i`; returns (pattern id, index one
/// past the last matched token).
fn match_at(m: &Matcher, t: &Tokens, i: usize) -> Option<(u32, usize)> {
    let tok = &t.toks[i];
    if tok.kind != Kind::Word {
        return None;
    }
    let norm = t.norm(tok);
    if let Some(ids) = m.index.get(stem(norm)) {
        for &id in ids {
            let p = &m.patterns[id as usize];
            let end = i + p.toks.len();
            if end > t.toks.len() {
                continue;
            }
            let ok = p.toks.iter().zip(&t.toks[i..end]).all(|(pt, tk)| {
                is_term(tk.kind)
                    && match pt {
                        PatTok::Number => tk.kind == Kind::Number,
                        PatTok::Exact(w) => t.norm(tk) == &**w,
                        PatTok::Stem(s) => tk.kind == Kind::Word && stem(t.norm(tk)) == &**s,
                    }
            });
            if ok {
                return Some((id, end));
            }
        }
    }
    let b = norm.as_bytes();
    if !m.fuzzy.is_empty() && norm.is_ascii() && (5..=24).contains(&b.len()) {
        for skip in 0..=b.len() {
            if let Some(ids) = m.fuzzy.get(&hash_skipping(b, skip)) {
                for &id in ids {
                    if within_one_edit(b, m.patterns[id as usize].word.as_bytes()) {
                        return Some((id, i + 1));
                    }
                }
            }
        }
    }
    None
}

/// Scans `text` with the intent patterns of `m`. Amounts, contacts and
/// engagement counts are only collected when `visitor` is true.
pub(crate) fn scan(c: &Compiled, m: &Matcher, text: &str, visitor: bool) -> Findings {
    let t = tokenize(text);
    let toks = &t.toks;
    let mut f = Findings::default();
    let window = usize::from(c.cfg.negation.window);
    // (term index, byte start) of the last "before" negator in this clause.
    let mut last_neg: Option<(usize, u32)> = None;
    let mut term = 0usize;
    let mut i = 0usize;
    while i < toks.len() {
        let tok = toks[i];
        if !is_term(tok.kind) {
            if tok.kind == Kind::Break {
                last_neg = None;
            }
            i += 1;
            continue;
        }
        if let Some((id, end)) = match_at(m, &t, i) {
            let intent = m.patterns[id as usize].intent;
            let mut hit = Hit {
                intent,
                negated: false,
                start: tok.start,
                end: toks[end - 1].end,
            };
            if c.intents[usize::from(intent)].negatable {
                if let Some((at, start)) = last_neg.filter(|&(at, _)| term - at <= window) {
                    let _ = at;
                    hit.negated = true;
                    hit.start = start;
                } else if let Some(neg_end) = negated_after(c, &t, end) {
                    hit.negated = true;
                    hit.end = neg_end;
                }
            }
            f.hits.push(hit);
            term += end - i;
            i = end;
            continue;
        }
        if tok.kind == Kind::Word {
            let w = t.norm(&tok);
            if c.neg_before.contains(w) {
                let next = toks.get(i + 1).filter(|n| n.kind == Kind::Word);
                let exempt =
                    next.is_some_and(|n| c.not_negations.contains(&(w.into(), t.norm(n).into())));
                if !exempt {
                    last_neg = Some((term, tok.start));
                }
            } else if c.clause_breaks.contains(w) {
                last_neg = None;
            }
        }
        term += 1;
        i += 1;
    }
    if visitor {
        f.words = term as u32;
        f.question = text.contains('?')
            || toks
                .iter()
                .find(|x| x.kind == Kind::Word)
                .is_some_and(|x| c.question_words.contains(t.norm(x)));
        amounts(c, &t, &mut f);
        if c.cfg.contact.detect_in_text {
            f.email_domain = toks
                .iter()
                .filter(|x| x.kind == Kind::Email)
                .find_map(|x| email_domain(t.norm(x)));
            f.phone = has_phone(text);
        }
    }
    f
}

/// Looks for a Hindi-order negator ("demo nahi chahiye") right after a match.
fn negated_after(c: &Compiled, t: &Tokens, from: usize) -> Option<u32> {
    t.toks[from..]
        .iter()
        .take_while(|x| is_term(x.kind))
        .take(usize::from(c.cfg.negation.after_window))
        .find(|x| x.kind == Kind::Word && c.neg_after.contains(t.norm(x)))
        .map(|x| x.end)
}

/// Extracts the domain of an e-mail-looking chunk, or `None` if it is not one.
pub(crate) fn email_domain(s: &str) -> Option<String> {
    let (local, domain) = s.rsplit_once('@')?;
    let domain = domain.trim_matches(|c: char| !c.is_alphanumeric());
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    valid.then(|| domain.to_lowercase())
}

/// A run of 10–13 digits, allowing the separators people type in phone
/// numbers, with at least one block of four digits so that "3 4 5 6 ..." lists
/// do not count.
pub(crate) fn has_phone(text: &str) -> bool {
    let (mut digits, mut block, mut longest) = (0u32, 0u32, 0u32);
    for b in text.bytes().chain(std::iter::once(b'x')) {
        if b.is_ascii_digit() {
            digits += 1;
            block += 1;
            longest = longest.max(block);
        } else if matches!(b, b' ' | b'-' | b'(' | b')' | b'+') {
            block = 0;
        } else {
            if (10..=13).contains(&digits) && longest >= 4 {
                return true;
            }
            (digits, block, longest) = (0, 0, 0);
        }
    }
    false
}

/// Finds "₹2 lakh", "Rs. 50000", "$10,000", "10k USD", "5k" (money) and
/// "500 units" (quantity), keeping the largest of each kind.
fn amounts(c: &Compiled, t: &Tokens, f: &mut Findings) {
    let toks = &t.toks;
    let word = |k: usize| -> Option<&str> {
        toks.get(k)
            .filter(|x| x.kind == Kind::Word)
            .map(|x| t.norm(x))
    };
    let unit_at = |k: usize| word(k).filter(|w| c.units.contains(stem(w))).map(|_| k);
    for (i, tok) in toks.iter().enumerate() {
        if tok.kind != Kind::Number {
            continue;
        }
        let mut start = tok.start;
        let mut rate = None;
        // "Rs. 500": the abbreviation dot is tokenised as a break.
        let before = match toks.get(i.wrapping_sub(1)) {
            Some(Token {
                kind: Kind::Break,
                brk: '.',
                ..
            }) => i.wrapping_sub(2),
            _ => i.wrapping_sub(1),
        };
        if let Some(r) = word(before).and_then(|w| c.currency.get(w)) {
            rate = Some(*r);
            start = toks[before].start;
        }
        let mut value = tok.value;
        let mut end = tok.end;
        let mut k = i + 1;
        let mut multiplied = false;
        if let Some(mul) = word(k).and_then(|w| c.multipliers.get(w)) {
            value *= mul;
            multiplied = true;
            end = toks[k].end;
            k += 1;
        }
        let kind = if let Some(r) = word(k).and_then(|w| c.currency.get(w)) {
            rate = rate.or(Some(*r));
            end = toks[k].end;
            AmountKind::Money
        } else if rate.is_some() {
            AmountKind::Money
        } else if let Some(u) = unit_at(k).or_else(|| {
            word(k)
                .filter(|w| c.quantity_fillers.contains(*w))
                .and_then(|_| unit_at(k + 1))
        }) {
            end = toks[u].end;
            AmountKind::Quantity
        } else if multiplied {
            AmountKind::Money
        } else if word(i.wrapping_sub(1)).is_some_and(|w| c.quantity_verbs.contains(stem(w)))
            && word(k).is_some()
        {
            end = toks[k].end;
            AmountKind::Quantity
        } else {
            continue;
        };
        if kind == AmountKind::Money {
            value *= rate.unwrap_or(c.default_rate);
        }
        let slot = &mut f.amounts[kind as usize];
        if slot.is_none_or(|a| value > a.value) {
            *slot = Some(Amount { value, start, end });
        }
    }
}
