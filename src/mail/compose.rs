//! Builds the report mail the sales team receives when a session is finalized.
//!
//! The shape is a contract with downstream mail rules, so it is fixed here:
//! `multipart/mixed` holding a `multipart/alternative` (plain text, then HTML)
//! and the PDF `session_{ID}.pdf` — or, when the report could not be rendered
//! after every attempt, the transcript as `session_{ID}.txt`. The `Message-ID` is derived from the
//! session id, so a mail sent twice by accident carries the same id and is
//! recognisable (and de-duplicable) downstream.

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};

use super::MailError;

/// Everything the report mail says; built by the mailer from the archived session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailContext {
    /// Sender, e.g. `Leadchat <leads@example.com>`; its domain goes into the Message-ID.
    pub from: String,
    /// The sales team; every address is a `To`.
    pub to: Vec<String>,
    /// The company name shown in the subject.
    pub brand: String,
    pub session_id: String,
    pub visitor_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub priority: String,
    pub lead_score: i32,
    pub total_queries: i32,
    pub end_reason: String,
    /// One line per scoring signal, e.g. `asked for pricing (+20)`.
    pub signals: Vec<String>,
    /// The rendered report, or the transcript in its place.
    pub attachment: ReportFile,
}

/// What the report mail carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportFile {
    /// The rendered report, `session_{ID}.pdf`.
    Pdf(Vec<u8>),
    /// The transcript as plain text, `session_{ID}.txt`: the PDF could not
    /// be rendered, and the lead is mailed all the same.
    Transcript(String),
}

impl ReportFile {
    /// The attachment's file name.
    pub fn name(&self, session_id: &str) -> String {
        match self {
            Self::Pdf(_) => attachment_name(session_id),
            Self::Transcript(_) => transcript_attachment_name(session_id),
        }
    }
}

/// Shown where the visitor gave no name.
pub const ANONYMOUS: &str = "Anonymous visitor";

/// `<brand> Session Report - <visitor name>`.
pub fn report_subject(brand: &str, visitor_name: Option<&str>) -> String {
    let name = visitor_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(ANONYMOUS);
    format!("{brand} Session Report - {name}")
}

/// The session id with anything outside `[A-Za-z0-9._-]` replaced by `-`, so
/// it is safe inside a Message-ID and a file name.
pub fn safe_session_id(session_id: &str) -> String {
    session_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `<session-{ID}@{domain}>`: the same for every send of one session's report.
pub fn message_id_for(session_id: &str, domain: &str) -> String {
    format!("<session-{}@{domain}>", safe_session_id(session_id))
}

/// `session_{ID}.pdf` for an id read back from the archive (made safe for a
/// file name; the same as `SessionId::report_file_name` for a valid id).
pub fn attachment_name(session_id: &str) -> String {
    format!("session_{}.pdf", safe_session_id(session_id))
}

/// `session_{ID}.txt`, the transcript sent when no PDF could be rendered.
pub fn transcript_attachment_name(session_id: &str) -> String {
    format!("session_{}.txt", safe_session_id(session_id))
}

/// Composes the report mail; fails only on unparseable addresses.
pub fn compose_report_mail(ctx: &MailContext) -> Result<Message, MailError> {
    let from: Mailbox = ctx.from.parse().map_err(|e| MailError::InvalidAddress {
        address: ctx.from.clone(),
        reason: format!("{e}"),
    })?;
    if ctx.to.is_empty() {
        return Err(MailError::NoRecipients);
    }
    let message_id = message_id_for(&ctx.session_id, from.email.domain());
    let mut builder = Message::builder()
        .from(from)
        .subject(report_subject(&ctx.brand, ctx.visitor_name.as_deref()))
        .message_id(Some(message_id));
    for to in &ctx.to {
        let mailbox: Mailbox = to.parse().map_err(|e| MailError::InvalidAddress {
            address: to.clone(),
            reason: format!("{e}"),
        })?;
        builder = builder.to(mailbox);
    }
    let name = ctx.attachment.name(&ctx.session_id);
    let file = match &ctx.attachment {
        ReportFile::Pdf(pdf) => Attachment::new(name).body(
            pdf.clone(),
            ContentType::parse("application/pdf").map_err(|e| MailError::Build(e.to_string()))?,
        ),
        ReportFile::Transcript(text) => Attachment::new(name).body(
            text.clone(),
            ContentType::parse("text/plain; charset=utf-8")
                .map_err(|e| MailError::Build(e.to_string()))?,
        ),
    };
    builder
        .multipart(
            MultiPart::mixed()
                .multipart(MultiPart::alternative_plain_html(
                    plain_body(ctx),
                    html_body(ctx),
                ))
                .singlepart(file),
        )
        .map_err(|e| MailError::Build(e.to_string()))
}

/// The value, or `-` when missing or blank.
pub(crate) fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().filter(|s| !s.trim().is_empty()).unwrap_or("-")
}

fn visitor(ctx: &MailContext) -> &str {
    ctx.visitor_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(ANONYMOUS)
}

fn plain_body(ctx: &MailContext) -> String {
    let mut out = format!(
        "New lead from the {brand} website chat.\n\n\
         Visitor:       {name}\n\
         E-mail:        {email}\n\
         Phone:         {phone}\n\
         Organization:  {org}\n\n\
         Lead priority: {priority} (score {score})\n\
         Queries:       {queries}\n\
         Session ended: {reason}\n\
         Session ID:    {id}\n",
        brand = ctx.brand,
        name = visitor(ctx),
        email = or_dash(&ctx.email),
        phone = or_dash(&ctx.phone),
        org = or_dash(&ctx.organization),
        priority = ctx.priority,
        score = ctx.lead_score,
        queries = ctx.total_queries,
        reason = ctx.end_reason,
        id = ctx.session_id,
    );
    if !ctx.signals.is_empty() {
        out.push_str("\nSignals:\n");
        for s in &ctx.signals {
            out.push_str("- ");
            out.push_str(s);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&attachment_note(ctx));
    out.push('\n');
    out
}

/// The body's last sentence: what is attached, and why when it is not the PDF.
fn attachment_note(ctx: &MailContext) -> String {
    let name = ctx.attachment.name(&ctx.session_id);
    match ctx.attachment {
        ReportFile::Pdf(_) => format!("The full transcript is attached as {name}."),
        ReportFile::Transcript(_) => format!(
            "The PDF report could not be generated; the full transcript is attached as {name}."
        ),
    }
}

fn html_body(ctx: &MailContext) -> String {
    let row = |label: &str, value: &str| {
        format!(
            "<tr><th align=\"left\">{label}</th><td>{}</td></tr>",
            escape_html(value)
        )
    };
    let mut out = format!(
        "<!DOCTYPE html><html><body>\
         <p>New lead from the {} website chat.</p><table>",
        escape_html(&ctx.brand)
    );
    out.push_str(&row("Visitor", visitor(ctx)));
    out.push_str(&row("E-mail", or_dash(&ctx.email)));
    out.push_str(&row("Phone", or_dash(&ctx.phone)));
    out.push_str(&row("Organization", or_dash(&ctx.organization)));
    out.push_str(&row(
        "Lead priority",
        &format!("{} (score {})", ctx.priority, ctx.lead_score),
    ));
    out.push_str(&row("Queries", &ctx.total_queries.to_string()));
    out.push_str(&row("Session ended", &ctx.end_reason));
    out.push_str(&row("Session ID", &ctx.session_id));
    out.push_str("</table>");
    if !ctx.signals.is_empty() {
        out.push_str("<p>Signals:</p><ul>");
        for s in &ctx.signals {
            out.push_str(&format!("<li>{}</li>", escape_html(s)));
        }
        out.push_str("</ul>");
    }
    out.push_str(&format!(
        "<p>{}</p></body></html>",
        escape_html(&attachment_note(ctx))
    ));
    out
}

/// Escapes text for HTML element content and quoted attributes: visitor data
/// is untrusted and must not become markup in the sales team's mail client.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_falls_back_to_anonymous() {
        assert_eq!(
            report_subject("Acme", None),
            "Acme Session Report - Anonymous visitor"
        );
        assert_eq!(
            report_subject("Acme", Some("  ")),
            "Acme Session Report - Anonymous visitor"
        );
        assert_eq!(
            report_subject("Acme", Some("Zoë")),
            "Acme Session Report - Zoë"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<b>\"Tom\" & 'Jerry'</b>"),
            "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn ids_are_made_safe() {
        assert_eq!(message_id_for("a b<c>", "x.org"), "<session-a-b-c-@x.org>");
        assert_eq!(attachment_name("../etc"), "session_..-etc.pdf");
    }
}
