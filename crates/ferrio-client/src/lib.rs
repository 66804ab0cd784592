//! ferrio-client: a Socket.IO client for Rust, wire-compatible with the official JavaScript implementation.
//!
//! [`connect`] mirrors JavaScript's `io(url, opts)`: it returns a [`Socket`] for the namespace in the URL,
//! sharing one [`Manager`] (one Engine.IO connection, reconnecting with backoff) per server.
#![warn(missing_docs)]

pub mod engine;
mod manager;
mod options;
mod socket;

pub use ferrio_proto::socket::{
    AckArgs, AckError, ClientDisconnectReason as DisconnectReason, ConnectError, EmitError,
    JsonParser, MsgpackParser, PacketDecoder, ParseError, Parser,
};
pub use ferrio_proto::value::{self, Value, from_args, from_value, to_args, to_value};
pub use manager::{Manager, ManagerEvent, connect};
pub use options::{Auth, BoxFuture, ClientOptions, ClientOptionsBuilder, SocketOptions};
pub use socket::{AckSender, Emitter, Event, ListenerId, Socket};

/// The README's code runs as doctests here, where both the server and the client are at hand (the server
/// is a dev-dependency), so the documentation cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
