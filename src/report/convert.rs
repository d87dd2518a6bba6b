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
        priority: s.lead.priority,
        engagement_score: i32::from(s.lead.engagement_score),
        total_queries: i32::try_from(s.total_queries).unwrap_or(i32::MAX),
        signals: s.lead.signals.clone(),
        first_interaction: s.first_interaction,
        last_interaction: s.last_interaction,
        finalized_at: s.finalized_at,
        end_reason: s.reason,
        node: s.node.clone(),
        report_path: None,
        messages: s
            .transcript
            .iter()
            .map(|e| ArchivedMessage {
                seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
                role: e.role,
                text: e.text.clone(),
                at: e.at,
            })
            .collect(),
    }
}

pub fn report_data(s: &ArchivedSession, brand: &Brand) -> ReportData {
    let signals: Vec<ReportSignal> = s
        .signals
        .iter()
        .map(|v| ReportSignal {
            name: v.name.clone(),
            points: v.points,
            evidence: v.evidence.clone(),
        })
        .collect();
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
            priority: s.priority.as_str().to_owned(),
            lead_score: s.lead_score,
            engagement_score: u8::try_from(s.engagement_score.clamp(0, 10)).unwrap_or(0),
            total_queries: u32::try_from(s.total_queries).unwrap_or(0),
            first_interaction: s.first_interaction,
            last_interaction: s.last_interaction,
            signals,
        },
        end_reason: s.end_reason.as_str().to_owned(),
        transcript: s
            .messages
            .iter()
            .map(|m| ReportLine {
                seq: u64::try_from(m.seq).unwrap_or(0),
                role: m.role.as_str().to_owned(),
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
        .iter()
        .map(|v| format!("{} ({:+}): {}", v.name, v.points, v.evidence))
        .collect();
    MailContext {
        from: from.to_owned(),
        to: to.to_vec(),
        brand: brand.to_owned(),
        session_id: s.session_id.clone(),
        visitor_name: s.name.clone(),
        email: s.email.clone(),
        phone: s.phone.clone(),
        organization: s.organization.clone(),
        priority: s.priority.as_str().to_owned(),
        lead_score: s.lead_score,
        total_queries: s.total_queries,
        end_reason: s.end_reason.as_str().to_owned(),
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
        priority = s.priority.as_str(),
        score = s.lead_score,
        queries = s.total_queries,
        reason = s.end_reason.as_str(),
        first = s.first_interaction.format("%Y-%m-%d %H:%M:%S UTC"),
        last = s.last_interaction.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    for m in &s.messages {
        let speaker = match m.role {
            crate::domain::Role::User => "Visitor",
            crate::domain::Role::Bot => "Bot",
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
