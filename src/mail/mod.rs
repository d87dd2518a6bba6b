//! The report mail: composing it ([`compose`]) and handing it to an SMTP
//! server or a folder ([`transport`]).
//!
//! Delivery is at-least-once by design: the archive's outbox is the record of
//! what still has to go out, and the transport only says whether a failure is
//! worth retrying ([`SendError::Transient`]) or not ([`SendError::Permanent`]).
//! The stable `Message-ID` lets the receiving side spot the rare duplicate.

mod actor;
pub mod compose;
pub mod transport;

pub use actor::{MailerActor, MailerDeps, SendReport, StopMailer};

use thiserror::Error;

pub use compose::{MailContext, ReportFile, compose_report_mail, message_id_for, report_subject};
pub use transport::{MailTransport, SendError, backoff};

/// Errors building a mail or a transport (as opposed to sending one).
#[derive(Debug, Error)]
pub enum MailError {
    #[error("invalid mail address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("the report mail has no recipients")]
    NoRecipients,
    #[error("cannot build the mail: {0}")]
    Build(String),
    /// SMTP transports must be built inside a Tokio runtime.
    #[error("the SMTP transport must be built inside a Tokio runtime")]
    NoRuntime,
    /// The transport URL is wrong; the URL shown has its password redacted.
    #[error("invalid mail transport URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
}
