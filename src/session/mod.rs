//! Live sessions: one `SessionActor` per conversation, found and created
//! through the `SessionRegistry`.

mod actor;
mod handlers;
mod lifecycle;
pub mod messages;
mod registry;
pub mod relay;
mod sweeper;

pub use actor::SessionActor;
pub use messages::*;
pub use registry::{Lookup, OpenedSession, SessionBounds, SessionDeps, SessionRegistry, Tab, Via};
pub use sweeper::{Sweeper, sweep_once};
