//! What a socket receives: events and the ack answering one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrio_proto::socket::Packet;
use ferrio_proto::value::{Value, ValueError, from_args, to_args};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Socket;
use crate::ack::EmitError;

/// Answers the ack of one event. Dropping it without sending sends nothing, as in JavaScript. When an
/// event has several listeners, each holds a copy and only the first answer is sent, as in JavaScript.
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
    /// Shared by the copies given to several listeners; none (no allocation) with one listener.
    sent: Option<Arc<AtomicBool>>,
}

impl AckSender {
    /// Sends the ack: a tuple is several arguments, `()` none, anything else one.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let args = to_args(data)?;
        self.send_args(args)
    }

    /// Sends the ack with raw arguments.
    pub fn send_args(self, args: Vec<Value>) -> Result<(), EmitError> {
        if let Some(sent) = &self.sent
            && sent.swap(true, Ordering::AcqRel)
        {
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

/// An incoming event.
#[derive(Debug)]
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
                sent: None,
            }),
        }
    }

    /// A copy for another listener of the same event; both copies share one ack.
    pub(crate) fn fork(&mut self) -> Event {
        let ack = self.ack.as_mut().map(|a| {
            let sent = a
                .sent
                .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
                .clone();
            AckSender {
                socket: a.socket.clone(),
                id: a.id,
                sent: Some(sent),
            }
        });
        Event {
            name: self.name.clone(),
            args: self.args.clone(),
            ack,
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
