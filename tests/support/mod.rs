//! What the test binaries share, declared once per binary as `mod support;`
//! (each binary uses a part of it):
//!
//! - [`app`]: the real server in process on port 0 (`spawn_app`), with its
//!   own folder, store and key prefix, and a typed WebSocket client;
//! - [`nodes`]: real `leadchat` processes, for kill -9, SIGTERM and several
//!   nodes;
//! - [`smtp`]: the one SMTP sink (mailin-embedded) that keeps what it got,
//!   slow or refusing when asked;
//! - [`mime`]: reading what the sink got;
//! - [`pg`]: the local PostgreSQL and a schema of a test's own;
//! - [`redis_server`]: the local Redis, and `redis-server` processes a test
//!   starts for itself (AOF restarts, a cluster);
//! - [`stand_in`]: a local HTTP server standing in for a third-party API,
//!   recording requests and answering from a script;
//! - [`archive`]: a fresh archive on each back end, and sample sessions;
//! - [`report_data`]: report data (also used by the benchmarks and examples).

#![allow(dead_code)]

pub mod app;
pub mod archive;
pub mod mime;
pub mod nodes;
pub mod pg;
pub mod redis_server;
pub mod report_data;
pub mod smtp;
pub mod stand_in;

pub use redis_server::REDIS_URL;
