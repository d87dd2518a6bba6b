//! One test per signal family: detection (case, inflection, typos, Hinglish),
//! negation, amounts, contact, conversion, engagement, config errors, replay.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use leadchat::scoring::{
    ContactFacts, Engine, LeadScore, LeadTracker, Priority, ScoringConfig, ScoringError, Signal,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 9, 0, 0).unwrap()
}

/// Scores a visitor-only conversation.
fn score(msgs: &[&str]) -> LeadScore {
    let e = Engine::default();
    let mut t = LeadTracker::new(t0());
    for (i, m) in msgs.iter().enumerate() {
        e.observe_visitor(&mut t, m, t0() + Duration::seconds(i as i64 * 10));
    }
    e.evaluate(&t, t0() + Duration::seconds(600))
}

fn sig<'a>(s: &'a LeadScore, name: &str) -> Option<&'a Signal> {
    s.signals.iter().find(|x| x.name == name)
}

fn has(text: &str, name: &str) -> bool {
    sig(&score(&[text]), name).is_some()
}

#[test]
fn pricing_inflections_case_typos_and_hinglish() {
    for t in [
        "What are your PRICES?",
        "pricing pls",
        "how is it priced",
        "send me a quotation",
        "need a quotaton",
        "pricng for 10 users?",
        "kitna price hai",
        "rate kya hai bhai",
        "how much for the basic plan",
    ] {
        assert!(has(t, "pricing"), "{t}");
    }
    assert!(!has("we had a great time", "pricing"));
}

#[test]
fn pricing_counts_once_however_often_repeated() {
    let msgs = ["price"; 10];
    let s = score(&msgs);
    let p: Vec<_> = s.signals.iter().filter(|x| x.name == "pricing").collect();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].points, 10);
    assert_eq!(s.priority, Priority::Low, "{s:?}");
}

#[test]
fn demo_and_meeting_including_hinglish() {
    for t in [
        "Can I get a demo?",
        "demo chahiye",
        "please call karo",
        "can we schedule a meeting",
        "I want to book a site visit",
        "need an appointment",
    ] {
        assert!(has(t, "demo"), "{t}");
    }
}

#[test]
fn negation_removes_or_inverts_intents() {
    let s = score(&["Not interested in a demo, and I don't need pricing."]);
    assert!(sig(&s, "demo").is_none(), "{s:?}");
    assert!(sig(&s, "pricing").is_none(), "{s:?}");
    assert!(!has("demo nahi chahiye", "demo"));
    let s = score(&["no budget right now"]);
    assert!(sig(&s, "budget").is_none());
    assert_eq!(sig(&s, "no_budget").unwrap().points, -8);
    assert_eq!(sig(&s, "no_budget").unwrap().evidence, "no budget");
    // Negation does not leak across a clause break.
    assert!(has("no, I want the pricing", "pricing"));
    // "not sure" is not a negation.
    assert!(has("not sure about the pricing", "pricing"));
}

#[test]
fn latest_stance_wins() {
    let s = score(&["no budget yet", "ok we have budget now"]);
    assert!(sig(&s, "no_budget").is_none());
    assert_eq!(sig(&s, "budget").unwrap().points, 8);
}

#[test]
fn purchase_with_quantity_and_typos() {
    let s = score(&["We want to purchse 500 units"]);
    let p = sig(&s, "purchase").unwrap();
    assert_eq!(p.points, 20);
    assert_eq!(p.evidence, "purchse 500 units");
    assert!(has("kharidna hai", "purchase"));
    // A bare quantity still implies purchase intent.
    assert_eq!(
        sig(&score(&["for 5k pcs"]), "purchase").unwrap().evidence,
        "5k pcs"
    );
    assert!(has("need 30 monitors", "purchase"));
    assert_eq!(
        sig(&score(&["add 40 more seats"]), "purchase")
            .unwrap()
            .evidence,
        "40 more seats"
    );
}

#[test]
fn money_amounts_in_indian_and_foreign_forms() {
    let cases = [
        ("budget ₹2 lakh", "₹2 lakh", 10),
        ("around 2 crore", "2 crore", 18),
        ("we can spend $10,000", "$10,000", 10),
        ("10k USD is ok", "10k USD", 10),
        ("max Rs. 50000", "Rs. 50000", 6),
        ("5k", "5k", 6),
        ("budget hai 70 lakh tak", "70 lakh", 14),
    ];
    for (text, ev, points) in cases {
        let s = score(&[text]);
        let b = sig(&s, "budget").unwrap_or_else(|| panic!("{text}: {s:?}"));
        assert!(b.evidence.contains(ev), "{text}: {b:?}");
        assert_eq!(b.points, points, "{text}: {b:?}");
    }
    // Phone numbers and plain numbers are not money.
    assert!(!has("call 9876543210", "budget"));
    assert!(!has("class 5 admission", "budget"));
}

#[test]
fn urgency_decision_maker_competitor() {
    assert!(has("jaldi chahiye", "urgency"));
    assert!(has("we need it within 3 weeks", "urgency"));
    assert!(has("URGENTLY!!", "urgency"));
    assert!(has("I'm the founder", "decision_maker"));
    assert!(has("I am the purchase manager", "decision_maker"));
    assert!(!has("I am the purchase manager", "purchase"));
    assert!(has("we currently use Zendesk", "competitor"));
    assert!(has("how do you compare with them", "competitor"));
}

#[test]
fn negative_intents_and_caps() {
    let s = score(&["my order is not working, I want a refund"]);
    assert_eq!(sig(&s, "support").unwrap().points, -15);
    for t in ["naukri chahiye", "job chahiye sir", "any vacancies?"] {
        assert!(has(t, "job_seeker"), "{t}");
    }
    // A job seeker stays low however eager they sound.
    let s = score(&["job chahiye urgently, I am the owner of my career, call me, budget 10 lakh"]);
    assert_eq!(s.priority, Priority::Low, "{s:?}");
    let s = score(&["We offer SEO services and backlinks, whatsapp now"]);
    assert!(sig(&s, "spam").is_some());
    assert_eq!(s.priority, Priority::Low);
    assert!(has("you are an idiot", "abuse"));
}

#[test]
fn contact_completeness_and_domains() {
    let e = Engine::default();
    let mut t = LeadTracker::new(t0());
    e.observe_contact(
        &mut t,
        &ContactFacts {
            name: Some("Asha"),
            email: Some("asha@acme-industries.com"),
            phone: Some("+91 98765 43210"),
            organization: Some("Acme Industries"),
        },
    );
    let s = e.evaluate(&t, t0());
    assert_eq!(
        sig(&s, "business_email").unwrap().evidence,
        "acme-industries.com"
    );
    for n in ["name", "email", "phone", "organization"] {
        assert!(sig(&s, n).is_some(), "{n}");
    }
    // A later partial update does not erase what is known.
    e.observe_contact(&mut t, &ContactFacts::default());
    assert_eq!(e.evaluate(&t, t0()), s);

    for (mail, kind) in [
        ("x@gmail.com", "free_email"),
        ("x@yahoo.co.in", "free_email"),
        ("x@rediffmail.com", "free_email"),
        ("x@proton.me", "free_email"),
        ("x@mailinator.com", "disposable_email"),
        ("x@tatasteel.com", "business_email"),
    ] {
        let mut t = LeadTracker::new(t0());
        e.observe_contact(
            &mut t,
            &ContactFacts {
                email: Some(mail),
                ..Default::default()
            },
        );
        assert!(sig(&e.evaluate(&t, t0()), kind).is_some(), "{mail}");
    }
    // Details typed into the chat count too.
    let s = score(&["mail me at ravi@shaktipumps.in or call +91 98110 22334."]);
    assert_eq!(
        sig(&s, "business_email").unwrap().evidence,
        "shaktipumps.in"
    );
    assert!(sig(&s, "phone").is_some());
}

#[test]
fn bot_conversion_moments() {
    let e = Engine::default();
    let mut t = LeadTracker::new(t0());
    e.observe_visitor(&mut t, "hello", t0());
    e.observe_bot(&mut t, "Thanks! We will call you within 24 hours.", t0());
    let s = e.evaluate(&t, t0());
    assert!(sig(&s, "callback_promised").is_some());
    assert_eq!(s.priority, Priority::Medium, "callback floors at medium");
    e.observe_bot(&mut t, "Your demo is booked for Friday 6 PM.", t0());
    let s = e.evaluate(&t, t0());
    assert_eq!(sig(&s, "booking_confirmed").unwrap().evidence, "is booked");
    assert_eq!(s.priority, Priority::High, "booking floors at high");
    // The visitor saying the phrase is not a conversion.
    assert!(!has("is booked", "booking_confirmed"));
    // Nor is a bot's generic question.
    let mut t = LeadTracker::new(t0());
    e.observe_bot(&mut t, "Would you like a demo?", t0());
    assert!(e.evaluate(&t, t0()).signals.is_empty());
}

#[test]
fn engagement_grows_with_depth_and_responsiveness() {
    let e = Engine::default();
    let mut t = LeadTracker::new(t0());
    assert_eq!(e.evaluate(&t, t0()).engagement_score, 0);
    let mut at = t0();
    for q in [
        "What integrations do you support for Tally and Zoho Books exactly?",
        "How does the approval workflow handle multiple branches and cost centres?",
        "Can we host the data in India, and what happens during an outage?",
        "Which reports can the finance team export every month to Excel?",
    ] {
        e.observe_bot(&mut t, "Good question.", at);
        at += Duration::seconds(15);
        e.observe_visitor(&mut t, q, at);
        at += Duration::seconds(200);
    }
    let s = e.evaluate(&t, at);
    assert!(s.engagement_score >= 8, "{s:?}");
    assert!(s.engagement_score <= 10);
    let eng = sig(&s, "engagement").unwrap();
    assert_eq!(eng.points, i32::from(s.engagement_score));
    assert!(eng.evidence.contains("4 msgs"), "{eng:?}");
}

#[test]
fn lead_score_is_sum_of_signals() {
    let s = score(&["I'm the CTO, need pricing for 300 seats and a demo this week"]);
    assert_eq!(
        s.lead_score,
        s.signals.iter().map(|x| x.points).sum::<i32>()
    );
}

/// A session restored after a restart replays its transcript; the tracker
/// and the score must be exactly what live observation produced.
#[test]
fn replay_equals_live() {
    let e = Engine::default();
    let transcript: Vec<(bool, &str, i64)> = vec![
        (false, "Hi! How can I help?", 0),
        (true, "rate kya hai? 500 pcs kharidna hai", 12),
        (false, "Rs 310 per piece. Can I call you?", 15),
        (
            true,
            "haan call karo, no budget issue, upto 2 lakh. rohit@mehra.in",
            40,
        ),
        (false, "Our team will call you within 24 hours.", 44),
        (true, "price price price", 60),
    ];
    let mut live = LeadTracker::new(t0());
    let mut live_scores = Vec::new();
    for (bot, text, s) in &transcript {
        let at = t0() + Duration::seconds(*s);
        if *bot {
            e.observe_visitor(&mut live, text, at);
        } else {
            e.observe_bot(&mut live, text, at);
        }
        live_scores.push(e.evaluate(&live, at));
    }
    let engine2 = e.clone();
    let mut replayed = LeadTracker::new(t0());
    for (bot, text, s) in &transcript {
        let at = t0() + Duration::seconds(*s);
        if *bot {
            engine2.observe_visitor(&mut replayed, text, at);
        } else {
            engine2.observe_bot(&mut replayed, text, at);
        }
    }
    assert_eq!(live, replayed);
    let end = t0() + Duration::seconds(60);
    assert_eq!(
        live_scores.last().unwrap(),
        &engine2.evaluate(&replayed, end)
    );
    assert!(live.approx_bytes() < 1024, "{} bytes", live.approx_bytes());
}

#[test]
fn config_errors_name_the_key() {
    let base = leadchat::scoring::DEFAULT_CONFIG_TOML;
    let bad = base.replace("critical = 80", "critical = 10");
    let err = ScoringConfig::from_toml_str(&bad).unwrap_err();
    assert!(
        matches!(&err, ScoringError::Invalid { key, .. } if key == "priority"),
        "{err}"
    );

    let bad = base.replace(
        "[intents.pricing]\npoints = 10",
        "[intents.pricing]\npoints = 10\nmax_count = 0",
    );
    let err = ScoringConfig::from_toml_str(&bad).unwrap_err().to_string();
    assert!(err.contains("intents.pricing.max_count"), "{err}");

    let bad = base.replace("points_per_level", "points_per_lvl");
    let err = ScoringConfig::from_toml_str(&bad).unwrap_err().to_string();
    assert!(err.contains("points_per_lvl"), "{err}");

    let mut cfg = ScoringConfig::default();
    cfg.intents
        .get_mut("demo")
        .unwrap()
        .keywords
        .push("# days".into());
    let err = Engine::new(cfg).unwrap_err().to_string();
    assert!(err.contains("intents.demo.keywords["), "{err}");

    let err = ScoringConfig::load(std::path::Path::new("/nonexistent.toml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent.toml"));
}

#[test]
fn priority_text_round_trip() {
    for p in Priority::ALL {
        assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
        assert_eq!(p.to_string(), p.as_str());
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
    }
    assert!("urgent".parse::<Priority>().is_err());
    assert!(Priority::Low < Priority::Critical);
}

#[test]
fn engine_is_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<LeadTracker>();
}
