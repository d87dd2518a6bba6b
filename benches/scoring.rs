//! Cost of scoring one ~300-character visitor message (observe + evaluate),
//! which runs on every visitor event; the budget is 20 µs.

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use leadchat::scoring::{Engine, LeadTracker};

const MESSAGE: &str = "Hi, I'm the purchase manager at Shah Auto Components. We need a quotaton \
for 5000 pieces of aluminium die-cast housings, first lot by next month. Budget is around \
₹25 lakh, not interested in a long demo, but please call me today. What are your prices \
and lead times? kitna jaldi ho sakta hai?";

fn bench(c: &mut Criterion) {
    assert!((280..=330).contains(&MESSAGE.chars().count()));
    let engine = Engine::default();
    let t0 = Utc
        .with_ymd_and_hms(2025, 1, 1, 9, 0, 0)
        .single()
        .expect("valid date");
    let mut base = LeadTracker::new(t0);
    engine.observe_bot(&mut base, "Hello! How can we help?", t0);
    let at = t0 + Duration::seconds(20);
    c.bench_function("observe_visitor+evaluate 300 chars", |b| {
        b.iter(|| {
            let mut t = base.clone();
            engine.observe_visitor(&mut t, black_box(MESSAGE), at);
            black_box(engine.evaluate(&t, at))
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
