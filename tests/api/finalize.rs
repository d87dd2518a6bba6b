//! Finalization end to end: the real pipeline archives the session, renders
//! the PDF and mails it to a real SMTP server, exactly once.

use std::time::Duration;

use leadchat::archive::{Archive, MailStatus};
use leadchat::settings::HumanDuration;
use serde_json::json;

use crate::support::app::*;
use crate::support::smtp;

const TRICKY: &str = r#"#panic("x") $5 *bold* _u_ [link] \ @here <tag> // not a comment"#;
const HINDI: &str = "मुझे 500 यूनिट का दाम चाहिए 🙏";

fn pdf_text(path: &std::path::Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .args(["-raw", "-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) must be installed");
    assert!(out.status.success(), "pdftotext failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect()
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect()
}

async fn chat_and_leave(app: &TestApp) -> String {
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.send(json!({"type":"contact","name":"Priya Shah","email":"priya@acme-plastics.in","phone":"+91 98765 43210","organization":"Acme Plastics"})).await;
    assert_eq!(ws.recv().await["type"], "contact_ok");
    ws.message(
        "What does EPR registration cost for plastic packaging?",
        "f1",
    )
    .await;
    ws.message(TRICKY, "f2").await;
    ws.message(HINDI, "f3").await;
    id
}

async fn wait_for_mails(inbox: &smtp::Inbox, n: usize, wait: Duration) -> Vec<smtp::Received> {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline && inbox.received().len() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inbox.received()
}

async fn check_one_report(app: &TestApp, settings_db: &str, id: &str, inbox: &smtp::Inbox) {
    let mails = wait_for_mails(inbox, 1, Duration::from_secs(20)).await;
    assert_eq!(mails.len(), 1, "exactly one mail");
    let mail = &mails[0].data;
    assert!(mail.contains("Session Report - Priya Shah"), "subject");
    assert!(
        mail.contains(&format!("session_{id}.pdf")),
        "attachment name"
    );
    assert!(
        mail.contains(&format!("Message-ID: <session-{id}@")),
        "message id from the session id"
    );
    assert_eq!(
        mails[0].to,
        vec![
            "sales@example.com".to_owned(),
            "boss@example.com".to_owned()
        ]
    );

    let pdf = app
        .dir
        .path()
        .join("reports")
        .join(format!("session_{id}.pdf"));
    assert!(pdf.exists(), "the PDF is written to the report folder");
    let text = pdf_text(&pdf);
    for needle in [
        TRICKY,
        HINDI,
        "Priya Shah",
        "priya@acme-plastics.in",
        "Acme Plastics",
        "UserInformation",
        "LeadInformation",
        "ConversationTranscript",
    ] {
        assert!(text.contains(&squash(needle)), "PDF lacks {needle:?}");
    }
    assert!(text.contains(&squash(id)), "PDF names the session");

    let archive = Archive::connect(settings_db).await.expect("archive");
    let detail = archive
        .get_session(id)
        .await
        .expect("query")
        .expect("archived");
    assert_eq!(
        detail.session.messages.len(),
        7,
        "greeting + 3 questions + 3 answers"
    );
    assert_eq!(detail.session.name.as_deref(), Some("Priya Shah"));
    let mail = detail.mail.expect("outbox row");
    assert!(eventually(Duration::from_secs(5), || true).await);
    let status = archive
        .get_session(id)
        .await
        .expect("query")
        .expect("archived")
        .mail
        .expect("mail")
        .status;
    assert_eq!(status, MailStatus::Sent, "{mail:?}");
}

fn full_settings(kind: StoreKind, smtp_port: u16) -> TestSettings {
    let mut s = test_settings(kind);
    s.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}").into());
    s.mail_to = "sales@example.com, boss@example.com".into();
    s.brand.name = "GreenCycle".into();
    s
}

#[actix_web::test]
async fn an_idle_session_produces_one_pdf_and_one_mail_within_two_seconds_of_its_deadline() {
    for kind in BOTH {
        let (port, inbox) = smtp::start();
        let mut settings = full_settings(kind, port);
        settings.inactivity_timeout = HumanDuration(Duration::from_secs(1));
        let db = settings.database_url.expose().to_owned();
        let app = spawn_full_app(settings).await;
        let id = chat_and_leave(&app).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mails = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
        assert_eq!(mails.len(), 1);
        let late = std::time::Instant::now().saturating_duration_since(deadline);
        assert!(
            late < Duration::from_secs(2),
            "mailed {late:?} after the deadline"
        );
        check_one_report(&app, &db, &id, &inbox).await;
    }
}

#[actix_web::test]
async fn the_archive_works_on_postgresql_too() {
    let (port, inbox) = smtp::start();
    let mut settings = full_settings(StoreKind::Redis, port);
    let schema = crate::support::pg::Schema::new();
    settings.database_url = schema.url().into();
    let db = settings.database_url.expose().to_owned();
    let app = spawn_full_app(settings).await;
    let id = chat_and_leave(&app).await;
    let (status, body) = app.end_session(json!({"session_id": id})).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("PDF generated"))
    );
    // "PDF generated" is true when the answer comes.
    assert!(
        app.dir
            .path()
            .join("reports")
            .join(format!("session_{id}.pdf"))
            .exists()
    );
    check_one_report(&app, &db, &id, &inbox).await;
}

#[actix_web::test]
async fn smtp_down_then_up_delivers_exactly_one_mail() {
    let port = smtp::free_port();
    let settings = full_settings(StoreKind::Memory, port);
    let db = settings.database_url.expose().to_owned();
    let app = spawn_full_app(settings).await;
    let id = chat_and_leave(&app).await;
    let (status, body) = app.end_session(json!({"session_id": id})).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("success")),
        "the mail is queued while SMTP is down"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mail = outbox_row(&db, &id).await;
    assert_eq!(mail.status, MailStatus::Pending);
    assert!(mail.attempts >= 1, "a send was tried: {mail:?}");

    let inbox = smtp::Inbox::default();
    smtp::serve_on(port, inbox.clone());
    check_one_report(&app, &db, &id, &inbox).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox.received().len(), 1, "no second mail");
}

#[actix_web::test]
async fn racing_triggers_give_one_mail() {
    let (port, inbox) = smtp::start();
    let mut settings = full_settings(StoreKind::Redis, port);
    settings.inactivity_timeout = HumanDuration(Duration::from_millis(1500));
    let app = spawn_full_app(settings).await;
    let id = chat_and_leave(&app).await;
    let (mut tab, _) = app.connect(Some(&id)).await;
    tokio::time::sleep(Duration::from_millis(1450)).await;
    tab.send(json!({"type":"end"})).await;
    let (a, b) = tokio::join!(
        app.end_session(json!({"session_id": id})),
        app.end_session(json!({"session_id": id}))
    );
    assert_eq!((a.0, b.0), (200, 200));
    let mails = wait_for_mails(&inbox, 2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 1);
}

#[actix_web::test]
async fn the_admin_api_serves_the_archived_session_and_its_pdf_to_the_token_holder() {
    let (port, inbox) = smtp::start();
    let mut settings = full_settings(StoreKind::Memory, port);
    settings.admin_token = Some("s3cret-admin-token-123".into());
    let app = spawn_full_app(settings).await;
    let id = chat_and_leave(&app).await;
    let (status, _) = app.end_session(json!({"session_id": id})).await;
    assert_eq!(status, 200);
    wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;

    let pdf_url = app.url(&format!("/api/sessions/{id}/report.pdf"));
    let res = app.http.get(&pdf_url).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 401);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized");
    let res = app
        .http
        .get(&pdf_url)
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);

    let res = app
        .http
        .get(&pdf_url)
        .bearer_auth("s3cret-admin-token-123")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(res.bytes().await.expect("body").starts_with(b"%PDF"));
    let res = app
        .http
        .get(format!("{pdf_url}?token=s3cret-admin-token-123"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status().as_u16(),
        401,
        "REST never takes the token from the query string"
    );

    let one: serde_json::Value = app
        .admin_json(&format!("/api/sessions/{id}"), "s3cret-admin-token-123")
        .await;
    assert_eq!(one["name"], "Priya Shah");
    assert_eq!(one["transcript"].as_array().map(Vec::len), Some(7));

    let list: serde_json::Value = app
        .admin_json(
            "/api/sessions?q=acme&priority=high",
            "s3cret-admin-token-123",
        )
        .await;
    assert!(list["total"].as_i64().is_some(), "{list}");
    let res = app
        .http
        .get(app.url("/api/sessions?priority=urgent"))
        .bearer_auth("s3cret-admin-token-123")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 400);
}

#[actix_web::test]
async fn without_a_token_setting_the_admin_api_is_refused() {
    let app = spawn_app(StoreKind::Memory).await;
    let res = app
        .http
        .get(app.url("/api/sessions"))
        .bearer_auth("anything-anything-1")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 403);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"], "admin_disabled");
}

/// Issue 14 item 7: one SMTP send outlasting the outbox lease must not
/// start a second sender. The server reads slowly enough that one send
/// takes five leases; the claim is renewed while it runs.
#[actix_web::test]
async fn a_send_slower_than_the_lease_is_accepted_once() {
    let inbox = smtp::Inbox::slow(Duration::from_secs(3));
    let port = smtp::start_with(inbox.clone());
    let mut settings = full_settings(StoreKind::Memory, port);
    settings.mail_lease = HumanDuration(Duration::from_millis(600));
    settings.mail_poll_interval = HumanDuration(Duration::from_millis(100));
    let db = settings.database_url.expose().to_owned();
    let app = spawn_full_app(settings).await;
    let id = chat_and_leave(&app).await;
    app.end_session(json!({"session_id": id})).await;
    let mails = wait_for_mails(&inbox, 1, Duration::from_secs(60)).await;
    assert_eq!(mails.len(), 1);
    // Long enough for several more leases to run out.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        inbox.started.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a second sender started while the first still talked to the server"
    );
    assert_eq!(inbox.received().len(), 1);
    let archive = Archive::connect(&db).await.expect("archive");
    let stats = archive.mail_stats().await.expect("stats");
    assert_eq!((stats.sent, stats.pending), (1, 0));
}

/// The outbox row of session `id`'s report mail.
async fn outbox_row(db: &str, id: &str) -> leadchat::archive::OutboxMail {
    let archive = Archive::connect(db).await.expect("archive");
    let mail = archive
        .get_session(id)
        .await
        .expect("query")
        .expect("archived")
        .mail
        .expect("mail");
    archive.close().await;
    mail
}

/// The `session_{ID}.txt` part of a received mail, decoded, and the text of
/// the body, or a panic naming what is missing.
fn transcript_attachment(raw: &str, id: &str) -> (String, String) {
    let mail = crate::support::mime::Part::parse(raw);
    assert!(
        mail.find("application/pdf").is_none(),
        "no PDF could be rendered, yet one is attached"
    );
    let text = mail.find("text/plain").expect("a plain-text body").text();
    // A long name is split RFC 2231 style (`filename*0=`).
    let name = format!("session_{id}.txt");
    let attachment = mail
        .children()
        .into_iter()
        .find(|p| {
            p.header("Content-Disposition")
                .is_some_and(|d| d.starts_with("attachment") && d.contains(&name))
        })
        .unwrap_or_else(|| panic!("no attachment {name} in {raw}"));
    assert_eq!(attachment.content_type(), "text/plain");
    (attachment.text(), text)
}

#[actix_web::test]
async fn a_report_that_cannot_be_rendered_is_mailed_with_the_transcript_as_text() {
    let (port, inbox) = smtp::start();
    let mut settings = full_settings(StoreKind::Memory, port);
    settings.mail_poll_interval = HumanDuration(Duration::from_millis(100));
    let template = tempfile::NamedTempFile::new().expect("template file");
    std::fs::write(template.path(), "#panic(\"this template is broken\")\n").expect("write");
    settings.report_template = Some(template.path().to_path_buf());
    let db = settings.database_url.expose().to_owned();
    let app = spawn_full_app(settings).await;
    let id = chat_and_leave(&app).await;
    app.end_session(json!({"session_id": id})).await;
    // Three renders with back-offs of at most 2 s and 4 s between them.
    let mails = wait_for_mails(&inbox, 1, Duration::from_secs(30)).await;
    assert_eq!(mails.len(), 1, "the lead is mailed although no PDF renders");
    let (transcript, body) = transcript_attachment(&mails[0].data, &id);
    for needle in [TRICKY, HINDI, "Priya Shah", "priya@acme-plastics.in"] {
        assert!(transcript.contains(needle), "transcript lacks {needle:?}");
    }
    assert!(body.contains(&format!(
        "could not be generated; the full transcript is attached as session_{id}.txt"
    )));
    let mail = outbox_row(&db, &id).await;
    assert_eq!(mail.render_attempts, 3, "{mail:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(inbox.received().len(), 1, "mailed once");
    assert!(
        !app.dir
            .path()
            .join("reports")
            .join(format!("session_{id}.pdf"))
            .exists()
    );
    app.stop().await;
}

/// A render that took the process down (its memory) is counted before it
/// starts; after three such crashes a restart mails the transcript instead of
/// rendering a fourth time and crashing again.
#[actix_web::test]
async fn a_report_whose_renders_took_the_process_down_is_not_rendered_again() {
    let (port, inbox) = smtp::start();
    let mut settings = full_settings(StoreKind::Memory, port);
    settings.mail_poll_interval = HumanDuration(Duration::from_millis(100));
    let db = settings.database_url.expose().to_owned();
    // The first run: archived and held for its render, as the pipeline does
    // just before rendering — then the process "dies" three times there.
    let archive = Archive::connect(&db).await.expect("archive");
    let id = leadchat::domain::SessionId::new().to_string();
    let now = chrono::Utc::now();
    let session = leadchat::archive::ArchivedSession {
        session_id: id.clone(),
        name: Some("Priya Shah".into()),
        email: Some("priya@acme-plastics.in".into()),
        phone: None,
        organization: None,
        lead_score: 40,
        priority: leadchat::scoring::Priority::Medium,
        engagement_score: 3,
        total_queries: 1,
        signals: Vec::new(),
        first_interaction: now - chrono::Duration::minutes(3),
        last_interaction: now - chrono::Duration::minutes(1),
        finalized_at: now,
        end_reason: leadchat::domain::EndReason::Visitor,
        node: "node-a".into(),
        report_path: None,
        messages: vec![leadchat::archive::ArchivedMessage {
            seq: 0,
            role: leadchat::domain::Role::User,
            text: "What does EPR registration cost?".into(),
            at: now - chrono::Duration::minutes(2),
        }],
    };
    let mail = leadchat::archive::NewMail {
        recipients: vec!["sales@example.com".into()],
        subject: "GreenCycle Session Report - Priya Shah".into(),
        message_id: format!("<session-{id}@example.com>"),
        held_until: Some(chrono::Utc::now() + chrono::Duration::seconds(300)),
    };
    let outcome = archive
        .archive_session(&session, &mail)
        .await
        .expect("archive");
    let leadchat::archive::ArchiveOutcome::Archived { mail_id } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        archive.count_render_attempt(mail_id).await.expect("count"),
        2
    );
    assert_eq!(
        archive.count_render_attempt(mail_id).await.expect("count"),
        3
    );
    archive.close().await;

    let app = spawn_full_app(settings).await;
    let mails = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let (transcript, _) = transcript_attachment(&mails[0].data, &id);
    assert!(transcript.contains("What does EPR registration cost?"));
    let mail = outbox_row(&db, &id).await;
    assert_eq!(mail.render_attempts, 3, "no fourth render: {mail:?}");
    assert_eq!(mail.status, MailStatus::Sent);
    app.stop().await;
}
