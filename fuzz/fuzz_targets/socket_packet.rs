//! Socket.IO v5 packets through the default JSON decoder, binary reassembly included: the input is a
//! sequence of Engine.IO messages (split on 0xff, which UTF-8 never contains; a segment whose first
//! byte is even is text, otherwise binary), fed to one connection's decoder as the server feeds it. A
//! rejected message resets the decoder (the server closes the connection). Every packet decoded must
//! encode back to frames that decode to the same packet, and an event read without its packet
//! (`Decoder::plain_event`) must be the packet the decoder makes of the same text, its arguments read
//! straight from the text into a type (`Event::parse`) what their values give.
#![no_main]

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::Frame;
use ferrio_proto::socket::{AckWriter, Decoder, EmitError, Event, Packet, encode};
use ferrio_proto::value::{Value, from_args};
use libfuzzer_sys::fuzz_target;

/// Where the acks of the events read here would go: nowhere.
#[derive(Clone)]
struct NoAcks;

impl AckWriter for NoAcks {
    fn write_ack(&self, _: u64, _: Vec<Value>) -> Result<(), EmitError> {
        Ok(())
    }
}

/// A listener's types read from the text of the event `text` holds give what they give from its
/// arguments' values.
fn parse_agrees(text: &str) {
    let text = ByteString::from(text);
    let Some(plain) = Decoder::new(MAX_ATTACHMENTS).plain_event(&text) else {
        panic!("{text:?} is an event to one decoder and not to another");
    };
    let args = plain.args();
    let check = |ev: Event<NoAcks>| {
        assert_eq!(ev.name(), plain.name);
        assert_eq!(
            ev.parse::<serde_json::Value>().ok(),
            from_args::<serde_json::Value>(args.clone()).ok()
        );
        assert_eq!(
            ev.parse::<(Option<String>, Value, Vec<u64>)>().ok(),
            from_args(args.clone()).ok()
        );
        assert_eq!(
            ev.parse::<std::collections::HashMap<String, i64>>().ok(),
            from_args(args.clone()).ok()
        );
        assert_eq!(ev.args(), args.as_slice());
    };
    check(Event::from_plain(&NoAcks, &plain, &text));
}

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
                    let plain = decoder.plain_event(text).map(|p| {
                        parse_agrees(text);
                        Packet::from(p)
                    });
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
