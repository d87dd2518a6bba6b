//! The finalized session in the shapes the archive, the PDF and the mail
//! need. A report re-rendered from the archive is the same report.

use chrono::Utc;

use super::data::{Brand, ReportContact, ReportData, ReportLead, ReportLine, ReportSignal};
use super::messages::FinalizedSession;
use crate::archive::{ArchivedMessage, ArchivedSession};
use crate::mail::compose::{MailContext, ReportFile};

pub fn to_archived(s: &FinalizedSession) -> ArchivedSession {
    ArchivedSession {
        session_id: s.id.to_string(),
        name: s.contact.name().map(str::to_owned),
        email: s.contact.email().map(str::to_owned),
        phone: s.contact.phone().map(str::to_owned),
        organization: s.contact.organization().map(str::to_owned),
        lead_score: s.lead.lead_score,
        priority: s.lead.priority.as_str().to_owned(),
        engagement_score: i32::from(s.lead.engagement_score),
        total_queries: i32::try_from(s.total_queries).unwrap_or(i32::MAX),
        signals: serde_json::to_value(&s.lead.signals).unwrap_or_default(),
        first_interaction: s.first_interaction,
        last_interaction: s.last_interaction,
        finalized_at: s.finalized_at,
        end_reason: s.reason.as_str().to_owned(),
        node: s.node.clone(),
        report_path: None,
        messages: s
            .transcript
            .iter()
            .map(|e| ArchivedMessage {
                seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
                role: e.role.as_str().to_owned(),
                text: e.text.clone(),
                at: e.at,
            })
            .collect(),
    }
}

pub fn report_data(s: &ArchivedSession, brand: &Brand) -> ReportData {
    let signals: Vec<ReportSignal> = s
        .signals
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| ReportSignal {
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    points: v["points"]
                        .as_i64()
                        .and_then(|p| i32::try_from(p).ok())
                        .unwrap_or(0),
                    evidence: v["evidence"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    ReportData {
        brand: brand.clone(),
        session_id: s.session_id.clone(),
        generated_at: Utc::now(),
        timezone_label: "UTC".into(),
        contact: ReportContact {
            name: s.name.clone(),
            email: s.email.clone(),
            phone: s.phone.clone(),
            organization: s.organization.clone(),
        },
        lead: ReportLead {
            priority: s.priority.clone(),
            lead_score: s.lead_score,
            engagement_score: u8::try_from(s.engagement_score.clamp(0, 10)).unwrap_or(0),
            total_queries: u32::try_from(s.total_queries).unwrap_or(0),
            first_interaction: s.first_interaction,
            last_interaction: s.last_interaction,
            signals,
        },
        end_reason: s.end_reason.clone(),
        transcript: s
            .messages
            .iter()
            .map(|m| ReportLine {
                seq: u64::try_from(m.seq).unwrap_or(0),
                role: m.role.clone(),
                text: m.text.clone(),
                at: m.at,
            })
            .collect(),
    }
}

/// The mail's content; `from`, `to` and `brand` come from settings.
pub fn mail_context(
    s: &ArchivedSession,
    from: &str,
    to: &[String],
    brand: &str,
    attachment: ReportFile,
) -> MailContext {
    let signals = s
        .signals
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| {
                    let points = v["points"].as_i64().unwrap_or(0);
                    format!(
                        "{} ({points:+}): {}",
                        v["name"].as_str().unwrap_or_default(),
                        v["evidence"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    MailContext {
        from: from.to_owned(),
        to: to.to_vec(),
        brand: brand.to_owned(),
        session_id: s.session_id.clone(),
        visitor_name: s.name.clone(),
        email: s.email.clone(),
        phone: s.phone.clone(),
        organization: s.organization.clone(),
        priority: s.priority.clone(),
        lead_score: s.lead_score,
        total_queries: s.total_queries,
        end_reason: s.end_reason.clone(),
        signals,
        attachment,
    }
}

/// The transcript as plain text, for the mail when no PDF could be
/// rendered: who the visitor is, the score, then every line in order.
pub fn transcript_text(s: &ArchivedSession, brand: &str) -> String {
    use crate::mail::compose::or_dash;
    let mut out = format!(
        "{brand} - Session Report (transcript)\n\
         Session ID:    {id}\n\
         Name:          {name}\n\
         E-mail:        {email}\n\
         Phone:         {phone}\n\
         Organization:  {org}\n\
         Priority:      {priority} (score {score})\n\
         Queries:       {queries}\n\
         Session ended: {reason}\n\
         First:         {first}\n\
         Last:          {last}\n\n",
        id = s.session_id,
        name = or_dash(&s.name),
        email = or_dash(&s.email),
        phone = or_dash(&s.phone),
        org = or_dash(&s.organization),
        priority = s.priority,
        score = s.lead_score,
        queries = s.total_queries,
        reason = s.end_reason,
        first = s.first_interaction.format("%Y-%m-%d %H:%M:%S UTC"),
        last = s.last_interaction.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    for m in &s.messages {
        let speaker = if m.role.eq_ignore_ascii_case("user") {
            "Visitor"
        } else {
            "Bot"
        };
        out.push_str(&format!(
            "[{} #{}] {speaker}: {}\n",
            m.at.format("%Y-%m-%d %H:%M:%S"),
            m.seq,
            m.text
        ));
    }
    out
}
