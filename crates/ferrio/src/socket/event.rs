//! What a socket receives: events and the ack answering one, the types both sides share, answered
//! through this side's socket.

use ferrio_proto::socket::AckWriter;
use ferrio_proto::value::Value;

use super::Socket;
use crate::ack::EmitError;

/// Answers the ack of one event. Dropping it without sending sends nothing, as in JavaScript. When an
/// event has several listeners, each holds a copy and only the first answer is sent, as in JavaScript.
pub type AckSender = ferrio_proto::socket::AckSender<Socket>;

/// An incoming event.
pub type Event = ferrio_proto::socket::Event<Socket>;

impl AckWriter for Socket {
    fn write_ack(&self, id: u64, args: Vec<Value>) -> Result<(), EmitError> {
        // Written from its parts: no copy of the namespace's name into a packet.
        self.write_connected(false, true, |parser| {
            parser.encode_ack(self.nsp(), args, id).0
        })
    }
}
