//! [`ReportRenderer`]: turns [`ReportData`] into PDF bytes with Typst.
//!
//! The renderer owns the fonts and the parsed template (see `world.rs`). Each
//! render builds a small JSON "view model" (pre-formatted times, labels,
//! sanitised colour, break opportunities in very long words), exposes it to the
//! template as `/data.json`, compiles and exports to PDF.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Value, json};
use typst::WorldExt;
use typst::diag::{SourceDiagnostic, Warned};
use typst::foundations::{Bytes, Datetime};
use typst_layout::PagedDocument;
use typst_pdf::PdfOptions;

use super::world::{DATA_PATH, ReportWorld, Shared, file_id};
use super::{RenderError, ReportData};

/// The template compiled into the binary, used when no path is given.
const BUILTIN_TEMPLATE: &str = include_str!("../../templates/session_report.typ");

/// Accent colour used when `Brand::color` is not a valid "#RRGGBB".
const DEFAULT_BRAND_COLOR: &str = "#1F4E79";

/// How many comemo cache generations survive an eviction. Typst memoises
/// layout results globally; without eviction a long-running server's memory
/// grows with every distinct report. A small number keeps the template-level
/// caches warm (they are hit every render) while dropping per-report entries.
const CACHE_MAX_AGE: usize = 3;
/// Renders between evictions. An eviction walks the whole cache, which cost
/// a quarter of a small report's render when it ran after each one.
const EVICT_EVERY: usize = 4;

/// Renders session reports. Cheap to share (`Send + Sync`): wrap in an `Arc`.
pub struct ReportRenderer {
    shared: Shared,
    /// Renders so far, for evicting Typst's cache every `EVICT_EVERY`.
    renders: AtomicUsize,
}

impl std::fmt::Debug for ReportRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportRenderer")
            .field("fonts", &self.shared.font_count())
            .finish_non_exhaustive()
    }
}

impl ReportRenderer {
    /// Loads the template (`None` = the built-in one) and every font in
    /// `fonts_dir` once. Template syntax errors surface on the first render.
    pub fn new(template_path: Option<&Path>, fonts_dir: &Path) -> Result<Self, RenderError> {
        let template = match template_path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| RenderError::Io {
                path: path.to_path_buf(),
                source,
            })?,
            None => BUILTIN_TEMPLATE.to_owned(),
        };
        Ok(Self {
            shared: Shared::new(template, fonts_dir)?,
            renders: AtomicUsize::new(0),
        })
    }

    /// Renders one report to PDF bytes. Synchronous and CPU-bound.
    pub fn render(&self, data: &ReportData) -> Result<Vec<u8>, RenderError> {
        let result = self.render_inner(data, true);
        let result = match result {
            // A corrupt or unsupported logo must not cost the sales team the
            // report: retry once without it.
            Err(RenderError::Template(_)) if data.brand.logo.is_some() => {
                self.render_inner(data, false)
            }
            other => other,
        };
        let renders = self.renders.fetch_add(1, Ordering::Relaxed) + 1;
        if renders.is_multiple_of(EVICT_EVERY) {
            comemo::evict(CACHE_MAX_AGE);
        }
        result
    }

    fn render_inner(&self, data: &ReportData, with_logo: bool) -> Result<Vec<u8>, RenderError> {
        let mut files = Vec::with_capacity(2);
        let mut logo_path = None;
        if let Some(logo) = data.brand.logo.as_ref().filter(|_| with_logo) {
            let ext = if logo.format.eq_ignore_ascii_case("svg") {
                "svg"
            } else {
                "png"
            };
            let path = format!("/logo.{ext}");
            files.push((file_id(&path)?, Bytes::new(logo.bytes.clone())));
            logo_path = Some(path);
        }
        let view = view_model(data, logo_path);
        files.push((file_id(DATA_PATH)?, Bytes::new(serde_json::to_vec(&view)?)));

        let at = data.generated_at;
        let today = Datetime::from_ymd(at.year(), at.month() as u8, at.day() as u8);
        let world = ReportWorld::new(&self.shared, files, today);

        let Warned { output, .. } = typst::compile::<PagedDocument>(&world);
        let document =
            output.map_err(|diags| RenderError::Template(format_diags(&world, &diags)))?;
        // Default options keep the PDF tagged (accessible); tagging costs only
        // ~6% of render time.
        typst_pdf::pdf(&document, &PdfOptions::default())
            .map_err(|diags| RenderError::Pdf(format_diags(&world, &diags)))
    }
}

/// Builds the JSON the template reads. Kept flat and pre-formatted so the
/// template stays simple (and fast) and all escaping questions are moot:
/// everything here is a JSON string, which Typst treats as plain text.
fn view_model(data: &ReportData, logo: Option<String>) -> Value {
    let tz = data.timezone_label.as_str();
    let full = |t: &DateTime<Utc>| format!("{} {tz}", t.format("%Y-%m-%d %H:%M:%S"));
    let first_day = data.transcript.first().map(|l| l.at.date_naive());
    let multi_day = data
        .transcript
        .iter()
        .any(|l| Some(l.at.date_naive()) != first_day);
    let bot_name = format!("{} Assistant", data.brand.name.trim());

    let transcript: Vec<Value> = data
        .transcript
        .iter()
        .map(|line| {
            let is_user = line.role.eq_ignore_ascii_case("user");
            // Show the date only when the session crosses midnight.
            let time = if multi_day {
                line.at.format("%m-%d %H:%M:%S")
            } else {
                line.at.format("%H:%M:%S")
            };
            json!({
                "seq": line.seq,
                "user": is_user,
                "speaker": if is_user { "Visitor" } else { bot_name.as_str() },
                "time": time.to_string(),
                "text": breakable(&line.text, LONG_WORD),
            })
        })
        .collect();

    let lead = &data.lead;
    let duration = (lead.last_interaction - lead.first_interaction)
        .num_seconds()
        .max(0);
    json!({
        "brand": {
            "name": data.brand.name,
            "color": sanitize_color(&data.brand.color),
            "bot": bot_name,
        },
        "logo": logo,
        "session_id": breakable(&data.session_id, LONG_FIELD),
        "generated_at": full(&data.generated_at),
        "timezone": tz,
        "end_reason": end_reason_label(&data.end_reason),
        "contact": {
            "name": present(&data.contact.name),
            "email": present(&data.contact.email),
            // The clickable link's target, percent-encoded.
            "email_raw": data.contact.email.as_deref().map(crate::domain::mailto_href),
            "phone": present(&data.contact.phone),
            "organization": present(&data.contact.organization),
        },
        "lead": {
            "priority": lead.priority.trim().to_lowercase(),
            "score": lead.lead_score,
            "engagement": lead.engagement_score,
            "queries": lead.total_queries,
            "first": full(&lead.first_interaction),
            "last": full(&lead.last_interaction),
            "duration": format!("{}m {:02}s", duration / 60, duration % 60),
            "signals": lead.signals.iter().map(|s| json!({
                "name": s.name,
                "points": s.points,
                "evidence": breakable(&s.evidence, LONG_WORD),
            })).collect::<Vec<_>>(),
        },
        "transcript": transcript,
    })
}

/// `None` for missing or blank values, so the template prints "Not provided".
fn present(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| breakable(v, LONG_FIELD))
}

fn end_reason_label(reason: &str) -> String {
    match reason {
        "inactivity" => "Ended after inactivity".to_owned(),
        "visitor" => "Ended by the visitor".to_owned(),
        "admin" => "Closed by an administrator".to_owned(),
        other => other.to_owned(),
    }
}

/// Returns `color` if it is "#RRGGBB", else the default: the template passes
/// it to `rgb(..)`, which would fail the whole render on bad input.
fn sanitize_color(color: &str) -> &str {
    let c = color.trim();
    let valid =
        c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit());
    if valid { c } else { DEFAULT_BRAND_COLOR }
}

/// Zero-width space: an invisible line-break opportunity.
const ZWSP: char = '\u{200B}';

/// Token length (chars) from which transcript words get break hints.
const LONG_WORD: usize = 30;
/// Contact fields and ids are copied by the sales team, so they only get break
/// hints when they could not possibly fit on a line.
const LONG_FIELD: usize = 36;

/// Inserts invisible break opportunities into very long unbroken tokens
/// ("aaaa…", hashes) so they wrap instead of running off the page: Typst only
/// breaks plain text at spaces and script-defined positions (URLs after
/// "://" or starting "www." it already breaks itself, so they are left alone).
/// A ZWSP ends up in copied text, hence the high thresholds. Breaks are only
/// placed between ASCII characters, so Indic clusters are never split.
fn breakable(text: &str, long: usize) -> String {
    const RUN: usize = 20; // chars between two break hints
    let mut out = String::with_capacity(text.len() + 16);
    for (i, token) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let is_url = token.contains("://") || token.starts_with("www.");
        if is_url || token.chars().count() < long {
            out.push_str(token);
            continue;
        }
        let mut run = 0;
        let mut chars = token.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            run = if c.is_whitespace() { 0 } else { run + 1 };
            if run >= RUN
                && c.is_ascii_graphic()
                && chars.peek().is_some_and(char::is_ascii_graphic)
            {
                out.push(ZWSP);
                run = 0;
            }
        }
    }
    out
}

/// Formats Typst diagnostics as "message (line L, column C: `code`)" lines.
fn format_diags(world: &ReportWorld<'_>, diags: &[SourceDiagnostic]) -> String {
    let source = world.main_source();
    diags
        .iter()
        .map(|d| {
            let mut msg = d.message.to_string();
            if d.span.id() == Some(source.id())
                && let Some(range) = world.range(d.span)
                && let Some((line, col)) = source.lines().byte_to_line_column(range.start)
            {
                let snippet: String = source.text()[range].chars().take(60).collect();
                msg.push_str(&format!(
                    " (line {}, column {}: `{snippet}`)",
                    line + 1,
                    col + 1
                ));
            }
            for hint in &d.hints {
                msg.push_str(&format!("; hint: {}", hint.v));
            }
            msg
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakable_leaves_short_words_alone() {
        assert_eq!(breakable("hello world", LONG_WORD), "hello world");
        let url = "https://example.com/a/very/long/path?with=query&and=more";
        assert_eq!(breakable(url, LONG_WORD), url, "Typst breaks URLs itself");
        let long = "a".repeat(50);
        assert!(breakable(&long, LONG_WORD).contains(ZWSP));
        assert_eq!(breakable(&long, LONG_WORD).replace(ZWSP, ""), long);
        let hindi = "नमस्ते".repeat(10);
        assert_eq!(breakable(&hindi, LONG_WORD), hindi);
    }

    #[test]
    fn colour_is_sanitised() {
        assert_eq!(sanitize_color("#AABBCC"), "#AABBCC");
        assert_eq!(sanitize_color("red\"); #panic(1)"), DEFAULT_BRAND_COLOR);
    }
}
