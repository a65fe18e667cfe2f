//! vmail — a voicemail media server for SIP networks.
//!
//! The crate is a sans-IO core (configuration, routing, SIP, SDP, media,
//! call and menu state machines that take `now` as an argument) plus a thin
//! tokio shell in [`runtime`]. See `docs/` and `../shared/design/`.

#![recursion_limit = "256"]

pub mod admission;
pub mod api;
pub mod call;
pub mod cluster;
pub mod config;
pub mod destination;
pub mod ivr;
pub mod logging;
pub mod mailbox_ops;
pub mod media;
pub mod metrics;
pub mod mwi;
pub mod notify;
pub mod prompts;
pub mod retention;
pub mod routing;
pub mod runtime;
pub mod sdp;
pub mod sip;
pub mod sites;
pub mod store;
pub mod web;
