//! Live sessions: one `SessionActor` per conversation, found and created
//! through the `SessionRegistry`.

mod actor;
mod handlers;
mod lifecycle;
pub mod messages;
mod registry;
mod sweeper;

pub use actor::SessionActor;
pub use messages::*;
pub use registry::{Lookup, OpenedSession, SessionBounds, SessionDeps, SessionRegistry};
pub use sweeper::{Sweeper, sweep_once};
