//! Socket.IO v5 packets through the default JSON decoder, binary reassembly included: the input is a
//! sequence of Engine.IO messages (split on 0xff, which UTF-8 never contains; a segment whose first
//! byte is even is text, otherwise binary), fed to one connection's decoder as the server feeds it. A
//! rejected message resets the decoder (the server closes the connection). Every packet decoded must
//! encode back to frames that decode to the same packet, and an event read without its packet
//! (`Decoder::plain_event`) must be the packet the decoder makes of the same text.
#![no_main]

use bytes::Bytes;
use ferrio_proto::engine::Frame;
use ferrio_proto::socket::{Decoder, Packet, encode};
use libfuzzer_sys::fuzz_target;

/// Most attachments per packet: the server's default.
const MAX_ATTACHMENTS: usize = 10;

fn roundtrip(packet: &Packet) {
    let mut decoder = Decoder::new(usize::MAX);
    let mut out = None;
    for frame in encode(packet).frames() {
        assert!(out.is_none(), "a packet decoded before its last frame");
        out = match frame {
            // The head frame starts with the Engine.IO message type.
            Frame::Text(t) => decoder.decode_text(&t[1..]),
            Frame::Binary(b) => decoder.decode_binary(b),
        }
        .unwrap_or_else(|e| panic!("{packet:?} encoded to a frame that fails: {e}"));
    }
    assert_eq!(out.as_ref(), Some(packet));
}

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(MAX_ATTACHMENTS);
    for segment in data.split(|&b| b == 0xff) {
        let result = match segment.first() {
            Some(b) if b % 2 == 0 => match std::str::from_utf8(&segment[1..]) {
                Ok(text) => {
                    // An event read without its packet is the packet the decoder makes of it.
                    let plain = decoder.plain_event(text).map(Packet::from);
                    let result = decoder.decode_text(text);
                    if let Some(plain) = plain {
                        assert_eq!(result.as_ref().ok(), Some(&Some(plain)), "{text:?}");
                    }
                    result
                }
                Err(_) => continue,
            },
            Some(_) => decoder.decode_binary(Bytes::copy_from_slice(&segment[1..])),
            None => continue,
        };
        match result {
            Ok(Some(packet)) => roundtrip(&packet),
            Ok(None) => {}
            Err(_) => decoder.reset(),
        }
    }
});
