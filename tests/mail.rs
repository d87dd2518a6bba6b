//! The report mail's contract, checked on what a real SMTP server receives.
//!
//! The test SMTP server (`support::smtp`) runs on a free loopback port; the mail goes
//! through `MailTransport::Smtp` exactly as in production, and the test
//! parses the bytes the server got.

mod support;

use std::time::{Duration, Instant};

use leadchat::mail::compose::{MailContext, compose_report_mail};
use leadchat::mail::{MailTransport, SendError};
use mailin_embedded::response;
use support::mime::Part;
use support::smtp::{Inbox, Received, start_with as start_server};

/// Bytes that are not valid UTF-8 and include every value, so a lossy
/// encoding anywhere would show.
fn fake_pdf() -> Vec<u8> {
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..=255u8).cycle().take(5000));
    pdf
}

fn context(name: Option<&str>) -> MailContext {
    MailContext {
        from: "Leadchat <leads@acme.example>".to_owned(),
        to: vec![
            "sales@acme.example".to_owned(),
            "ceo@acme.example".to_owned(),
        ],
        brand: "Acme".to_owned(),
        session_id: "3f2a-77".to_owned(),
        visitor_name: name.map(str::to_owned),
        email: Some("zoe@visitor.example".to_owned()),
        phone: None,
        organization: Some("<b>Evil & Co</b>".to_owned()),
        priority: "high".to_owned(),
        lead_score: 81,
        total_queries: 7,
        end_reason: "inactivity".to_owned(),
        signals: vec!["asked for pricing (+20)".to_owned()],
        attachment: leadchat::mail::ReportFile::Pdf(fake_pdf()),
    }
}

fn received(inbox: &Inbox) -> Vec<Received> {
    inbox.received()
}

#[tokio::test]
async fn report_mail_arrives_with_the_agreed_shape() {
    let inbox = Inbox::default();
    let port = start_server(inbox.clone());
    let transport = MailTransport::from_url(&format!("smtp://127.0.0.1:{port}")).expect("url");
    let message = compose_report_mail(&context(Some("Zoë Ñandú 😀"))).expect("compose");
    transport.send(&message).await.expect("send");

    let mails = received(&inbox);
    assert_eq!(mails.len(), 1);
    let got = &mails[0];
    assert_eq!(got.from, "leads@acme.example");
    assert_eq!(got.to, vec!["sales@acme.example", "ceo@acme.example"]);

    let mail = Part::parse(&got.data);
    assert_eq!(
        mail.decoded_header("Subject").as_deref(),
        Some("Acme Session Report - Zoë Ñandú 😀")
    );
    assert!(
        mail.header("Subject").expect("subject").is_ascii(),
        "non-ASCII subject must be RFC 2047 encoded"
    );
    let to = mail.header("To").expect("To");
    assert!(
        to.contains("sales@acme.example") && to.contains("ceo@acme.example"),
        "{to}"
    );
    assert_eq!(mail.header("From"), Some("Leadchat <leads@acme.example>"));
    assert_eq!(
        mail.header("Message-ID"),
        Some("<session-3f2a-77@acme.example>")
    );
    assert!(mail.header("Date").is_some());
    assert_eq!(mail.content_type(), "multipart/mixed");

    let parts = mail.children();
    assert_eq!(parts.len(), 2, "alternative + attachment");
    assert_eq!(parts[0].content_type(), "multipart/alternative");
    let alternatives = parts[0].children();
    assert_eq!(alternatives[0].content_type(), "text/plain");
    assert_eq!(alternatives[1].content_type(), "text/html");

    let text = alternatives[0].text();
    for expected in [
        "Zoë Ñandú 😀",
        "zoe@visitor.example",
        "high",
        "81",
        "Queries:       7",
    ] {
        assert!(
            text.contains(expected),
            "plain text lacks {expected:?}:\n{text}"
        );
    }
    let html = alternatives[1].text();
    assert!(html.contains("&lt;b&gt;Evil &amp; Co&lt;/b&gt;"), "{html}");
    assert!(
        !html.contains("<b>Evil"),
        "visitor data must not become markup"
    );

    let pdf = &parts[1];
    assert_eq!(pdf.content_type(), "application/pdf");
    assert_eq!(
        pdf.param("Content-Disposition", "filename").as_deref(),
        Some("session_3f2a-77.pdf")
    );
    assert!(
        pdf.header("Content-Disposition")
            .expect("disposition")
            .starts_with("attachment")
    );
    assert_eq!(pdf.decoded_body(), fake_pdf(), "PDF bytes round-trip");
}

#[tokio::test]
async fn anonymous_visitors_get_a_placeholder_name() {
    let message = compose_report_mail(&context(None)).expect("compose");
    let mail = Part::parse(&String::from_utf8(message.formatted()).expect("utf-8"));
    assert_eq!(
        mail.decoded_header("Subject").as_deref(),
        Some("Acme Session Report - Anonymous visitor")
    );
}

#[tokio::test]
async fn bad_addresses_are_errors_not_panics() {
    let mut ctx = context(None);
    ctx.to.push("not an address".to_owned());
    assert!(compose_report_mail(&ctx).is_err());
    ctx.to.clear();
    assert!(compose_report_mail(&ctx).is_err());
}

#[tokio::test]
async fn a_5xx_reply_is_permanent() {
    let inbox = Inbox::refusing(response::NO_MAILBOX);
    let port = start_server(inbox.clone());
    let transport = MailTransport::from_url(&format!("smtp://127.0.0.1:{port}")).expect("url");
    let message = compose_report_mail(&context(None)).expect("compose");
    let err = transport.send(&message).await.expect_err("rejected");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(received(&inbox).is_empty());
}

#[tokio::test]
async fn a_4xx_reply_is_transient() {
    let inbox = Inbox::refusing(response::OUT_OF_SPACE);
    let port = start_server(inbox);
    let transport = MailTransport::from_url(&format!("smtp://127.0.0.1:{port}")).expect("url");
    let message = compose_report_mail(&context(None)).expect("compose");
    let err = transport.send(&message).await.expect_err("deferred");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let port = support::smtp::free_port(); // nothing listens there
    let transport = MailTransport::from_url(&format!("smtp://127.0.0.1:{port}")).expect("url");
    let message = compose_report_mail(&context(None)).expect("compose");
    let err = transport.send(&message).await.expect_err("refused");
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn outbox_writes_a_parseable_eml_per_session() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("not/yet/there");
    let url = format!("file://{}", folder.display());
    let transport = MailTransport::from_url(&url).expect("url");
    let message = compose_report_mail(&context(Some("Ada"))).expect("compose");
    transport.send(&message).await.expect("write");
    transport.send(&message).await.expect("a resend overwrites");

    let files: Vec<_> = std::fs::read_dir(&folder)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .collect();
    assert_eq!(
        files,
        vec!["session_3f2a-77.eml"],
        "one file, no temp files left"
    );
    let raw = std::fs::read_to_string(folder.join("session_3f2a-77.eml")).expect("read");
    let mail = Part::parse(&raw);
    assert_eq!(
        mail.decoded_header("Subject").as_deref(),
        Some("Acme Session Report - Ada")
    );
    let pdf = mail.find("application/pdf").expect("attachment");
    assert_eq!(pdf.decoded_body(), fake_pdf());
}

/// Throughput through the pool with 8 mails in flight; printed, not asserted
/// (run with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_pooled_send_rate() {
    const IN_FLIGHT: usize = 8;
    const PER_TASK: usize = 25;
    let inbox = Inbox::default();
    let port = start_server(inbox.clone());
    let transport =
        MailTransport::from_url(&format!("smtp://127.0.0.1:{port}?pool_size=8")).expect("url");
    let message = compose_report_mail(&context(Some("Load Test"))).expect("compose");

    // One after another first, on a warm connection.
    transport.send(&message).await.expect("warm-up");
    let sequential = 20;
    let start = Instant::now();
    for _ in 0..sequential {
        transport.send(&message).await.expect("send");
    }
    let per_mail = start.elapsed() / sequential;

    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (transport, message) = (transport.clone(), message.clone());
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    transport.send(&message).await.expect("send");
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("bounded")
            .expect("task");
    }
    let elapsed = start.elapsed();
    let total = IN_FLIGHT * PER_TASK;
    println!(
        "mail throughput: sequential {:.1} ms/mail; {IN_FLIGHT} in flight: {total} mails in {:.2} s \
         = {:.0} mails/s; {} SMTP connections opened",
        per_mail.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        inbox.sessions.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(received(&inbox).len(), 1 + sequential as usize + total);
}

#[tokio::test]
async fn without_a_pdf_the_transcript_is_attached_as_utf8_text() {
    let mut ctx = context(Some("Zoë"));
    let transcript = "[2026-12-02 10:00:00 #0] Visitor: मुझे दाम चाहिए 🙏\n".repeat(50);
    ctx.attachment = leadchat::mail::ReportFile::Transcript(transcript.clone());
    let message = compose_report_mail(&ctx).expect("compose");
    let mail = Part::parse(&String::from_utf8(message.formatted()).expect("utf-8"));
    assert!(mail.find("application/pdf").is_none());
    let parts = mail.children();
    let file = &parts[1];
    assert_eq!(file.content_type(), "text/plain");
    assert_eq!(
        file.param("Content-Disposition", "filename").as_deref(),
        Some("session_3f2a-77.txt")
    );
    // MIME text travels with CRLF line ends.
    assert_eq!(
        file.text().replace("\r\n", "\n"),
        transcript,
        "the transcript round-trips"
    );
    let body = parts[0].children()[0].text();
    assert!(
        body.contains(
            "could not be generated; the full transcript is attached as session_3f2a-77.txt"
        ),
        "{body}"
    );
}
