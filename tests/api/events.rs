//! The domain events (PROTOCOL §12: `session.started`, `contact.collected`,
//! `lead.priority_changed`, `session.finalized`, `report.mailed`) reach a
//! subscriber the node was given, in the session's order, once what they
//! report is stored — and the admin feed's live views do not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler};
use leadchat::events::DomainEvent;
use leadchat::scoring::Priority;
use serde_json::json;

use crate::support::app::*;

#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<DomainEvent>>>);

impl Heard {
    fn of(&self, session_id: &str) -> Vec<DomainEvent> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.session_id() == session_id)
            .cloned()
            .collect()
    }
}

struct Listener(Heard);

impl Actor for Listener {
    type Context = Context<Self>;
}

impl Handler<DomainEvent> for Listener {
    type Result = ();

    fn handle(&mut self, event: DomainEvent, _: &mut Self::Context) {
        self.0.0.lock().expect("lock").push(event);
    }
}

#[actix_web::test]
async fn a_chat_tells_its_subscriber_it_started_who_the_visitor_is_and_how_hot_the_lead_got() {
    let heard = Heard::default();
    let (port, inbox) = crate::support::smtp::start();
    let mut settings = test_settings(StoreKind::Redis);
    settings.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
    settings.mail_to = "sales@example.com".into();
    settings
        .events
        .push(Listener(heard.clone()).start().recipient());
    let app = settings.spawn_full().await;

    // A session nobody speaks in says nothing.
    let (_silent, silent) = app.connect(None).await;
    let silent = silent["session_id"].as_str().expect("id").to_owned();

    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.message("Hi, what is your pricing for EPR registration?", "e1")
        .await;
    ws.send(json!({"type":"contact","name":"Anil Mehta","email":"anil.mehta@mehta-polymers.com","phone":"+91 98200 11223","organization":"Mehta Polymers Pvt Ltd"})).await;
    assert_eq!(ws.recv().await["type"], "contact_ok");
    ws.message(
        "Can we book a demo next week? We need to file before the deadline.",
        "e2",
    )
    .await;
    // A resend of a stored message is acknowledged again and says nothing.
    ws.send(json!({"type":"message","text":"Hi, what is your pricing for EPR registration?","client_msg_id":"e1"}))
        .await;
    let again = ws.recv().await;
    assert_eq!(
        (&again["type"], &again["client_msg_id"]),
        (&json!("ack"), &json!("e1")),
        "{again}"
    );

    let settled = eventually(Duration::from_secs(5), || {
        heard
            .of(&id)
            .iter()
            .any(|e| matches!(e, DomainEvent::PriorityChanged { to, .. } if *to >= Priority::High))
    })
    .await;
    let events = heard.of(&id);
    assert!(settled, "{events:#?}");
    let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(types.first(), Some(&"session.started"), "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "session.started").count(), 1);
    assert_eq!(
        types.iter().filter(|t| **t == "contact.collected").count(),
        1
    );
    let contact = events.iter().find_map(|e| match e {
        DomainEvent::ContactCollected { contact, .. } => Some(contact.clone()),
        _ => None,
    });
    assert_eq!(
        contact.as_ref().and_then(|c| c.email()),
        Some("anil.mehta@mehta-polymers.com")
    );
    // Each change starts where the last one ended.
    let mut at = Priority::Low;
    for event in &events {
        if let DomainEvent::PriorityChanged {
            from, to, signals, ..
        } = event
        {
            assert_eq!(*from, at, "{events:#?}");
            assert_ne!(from, to);
            assert!(!signals.is_empty());
            at = *to;
        }
    }
    assert!(heard.of(&silent).is_empty());

    // The chat ends: archived once, then mailed once.
    ws.send(json!({"type":"end"})).await;
    assert_eq!(ws.recv().await["type"], "ended");
    let mailed = eventually(Duration::from_secs(20), || {
        heard
            .of(&id)
            .iter()
            .any(|e| matches!(e, DomainEvent::ReportMailed { .. }))
    })
    .await;
    let events = heard.of(&id);
    assert!(mailed, "{events:#?}");
    let tail: Vec<&str> = events
        .iter()
        .map(DomainEvent::event_type)
        .filter(|t| t.starts_with("session.finalized") || t.starts_with("report."))
        .collect();
    assert_eq!(tail, ["session.finalized", "report.mailed"]);
    let mail = &inbox.received()[0];
    match events.last() {
        Some(DomainEvent::ReportMailed {
            recipients,
            message_id,
            ..
        }) => {
            assert_eq!(recipients, &["sales@example.com".to_owned()]);
            assert!(mail.data.contains(message_id.as_str()), "{message_id}");
        }
        other => panic!("{other:?}"),
    }
    app.stop().await;
}
