//! Sans-IO core of ferrio.
//!
//! Everything that is a function of bytes and `now` lives here: Engine.IO packets, the polling payload
//! framing, the handshake document and the session state machine (heartbeat, upgrade probe, close).
//! No sockets, no timers, no async runtime: the server and client shells drive these types and ask them
//! for their next deadline, which keeps every protocol rule testable with a fake clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod engine;
pub mod fxhash;
pub mod reconnect;
pub mod socket;
pub mod value;
pub mod ws;

pub use bytes::Bytes;
pub use bytestring::ByteString;
