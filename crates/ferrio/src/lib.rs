//! ferrio: a Socket.IO server for Rust, wire-compatible with the official JavaScript implementation.
//!
//! [`Io`] is the Socket.IO server (namespaces, rooms, acks, broadcasts, middlewares) on top of
//! [`engine::Engine`], the Engine.IO layer (sessions over long-polling and WebSocket with upgrades,
//! heartbeats, CORS, cookies and compression). Both mount in axum or hyper as a tower service.
//!
//! The Socket.IO core depends one way: `server` → `client` → `namespace` → `socket` → `operators`,
//! over `conn` (a session and its parser) and `ack`. Calls going up (a socket leaving its namespace, a
//! namespace removed from the server) go through small traits the upper module implements.
#![warn(missing_docs)]

pub use ferrio_core::adapter;
mod ack;
mod client;
mod conn;
pub mod engine;
mod http1;
mod introspect;
mod namespace;
mod operators;
mod send;
mod serve_client;
mod server;
mod service;
mod serving;
mod socket;
mod telemetry;
mod transport;

/// ferrio's websocket layer on its own, without Engine.IO: for protocol test suites (Autobahn).
#[doc(hidden)]
pub mod websocket {
    pub use crate::transport::websocket::{RawError, RawWebSocket};
    pub use ferrio_proto::ws::{DeflateConfig, Message};
}

pub use ack::{AckArgs, AckError, BroadcastAckError, EmitError};
pub use engine::TransportKind;
pub use ferrio_core::adapter::JoinError;
pub use ferrio_proto::socket::{JsonParser, MsgpackParser, PacketDecoder, ParseError, Parser};
pub use ferrio_proto::value::{self, Value, from_args, from_value, to_args, to_value};
pub use namespace::{ConnectError, Namespace};
pub use operators::{BroadcastOperator, RemoteSocket};
pub use serve_client::ClientFiles;
pub use server::{ConnectionStateRecovery, Io, IoConfig, IoConfigBuilder};
pub use service::{
    ConnError, DEFAULT_HEADER_READ_TIMEOUT, EngineLayer, EngineService, MovedConnection, NotFound,
    RequestBody, RequestBodyError, Served, close_sessions_gracefully, listen, local_addr, serve,
    serve_connection, serve_tcp_connection, serve_tcp_connection_with_engine, serve_until,
};
pub use serving::set_serving_thread;
pub use socket::{AckSender, DisconnectReason, Event, ListenerId, Socket, SocketEmitter};
pub use telemetry::{AggregatedEvent, AggregatedEvents};
