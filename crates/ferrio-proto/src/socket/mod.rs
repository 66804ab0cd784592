//! Socket.IO protocol v5: packets, the default JSON parser and binary reassembly, and the rules both
//! sides share (CONNECT payloads, reserved names, namespaces, disconnect reasons, acks, retries, the
//! events handed to listeners).

mod ack;
mod connect;
mod event;
mod packet;
mod reason;
mod retry;
mod rules;

pub use ack::{AckArgs, AckError, AckTable, EmitError};
pub use connect::{
    ConnectAck, ConnectError, ConnectRequest, connect_ok, connect_request, invalid_namespace,
};
pub use event::{AckSender, AckWriter, Event};
pub use packet::{Decoder, Encoded, Packet, PacketType, ParseError, RESERVED_EVENTS, encode};
pub use reason::{ClientDisconnectReason, DisconnectReason};
pub use retry::{RetryOutcome, RetryQueue};
pub use rules::{is_reserved_event, normalize_namespace};

use crate::engine::Data;

/// How Socket.IO packets become Engine.IO messages and back. The JSON parser is the default; a msgpack
/// parser implements the same trait.
pub trait Parser: Send + Sync + 'static {
    /// Encodes a packet into the frames to send.
    fn encode(&self, packet: &Packet) -> Encoded;
    /// A decoder for one connection.
    fn decoder(&self) -> Box<dyn PacketDecoder>;
}

/// Decodes the messages of one connection into packets.
pub trait PacketDecoder: Send {
    /// Feeds one Engine.IO message; `Ok(None)` while a packet waits for more messages.
    fn decode(&mut self, data: Data) -> Result<Option<Packet>, ParseError>;
    /// Drops any partially received packet.
    fn reset(&mut self);
}

/// The default parser (`socket.io-parser`): JSON text plus binary attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonParser {
    /// Most attachments one packet may announce (10).
    pub max_attachments: usize,
}

impl Default for JsonParser {
    fn default() -> Self {
        JsonParser {
            max_attachments: 10,
        }
    }
}

impl Parser for JsonParser {
    fn encode(&self, packet: &Packet) -> Encoded {
        encode(packet)
    }

    fn decoder(&self) -> Box<dyn PacketDecoder> {
        Box::new(Decoder::new(self.max_attachments))
    }
}

impl PacketDecoder for Decoder {
    fn decode(&mut self, data: Data) -> Result<Option<Packet>, ParseError> {
        match data {
            Data::Text(t) => self.decode_text(&t),
            Data::Binary(b) => self.decode_binary(b),
        }
    }

    fn reset(&mut self) {
        Decoder::reset(self);
    }
}
