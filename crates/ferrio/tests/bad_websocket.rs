//! Bad WebSocket frames over a raw TCP connection (BAD_INPUTS.md cases 14–18). Each test opens a direct
//! websocket session, reads the 101 and the open packet, sends one bad input, then checks the close code
//! the server sends, the close the handler saw, and that the session's state is freed.

mod common;

use ferrio::engine::EngineConfigBuilder;
use std::time::{Duration, Instant};

use common::*;
use ferrio::engine::{EngineConfig, EngineData};

const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_SIZE: u16 = 1009;

fn small_buffer() -> EngineConfig {
    EngineConfigBuilder::from(quiet_config())
        .max_http_buffer_size(1000)
        .build()
}

/// Opens a session, sends `bad`, and asserts the close code, the handler's close and the freed state.
async fn expect_close(s: &Server, bad: &[u8], codes: &[u16], what: &str) {
    let (mut ws, sid) = RawWs::open(s.addr).await;
    assert_eq!(s.engine.socket(&sid).map(|s| s.is_open()), Some(true));
    let t = Instant::now();
    ws.send_raw(bad).await.unwrap();
    let code = ws.close_code(Duration::from_secs(2)).await;
    assert!(
        code.is_some_and(|c| codes.contains(&c)),
        "{what}: close code {code:?}, expected one of {codes:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "{what}: {:?}",
        t.elapsed()
    );
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error",
        "{what}"
    );
    assert!(s.engine.socket(&sid).is_none(), "{what}");
    s.wait_clients(0, Duration::from_secs(1)).await;
    // The server also ends the TCP connection.
    assert!(
        ws.conn.closed_within(Duration::from_secs(2)).await,
        "{what}: connection left open"
    );
}

/// Control: the raw client and the echo work, so the failures below are the server's answers.
#[tokio::test]
async fn raw_client_control() {
    let s = Server::start(small_buffer()).await;
    let (mut ws, sid) = RawWs::open(s.addr).await;
    ws.send_text("4hello").await.unwrap();
    assert_eq!(ws.next_text().await.unwrap(), "4hello");
    // A fragmented text message, with a character split across fragments.
    ws.send(OP_TEXT, b"4\xe2\x82").await.unwrap();
    ws.send(OP_CONT, b"\xac").await.unwrap();
    ws.send(FIN | OP_CONT, b"!").await.unwrap();
    assert_eq!(ws.next_text().await.unwrap(), "4€!");
    // A control frame between fragments, and a message of exactly the limit.
    ws.send(OP_TEXT, b"4a").await.unwrap();
    ws.send(FIN | OP_PING, b"x").await.unwrap();
    ws.send(FIN | OP_CONT, b"b").await.unwrap();
    let mut big = b"4".to_vec();
    big.resize(1000, b'z');
    ws.send(FIN | OP_TEXT, &big).await.unwrap();
    let mut texts = vec![];
    while texts.len() < 2 {
        let f = ws.frame().await.unwrap();
        match f.opcode {
            OP_PONG => assert_eq!(f.payload, b"x"),
            OP_TEXT => texts.push(f.payload),
            other => panic!("unexpected opcode {other}"),
        }
    }
    assert_eq!(texts, vec![b"4ab".to_vec(), big]);
    assert_eq!(
        s.messages(&sid)[..2],
        [
            EngineData::Text("hello".into()),
            EngineData::Text("€!".into())
        ]
    );
    // A clean close from the client.
    ws.send(FIN | OP_CLOSE, &1000u16.to_be_bytes())
        .await
        .unwrap();
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport close"
    );
    s.wait_clients(0, Duration::from_secs(1)).await;
}

/// Case 14: RSV bits without a negotiated extension → 1002.
#[tokio::test]
async fn rsv_bits_are_1002() {
    let s = Server::start(quiet_config()).await;
    for rsv in [0x40u8, 0x20, 0x10] {
        let bad = encode_frame(FIN | rsv | OP_TEXT, b"4hi", MASK);
        expect_close(&s, &bad, &[CLOSE_PROTOCOL], &format!("rsv {rsv:#x}")).await;
    }
}

/// Case 14: an unmasked client frame → 1002.
#[tokio::test]
async fn unmasked_frame_is_1002() {
    let s = Server::start(quiet_config()).await;
    let bad = encode_frame(FIN | OP_TEXT, b"4hi", None);
    expect_close(&s, &bad, &[CLOSE_PROTOCOL], "unmasked").await;
}

/// Case 14: a control frame over 125 bytes, or fragmented → 1002.
#[tokio::test]
async fn bad_control_frames_are_1002() {
    let s = Server::start(quiet_config()).await;
    let bad = encode_frame(FIN | OP_PING, &[b'p'; 200], MASK);
    expect_close(&s, &bad, &[CLOSE_PROTOCOL], "200-byte ping").await;
    let bad = encode_frame(OP_PING, b"p", MASK);
    expect_close(&s, &bad, &[CLOSE_PROTOCOL], "ping without FIN").await;
    let bad = encode_frame(FIN | OP_CLOSE, &[b'c'; 126], MASK);
    expect_close(&s, &bad, &[CLOSE_PROTOCOL], "126-byte close").await;
}

/// Case 14: reserved opcodes, a continuation with nothing to continue, a new message inside a
/// fragmented one → 1002.
#[tokio::test]
async fn bad_framing_is_1002() {
    let s = Server::start(quiet_config()).await;
    for op in [0x3u8, 0x7, 0xB, 0xF] {
        let bad = encode_frame(FIN | op, b"x", MASK);
        expect_close(&s, &bad, &[CLOSE_PROTOCOL], &format!("opcode {op:#x}")).await;
    }
    let bad = encode_frame(FIN | OP_CONT, b"4x", MASK);
    expect_close(&s, &bad, &[CLOSE_PROTOCOL], "lone continuation").await;
    let bad = [
        encode_frame(OP_TEXT, b"4a", MASK),
        encode_frame(FIN | OP_TEXT, b"4b", MASK),
    ]
    .concat();
    expect_close(&s, &bad, &[CLOSE_PROTOCOL], "text inside a fragmented text").await;
}

/// Case 15: invalid UTF-8 in a text message, whole or split across fragments → 1007.
#[tokio::test]
async fn invalid_utf8_is_1007() {
    let s = Server::start(quiet_config()).await;
    let bad = encode_frame(FIN | OP_TEXT, b"4\xff\xfe", MASK);
    expect_close(&s, &bad, &[CLOSE_INVALID], "invalid UTF-8").await;
    let bad = encode_frame(FIN | OP_TEXT, b"4\xed\xa0\x80", MASK);
    expect_close(&s, &bad, &[CLOSE_INVALID], "UTF-16 surrogate").await;
    let bad = [
        encode_frame(OP_TEXT, b"4\xe2\x82", MASK),
        encode_frame(FIN | OP_CONT, b"\x28", MASK),
    ]
    .concat();
    expect_close(&s, &bad, &[CLOSE_INVALID], "split invalid UTF-8").await;
    // Truncated at the end of the message.
    let bad = [
        encode_frame(OP_TEXT, b"4ok", MASK),
        encode_frame(FIN | OP_CONT, b"\xe2\x82", MASK),
    ]
    .concat();
    expect_close(&s, &bad, &[CLOSE_INVALID], "truncated UTF-8").await;
}

/// Case 16: a frame header announcing a huge length → 1009 at once, before any allocation.
#[tokio::test]
async fn huge_length_field_is_1009() {
    let s = Server::start(quiet_config()).await;
    for len in [(1u64 << 63) - 1, 1 << 40, 1 << 32, 1_000_001] {
        let bad = frame_header(FIN | OP_TEXT, len, MASK);
        expect_close(&s, &bad, &[CLOSE_SIZE], &format!("length {len}")).await;
        let bad = frame_header(FIN | OP_BINARY, len, MASK);
        expect_close(&s, &bad, &[CLOSE_SIZE], &format!("binary length {len}")).await;
    }
    // 2^63 has the most significant bit set, which RFC 6455 forbids: either code is a refusal.
    let bad = frame_header(FIN | OP_TEXT, 1 << 63, MASK);
    expect_close(&s, &bad, &[CLOSE_PROTOCOL, CLOSE_SIZE], "length 2^63").await;
}

/// Case 16: a message over `max_http_buffer_size` → 1009 (a single frame, and fragments).
#[tokio::test]
async fn message_over_limit_is_1009() {
    let s = Server::start(small_buffer()).await;
    let bad = encode_frame(FIN | OP_TEXT, &[b'4'; 1001], MASK);
    expect_close(&s, &bad, &[CLOSE_SIZE], "1001-byte text").await;
    let bad = encode_frame(FIN | OP_BINARY, &[0u8; 2000], MASK);
    expect_close(&s, &bad, &[CLOSE_SIZE], "2000-byte binary").await;
    let bad = [
        encode_frame(OP_TEXT, &[b'4'; 600], MASK),
        encode_frame(FIN | OP_CONT, &[b'a'; 600], MASK),
    ]
    .concat();
    expect_close(&s, &bad, &[CLOSE_SIZE], "two 600-byte fragments").await;
}

/// Case 17: 100 000 one-byte continuation frames without FIN → capped, then closed with 1009.
#[tokio::test]
async fn continuation_flood_is_capped() {
    let s = Server::start(small_buffer()).await;
    let (ws, sid) = RawWs::open(s.addr).await;
    let RawWs { conn, .. } = ws;
    let Conn { stream, mut buf } = conn;
    let (mut rd, mut wr) = stream.into_split();
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut batch = encode_frame(OP_TEXT, b"4", MASK);
        let one = encode_frame(OP_CONT, b"a", MASK);
        for i in 0..100_000 {
            batch.extend_from_slice(&one);
            if i % 1000 == 999 {
                if wr.write_all(&batch).await.is_err() {
                    break;
                }
                batch.clear();
            }
        }
        wr
    });
    let code = read_close_code(&mut rd, &mut buf, Duration::from_secs(3)).await;
    writer.abort();
    assert_eq!(code, Some(CLOSE_SIZE));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    s.wait_clients(0, Duration::from_secs(1)).await;
    assert!(s.messages(&sid).is_empty());
}

/// Case 18: permessage-deflate is not negotiated, so a compressed frame (RSV1) → 1002; the inflated
/// size can never exceed anything because nothing is inflated.
#[tokio::test]
async fn permessage_deflate_is_not_negotiated() {
    let s = Server::start(small_buffer()).await;
    let mut ws = RawWs::connect(
        s.addr,
        &websocket_url(None),
        &[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits",
        )],
    )
    .await;
    assert_eq!(ws.head.header("sec-websocket-extensions"), None);
    let open = ws.next_text().await.unwrap();
    let sid = parse_open(open.as_bytes())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    // A deflate bomb: 2 MB of zeros compressed ("4" + zeros), sent as one compressed frame.
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut e, b"4").unwrap();
    std::io::Write::write_all(&mut e, &vec![b'0'; 2_000_000]).unwrap();
    let mut compressed = e.finish().unwrap();
    compressed.truncate(compressed.len().saturating_sub(4));
    ws.send(FIN | RSV1 | OP_TEXT, &compressed).await.unwrap();
    let code = ws.close_code(Duration::from_secs(2)).await;
    assert!(
        code == Some(CLOSE_PROTOCOL) || code == Some(CLOSE_SIZE),
        "{code:?}"
    );
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert!(s.messages(&sid).is_empty());
    s.wait_clients(0, Duration::from_secs(1)).await;
}
