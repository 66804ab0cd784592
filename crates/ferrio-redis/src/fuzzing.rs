//! Entry points for the fuzz targets (`fuzz/`): every decoder of what arrives on the adapter's Redis
//! channels, from bytes any process with access to Redis may publish. Not a public API.

use crate::link::Counters;

/// Namespace the decoders are asked about.
const NSP: &str = "/";

/// Runs `payload` through every decoder: the classic adapter's broadcast, request and response, and the
/// sharded adapter's message on a common and on a response channel. Returns how many accepted it.
pub fn decode_all(payload: &[u8]) -> usize {
    let counters = Counters::default();
    [
        crate::classic::codec::decode_broadcast(payload, NSP).is_ok(),
        crate::classic::codec::decode_request(payload).is_ok(),
        crate::classic::codec::decode_response(payload, &counters).is_ok(),
        crate::cluster::wire::decode(payload, NSP, false, &counters).is_ok(),
        crate::cluster::wire::decode(payload, NSP, true, &counters).is_ok(),
    ]
    .into_iter()
    .filter(|ok| *ok)
    .count()
}
