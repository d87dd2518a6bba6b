//! The whole finalize path after the guard, as the ReportActor and the
//! MailerActor run it, minus the network: archive (SQLite, one transaction),
//! render the PDF (200 messages), compose the mail and hand it to the `.eml`
//! transport. Run: `cargo bench --bench finalize -- --measurement-time 8`

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use leadchat::archive::{Archive, ArchivedMessage, ArchivedSession, NewMail};
use leadchat::mail::{MailTransport, compose_report_mail};
use leadchat::report::{Brand, ReportRenderer, convert, default_fonts_dir};

fn session(id: &str) -> ArchivedSession {
    let now = Utc::now();
    ArchivedSession {
        session_id: id.to_owned(),
        name: Some("Priya Shah".into()),
        email: Some("priya@acme-plastics.in".into()),
        phone: Some("+91 98765 43210".into()),
        organization: Some("Acme Plastics".into()),
        lead_score: 72,
        priority: leadchat::scoring::Priority::High,
        engagement_score: 7,
        total_queries: 100,
        signals: vec![leadchat::scoring::Signal {
            name: "pricing".into(),
            points: 10,
            evidence: "pricing".into(),
        }],
        first_interaction: now,
        last_interaction: now,
        finalized_at: now,
        end_reason: leadchat::domain::EndReason::Inactivity,
        node: "bench".into(),
        report_path: None,
        messages: (0..200)
            .map(|i| ArchivedMessage {
                seq: i + 1,
                role: if i % 2 == 0 {
                    leadchat::domain::Role::User
                } else {
                    leadchat::domain::Role::Bot
                },
                text: format!("Message {i}: what does EPR registration cost for 500 tonnes of packaging? 🙂 मूल्य"),
                at: now,
            })
            .collect(),
    }
}

fn bench_finalize(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let archive = rt.block_on(Archive::connect(&url)).expect("archive");
    let renderer = ReportRenderer::new(None, &default_fonts_dir()).expect("renderer");
    let transport = MailTransport::outbox(dir.path().join("outbox"));
    let brand = Brand {
        name: "GreenCycle".into(),
        color: "#1a7f37".into(),
        logo: None,
    };
    let mut group = c.benchmark_group("finalize");
    group.sample_size(20);
    group.bench_function("archive_render_compose_write_200_messages", |b| {
        b.iter(|| {
            let id = ulid::Ulid::new().to_string();
            let s = session(&id);
            rt.block_on(async {
                let mail = NewMail {
                    recipients: vec!["sales@example.com".into()],
                    subject: "s".into(),
                    message_id: format!("<session-{id}@bench>"),
                    held_until: None,
                };
                archive.archive_session(&s, &mail).await.expect("archive");
                let pdf = renderer
                    .render(&convert::report_data(&s, &brand))
                    .expect("render");
                let ctx = convert::mail_context(
                    &s,
                    "leadchat@example.com",
                    &["sales@example.com".to_owned()],
                    "GreenCycle",
                    leadchat::mail::ReportFile::Pdf(pdf),
                );
                let message = compose_report_mail(&ctx).expect("compose");
                transport.send(&message).await.expect("write .eml");
            });
        })
    });
    group.finish();
}

criterion_group!(benches, bench_finalize);
criterion_main!(benches);
