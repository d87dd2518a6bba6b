//! The bot's side of the conversation. `Responder` is the seam for a smarter
//! bot later; `KnowledgeBase` answers from `config/knowledge.toml`.

use std::path::Path;

use serde::Deserialize;

/// What a responder may look at to answer one visitor message.
#[derive(Debug, Clone, Copy)]
pub struct ReplyContext<'a> {
    pub text: &'a str,
    pub contact_collected: bool,
    /// Visitor messages so far, this one included.
    pub visitor_messages: u32,
}

pub trait Responder: Send + Sync + 'static {
    /// Opens every new session's history as `seq` 1, when set.
    fn greeting(&self) -> Option<&str>;
    fn reply(&self, ctx: &ReplyContext<'_>) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("cannot read knowledge base {path}: {message}")]
    Read { path: String, message: String },
    #[error("knowledge base {path} is invalid: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct KnowledgeEntry {
    pub question: String,
    pub keywords: Vec<String>,
    pub answer: String,
    /// Used instead of `answer` once the visitor has left contact details
    /// (e.g. a callback confirmation instead of a request for a number).
    pub answer_with_contact: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KnowledgeBase {
    pub greeting: Option<String>,
    pub fallback: String,
    /// Appended to an answer while the visitor has not left contact details.
    pub contact_prompt: Option<String>,
    #[serde(rename = "entry", default)]
    pub entries: Vec<KnowledgeEntry>,
    #[serde(skip)]
    compiled: Vec<Vec<Vec<String>>>,
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl KnowledgeBase {
    pub fn load(path: &Path) -> Result<Self, KnowledgeError> {
        let text = std::fs::read_to_string(path).map_err(|e| KnowledgeError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|message| KnowledgeError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        let mut kb: KnowledgeBase = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, entry) in kb.entries.iter().enumerate() {
            if entry.keywords.iter().all(|k| words(k).is_empty()) {
                return Err(format!(
                    "entry {} ({:?}) has no keywords",
                    i + 1,
                    entry.question
                ));
            }
        }
        kb.compiled = kb
            .entries
            .iter()
            .map(|e| {
                e.keywords
                    .iter()
                    .map(|k| words(k))
                    .filter(|w| !w.is_empty())
                    .collect()
            })
            .collect();
        Ok(kb)
    }

    /// The entry whose keywords cover most of the message's words; a
    /// multi-word keyword counts for each of its words, so specific phrases
    /// beat generic ones.
    fn best_entry(&self, text: &str) -> Option<&KnowledgeEntry> {
        let message = words(text);
        let contains = |phrase: &[String]| {
            message.windows(phrase.len()).any(|w| {
                w.iter()
                    .zip(phrase)
                    .all(|(a, b)| a == b || (b.len() > 3 && a.starts_with(b.as_str())))
            })
        };
        self.compiled
            .iter()
            .zip(&self.entries)
            .map(|(keywords, entry)| {
                let score: usize = keywords.iter().filter(|k| contains(k)).map(Vec::len).sum();
                (score, entry)
            })
            .filter(|(score, _)| *score > 0)
            .max_by_key(|(score, _)| *score)
            .map(|(_, entry)| entry)
    }
}

impl Responder for KnowledgeBase {
    fn greeting(&self) -> Option<&str> {
        self.greeting.as_deref()
    }

    fn reply(&self, ctx: &ReplyContext<'_>) -> String {
        let Some(entry) = self.best_entry(ctx.text) else {
            return self.fallback.clone();
        };
        match (&entry.answer_with_contact, ctx.contact_collected) {
            (Some(answer), true) => answer.clone(),
            _ => match (&self.contact_prompt, ctx.contact_collected) {
                (Some(prompt), false) if ctx.visitor_messages >= 2 => {
                    format!("{} {}", entry.answer, prompt)
                }
                _ => entry.answer.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KB: &str = r#"
        greeting = "Hi!"
        fallback = "Leave your details and we will get back to you."
        contact_prompt = "May I have your e-mail?"
        [[entry]]
        question = "Pricing"
        keywords = ["price", "cost", "quote"]
        answer = "Plans start at 10k."
        [[entry]]
        question = "Demo"
        keywords = ["demo", "book a call"]
        answer = "Happy to show you."
        answer_with_contact = "We will call you within 24 hours."
    "#;

    #[test]
    fn answers_by_keyword_and_inflection() {
        let kb = KnowledgeBase::from_toml(KB).expect("valid");
        let ctx = ReplyContext {
            text: "What are your PRICES?",
            contact_collected: false,
            visitor_messages: 1,
        };
        assert_eq!(kb.reply(&ctx), "Plans start at 10k.");
    }

    #[test]
    fn confirms_a_callback_once_contact_is_known() {
        let kb = KnowledgeBase::from_toml(KB).expect("valid");
        let ctx = ReplyContext {
            text: "can I book a call",
            contact_collected: true,
            visitor_messages: 3,
        };
        assert_eq!(kb.reply(&ctx), "We will call you within 24 hours.");
    }

    #[test]
    fn falls_back_and_invites_contact() {
        let kb = KnowledgeBase::from_toml(KB).expect("valid");
        let ctx = ReplyContext {
            text: "hmm",
            contact_collected: false,
            visitor_messages: 1,
        };
        assert!(kb.reply(&ctx).contains("details"));
    }

    #[test]
    fn the_shipped_knowledge_base_loads() {
        let kb = KnowledgeBase::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/knowledge.toml"
        )))
        .expect("config/knowledge.toml is valid");
        assert!(kb.entries.len() >= 8);
    }
}
