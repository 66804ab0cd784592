//! ferrio: a Socket.IO server for Rust, wire-compatible with the official JavaScript implementation.
//!
//! This release provides the Engine.IO layer: sessions over HTTP long-polling and WebSocket, with
//! upgrades, heartbeats, CORS, cookies and compression, mountable in axum/hyper as a tower service.
#![warn(missing_docs)]

pub mod engine;
mod service;
mod transport;

pub use service::{EngineLayer, EngineService, NotFound, listen, local_addr, serve};

/// The README's code runs as a doctest, so the documentation cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
