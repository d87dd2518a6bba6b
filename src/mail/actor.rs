//! MailerActor: owns delivery. Every mail goes out through one path: take
//! it in the archive's durable outbox (a lease no other poller or node gets
//! past), send, record the outcome. `SendReport` from the ReportActor brings
//! a fresh report's content along and takes the mail its pipeline held
//! (`Archive::claim_held_mail`), so a fresh report costs no re-read and no
//! poller renders it a second time; retries, mails whose hold ran out and
//! mails left by a crash or a restart are claimed by the periodic poll and
//! rebuilt from the archive. At most `max_in_flight` sends run at once
//! (lettre's pool does not bound concurrency by itself). Each send is a task
//! of its own that reports back with `SendFinished`: a burst queues
//! thousands, and an actor polls all its own futures whenever one wakes.
//! Takes `SendReport` and `Drain`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::compose::{MailContext, ReportFile, compose_report_mail};
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
    /// Told `report.mailed` once a mail is accepted.
    pub events: crate::events::EventSink,
}

/// A report mail was queued in the outbox as `mail_id`, held by its
/// pipeline until `held_until`; send it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendReport {
    pub mail_id: i64,
    pub held_until: DateTime<Utc>,
    pub context: MailContext,
}

/// Stop the mailer (after `Drain`, at shutdown): its SMTP pool is dropped
/// on the actor's own thread, inside the runtime.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMailer;

/// One send task is over (sent, retried, failed or not ours to send).
#[derive(Message)]
#[rtype(result = "()")]
struct SendFinished;

pub struct MailerActor {
    deps: Arc<MailerDeps>,
    permits: Arc<Semaphore>,
    in_flight: usize,
    polling: bool,
    poll_again: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Draining for a shutdown: sends in flight finish, nothing new is
    /// claimed (queued mails stay durable for the next start).
    stopping: bool,
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
            drained: Vec::new(),
            stopping: false,
        }
    }

    /// Runs one send as a task of its own, under a permit.
    fn spawn_send<F>(&mut self, ctx: &mut Context<Self>, send: F)
    where
        F: Future<Output = ()> + 'static,
    {
        self.in_flight += 1;
        let permits = Arc::clone(&self.permits);
        let me = ctx.address();
        actix::spawn(async move {
            if let Ok(_permit) = permits.acquire_owned().await {
                send.await;
            }
            me.do_send(SendFinished);
        });
    }

    fn wake_drained(&mut self) {
        if self.in_flight == 0 && !self.polling {
            self.drained.drain(..).for_each(|tx| {
                let _ = tx.send(());
            });
        }
    }

    /// Claims due mails and sends them; one poll at a time, and one more
    /// once sends have freed room when this one found none.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let free = self.deps.max_in_flight.saturating_sub(self.in_flight);
        if self.polling || free == 0 {
            self.poll_again = true;
            return;
        }
        self.polling = true;
        self.poll_again = false;
        let deps = Arc::clone(&self.deps);
        // A task of its own: a runtime torn down mid-claim drops the
        // database connection there, not inside this actor's drop.
        let claim = actix::spawn(async move {
            deps.archive
                .claim_due_mails(Utc::now(), free as i64, deps.lease)
                .await
        });
        ctx.spawn(claim.into_actor(self).map(|claimed, act, ctx| {
            act.polling = false;
            let mails = match claimed {
                Ok(claimed) => claimed.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "cannot read the outbox");
                    Vec::new()
                }),
                Err(err) => {
                    tracing::warn!(error = %err, "the outbox claim did not finish");
                    Vec::new()
                }
            };
            for mail in mails {
                // Not fresh: its content is rebuilt from the archive.
                let deps = Arc::clone(&act.deps);
                act.spawn_send(ctx, async move {
                    if let Some(context) = rebuild(&deps, &mail).await {
                        deliver(&deps, &mail, &context).await;
                    }
                });
            }
            act.wake_drained();
        }));
    }
}

/// Renders tried for one report mail before it goes out with the
/// transcript as text instead (PROTOCOL §2: never not at all).
pub const RENDER_ATTEMPTS: i32 = 3;

/// The mail of an outbox row: the archived session, and its PDF from disk
/// or, when the file is gone, rendered again from the archive. Each render
/// is counted before it starts; a failed one puts the mail back after a
/// back-off, and once `RENDER_ATTEMPTS` have been tried the mail carries the
/// transcript as `session_{ID}.txt`.
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
        Some(pdf) => Some(pdf),
        // The renders so far failed or took the process down.
        None if mail.render_attempts >= RENDER_ATTEMPTS => None,
        None => match render_again(deps, mail, &session).await {
            Rendered::Pdf(pdf) => Some(pdf),
            Rendered::LastAttemptFailed => None,
            Rendered::Deferred => return None,
        },
    };
    let attachment = match pdf {
        Some(pdf) => ReportFile::Pdf(pdf),
        None => {
            tracing::error!(
                session_id = %session.session_id,
                "the report could not be rendered; mailing the transcript as text"
            );
            metrics::counter!(names::REPORTS, "result" => "text_fallback").increment(1);
            ReportFile::Transcript(convert::transcript_text(&session, &deps.brand.name))
        }
    };
    Some(convert::mail_context(
        &session,
        &deps.mail_from,
        &deps.mail_to,
        &deps.brand.name,
        attachment,
    ))
}

/// What one more render of a queued mail's report gave.
enum Rendered {
    Pdf(Vec<u8>),
    /// The last attempt failed: the transcript goes out instead.
    LastAttemptFailed,
    /// It failed (or could not be counted) and the mail comes back later.
    Deferred,
}

/// Counts a render attempt, renders, and stores the PDF; a failure before
/// the last attempt puts the mail back after the next back-off step.
async fn render_again(
    deps: &MailerDeps,
    mail: &OutboxMail,
    session: &crate::archive::ArchivedSession,
) -> Rendered {
    let attempt = match deps.archive.count_render_attempt(mail.id).await {
        Ok(n) => n,
        Err(err) => {
            tracing::warn!(error = %err, "cannot count the render attempt; the lease brings the mail back");
            return Rendered::Deferred;
        }
    };
    let err = match deps
        .renderer
        .render(convert::report_data(session, &deps.brand))
        .await
    {
        Ok(pdf) => {
            let path = deps
                .report_dir
                .join(super::compose::attachment_name(&session.session_id));
            if crate::report::write_atomically(&path, &pdf).await.is_ok() {
                let _ = deps
                    .archive
                    .set_report_path(&session.session_id, &path.to_string_lossy())
                    .await;
            }
            return Rendered::Pdf(pdf);
        }
        Err(err) => err,
    };
    tracing::error!(session_id = %session.session_id, error = %err, attempt, "cannot render the report for a queued mail");
    if attempt >= RENDER_ATTEMPTS {
        return Rendered::LastAttemptFailed;
    }
    metrics::counter!(names::REPORTS, "result" => "failed").increment(1);
    // The pipeline's render was attempt 1 and waited `backoff(0)`; this one
    // waits the next step.
    let wait = backoff(u32::try_from(attempt - 1).unwrap_or(0));
    let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    let reason = format!("render attempt {attempt} failed: {err}");
    if let Err(err) = deps.archive.defer_render(mail.id, &reason, next).await {
        tracing::warn!(error = %err, "cannot record the failed render; the lease brings the mail back");
    }
    Rendered::Deferred
}

#[tracing::instrument(name = "send_report", skip_all, fields(session_id = %context.session_id, mail_id))]
async fn deliver(deps: &MailerDeps, mail: &OutboxMail, context: &MailContext) {
    let (mail_id, attempts) = (mail.id, mail.attempts);
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
    let result = send_under_lease(deps, mail, &message).await;
    metrics::histogram!(names::MAIL_LATENCY).record(started.elapsed().as_secs_f64());
    let recorded = match result {
        Ok(()) => {
            metrics::counter!(names::MAILS_SENT).increment(1);
            tracing::info!(recipients = context.to.len(), "report mail sent");
            let sent_at = Utc::now();
            let recorded = deps.archive.mark_sent(mail_id, sent_at).await;
            deps.events.send(crate::events::DomainEvent::ReportMailed {
                session_id: mail.session_id.clone(),
                recipients: mail.recipients.clone(),
                message_id: mail.message_id.clone(),
                at: sent_at,
            });
            recorded
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

/// Sends `message` while renewing the mail's claim every third of the lease,
/// so however long the SMTP server takes, no other poller or node sees the
/// mail due and sends it a second time. If this process dies mid-send the
/// lease runs out and the resend carries the same Message-ID.
async fn send_under_lease(
    deps: &MailerDeps,
    mail: &OutboxMail,
    message: &lettre::Message,
) -> Result<(), SendError> {
    let lease = chrono::Duration::from_std(deps.lease).unwrap_or(chrono::Duration::seconds(120));
    let every = (deps.lease / 3).max(Duration::from_millis(50));
    let mut held = mail.next_attempt_at;
    let send = deps.transport.send(message);
    tokio::pin!(send);
    loop {
        tokio::select! {
            result = &mut send => return result,
            () = tokio::time::sleep(every) => {
                use chrono::SubsecRound;
                let until = (Utc::now() + lease).trunc_subsecs(6);
                match deps.archive.renew_claim(mail.id, held, until).await {
                    Ok(true) => held = until,
                    Ok(false) => {
                        // Recorded or taken over meanwhile: the send in
                        // progress finishes, but nothing else is claimed.
                        tracing::warn!(mail_id = mail.id, "the claim on a mail in flight was lost");
                    }
                    Err(err) => {
                        tracing::warn!(mail_id = mail.id, error = %err, "cannot renew the claim on a mail in flight");
                    }
                }
            }
        }
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
        let deps = Arc::clone(&self.deps);
        self.spawn_send(ctx, async move {
            let SendReport {
                mail_id,
                held_until,
                context,
            } = msg;
            match deps
                .archive
                .claim_held_mail(mail_id, held_until, Utc::now(), deps.lease)
                .await
            {
                Ok(Some(mail)) => deliver(&deps, &mail, &context).await,
                Ok(None) => {
                    tracing::info!(mail_id, "report mail taken over by a poller after its hold; not sent from here")
                }
                Err(err) => {
                    tracing::warn!(mail_id, error = %err, "cannot take the report mail; a poller sends it when its hold ends")
                }
            }
        });
    }
}

impl Handler<SendFinished> for MailerActor {
    type Result = ();

    fn handle(&mut self, _: SendFinished, ctx: &mut Self::Context) {
        self.in_flight -= 1;
        if self.poll_again {
            self.poll(ctx);
        }
        self.wake_drained();
    }
}

impl Handler<Drain> for MailerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
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

impl Handler<StopMailer> for MailerActor {
    type Result = ();

    fn handle(&mut self, _: StopMailer, ctx: &mut Self::Context) {
        self.stopping = true;
        ctx.stop();
    }
}
