//! Protocol tests against the real server over real sockets, each run with
//! the embedded store and with Redis.

mod admin_feed;
mod clients;
mod cross_origin;
mod end_session;
mod finalize;
mod handover;
mod helpers;
mod limits;
#[allow(dead_code)] // shared with tests/mail.rs, which reads headers too
#[path = "../support/mime.rs"]
mod mime;
mod redis_cluster;
mod redis_outage;
#[path = "../support/redis_server.rs"]
mod redis_server;
mod scoring_live;
mod smtp;
mod store_contract;
mod ws_protocol;
