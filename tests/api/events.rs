//! The sessions' domain events (PROTOCOL §12: `session.started`,
//! `contact.collected`, `lead.priority_changed`) reach a subscriber the node
//! was given, in the session's order, once what they report is stored —
//! and the admin feed's live views do not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler};
use leadchat::scoring::Priority;
use leadchat::session::SessionEvent;
use serde_json::json;

use crate::support::app::*;

#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<SessionEvent>>>);

impl Heard {
    fn of(&self, session_id: &str) -> Vec<SessionEvent> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| match e {
                SessionEvent::Started { session_id: s, .. }
                | SessionEvent::ContactCollected { session_id: s, .. }
                | SessionEvent::PriorityChanged { session_id: s, .. }
                | SessionEvent::Closed { session_id: s, .. } => s == session_id,
                SessionEvent::Changed { view, .. } => view.session_id == session_id,
            })
            .cloned()
            .collect()
    }
}

struct Listener(Heard);

impl Actor for Listener {
    type Context = Context<Self>;
}

impl Handler<SessionEvent> for Listener {
    type Result = ();

    fn handle(&mut self, event: SessionEvent, _: &mut Self::Context) {
        self.0.0.lock().expect("lock").push(event);
    }
}

#[actix_web::test]
async fn a_chat_tells_its_subscriber_it_started_who_the_visitor_is_and_how_hot_the_lead_got() {
    let heard = Heard::default();
    let mut settings = test_settings(StoreKind::Redis);
    settings
        .events
        .push(Listener(heard.clone()).start().recipient());
    let app = settings.spawn().await;

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
            .any(|e| matches!(e, SessionEvent::PriorityChanged { to, .. } if *to >= Priority::High))
    })
    .await;
    let events = heard.of(&id);
    assert!(settled, "{events:#?}");
    let types: Vec<&str> = events.iter().filter_map(SessionEvent::event_type).collect();
    assert_eq!(types.first(), Some(&"session.started"), "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "session.started").count(), 1);
    assert_eq!(
        types.iter().filter(|t| **t == "contact.collected").count(),
        1
    );
    assert!(
        events.iter().all(|e| e.event_type().is_some()),
        "live views go to the feed only: {events:#?}"
    );
    let contact = events.iter().find_map(|e| match e {
        SessionEvent::ContactCollected { contact, .. } => Some(contact.clone()),
        _ => None,
    });
    assert_eq!(
        contact.as_ref().and_then(|c| c.email()),
        Some("anil.mehta@mehta-polymers.com")
    );
    // Each change starts where the last one ended.
    let mut at = Priority::Low;
    for event in &events {
        if let SessionEvent::PriorityChanged {
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
}
