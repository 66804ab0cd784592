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

/// Runs one Redis Streams entry through the streams adapter's decoders as a node reading the stream
/// does: `pairs` are the entry's `[field, value, …]` (unknown fields ignored), turned into the
/// `{type, data, uid, nsp}` object (JSON data, or base64 MessagePack), then the cluster decoder as a
/// message and as a response. Returns whether the entry decoded.
pub fn decode_stream_entry(pairs: Vec<(String, String)>) -> bool {
    let counters = Counters::default();
    let fields = crate::streams::entry::Fields::from_pairs(pairs);
    let Ok(value) = fields.to_value() else {
        return false;
    };
    let as_message = crate::cluster::wire::decode_value(value.clone(), NSP, false, &counters);
    let as_response = crate::cluster::wire::decode_value(value, NSP, true, &counters);
    as_message.is_ok() || as_response.is_ok()
}

/// What else of the streams adapter comes from outside: a stored session (`sio:session:<pid>`, base64
/// MessagePack, written by any node) and a recovery offset (an entry id, sent by a client in its
/// CONNECT). Returns how many decoded.
pub fn decode_stream_session_and_offset(raw: &str) -> usize {
    usize::from(crate::streams::session::decode(raw).is_some())
        + usize::from(crate::streams::session::parse_id(raw).is_some())
}
