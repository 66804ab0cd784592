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

    fn write_ack_from<T: serde::Serialize + ?Sized>(
        &self,
        id: u64,
        data: &T,
    ) -> Result<(), EmitError> {
        // Straight to text with the default parser (see `Socket::emit_data`).
        if self.parser_writes_json_text()
            && let Some(encoded) = ferrio_proto::socket::encode_ack_from(self.nsp(), data, id)?
        {
            return self.write_own_connected(encoded, false, true);
        }
        self.write_ack(id, ferrio_proto::value::to_args(data)?)
    }
}
