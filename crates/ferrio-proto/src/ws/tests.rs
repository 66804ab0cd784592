use super::frame::write_header;
use super::*;

fn mask() -> [u8; 4] {
    [0x37, 0xfa, 0x21, 0x3d]
}

/// A frame as a client sends it (masked).
fn client_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(&mut out, fin, rsv, opcode, Some(mask()), payload.len());
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], mask(), 0);
    out
}

fn server() -> Decoder {
    Decoder::new(Role::Server, 1000, None)
}

fn params() -> DeflateParams {
    negotiate(["permessage-deflate"], &DeflateConfig::default())
        .unwrap()
        .0
}

fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, Error> {
    d.feed(bytes);
    let mut v = Vec::new();
    while let Some(m) = d.next_message()? {
        v.push(m);
    }
    Ok(v)
}

#[test]
fn rfc_unmasked_and_masked_hello() {
    let mut c = Decoder::new(Role::Client, 100, None);
    assert_eq!(
        decode_all(&mut c, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap(),
        [Message::Text("Hello".into())]
    );
    let mut s = server();
    assert_eq!(
        decode_all(
            &mut s,
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        )
        .unwrap(),
        [Message::Text("Hello".into())]
    );
}

#[test]
fn rfc_fragmented_and_ping() {
    // RFC 6455 section 5.7: "Hel" + "lo", with a ping between the fragments.
    let mut c = Decoder::new(Role::Client, 100, None);
    let mut b = vec![0x01, 0x03, 0x48, 0x65, 0x6c];
    b.extend_from_slice(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    b.extend_from_slice(&[0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(
        decode_all(&mut c, &b).unwrap(),
        [
            Message::Ping(Bytes::from_static(b"Hello")),
            Message::Text("Hello".into())
        ]
    );
}

#[test]
fn rfc_compressed_hello_frame() {
    // RFC 7692 section 7.2.3.1, the whole frame.
    let mut c = Decoder::new(Role::Client, 100, Some(&params()));
    assert_eq!(
        decode_all(
            &mut c,
            &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        )
        .unwrap(),
        [Message::Text("Hello".into())]
    );
    let mut e = Encoder::server(Some((
        &params(),
        &DeflateConfig {
            threshold: 0,
            ..Default::default()
        },
    )));
    let mut out = Vec::new();
    e.text("Hello", true, &mut out).unwrap();
    assert_eq!(out, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
}

#[test]
fn byte_by_byte_feeding() {
    let mut bytes = client_frame(false, 0, OP_BINARY, &[1; 300]);
    bytes.extend(client_frame(true, 0, OP_CONTINUATION, &[2; 70_000]));
    let mut s = Decoder::new(Role::Server, 100_000, None);
    let mut got = Vec::new();
    for b in &bytes {
        got.extend(decode_all(&mut s, &[*b]).unwrap());
    }
    let mut want = vec![1u8; 300];
    want.extend([2; 70_000]);
    assert_eq!(got, [Message::Binary(want.into())]);
    assert!(!s.holds_memory(), "nothing is held once the message is out");
}

fn code_of(bytes: &[u8]) -> u16 {
    let mut s = Decoder::new(Role::Server, 1000, Some(&params()));
    decode_all(&mut s, bytes).unwrap_err().close_code()
}

#[test]
fn protocol_errors_close_1002() {
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("rsv2", client_frame(true, 0x2, OP_TEXT, b"a")),
        ("rsv3", client_frame(true, 0x1, OP_TEXT, b"a")),
        ("rsv1 on a ping", client_frame(true, RSV1, OP_PING, b"a")),
        ("reserved opcode 3", client_frame(true, 0, 3, b"")),
        ("reserved opcode 0xb", client_frame(true, 0, 0xb, b"")),
        ("fragmented ping", client_frame(false, 0, OP_PING, b"")),
        ("long ping", client_frame(true, 0, OP_PING, &[0; 126])),
        (
            "orphan continuation",
            client_frame(true, 0, OP_CONTINUATION, b"a"),
        ),
        ("one-byte close", client_frame(true, 0, OP_CLOSE, b"\x03")),
        (
            "close 1005",
            client_frame(true, 0, OP_CLOSE, &1005u16.to_be_bytes()),
        ),
        (
            "close 999",
            client_frame(true, 0, OP_CLOSE, &999u16.to_be_bytes()),
        ),
        (
            "close 5000",
            client_frame(true, 0, OP_CLOSE, &5000u16.to_be_bytes()),
        ),
        ("unmasked", vec![0x81, 0x01, b'a']),
        (
            "2^63 length",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
        ),
    ];
    let mut nested = client_frame(false, 0, OP_TEXT, b"a");
    nested.extend(client_frame(true, 0, OP_TEXT, b"b"));
    cases.push(("message inside a message", nested));
    let mut rsv_cont = client_frame(false, RSV1, OP_TEXT, b"");
    rsv_cont.extend(client_frame(true, RSV1, OP_CONTINUATION, b""));
    cases.push(("rsv1 on a continuation", rsv_cont));
    for (name, bytes) in cases {
        assert_eq!(code_of(&bytes), CLOSE_PROTOCOL, "{name}");
    }
    // Without the extension, RSV1 is reserved too.
    let mut s = server();
    assert_eq!(
        decode_all(&mut s, &client_frame(true, RSV1, OP_TEXT, b"a"))
            .unwrap_err()
            .close_code(),
        CLOSE_PROTOCOL
    );
    // A client rejects masked frames.
    let mut c = Decoder::new(Role::Client, 100, None);
    assert!(decode_all(&mut c, &client_frame(true, 0, OP_TEXT, b"a")).is_err());
}

#[test]
fn invalid_utf8_closes_1007_at_the_bad_fragment() {
    assert_eq!(
        code_of(&client_frame(true, 0, OP_TEXT, b"\xff")),
        CLOSE_INVALID
    );
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.push(0xff);
    assert_eq!(
        code_of(&client_frame(true, 0, OP_CLOSE, &close)),
        CLOSE_INVALID
    );
    // The first fragment already cannot be completed into valid text: fail before the rest arrives.
    let mut s = server();
    assert_eq!(
        decode_all(
            &mut s,
            &client_frame(
                false,
                0,
                OP_TEXT,
                b"ok\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"
            )
        )
        .unwrap_err(),
        Error::InvalidUtf8
    );
    // A code point split across fragments is fine.
    let mut s = server();
    let mut b = client_frame(false, 0, OP_TEXT, b"\xce");
    b.extend(client_frame(true, 0, OP_CONTINUATION, b"\xba"));
    assert_eq!(decode_all(&mut s, &b).unwrap(), [Message::Text("κ".into())]);
    // ... but not one that never ends.
    let mut s = server();
    let mut b = client_frame(false, 0, OP_TEXT, b"\xce");
    b.extend(client_frame(true, 0, OP_CONTINUATION, b""));
    assert_eq!(decode_all(&mut s, &b).unwrap_err(), Error::InvalidUtf8);
    // Compressed invalid text, and garbage deflate data.
    let mut d = Deflater::new(15, false, 6, 0);
    let mut z = Vec::new();
    d.compress(b"abc\xff", &mut z).unwrap();
    assert_eq!(
        code_of(&client_frame(true, RSV1, OP_TEXT, &z)),
        CLOSE_INVALID
    );
    assert_eq!(
        code_of(&client_frame(true, RSV1, OP_BINARY, &[0xff, 0xff, 0xff])),
        CLOSE_INVALID
    );
}

#[test]
fn too_big_closes_1009_before_buffering() {
    let mut s = server();
    // Only the header: the length alone decides.
    let mut h = Vec::new();
    write_header(&mut h, true, 0, OP_BINARY, Some(mask()), 1001);
    assert_eq!(decode_all(&mut s, &h).unwrap_err(), Error::TooBig);
    let mut s = server();
    let mut b = client_frame(false, 0, OP_BINARY, &[0; 600]);
    b.extend(client_frame(true, 0, OP_CONTINUATION, &[0; 401]));
    assert_eq!(decode_all(&mut s, &b).unwrap_err(), Error::TooBig);
    // A compressed bomb: 1 MB of zeros in a few hundred bytes, limit 1000.
    let mut d = Deflater::new(15, false, 9, 0);
    let mut z = Vec::new();
    d.compress(&vec![0; 1_000_000], &mut z).unwrap();
    assert_eq!(
        code_of(&client_frame(true, RSV1, OP_BINARY, &z)),
        CLOSE_TOO_BIG
    );
}

#[test]
fn empty_fragment_flood_ends() {
    let mut s = Decoder::new(Role::Server, 1_000_000, None);
    s.feed(&client_frame(false, 0, OP_BINARY, b""));
    let empty = client_frame(false, 0, OP_CONTINUATION, b"");
    let mut err = None;
    for _ in 0..100_000 {
        s.feed(&empty);
        match s.next_message() {
            Ok(None) => {}
            Ok(Some(m)) => panic!("{m:?}"),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(err, Some(Error::TooBig));
}

#[test]
fn close_frames() {
    let mut s = server();
    let mut p = 1001u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    let mut b = client_frame(true, 0, OP_CLOSE, &p);
    b.extend(client_frame(true, 0, OP_TEXT, b"after the close"));
    assert_eq!(
        decode_all(&mut s, &b).unwrap(),
        [Message::Close(Some(CloseFrame {
            code: 1001,
            reason: "bye".into()
        }))]
    );
    let mut s = server();
    assert_eq!(
        decode_all(&mut s, &client_frame(true, 0, OP_CLOSE, b"")).unwrap(),
        [Message::Close(None)]
    );
    for code in [1000, 1003, 1007, 1011, 1014, 3000, 4999] {
        assert!(is_valid_close_code(code));
    }
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
        assert!(!is_valid_close_code(code));
    }
    let e = Encoder::server(None);
    let mut out = Vec::new();
    e.close(Some(1000), &"é".repeat(100), &mut out);
    assert_eq!(out[1] as usize, out.len() - 2);
    assert!(out.len() - 2 <= 125);
    let mut c = Decoder::new(Role::Client, 1000, None);
    assert!(matches!(
        decode_all(&mut c, &out).unwrap()[..],
        [Message::Close(Some(_))]
    ));
}

fn client_pair(cfg: &DeflateConfig, offer: &str) -> (Encoder, Decoder, Encoder, Decoder) {
    let (p, answer) = negotiate([offer], cfg).unwrap();
    let client_params = accept_answer([answer.as_str()], &DeflateConfig::default())
        .unwrap()
        .unwrap();
    (
        Encoder::server(Some((&p, cfg))),
        Decoder::new(Role::Server, 1 << 20, Some(&p)),
        Encoder::client(mask, Some((&client_params, cfg))),
        Decoder::new(Role::Client, 1 << 20, Some(&client_params)),
    )
}

#[test]
fn compressed_round_trip_both_ways() {
    let json = format!(
        "[\"message\",{{\"items\":[{}]}}]",
        (0..300)
            .map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for offer in [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
    ] {
        let (mut se, mut sd, mut ce, mut cd) = client_pair(&DeflateConfig::default(), offer);
        for _ in 0..3 {
            let mut wire = Vec::new();
            se.text(&json, true, &mut wire).unwrap();
            assert_eq!(wire[0], 0xc1, "compressed: RSV1 set");
            assert!(wire.len() < json.len() / 3, "{offer}: {}", wire.len());
            assert_eq!(
                decode_all(&mut cd, &wire).unwrap(),
                [Message::Text(json.as_str().into())]
            );
            wire.clear();
            ce.binary(json.as_bytes(), true, &mut wire).unwrap();
            assert_eq!(wire[0], 0xc2);
            assert_eq!(
                decode_all(&mut sd, &wire).unwrap(),
                [Message::Binary(Bytes::from(json.clone()))]
            );
        }
    }
}

#[test]
fn threshold_and_compress_false() {
    let (mut se, _, _, mut cd) = client_pair(&DeflateConfig::default(), "permessage-deflate");
    let big = "x".repeat(2000);
    let small = "x".repeat(1023);
    let mut wire = Vec::new();
    se.text(&small, true, &mut wire).unwrap();
    assert_eq!(wire[0], 0x81, "under the threshold: plain");
    assert!(
        !se.holds_memory(),
        "no compressor until a message is compressed"
    );
    wire.clear();
    se.text(&big, false, &mut wire).unwrap();
    assert_eq!(wire[0], 0x81, "compress(false): plain");
    assert!(!se.holds_memory());
    assert_eq!(
        decode_all(&mut cd, &wire).unwrap(),
        [Message::Text(big.as_str().into())]
    );
    wire.clear();
    se.text(&big, true, &mut wire).unwrap();
    assert_eq!(wire[0], 0xc1);
    assert!(se.holds_memory());
    // Without the extension nothing is ever compressed.
    let mut plain = Encoder::server(None);
    wire.clear();
    plain.text(&big, true, &mut wire).unwrap();
    assert_eq!(wire[0], 0x81);
}

#[test]
fn fragmented_compressed_message() {
    let mut d = Deflater::new(15, false, 6, 0);
    let mut z = Vec::new();
    let text = "fragmented and compressed ".repeat(100);
    d.compress(text.as_bytes(), &mut z).unwrap();
    let mut s = Decoder::new(Role::Server, 10_000, Some(&params()));
    let mut b = client_frame(false, RSV1, OP_TEXT, &z[..5]);
    b.extend(client_frame(true, 0, OP_PING, b"p"));
    b.extend(client_frame(false, 0, OP_CONTINUATION, &z[5..9]));
    b.extend(client_frame(true, 0, OP_CONTINUATION, &z[9..]));
    assert_eq!(
        decode_all(&mut s, &b).unwrap(),
        [
            Message::Ping(Bytes::from_static(b"p")),
            Message::Text(text.as_str().into())
        ]
    );
}

#[test]
fn idle_decoder_holds_nothing() {
    let mut s = Decoder::new(Role::Server, 1000, Some(&params()));
    assert!(!s.holds_memory());
    decode_all(&mut s, &client_frame(true, 0, OP_TEXT, b"hello")).unwrap();
    assert!(!s.holds_memory());
    // Half a frame is held until the rest arrives.
    let f = client_frame(true, 0, OP_TEXT, b"hello");
    decode_all(&mut s, &f[..3]).unwrap();
    assert!(s.holds_memory());
    assert_eq!(
        decode_all(&mut s, &f[3..]).unwrap(),
        [Message::Text("hello".into())]
    );
    assert!(!s.holds_memory());
}

#[test]
fn encoder_frames_decode() {
    let e = Encoder::client(mask, None);
    let mut out = Vec::new();
    e.ping(b"abc", &mut out);
    e.pong(&[7; 200], &mut out);
    let mut s = server();
    assert_eq!(
        decode_all(&mut s, &out).unwrap(),
        [
            Message::Ping(Bytes::from_static(b"abc")),
            Message::Pong(Bytes::from(vec![7; 125]))
        ]
    );
}

#[test]
fn idle_state_is_small() {
    // What a connection keeps per direction while it waits: no buffer, no zlib state, only these.
    assert!(std::mem::size_of::<Decoder>() <= 160);
    assert!(std::mem::size_of::<Encoder>() <= 64);
}
