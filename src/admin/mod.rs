//! The admin side: the AdminFeed actor that holds this node's live view of
//! every session and fans changes out to admin sockets, and the view itself.
//! The admin socket actor lives with the other connection actors in `http`.

mod feed;
mod feed_cluster;
mod interest;
pub mod messages;
pub mod replication;

pub use feed::AdminFeed;
pub use messages::*;
// The view is the session's (`session::view`); the feed shows it.
pub use crate::session::{SessionView, ViewState};
