//! PDF session reports and the finalize pipeline behind them.
//!
//! `ReportRenderer` renders `templates/session_report.typ` with Typst used as
//! a library: fonts load and the template parses once, visitor text reaches
//! the template only as JSON data (so `#`, `$`, `*`, `[` print verbatim).
//! `ReportActor` archives a finalized session, renders and writes its PDF and
//! hands the mail to the `MailerActor`.

mod actor;
pub mod convert;
mod data;
mod messages;
mod pool;
mod render;
mod world;

pub use actor::{ReportActor, ReportDeps, write_atomically};
pub use data::*;
pub use messages::{Drain, FinalizeSession, FinalizedSession, ReportOutcome};
pub use pool::RenderPool;
pub use render::ReportRenderer;
