//! ReportActor: owns the finalize pipeline after the guard is taken —
//! archive (session, transcript and a pending mail in one transaction), render
//! the PDF, write it, hand the mail to the MailerActor. Takes
//! `FinalizeSession` and `Drain`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{SubsecRound, Utc};

use super::convert;
use super::data::Brand;
use super::messages::{Drain, FinalizeSession, FinalizedSession, ReportOutcome};
use super::pool::RenderPool;
use crate::archive::{Archive, ArchiveOutcome, NewMail};
use crate::mail::compose::{message_id_for, report_subject};
use crate::mail::{MailerActor, SendReport};
use crate::telemetry::names;

/// How long the pipeline holds the outbox row of the mail it is preparing:
/// no poller (of this node or another) takes it meanwhile, so it is neither
/// rendered twice nor raced. Longer than a burst's render queue takes to
/// drain (10,000 reports in under 3 minutes); a node that dies holding mails
/// releases them on restart (SQLite) or they go out from any node after this.
const MAIL_HOLD: chrono::TimeDelta = chrono::TimeDelta::seconds(300);

/// Settings and services the pipeline needs.
pub struct ReportDeps {
    pub archive: Archive,
    /// Told when a session is safely archived (it leaves the sweep index).
    pub store: crate::store::SharedStore,
    pub renderer: RenderPool,
    pub mailer: Addr<MailerActor>,
    pub report_dir: PathBuf,
    pub brand: Brand,
    pub mail_from: String,
    pub mail_to: Vec<String>,
    /// Told `session.finalized` once a session is archived.
    pub events: crate::events::EventSink,
}

pub struct ReportActor {
    deps: Arc<ReportDeps>,
    in_flight: usize,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ReportActor {
    pub fn new(deps: ReportDeps) -> Self {
        Self {
            deps: Arc::new(deps),
            in_flight: 0,
            drained: Vec::new(),
        }
    }
}

impl Actor for ReportActor {
    type Context = Context<Self>;
}

impl Handler<FinalizeSession> for ReportActor {
    type Result = ();

    fn handle(&mut self, msg: FinalizeSession, ctx: &mut Self::Context) {
        self.in_flight += 1;
        let deps = Arc::clone(&self.deps);
        let me = ctx.address();
        // A task of its own, not a future of this actor's: an actor polls
        // all its futures whenever one of them wakes, and 10,000 reports
        // finalized together would make that quadratic.
        actix::spawn(async move {
            let outcome = process(&deps, msg.session).await;
            if let Some(done) = msg.done {
                let _ = done.send(outcome);
            }
            me.do_send(ReportFinished);
        });
    }
}

/// One report's pipeline has finished (sent by its task).
#[derive(Message)]
#[rtype(result = "()")]
struct ReportFinished;

impl Handler<ReportFinished> for ReportActor {
    type Result = ();

    fn handle(&mut self, _: ReportFinished, _: &mut Self::Context) {
        self.in_flight -= 1;
        if self.in_flight == 0 {
            self.drained.drain(..).for_each(|tx| {
                let _ = tx.send(());
            });
        }
    }
}

impl Handler<Drain> for ReportActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.in_flight == 0 {
            let _ = tx.send(());
        } else {
            self.drained.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Archives until the database takes it: the finalized session exists only
/// here (and in Redis for 7 days), so giving up would lose a lead.
async fn archive_durably(
    deps: &ReportDeps,
    session: &crate::archive::ArchivedSession,
    mail: &NewMail,
) -> ArchiveOutcome {
    let mut wait = Duration::from_millis(200);
    loop {
        match deps.archive.archive_session(session, mail).await {
            Ok(outcome) => return outcome,
            Err(err) => {
                tracing::error!(session_id = %session.session_id, error = %err, "cannot archive the finalized session; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[tracing::instrument(name = "finalize", skip_all, fields(session_id = %session.id))]
async fn process(deps: &ReportDeps, session: FinalizedSession) -> ReportOutcome {
    let started = std::time::Instant::now();
    let mut archived = convert::to_archived(&session);
    let domain = deps
        .mail_from
        .rsplit('@')
        .next()
        .unwrap_or("localhost")
        .trim_end_matches('>');
    // Microseconds: both back ends store that, and taking the mail back
    // compares the stored hold with this value.
    let held_until = (Utc::now() + MAIL_HOLD).trunc_subsecs(6);
    let mail = NewMail {
        recipients: deps.mail_to.clone(),
        subject: report_subject(&deps.brand.name, archived.name.as_deref()),
        message_id: message_id_for(&archived.session_id, domain),
        held_until: Some(held_until),
    };
    let outcome = archive_durably(deps, &archived, &mail).await;
    // Archived: the sweeper need never look at this session again.
    if let Err(err) = deps.store.forget_deadline(session.id).await {
        tracing::warn!(error = %err, "cannot drop the session from the deadline index; the sweeper will");
    }
    let mail_id = match outcome {
        ArchiveOutcome::Archived { mail_id } => {
            deps.events
                .send(crate::events::DomainEvent::SessionFinalized {
                    session_id: archived.session_id.clone(),
                    reason: archived.end_reason,
                    at: archived.finalized_at,
                });
            mail_id
        }
        ArchiveOutcome::AlreadyArchived => {
            tracing::info!("session already archived; no second report");
            return ReportOutcome::AlreadyArchived;
        }
    };

    let data = convert::report_data(&archived, &deps.brand);
    let pdf = match deps.renderer.render(data).await {
        Ok(pdf) => pdf,
        Err(err) => {
            tracing::error!(error = %err, "report rendering failed; the mailer will try again");
            metrics::counter!(names::REPORTS, "result" => "failed").increment(1);
            // Due after the first render back-off rather than when the hold
            // runs out; past the last attempt the mailer sends the transcript.
            let retry_at = Utc::now()
                + chrono::Duration::from_std(crate::mail::backoff(0)).unwrap_or_default();
            if let Err(err) = deps
                .archive
                .release_held_mail(mail_id, held_until, retry_at)
                .await
            {
                tracing::warn!(error = %err, "cannot release the report mail; it goes out when its hold ends");
            }
            return ReportOutcome::Queued;
        }
    };
    let path = deps.report_dir.join(session.report_file_name());
    match write_atomically(&path, &pdf).await {
        Ok(()) => {
            let shown = path.to_string_lossy().into_owned();
            if let Err(err) = deps
                .archive
                .set_report_path(&archived.session_id, &shown)
                .await
            {
                tracing::warn!(error = %err, "cannot record the report path");
            }
            archived.report_path = Some(shown);
        }
        Err(err) => {
            tracing::error!(path = %path.display(), error = %err, "cannot write the report")
        }
    }
    metrics::counter!(names::REPORTS, "result" => "rendered").increment(1);
    let context = convert::mail_context(
        &archived,
        &deps.mail_from,
        &deps.mail_to,
        &deps.brand.name,
        crate::mail::ReportFile::Pdf(pdf),
    );
    deps.mailer.do_send(SendReport {
        mail_id,
        held_until,
        context,
    });
    metrics::histogram!(names::FINALIZE_LATENCY).record(started.elapsed().as_secs_f64());
    tracing::info!(pdf = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "report rendered");
    ReportOutcome::Rendered
}

/// Temp file + rename: a reader never sees half a PDF.
pub async fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension(format!("pdf.{}.tmp", std::process::id()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}
