//! Engine.IO packets: decoding what a peer sent and encoding what we send.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

/// The seven Engine.IO packet types, with their wire digit as discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// `0`: sent by the server once, with the handshake document.
    Open = b'0',
    /// `1`: the sender closes the session.
    Close = b'1',
    /// `2`: heartbeat request (server to client in v4), or the `2probe` of an upgrade.
    Ping = b'2',
    /// `3`: heartbeat answer, or the `3probe` of an upgrade.
    Pong = b'3',
    /// `4`: application data.
    Message = b'4',
    /// `5`: the client switches to the probed transport.
    Upgrade = b'5',
    /// `6`: no-op, used to end a pending long-polling request.
    Noop = b'6',
}

impl PacketType {
    /// The type of a wire digit, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => Self::Open,
            b'1' => Self::Close,
            b'2' => Self::Ping,
            b'3' => Self::Pong,
            b'4' => Self::Message,
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => return None,
        })
    }

    /// The wire digit.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// Application data carried by a message packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A UTF-8 string.
    Text(ByteString),
    /// Raw bytes.
    Binary(Bytes),
}

impl Data {
    /// Length of the data in bytes.
    pub fn len(&self) -> usize {
        match self {
            Data::Text(s) => s.len(),
            Data::Binary(b) => b.len(),
        }
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoded Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Handshake document (JSON text).
    Open(ByteString),
    /// Close.
    Close,
    /// Ping, with the optional payload (`probe` during an upgrade).
    Ping(Option<ByteString>),
    /// Pong, with the optional payload (`probe` during an upgrade).
    Pong(Option<ByteString>),
    /// Application data.
    Message(Data),
    /// Upgrade.
    Upgrade,
    /// Noop.
    Noop,
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }

    /// Whether this is the `probe` ping or pong of an upgrade.
    pub fn is_probe(&self) -> bool {
        matches!(self, Packet::Ping(Some(d)) | Packet::Pong(Some(d)) if d == "probe")
    }

    /// Encodes the packet into a frame ready to be written.
    pub fn encode(&self) -> Frame {
        let (ty, data) = match self {
            Packet::Message(Data::Binary(b)) => return Frame::Binary(b.clone()),
            Packet::Message(Data::Text(s)) => (PacketType::Message, Some(s)),
            Packet::Open(s) => (PacketType::Open, Some(s)),
            Packet::Ping(d) => (PacketType::Ping, d.as_ref()),
            Packet::Pong(d) => (PacketType::Pong, d.as_ref()),
            Packet::Close => (PacketType::Close, None),
            Packet::Upgrade => (PacketType::Upgrade, None),
            Packet::Noop => (PacketType::Noop, None),
        };
        Frame::text_packet(ty, data.map_or("", |s| s.as_ref()))
    }
}

/// Why a peer's packet could not be decoded. Any of these closes the session with "parse error".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An empty packet.
    #[error("empty packet")]
    Empty,
    /// The first byte is not a packet type.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A `b` packet whose body is not valid base64.
    #[error("invalid base64 in binary packet")]
    InvalidBase64,
    /// A text payload that is not UTF-8.
    #[error("payload is not valid UTF-8")]
    InvalidUtf8,
    /// A v3 payload whose length prefix is malformed or does not match its packet.
    #[error("malformed payload length")]
    InvalidLength,
    /// A JSONP POST body that is not a form with one `d` field.
    #[error("malformed JSONP form body")]
    InvalidForm,
}

/// Decodes one text packet (a websocket text frame, or one record of a polling payload).
pub fn decode_text(text: ByteString) -> Result<Packet, DecodeError> {
    let first = *text.as_bytes().first().ok_or(DecodeError::Empty)?;
    if first == b'b' {
        let bytes = BASE64
            .decode(&text.as_bytes()[1..])
            .map_err(|_| DecodeError::InvalidBase64)?;
        return Ok(Packet::Message(Data::Binary(Bytes::from(bytes))));
    }
    let ty = PacketType::from_byte(first).ok_or(DecodeError::UnknownType(first))?;
    // The type is one ASCII byte, so slicing after it keeps the string valid UTF-8.
    let rest = || text.slice_ref(&text[1..]);
    let opt = || if text.len() > 1 { Some(rest()) } else { None };
    Ok(match ty {
        PacketType::Open => Packet::Open(rest()),
        PacketType::Close => Packet::Close,
        PacketType::Ping => Packet::Ping(opt()),
        PacketType::Pong => Packet::Pong(opt()),
        PacketType::Message => Packet::Message(Data::Text(rest())),
        PacketType::Upgrade => Packet::Upgrade,
        PacketType::Noop => Packet::Noop,
    })
}

/// Decodes a websocket binary frame: in v4 it is the raw data of a message packet.
pub fn decode_binary(bytes: Bytes) -> Packet {
    Packet::Message(Data::Binary(bytes))
}

/// An encoded packet, ready for any transport. Cloning shares the bytes, so one broadcast frame is
/// encoded once and handed to every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text packet, type digit included (`4hello`, `2`, `3probe`).
    Text(ByteString),
    /// The raw data of a binary message packet.
    Binary(Bytes),
}

impl Frame {
    /// A text packet of type `ty` carrying `data`.
    pub fn text_packet(ty: PacketType, data: &str) -> Frame {
        if data.is_empty() {
            // Empty control packets are static: no allocation per ping or noop.
            return Frame::Text(ByteString::from_static(match ty {
                PacketType::Open => "0",
                PacketType::Close => "1",
                PacketType::Ping => "2",
                PacketType::Pong => "3",
                PacketType::Message => "4",
                PacketType::Upgrade => "5",
                PacketType::Noop => "6",
            }));
        }
        let mut s = String::with_capacity(1 + data.len());
        s.push(ty.as_byte() as char);
        s.push_str(data);
        Frame::Text(ByteString::from(s))
    }

    /// A message packet with text data.
    pub fn message(data: &str) -> Frame {
        Frame::text_packet(PacketType::Message, data)
    }

    /// A message packet with binary data.
    pub fn binary(data: impl Into<Bytes>) -> Frame {
        Frame::Binary(data.into())
    }

    /// The ping packet.
    pub fn ping() -> Frame {
        Frame::text_packet(PacketType::Ping, "")
    }

    /// The noop packet.
    pub fn noop() -> Frame {
        Frame::text_packet(PacketType::Noop, "")
    }

    /// The close packet.
    pub fn close() -> Frame {
        Frame::text_packet(PacketType::Close, "")
    }

    /// The type of the packet this frame holds.
    pub fn packet_type(&self) -> PacketType {
        match self {
            // An empty text frame (only an application can build one; decoded frames always carry
            // their type byte) is read as a message rather than indexing past its end.
            Frame::Text(s) => s
                .as_bytes()
                .first()
                .and_then(|&b| PacketType::from_byte(b))
                .unwrap_or(PacketType::Message),
            Frame::Binary(_) => PacketType::Message,
        }
    }

    /// Size of this frame inside a polling payload (binary frames grow by base64).
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Text(s) => s.len(),
            Frame::Binary(b) => 1 + b.len().div_ceil(3) * 4,
        }
    }

    /// Appends this frame's polling-payload form to `out`.
    pub fn write_payload_record(&self, out: &mut BytesMut) {
        match self {
            Frame::Text(s) => out.put_slice(s.as_bytes()),
            Frame::Binary(b) => {
                let start = out.len();
                let len = self.payload_len();
                out.resize(start + len, 0);
                out[start] = b'b';
                // The slice is sized exactly for the encoding, so this cannot fail.
                let written = BASE64.encode_slice(b, &mut out[start + 1..]).unwrap_or(0);
                out.truncate(start + 1 + written);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_empty_text_frame_has_a_type_and_does_not_panic() {
        assert_eq!(Frame::Text("".into()).packet_type(), PacketType::Message);
        assert_eq!(Frame::Text("2".into()).packet_type(), PacketType::Ping);
    }
    use super::*;

    fn text(s: &str) -> Result<Packet, DecodeError> {
        decode_text(ByteString::from(s))
    }

    #[test]
    fn decodes_every_type() {
        assert_eq!(text("0{}").unwrap(), Packet::Open("{}".into()));
        assert_eq!(text("1").unwrap(), Packet::Close);
        assert_eq!(text("2").unwrap(), Packet::Ping(None));
        assert_eq!(text("2probe").unwrap(), Packet::Ping(Some("probe".into())));
        assert_eq!(text("3probe").unwrap(), Packet::Pong(Some("probe".into())));
        assert_eq!(
            text("4héllo").unwrap(),
            Packet::Message(Data::Text("héllo".into()))
        );
        assert_eq!(text("4").unwrap(), Packet::Message(Data::Text("".into())));
        assert_eq!(text("5").unwrap(), Packet::Upgrade);
        assert_eq!(text("6").unwrap(), Packet::Noop);
        assert_eq!(
            text("bAQIDBA==").unwrap(),
            Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3, 4])))
        );
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(text(""), Err(DecodeError::Empty));
        assert_eq!(text("abc"), Err(DecodeError::UnknownType(b'a')));
        assert_eq!(text("9"), Err(DecodeError::UnknownType(b'9')));
        assert_eq!(text("7hello"), Err(DecodeError::UnknownType(b'7')));
        assert_eq!(text("bnot-base64!"), Err(DecodeError::InvalidBase64));
        assert_eq!(text("\u{1e}"), Err(DecodeError::UnknownType(0x1e)));
    }

    #[test]
    fn probe_detection() {
        assert!(text("2probe").unwrap().is_probe());
        assert!(!text("2").unwrap().is_probe());
        assert!(!text("4probe").unwrap().is_probe());
    }

    #[test]
    fn encode_round_trips() {
        for p in [
            Packet::Open("{\"sid\":\"x\"}".into()),
            Packet::Close,
            Packet::Ping(None),
            Packet::Pong(Some("probe".into())),
            Packet::Message(Data::Text("hi there".into())),
            Packet::Upgrade,
            Packet::Noop,
        ] {
            let Frame::Text(s) = p.encode() else {
                panic!("text expected")
            };
            assert_eq!(decode_text(s).unwrap(), p);
        }
        let bin = Packet::Message(Data::Binary(Bytes::from_static(b"\x00\xff")));
        let Frame::Binary(b) = bin.encode() else {
            panic!("binary expected")
        };
        assert_eq!(decode_binary(b), bin);
    }

    #[test]
    fn binary_payload_record_is_base64() {
        let mut out = BytesMut::new();
        let f = Frame::binary(vec![1u8, 2, 3, 4]);
        f.write_payload_record(&mut out);
        assert_eq!(&out[..], b"bAQIDBA==");
        assert_eq!(f.payload_len(), out.len());
        for n in 0..10 {
            let f = Frame::binary(vec![7u8; n]);
            let mut out = BytesMut::new();
            f.write_payload_record(&mut out);
            assert_eq!(f.payload_len(), out.len(), "length {n}");
        }
    }

    #[test]
    fn static_control_frames() {
        assert_eq!(Frame::ping(), Frame::Text("2".into()));
        assert_eq!(Frame::noop().packet_type(), PacketType::Noop);
        assert_eq!(Frame::message("x"), Frame::Text("4x".into()));
    }
}
