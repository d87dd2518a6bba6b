//! Live sessions: one `SessionActor` per conversation, found and created
//! through the `SessionRegistry`.

mod actor;
pub mod events;
mod handlers;
mod lifecycle;
pub mod messages;
pub mod peers;
mod registry;
pub mod relay;
mod sweeper;
pub mod view;

pub use actor::SessionActor;
pub use events::{SessionEvent, Subscribers, ViewDemand};
pub use messages::*;
pub use peers::RemoteEnd;
pub use registry::{Lookup, OpenedSession, SessionBounds, SessionDeps, SessionRegistry, Tab, Via};
pub use sweeper::{Sweeper, sweep_once};
pub use view::{SessionView, ViewState, urgency};
