//! What the Redis Streams adapter reads from Redis, written by any process with access to it: stream
//! entries (`[field, value, …]`, turned into the `{type, data, uid, nsp}` message with JSON or base64
//! MessagePack data, then decoded as a message and as a response), stored sessions (base64 MessagePack)
//! and recovery offsets (entry ids a client sends in its CONNECT). The input is split on 0xff into
//! fields and values (invalid UTF-8 replaced, as the driver reads replies as text); the whole input is
//! also tried as a session and as an offset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = data
        .split(|&b| b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let pairs: Vec<(String, String)> = parts
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    ferrio_redis::fuzzing::decode_stream_entry(pairs);
    ferrio_redis::fuzzing::decode_stream_session_and_offset(&String::from_utf8_lossy(data));
});
