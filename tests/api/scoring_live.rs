//! The scoring engine inside a live chat: a salesperson's hot lead climbs,
//! and the configuration file changes the outcome without a rebuild.

use std::time::Duration;

use leadchat::scoring::Priority;
use serde_json::json;

use crate::support::app::*;

async fn hot_lead_chat(app: &TestApp) -> String {
    let (mut ws, session) = app.connect(None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    ws.message("Hi, what is your pricing for EPR registration?", "h1")
        .await;
    ws.send(json!({"type":"contact","name":"Anil Mehta","email":"anil.mehta@mehta-polymers.com","phone":"+91 98200 11223","organization":"Mehta Polymers Pvt Ltd"})).await;
    assert_eq!(ws.recv().await["type"], "contact_ok");
    ws.message(
        "Can we book a demo next week? We need to file before the deadline.",
        "h2",
    )
    .await;
    ws.send(json!({"type":"end"})).await;
    assert_eq!(ws.recv().await["type"], "ended");
    id
}

#[actix_web::test]
async fn pricing_a_business_email_and_a_demo_next_week_make_a_hot_lead() {
    let app = spawn_app(StoreKind::Memory).await;
    hot_lead_chat(&app).await;
    assert!(eventually(Duration::from_secs(2), || app.finalized.count() == 1).await);
    let session = app.finalized.0.lock().expect("lock")[0].clone();
    let lead = &session.lead;
    assert!(lead.priority >= Priority::High, "{lead:?}");
    let names: Vec<&str> = lead.signals.iter().map(|s| s.name.as_str()).collect();
    assert!(names.iter().any(|n| n.contains("pricing")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("demo")), "{names:?}");
    assert!(
        lead.signals.iter().all(|s| !s.evidence.is_empty()),
        "every signal says why"
    );
}

#[actix_web::test]
async fn the_scoring_file_changes_the_outcome_without_a_rebuild() {
    let mut settings = test_settings(StoreKind::Memory);
    let strict = std::env::temp_dir().join(format!("scoring-{}.toml", ulid::Ulid::new()));
    let default =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/scoring.toml"))
            .expect("default config");
    let raised = default
        .replace("medium = 15", "medium = 900")
        .replace("high = 40", "high = 950")
        .replace("critical = 80", "critical = 990");
    assert_ne!(
        raised, default,
        "the thresholds are where the test expects them"
    );
    std::fs::write(&strict, raised).expect("write config");
    settings.scoring_file = strict.clone();
    let app = spawn_app_with(settings).await;
    hot_lead_chat(&app).await;
    assert!(eventually(Duration::from_secs(2), || app.finalized.count() == 1).await);
    let lead = app.finalized.0.lock().expect("lock")[0].lead.clone();
    assert_eq!(lead.priority, Priority::Low, "{lead:?}");
    let _ = std::fs::remove_file(strict);
}
