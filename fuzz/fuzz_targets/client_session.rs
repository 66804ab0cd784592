//! The client after its handshake: an open session (polling with a websocket upgrade offered) fed
//! what a server sends, in any order: polling payloads, websocket text and binary messages, packets on
//! the upgrade probe, timeouts, writes and transport ends, with the session's outputs drained after
//! each step. Each Socket.IO message it hands up goes through the client's packet decoders (JSON with
//! binary reassembly, and msgpack), and CONNECT answers through the CONNECT payload readers
//! (`ConnectAck`, `ConnectError`, and `ConnectRequest`, the server's reader of the same payload). Once closed, the session stays closed.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::client::{Event, Output};
use ferrio_proto::engine::{ClientConfig, ClientSession, Data, Frame, decode_text};
use ferrio_proto::socket::{
    ConnectAck, ConnectError, ConnectRequest, Decoder, MsgpackParser, Packet, PacketDecoder, Parser,
};
use libfuzzer_sys::fuzz_target;

const OPEN: &str = r#"0{"sid":"s","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#;

fn socket_io(json: &mut Decoder, msgpack: &mut dyn PacketDecoder, data: Data) {
    let packet = match &data {
        Data::Text(t) => json.decode_text(t),
        Data::Binary(b) => json.decode_binary(b.clone()),
    };
    match packet {
        Ok(Some(Packet::Connect { data, .. })) => {
            let _ = ConnectAck::parse(&data);
            let _ = ConnectRequest::parse(data);
        }
        Ok(Some(Packet::ConnectError { data, .. })) => {
            let _ = ConnectError::from_value(data);
        }
        Ok(_) => {}
        Err(_) => json.reset(),
    }
    let _ = msgpack.decode(data);
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let Ok(mut session) =
        ClientSession::from_payload(now, ClientConfig::default(), Bytes::from_static(OPEN.as_bytes()))
    else {
        panic!("the fixed open packet must be accepted");
    };
    let mut json = Decoder::new(10);
    let mut msgpack = MsgpackParser::new().decoder();
    let mut closed = false;
    for segment in data.split(|&b| b == 0xff) {
        let Some((&op, rest)) = segment.split_first() else {
            continue;
        };
        let bytes = Bytes::copy_from_slice(rest);
        let text = std::str::from_utf8(rest).ok().map(ByteString::from);
        match op % 9 {
            0 => session.on_poll(now, Ok(bytes)),
            1 => {
                if let Some(t) = text {
                    session.on_text(now, t)
                }
            }
            2 => session.on_binary(now, bytes),
            3 => {
                if let Some(t) = text
                    && let Ok(packet) = decode_text(t)
                {
                    session.on_probe_packet(now, packet);
                }
            }
            4 => session.on_probe_open(now),
            5 => {
                now += Duration::from_millis(u64::from(rest.first().copied().unwrap_or(0)) * 10);
                session.handle_timeout(now);
            }
            6 => session.on_post(now, Ok(())),
            7 => session.on_write(now, Ok(())),
            _ => {
                // What the application sends is a message frame built by the client, never raw text
                // (`Frame::packet_type` reads the first byte of a text frame as the packet type).
                if let Some(t) = text {
                    session.send(Frame::message(&t));
                }
            }
        }
        while let Some(out) = session.poll_output() {
            if let Output::Event(Event::Message(d)) = out {
                socket_io(&mut json, msgpack.as_mut(), d);
            }
        }
        let _ = session.poll_timeout();
        if closed {
            assert!(session.is_closed(), "a closed session opened again");
        }
        closed = session.is_closed();
    }
});
