//! How one session's packets look on the wire: Engine.IO v4, or v3 with its encoding choices (binary or
//! base64, JSONP). The transports ask the session; the rules themselves are in `ferrio_proto::engine`.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{DecodeError, Frame, Packet, Protocol, v3};

/// A session's wire format, fixed at its handshake (the websocket's `b64` when it takes over).
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) protocol: Protocol,
    /// v3 polling: the client reads binary payloads (its handshake had no `b64`).
    pub(crate) polling_binary: bool,
    /// JSONP polling: the index of the client's callback (`j`).
    pub(crate) jsonp: Option<Box<str>>,
    /// v3 websocket: the client asked for base64 text instead of binary frames (`b64` on the websocket).
    websocket_b64: AtomicBool,
}

/// Whether a `b64` query value asks for base64: engine.io tests the value's truthiness, so `b64=` does
/// not, and any non-empty value (even `0`) does.
pub(crate) fn wants_base64(b64: Option<&str>) -> bool {
    b64.is_some_and(|v| !v.is_empty())
}

impl Wire {
    pub(crate) fn new(
        protocol: Protocol,
        b64: bool,
        jsonp: Option<Box<str>>,
        websocket_b64: bool,
    ) -> Self {
        Wire {
            protocol,
            // JSONP answers are JavaScript strings: never a binary payload.
            polling_binary: !b64 && jsonp.is_none(),
            jsonp,
            websocket_b64: AtomicBool::new(websocket_b64),
        }
    }

    /// A v4 session (the default wire).
    #[cfg(test)]
    pub(crate) fn v4() -> Self {
        Wire::new(Protocol::V4, false, None, false)
    }

    pub(crate) fn set_websocket_b64(&self, b64: bool) {
        self.websocket_b64.store(b64, Ordering::Relaxed);
    }

    /// Decodes a websocket text frame.
    pub(crate) fn decode_text(&self, text: ByteString) -> Result<Packet, DecodeError> {
        match self.protocol {
            Protocol::V4 => ferrio_proto::engine::decode_text(text),
            Protocol::V3 => v3::decode_text(text),
        }
    }

    /// Decodes a websocket binary frame.
    pub(crate) fn decode_binary(&self, bytes: Bytes) -> Result<Packet, DecodeError> {
        match self.protocol {
            Protocol::V4 => Ok(ferrio_proto::engine::decode_binary(bytes)),
            Protocol::V3 => v3::decode_binary(bytes),
        }
    }

    /// A queued frame as the websocket writes it: v3 binary data carries its type byte (or goes as
    /// base64 text). Only binary frames of v3 sessions change; every other frame is shared as queued.
    pub(crate) fn websocket_frame(&self, frame: Frame) -> Frame {
        match (self.protocol, frame) {
            (Protocol::V3, Frame::Binary(b)) => {
                if self.websocket_b64.load(Ordering::Relaxed) {
                    Frame::Text(v3::base64_text(&b))
                } else {
                    Frame::Binary(v3::binary_frame(&b))
                }
            }
            (_, f) => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_binary_frames_on_websocket() {
        let w = Wire::new(Protocol::V3, false, None, false);
        assert_eq!(
            w.websocket_frame(Frame::binary(vec![1u8, 2])),
            Frame::Binary(Bytes::from_static(&[4, 1, 2]))
        );
        assert_eq!(w.websocket_frame(Frame::message("a")), Frame::message("a"));
        w.set_websocket_b64(true);
        assert_eq!(
            w.websocket_frame(Frame::binary(vec![1u8, 2])),
            Frame::Text("b4AQI=".into())
        );
        let v4 = Wire::v4();
        assert_eq!(
            v4.websocket_frame(Frame::binary(vec![1u8])),
            Frame::binary(vec![1u8])
        );
        assert!(
            Wire::new(Protocol::V3, false, Some("0".into()), false)
                .jsonp
                .is_some()
        );
        assert!(!Wire::new(Protocol::V3, false, Some("0".into()), false).polling_binary);
        assert!(wants_base64(Some("1")) && wants_base64(Some("0")));
        assert!(!wants_base64(Some("")) && !wants_base64(None));
    }
}
