//! The client's side of the Engine.IO handshake: the answer to the first polling GET (open packet and
//! whatever packets follow it) and the first websocket text message, then the session's first output.
#![no_main]

use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{ClientConfig, ClientSession};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    if let Ok(mut session) =
        ClientSession::from_payload(now, ClientConfig::default(), Bytes::copy_from_slice(data))
    {
        while session.poll_output().is_some() {}
        let _ = session.poll_timeout();
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(mut session) =
            ClientSession::from_text(now, ClientConfig::default(), ByteString::from(text))
    {
        while session.poll_output().is_some() {}
    }
});
