//! `send` / `write` of the server, namespaces and broadcast operators: the `message` event to many
//! sockets, as socket.io names it (`io.send(..)`, `io.of("/chat").send(..)`, `io.to("room").send(..)`).

use serde::Serialize;

use crate::ack::EmitError;
use crate::namespace::Namespace;
use crate::operators::BroadcastOperator;
use crate::server::Io;

impl BroadcastOperator {
    /// Emits a `message` event to the selected sockets (`emit("message", data)`).
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }

    /// The same as [`BroadcastOperator::send`].
    pub fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.send(data)
    }
}

impl Namespace {
    /// Emits a `message` event to every socket of the namespace (`emit("message", data)`).
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }

    /// The same as [`Namespace::send`].
    pub fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.send(data)
    }
}

impl Io {
    /// Emits a `message` event to every socket of the main namespace (`emit("message", data)`).
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }

    /// The same as [`Io::send`].
    pub fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.send(data)
    }
}
