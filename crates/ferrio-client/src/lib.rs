//! ferrio-client: a Socket.IO client for Rust, wire-compatible with the official JavaScript implementation.
//!
//! [`connect`] mirrors JavaScript's `io(url, opts)`: it returns a [`Socket`] for the namespace in the URL,
//! sharing one [`Manager`] (one Engine.IO connection, reconnecting with backoff) per server.
//!
//! Servers of the socket.io 2.x generation (Engine.IO v3, Socket.IO protocol v4) are reached with the
//! `protocol` option; there, `query` parameters go with each namespace's CONNECT instead of `auth`:
//!
//! ```no_run
//! use ferrio_client::ClientOptions;
//! use ferrio_client::engine::Protocol;
//!
//! # async fn run() {
//! let opts = ClientOptions::builder()
//!     .protocol(Protocol::V3)
//!     .query("token", "abc")
//!     .build();
//! let socket = ferrio_client::connect("http://localhost:3000/chat", opts);
//! socket.emit("hello", &"from Rust").unwrap();
//! # }
//! ```
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
