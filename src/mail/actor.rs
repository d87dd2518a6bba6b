//! MailerActor: owns delivery. Every mail goes out through one path: claim it
//! in the archive's durable outbox (a lease no other poller or node gets
//! past), send, record the outcome. `SendReport` from the ReportActor brings
//! the composed content along and triggers a claim at once, so a fresh report
//! costs no re-read; retries and mails left by a crash or a restart are found
//! by the periodic poll and rebuilt from the archive. At most `max_in_flight`
//! sends run at once (lettre's pool does not bound concurrency by itself).
//! Takes `SendReport` and `Drain`.

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

/// A report mail was queued in the outbox as `mail_id`; send it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendReport {
    pub mail_id: i64,
    pub context: MailContext,
}

/// Content of fresh mails, kept until their claim comes back, so they need
/// not be rebuilt. Entries another node claimed first are dropped after this.
const FRESH_TTL: Duration = Duration::from_secs(600);

pub struct MailerActor {
    deps: Arc<MailerDeps>,
    permits: Arc<Semaphore>,
    in_flight: usize,
    polling: bool,
    poll_again: bool,
    fresh: std::collections::HashMap<i64, (Instant, MailContext)>,
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
            poll_again: false,
            fresh: std::collections::HashMap::new(),
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
        self.wake_drained();
    }

    fn wake_drained(&mut self) {
        if self.in_flight == 0 && !self.polling {
            self.drained.drain(..).for_each(|tx| {
                let _ = tx.send(());
            });
        }
    }

    /// Claims due mails and sends them; one poll at a time, and one more
    /// right after when a fresh mail arrived meanwhile.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        let free = self.deps.max_in_flight.saturating_sub(self.in_flight);
        if self.polling || free == 0 {
            self.poll_again = true;
            return;
        }
        self.polling = true;
        self.poll_again = false;
        self.fresh
            .retain(|_, (queued, _)| queued.elapsed() < FRESH_TTL);
        let deps = Arc::clone(&self.deps);
        let claim = async move {
            deps.archive
                .claim_due_mails(Utc::now(), free as i64, deps.lease)
                .await
        };
        let prepared = claim.into_actor(self).then(|claimed, act, _| {
            let mails = claimed.unwrap_or_else(|err| {
                tracing::warn!(error = %err, "cannot read the outbox");
                Vec::new()
            });
            // Fresh mails come with their content; the rest is rebuilt.
            let known: Vec<(OutboxMail, Option<MailContext>)> = mails
                .into_iter()
                .map(|m| {
                    let context = act.fresh.remove(&m.id).map(|(_, c)| c);
                    (m, context)
                })
                .collect();
            let deps = Arc::clone(&act.deps);
            async move {
                let mut ready = Vec::with_capacity(known.len());
                for (mail, context) in known {
                    let context = match context {
                        Some(c) => Some(c),
                        None => rebuild(&deps, &mail).await,
                    };
                    if let Some(c) = context {
                        ready.push((mail.id, mail.attempts, c));
                    }
                }
                ready
            }
            .into_actor(act)
        });
        ctx.spawn(prepared.map(|ready, act, ctx| {
            act.polling = false;
            for (id, attempts, context) in ready {
                act.spawn_send(ctx, id, attempts, context);
            }
            if act.poll_again {
                act.poll(ctx);
            }
            act.wake_drained();
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
        // Resume whatever a previous run left queued, claims of a crashed
        // run included, then keep polling.
        let deps = Arc::clone(&self.deps);
        let release = async move { deps.archive.release_claims_at_start(Utc::now()).await };
        ctx.wait(release.into_actor(self).map(|released, act, ctx| {
            match released {
                Ok(n) if n > 0 => tracing::info!(mails = n, "resuming queued report mails"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "cannot resume the outbox yet"),
            }
            act.poll(ctx);
        }));
        ctx.run_interval(self.deps.poll_interval, |act, ctx| act.poll(ctx));
    }
}

impl Handler<SendReport> for MailerActor {
    type Result = ();

    fn handle(&mut self, msg: SendReport, ctx: &mut Self::Context) {
        self.fresh
            .insert(msg.mail_id, (Instant::now(), msg.context));
        self.poll(ctx);
    }
}

impl Handler<Drain> for MailerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        // Mails queued a moment ago go out within the grace period too.
        if !self.fresh.is_empty() {
            self.poll(ctx);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.in_flight == 0 && !self.polling {
            let _ = tx.send(());
        } else {
            self.drained.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
