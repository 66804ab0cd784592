//! `send` / `write`: the `message` event, as socket.io names it (the API of the oldest clients).

use serde::Serialize;

use super::{Socket, SocketEmitter};
use crate::ack::EmitError;

impl Socket {
    /// Emits a `message` event: `socket.send(data)` is `socket.emit("message", data)`, with the same
    /// argument rule (a tuple is several arguments, `()` none, anything else one).
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }
}

impl SocketEmitter {
    /// Emits a `message` event with these options.
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }

    /// The same as [`SocketEmitter::send`].
    pub fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.send(data)
    }
}
