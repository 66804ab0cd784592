//! The codec's work for N echoes of a 10 KB JSON message, for instruction counts under callgrind
//! (`bench/deflate.md`): the client encodes (masked), the server decodes, encodes the echo, the client
//! decodes it. `ws_echo_cost build|plain|deflate|deflate-cold N` (`build` only builds the N messages: the
//! baseline to subtract): `deflate` keeps the compression contexts
//! (each message after the first refers back to the previous one, as a repeated message would);
//! `deflate-cold` gives each echo fresh contexts on both sides (the cost of a message unlike the last).

use ferrio_proto::ws::{Decoder, DeflateConfig, Encoder, Message, Role, accept_answer, negotiate};

fn json_10k(i: usize) -> String {
    let items: Vec<String> = (0..240)
        .map(|j| {
            format!(
                "{{\"id\":{},\"name\":\"user {j}\",\"online\":{}}}",
                i * 1000 + j,
                j % 3 == 0
            )
        })
        .collect();
    format!("42[\"update\",{{\"items\":[{}]}}]", items.join(","))
}

fn mask() -> [u8; 4] {
    [0x12, 0x34, 0x56, 0x78]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "deflate".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let config = DeflateConfig::default();
    let params = (mode != "plain").then(|| {
        let (server, answer) =
            negotiate(["permessage-deflate; client_max_window_bits"], &config).unwrap();
        let client = accept_answer([answer.as_str()], &config).unwrap().unwrap();
        (server, client)
    });
    let fresh = || {
        (
            Encoder::client(mask, params.as_ref().map(|(_, c)| (c, &config))),
            Decoder::new(Role::Server, 1 << 20, params.as_ref().map(|(s, _)| s)),
            Encoder::server(params.as_ref().map(|(s, _)| (s, &config))),
            Decoder::new(Role::Client, 1 << 20, params.as_ref().map(|(_, c)| c)),
        )
    };
    let messages: Vec<String> = (0..n).map(json_10k).collect();
    if mode == "build" {
        // Only the messages: the baseline the other modes' counts are taken against.
        println!("{}", messages.iter().map(String::len).sum::<usize>());
        return;
    }
    let (mut ce, mut sd, mut se, mut cd) = fresh();
    let mut wire_bytes = 0;
    let mut buf = Vec::new();
    for m in &messages {
        if mode == "deflate-cold" {
            (ce, sd, se, cd) = fresh();
        }
        buf.clear();
        ce.text(m, true, &mut buf).unwrap();
        wire_bytes += buf.len();
        sd.feed(&buf);
        let Some(Message::Text(t)) = sd.next_message().unwrap() else {
            panic!()
        };
        buf.clear();
        se.text(&t, true, &mut buf).unwrap();
        wire_bytes += buf.len();
        cd.feed(&buf);
        let Some(Message::Text(back)) = cd.next_message().unwrap() else {
            panic!()
        };
        assert_eq!(back.len(), m.len());
    }
    println!(
        "{mode}: {n} echoes of {} bytes, {} bytes on the wire per echo (both ways)",
        messages[0].len(),
        wire_bytes / n
    );
}
