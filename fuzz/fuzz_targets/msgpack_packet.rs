//! Socket.IO packets through the msgpack parser (socket.io-msgpack-parser 3.x: one binary message a
//! packet, binary data inline), as the server and the client decode them. A packet that decodes must
//! encode to bytes that decode to a packet encoding to the same bytes (compared as bytes, not as
//! values, so that a NaN in the data does not count as a difference). A text message is refused.
#![no_main]

use bytes::Bytes;
use ferrio_proto::engine::Data;
use ferrio_proto::socket::{MsgpackParser, Parser, msgpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(packet) = msgpack::decode(&bytes) {
        let encoded = msgpack::encode(&packet);
        let again = msgpack::decode(&Bytes::from(encoded.clone()))
            .unwrap_or_else(|e| panic!("{packet:?} encoded to bytes that fail: {e}"));
        assert_eq!(msgpack::encode(&again), encoded, "{packet:?}");
    }
    // Through the connection's decoder too, as a binary and as a text message.
    let mut decoder = MsgpackParser::new().decoder();
    let _ = decoder.decode(Data::Binary(bytes));
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(decoder.decode(Data::Text(text.into())).is_err());
    }
    // The notepack codec of values underneath (also what the Redis adapter reads).
    let _ = ferrio_proto::value::msgpack::decode(data);
});
