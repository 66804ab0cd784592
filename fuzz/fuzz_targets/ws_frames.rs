//! Websocket frames (ferrio-proto's sans-IO codec): any bytes, fed in any chunking, as a server or a
//! client, with or without permessage-deflate, decode to messages or to an error with a close code;
//! never a panic, never more than the size limit held. What decodes encodes back to frames that decode
//! to the same messages. The first bytes choose the setting; the rest is the stream (or, with the low
//! bit of the second byte, a `Sec-WebSocket-Extensions` value for the negotiation).
#![no_main]

use ferrio_proto::ws::{
    self, DeflateConfig, Decoder, Encoder, Message, Role, negotiate,
};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fn mask() -> [u8; 4] {
    [1, 2, 3, 4]
}

fuzz_target!(|data: &[u8]| {
    let [setting, chunk, rest @ ..] = data else {
        return;
    };
    let config = DeflateConfig {
        threshold: 0,
        ..Default::default()
    };
    if chunk & 1 == 1 {
        if let Ok(h) = std::str::from_utf8(rest)
            && let Some((params, answer)) = negotiate([h], &config)
        {
            // The server's answer is one the client side accepts, with the same parameters for the
            // server's half.
            let client = ws::accept_answer([answer.as_str()], &DeflateConfig::default())
                .expect("the server's answer is valid")
                .expect("an answer");
            assert_eq!(client.server_no_context_takeover, params.server_no_context_takeover);
            assert_eq!(client.server_max_window_bits, params.server_max_window_bits);
        }
        return;
    }
    let role = if setting & 1 == 0 { Role::Server } else { Role::Client };
    let params = (setting & 2 != 0).then(|| {
        negotiate(["permessage-deflate"], &config)
            .expect("the default offer is accepted")
            .0
    });
    let mut decoder = Decoder::new(role, LIMIT, params.as_ref());
    let step = usize::from(*chunk >> 1).max(1);
    let mut messages = Vec::new();
    'feed: for piece in rest.chunks(step) {
        decoder.feed(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => {
                    if let Message::Text(t) | Message::Close(Some(ws::CloseFrame { reason: t, .. })) = &m {
                        assert!(t.len() <= LIMIT);
                    }
                    messages.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009), "{e}");
                    break 'feed;
                }
            }
        }
        assert!(decoder.buffered() <= LIMIT + 14 + step);
    }
    // Round trip: the peer's encoder makes frames this decoder takes back.
    let mut encoder = match role {
        Role::Server => Encoder::client(mask, params.as_ref().map(|p| (p, &config))),
        Role::Client => Encoder::server(params.as_ref().map(|p| (p, &config))),
    };
    let mut again = Decoder::new(role, LIMIT, params.as_ref());
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for m in messages {
        match &m {
            Message::Text(t) => encoder.text(t, setting & 4 != 0, &mut out).unwrap(),
            Message::Binary(b) => encoder.binary(b, setting & 4 != 0, &mut out).unwrap(),
            Message::Ping(p) => encoder.ping(p, &mut out),
            Message::Pong(p) => encoder.pong(p, &mut out),
            // Nothing decodes after a close.
            Message::Close(_) => break,
        }
        expected.push(m);
    }
    again.feed(&out);
    for m in expected {
        assert_eq!(again.next_message().unwrap(), Some(m));
    }
    assert_eq!(again.next_message().unwrap(), None);
});
