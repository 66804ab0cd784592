//! Socket.IO protocol v5 (and v4, for socket.io-client 2.x: only its CONNECT shapes differ, see
//! `connect.rs`; events, acks and binary packets are encoded alike): packets, the [`Parser`] trait with the default JSON parser (and its binary
//! reassembly) and the msgpack parser, and the rules both sides share (CONNECT payloads, reserved names,
//! namespaces, disconnect reasons, acks, retries, the events handed to listeners).

mod ack;
mod connect;
mod event;
pub mod msgpack;
mod packet;
mod reason;
mod retry;
mod rules;

pub use ack::{AckArgs, AckError, AckTable, EmitError};
pub use connect::{
    ConnectAck, ConnectError, ConnectRequest, connect_ok, connect_ok_v4, connect_request,
    invalid_namespace,
};
pub use event::{AckSender, AckWriter, Event};
pub use msgpack::MsgpackParser;
pub use packet::{
    Decoder, Encoded, Packet, PacketType, ParseError, PlainEvent, RESERVED_EVENTS, encode,
    encode_ack, encode_ack_from, encode_event, encode_event_from, encode_event_text,
    event_text_from,
};
pub use reason::{ClientDisconnectReason, DisconnectReason};
pub use retry::{RetryOutcome, RetryQueue};
pub use rules::{is_reserved_event, normalize_namespace};

use crate::engine::Data;
use crate::value::Value;

/// How Socket.IO packets become Engine.IO messages and back: what `socket.io`'s `parser` option is.
///
/// Two come with ferrio: [`JsonParser`] (the default, `socket.io-parser`) and [`MsgpackParser`]
/// (`socket.io-msgpack-parser`). Both ends of a connection must use the same one. Give it to the server
/// (`IoConfig::builder().parser(Arc::new(..))`) or the client (`ClientOptions::builder().parser(..)`).
///
/// A custom parser implements this trait: `encode` turns a [`Packet`] into frames, once per packet
/// (a broadcast shares them between recipients), and `decoder` gives each connection its own
/// [`PacketDecoder`], which may keep state between messages (the JSON parser waits there for a binary
/// packet's attachments). A decoding error closes the connection with the reason "parse error", so a
/// decoder refuses what it does not understand rather than guessing, and never panics on peer input.
///
/// ```
/// use ferrio_proto::engine::{Data, Frame};
/// use ferrio_proto::socket::{Encoded, MsgpackParser, Packet, PacketDecoder, Parser};
///
/// /// msgpack, with every packet logged on its way out.
/// struct Logged(MsgpackParser);
///
/// impl Parser for Logged {
///     fn encode(&self, packet: &Packet) -> Encoded {
///         println!("out: {packet:?}");
///         self.0.encode(packet)
///     }
///     fn decoder(&self) -> Box<dyn PacketDecoder> {
///         self.0.decoder()
///     }
/// }
///
/// let parser = Logged(MsgpackParser::new());
/// let encoded = parser.encode(&Packet::Disconnect { nsp: "/".into() });
/// let Frame::Binary(bytes) = encoded.head else { unreachable!() };
/// let back = parser.decoder().decode(Data::Binary(bytes));
/// assert_eq!(back, Ok(Some(Packet::Disconnect { nsp: "/".into() })));
/// ```
pub trait Parser: Send + Sync + 'static {
    /// Encodes a packet into the frames to send: [`Encoded::head`] first, then its attachments.
    fn encode(&self, packet: &Packet) -> Encoded;
    /// What [`Parser::encode`] gives for a `Packet::Event` of these parts, with the arguments handed
    /// back (the caller still has use for them). The built-in parsers write it from the parts; the
    /// default moves the arguments into a packet and out again, copying only the two names.
    fn encode_event(
        &self,
        nsp: &str,
        event: &str,
        args: Vec<Value>,
        id: Option<u64>,
    ) -> (Encoded, Vec<Value>) {
        let packet = Packet::Event {
            nsp: nsp.to_owned(),
            event: event.to_owned(),
            args,
            id,
        };
        encode_handing_back(self, packet)
    }
    /// What [`Parser::encode`] gives for a `Packet::Ack` of these parts, with the arguments handed back,
    /// as [`Parser::encode_event`] does for an event.
    fn encode_ack(&self, nsp: &str, args: Vec<Value>, id: u64) -> (Encoded, Vec<Value>) {
        let packet = Packet::Ack {
            nsp: nsp.to_owned(),
            args,
            id,
        };
        encode_handing_back(self, packet)
    }
    /// A decoder for one connection.
    fn decoder(&self) -> Box<dyn PacketDecoder>;
    /// Whether this parser writes what the default JSON parser writes, so that an event or an ack can
    /// be written straight from the application's data ([`encode_event_from`], [`encode_ack_from`]).
    /// `false` by default, so that another parser (or one wrapping the default) encodes its packets
    /// itself.
    fn writes_json_text(&self) -> bool {
        false
    }
}

/// The defaults of [`Parser::encode_event`] and [`Parser::encode_ack`]: `packet` encoded, and its
/// arguments handed back.
fn encode_handing_back<P: Parser + ?Sized>(parser: &P, packet: Packet) -> (Encoded, Vec<Value>) {
    let encoded = parser.encode(&packet);
    match packet {
        Packet::Event { args, .. } | Packet::Ack { args, .. } => (encoded, args),
        _ => (encoded, Vec::new()),
    }
}

/// Decodes the messages of one connection into packets.
pub trait PacketDecoder: Send {
    /// Feeds one Engine.IO message; `Ok(None)` while a packet waits for more messages. An error closes
    /// the connection ("parse error").
    fn decode(&mut self, data: Data) -> Result<Option<Packet>, ParseError>;
    /// Drops any partially received packet (the connection is closing or starting over).
    fn reset(&mut self);
    /// An EVENT text message read without building its [`Packet`] (see [`Decoder::plain_event`]), for
    /// a receiver that needs none; `None` (the default) hands the message to `decode`. `Some` must be
    /// what `decode` would give as a [`Packet::Event`], and leave the decoder as `decode` would: the
    /// message does not reach `decode` then.
    fn plain_event<'a>(&mut self, text: &'a str) -> Option<PlainEvent<'a>> {
        let _ = text;
        None
    }
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

    fn encode_event(
        &self,
        nsp: &str,
        event: &str,
        args: Vec<Value>,
        id: Option<u64>,
    ) -> (Encoded, Vec<Value>) {
        (packet::encode_event(nsp, event, &args, id), args)
    }

    fn encode_ack(&self, nsp: &str, args: Vec<Value>, id: u64) -> (Encoded, Vec<Value>) {
        (packet::encode_ack(nsp, &args, id), args)
    }

    fn decoder(&self) -> Box<dyn PacketDecoder> {
        Box::new(Decoder::new(self.max_attachments))
    }

    fn writes_json_text(&self) -> bool {
        true
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

    fn plain_event<'a>(&mut self, text: &'a str) -> Option<PlainEvent<'a>> {
        Decoder::plain_event(self, text)
    }
}
