//! The data a session report shows, and why rendering can fail.
//!
//! When a chat session ends, the server renders a PDF summary (contact, lead
//! score, transcript) and e-mails it to the sales team. Rendering uses Typst as
//! a library, in-process:
//!
//! * [`ReportRenderer::new`] loads the fonts and parses the template once.
//! * [`ReportRenderer::render`] serialises [`ReportData`] to JSON, hands it to
//!   the template as the virtual file `/data.json` and returns PDF bytes. It is
//!   synchronous and CPU-bound (a few tens of milliseconds), so async callers
//!   should run it on a blocking thread, ideally behind a semaphore.
//!
//! Visitor-controlled text is only ever *data* to the template, never markup,
//! so characters such as `#`, `$`, `*`, `[` or `#panic("x")` print verbatim.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Everything a session report shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub brand: Brand,
    pub session_id: String,
    pub generated_at: DateTime<Utc>,
    /// Label printed after times, e.g. "UTC". Times are always printed in UTC.
    pub timezone_label: String,
    pub contact: ReportContact,
    pub lead: ReportLead,
    /// "inactivity" | "visitor" | "admin" (anything else is printed as is).
    pub end_reason: String,
    pub transcript: Vec<ReportLine>,
}

/// The company whose website the chat runs on.
#[derive(Debug, Clone, Serialize)]
pub struct Brand {
    pub name: String,
    /// Accent colour as "#RRGGBB"; an invalid value falls back to a default.
    pub color: String,
    /// Optional header logo.
    pub logo: Option<LogoImage>,
}

/// A logo image; `format` is "png" or "svg".
#[derive(Debug, Clone, Serialize)]
pub struct LogoImage {
    /// Skipped in JSON: the template reads the bytes as a virtual file.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub format: String,
}

/// Contact details the visitor gave; `None` prints as "Not provided".
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportContact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
}

/// Lead scoring summary.
#[derive(Debug, Clone, Serialize)]
pub struct ReportLead {
    /// "low" | "medium" | "high" | "critical".
    pub priority: String,
    pub lead_score: i32,
    /// 0..=100.
    pub engagement_score: u8,
    pub total_queries: u32,
    pub first_interaction: DateTime<Utc>,
    pub last_interaction: DateTime<Utc>,
    /// The signals that make up the score.
    pub signals: Vec<ReportSignal>,
}

/// One scoring signal, e.g. "pricing question", +15, "asked about plans".
#[derive(Debug, Clone, Serialize)]
pub struct ReportSignal {
    pub name: String,
    pub points: i32,
    pub evidence: String,
}

/// One transcript message.
#[derive(Debug, Clone, Serialize)]
pub struct ReportLine {
    pub seq: u64,
    /// "user" | "bot".
    pub role: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template or font file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The fonts directory contains no usable font file.
    #[error("no font files (.ttf/.otf/.ttc) found in {0}")]
    NoFonts(PathBuf),
    /// The template failed to compile; the message lists Typst's diagnostics
    /// with line and column numbers.
    #[error("report template error: {0}")]
    Template(String),
    /// Serialising the report data failed.
    #[error("cannot serialise report data: {0}")]
    Data(#[from] serde_json::Error),
    /// PDF export failed.
    #[error("PDF export failed: {0}")]
    Pdf(String),
}

/// Where the bundled fonts live.
///
/// Returns `$CARGO_MANIFEST_DIR/assets/fonts` (the path of the crate at *build*
/// time) when that directory exists, which covers `cargo run`/`cargo test` and
/// binaries run on the build machine. Otherwise returns the relative path
/// `assets/fonts`, resolved against the process's current directory, so a
/// deployed binary must be started from a directory containing `assets/fonts`
/// (or the caller passes its own path to [`ReportRenderer::new`]).
pub fn default_fonts_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/fonts");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("assets/fonts")
    }
}
