//! The archive's specification, run against both back ends.
//!
//! Every scenario is an `async fn(&Archive)`; `on_both_backends!` turns it
//! into `<name>::sqlite` (a fresh temp file) and `<name>::postgres` (a fresh
//! schema in the local server, dropped afterwards). A missing PostgreSQL fails
//! the postgres tests: a skipped back end is an untested back end.

mod support;
// The job runner and schedules (tests/archive/runner.rs).
#[path = "archive/runner.rs"]
mod runner;

use std::time::Duration;

use chrono::{Duration as Span, NaiveDate, Utc};
use leadchat::archive::{Archive, ArchiveError, ArchiveOutcome, MailStatus, SessionQuery};
use leadchat::archive::{Enqueued, JobState, NewJob};
use leadchat::domain::EndReason;
use leadchat::scoring::Priority;
use support::archive::{archive, archive_with, at, mail, session, signal};
use support::pg::Schema;

on_both_backends!(
    round_trip_keeps_every_field,
    unicode_text_round_trips,
    racing_archives_store_one_session_and_one_mail,
    outbox_moves_through_due_claim_retry_sent_failed,
    concurrent_claims_never_hand_out_a_mail_twice,
    a_held_mail_is_its_pipelines_until_the_hold_runs_out,
    list_filters_and_pages,
    counts_per_day_and_priority,
    a_start_makes_waiting_mails_due_and_leaves_live_claims_alone,
    render_attempts_are_counted_before_each_render,
    a_job_with_a_dedupe_key_is_enqueued_once,
    a_claimed_job_is_fenced_by_its_attempt_and_comes_back_when_its_lease_runs_out,
    a_failed_job_is_retried_when_asked_then_dead_and_can_be_retried_or_cancelled,
    a_job_whose_lease_ran_out_on_its_last_attempt_is_dead,
    racing_workers_never_claim_a_job_twice,
);

async fn round_trip_keeps_every_field(a: &Archive) {
    a.ping().await.expect("ping");
    let s = session("s-1", at(5, 12, 123_456));
    let mail_id = archive(a, &s).await;

    let got = a.get_session("s-1").await.expect("get").expect("present");
    assert_eq!(got.session, s);
    let m = got.mail.expect("mail queued with the session");
    assert_eq!(m.id, mail_id);
    assert_eq!(m.status, MailStatus::Pending);
    assert_eq!(m.attempts, 0);
    assert_eq!(m.recipients, mail("s-1").recipients);
    assert_eq!(m.message_id, "<session-s-1@example.com>");

    a.set_report_path("s-1", "/var/reports/s-1.pdf")
        .await
        .expect("set path");
    let got = a.get_session("s-1").await.expect("get").expect("present");
    assert_eq!(
        got.session.report_path.as_deref(),
        Some("/var/reports/s-1.pdf")
    );

    assert!(a.get_session("nope").await.expect("get").is_none());
    assert!(matches!(
        a.set_report_path("nope", "/x").await,
        Err(ArchiveError::SessionNotFound(_))
    ));
}

async fn unicode_text_round_trips(a: &Archive) {
    let mut s = session("s-ü-😀", at(6, 9, 1));
    s.name = Some("Zoë Ñandú 😀".to_owned());
    s.organization = Some("नमस्ते प्राइवेट लिमिटेड".to_owned());
    s.signals = vec![signal("語", 1, "“quoted” 'single' \\ back")];
    s.messages[0].text = "नमस्ते! 你好 👋🏽\n'; DROP TABLE sessions; --".to_owned();
    archive(a, &s).await;
    let got = a
        .get_session("s-ü-😀")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.session, s);
}

async fn racing_archives_store_one_session_and_one_mail(a: &Archive) {
    let s = session("race", at(7, 10, 0));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (a, s) = (a.clone(), s.clone());
            tokio::spawn(async move { a.archive_session(&s, &mail("race")).await })
        })
        .collect();
    let mut archived = 0;
    for racer in racers {
        match racer.await.expect("task").expect("archive") {
            ArchiveOutcome::Archived { .. } => archived += 1,
            ArchiveOutcome::AlreadyArchived => {}
        }
    }
    assert_eq!(archived, 1, "exactly one racer archives");
    let stats = a.mail_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.sent, stats.failed), (1, 0, 0));
    let page = a
        .list_sessions(&SessionQuery::default())
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    let got = a.get_session("race").await.expect("get").expect("present");
    assert_eq!(got.session.messages.len(), 2, "transcript stored once");
    // And a later retry is still a no-op.
    let again = a.archive_session(&s, &mail("race")).await.expect("again");
    assert_eq!(again, ArchiveOutcome::AlreadyArchived);
}

async fn outbox_moves_through_due_claim_retry_sent_failed(a: &Archive) {
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(archive(a, &session(&format!("o-{i}"), at(8, 10 + i, 0))).await);
    }
    let now = Utc::now();
    let due = a.due_mails(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids,
        "oldest first"
    );
    assert!(
        a.due_mails(now - Span::hours(1), 10)
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(a.due_mails(now, 2).await.expect("due").len(), 2, "limit");

    let lease = Duration::from_secs(300);
    let claimed = a.claim_due_mails(now, 10, lease).await.expect("claim");
    assert_eq!(claimed.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert!(claimed.iter().all(|m| m.next_attempt_at > now));
    assert!(
        a.claim_due_mails(now, 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    assert!(a.due_mails(now, 10).await.expect("due").is_empty());
    let after_lease = now + Span::seconds(301);
    assert_eq!(
        a.claim_due_mails(after_lease, 10, lease)
            .await
            .expect("claim")
            .len(),
        3
    );

    // Retry: counts the attempt and reschedules.
    let retry_at = at(9, 0, 250_000);
    a.mark_retry(ids[0], "421 try later", retry_at)
        .await
        .expect("retry");
    let m = a
        .get_session("o-0")
        .await
        .expect("get")
        .expect("s")
        .mail
        .expect("mail");
    assert_eq!((m.status, m.attempts), (MailStatus::Pending, 1));
    assert_eq!(m.last_error.as_deref(), Some("421 try later"));
    assert_eq!(m.next_attempt_at, retry_at);

    // Sent: final, clears the error.
    let sent_at = at(9, 1, 42);
    a.mark_sent(ids[0], sent_at).await.expect("sent");
    let m = a
        .get_session("o-0")
        .await
        .expect("get")
        .expect("s")
        .mail
        .expect("mail");
    assert_eq!(
        (m.status, m.attempts, m.sent_at),
        (MailStatus::Sent, 2, Some(sent_at))
    );
    assert_eq!(m.last_error, None);

    // Failed: permanent, never due again.
    a.mark_failed(ids[1], "550 no such user")
        .await
        .expect("failed");
    let m = a
        .get_session("o-1")
        .await
        .expect("get")
        .expect("s")
        .mail
        .expect("mail");
    assert_eq!(m.status, MailStatus::Failed);
    assert_eq!(m.last_error.as_deref(), Some("550 no such user"));

    let far = now + Span::days(1);
    let due = a.due_mails(far, 10).await.expect("due");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[2]]);

    // Finished mails cannot be rescheduled; unknown ids are reported.
    assert!(matches!(
        a.mark_retry(ids[0], "x", far).await,
        Err(ArchiveError::MailNotFound(_))
    ));
    assert!(matches!(
        a.mark_sent(9999, now).await,
        Err(ArchiveError::MailNotFound(9999))
    ));

    let stats = a.mail_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.sent, stats.failed), (1, 1, 1));
    assert!(stats.oldest_pending_due.is_some());
}

async fn concurrent_claims_never_hand_out_a_mail_twice(a: &Archive) {
    for i in 0..40 {
        archive(a, &session(&format!("c-{i}"), at(10, 0, i))).await;
    }
    let now = Utc::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = a
                        .claim_due_mails(now, 3, Duration::from_secs(60))
                        .await
                        .expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|m| m.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a mail was claimed twice");
    assert_eq!(count, 40, "every mail claimed");
}

async fn a_held_mail_is_its_pipelines_until_the_hold_runs_out(a: &Archive) {
    use chrono::SubsecRound;
    let now = Utc::now();
    let held_until = (now + Span::minutes(5)).trunc_subsecs(6);
    let lease = Duration::from_secs(120);
    let archive_held = |s: leadchat::archive::ArchivedSession| async move {
        let mut m = mail(&s.session_id);
        m.held_until = Some(held_until);
        archive_with(a, &s, &m).await
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(archive_held(session(&format!("h-{i}"), at(11, 0, i))).await);
    }
    assert!(
        a.claim_due_mails(now, 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "a poller must not take a held mail"
    );

    // The pipeline takes its mail back, once.
    let other_hold = held_until - Span::seconds(1);
    assert!(
        a.claim_held_mail(ids[0], other_hold, now, lease)
            .await
            .expect("claim held")
            .is_none(),
        "only the hold that was written takes the mail"
    );
    let mine = a
        .claim_held_mail(ids[0], held_until, now, lease)
        .await
        .expect("claim held")
        .expect("the pipeline's own hold");
    assert_eq!(mine.id, ids[0]);
    assert!(mine.next_attempt_at > now && mine.next_attempt_at < held_until);
    assert!(
        a.claim_held_mail(ids[0], held_until, now, lease)
            .await
            .expect("claim held")
            .is_none(),
        "taken once"
    );
    a.mark_sent(ids[0], now).await.expect("sent");

    // A pipeline slower than its hold: a poller takes the mail over, and
    // the pipeline's late claim finds it gone.
    let later = held_until + Span::seconds(1);
    let polled = a.claim_due_mails(later, 10, lease).await.expect("claim");
    assert_eq!(
        polled.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[2]]
    );
    assert!(
        a.claim_held_mail(ids[1], held_until, later, lease)
            .await
            .expect("claim held")
            .is_none(),
        "a mail a poller took is not sent twice"
    );
    assert!(
        !a.release_held_mail(ids[2], held_until, later)
            .await
            .expect("release"),
        "nor released from under the poller"
    );

    // A pipeline whose render failed hands the mail to the pollers at once.
    let mail_id = archive_held(session("h-3", at(11, 0, 3))).await;
    assert!(
        a.release_held_mail(mail_id, held_until, now)
            .await
            .expect("release")
    );
    let due = a.claim_due_mails(now, 10, lease).await.expect("claim");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), vec![mail_id]);
}

async fn a_start_makes_waiting_mails_due_and_leaves_live_claims_alone(a: &Archive) {
    let lease = Duration::from_secs(60);
    let waiting = archive(a, &session("w-1", at(12, 0, 1))).await;
    let claimed = archive(a, &session("w-2", at(12, 0, 2))).await;
    let now = Utc::now();
    let claims = a.claim_due_mails(now, 10, lease).await.expect("claim");
    assert_eq!(claims.len(), 2);
    // One send failed and waits ten minutes; the other is still in flight
    // (on PostgreSQL perhaps on another node).
    a.mark_retry(waiting, "421 try later", now + Span::minutes(10))
        .await
        .expect("retry");
    let released = a.release_claims_at_start(now).await.expect("release");
    let due: Vec<i64> = a
        .due_mails(now, 10)
        .await
        .expect("due")
        .into_iter()
        .map(|m| m.id)
        .collect();
    if a.backend_name() == "sqlite" {
        // One node: nobody else can hold a claim.
        assert_eq!((released, due), (2, vec![waiting, claimed]));
    } else {
        assert_eq!((released, due), (1, vec![waiting]));
    }
}

async fn render_attempts_are_counted_before_each_render(a: &Archive) {
    let mut held = mail("r-1");
    held.held_until = Some(Utc::now() + Span::minutes(5));
    let id = archive_with(a, &session("r-1", at(13, 0, 0)), &held).await;
    let stored = a.get_session("r-1").await.expect("get").expect("row");
    assert_eq!(
        stored.mail.expect("mail").render_attempts,
        1,
        "a held mail's pipeline renders next"
    );
    assert_eq!(a.count_render_attempt(id).await.expect("count"), 2);
    let later = Utc::now() + Span::minutes(1);
    a.defer_render(id, "render attempt 2 failed", later)
        .await
        .expect("defer");
    let stored = a.get_session("r-1").await.expect("get").expect("row");
    let m = stored.mail.expect("mail");
    assert_eq!((m.render_attempts, m.attempts), (2, 0), "no send was tried");
    assert_eq!(m.last_error.as_deref(), Some("render attempt 2 failed"));
    let unheld = archive(a, &session("r-2", at(13, 0, 1))).await;
    assert_eq!(a.count_render_attempt(unheld).await.expect("count"), 1);
    a.mark_sent(unheld, Utc::now()).await.expect("sent");
    assert!(
        a.count_render_attempt(unheld).await.is_err(),
        "a sent mail is never rendered again"
    );
}

async fn list_filters_and_pages(a: &Archive) {
    let priorities = [Priority::High, Priority::Medium, Priority::Low];
    for i in 0..25u32 {
        let mut s = session(&format!("l-{i:02}"), at(1 + i % 10, i % 24, 0));
        s.priority = priorities[i as usize % 3];
        s.end_reason = if i % 2 == 0 {
            EndReason::Inactivity
        } else {
            EndReason::Visitor
        };
        s.name = Some(format!("Visitor {i}"));
        if i == 7 {
            s.name = Some("ZOË Ünal".to_owned());
            s.organization = Some("100%_Real Corp".to_owned());
        }
        archive(a, &s).await;
    }
    let all = |q: SessionQuery| async move { a.list_sessions(&q).await.expect("list") };

    let page = all(SessionQuery {
        limit: 10,
        offset: 20,
        ..Default::default()
    })
    .await;
    assert_eq!((page.total, page.items.len()), (25, 5));
    let first = all(SessionQuery {
        limit: 25,
        ..Default::default()
    })
    .await;
    assert!(
        first
            .items
            .windows(2)
            .all(|w| w[0].finalized_at >= w[1].finalized_at),
        "newest first"
    );

    let high = all(SessionQuery {
        priority: Some("high".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(high.total, 9);
    assert!(high.items.iter().all(|s| s.priority == Priority::High));

    let left = all(SessionQuery {
        end_reason: Some("visitor".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(left.total, 12);

    // finalized_at in [March 3, March 5): days 3 and 4 -> i % 10 in {2, 3}.
    let range = all(SessionQuery {
        from: Some(at(3, 0, 0)),
        to: Some(at(5, 0, 0)),
        ..Default::default()
    })
    .await;
    assert_eq!(range.total, 6);

    // Case-insensitive, Unicode-aware, on name, e-mail and organization.
    for needle in ["zoë", "ZOË ü", "100%_real", "Visitor 1"] {
        let hit = all(SessionQuery {
            text: Some(needle.into()),
            ..Default::default()
        })
        .await;
        assert!(hit.total >= 1, "{needle} should match");
    }
    let hit = all(SessionQuery {
        text: Some("100%_real".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(hit.items[0].session_id, "l-07");
    let none = all(SessionQuery {
        text: Some("10_%".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        none.total, 0,
        "LIKE wildcards in the search text are literal"
    );
    let mail = all(SessionQuery {
        text: Some("ADA@EXAMPLE".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(mail.total, 25);

    // Mail status joins the outbox.
    let id = a
        .get_session("l-03")
        .await
        .expect("get")
        .expect("s")
        .mail
        .expect("m")
        .id;
    a.mark_sent(id, Utc::now()).await.expect("sent");
    let sent = all(SessionQuery {
        mail_status: Some(MailStatus::Sent),
        ..Default::default()
    })
    .await;
    assert_eq!(sent.total, 1);
    assert_eq!(sent.items[0].session_id, "l-03");
    assert_eq!(sent.items[0].mail_status, Some(MailStatus::Sent));
}

async fn counts_per_day_and_priority(a: &Archive) {
    let cases = [
        (1, "high"),
        (1, "high"),
        (1, "low"),
        (2, "medium"),
        (14, "high"),
    ];
    for (i, (day, priority)) in cases.iter().enumerate() {
        let mut s = session(&format!("d-{i}"), at(*day, 23, 999_999));
        s.priority = priority.parse().expect("a priority");
        archive(a, &s).await;
    }
    let counts = a
        .counts_by_day_and_priority(at(1, 0, 0))
        .await
        .expect("counts");
    let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).expect("date");
    assert_eq!(
        counts,
        vec![
            (day(1), "high".to_owned(), 2),
            (day(1), "low".to_owned(), 1),
            (day(2), "medium".to_owned(), 1),
            (day(14), "high".to_owned(), 1),
        ]
    );
    let recent = a
        .counts_by_day_and_priority(at(2, 0, 0))
        .await
        .expect("counts");
    assert_eq!(recent.len(), 2);
}

#[tokio::test]
async fn schema_can_be_named_in_the_url_and_passwords_stay_hidden() {
    let schema = Schema::new();
    // Trust auth ignores the password, so this connects.
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:5432/test?schema={}",
        schema.name
    );
    let archive = Archive::connect(&url).await.expect("connect");
    archive_and_check(&archive).await;
    let debug = format!("{archive:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("postgres"));

    let err = Archive::connect("postgres://postgres:hunter2@127.0.0.1:1/test")
        .await
        .expect_err("nothing listens on port 1");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let archive = Archive::connect("sqlite::memory:").await.expect("connect");
    archive_and_check(&archive).await;
}

#[tokio::test]
async fn unknown_url_schemes_are_rejected() {
    let err = Archive::connect("mysql://u:pw@h/db")
        .await
        .expect_err("unsupported");
    assert!(matches!(err, ArchiveError::InvalidUrl { .. }));
    assert!(!err.to_string().contains("pw@"));
}

async fn archive_and_check(a: &Archive) {
    let s = session("x", at(2, 2, 2));
    archive(a, &s).await;
    assert_eq!(
        a.get_session("x").await.expect("get").expect("s").session,
        s
    );
}

fn job(kind: &str, key: Option<&str>, due: chrono::DateTime<Utc>, max_attempts: i32) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        payload: serde_json::json!({"session_id": "s-1", "n": 1}),
        due_at: due,
        max_attempts,
        dedupe_key: key.map(str::to_owned),
        subject: Some("s-1".to_owned()),
    }
}

const LEASE: Duration = Duration::from_secs(60);

/// Whether a claim at `at` finds no job at all.
async fn nothing_due(a: &Archive, at: chrono::DateTime<Utc>) -> bool {
    a.claim_jobs(&[], at, 10, LEASE)
        .await
        .expect("claim")
        .is_empty()
}

async fn a_job_with_a_dedupe_key_is_enqueued_once(a: &Archive) {
    let now = at(20, 0, 0);
    let first = a
        .enqueue(&job("report.mail", Some("mail:s-1"), now, 3), now)
        .await
        .expect("enqueue");
    let second = a
        .enqueue(&job("report.mail", Some("mail:s-1"), now, 3), now)
        .await
        .expect("enqueue");
    assert!(matches!(first, Enqueued::Created(_)), "{first:?}");
    assert_eq!(second, Enqueued::Duplicate(first.id()));
    // Without a key every enqueue is a job.
    let x = a
        .enqueue(&job("webhook", None, now, 3), now)
        .await
        .expect("enqueue");
    let y = a
        .enqueue(&job("webhook", None, now, 3), now)
        .await
        .expect("enqueue");
    assert_ne!(x.id(), y.id());
    let stored = a.job(first.id()).await.expect("job").expect("stored");
    assert_eq!(stored.state, JobState::Pending);
    assert_eq!(
        stored.payload,
        serde_json::json!({"session_id": "s-1", "n": 1})
    );
    assert_eq!(stored.subject.as_deref(), Some("s-1"));
    assert_eq!(stored.due_at, now);
    // Only the kinds asked for are claimed.
    let mails = a
        .claim_jobs(&["report.mail"], now, 10, LEASE)
        .await
        .expect("claim");
    assert_eq!(mails.iter().map(|j| j.id).collect::<Vec<_>>(), [first.id()]);
    let rest = a.claim_jobs(&[], now, 10, LEASE).await.expect("claim");
    assert_eq!(rest.len(), 2);
    assert!(
        a.enqueue(&job("x", None, now, 0), now).await.is_err(),
        "max_attempts 0"
    );
}

async fn a_claimed_job_is_fenced_by_its_attempt_and_comes_back_when_its_lease_runs_out(
    a: &Archive,
) {
    let now = at(20, 0, 0);
    let id = a
        .enqueue(&job("k", None, now, 5), now)
        .await
        .expect("enqueue")
        .id();
    assert!(
        nothing_due(a, now - chrono::Duration::seconds(1)).await,
        "not due yet"
    );
    let first = a.claim_jobs(&[], now, 10, LEASE).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].state, first[0].attempts), (JobState::Running, 1));
    assert!(
        nothing_due(a, now + chrono::Duration::seconds(59)).await,
        "held by its lease"
    );
    // Its worker renews, then stops answering; the lease runs out.
    let renewed = now + chrono::Duration::seconds(90);
    assert!(
        a.renew_job(first[0].claim(), renewed, now)
            .await
            .expect("renew")
    );
    assert!(
        nothing_due(a, now + chrono::Duration::seconds(61)).await,
        "the renewed lease holds"
    );
    let later = renewed + chrono::Duration::seconds(1);
    let second = a.claim_jobs(&[], later, 10, LEASE).await.expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);
    // The first worker wakes up: its claim is fenced off.
    assert!(
        !a.complete_job(first[0].claim(), later)
            .await
            .expect("complete")
    );
    assert_eq!(
        a.fail_job(first[0].claim(), "late", Some(later), later)
            .await
            .expect("fail"),
        None
    );
    assert!(
        !a.renew_job(first[0].claim(), later, later)
            .await
            .expect("renew")
    );
    assert!(
        a.complete_job(second[0].claim(), later)
            .await
            .expect("complete")
    );
    let done = a.job(id).await.expect("job").expect("stored");
    assert_eq!(done.state, JobState::Done);
    assert!(nothing_due(a, later + chrono::Duration::hours(1)).await);
    assert!(
        !a.cancel_job(id, later).await.expect("cancel"),
        "done is done"
    );
    assert!(
        !a.retry_job(id, later).await.expect("retry"),
        "done is done"
    );
}

async fn a_failed_job_is_retried_when_asked_then_dead_and_can_be_retried_or_cancelled(a: &Archive) {
    let now = at(20, 0, 0);
    let id = a
        .enqueue(&job("k", None, now, 2), now)
        .await
        .expect("enqueue")
        .id();
    let first = a.claim_jobs(&[], now, 1, LEASE).await.expect("claim");
    let retry_at = now + chrono::Duration::seconds(30);
    assert_eq!(
        a.fail_job(first[0].claim(), "HTTP 503", Some(retry_at), now)
            .await
            .expect("fail"),
        Some(JobState::Pending)
    );
    let waiting = a.job(id).await.expect("job").expect("stored");
    assert_eq!(
        (waiting.due_at, waiting.last_error.as_deref()),
        (retry_at, Some("HTTP 503"))
    );
    assert!(nothing_due(a, now).await);
    let second = a.claim_jobs(&[], retry_at, 1, LEASE).await.expect("claim");
    assert_eq!(second[0].attempts, 2);
    // The last attempt: dead, whatever the caller asked.
    assert_eq!(
        a.fail_job(
            second[0].claim(),
            &"e".repeat(5000),
            Some(retry_at),
            retry_at
        )
        .await
        .expect("fail"),
        Some(JobState::Dead)
    );
    let dead = a.job(id).await.expect("job").expect("stored");
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.last_error.as_deref().map(str::len), Some(2000));
    assert_eq!(
        a.list_jobs(Some(JobState::Dead), Some("k"), 10)
            .await
            .expect("list")
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>(),
        [id]
    );
    // `leadchat jobs retry`: due now, with one more attempt.
    let later = retry_at + chrono::Duration::minutes(5);
    assert!(a.retry_job(id, later).await.expect("retry"));
    let third = a.claim_jobs(&[], later, 1, LEASE).await.expect("claim");
    assert_eq!((third.len(), third[0].attempts), (1, 3));
    // A failure retrying cannot mend: dead at once.
    assert_eq!(
        a.fail_job(third[0].claim(), "HTTP 410", None, later)
            .await
            .expect("fail"),
        Some(JobState::Dead)
    );
    // Cancel: only what has not run to its end.
    let other = a
        .enqueue(&job("k", None, later, 2), later)
        .await
        .expect("enqueue")
        .id();
    assert!(a.cancel_job(other, later).await.expect("cancel"));
    assert!(nothing_due(a, later).await);
    assert!(
        !a.cancel_job(id, later).await.expect("cancel"),
        "dead is not cancelled"
    );
    // Pruned once old enough, whatever their end.
    assert_eq!(a.prune_jobs(later).await.expect("prune"), 0);
    assert_eq!(
        a.prune_jobs(later + chrono::Duration::seconds(1))
            .await
            .expect("prune"),
        2
    );
    assert!(a.job(id).await.expect("job").is_none());
}

async fn a_job_whose_lease_ran_out_on_its_last_attempt_is_dead(a: &Archive) {
    let now = at(20, 0, 0);
    let id = a
        .enqueue(&job("k", None, now, 1), now)
        .await
        .expect("enqueue")
        .id();
    assert_eq!(
        a.claim_jobs(&[], now, 1, LEASE).await.expect("claim").len(),
        1
    );
    // Its node died mid-job; the lease runs out.
    let later = now + chrono::Duration::minutes(2);
    assert!(nothing_due(a, later).await);
    let dead = a.job(id).await.expect("job").expect("stored");
    assert_eq!(dead.state, JobState::Dead);
    assert!(dead.last_error.expect("why").contains("lease"));
}

async fn racing_workers_never_claim_a_job_twice(a: &Archive) {
    let now = at(20, 0, 0);
    for i in 0..60 {
        a.enqueue(&job("k", Some(&format!("r-{i}")), now, 3), now)
            .await
            .expect("enqueue");
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = a.claim_jobs(&[], now, 4, LEASE).await.expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    for j in batch {
                        assert!(a.complete_job(j.claim(), now).await.expect("complete"));
                        mine.push(j.id);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        (all.len(), count),
        (60, 60),
        "a job was claimed twice or lost"
    );
}
