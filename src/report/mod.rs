//! The report side of finalization. This stage only receives the finalized
//! session; rendering and mailing plug in behind the same message.

mod actor;
pub mod messages;

pub use actor::ReportActor;
pub use messages::{FinalizeSession, FinalizedSession};
