//! Protocol tests against the real server over real sockets, each run with
//! the embedded store and with Redis.

mod admin_feed;
mod clients;
mod cross_origin;
mod end_session;
mod events;
mod finalize;
mod handover;
mod jobs;
mod limits;
mod outbound;
mod redis_cluster;
mod redis_outage;
mod scoring_live;
mod store_contract;
#[path = "../support/mod.rs"]
mod support;
mod ws_protocol;
