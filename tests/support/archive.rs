//! The archive tests' fixtures: a fresh archive per test on each back end,
//! and sample sessions.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use leadchat::archive::{Archive, ArchiveOutcome, ArchivedMessage, ArchivedSession, NewMail};
use leadchat::domain::{EndReason, Role};
use leadchat::scoring::{Priority, Signal};

use super::pg::{PG_URL, Schema};

pub struct TestArchive {
    pub archive: Archive,
    pub _cleanup: Cleanup,
}

/// What a test archive leaves behind, removed when dropped.
pub enum Cleanup {
    Dir(tempfile::TempDir),
    Schema(Schema),
}

pub async fn sqlite() -> TestArchive {
    let dir = tempfile::tempdir().expect("temp dir");
    // A nested, not yet existing folder: connect must create it.
    let url = format!("sqlite://{}/nested/archive.db", dir.path().display());
    let archive = Archive::connect(&url).await.expect("open sqlite archive");
    TestArchive {
        archive,
        _cleanup: Cleanup::Dir(dir),
    }
}

pub async fn postgres() -> TestArchive {
    let schema = Schema::new();
    let archive = Archive::connect_with_schema(PG_URL, &schema.name)
        .await
        .expect("PostgreSQL must be running at 127.0.0.1:5432 (database `test`)");
    TestArchive {
        archive,
        _cleanup: Cleanup::Schema(schema),
    }
}

#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::support::archive::sqlite().await;
                super::$name(&t.archive).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::support::archive::postgres().await;
                super::$name(&t.archive).await;
            }
        }
    )*};
}

/// A timestamp with microseconds, the precision both back ends keep.
pub fn at(day: u32, hour: u32, micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, hour, 0, 0)
        .single()
        .expect("valid date")
        + Span::microseconds(micros)
}

pub fn signal(name: &str, points: i32, evidence: &str) -> Signal {
    Signal {
        name: name.to_owned(),
        points,
        evidence: evidence.to_owned(),
    }
}

pub fn session(id: &str, finalized_at: DateTime<Utc>) -> ArchivedSession {
    ArchivedSession {
        session_id: id.to_owned(),
        name: Some("Ada Lovelace".to_owned()),
        email: Some("ada@example.com".to_owned()),
        phone: Some("+44 20 7946 0000".to_owned()),
        organization: Some("Analytical Engines Ltd".to_owned()),
        lead_score: 72,
        priority: Priority::High,
        engagement_score: 40,
        total_queries: 2,
        signals: vec![
            signal("pricing", 20, "how much is it?"),
            signal("contact", 15, "ada@example.com"),
        ],
        first_interaction: finalized_at - Span::minutes(10),
        last_interaction: finalized_at - Span::minutes(1),
        finalized_at,
        end_reason: EndReason::Inactivity,
        node: "node-a".to_owned(),
        report_path: None,
        messages: vec![
            ArchivedMessage {
                seq: 0,
                role: Role::User,
                text: "how much is it?".to_owned(),
                at: finalized_at - Span::minutes(10),
            },
            ArchivedMessage {
                seq: 1,
                role: Role::Bot,
                text: "Plans start at 10 €/month.".to_owned(),
                at: finalized_at - Span::minutes(9) + Span::microseconds(500_000),
            },
        ],
    }
}

pub fn mail(id: &str) -> NewMail {
    NewMail {
        recipients: vec!["sales@example.com".to_owned(), "ceo@example.com".to_owned()],
        subject: format!("Acme Session Report - {id}"),
        message_id: format!("<session-{id}@example.com>"),
        held_until: None,
    }
}

pub async fn archive(a: &Archive, s: &ArchivedSession) -> i64 {
    archive_with(a, s, &mail(&s.session_id)).await
}

/// Archives `s` with its report mail `m`; the new mail's id.
pub async fn archive_with(a: &Archive, s: &ArchivedSession, m: &NewMail) -> i64 {
    match a.archive_session(s, m).await {
        Ok(ArchiveOutcome::Archived { mail_id }) => mail_id,
        other => panic!("expected Archived, got {other:?}"),
    }
}
