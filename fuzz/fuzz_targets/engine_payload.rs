//! Engine.IO v4 polling payloads (records joined by 0x1e; binary records as `b` + base64), as a POST body
//! reaches the server and a GET answer reaches the client. A payload whose every record decodes must
//! encode back to one that decodes to the same packets.
#![no_main]

use bytes::Bytes;
use ferrio_proto::engine::{PayloadEncoder, decode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = decode_payload(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(packets) = records.collect::<Result<Vec<_>, _>>() else {
        return;
    };
    let mut encoder = PayloadEncoder::new(usize::MAX);
    for p in &packets {
        assert!(encoder.push(&p.encode()));
    }
    let again: Vec<_> = decode_payload(encoder.finish())
        .expect("an encoded payload decodes")
        .collect::<Result<_, _>>()
        .expect("every encoded record decodes");
    assert_eq!(again, packets);
});
