//! Protocol tests against the real server over real sockets, each run with
//! the embedded store and with Redis.

mod cross_origin;
mod end_session;
mod helpers;
mod limits;
mod store_contract;
mod ws_protocol;
