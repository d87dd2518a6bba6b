//! The visitor's contact details, parsed at the edge. Empty strings mean
//! "not given"; anything given must be valid, and the error names the field.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactField {
    Name,
    Email,
    Phone,
    Organization,
}

impl ContactField {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactField::Name => "name",
            ContactField::Email => "email",
            ContactField::Phone => "phone",
            ContactField::Organization => "organization",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ContactError {
    pub field: ContactField,
    pub message: String,
}

impl ContactError {
    fn new(field: ContactField, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Characters no name or organization needs and that can disguise one:
/// controls (Cc), line and paragraph separators (Zl, Zp) and format
/// characters (Cf: bidi overrides, zero-width spaces, …) — except ZWJ and
/// ZWNJ, which Indic scripts and emoji sequences need.
fn is_disguising(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    if matches!(c, '\u{200C}' | '\u{200D}') {
        return false;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Format
    )
}

/// Trims, refuses control and format characters and bounds the length in
/// characters.
fn clean(field: ContactField, raw: &str, max_chars: usize) -> Result<Option<String>, ContactError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().any(is_disguising) {
        return Err(ContactError::new(
            field,
            format!(
                "{} must not contain control, separator or formatting characters",
                field.as_str()
            ),
        ));
    }
    if text.chars().count() > max_chars {
        return Err(ContactError::new(
            field,
            format!("{} is longer than {max_chars} characters", field.as_str()),
        ));
    }
    Ok(Some(text.to_owned()))
}

macro_rules! text_value {
    ($name:ident, $field:expr, $max:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `Ok(None)` when the visitor left it empty.
            pub fn parse(raw: &str) -> Result<Option<Self>, ContactError> {
                Ok(clean($field, raw, $max)?.map(Self))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_value!(PersonName, ContactField::Name, 100);
text_value!(Organization, ContactField::Organization, 200);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Option<Self>, ContactError> {
        let Some(text) = clean(ContactField::Email, raw, 254)? else {
            return Ok(None);
        };
        let invalid = || ContactError::new(ContactField::Email, "enter a valid e-mail address");
        let (local, domain) = text.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.len() >= 3
            && domain.contains('.')
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = local.len() <= 64 && is_dot_atom(local);
        if !domain_ok || !local_ok {
            return Err(invalid());
        }
        Ok(Some(Self(format!("{local}@{}", domain.to_lowercase()))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 5321 `Dot-string`: atoms of letters (any script, as RFC 6531
/// allows), digits and
/// ``!#$%&'*+-/=?^_`{|}~`` joined by single dots — less `#%&/=?`, which no
/// real mailbox needs and which turn a `mailto:` link into one with
/// attacker-chosen headers or body.
fn is_dot_atom(local: &str) -> bool {
    const ATEXT: &str = "!$'*+-^_`{|}~";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_alphanumeric() || ATEXT.contains(c))
        })
}

/// `mailto:` plus the address percent-encoded, for links in the dashboard
/// and the PDF: whatever an address holds, the link drafts one mail to it.
pub fn mailto_href(address: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'@')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'+');
    format!(
        "mailto:{}",
        percent_encoding::utf8_percent_encode(address.trim(), KEEP)
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Accepts the ways people write numbers (`+91 98765-43210`, `(555) 123 4567`)
    /// and keeps them as typed; 7 to 15 digits, as E.164 allows.
    pub fn parse(raw: &str) -> Result<Option<Self>, ContactError> {
        let Some(text) = clean(ContactField::Phone, raw, 32)? else {
            return Ok(None);
        };
        let allowed = text
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || " -().".contains(c) || (c == '+' && i == 0));
        let digits = text.chars().filter(char::is_ascii_digit).count();
        if !allowed || !(7..=15).contains(&digits) {
            return Err(ContactError::new(
                ContactField::Phone,
                "enter a phone number of 7 to 15 digits",
            ));
        }
        Ok(Some(Self(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the visitor told us about themselves. At least one way to reach them
/// (e-mail or phone) is required, or the sales team cannot follow up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Contact {
    pub name: Option<PersonName>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub organization: Option<Organization>,
}

impl Contact {
    pub fn parse(
        name: &str,
        email: &str,
        phone: &str,
        organization: &str,
    ) -> Result<Self, ContactError> {
        let contact = Self {
            name: PersonName::parse(name)?,
            email: Email::parse(email)?,
            phone: Phone::parse(phone)?,
            organization: Organization::parse(organization)?,
        };
        if contact.email.is_none() && contact.phone.is_none() {
            return Err(ContactError::new(
                ContactField::Email,
                "give an e-mail address or a phone number",
            ));
        }
        Ok(contact)
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(PersonName::as_str)
    }
    pub fn email(&self) -> Option<&str> {
        self.email.as_ref().map(Email::as_str)
    }
    pub fn phone(&self) -> Option<&str> {
        self.phone.as_ref().map(Phone::as_str)
    }
    pub fn organization(&self) -> Option<&str> {
        self.organization.as_ref().map(Organization::as_str)
    }

    /// Rebuilds a contact read back from the store, where it was valid when
    /// written; fields that no longer parse are dropped rather than trusted.
    pub fn restore(
        name: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
        organization: Option<&str>,
    ) -> Self {
        let ok = |v: Option<&str>| v.unwrap_or_default().to_owned();
        Self {
            name: PersonName::parse(&ok(name)).ok().flatten(),
            email: Email::parse(&ok(email)).ok().flatten(),
            phone: Phone::parse(&ok(phone)).ok().flatten(),
            organization: Organization::parse(&ok(organization)).ok().flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_complete_contact_and_normalises_the_domain() {
        let c = Contact::parse(
            " Priya Shah ",
            "priya@Acme-Plastics.IN",
            "+91 98765-43210",
            "Acme",
        )
        .expect("valid contact");
        assert_eq!(c.name(), Some("Priya Shah"));
        assert_eq!(c.email(), Some("priya@acme-plastics.in"));
    }

    #[test]
    fn names_the_invalid_field() {
        let err = Contact::parse("A", "not-an-email", "", "").expect_err("invalid");
        assert_eq!(err.field, ContactField::Email);
        let err = Contact::parse("A", "a@b.co", "12", "").expect_err("invalid");
        assert_eq!(err.field, ContactField::Phone);
        let err = Contact::parse(&"x".repeat(101), "a@b.co", "", "").expect_err("invalid");
        assert_eq!(err.field, ContactField::Name);
    }

    #[test]
    fn requires_a_way_to_reach_the_visitor() {
        assert!(Contact::parse("Only A Name", "", "", "Org").is_err());
        assert!(Contact::parse("", "", "98765 43210", "").is_ok());
    }

    #[test]
    fn refuses_control_characters_and_header_injection() {
        assert!(Email::parse("a@b.co\r\nBcc: x@y.z").is_err());
        assert!(PersonName::parse("Bob\u{7}").is_err());
    }

    #[test]
    fn email_local_parts_are_dot_atoms_without_link_syntax() {
        for ok in [
            "a.b",
            "o'neil",
            "x+tag",
            "a!b$c*d^e_f`g{h|i}j~k",
            "A1-2",
            "prïya",
        ] {
            assert!(Email::parse(&format!("{ok}@b.co")).is_ok(), "{ok}");
        }
        for bad in [
            "a?cc=x", "a&b", "a=b", "a%40b", "a#b", "a/b", ".a", "a.", "a..b", "a b", "\"a\"",
        ] {
            assert!(Email::parse(&format!("{bad}@b.co")).is_err(), "{bad}");
        }
        assert!(Email::parse("v@b.co?cc=evil@x.io").is_err());
    }

    #[test]
    fn names_refuse_separators_and_format_characters_but_keep_zwj_and_zwnj() {
        for bad in [
            "a\u{2028}b",
            "a\u{2029}b",
            "evil\u{202E}gpj",
            "a\u{200B}b",
            "a\u{FEFF}b",
            "a\u{85}b",
        ] {
            assert_eq!(
                PersonName::parse(bad).expect_err(bad).field,
                ContactField::Name
            );
            assert_eq!(
                Organization::parse(bad).expect_err(bad).field,
                ContactField::Organization
            );
        }
        // ZWNJ and ZWJ shape Indic names and emoji sequences.
        assert!(PersonName::parse("\u{0930}\u{094D}\u{200D}\u{092F}").is_ok());
        assert!(PersonName::parse("\u{092E}\u{094D}\u{200C}\u{092E}").is_ok());
        assert!(PersonName::parse("👩\u{200D}💻 Ana").is_ok());
    }

    #[test]
    fn mailto_links_percent_encode_the_address() {
        assert_eq!(mailto_href("priya@acme.in"), "mailto:priya@acme.in");
        assert_eq!(
            mailto_href("a?cc=x@y.z&body=hi#"),
            "mailto:a%3Fcc%3Dx@y.z%26body%3Dhi%23"
        );
    }

    #[test]
    fn keeps_unicode_names() {
        let n = PersonName::parse("प्रिया 😀").expect("ok").expect("some");
        assert_eq!(n.as_str(), "प्रिया 😀");
    }
}
