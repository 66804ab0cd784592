//! The polling payload of a session, in its protocol's format: v4 records joined by `0x1e`, or v3
//! length-prefixed string or binary payloads, wrapped for JSONP when the client polls that way.

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{
    DecodeError, Frame, Packet, PayloadDecoder, PayloadEncoder, Protocol, decode_payload, v3,
};
use http::Response;
use http::header::{self, HeaderValue};

use crate::engine::Socket;

/// A poll response being filled with queued frames.
pub(crate) enum PollPayload {
    V4(PayloadEncoder),
    V3(v3::PayloadEncoder),
}

/// A finished poll response body.
pub(crate) struct PollBody {
    pub(crate) body: Bytes,
    /// A v3 binary payload (`application/octet-stream`) rather than text.
    pub(crate) binary: bool,
}

impl PollPayload {
    pub(crate) fn new(socket: &Socket, max_len: usize) -> Self {
        let wire = socket.wire();
        match wire.protocol {
            Protocol::V4 => PollPayload::V4(PayloadEncoder::new(max_len)),
            Protocol::V3 => PollPayload::V3(v3::PayloadEncoder::new(max_len, wire.polling_binary)),
        }
    }

    pub(crate) fn fits(&self, frame: &Frame) -> bool {
        match self {
            PollPayload::V4(p) => p.fits(frame),
            PollPayload::V3(p) => p.fits(frame),
        }
    }

    pub(crate) fn push(&mut self, frame: &Frame) -> bool {
        match self {
            PollPayload::V4(p) => p.push(frame),
            PollPayload::V3(p) => p.push(frame),
        }
    }

    pub(crate) fn finish(self, socket: &Socket) -> PollBody {
        let (body, binary) = match self {
            PollPayload::V4(p) => (p.finish(), false),
            PollPayload::V3(p) => {
                let p = p.finish();
                (p.body, p.binary)
            }
        };
        match &socket.wire().jsonp {
            Some(index) if !binary => {
                // Both payload forms without binary are UTF-8 text built from strings.
                let text = std::str::from_utf8(&body).unwrap_or_default();
                PollBody {
                    body: Bytes::from(v3::jsonp_wrap(index, text)),
                    binary: false,
                }
            }
            _ => PollBody { body, binary },
        }
    }
}

/// Sets the content type of a binary payload on a poll response built as text.
pub(crate) fn mark_binary(res: &mut Response<Bytes>, binary: bool) {
    if binary {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
}

/// The answer to a polling handshake: the open packet as the session's payload.
pub(crate) fn first_response(socket: &Socket, open: Frame) -> Response<Bytes> {
    let mut payload = PollPayload::new(socket, usize::MAX);
    payload.push(&open);
    let body = payload.finish(socket);
    let mut res = super::polling::payload_response(body.body);
    mark_binary(&mut res, body.binary);
    res
}

/// The packets of a POST body, in the session's format.
pub(crate) enum PostPackets {
    V4(PayloadDecoder),
    V3String(v3::StringPayloadDecoder),
    V3Binary(v3::BinaryPayloadDecoder),
}

impl Iterator for PostPackets {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            PostPackets::V4(d) => d.next(),
            PostPackets::V3String(d) => d.next(),
            PostPackets::V3Binary(d) => d.next(),
        }
    }
}

/// Starts decoding a POST body: a JSONP form is unwrapped first; a v3 client sends a binary payload as
/// `application/octet-stream`.
pub(crate) fn decode_post(
    socket: &Socket,
    body: Bytes,
    octet_stream: bool,
) -> Result<PostPackets, DecodeError> {
    let wire = socket.wire();
    if wire.jsonp.is_none() {
        return Ok(match wire.protocol {
            Protocol::V4 => PostPackets::V4(decode_payload(body)?),
            Protocol::V3 if octet_stream => PostPackets::V3Binary(v3::decode_binary_payload(body)),
            Protocol::V3 => PostPackets::V3String(v3::decode_string_payload(
                ByteString::try_from(body).map_err(|_| DecodeError::InvalidUtf8)?,
            )),
        });
    }
    let text = v3::jsonp_decode_post(&body)?;
    Ok(match wire.protocol {
        Protocol::V4 => PostPackets::V4(decode_payload(text.into_bytes())?),
        Protocol::V3 => PostPackets::V3String(v3::decode_string_payload(text)),
    })
}
