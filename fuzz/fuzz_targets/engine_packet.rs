//! Engine.IO v4 packets: a websocket text frame (`decode_text`) and a binary frame (`decode_binary`).
//! What decodes must encode back to a frame that decodes to the same packet.
#![no_main]

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{Frame, Packet, decode_binary, decode_text};
use libfuzzer_sys::fuzz_target;

fn reparse(frame: Frame) -> Packet {
    match frame {
        Frame::Text(s) => decode_text(s).expect("an encoded packet decodes"),
        Frame::Binary(b) => decode_binary(b),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(packet) = decode_text(ByteString::from(text))
    {
        assert_eq!(reparse(packet.encode()), packet, "{text:?}");
    }
    let packet = decode_binary(Bytes::copy_from_slice(data));
    assert_eq!(reparse(packet.encode()), packet);
});
