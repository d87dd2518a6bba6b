//! Golden table: realistic conversations with the priority a competent sales
//! lead would give them (written before running the engine). The engine must
//! agree on at least 90% and never be two or more levels off.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use leadchat::scoring::{ContactFacts, Engine, LeadTracker, Priority};
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    conversation: Vec<Conversation>,
}

#[derive(Deserialize)]
struct Conversation {
    id: String,
    industry: String,
    expected: Priority,
    #[serde(default)]
    contact: Option<Contact>,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Contact {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    organization: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    at: i64,
    text: String,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 10, 0, 0).unwrap()
}

fn run(engine: &Engine, c: &Conversation) -> leadchat::scoring::LeadScore {
    let t0 = start();
    let mut t = LeadTracker::new(t0);
    let mut last = t0;
    for m in &c.messages {
        let at = t0 + Duration::seconds(m.at);
        last = at;
        match m.from.as_str() {
            "visitor" => engine.observe_visitor(&mut t, &m.text, at),
            "bot" => engine.observe_bot(&mut t, &m.text, at),
            other => panic!("{}: unknown sender {other}", c.id),
        }
    }
    if let Some(k) = &c.contact {
        engine.observe_contact(
            &mut t,
            &ContactFacts {
                name: k.name.as_deref(),
                email: k.email.as_deref(),
                phone: k.phone.as_deref(),
                organization: k.organization.as_deref(),
            },
        );
    }
    engine.evaluate(&t, last)
}

fn load() -> Table {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/conversations.toml"
    );
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn golden_table_agreement() {
    let table = load();
    let engine = Engine::default();
    let total = table.conversation.len();
    assert!(total >= 40, "golden table has only {total} conversations");
    let mut agree = 0;
    let mut far = Vec::new();
    for c in &table.conversation {
        let s = run(&engine, c);
        let diff = (s.priority as i32 - c.expected as i32).abs();
        if diff == 0 {
            agree += 1;
            continue;
        }
        println!(
            "DISAGREE {:<32} [{}] expected {:<8} got {:<8} score {:>4} eng {:>2}",
            c.id, c.industry, c.expected, s.priority, s.lead_score, s.engagement_score
        );
        for sig in &s.signals {
            println!("    {:>4}  {:<18} {}", sig.points, sig.name, sig.evidence);
        }
        if diff >= 2 {
            far.push(c.id.clone());
        }
    }
    let pct = 100.0 * agree as f64 / total as f64;
    println!("golden agreement: {agree}/{total} = {pct:.1}%");
    assert!(far.is_empty(), "two or more levels off: {far:?}");
    assert!(pct >= 90.0, "agreement {pct:.1}% < 90%");
}

/// Handy when tuning: `cargo test --test scoring_golden dump -- --ignored --nocapture`.
#[test]
#[ignore]
fn dump() {
    let engine = Engine::default();
    for c in &load().conversation {
        let s = run(&engine, c);
        println!(
            "{:<32} expected {:<8} got {:<8} score {:>4} eng {:>2}",
            c.id, c.expected, s.priority, s.lead_score, s.engagement_score
        );
        for sig in &s.signals {
            println!("    {:>4}  {:<18} {}", sig.points, sig.name, sig.evidence);
        }
    }
}
