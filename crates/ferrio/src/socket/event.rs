//! What a socket receives: events and the ack answering one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrio_proto::socket::Packet;
use ferrio_proto::value::{Value, ValueError, from_args, to_args};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Socket;
use crate::ack::EmitError;

/// Answers the ack of one event. Dropping it without sending sends nothing, as in JavaScript. Every
/// listener of the event holds a copy; only the first answer is sent, as in JavaScript.
#[derive(Debug, Clone)]
pub struct AckSender {
    socket: Socket,
    id: u64,
    sent: Arc<AtomicBool>,
}

impl AckSender {
    /// Sends the ack: a tuple is several arguments, `()` none, anything else one.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let args = to_args(data)?;
        self.send_args(args)
    }

    /// Sends the ack with raw arguments.
    pub fn send_args(self, args: Vec<Value>) -> Result<(), EmitError> {
        if self.sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let packet = Packet::Ack {
            nsp: self.socket.nsp().to_owned(),
            args,
            id: self.id,
        };
        self.socket.write(&packet, false)
    }
}

/// An incoming event. Cloning it (for a second listener) shares its ack: the first answer is sent.
#[derive(Debug, Clone)]
pub struct Event {
    name: String,
    args: Vec<Value>,
    ack: Option<AckSender>,
}

impl Event {
    pub(crate) fn new(socket: &Socket, name: String, args: Vec<Value>, id: Option<u64>) -> Event {
        Event {
            name,
            args,
            ack: id.map(|id| AckSender {
                socket: socket.clone(),
                id,
                sent: Arc::new(AtomicBool::new(false)),
            }),
        }
    }

    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.args)
    }

    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_args(self.args.clone())
    }

    /// Whether the client waits for an ack.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the ack sender (to answer later or from another task).
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Answers the ack, if the client asked for one (otherwise does nothing).
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(a) => a.send(data),
            None => Ok(()),
        }
    }
}
