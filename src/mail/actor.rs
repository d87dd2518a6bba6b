//! MailerActor: owns delivery. Sends the report mail that the ReportActor
//! hands it (`SendReport`), and polls the archive's durable outbox for mails
//! that are due — retries after a failure, and mails left behind by a crash or
//! a restart. At most `max_in_flight` sends run at once (lettre's pool does
//! not bound concurrency by itself). Takes `SendReport` and `Drain`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::Semaphore;

use super::compose::{MailContext, compose_report_mail};
use super::transport::{MailTransport, SendError, backoff};
use crate::archive::{Archive, OutboxMail};
use crate::report::{Brand, Drain, RenderPool, convert};
use crate::telemetry::names;

pub struct MailerDeps {
    pub archive: Archive,
    pub transport: MailTransport,
    pub renderer: RenderPool,
    pub brand: Brand,
    pub mail_from: String,
    pub mail_to: Vec<String>,
    pub report_dir: PathBuf,
    pub poll_interval: Duration,
    /// How long a claimed mail stays hidden from other pollers and nodes.
    pub lease: Duration,
    pub max_in_flight: usize,
}

/// Send this mail now; `mail_id` is its outbox row.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendReport {
    pub mail_id: i64,
    pub attempts: i32,
    pub context: MailContext,
}

pub struct MailerActor {
    deps: Arc<MailerDeps>,
    permits: Arc<Semaphore>,
    in_flight: usize,
    polling: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl MailerActor {
    pub fn new(deps: MailerDeps) -> Self {
        let permits = Arc::new(Semaphore::new(deps.max_in_flight.max(1)));
        Self {
            deps: Arc::new(deps),
            permits,
            in_flight: 0,
            polling: false,
            drained: Vec::new(),
        }
    }

    fn spawn_send(
        &mut self,
        ctx: &mut Context<Self>,
        mail_id: i64,
        attempts: i32,
        context: MailContext,
    ) {
        self.in_flight += 1;
        let deps = Arc::clone(&self.deps);
        let permits = Arc::clone(&self.permits);
        let fut = async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            deliver(&deps, mail_id, attempts, &context).await;
        };
        ctx.spawn(fut.into_actor(self).map(|(), act, _| act.finished_one()));
    }

    fn finished_one(&mut self) {
        self.in_flight -= 1;
        if self.in_flight == 0 {
            self.drained.drain(..).for_each(|tx| {
                let _ = tx.send(());
            });
        }
    }

    /// Claims due mails and sends them; one poll at a time.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        let free = self.deps.max_in_flight.saturating_sub(self.in_flight);
        if self.polling || free == 0 {
            return;
        }
        self.polling = true;
        let deps = Arc::clone(&self.deps);
        let fut = async move {
            let claimed = deps
                .archive
                .claim_due_mails(Utc::now(), free as i64, deps.lease)
                .await;
            match claimed {
                Ok(mails) => {
                    let mut ready = Vec::with_capacity(mails.len());
                    for mail in mails {
                        if let Some(context) = rebuild(&deps, &mail).await {
                            ready.push((mail.id, mail.attempts, context));
                        }
                    }
                    ready
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the outbox");
                    Vec::new()
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(|ready, act, ctx| {
            act.polling = false;
            for (id, attempts, context) in ready {
                act.spawn_send(ctx, id, attempts, context);
            }
        }));
    }
}

/// The mail of an outbox row: the archived session, and its PDF from disk
/// or, when the file is gone, rendered again from the archive.
async fn rebuild(deps: &MailerDeps, mail: &OutboxMail) -> Option<MailContext> {
    let detail = match deps.archive.get_session(&mail.session_id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            tracing::error!(mail_id = mail.id, session_id = %mail.session_id, "outbox mail without a session");
            let _ = deps
                .archive
                .mark_failed(mail.id, "session missing from the archive")
                .await;
            return None;
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot load the session of a queued mail");
            return None;
        }
    };
    let session = detail.session;
    let on_disk = match &session.report_path {
        Some(path) => tokio::fs::read(path).await.ok(),
        None => None,
    };
    let pdf = match on_disk {
        Some(pdf) => pdf,
        None => match deps
            .renderer
            .render(convert::report_data(&session, &deps.brand))
            .await
        {
            Ok(pdf) => {
                let path = deps
                    .report_dir
                    .join(format!("session_{}.pdf", session.session_id));
                if crate::report::write_atomically(&path, &pdf).await.is_ok() {
                    let _ = deps
                        .archive
                        .set_report_path(&session.session_id, &path.to_string_lossy())
                        .await;
                }
                pdf
            }
            Err(err) => {
                tracing::error!(session_id = %session.session_id, error = %err, "cannot render the report for a queued mail");
                return None;
            }
        },
    };
    Some(convert::mail_context(
        &session,
        &deps.mail_from,
        &deps.mail_to,
        &deps.brand.name,
        pdf,
    ))
}

#[tracing::instrument(name = "send_report", skip_all, fields(session_id = %context.session_id, mail_id))]
async fn deliver(deps: &MailerDeps, mail_id: i64, attempts: i32, context: &MailContext) {
    let message = match compose_report_mail(context) {
        Ok(m) => m,
        Err(err) => {
            tracing::error!(error = %err, "cannot compose the report mail");
            metrics::counter!(names::MAILS_FAILED).increment(1);
            let _ = deps.archive.mark_failed(mail_id, &err.to_string()).await;
            return;
        }
    };
    let started = Instant::now();
    let result = deps.transport.send(&message).await;
    metrics::histogram!(names::MAIL_LATENCY).record(started.elapsed().as_secs_f64());
    let recorded = match result {
        Ok(()) => {
            metrics::counter!(names::MAILS_SENT).increment(1);
            tracing::info!(recipients = context.to.len(), "report mail sent");
            deps.archive.mark_sent(mail_id, Utc::now()).await
        }
        Err(SendError::Transient(err)) => {
            let wait = backoff(u32::try_from(attempts).unwrap_or(0));
            metrics::counter!(names::MAILS_RETRIED).increment(1);
            tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64, "report mail not sent; will retry");
            let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            deps.archive.mark_retry(mail_id, &err, next).await
        }
        Err(SendError::Permanent(err)) => {
            metrics::counter!(names::MAILS_FAILED).increment(1);
            tracing::error!(error = %err, "report mail rejected permanently; not retrying");
            deps.archive.mark_failed(mail_id, &err).await
        }
    };
    if let Err(err) = recorded {
        // The lease brings the mail back; the stable Message-ID marks a resend.
        tracing::error!(error = %err, "cannot record the mail's outcome in the outbox");
    }
}

impl Actor for MailerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // At start-up this resumes whatever a previous run left queued.
        self.poll(ctx);
        ctx.run_interval(self.deps.poll_interval, |act, ctx| act.poll(ctx));
    }
}

impl Handler<SendReport> for MailerActor {
    type Result = ();

    fn handle(&mut self, msg: SendReport, ctx: &mut Self::Context) {
        self.spawn_send(ctx, msg.mail_id, msg.attempts, msg.context);
    }
}

impl Handler<Drain> for MailerActor {
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
