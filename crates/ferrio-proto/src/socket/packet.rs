//! Socket.IO v5 packets and their default (JSON) encoding.
//!
//! Text form: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]`, followed, for the binary
//! types, by one Engine.IO binary message per attachment.

use bytes::Bytes;

use crate::engine::Frame;
use crate::value::{TextError, Value, ValueError};

/// The seven Socket.IO packet types, with their wire digit as discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// `0`: join a namespace (client), or confirm it (server).
    Connect = b'0',
    /// `1`: leave a namespace.
    Disconnect = b'1',
    /// `2`: an event.
    Event = b'2',
    /// `3`: the answer to an event that asked for one.
    Ack = b'3',
    /// `4`: the server refused to join a namespace.
    ConnectError = b'4',
    /// `5`: an event with binary attachments.
    BinaryEvent = b'5',
    /// `6`: an ack with binary attachments.
    BinaryAck = b'6',
}

impl PacketType {
    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }
}

/// Event names a peer may not send: the receiving side uses them for its own lifecycle events.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// A decoded Socket.IO packet. Binary attachments are already put back in place as `Value::Binary`.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// Join (client → server, with the optional `auth` object) or joined (server → client, `{"sid":…}`).
    Connect {
        /// Namespace.
        nsp: String,
        /// Payload: the client's auth, or the server's `{"sid":…}`.
        data: Option<Value>,
    },
    /// Leave a namespace.
    Disconnect {
        /// Namespace.
        nsp: String,
    },
    /// An event: its name and arguments, with an ack id when the sender waits for an answer.
    Event {
        /// Namespace.
        nsp: String,
        /// Event name (a numeric name from the wire is kept as its decimal string).
        event: String,
        /// Arguments after the name.
        args: Vec<Value>,
        /// Ack id.
        id: Option<u64>,
    },
    /// The answer to event `id`.
    Ack {
        /// Namespace.
        nsp: String,
        /// Arguments.
        args: Vec<Value>,
        /// Ack id.
        id: u64,
    },
    /// Joining the namespace was refused.
    ConnectError {
        /// Namespace.
        nsp: String,
        /// `{"message":…,"data":…}` (or a bare string from old servers).
        data: Value,
    },
}

impl Packet {
    /// The namespace the packet belongs to.
    pub fn nsp(&self) -> &str {
        match self {
            Packet::Connect { nsp, .. }
            | Packet::Disconnect { nsp }
            | Packet::Event { nsp, .. }
            | Packet::Ack { nsp, .. }
            | Packet::ConnectError { nsp, .. } => nsp,
        }
    }
}

/// Why a peer's Socket.IO packet was refused. Any of these closes the connection with "parse error".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The first byte is not a packet type.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count is malformed or above the limit.
    #[error("illegal attachments")]
    IllegalAttachments,
    /// The ack id is malformed or does not fit in 64 bits.
    #[error("invalid ack id")]
    InvalidId,
    /// The payload is not JSON, too deep, or not the shape this packet type requires.
    #[error("invalid payload")]
    InvalidPayload,
    /// A placeholder does not match the attachments.
    #[error("invalid placeholder")]
    InvalidPlaceholder,
    /// A binary frame arrived when none was expected.
    #[error("unexpected binary data")]
    UnexpectedBinary,
    /// A text packet arrived while attachments were still expected.
    #[error("unexpected text while reconstructing a binary packet")]
    UnexpectedText,
    /// A text message reached a parser whose packets are binary messages (msgpack).
    #[error("text message where a binary packet is expected")]
    ExpectedBinary,
    /// The message is not one MessagePack value.
    #[error("invalid msgpack: {0}")]
    Msgpack(#[from] crate::value::msgpack::DecodeError),
    /// The namespace is missing or not a string.
    #[error("invalid namespace")]
    InvalidNamespace,
}

/// An encoded packet: its text frame, then one binary frame per attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The first frame (with the JSON parser, the text part, a complete Engine.IO message frame).
    pub head: Frame,
    /// The attachments, in order.
    pub attachments: Vec<Bytes>,
}

impl Encoded {
    /// The Engine.IO frames to send, in order.
    pub fn frames(&self) -> impl Iterator<Item = Frame> + '_ {
        std::iter::once(self.head.clone())
            .chain(self.attachments.iter().cloned().map(Frame::Binary))
    }

    /// The Engine.IO frames to send, in order, taken rather than shared: for a packet encoded for one
    /// connection (sharing the head's bytes would cost an allocation).
    pub fn into_frames(self) -> impl Iterator<Item = Frame> {
        std::iter::once(self.head).chain(self.attachments.into_iter().map(Frame::Binary))
    }
}

fn write_header(out: &mut String, ty: PacketType, attachments: usize, nsp: &str, id: Option<u64>) {
    // The Engine.IO message type goes first, so the string is the complete frame.
    out.push('4');
    out.push(ty as u8 as char);
    if attachments > 0 {
        out.push_str(itoa::Buffer::new().format(attachments));
        out.push('-');
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(itoa::Buffer::new().format(id));
    }
}

/// Encodes `packet` with the default JSON parser.
///
/// The header (written for no attachments, by far the common case) and the body go into one buffer;
/// only a packet that turns out to carry binary attachments gets its header rewritten. (Writing the
/// body into a growing `String` and copying it behind the header cost several reallocations per packet
/// on the echo path.) A small packet is written into a buffer kept by the thread and copied out at its
/// exact size: one allocation for the frame, where a `String` with room to spare needs a second one
/// when it becomes shared bytes.
pub fn encode(packet: &Packet) -> Encoded {
    encode_with(|out| write_packet(out, packet))
}

/// [`encode`] of a `Packet::Event` made of these parts, without building it (no copy of the namespace,
/// the event name or the arguments).
pub fn encode_event(nsp: &str, event: &str, args: &[Value], id: Option<u64>) -> Encoded {
    encode_with(|out| {
        write_parts(
            out,
            PacketType::Event,
            nsp,
            id,
            Body::Array(Some(event), args),
        )
    })
}

/// [`encode`] of a `Packet::Ack` made of these parts, without building it.
pub fn encode_ack(nsp: &str, args: &[Value], id: u64) -> Encoded {
    encode_with(|out| write_parts(out, PacketType::Ack, nsp, Some(id), Body::Array(None, args)))
}

/// [`encode_event`] of the arguments `data` stands for (as [`to_args`](crate::value::to_args) reads
/// it), written straight from `data`, without building the arguments first: the same frame, byte for
/// byte. `Ok(None)` when `data` holds binary data (or misuses serde's map protocol): those take
/// `to_args` and [`encode_event`]. An error is the one `to_args` gives.
pub fn encode_event_from<T: serde::Serialize + ?Sized>(
    nsp: &str,
    event: &str,
    data: &T,
    id: Option<u64>,
) -> Result<Option<Encoded>, ValueError> {
    encode_from(PacketType::Event, nsp, Some(event), data, id)
}

/// [`encode_ack`] of the arguments `data` stands for, written straight from `data` (see
/// [`encode_event_from`]).
pub fn encode_ack_from<T: serde::Serialize + ?Sized>(
    nsp: &str,
    data: &T,
    id: u64,
) -> Result<Option<Encoded>, ValueError> {
    encode_from(PacketType::Ack, nsp, None, data, Some(id))
}

/// The `["event",args…]` text of an event whose arguments `data` stands for, written straight from
/// `data` as [`encode_event_from`] writes it; `Ok(None)` when `data` holds binary data. With
/// [`encode_event_text`], an event's frame is made in two steps: its text while no lock is held,
/// its frame once its ack id is known.
pub fn event_text_from<T: serde::Serialize + ?Sized>(
    event: &str,
    data: &T,
) -> Result<Option<String>, ValueError> {
    let mut out = String::with_capacity(64);
    out.push('[');
    crate::value::write_escaped(&mut out, event);
    match crate::value::write_args(&mut out, data, true) {
        Ok(()) => {
            out.push(']');
            Ok(Some(out))
        }
        Err(TextError::Fallback) => Ok(None),
        Err(TextError::Value(e)) => Err(e),
    }
}

/// [`encode_event`] of an event whose `["event",args…]` text is `text`, as [`event_text_from`]
/// wrote it.
pub fn encode_event_text(nsp: &str, text: &str, id: Option<u64>) -> Encoded {
    encode_with(|out| {
        write_header(out, PacketType::Event, 0, nsp, id);
        out.push_str(text);
        Vec::new()
    })
}

fn encode_from<T: serde::Serialize + ?Sized>(
    ty: PacketType,
    nsp: &str,
    event: Option<&str>,
    data: &T,
    id: Option<u64>,
) -> Result<Option<Encoded>, ValueError> {
    let encoded = try_encode_with(|out| {
        write_header(out, ty, 0, nsp, id);
        out.push('[');
        if let Some(e) = event {
            crate::value::write_escaped(out, e);
        }
        crate::value::write_args(out, data, event.is_some())?;
        out.push(']');
        Ok(Vec::new())
    });
    match encoded {
        Ok(encoded) => Ok(Some(encoded)),
        Err(TextError::Fallback) => Ok(None),
        Err(TextError::Value(e)) => Err(e),
    }
}

/// Runs `write` on the thread's scratch buffer (see [`encode`]); it returns the attachments.
fn encode_with(write: impl FnOnce(&mut String) -> Vec<Bytes>) -> Encoded {
    match try_encode_with(|out| Ok::<_, std::convert::Infallible>(write(out))) {
        Ok(encoded) => encoded,
        Err(never) => match never {},
    }
}

/// [`encode_with`] of a writer that may fail (nothing is handed out then).
fn try_encode_with<E>(
    write: impl FnOnce(&mut String) -> Result<Vec<Bytes>, E>,
) -> Result<Encoded, E> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut out) => {
            out.clear();
            let attachments = match write(&mut out) {
                Ok(attachments) => attachments,
                Err(e) => {
                    // A large failed write does not stay in the thread's buffer.
                    if out.capacity() > SCRATCH_KEEP {
                        *out = String::new();
                    }
                    return Err(e);
                }
            };
            if out.len() <= SCRATCH_KEEP {
                Ok(Encoded {
                    head: Frame::Text(bytestring::ByteString::from(out.as_str())),
                    attachments,
                })
            } else {
                // Large: handed over as it is rather than copied (and not kept by the thread).
                let mut big = std::mem::take(&mut *out);
                trim_spare(&mut big);
                Ok(Encoded {
                    head: Frame::Text(big.into()),
                    attachments,
                })
            }
        }
        // The buffer is in use further up this thread's stack: an application's `Serialize`,
        // run while writing its data, emitted something itself.
        Err(_) => {
            let mut out = String::with_capacity(64);
            let attachments = write(&mut out)?;
            trim_spare(&mut out);
            Ok(Encoded {
                head: Frame::Text(out.into()),
                attachments,
            })
        }
    })
}

thread_local! {
    /// Where [`encode`] writes small packets.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The largest packet [`encode`] copies out of its scratch buffer (and so the most that buffer keeps).
const SCRATCH_KEEP: usize = 4096;

impl Packet {
    /// Its type, namespace, ack id and data, as both parsers write them.
    pub(crate) fn parts(&self) -> (PacketType, &str, Option<u64>, Body<'_>) {
        match self {
            Packet::Connect { nsp, data } => {
                (PacketType::Connect, nsp, None, Body::Data(data.as_ref()))
            }
            Packet::Disconnect { nsp } => (PacketType::Disconnect, nsp, None, Body::Data(None)),
            Packet::Event {
                nsp,
                event,
                args,
                id,
            } => (PacketType::Event, nsp, *id, Body::Array(Some(event), args)),
            Packet::Ack { nsp, args, id } => {
                (PacketType::Ack, nsp, Some(*id), Body::Array(None, args))
            }
            Packet::ConnectError { nsp, data } => {
                (PacketType::ConnectError, nsp, None, Body::Data(Some(data)))
            }
        }
    }
}

/// Writes `packet` into `out` (empty); returns its binary attachments.
fn write_packet(out: &mut String, packet: &Packet) -> Vec<Bytes> {
    let (ty, nsp, id, data) = packet.parts();
    write_parts(out, ty, nsp, id, data)
}

fn write_parts(
    out: &mut String,
    ty: PacketType,
    nsp: &str,
    id: Option<u64>,
    data: Body<'_>,
) -> Vec<Bytes> {
    let mut attachments = Vec::new();
    write_header(out, ty, 0, nsp, id);
    let header_len = out.len();
    match data {
        Body::Data(Some(d)) => d.write_json(out, &mut attachments),
        Body::Data(None) => {}
        Body::Array(event, args) => write_array(out, event, args, &mut attachments),
    }
    if !attachments.is_empty() {
        let ty = match ty {
            PacketType::Event => PacketType::BinaryEvent,
            PacketType::Ack => PacketType::BinaryAck,
            other => other,
        };
        let mut with_count = String::with_capacity(out.len() + 8);
        write_header(&mut with_count, ty, attachments.len(), nsp, id);
        with_count.push_str(&out[header_len..]);
        *out = with_count;
    }
    attachments
}

fn trim_spare(out: &mut String) {
    let spare = out.capacity() - out.len();
    if spare > 256 && spare > out.len() / 8 {
        *out = out.as_str().to_owned();
    }
}

/// What follows the header of a packet.
/// A packet's data: a value (or none), or an array of arguments behind the event name of an event.
pub(crate) enum Body<'a> {
    Data(Option<&'a Value>),
    Array(Option<&'a str>, &'a [Value]),
}

fn write_array(
    out: &mut String,
    event: Option<&str>,
    args: &[Value],
    attachments: &mut Vec<Bytes>,
) {
    out.push('[');
    let mut first = true;
    if let Some(e) = event {
        // Escaped in place: no `Value::String` (and copy of the name) per packet.
        crate::value::write_escaped(out, e);
        first = false;
    }
    for a in args {
        if !first {
            out.push(',');
        }
        first = false;
        a.write_json(out, attachments);
    }
    out.push(']');
}

/// A packet whose attachments are still arriving.
#[derive(Debug)]
struct Pending {
    ty: PacketType,
    nsp: String,
    id: Option<u64>,
    payload: Value,
    expected: usize,
    received: Vec<Bytes>,
}

/// An EVENT read straight from its text by [`Decoder::plain_event`]: what [`Decoder::decode_text`]
/// would make a [`Packet::Event`] of, with its namespace and name borrowed.
#[derive(Debug, PartialEq)]
pub struct PlainEvent<'a> {
    /// The namespace (`/` when the packet names none).
    pub nsp: &'a str,
    /// The event's name.
    pub name: &'a str,
    /// The payload, `["name", arg, …]`, to the end of the text: checked, its arguments not read
    /// ([`PlainEvent::args`] reads them).
    pub payload: &'a str,
    /// The ack the peer waits for, if any.
    pub id: Option<u64>,
}

impl PlainEvent<'_> {
    /// The arguments after the name, read as [`Decoder::decode_text`] reads them.
    pub fn args(&self) -> Vec<Value> {
        crate::value::read_event_args(self.payload)
    }
}

impl From<PlainEvent<'_>> for Packet {
    /// The packet [`Decoder::decode_text`] makes of the same text.
    fn from(e: PlainEvent<'_>) -> Packet {
        Packet::Event {
            nsp: e.nsp.to_owned(),
            event: e.name.to_owned(),
            args: e.args(),
            id: e.id,
        }
    }
}

/// What comes before a text packet's payload, borrowed from its text.
struct Header<'a> {
    ty: PacketType,
    /// Attachments announced (binary packets).
    expected: usize,
    nsp: &'a str,
    id: Option<u64>,
    /// Where the payload starts.
    payload: usize,
}

/// Decodes the packets of one connection, reassembling binary packets from their attachments.
#[derive(Debug)]
pub struct Decoder {
    max_attachments: usize,
    pending: Option<Pending>,
}

impl Decoder {
    /// A decoder that refuses packets announcing more than `max_attachments` attachments (10 by default).
    pub fn new(max_attachments: usize) -> Self {
        Decoder {
            max_attachments,
            pending: None,
        }
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_reconstructing(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops a partially received packet (the connection is closing).
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// An EVENT of the usual shape, read without building a [`Packet`]: its namespace and name
    /// borrowed from `text` (a name with escapes is not), its arguments checked as
    /// [`decode_text`](Self::decode_text) reads them, but not read. `None` for any other text,
    /// including every one `decode_text` refuses: that text is for `decode_text`, which decides.
    pub fn plain_event<'a>(&self, text: &'a str) -> Option<PlainEvent<'a>> {
        if self.pending.is_some() || text.as_bytes().first() != Some(&b'2') {
            return None;
        }
        let header = self.header(text).ok()?;
        let payload = &text[header.payload..];
        let name = crate::value::read_event_name(payload)?;
        if super::is_reserved_event(name) {
            return None;
        }
        Some(PlainEvent {
            nsp: header.nsp,
            name,
            payload,
            id: header.id,
        })
    }

    /// What comes before a text packet's payload.
    fn header<'a>(&self, text: &'a str) -> Result<Header<'a>, ParseError> {
        let bytes = text.as_bytes();
        let ty = bytes
            .first()
            .and_then(|&b| PacketType::from_byte(b))
            .ok_or(ParseError::UnknownType)?;
        let mut i = 1;

        let mut expected = 0;
        if matches!(ty, PacketType::BinaryEvent | PacketType::BinaryAck) {
            let start = i;
            // Bounded scan: a count longer than the limit's digits is refused without reading further.
            let max_digits = self.max_attachments.max(1).ilog10() as usize + 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
                if i - start > max_digits {
                    return Err(ParseError::IllegalAttachments);
                }
            }
            if i == start || bytes.get(i) != Some(&b'-') {
                return Err(ParseError::IllegalAttachments);
            }
            expected = text[start..i]
                .parse::<usize>()
                .map_err(|_| ParseError::IllegalAttachments)?;
            if expected > self.max_attachments {
                return Err(ParseError::IllegalAttachments);
            }
            i += 1;
        }

        let nsp = if bytes.get(i) == Some(&b'/') {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            let nsp = &text[start..i];
            if i < bytes.len() {
                i += 1; // the comma
            }
            nsp
        } else {
            "/"
        };

        let mut id = None;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            id = Some(
                text[start..i]
                    .parse::<u64>()
                    .map_err(|_| ParseError::InvalidId)?,
            );
        }
        Ok(Header {
            ty,
            expected,
            nsp,
            id,
            payload: i,
        })
    }

    /// Decodes a text message. `Ok(None)` means a binary packet now waits for its attachments.
    pub fn decode_text(&mut self, text: &str) -> Result<Option<Packet>, ParseError> {
        if self.pending.is_some() {
            self.pending = None;
            return Err(ParseError::UnexpectedText);
        }
        let Header {
            ty,
            expected,
            nsp,
            id,
            payload: i,
        } = self.header(text)?;
        let nsp = nsp.to_owned();
        let bytes = text.as_bytes();

        let payload = if i < bytes.len() {
            Some(Value::from_json(&text[i..]).map_err(|_| ParseError::InvalidPayload)?)
        } else {
            None
        };

        if expected > 0 {
            let payload = payload.ok_or(ParseError::InvalidPayload)?;
            self.pending = Some(Pending {
                ty,
                nsp,
                id,
                payload,
                expected,
                received: Vec::with_capacity(expected),
            });
            return Ok(None);
        }
        build(ty, nsp, id, payload, &[]).map(Some)
    }

    /// Decodes a binary message: the next attachment of the pending packet.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, ParseError> {
        let Some(p) = self.pending.as_mut() else {
            return Err(ParseError::UnexpectedBinary);
        };
        p.received.push(data);
        if p.received.len() < p.expected {
            return Ok(None);
        }
        let p = self.pending.take().expect("checked above");
        build(p.ty, p.nsp, p.id, Some(p.payload), &p.received).map(Some)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(10)
    }
}

/// The packet of type `ty`, if `payload` (with `attachments` put back in place) has the shape that type
/// requires; shared by every parser.
pub(crate) fn build(
    ty: PacketType,
    nsp: String,
    id: Option<u64>,
    payload: Option<Value>,
    attachments: &[Bytes],
) -> Result<Packet, ParseError> {
    let binary = matches!(ty, PacketType::BinaryEvent | PacketType::BinaryAck);
    let payload = match payload {
        Some(v) if binary => Some(
            v.resolve_placeholders(attachments)
                .map_err(|_| ParseError::InvalidPlaceholder)?,
        ),
        other => other,
    };
    match ty {
        PacketType::Connect => match payload {
            None | Some(Value::Object(_)) if id.is_none() => {
                Ok(Packet::Connect { nsp, data: payload })
            }
            _ => Err(ParseError::InvalidPayload),
        },
        PacketType::Disconnect => match payload {
            None if id.is_none() => Ok(Packet::Disconnect { nsp }),
            _ => Err(ParseError::InvalidPayload),
        },
        PacketType::ConnectError => match payload {
            Some(v @ (Value::String(_) | Value::Object(_))) => {
                Ok(Packet::ConnectError { nsp, data: v })
            }
            _ => Err(ParseError::InvalidPayload),
        },
        PacketType::Event | PacketType::BinaryEvent => {
            let Some(Value::Array(mut items)) = payload else {
                return Err(ParseError::InvalidPayload);
            };
            if items.is_empty() {
                return Err(ParseError::InvalidPayload);
            }
            let event = match items.remove(0) {
                Value::String(s) if !super::is_reserved_event(&s) => s,
                Value::Number(n) => n.to_string(),
                _ => return Err(ParseError::InvalidPayload),
            };
            Ok(Packet::Event {
                nsp,
                event,
                args: items,
                id,
            })
        }
        PacketType::Ack | PacketType::BinaryAck => match (payload, id) {
            (Some(Value::Array(args)), Some(id)) => Ok(Packet::Ack { nsp, args, id }),
            _ => Err(ParseError::InvalidPayload),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Option<Packet>, ParseError> {
        Decoder::default().decode_text(s)
    }

    /// An event encoded from its parts is the event packet encoded, with both built-in parsers and
    /// through the trait's default (a parser of the application's that only encodes packets).
    #[test]
    fn events_and_acks_encoded_from_their_parts_are_the_packets_encoded() {
        use crate::socket::{JsonParser, MsgpackParser, Parser};
        struct PacketsOnly;
        impl Parser for PacketsOnly {
            fn encode(&self, packet: &Packet) -> Encoded {
                JsonParser::default().encode(packet)
            }
            fn decoder(&self) -> Box<dyn crate::socket::PacketDecoder> {
                JsonParser::default().decoder()
            }
        }
        let blob = Value::Binary(Bytes::from_static(b"\x00\x01"));
        let cases: Vec<(&str, &str, Vec<Value>, Option<u64>)> = vec![
            ("/", "chat", vec![], None),
            (
                "/",
                "echo",
                vec![Value::from(7), Value::from("é\"")],
                Some(12),
            ),
            (
                "/admin",
                "up",
                vec![Value::Array(vec![blob.clone(), Value::Null])],
                Some(0),
            ),
            ("/x", "two blobs", vec![blob.clone(), blob], None),
        ];
        let parsers: [&dyn Parser; 3] =
            [&JsonParser::default(), &MsgpackParser::new(), &PacketsOnly];
        for parser in parsers {
            for (nsp, event, args, id) in &cases {
                let packet = Packet::Event {
                    nsp: nsp.to_string(),
                    event: event.to_string(),
                    args: args.clone(),
                    id: *id,
                };
                let (from_parts, back) = parser.encode_event(nsp, event, args.clone(), *id);
                assert_eq!(&back, args, "the arguments come back");
                let whole = parser.encode(&packet);
                assert_eq!(from_parts.head, whole.head, "{packet:?}");
                assert_eq!(from_parts.attachments, whole.attachments, "{packet:?}");

                // The same arguments answering an ack.
                let id = id.unwrap_or(3);
                let packet = Packet::Ack {
                    nsp: nsp.to_string(),
                    args: args.clone(),
                    id,
                };
                let (from_parts, back) = parser.encode_ack(nsp, args.clone(), id);
                assert_eq!(&back, args, "the arguments come back");
                let whole = parser.encode(&packet);
                assert_eq!(from_parts.head, whole.head, "{packet:?}");
                assert_eq!(from_parts.attachments, whole.attachments, "{packet:?}");
            }
        }
    }

    fn text_of(e: &Encoded) -> &str {
        match &e.head {
            Frame::Text(s) => &s[1..],
            Frame::Binary(_) => panic!("text expected"),
        }
    }

    #[test]
    fn decodes_connect_variants() {
        assert_eq!(
            dec("0").unwrap(),
            Some(Packet::Connect {
                nsp: "/".into(),
                data: None
            })
        );
        assert_eq!(
            dec("0/custom").unwrap(),
            Some(Packet::Connect {
                nsp: "/custom".into(),
                data: None
            })
        );
        assert_eq!(
            dec("0/custom,").unwrap(),
            Some(Packet::Connect {
                nsp: "/custom".into(),
                data: None
            })
        );
        let Some(Packet::Connect {
            nsp,
            data: Some(auth),
        }) = dec(r#"0/custom,{"token":"abc"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(nsp, "/custom");
        assert_eq!(auth.get("token").and_then(Value::as_str), Some("abc"));
        assert_eq!(dec(r#"0"str""#), Err(ParseError::InvalidPayload));
        assert_eq!(dec("1"), Ok(Some(Packet::Disconnect { nsp: "/".into() })));
        assert_eq!(
            dec("1/a,"),
            Ok(Some(Packet::Disconnect { nsp: "/a".into() }))
        );
        assert_eq!(dec("1[]"), Err(ParseError::InvalidPayload));
    }

    #[test]
    fn decodes_events_and_acks() {
        let p = dec(r#"2/chat,12["message",1,"2",{"3":[true]}]"#)
            .unwrap()
            .unwrap();
        let Packet::Event {
            nsp,
            event,
            args,
            id,
        } = p
        else {
            panic!()
        };
        assert_eq!(
            (nsp.as_str(), event.as_str(), id, args.len()),
            ("/chat", "message", Some(12), 3)
        );
        let p = dec(r#"3456[1]"#).unwrap().unwrap();
        assert_eq!(
            p,
            Packet::Ack {
                nsp: "/".into(),
                args: vec![Value::from(1u64)],
                id: 456
            }
        );
        let p = dec(r#"2[42,"x"]"#).unwrap().unwrap();
        assert!(matches!(p, Packet::Event { ref event, .. } if event == "42"));
    }

    #[test]
    fn rejects_malformed_packets() {
        for bad in [
            "",
            "7",
            "4abc",
            "abc",
            r#"2[{"toString":"foo"}]"#,
            "2[true]",
            "2[]",
            "2{}",
            r#"2"x""#,
            r#"2abc["message"]"#,
            r#"21234567890123456789012345["a"]"#,
            r#"2["connect"]"#,
            r#"2["disconnecting"]"#,
            r#"2["newListener"]"#,
            "3[1]",
            "3{}",
            r#"2["a"]trailing"#,
            "5999999-[\"a\"]",
            "5-[\"a\"]",
            "5x-[\"a\"]",
            "51[\"a\"]",
        ] {
            assert!(dec(bad).is_err(), "{bad:?} should be refused");
        }
        let digits = format!("5{}-[\"a\"]", "9".repeat(1_000_000));
        assert_eq!(dec(&digits), Err(ParseError::IllegalAttachments));
        let deep = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(dec(&deep), Err(ParseError::InvalidPayload));
    }

    #[test]
    fn reassembles_binary_events() {
        let mut d = Decoder::default();
        let head =
            r#"52-["message",{"_placeholder":true,"num":0},{"a":[{"_placeholder":true,"num":1}]}]"#;
        assert_eq!(d.decode_text(head).unwrap(), None);
        assert!(d.is_reconstructing());
        assert_eq!(
            d.decode_binary(Bytes::from_static(&[1, 2, 3])).unwrap(),
            None
        );
        let p = d.decode_binary(Bytes::from_static(&[4])).unwrap().unwrap();
        let Packet::Event { args, .. } = p else {
            panic!()
        };
        assert_eq!(args[0].as_bytes(), Some(&[1u8, 2, 3][..]));
        assert_eq!(
            args[1].get("a").unwrap().get_index(0).unwrap().as_bytes(),
            Some(&[4u8][..])
        );
        assert!(!d.is_reconstructing());
    }

    #[test]
    fn binary_protocol_violations() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode_binary(Bytes::from_static(b"x")),
            Err(ParseError::UnexpectedBinary)
        );
        d.decode_text(r#"51-["a",{"_placeholder":true,"num":0}]"#)
            .unwrap();
        assert_eq!(d.decode_text(r#"2["a"]"#), Err(ParseError::UnexpectedText));
        assert!(!d.is_reconstructing());
        for head in [
            r#"51-["a",{"_placeholder":true,"num":"splice"}]"#,
            r#"51-["a",{"_placeholder":true,"num":-1}]"#,
            r#"51-["a",{"_placeholder":true,"num":1.5}]"#,
            r#"51-["a",{"_placeholder":true,"num":1}]"#,
            r#"51-["a",{"_placeholder":"true","num":0}]"#,
            r#"51-["a"]"#,
            r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,
        ] {
            let mut d = Decoder::default();
            let atts = head.as_bytes()[1] - b'0';
            let mut result = d.decode_text(head);
            for _ in 0..atts {
                if let Ok(None) = result {
                    result = d.decode_binary(Bytes::from_static(b"z"));
                }
            }
            assert!(result.is_err(), "{head} should be refused");
        }
        let mut d = Decoder::new(10);
        assert_eq!(
            d.decode_text(r#"511-["a"]"#),
            Err(ParseError::IllegalAttachments)
        );
    }

    #[test]
    fn encodes_like_the_official_parser() {
        let e = encode(&Packet::Connect {
            nsp: "/".into(),
            data: None,
        });
        assert_eq!(text_of(&e), "0");
        let e = encode(&Packet::Event {
            nsp: "/".into(),
            event: "auth".into(),
            args: vec![Value::from_json(r#"{"token":"123"}"#).unwrap()],
            id: None,
        });
        assert_eq!(text_of(&e), r#"2["auth",{"token":"123"}]"#);
        let e = encode(&Packet::Ack {
            nsp: "/custom".into(),
            args: vec![Value::from(1u64)],
            id: 456,
        });
        assert_eq!(text_of(&e), r#"3/custom,456[1]"#);
        let e = encode(&Packet::Event {
            nsp: "/".into(),
            event: "message-back".into(),
            args: vec![
                Value::Binary(Bytes::from_static(&[1, 2, 3])),
                Value::Binary(Bytes::from_static(&[4])),
            ],
            id: Some(789),
        });
        assert_eq!(
            text_of(&e),
            r#"52-789["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        assert_eq!(e.attachments.len(), 2);
        assert_eq!(e.frames().count(), 3);
        let e = encode(&Packet::ConnectError {
            nsp: "/random".into(),
            data: Value::from_json(r#"{"message":"Invalid namespace"}"#).unwrap(),
        });
        assert_eq!(text_of(&e), r#"4/random,{"message":"Invalid namespace"}"#);
    }

    #[test]
    fn round_trip_with_binary() {
        let p = Packet::Ack {
            nsp: "/x".into(),
            args: vec![Value::Array(vec![
                Value::Binary(Bytes::from_static(b"ab")),
                Value::Null,
            ])],
            id: 3,
        };
        let e = encode(&p);
        let mut d = Decoder::default();
        let Frame::Text(t) = &e.head else { panic!() };
        assert_eq!(d.decode_text(&t[1..]).unwrap(), None);
        let back = d.decode_binary(e.attachments[0].clone()).unwrap().unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn encoded_buffers_keep_no_large_spare() {
        // 1 000 bytes of text grow the buffer to 2 048: the frame must not keep the other half.
        let mut big = String::with_capacity(2048);
        big.push_str(&"x".repeat(1000));
        trim_spare(&mut big);
        assert!(big.capacity() - big.len() <= 256, "{}", big.capacity());
        // A small packet keeps its first buffer (no realloc per small emit).
        let mut small = String::with_capacity(64);
        small.push_str("42[\"a\"]");
        trim_spare(&mut small);
        assert_eq!(small.capacity(), 64);
    }

    /// Events of the usual shape are read without a packet, as `decode_text` reads them; every other
    /// text is left to `decode_text`, which keeps answering as before (a refusal included).
    #[test]
    fn plain_events_and_what_is_left_to_the_decoder() {
        let d = Decoder::default();
        let plain = |t| d.plain_event(t);
        let echo = plain(r#"2["echo",1]"#).unwrap();
        assert_eq!(
            echo,
            PlainEvent {
                nsp: "/",
                name: "echo",
                payload: r#"["echo",1]"#,
                id: None
            }
        );
        assert_eq!(echo.args(), vec![Value::from(1u64)]);
        let hi = plain(r#"2/chat,17[ "hi" , {"a":[null]} ] "#).unwrap();
        assert_eq!(
            (hi.nsp, hi.name, hi.payload, hi.id),
            ("/chat", "hi", r#"[ "hi" , {"a":[null]} ] "#, Some(17))
        );
        assert_eq!(
            hi.args(),
            vec![Value::from_json(r#"{"a":[null]}"#).unwrap()]
        );
        assert_eq!(
            plain(r#"2/chat,["e"]"#).map(|p| (p.nsp, p.args().len())),
            Some(("/chat", 0))
        );
        for (text, why) in [
            (r#"2["a\"b"]"#, "a name with an escape"),
            (
                r#"2[1]"#,
                "a number for a name (the decoder reads it as text)",
            ),
            (
                r#"2["connect"]"#,
                "a reserved name (refused by the decoder)",
            ),
            (r#"2[]"#, "no name"),
            (r#"2{"a":1}"#, "not an array"),
            (r#"2["a",]"#, "a trailing comma"),
            (r#"2["a"]x"#, "text after the array"),
            (r#"2["a""#, "an unclosed array"),
            (
                r#"2["a",1e999]"#,
                "a number the quick reader leaves to the full parser",
            ),
            (r#"299999999999999999999["a"]"#, "an id beyond 64 bits"),
            (
                r#"51-["a",{"_placeholder":true,"num":0}]"#,
                "a binary event",
            ),
            (r#"3["a"]"#, "not an event"),
            ("", "nothing"),
        ] {
            assert_eq!(plain(text), None, "{why}: {text}");
        }
        // While a binary packet waits for its attachments, a text message is the decoder's to refuse.
        let mut waiting = Decoder::default();
        assert_eq!(
            waiting.decode_text(r#"51-["a",{"_placeholder":true,"num":0}]"#),
            Ok(None)
        );
        assert_eq!(waiting.plain_event(r#"2["echo",1]"#), None);
        assert_eq!(
            waiting.decode_text(r#"2["echo",1]"#),
            Err(ParseError::UnexpectedText)
        );
    }
}
