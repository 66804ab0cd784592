//! The MessagePack parser, compatible with `socket.io-msgpack-parser` 3.x.
//!
//! Every packet is one Engine.IO binary message: a MessagePack map with the keys `type` (0 to 4: the
//! five packet types; there are no binary types, blobs are MessagePack `bin` in place), `nsp` (always
//! present, `/` included), `data` (absent for a plain CONNECT and for DISCONNECT; for an event, the name
//! followed by the arguments) and `id` (the ack id, when there is one). Written in that order.
//!
//! Decoding is as strict as the official decoder: the type must be an integer from 0 to 4, the namespace
//! a string, the id an integer, the data of the shape the type requires; keys it does not know are
//! ignored (the official client adds `options` to its events). On top of it, the same rules as the JSON
//! parser: an event needs a name that is not reserved, an ack needs an id, the id fits in 64 bits.
//! Malformed MessagePack, nesting beyond [`MAX_DEPTH`](crate::value::msgpack::MAX_DEPTH) and text
//! messages are refused with a [`ParseError`].

use bytes::Bytes;

use super::packet::{Body, Encoded, Packet, PacketType, ParseError, build};
use super::{PacketDecoder, Parser};
use crate::engine::{Data, Frame};
use crate::value::Value;
use crate::value::msgpack::{
    decode_bytes, encode_into, write_array_len, write_map_len, write_str, write_uint,
};

/// The MessagePack parser (`socket.io-msgpack-parser`): one binary message per packet.
///
/// Both ends must use it: set it on the server (`IoConfig::builder().parser(..)`) and on the client
/// (`ClientOptions::builder().parser(..)`), as the official client takes `parser: require(
/// "socket.io-msgpack-parser")`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MsgpackParser {}

impl MsgpackParser {
    /// The parser.
    pub fn new() -> Self {
        MsgpackParser {}
    }
}

impl Parser for MsgpackParser {
    fn encode(&self, packet: &Packet) -> Encoded {
        one_frame(encode(packet))
    }

    fn encode_event(
        &self,
        nsp: &str,
        event: &str,
        args: Vec<Value>,
        id: Option<u64>,
    ) -> (Encoded, Vec<Value>) {
        (one_frame(encode_event(nsp, event, &args, id)), args)
    }

    fn encode_ack(&self, nsp: &str, args: Vec<Value>, id: u64) -> (Encoded, Vec<Value>) {
        let bytes = encode_parts(PacketType::Ack, nsp, Some(id), Body::Array(None, &args));
        (one_frame(bytes), args)
    }

    fn decoder(&self) -> Box<dyn PacketDecoder> {
        Box::new(MsgpackDecoder)
    }
}

/// Decodes msgpack packets; stateless, since a packet is always one message.
#[derive(Debug)]
struct MsgpackDecoder;

impl PacketDecoder for MsgpackDecoder {
    fn decode(&mut self, data: Data) -> Result<Option<Packet>, ParseError> {
        match data {
            Data::Binary(b) => decode(&b).map(Some),
            Data::Text(_) => Err(ParseError::ExpectedBinary),
        }
    }

    fn reset(&mut self) {}
}

/// A msgpack packet is always one binary frame: blobs stay inside it.
fn one_frame(bytes: Vec<u8>) -> Encoded {
    Encoded {
        head: Frame::Binary(Bytes::from(bytes)),
        attachments: Vec::new(),
    }
}

/// The MessagePack bytes of `packet`.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let (ty, nsp, id, data) = packet.parts();
    encode_parts(ty, nsp, id, data)
}

/// [`encode`] of a `Packet::Event` made of these parts, without building it.
pub fn encode_event(nsp: &str, event: &str, args: &[Value], id: Option<u64>) -> Vec<u8> {
    encode_parts(PacketType::Event, nsp, id, Body::Array(Some(event), args))
}

fn encode_parts(ty: PacketType, nsp: &str, id: Option<u64>, data: Body<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let has_data = !matches!(data, Body::Data(None));
    write_map_len(2 + has_data as usize + id.is_some() as usize, &mut out);
    write_str("type", &mut out);
    write_uint(u64::from(ty as u8 - b'0'), &mut out);
    write_str("nsp", &mut out);
    write_str(nsp, &mut out);
    match data {
        Body::Data(None) => {}
        Body::Data(Some(d)) => {
            write_str("data", &mut out);
            encode_into(d, &mut out);
        }
        Body::Array(event, args) => {
            write_str("data", &mut out);
            write_array_len(args.len() + usize::from(event.is_some()), &mut out);
            if let Some(event) = event {
                write_str(event, &mut out);
            }
            for a in args {
                encode_into(a, &mut out);
            }
        }
    }
    if let Some(id) = id {
        write_str("id", &mut out);
        write_uint(id, &mut out);
    }
    out
}

/// Decodes one msgpack packet; blobs share the memory of `input`.
pub fn decode(input: &Bytes) -> Result<Packet, ParseError> {
    let Value::Object(mut map) = decode_bytes(input)? else {
        return Err(ParseError::InvalidPayload);
    };
    let ty = map
        .get("type")
        .and_then(integer)
        .filter(|t| *t <= 4)
        .and_then(|t| PacketType::from_byte(b'0' + t as u8))
        .ok_or(ParseError::UnknownType)?;
    let nsp = match map.swap_remove("nsp") {
        Some(Value::String(s)) => s,
        _ => return Err(ParseError::InvalidNamespace),
    };
    let id = match map.get("id") {
        None => None,
        Some(v) => Some(integer(v).ok_or(ParseError::InvalidId)?),
    };
    let data = map.swap_remove("data");
    build(ty, nsp, id, data, &[])
}

/// A non-negative integer that fits in 64 bits; an integral float counts, as for `Number.isInteger`.
fn integer(v: &Value) -> Option<u64> {
    let Value::Number(n) = v else { return None };
    n.as_u64().or_else(|| {
        let f = n.as_f64()?;
        (f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f)).then_some(f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn dec(h: &str) -> Result<Packet, ParseError> {
        decode(&Bytes::from(hex(h)))
    }

    fn json(s: &str) -> Value {
        Value::from_json(s).unwrap()
    }

    /// Each packet with the bytes notepack.io writes for the same object, keys in the same order
    /// (`{type, nsp, data, id}`).
    fn cases() -> Vec<(Packet, &'static str)> {
        vec![
            (
                Packet::Connect {
                    nsp: "/".into(),
                    data: None,
                },
                "82 a474797065 00 a36e7370 a12f",
            ),
            (
                Packet::Connect {
                    nsp: "/admin".into(),
                    data: Some(json(r#"{"token":"abc"}"#)),
                },
                "83 a474797065 00 a36e7370 a62f61646d696e a464617461 81 a5746f6b656e a3616263",
            ),
            (
                Packet::Disconnect { nsp: "/".into() },
                "82 a474797065 01 a36e7370 a12f",
            ),
            (
                Packet::Event {
                    nsp: "/".into(),
                    event: "hello".into(),
                    args: vec![
                        Value::from(1u64),
                        Value::Binary(Bytes::from_static(&[1, 2])),
                    ],
                    id: None,
                },
                "83 a474797065 02 a36e7370 a12f a464617461 93 a568656c6c6f 01 c4020102",
            ),
            (
                Packet::Event {
                    nsp: "/".into(),
                    event: "ask".into(),
                    args: vec![Value::from(-1.5f64)],
                    id: Some(300),
                },
                "84 a474797065 02 a36e7370 a12f a464617461 92 a361736b cbbff8000000000000 a26964 cd012c",
            ),
            (
                Packet::Ack {
                    nsp: "/chat".into(),
                    args: vec![Value::Null, Value::from("ok")],
                    id: 7,
                },
                "84 a474797065 03 a36e7370 a52f63686174 a464617461 92 c0 a26f6b a26964 07",
            ),
            (
                Packet::ConnectError {
                    nsp: "/".into(),
                    data: json(r#"{"message":"no"}"#),
                },
                "83 a474797065 04 a36e7370 a12f a464617461 81 a76d657373616765 a26e6f",
            ),
        ]
    }

    #[test]
    fn encodes_like_notepack() {
        for (packet, bytes) in cases() {
            let e = MsgpackParser::new().encode(&packet);
            assert_eq!(e.head, Frame::Binary(hex(bytes).into()), "{packet:?}");
            assert!(e.attachments.is_empty());
        }
    }

    #[test]
    fn round_trips() {
        let mut d = MsgpackParser::new().decoder();
        for (packet, _) in cases() {
            let frame = MsgpackParser::new().encode(&packet).head;
            let Frame::Binary(b) = frame else { panic!() };
            assert_eq!(d.decode(Data::Binary(b)).unwrap(), Some(packet));
        }
    }

    #[test]
    fn decodes_what_the_official_client_sends() {
        // socket.emit("hello", 1, ack) of socket.io-client 4.8: `options` added, `nsp` last.
        let p = dec(
            "85 a474797065 02 a464617461 92 a568656c6c6f 01 a76f7074696f6e73 81 a8636f6d7072657373 c3 a26964 00 a36e7370 a12f",
        )
        .unwrap();
        assert_eq!(
            p,
            Packet::Event {
                nsp: "/".into(),
                event: "hello".into(),
                args: vec![Value::from(1u64)],
                id: Some(0),
            }
        );
        // The CONNECT of a client without auth: `data: undefined`.
        assert_eq!(
            dec("83 a474797065 00 a464617461 d40000 a36e7370 a12f").unwrap(),
            Packet::Connect {
                nsp: "/".into(),
                data: None
            }
        );
        // The server's CONNECT: `{sid, pid: undefined}`.
        assert_eq!(
            dec("83 a474797065 00 a464617461 82 a3736964 a161 a3706964 d40000 a36e7370 a12f")
                .unwrap(),
            Packet::Connect {
                nsp: "/".into(),
                data: Some(json(r#"{"sid":"a"}"#))
            }
        );
        // An ArrayBuffer argument (ext 0) and an integral float type.
        assert_eq!(
            dec("83 a474797065 cb4000000000000000 a36e7370 a12f a464617461 92 a162 c70100ff")
                .unwrap(),
            Packet::Event {
                nsp: "/".into(),
                event: "b".into(),
                args: vec![Value::Binary(Bytes::from_static(&[0xff]))],
                id: None,
            }
        );
        // A bare string as CONNECT_ERROR data (older servers).
        assert!(matches!(
            dec("83 a474797065 04 a36e7370 a12f a464617461 a161"),
            Ok(Packet::ConnectError { .. })
        ));
    }

    #[test]
    fn rejects_invalid_packets() {
        use crate::value::msgpack::DecodeError;
        let cases: Vec<(&str, ParseError)> = vec![
            ("", ParseError::Msgpack(DecodeError::Eof)),
            ("c1", ParseError::Msgpack(DecodeError::InvalidMarker(0xc1))),
            (
                "82 a474797065 01 a36e7370",
                ParseError::Msgpack(DecodeError::Eof),
            ),
            (
                "82 a474797065 01 a36e7370 a12f 00",
                ParseError::Msgpack(DecodeError::Trailing(1)),
            ),
            ("93 01 02 03", ParseError::InvalidPayload),
            ("a3616263", ParseError::InvalidPayload),
            ("81 a36e7370 a12f", ParseError::UnknownType),
            ("82 a474797065 05 a36e7370 a12f", ParseError::UnknownType),
            ("82 a474797065 ff a36e7370 a12f", ParseError::UnknownType),
            (
                "82 a474797065 cb3ff8000000000000 a36e7370 a12f",
                ParseError::UnknownType,
            ),
            ("82 a474797065 a132 a36e7370 a12f", ParseError::UnknownType),
            ("81 a474797065 01", ParseError::InvalidNamespace),
            ("82 a474797065 01 a36e7370 01", ParseError::InvalidNamespace),
            ("82 a474797065 01 a36e7370 c0", ParseError::InvalidNamespace),
            // DISCONNECT with data, CONNECT with null or an array.
            (
                "83 a474797065 01 a36e7370 a12f a464617461 90",
                ParseError::InvalidPayload,
            ),
            (
                "83 a474797065 00 a36e7370 a12f a464617461 c0",
                ParseError::InvalidPayload,
            ),
            (
                "83 a474797065 00 a36e7370 a12f a464617461 90",
                ParseError::InvalidPayload,
            ),
            // Events: no data, empty, unnamed, reserved name, not an array.
            ("82 a474797065 02 a36e7370 a12f", ParseError::InvalidPayload),
            (
                "83 a474797065 02 a36e7370 a12f a464617461 90",
                ParseError::InvalidPayload,
            ),
            (
                "83 a474797065 02 a36e7370 a12f a464617461 91 c3",
                ParseError::InvalidPayload,
            ),
            (
                "83 a474797065 02 a36e7370 a12f a464617461 91 a7636f6e6e656374",
                ParseError::InvalidPayload,
            ),
            (
                "83 a474797065 02 a36e7370 a12f a464617461 81 a161 01",
                ParseError::InvalidPayload,
            ),
            // Ack ids: negative, fractional, a string, null; an ack without one.
            (
                "84 a474797065 03 a36e7370 a12f a464617461 90 a26964 ff",
                ParseError::InvalidId,
            ),
            (
                "84 a474797065 03 a36e7370 a12f a464617461 90 a26964 cb3ff8000000000000",
                ParseError::InvalidId,
            ),
            (
                "84 a474797065 03 a36e7370 a12f a464617461 90 a26964 a131",
                ParseError::InvalidId,
            ),
            (
                "84 a474797065 03 a36e7370 a12f a464617461 90 a26964 c0",
                ParseError::InvalidId,
            ),
            (
                "83 a474797065 03 a36e7370 a12f a464617461 90",
                ParseError::InvalidPayload,
            ),
            // CONNECT_ERROR with a number.
            (
                "83 a474797065 04 a36e7370 a12f a464617461 01",
                ParseError::InvalidPayload,
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(dec(bytes), Err(err), "{bytes}");
        }
        let mut d = MsgpackParser::new().decoder();
        assert_eq!(
            d.decode(Data::Text("2[\"a\"]".into())),
            Err(ParseError::ExpectedBinary)
        );
        // Deep nesting is refused, not a stack overflow.
        let mut deep = hex("83 a474797065 02 a36e7370 a12f a464617461 92 a161");
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0xc0);
        assert!(matches!(
            decode(&Bytes::from(deep)),
            Err(ParseError::Msgpack(DecodeError::TooDeep))
        ));
        // A length larger than the input allocates nothing.
        assert_eq!(
            dec("83 a474797065 02 a36e7370 a12f a464617461 dd ffffffff"),
            Err(ParseError::Msgpack(DecodeError::Eof))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let valid = hex("84 a474797065 02 a36e7370 a12f a464617461 92 a3617368 c4020102 a26964 07");
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..20_000 {
            let mut buf = valid.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % buf.len();
                buf[i] = (x >> 8) as u8;
            }
            buf.truncate(x as usize % (buf.len() + 1));
            let _ = decode(&Bytes::from(buf));
        }
    }
}
