//! The one outbound HTTP client: webhooks, the LLM, WhatsApp and Google
//! Sheets all call out through [`HttpClient`], so every call has a connect
//! time-out and a total time-out, sends `user-agent: leadchat/VERSION`,
//! follows no redirect unless its caller asks for some, and fails with an
//! [`OutboundError`] that says whether trying again can help (and when, if
//! the server said so with `Retry-After`).
//!
//! reqwest on rustls with ring, the TLS stack lettre and sqlx already use;
//! web PKI roots are built in, so a container needs no CA bundle.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response};

/// What every call sends as `user-agent`.
pub const USER_AGENT: &str = concat!("leadchat/", env!("CARGO_PKG_VERSION"));
/// How much of an error response's body is kept for the error message.
const ERROR_BODY_BYTES: usize = 1024;
/// The largest answer `send_json` reads: a third party's answer is bounded
/// like everything a visitor sends.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// How a client calls out; each caller states its own total time-out.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to open the TCP connection (and finish TLS).
    pub connect_timeout: Duration,
    /// Time for the whole call, response body included, unless the request
    /// sets its own (`RequestBuilder::timeout`).
    pub timeout: Duration,
    /// Redirects followed; 0 (the default) makes every 3xx an error.
    pub redirects: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            redirects: 0,
        }
    }
}

/// Why an outbound call failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The URL or a header could not be used; trying again cannot help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No connection could be made (refused, unreachable, DNS, TLS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connect or total time-out passed.
    #[error("timed out")]
    Timeout,
    /// A redirect that the client was not told to follow.
    #[error("redirected with {status} to {location:?}")]
    Redirect {
        status: u16,
        location: Option<String>,
    },
    /// A 4xx or 5xx; `body` is the start of the server's answer.
    #[error("HTTP {status}: {body}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// The connection broke mid-answer, or the body did not decode.
    #[error("bad response: {0}")]
    Body(String),
}

impl OutboundError {
    /// Whether the same call may succeed later: time-outs, connection
    /// failures, broken answers, 408, 429 and 5xx. Other 4xx, redirects and
    /// invalid requests will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout | Self::Body(_) => true,
            Self::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Invalid(_) | Self::Redirect { .. } => false,
        }
    }

    /// The wait the server asked for (`Retry-After` in seconds or as an
    /// HTTP date), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } | Self::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        // The URL may carry a key (Google, some LLM gateways): never shown.
        let e = e.without_url();
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect(source_chain(&e))
        } else if e.is_builder() {
            Self::Invalid(source_chain(&e))
        } else {
            Self::Body(source_chain(&e))
        }
    }
}

/// The error and its causes on one line ("error sending request: connection
/// refused").
fn source_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A shared, cheap to clone HTTP client (one connection pool).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    pub fn new(options: &ClientOptions) -> Result<Self, OutboundError> {
        let redirects = match options.redirects {
            0 => reqwest::redirect::Policy::none(),
            n => reqwest::redirect::Policy::limited(n),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .redirect(redirects)
            .build()
            .map_err(OutboundError::from_reqwest)?;
        Ok(Self { client })
    }

    /// A request to `url`; send it with [`HttpClient::send`].
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request`: a 2xx comes back as the response; a 3xx (when not
    /// followed), 4xx or 5xx becomes an error holding the start of its body.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, OutboundError> {
        let response = request.send().await.map_err(OutboundError::from_reqwest)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Err(OutboundError::Redirect {
                status: status.as_u16(),
                location,
            });
        }
        let retry_after = retry_after(response.headers());
        let body = error_body(response).await;
        Err(OutboundError::Status {
            status: status.as_u16(),
            retry_after,
            body,
        })
    }

    /// [`HttpClient::send`], then the body as JSON; an answer over
    /// [`MAX_BODY_BYTES`] is a `Body` error, read no further.
    pub async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, OutboundError> {
        let mut response = self.send(request).await?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(OutboundError::from_reqwest)?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(OutboundError::Body(format!(
                    "the answer is over {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| OutboundError::Body(format!("not the JSON expected: {e}")))
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The first [`ERROR_BODY_BYTES`] of an error answer, as text.
async fn error_body(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    if text.is_empty() {
        response
            .status()
            .canonical_reason()
            .unwrap_or_default()
            .to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("header"));
        let wait = retry_after(&h).expect("a date");
        assert!(wait > Duration::from_secs(110) && wait <= Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn what_is_worth_retrying() {
        let status = |s| OutboundError::Status {
            status: s,
            retry_after: None,
            body: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(410).is_retryable());
        assert!(OutboundError::Timeout.is_retryable());
        assert!(
            !OutboundError::Redirect {
                status: 302,
                location: None
            }
            .is_retryable()
        );
    }
}
