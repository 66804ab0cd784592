//! What arrives on the Redis adapter's channels, from any process with access to Redis: the MessagePack
//! decoder, and the classic adapter's broadcast, request and response decoders and the sharded adapter's
//! message decoder over the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrio_redis::msgpack::decode(data);
    ferrio_redis::fuzzing::decode_all(data);
});
