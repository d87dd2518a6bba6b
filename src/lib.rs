//! leadchat: a self-hosted lead-capture chat server. See README.md for the
//! architecture; each module's first lines say what it is for.

pub mod admin;
pub mod archive;
pub mod bot;
pub mod cluster;
pub mod domain;
pub mod events;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod outbound;
pub mod report;
pub mod scoring;
pub mod secret;
pub mod session;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod wire;
