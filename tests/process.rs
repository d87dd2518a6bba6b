//! The real binary as an operator runs it: start-up, settings errors, and a
//! kill -9 in the middle of a chat.

mod support;

use std::process::Command;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use support::nodes::*;
use support::smtp;

#[tokio::test]
async fn a_visitor_gets_the_history_back_after_kill_9_and_a_resend_is_not_logged_twice() {
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let env = [
        ("LEADCHAT_REDIS_URL", REDIS_URL),
        ("LEADCHAT_REDIS_PREFIX", prefix.as_str()),
    ];
    let mut server = start(&env);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .expect("connect");
    let session = recv(&mut ws).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.send(Message::text(
        json!({"type":"message","text":"Need EPR for 200 t of packaging","client_msg_id":"k1"})
            .to_string(),
    ))
    .await
    .expect("send");
    let ack = recv(&mut ws).await;
    assert_eq!(ack["type"], "ack");
    let _reply = recv(&mut ws).await;

    // kill -9: no shutdown hook runs.
    server.child.kill().expect("kill");
    server.child.wait().expect("reaped");

    let server = start(&env);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?session_id={id}", server.addr))
            .await
            .expect("reconnect");
    let resumed = recv(&mut ws).await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    let texts: Vec<&str> = resumed["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"Need EPR for 200 t of packaging"),
        "{texts:?}"
    );
    // The widget did not see the ack in time and resends: same seq, no new line.
    ws.send(Message::text(
        json!({"type":"message","text":"Need EPR for 200 t of packaging","client_msg_id":"k1"})
            .to_string(),
    ))
    .await
    .expect("send");
    let again = recv(&mut ws).await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["seq"], ack["seq"]);
    let mut conn = redis::Client::open(REDIS_URL)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let chat: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}session:{{{id}}}:chat"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("lrange");
    assert_eq!(
        chat.iter().filter(|l| l.starts_with("User: ")).count(),
        1,
        "{chat:?}"
    );
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_leadchat"))
        .env("LEADCHAT_INACTIVITY_TIMEOUT", "soon")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("inactivity_timeout"), "{stderr}");
}

/// `check-config` shows every setting, but no secret: the token is `<set>`
/// and every URL (the archive, SMTP, each Redis seed) has its password
/// replaced.
#[test]
fn check_config_prints_no_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_leadchat"))
        .arg("check-config")
        .env("LEADCHAT_ADMIN_TOKEN", "tok-SECRET1-0123456789")
        .env(
            "LEADCHAT_SMTP_URL",
            "smtps://mailer:SECRET2@mail.example:465",
        )
        .env(
            "LEADCHAT_DATABASE_URL",
            "postgres://app:SECRET3@db.example/leads",
        )
        .env(
            "LEADCHAT_REDIS_URL",
            "redis://:SECRET4@r1.example:7000,redis://:SECRET5@r2.example:7001",
        )
        .env("LEADCHAT_REDIS_CLUSTER", "true")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("admin_token = \"<set>\""), "{text}");
    assert!(text.contains("mailer:***@mail.example"), "{text}");
    assert!(text.contains("app:***@db.example"), "{text}");
    assert_eq!(text.matches(":***@r").count(), 2, "{text}");
}

/// `leadchat jobs list|retry|cancel` on the archive the settings name.
#[tokio::test]
async fn the_jobs_command_lists_retries_and_cancels() {
    use leadchat::archive::{Archive, JobState, NewJob};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/archive.db", dir.path().display());
    let archive = Archive::connect(&db).await.expect("archive");
    let now = chrono::Utc::now();
    let new = |kind: &str| NewJob {
        kind: kind.into(),
        payload: json!({}),
        due_at: now,
        max_attempts: 1,
        dedupe_key: None,
        subject: None,
    };
    let dead = archive
        .enqueue(&new("webhook"), now)
        .await
        .expect("enqueue")
        .id();
    let waiting = archive
        .enqueue(&new("report.mail"), now)
        .await
        .expect("enqueue")
        .id();
    let claimed = archive
        .claim_jobs(&["webhook"], now, 1, Duration::from_secs(60))
        .await
        .expect("claim");
    archive
        .fail_job(
            claimed[0].claim(),
            "HTTP 500: receiver down",
            Some(now),
            now,
        )
        .await
        .expect("fail");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_leadchat"))
            .arg("jobs")
            .args(args)
            .env("LEADCHAT_DATABASE_URL", &db)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run")
    };
    let list = run(&["list", "--state", "dead"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        text.contains("webhook") && text.contains("HTTP 500: receiver down"),
        "{text}"
    );
    assert!(!text.contains("report.mail"), "{text}");
    assert!(run(&["retry", &dead.to_string()]).status.success());
    assert_eq!(
        archive.job(dead).await.expect("job").expect("stored").state,
        JobState::Pending
    );
    assert!(run(&["cancel", &waiting.to_string()]).status.success());
    assert_eq!(
        archive
            .job(waiting)
            .await
            .expect("job")
            .expect("stored")
            .state,
        JobState::Cancelled
    );
    let again = run(&["cancel", &waiting.to_string()]);
    assert!(
        !again.status.success(),
        "a cancelled job cannot be cancelled again"
    );
    assert!(!run(&["list", "--state", "stuck"]).status.success());
}

#[test]
fn help_lists_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_leadchat"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "check-config", "migrate-keys", "jobs"] {
        assert!(text.contains(sub), "{sub} missing from --help");
    }
}

#[tokio::test]
async fn a_mail_queued_when_the_process_was_killed_goes_out_once_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/archive.db", dir.path().display());
    let reports = dir.path().join("reports").display().to_string();
    let smtp_port = smtp::free_port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let env = [
        ("LEADCHAT_DATABASE_URL", db.as_str()),
        ("LEADCHAT_REPORT_DIR", reports.as_str()),
        ("LEADCHAT_SMTP_URL", smtp_url.as_str()),
    ];
    let mut server = start(&env);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .expect("connect");
    let id = recv(&mut ws).await["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    ws.send(Message::text(
        json!({"type":"contact","name":"Kim","email":"kim@firm.example"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "contact_ok");
    let res = reqwest::Client::new()
        .post(format!("http://{}/end_session", server.addr))
        .json(&json!({"session_id": id}))
        .send()
        .await
        .expect("end_session");
    assert_eq!(res.status().as_u16(), 200);
    // SMTP is down: the mail sits in the outbox. Now the process dies hard.
    server.child.kill().expect("kill");
    server.child.wait().expect("reaped");

    let inbox = smtp::Inbox::default();
    smtp::serve_on(smtp_port, inbox.clone());
    let _server = start(&env);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while inbox.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = inbox.received();
    assert_eq!(mails.len(), 1, "exactly one mail after the restart");
    assert!(mails[0].data.contains(&format!("session_{id}.pdf")));
}

#[tokio::test]
async fn sessions_of_a_killed_node_are_finalized_once_by_another_node() {
    let shared = Shared::new(true);
    let env = shared.env(&[("LEADCHAT_INACTIVITY_TIMEOUT", "3s")]);
    let inbox = &shared.inbox;
    let mut a = start(&env);
    let b = start(&env);
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(chat_on(&a.addr, n).await);
    }
    a.child.kill().expect("kill -9 node A");
    a.child.wait().expect("reaped");

    let mails = wait_for(inbox, 20, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = if mails.len() < 20 {
        mails
    } else {
        inbox.received()
    };
    let mut seen: Vec<String> = ids
        .iter()
        .filter(|id| {
            mails
                .iter()
                .any(|m| m.data.contains(&format!("session_{id}.pdf")))
        })
        .cloned()
        .collect();
    seen.dedup();
    assert_eq!(
        seen.len(),
        20,
        "every session of the dead node was reported"
    );
    assert_eq!(mails.len(), 20, "and none twice");
    drop(b);
}

#[tokio::test]
async fn a_restarted_single_node_finalizes_what_it_left_behind() {
    let shared = Shared::new(false);
    let env = shared.env(&[("LEADCHAT_INACTIVITY_TIMEOUT", "2s")]);
    let inbox = &shared.inbox;
    let mut server = start(&env);
    let id = chat_on(&server.addr, 1).await;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    // Nobody reconnects: the restarted node's sweeper must find the orphan.
    let _server = start(&env);
    let mails = wait_for(inbox, 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbox.received().len(), 1, "{mails:?}");
    assert!(mails[0].data.contains(&format!("session_{id}.pdf")));
}

#[tokio::test]
async fn a_thousand_sessions_timing_out_together_across_two_nodes_give_a_thousand_mails() {
    let shared = Shared::new(true);
    let env = shared.env(&[
        ("LEADCHAT_INACTIVITY_TIMEOUT", "4s"),
        ("LEADCHAT_LIMITS__RATE", "1000/1s"),
        ("RUST_LOG", "warn,leadchat=info"),
    ]);
    let inbox = &shared.inbox;
    let a = start(&env);
    let b = start(&env);
    // Open every session first, then let them all speak at once, so their
    // deadlines fall in the same second.
    let mut sockets = Vec::new();
    for n in 0..1000 {
        let addr = if n % 2 == 0 { &a.addr } else { &b.addr };
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        let id = recv(&mut ws).await["session_id"]
            .as_str()
            .expect("id")
            .to_owned();
        sockets.push((id, ws));
    }
    let mut ids = Vec::new();
    for (n, (id, ws)) in sockets.iter_mut().enumerate() {
        let frame = json!({"type":"contact","name":format!("Burst {n}"),"email":format!("b{n}@firm.example")});
        ws.send(Message::text(frame.to_string()))
            .await
            .expect("send");
        ids.push(id.clone());
    }
    for (_, ws) in sockets.iter_mut() {
        assert_eq!(recv(ws).await["type"], "contact_ok");
    }
    let mails = wait_for(inbox, 1000, Duration::from_secs(240)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = if mails.len() >= 1000 {
        inbox.received()
    } else {
        mails
    };
    // Each mail names its session in its Message-ID: collect them once.
    let reported: std::collections::HashSet<&str> = mails
        .iter()
        .filter_map(|m| m.data.split("Message-ID: <session-").nth(1))
        .filter_map(|rest| rest.get(..26))
        .collect();
    assert!(
        ids.iter().all(|id| reported.contains(id.as_str())),
        "every session reported"
    );
    assert_eq!(mails.len(), 1000, "none twice");
    drop((a, b));
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close code the server sends next (other frames are skipped).
async fn close_code(ws: &mut Ws, wait: Duration) -> Option<u16> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// A visitor who gave contact details and one message, still connected.
async fn live_visitor(addr: &str) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    let id = recv(&mut ws).await["session_id"]
        .as_str()
        .expect("id")
        .to_owned();
    ws.send(Message::text(
        json!({"type":"contact","name":"Kim","email":"kim@firm.example"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "contact_ok");
    ws.send(Message::text(
        json!({"type":"message","text":"price for 20 t?","client_msg_id":"p1"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "ack");
    (ws, id)
}

/// Issue 14 item 10: SIGTERM closes sockets at once with 1012, finalizes
/// nothing (not even a session whose timeout falls inside the old 30 s
/// grace), exits 0 without a panic well inside 2 s, and logs the true count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_at_once_finalizes_nothing_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/archive.db", dir.path().display());
    let outbox = dir.path().join("outbox");
    let outbox_s = outbox.display().to_string();
    let prefix = format!("test:{}:", ulid::Ulid::new());
    let env = [
        ("LEADCHAT_REDIS_URL", REDIS_URL),
        ("LEADCHAT_REDIS_PREFIX", prefix.as_str()),
        ("LEADCHAT_DATABASE_URL", db.as_str()),
        ("LEADCHAT_OUTBOX_DIR", outbox_s.as_str()),
        ("LEADCHAT_INACTIVITY_TIMEOUT", "3s"),
    ];
    let mut server = start(&env);
    let (mut ws, _id) = live_visitor(&server.addr).await;
    let (mut other, _) = live_visitor(&server.addr).await;
    let asked = std::time::Instant::now();
    server.terminate();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(2)).await,
        Some(1012)
    );
    assert_eq!(
        close_code(&mut other, Duration::from_secs(2)).await,
        Some(1012)
    );
    let code = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{}", server.log_text());
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("live_sessions=2"), "{log}");
    assert!(!log.contains("session finalized"), "{log}");
    // The sessions outlive the process: nothing was mailed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(mails, 0);
}

/// Issue 14 item 10: a mail SMTP refuses does not hold the stop (it stays
/// queued), and after a start it is tried at once: it goes out within
/// seconds of SMTP answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_smtp_refuses_does_not_hold_sigterm_and_goes_out_at_once_after_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/archive.db", dir.path().display());
    let reports = dir.path().join("reports").display().to_string();
    let smtp_port = smtp::free_port();
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    let env = [
        ("LEADCHAT_DATABASE_URL", db.as_str()),
        ("LEADCHAT_REPORT_DIR", reports.as_str()),
        ("LEADCHAT_SMTP_URL", smtp_url.as_str()),
    ];
    let mut server = start(&env);
    let (_ws, id) = live_visitor(&server.addr).await;
    let res = reqwest::Client::new()
        .post(format!("http://{}/end_session", server.addr))
        .json(&json!({"session_id": id}))
        .send()
        .await
        .expect("end_session");
    assert_eq!(res.status().as_u16(), 200);
    // Let the mailer fail a few sends against the closed port.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let asked = std::time::Instant::now();
    server.terminate();
    let code = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(20)));
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{}", server.log_text());
    eprintln!("SIGTERM to exit with a refused mail queued: {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!server.log_text().contains("panicked"));

    let inbox = smtp::Inbox::default();
    smtp::serve_on(smtp_port, inbox.clone());
    let started = std::time::Instant::now();
    let _server = start(&env);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while inbox.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = started.elapsed();
    eprintln!("queued mail out {after:?} after the start");
    assert_eq!(inbox.received().len(), 1);
    assert!(after < Duration::from_secs(5), "{after:?}");
}

/// A node without Redis, everything in one folder: the archive, the embedded
/// store beside it, reports and the `.eml` outbox.
struct Embedded {
    dir: tempfile::TempDir,
    db: String,
    reports: String,
    outbox: String,
}

impl Embedded {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}/data/archive.db", dir.path().display());
        let reports = dir.path().join("reports").display().to_string();
        let outbox = dir.path().join("outbox").display().to_string();
        Self {
            dir,
            db,
            reports,
            outbox,
        }
    }

    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("LEADCHAT_DATABASE_URL", self.db.as_str()),
            ("LEADCHAT_REPORT_DIR", self.reports.as_str()),
            ("LEADCHAT_OUTBOX_DIR", self.outbox.as_str()),
            ("LEADCHAT_SWEEP_INTERVAL", "1s"),
        ];
        env.extend_from_slice(extra);
        env
    }

    fn mails(&self) -> Vec<String> {
        std::fs::read_dir(&self.outbox)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a session, gives contact details and three messages, each acked;
/// returns the id and the history the visitor has seen (seq, text).
async fn chat_three(addr: &str) -> (String, Socket, Vec<(u64, String)>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    let first = recv(&mut ws).await;
    let id = first["session_id"].as_str().expect("id").to_owned();
    let mut seen: Vec<(u64, String)> = first["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            (
                h["seq"].as_u64().expect("seq"),
                h["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect();
    ws.send(Message::text(
        json!({"type":"contact","name":"Kim Lee","email":"kim@firm.example"}).to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(recv(&mut ws).await["type"], "contact_ok");
    for n in 1..=3 {
        let text = format!("message {n}: EPR for {n}00 t of packaging");
        ws.send(Message::text(
            json!({"type":"message","text":text,"client_msg_id":format!("k{n}")}).to_string(),
        ))
        .await
        .expect("send");
        let ack = recv(&mut ws).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        seen.push((ack["seq"].as_u64().expect("seq"), text));
        let reply = recv(&mut ws).await;
        assert_eq!(reply["type"], "message", "{reply}");
        seen.push((
            reply["seq"].as_u64().expect("seq"),
            reply["text"].as_str().expect("text").to_owned(),
        ));
    }
    (id, ws, seen)
}

/// Resumes `id` on `addr` and checks the replayed history is `seen`, line by line.
async fn resume_and_check(addr: &str, id: &str, seen: &[(u64, String)]) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?session_id={id}"))
        .await
        .expect("reconnect");
    let resumed = recv(&mut ws).await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["session_id"], id);
    assert_eq!(resumed["contact_collected"], true, "{resumed}");
    let history: Vec<(u64, String)> = resumed["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            (
                h["seq"].as_u64().expect("seq"),
                h["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect();
    assert_eq!(history, seen, "the full history, in order");
    ws
}

#[tokio::test]
async fn without_redis_kill_9_loses_no_acknowledged_message_and_the_visitor_resumes() {
    let node = Embedded::new();
    let env = node.env(&[]);
    let mut server = start(&env);
    let (id, _ws, seen) = chat_three(&server.addr).await;
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");

    let server = start(&env);
    let mut ws = resume_and_check(&server.addr, &id, &seen).await;
    // A resend of the last message is recognised after the restart too.
    ws.send(Message::text(
        json!({"type":"message","text":"message 3: EPR for 300 t of packaging","client_msg_id":"k3"})
            .to_string(),
    ))
    .await
    .expect("send");
    let again = recv(&mut ws).await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["seq"], seen[seen.len() - 2].0);
    assert!(
        node.dir.path().join("data").join("live.db").exists(),
        "the embedded store lives beside the archive"
    );
    assert!(node.mails().is_empty(), "nothing was finalized");
}

#[tokio::test]
async fn without_redis_sigterm_keeps_live_sessions_and_logs_their_true_count() {
    let node = Embedded::new();
    let env = node.env(&[]);
    let mut server = start(&env);
    let (id, _ws, seen) = chat_three(&server.addr).await;
    let status = server.terminate_and_wait();
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    let lines = server.lines();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("stopped"))
        .expect("a last line saying it stopped");
    assert!(last.contains("live_sessions=1"), "{last}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("embedded store on local disk")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("no crash recovery")),
        "{lines:?}"
    );

    let server = start(&env);
    let _ws = resume_and_check(&server.addr, &id, &seen).await;
    assert!(node.mails().is_empty(), "a shutdown finalizes nothing");
}

#[tokio::test]
async fn without_redis_a_session_that_timed_out_while_the_node_was_down_is_finalized_once_after_restart()
 {
    let node = Embedded::new();
    let env = node.env(&[("LEADCHAT_INACTIVITY_TIMEOUT", "2s")]);
    let mut server = start(&env);
    let (id, ws, _seen) = chat_three(&server.addr).await;
    drop(ws);
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    // Down for longer than the timeout; nobody reconnects.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let _server = start(&env);
    let name = format!("session_{id}.eml");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !node.mails().contains(&name) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(node.mails(), vec![name], "one mail, for that session");
    let archive = leadchat::archive::Archive::connect(&node.db)
        .await
        .expect("archive");
    let detail = archive
        .get_session(&id)
        .await
        .expect("read")
        .expect("an archive row");
    assert_eq!(
        detail.session.end_reason,
        leadchat::domain::EndReason::Inactivity
    );
    assert_eq!(detail.session.email.as_deref(), Some("kim@firm.example"));
    assert_eq!(
        detail
            .session
            .messages
            .iter()
            .filter(|m| m.role == leadchat::domain::Role::User)
            .count(),
        3,
        "every acknowledged message is in the report"
    );
}
