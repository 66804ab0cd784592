//! Engine.IO v3 wire formats as the client session needs them: packets whose binary form carries the
//! type byte (`[4, data…]`, or `b4<base64>` as text), and polling payloads (`<len>:<packet>` strings with
//! lengths in UTF-16 code units, or the binary payload `<0|1><digits><255><packet>`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::packet::{Data, DecodeError, Frame, Packet};

/// Longest length prefix accepted, in digits (more than any sane body, and no overflow).
const MAX_DIGITS: usize = 12;

/// The Engine.IO protocol revision of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// v3 (engine.io 3.x, socket.io 2.x): the client pings, the server answers.
    V3,
    /// v4 (engine.io 4+, socket.io 3+): the server pings, the client answers.
    #[default]
    V4,
}

/// Decodes one v3 text packet: as in v4, except base64 binary, `b<type><base64>`.
pub fn decode_text(text: ByteString) -> Result<Packet, DecodeError> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'b') {
        return match bytes.get(1) {
            Some(b'4') => BASE64
                .decode(&bytes[2..])
                .map(|d| Packet::Message(Data::Binary(Bytes::from(d))))
                .map_err(|_| DecodeError::InvalidBase64),
            Some(&other) => Err(DecodeError::UnknownType(other)),
            None => Err(DecodeError::InvalidBase64),
        };
    }
    super::packet::decode_text(text)
}

/// Decodes one v3 binary packet: the type byte (a message, `4`), then the data.
pub fn decode_binary(bytes: Bytes) -> Result<Packet, DecodeError> {
    match bytes.first() {
        Some(4) => Ok(Packet::Message(Data::Binary(bytes.slice(1..)))),
        Some(&other) => Err(DecodeError::UnknownType(other)),
        None => Err(DecodeError::Empty),
    }
}

/// The websocket binary frame of message data: the type byte, then the data.
pub fn binary_frame(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + data.len());
    out.put_u8(4);
    out.put_slice(data);
    out.freeze()
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// An encoded v3 payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The body.
    pub body: Bytes,
    /// Whether it is a binary payload.
    pub binary: bool,
}

/// Builds a v3 string payload (binary frames as `b4<base64>`), at most `max_len` bytes unless its only
/// frame is larger.
#[derive(Debug)]
pub struct PayloadEncoder {
    out: String,
    max_len: usize,
    count: usize,
}

impl PayloadEncoder {
    /// An empty payload; only string payloads are built here.
    pub fn new(max_len: usize, _supports_binary: bool) -> Self {
        PayloadEncoder {
            out: String::new(),
            max_len,
            count: 0,
        }
    }

    /// Appends `frame` if it fits; returns whether it was appended.
    pub fn push(&mut self, frame: &Frame) -> bool {
        let record = match frame {
            Frame::Text(s) => format!("{}:{}", utf16_len(s), s),
            Frame::Binary(b) => {
                let text = format!("b4{}", BASE64.encode(b));
                format!("{}:{}", text.len(), text)
            }
        };
        if self.count > 0 && self.out.len() + record.len() > self.max_len {
            return false;
        }
        self.out.push_str(&record);
        self.count += 1;
        true
    }

    /// Whether no frame was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded payload.
    pub fn finish(self) -> Payload {
        Payload {
            body: Bytes::from(self.out.into_bytes()),
            binary: false,
        }
    }
}

/// Decodes a v3 string payload into its packets; an error ends it.
pub fn decode_string_payload(
    body: ByteString,
) -> impl Iterator<Item = Result<Packet, DecodeError>> {
    let mut pos = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let rest = &body[pos..];
        if rest.is_empty() {
            done = true;
            return if pos == 0 {
                Some(Err(DecodeError::Empty))
            } else {
                None
            };
        }
        let record = (|| {
            let colon = rest.bytes().take(MAX_DIGITS + 1).position(|b| b == b':')?;
            let units: usize = rest[..colon].parse().ok()?;
            let text = &rest[colon + 1..];
            let (mut counted, mut end) = (0, 0);
            for c in text.chars() {
                if counted >= units {
                    break;
                }
                counted += c.len_utf16();
                end += c.len_utf8();
            }
            (counted == units).then_some((colon + 1, end))
        })();
        let Some((start, len)) = record else {
            done = true;
            return Some(Err(DecodeError::UnknownType(rest.as_bytes()[0])));
        };
        let text = body.slice_ref(&body[pos + start..pos + start + len]);
        pos += start + len;
        let r = decode_text(text);
        done |= r.is_err();
        Some(r)
    })
}

/// Decodes a v3 binary payload into its packets; an error ends it.
pub fn decode_binary_payload(body: Bytes) -> impl Iterator<Item = Result<Packet, DecodeError>> {
    let mut body = body;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || body.is_empty() {
            return None;
        }
        let r = (|| {
            let text = match body[0] {
                0 => true,
                1 => false,
                b => return Err(DecodeError::UnknownType(b)),
            };
            let mut len = 0usize;
            let mut i = 1;
            loop {
                match body.get(i) {
                    Some(255) if i > 1 => break,
                    Some(&d) if d <= 9 && i <= MAX_DIGITS => len = len * 10 + usize::from(d),
                    _ => return Err(DecodeError::Empty),
                }
                i += 1;
            }
            let start = i + 1;
            if body.len() - start < len {
                return Err(DecodeError::Empty);
            }
            let record = body.slice(start..start + len);
            body = body.slice(start + len..);
            if text {
                decode_text(ByteString::try_from(record).map_err(|_| DecodeError::InvalidUtf8)?)
            } else {
                decode_binary(record)
            }
        })();
        done |= r.is_err();
        Some(r)
    })
}
