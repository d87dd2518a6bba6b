//! ReportActor: owns the finalize pipeline after the guard is taken. Takes
//! `FinalizeSession`.

use actix::{Actor, Context, Handler};

use super::messages::FinalizeSession;

#[derive(Debug, Default)]
pub struct ReportActor;

impl Actor for ReportActor {
    type Context = Context<Self>;
}

impl Handler<FinalizeSession> for ReportActor {
    type Result = ();

    fn handle(&mut self, msg: FinalizeSession, _ctx: &mut Self::Context) {
        let s = &msg.session;
        tracing::info!(
            session_id = %s.id,
            reason = s.reason.as_str(),
            priority = s.lead.priority.as_str(),
            lead_score = s.lead.lead_score,
            lines = s.transcript.len(),
            "session finalized"
        );
    }
}
