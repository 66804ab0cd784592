//! `write` and the emitter's `send` / `write`: the `message` event, as socket.io-client names it
//! (`Socket::send` is next to `emit`).

use serde::Serialize;

use super::{Emitter, Socket};
use ferrio_proto::socket::EmitError;

impl Socket {
    /// The same as [`Socket::send`]: emits a `message` event.
    pub fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.send(data)
    }
}

impl Emitter {
    /// Emits a `message` event with these flags (`socket.volatile().send(..)`).
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }

    /// The same as [`Emitter::send`].
    pub fn write<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.send(data)
    }
}
