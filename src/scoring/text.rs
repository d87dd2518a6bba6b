//! Hand-written tokeniser and word normalisation shared by the config compiler
//! and the message scanner.
//!
//! Both sides must normalise identically, otherwise a keyword written in the
//! config would never meet the same word typed by a visitor; that is why
//! stemming and tokenising live in one place.

use std::hash::{BuildHasherDefault, Hasher};

/// What a token is. Only `Word` and `Number` take part in phrase matching;
/// `Break` ends a clause (negation scope, phrases never cross it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    Number,
    Break,
    Email,
    Url,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Byte span in the original text, so evidence quotes the visitor verbatim.
    pub start: u32,
    pub end: u32,
    /// Byte span in the normalised buffer.
    pub nstart: u32,
    pub nend: u32,
    /// Parsed value for `Number`; punctuation char for `Break`.
    pub value: f64,
    pub brk: char,
}

/// A tokenised message: the lower-cased buffer plus token spans into it.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub norm: String,
    pub toks: Vec<Token>,
}

impl Tokens {
    pub fn norm(&self, t: &Token) -> &str {
        &self.norm[t.nstart as usize..t.nend as usize]
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '.' | ',' | '!' | '?' | ';' | ':' | '\n' | '…' | '।')
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | '‘')
}

fn is_word_char(c: char) -> bool {
    // '*' keeps censored profanity ("f***") as one token so it can be listed.
    c.is_alphabetic() || c == '*'
}

/// Currency symbols become one-character words so the amount parser can treat
/// "₹", "$" and "rs" the same way.
fn is_currency_symbol(c: char) -> bool {
    matches!(c, '₹' | '$' | '€' | '£')
}

/// Splits `text` into tokens in a single pass (plus one look-ahead per
/// whitespace-separated chunk for e-mails and URLs).
pub(crate) fn tokenize(text: &str) -> Tokens {
    let mut out = Tokens {
        norm: String::with_capacity(text.len()),
        toks: Vec::with_capacity(text.len() / 4 + 1),
    };
    let bytes = text.as_bytes();
    let mut chunk_start = true;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if c.is_whitespace() {
            chunk_start = true;
            if c == '\n' {
                push_break(&mut out, i, i + 1, c);
            }
            continue;
        }
        if chunk_start {
            chunk_start = false;
            let end = text[i..]
                .find(char::is_whitespace)
                .map_or(text.len(), |e| i + e);
            let chunk = &text[i..end];
            let kind = if chunk.contains('@') && chunk.len() > 3 {
                Some(Kind::Email)
            } else if chunk.starts_with("http://")
                || chunk.starts_with("https://")
                || chunk.starts_with("www.")
            {
                Some(Kind::Url)
            } else {
                None
            };
            if let Some(kind) = kind {
                let trimmed = chunk.trim_end_matches(|c: char| is_break(c) || c == ')');
                let ns = out.norm.len();
                out.norm.push_str(&trimmed.to_lowercase());
                out.toks.push(Token {
                    kind,
                    start: i as u32,
                    end: (i + trimmed.len()) as u32,
                    nstart: ns as u32,
                    nend: out.norm.len() as u32,
                    value: 0.0,
                    brk: ' ',
                });
                while iter.peek().is_some_and(|&(j, _)| j < end) {
                    iter.next();
                }
                continue;
            }
        }
        if c.is_ascii_digit() {
            let ns = out.norm.len();
            let mut end = i + 1;
            out.norm.push(c);
            while let Some(&(j, d)) = iter.peek() {
                let next_is_digit = bytes.get(j + 1).is_some_and(u8::is_ascii_digit);
                if d.is_ascii_digit() || ((d == ',' || d == '.') && next_is_digit) {
                    if d != ',' {
                        out.norm.push(d);
                    }
                    end = j + d.len_utf8();
                    iter.next();
                } else {
                    break;
                }
            }
            let value = out.norm[ns..].parse::<f64>().unwrap_or(0.0);
            out.toks.push(Token {
                kind: Kind::Number,
                start: i as u32,
                end: end as u32,
                nstart: ns as u32,
                nend: out.norm.len() as u32,
                value,
                brk: ' ',
            });
        } else if is_currency_symbol(c) {
            let ns = out.norm.len();
            out.norm.push(c);
            out.toks.push(word(i, i + c.len_utf8(), ns, out.norm.len()));
        } else if is_word_char(c) {
            let ns = out.norm.len();
            let mut end = i + c.len_utf8();
            push_lower(&mut out.norm, c);
            while let Some(&(j, d)) = iter.peek() {
                if is_word_char(d) {
                    push_lower(&mut out.norm, d);
                } else if is_apostrophe(d) && text[j + d.len_utf8()..].starts_with(is_word_char) {
                    // "don't" -> "dont": config lists negators without apostrophes.
                } else {
                    break;
                }
                end = j + d.len_utf8();
                iter.next();
            }
            out.toks.push(word(i, end, ns, out.norm.len()));
        } else if is_break(c) {
            push_break(&mut out, i, i + c.len_utf8(), c);
        }
        // Any other symbol ("-", "/", "&", quotes) only separates tokens.
    }
    out
}

fn word(start: usize, end: usize, nstart: usize, nend: usize) -> Token {
    Token {
        kind: Kind::Word,
        start: start as u32,
        end: end as u32,
        nstart: nstart as u32,
        nend: nend as u32,
        value: 0.0,
        brk: ' ',
    }
}

fn push_break(out: &mut Tokens, start: usize, end: usize, c: char) {
    let n = out.norm.len() as u32;
    out.toks.push(Token {
        kind: Kind::Break,
        start: start as u32,
        end: end as u32,
        nstart: n,
        nend: n,
        value: 0.0,
        brk: c,
    });
}

fn push_lower(buf: &mut String, c: char) {
    if c.is_ascii() {
        buf.push(c.to_ascii_lowercase());
    } else {
        buf.extend(c.to_lowercase());
    }
}

/// Light suffix stripping so "prices", "pricing", "priced" and "price" meet
/// at "pric". It is deliberately crude: it only has to be consistent, because
/// keywords go through the same function. Returns a sub-slice (no allocation).
pub(crate) fn stem(w: &str) -> &str {
    if !w.is_ascii() {
        return w;
    }
    let n = w.len();
    let cut = if (n > 5 && w.ends_with("ing")) || (n > 4 && w.ends_with("ies")) {
        3
    } else if (n > 4 && (w.ends_with("ed") || w.ends_with("es"))) || (n > 5 && w.ends_with("ly")) {
        2
    } else {
        usize::from(n > 3 && w.ends_with('s') && !w.ends_with("ss"))
    };
    let base = &w[..n - cut];
    let m = base.len();
    if m > 3 && (base.ends_with('e') || (m > 4 && base.ends_with('y'))) {
        &base[..m - 1]
    } else {
        base
    }
}

/// True when `a` and `b` differ by at most one insertion, deletion,
/// substitution or adjacent transposition.
pub(crate) fn within_one_edit(a: &[u8], b: &[u8]) -> bool {
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if p == la && p == lb {
        return true;
    }
    let (ra, rb) = (&a[p..], &b[p..]);
    if la == lb {
        let sub = ra[1..] == rb[1..];
        let swap = ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..];
        sub || swap
    } else if la > lb {
        ra[1..] == *rb
    } else {
        *ra == rb[1..]
    }
}

/// Hash of `bytes` with the byte at `skip` left out (`skip >= len` keeps all).
/// Used by the deletion-neighbourhood typo index, so it must not allocate.
pub(crate) fn hash_skipping(bytes: &[u8], skip: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, &b) in bytes.iter().enumerate() {
        if i != skip {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^ (h >> 29)
}

/// FNV-1a: the keys are short words, where SipHash's setup cost dominates.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<Fnv>>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stems_meet() {
        for w in ["price", "prices", "pricing", "priced"] {
            assert_eq!(stem(w), "pric", "{w}");
        }
        assert_eq!(stem("demos"), stem("demo"));
        assert_eq!(stem("vacancies"), stem("vacancy"));
        assert_eq!(stem("urgently"), stem("urgent"));
        assert_eq!(stem("rates"), stem("rate"));
        assert_eq!(stem("buy"), "buy");
    }

    #[test]
    fn one_edit() {
        assert!(within_one_edit(b"pricng", b"pricing"));
        assert!(within_one_edit(b"purchse", b"purchase"));
        assert!(within_one_edit(b"quotaton", b"quotation"));
        assert!(within_one_edit(b"pirce", b"price"));
        assert!(within_one_edit(b"demo", b"demo"));
        assert!(!within_one_edit(b"purchsae", b"purchase12"));
        assert!(!within_one_edit(b"quote", b"quota1"));
    }

    #[test]
    fn tokenizes_amounts_and_contacts() {
        let t =
            tokenize("Need 10,000 pcs, ₹2.5 lakh; mail a.b@acme.com or www.acme.com. Don't wait");
        let words: Vec<&str> = t.toks.iter().map(|x| t.norm(x)).collect();
        assert_eq!(
            words,
            [
                "need",
                "10000",
                "pcs",
                "",
                "₹",
                "2.5",
                "lakh",
                "",
                "mail",
                "a.b@acme.com",
                "or",
                "www.acme.com",
                "dont",
                "wait"
            ]
        );
        assert_eq!(t.toks[1].value, 10000.0);
        assert_eq!(t.toks[9].kind, Kind::Email);
        assert_eq!(t.toks[11].kind, Kind::Url);
    }

    #[test]
    fn splits_digits_from_letters() {
        let t = tokenize("5k USD, 2BHK");
        let words: Vec<&str> = t.toks.iter().map(|x| t.norm(x)).collect();
        assert_eq!(words, ["5", "k", "usd", "", "2", "bhk"]);
    }
}
