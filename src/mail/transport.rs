//! Where composed mails go: a pooled SMTP client, or a folder of `.eml` files.
//!
//! Transport URLs:
//! - `smtp://[user:pass@]host[:port]` — plain SMTP, port 25 by default, and
//!   deliberately *no* opportunistic STARTTLS: a local relay or the test server
//!   speaks plain text, and "maybe TLS" protects nothing against an active
//!   attacker anyway. Add `?tls=starttls` to require STARTTLS.
//! - `smtp+starttls://…` — STARTTLS required, port 587 by default.
//! - `smtps://…` — implicit TLS, port 465 by default.
//! - `file:///path/to/dir` — the outbox folder (also [`MailTransport::outbox`]).
//!
//! Credentials come from the URL (percent-encoded). `?pool_size=N` caps the
//! pooled connections (default 8). Every SMTP command times out after 30 s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use thiserror::Error;

use super::MailError;

/// Per-command SMTP time-out.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default pooled connections: enough for ~300 mails/s to a local relay.
const DEFAULT_POOL_SIZE: u32 = 8;
/// Retry delays start here and double per attempt...
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// ...up to this ceiling.
const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// Why a send failed, and so what the outbox should do with the mail.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// Worth retrying later: connection refused or reset, time-out, a 4xx
    /// reply, a TLS hiccup, a full disk.
    #[error("transient send failure: {0}")]
    Transient(String),
    /// Retrying will not help: a 5xx reply (unknown mailbox, rejected
    /// content), or a message lettre refuses to send.
    #[error("permanent send failure: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }
}

impl From<smtp::Error> for SendError {
    fn from(e: smtp::Error) -> Self {
        // lettre classifies replies: 5xx is_permanent, 4xx is_transient. A
        // client error means the message itself is unsendable; everything
        // else (connection, i/o, time-out, TLS, shutdown) may pass.
        if e.is_permanent() || e.is_client() {
            SendError::Permanent(e.to_string())
        } else {
            SendError::Transient(e.to_string())
        }
    }
}

/// A mail transport; clone it freely (the SMTP pool is shared).
#[derive(Clone)]
pub enum MailTransport {
    /// Pooled SMTP client.
    Smtp(Arc<SmtpPool>),
    /// Writes `<dir>/session_{ID}.eml`; for development and as a fallback.
    Outbox(PathBuf),
}

impl std::fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP client holds credentials; never print it.
        match self {
            MailTransport::Smtp(_) => f.write_str("MailTransport::Smtp(..)"),
            MailTransport::Outbox(dir) => {
                f.debug_tuple("MailTransport::Outbox").field(dir).finish()
            }
        }
    }
}

impl MailTransport {
    /// Builds a transport from a URL (see the module docs).
    ///
    /// Must run inside a Tokio runtime: the SMTP pool spawns its idle-connection
    /// reaper when built (lettre would panic otherwise; we return an error).
    pub fn from_url(url: &str) -> Result<Self, MailError> {
        let invalid = |reason: &str| MailError::InvalidUrl {
            url: crate::secret::redact_url(url),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        let mut tls_mode = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid("not a local folder"))?;
                return Ok(Self::outbox(dir));
            }
            "smtp" => TlsMode::None,
            "smtp+starttls" => TlsMode::StartTls,
            "smtps" => TlsMode::Implicit,
            _ => return Err(invalid("expected smtp, smtp+starttls, smtps or file")),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host"))?
            .to_owned();
        let mut pool_size = DEFAULT_POOL_SIZE;
        for (key, value) in parsed.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "starttls" | "required") => tls_mode = TlsMode::StartTls,
                ("tls", "none") => tls_mode = TlsMode::None,
                ("tls", "implicit" | "wrapper") => tls_mode = TlsMode::Implicit,
                ("pool_size", n) => {
                    pool_size = n
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("pool_size must be a positive number"))?;
                }
                _ => {
                    return Err(invalid(
                        "unknown parameter (tls=starttls|none|implicit, pool_size=N)",
                    ));
                }
            }
        }
        let port = parsed.port().unwrap_or(match tls_mode {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Implicit => 465,
        });
        let tls = match tls_mode {
            TlsMode::None => Tls::None,
            mode => {
                let params =
                    TlsParameters::new(host.clone()).map_err(|e| invalid(&e.to_string()))?;
                if mode == TlsMode::StartTls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MailError::NoRuntime);
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(pool_size));
        if !parsed.username().is_empty() {
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| invalid("credentials are not valid UTF-8"))
            };
            let user = decode(parsed.username())?;
            let pass = decode(parsed.password().unwrap_or(""))?;
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(MailTransport::Smtp(Arc::new(SmtpPool(Some(
            builder.build(),
        )))))
    }

    /// A transport writing `.eml` files into `dir` (created on first send).
    pub fn outbox(dir: impl Into<PathBuf>) -> Self {
        MailTransport::Outbox(dir.into())
    }

    /// Sends one mail. For `Outbox`, the file is named after the session id
    /// found in the Message-ID (`<session-{ID}@…>`), so a resend overwrites
    /// the same file instead of adding a second one.
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            MailTransport::Smtp(pool) => {
                let smtp = pool.0.as_ref().expect("taken only when dropped");
                smtp.send_raw(message.envelope(), &message.formatted())
                    .await?;
                Ok(())
            }
            MailTransport::Outbox(dir) => write_eml(dir, message).await,
        }
    }
}

/// lettre's SMTP pool, which spawns a task when it is dropped. Dropped
/// outside a Tokio runtime — a process or test whose runtime is already
/// going away — it is leaked rather than panicking (a panic while another
/// drop unwinds aborts the process); its connections close with the process.
pub struct SmtpPool(Option<AsyncSmtpTransport<Tokio1Executor>>);

impl Drop for SmtpPool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            std::mem::forget(pool);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    StartTls,
    Implicit,
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file name for a message: from its Message-ID, or unique if it has none of ours.
fn eml_name(message: &Message) -> String {
    let id = message
        .headers()
        .get_raw("Message-ID")
        .and_then(|v| {
            v.trim()
                .strip_prefix("<session-")?
                .split('@')
                .next()
                .map(str::to_owned)
        })
        .map(|id| super::compose::safe_session_id(&id));
    match id {
        Some(id) if !id.is_empty() => format!("session_{id}.eml"),
        _ => format!(
            "mail_{}_{:08x}.eml",
            chrono::Utc::now().timestamp_millis(),
            rand::rng().random::<u32>()
        ),
    }
}

/// Write to a temporary name, fsync, then rename: a reader (or a crash)
/// never sees half a mail, because rename within one folder is atomic.
async fn write_eml(dir: &Path, message: &Message) -> Result<(), SendError> {
    use tokio::io::AsyncWriteExt;
    let io = |what: &str, e: std::io::Error| SendError::Transient(format!("{what}: {e}"));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io("cannot create outbox folder", e))?;
    let name = eml_name(message);
    let tmp = dir.join(format!(".{name}.{:08x}.tmp", rand::rng().random::<u32>()));
    let written = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&message.formatted()).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, dir.join(&name)).await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io("cannot write mail", e));
    }
    Ok(())
}

/// Delay before retry number `attempt` (0 for the first retry): exponential
/// from 2 s, capped at 10 min, with full jitter — a uniformly random delay up
/// to that ceiling, so mails that failed together (a relay outage) do not
/// all come back in the same second.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = backoff_ceiling(attempt);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// The upper bound `backoff(attempt)` draws from.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    BACKOFF_BASE
        .checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_ceiling(0), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(3), Duration::from_secs(16));
        assert_eq!(backoff_ceiling(9), Duration::from_secs(600));
        assert_eq!(backoff_ceiling(40), Duration::from_secs(600));
        for attempt in 0..50 {
            assert!(backoff(attempt) <= backoff_ceiling(attempt));
        }
    }

    #[tokio::test]
    async fn urls_pick_tls_and_ports() {
        assert!(matches!(
            MailTransport::from_url("smtp://127.0.0.1:2525"),
            Ok(MailTransport::Smtp(_))
        ));
        assert!(MailTransport::from_url("smtps://u:p%40ss@mail.example.com").is_ok());
        assert!(MailTransport::from_url("smtp://h?tls=starttls").is_ok());
        assert!(MailTransport::from_url("smtp://h?tls=maybe").is_err());
        assert!(matches!(
            MailTransport::from_url("file:///tmp/outbox"),
            Ok(MailTransport::Outbox(_))
        ));
        let err = MailTransport::from_url("ftp://u:secret@h").expect_err("bad scheme");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn smtp_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            MailTransport::from_url("smtp://127.0.0.1:2525"),
            Err(MailError::NoRuntime)
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss%20w").as_deref(), Some("p@ss w"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%"), Some("bad%".to_owned()));
    }
}
