//! Engine.IO v3 decoders (`ferrio_proto::engine::v3`), as a POST body, a websocket frame or a JSONP form
//! reaches the server. The first byte picks the decoder:
//! - 0: a string payload (`<length in UTF-16 units>:<packet>`); what decodes re-encodes to a payload that
//!   decodes to the same packets;
//! - 1: a binary payload (`<0|1><digits><255><packet>`); same round trip;
//! - 2: a JSONP form body (`d=…`, with the client's newline escaping), then its string payload; the
//!   JSONP answer built from any text stays one JavaScript string literal;
//! - otherwise: one websocket text frame and one binary frame.
#![no_main]

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{Frame, Packet, v3};
use libfuzzer_sys::fuzz_target;

fn string_round_trip(body: ByteString) {
    let Ok(packets) = v3::decode_string_payload(body).collect::<Result<Vec<Packet>, _>>() else {
        return;
    };
    let frames: Vec<Frame> = packets.iter().map(Packet::encode).collect();
    let again: Vec<Packet> = v3::decode_string_payload(ByteString::from(v3::encode_string_payload(&frames)))
        .collect::<Result<_, _>>()
        .expect("an encoded string payload decodes");
    assert_eq!(again, packets);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                string_round_trip(ByteString::from(text));
            }
        }
        1 => {
            let Ok(packets) = v3::decode_binary_payload(Bytes::copy_from_slice(rest))
                .collect::<Result<Vec<Packet>, _>>()
            else {
                return;
            };
            let frames: Vec<Frame> = packets.iter().map(Packet::encode).collect();
            let again: Vec<Packet> = v3::decode_binary_payload(v3::encode_binary_payload(&frames))
                .collect::<Result<_, _>>()
                .expect("an encoded binary payload decodes");
            assert_eq!(again, packets);
        }
        2 => {
            if let Ok(text) = v3::jsonp_decode_post(rest) {
                string_round_trip(text);
            }
            if let Ok(text) = std::str::from_utf8(rest) {
                let js = v3::jsonp_wrap("0", text);
                let literal = &js["___eio[0](\"".len()..js.len() - "\");".len()];
                assert!(!literal.contains(['\n', '\r', '\u{2028}', '\u{2029}']));
                // Every quote inside is escaped: the literal cannot end early.
                let mut escaped = false;
                for c in literal.chars() {
                    assert!(escaped || c != '"', "unescaped quote in {js:?}");
                    escaped = !escaped && c == '\\';
                }
            }
        }
        _ => {
            let _ = v3::decode_binary(Bytes::copy_from_slice(rest));
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(Packet::Message(ferrio_proto::engine::Data::Binary(b))) =
                    v3::decode_text(ByteString::from(text))
                {
                    let back = v3::decode_text(v3::base64_text(&b)).expect("base64 form decodes");
                    assert_eq!(back, Packet::Message(ferrio_proto::engine::Data::Binary(b)));
                }
            }
        }
    }
});
