//! Domain types: parsed, always-valid values with no I/O. A `Contact` that
//! exists is a valid contact; a `SessionId` that exists is a well-formed id.

mod contact;
mod session_id;
mod transcript;

pub use contact::{
    Contact, ContactError, ContactField, Email, Organization, PersonName, Phone, mailto_href,
};
pub use session_id::SessionId;
pub use transcript::{EndReason, Role, TranscriptEntry};
