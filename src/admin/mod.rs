//! The admin side: the AdminFeed actor that holds this node's live view of
//! every session and fans changes out to admin sockets, and the view itself.
//! The admin socket actor lives with the other connection actors in `http`.

pub mod bus;
mod feed;
mod feed_cluster;
mod interest;
pub mod messages;
mod view;

pub use feed::{AdminFeed, FeedDemand};
pub use messages::*;
pub use view::{SessionView, ViewState};
