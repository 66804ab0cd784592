//! Bad inputs on the HTTP long-polling transport (BAD_INPUTS.md cases 8–13).

mod common;

use ferrio::engine::EngineConfigBuilder;
use std::time::{Duration, Instant};

use common::*;
use ferrio::engine::{EngineConfig, EngineData};

fn small_buffer() -> EngineConfig {
    EngineConfigBuilder::from(quiet_config())
        .max_http_buffer_size(1000)
        .build()
}

/// Case 8 (control): a body of exactly `max_http_buffer_size` bytes is accepted.
#[tokio::test]
async fn post_at_the_limit_is_accepted() {
    let s = Server::start(small_buffer()).await;
    let sid = handshake(s.addr).await;
    let mut body = b"4".to_vec();
    body.resize(1000, b'a');
    let res = post(s.addr, &sid, &body).await;
    assert_eq!(res.status, 200, "{:?}", res.text());
    assert_eq!(res.text(), "ok");
    assert_eq!(poll(s.addr, &sid).await.body, body);
}

/// Case 8: a declared Content-Length over the limit → 413 before the body is sent; the session closes.
#[tokio::test]
async fn post_over_limit_with_content_length_is_413_before_the_body() {
    let s = Server::start(small_buffer()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    // Headers only: the body never comes.
    let head = build_request(
        "POST",
        &polling_url(&sid),
        &[("Content-Length", "5000"), ("Content-Type", "text/plain")],
        b"",
    );
    let t = Instant::now();
    c.send(&head).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(1), c.read_head())
        .await
        .expect("no answer within 1 s while the body was never sent")
        .unwrap();
    assert_eq!(res.status, 413);
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert_unknown_sid(&poll(s.addr, &sid).await);
    assert_eq!(s.engine.clients_count(), 0);
    // A huge declared length is no different.
    let sid = handshake(s.addr).await;
    let res = request(
        s.addr,
        "POST",
        &polling_url(&sid),
        &[("Content-Length", "1000000000000000")],
        b"",
    )
    .await;
    assert_eq!(res.status, 413);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    // u64::MAX is refused by hyper itself (431), before the engine sees it.
    let sid = handshake(s.addr).await;
    let res = request(
        s.addr,
        "POST",
        &polling_url(&sid),
        &[("Content-Length", "18446744073709551615")],
        b"",
    )
    .await;
    assert!([400, 413, 431].contains(&res.status), "{res:?}");
    assert!(s.messages(&sid).is_empty());
}

/// Case 8: a chunked body without Content-Length → 413 as soon as the limit is crossed, not at its end.
#[tokio::test]
async fn chunked_post_over_limit_is_413_once_crossed() {
    let s = Server::start(small_buffer()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request(
        "POST",
        &polling_url(&sid),
        &[("Transfer-Encoding", "chunked")],
        b"",
    ))
    .await
    .unwrap();
    let chunk = |n: usize| {
        let mut v = format!("{n:x}\r\n").into_bytes();
        v.extend(std::iter::repeat_n(b'a', n));
        v.extend_from_slice(b"\r\n");
        v
    };
    c.send(&[b"1\r\n4\r\n".as_slice(), &chunk(299)].concat())
        .await
        .unwrap();
    for _ in 0..2 {
        c.send(&chunk(300)).await.unwrap();
    }
    // 900 bytes: under the limit, so no answer yet.
    let early = tokio::time::timeout(Duration::from_millis(200), c.read_head()).await;
    assert!(early.is_err(), "answered before the limit: {early:?}");
    assert!(s.engine.socket(&sid).is_some());
    // 1200 bytes: over it. The body is never terminated.
    c.send(&chunk(300)).await.unwrap();
    let res = tokio::time::timeout(Duration::from_secs(1), c.read_head())
        .await
        .expect("no 413 within 1 s of crossing the limit")
        .unwrap();
    assert_eq!(res.status, 413);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert_unknown_sid(&poll(s.addr, &sid).await);
    assert_eq!(s.engine.clients_count(), 0);
    assert!(s.messages(&sid).is_empty());
}

/// Case 9: a POST with `Content-Type: application/octet-stream` is answered (400) at once and the
/// session closes.
#[tokio::test]
async fn octet_stream_post_is_answered_and_closes() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let t = Instant::now();
    let res = request(
        s.addr,
        "POST",
        &polling_url(&sid),
        &[("Content-Type", "application/octet-stream")],
        b"4hello",
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(1));
    res.assert_error(400, 3, "Bad request");
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert_unknown_sid(&poll(s.addr, &sid).await);
    assert!(s.messages(&sid).is_empty());

    // Binary bodies, with and without parameters, and an empty one: answered within a second each.
    let binary: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
    for (ct, body) in [
        ("application/octet-stream", binary.as_slice()),
        ("application/octet-stream", b"".as_slice()),
        (
            "application/octet-stream; charset=binary",
            binary.as_slice(),
        ),
        ("Application/Octet-Stream", binary.as_slice()),
    ] {
        let sid = handshake(s.addr).await;
        let t = Instant::now();
        let res = request(
            s.addr,
            "POST",
            &polling_url(&sid),
            &[("Content-Type", ct)],
            body,
        )
        .await;
        assert!(t.elapsed() < Duration::from_secs(1), "{ct}");
        assert_eq!(res.status, 400, "{ct}: {:?}", res.text());
    }
    s.wait_clients(0, Duration::from_secs(1)).await;
}

/// Case 10: two concurrent GETs → the second gets 400, the first gets the close packet, the session ends.
#[tokio::test]
async fn concurrent_gets_close_the_session() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut first = Conn::connect(s.addr).await;
    first
        .send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = poll(s.addr, &sid).await;
    second.assert_error(400, 3, "Bad request");
    let res = tokio::time::timeout(Duration::from_secs(1), first.read_response())
        .await
        .expect("the first GET was not answered")
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "1");
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert_unknown_sid(&poll(s.addr, &sid).await);
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 10: two concurrent POSTs (the first slow, chunked) → the second gets 400, the session ends and
/// the first is answered too.
#[tokio::test]
async fn concurrent_posts_close_the_session() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut first = Conn::connect(s.addr).await;
    first
        .send(&build_request(
            "POST",
            &polling_url(&sid),
            &[("Transfer-Encoding", "chunked")],
            b"",
        ))
        .await
        .unwrap();
    first.send(b"2\r\n4a\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = post(s.addr, &sid, b"4b").await;
    second.assert_error(400, 3, "Bad request");
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    let res = tokio::time::timeout(Duration::from_secs(1), first.read_head())
        .await
        .expect("the first POST hangs after its session closed")
        .unwrap();
    assert_eq!(res.status, 400);
    assert_unknown_sid(&poll(s.addr, &sid).await);
    assert!(s.messages(&sid).is_empty());
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 11: a body that stalls is cut off by `body_read_timeout`, and the session closes.
#[tokio::test]
async fn stalled_body_times_out() {
    let s = Server::start(
        EngineConfigBuilder::from(quiet_config())
            .body_read_timeout(Duration::from_millis(300))
            .build(),
    )
    .await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request(
        "POST",
        &polling_url(&sid),
        &[("Content-Length", "100")],
        b"4hello",
    ))
    .await
    .unwrap();
    let t = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(2), c.read_head())
        .await
        .expect("a stalled body is never cut off")
        .unwrap();
    assert_eq!(res.status, 400);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert!(s.messages(&sid).is_empty());

    // A body trickling one byte at a time, slower than the timeout, is cut off too.
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request(
        "POST",
        &polling_url(&sid),
        &[("Content-Length", "10")],
        b"",
    ))
    .await
    .unwrap();
    let trickle = async {
        for b in b"4abcdefghi" {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if c.send(&[*b]).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), trickle).await;
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
}

/// Case 11: many idle TCP connections do not stop the server from serving.
#[tokio::test]
async fn idle_connections_do_not_block_service() {
    let s = Server::start(quiet_config()).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(Conn::connect(s.addr).await);
    }
    let t = Instant::now();
    let sid = handshake(s.addr).await;
    assert_eq!(post(s.addr, &sid, b"4x").await.status, 200);
    assert_eq!(poll(s.addr, &sid).await.text(), "4x");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(s.engine.clients_count(), 1);
}

/// Case 12: undecodable bodies → 400, the session closes with "parse error".
#[tokio::test]
async fn undecodable_bodies_close_with_parse_error() {
    let s = Server::start(quiet_config()).await;
    let cases: [&[u8]; 9] = [
        b"abc",
        b"\x1e\x1e",
        b"bnot-base64!",
        b"\xff\xfe\xfd",
        b"4\xc3\x28",
        b"9",
        b"7hello",
        b"",
        b"\x1e",
    ];
    for body in cases {
        let sid = handshake(s.addr).await;
        let res = post(s.addr, &sid, body).await;
        assert_eq!(res.status, 400, "{body:?}: {:?}", res.text());
        res.assert_error(400, 3, "Bad request");
        assert_eq!(
            s.wait_close(&sid, Duration::from_secs(1)).await,
            "parse error",
            "{body:?}"
        );
        assert_unknown_sid(&poll(s.addr, &sid).await);
        assert!(s.messages(&sid).is_empty(), "{body:?}");
    }
    // A good packet followed by a bad one: the good one is delivered, nothing after the bad one.
    let sid = handshake(s.addr).await;
    let res = post(s.addr, &sid, b"4first\x1e9\x1e4never").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "parse error"
    );
    assert_eq!(s.messages(&sid), vec![EngineData::Text("first".into())]);
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 12 (control): a well-formed payload with every packet kind a client may post is accepted.
#[tokio::test]
async fn well_formed_payload_is_accepted() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let res = post(s.addr, &sid, b"4a\x1ebAAEC\x1e6\x1e3\x1e4\xc3\xa9").await;
    assert_eq!(res.status, 200, "{:?}", res.text());
    assert_eq!(
        s.messages(&sid),
        vec![
            EngineData::Text("a".into()),
            EngineData::Binary(vec![0u8, 1, 2].into()),
            EngineData::Text("é".into()),
        ]
    );
    assert_eq!(poll(s.addr, &sid).await.text(), "4a\x1ebAAEC\x1e4é");
    assert!(s.closes().is_empty());
}

/// Case 13: a pending GET whose connection drops ends the session ("transport error"): the server
/// notices the drop instead of keeping the session's writer on a dead connection.
#[tokio::test]
async fn dropped_poll_closes_the_session() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.engine.socket(&sid).is_some());
    drop(c);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(2)).await,
        "transport error"
    );
    assert_unknown_sid(&poll(s.addr, &sid).await);
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 13: the connection of a pending GET drops at the moment a packet is queued for it. Either the
/// session closes, or the packet is still delivered to the next poll: it is never lost while the
/// session lives.
///
/// The race: hyper polls the service before the runtime reports the peer's EOF, so the answer is
/// written to a connection whose client already sent FIN, and the write succeeds. The connection's IO
/// (transport/delivery.rs) asks the kernel for that EOF before writing a polling answer and ends the
/// session with "transport error" when it is there. On the current-thread runtime of this test the
/// race happens every time: the connection's task runs (woken by the packet) before the runtime polls
/// for IO events.
#[tokio::test]
async fn packet_queued_as_poll_drops_is_not_lost() {
    let s = Server::start(quiet_config()).await;
    let (mut lost, mut closed) = (0, 0);
    const ROUNDS: usize = 30;
    for _ in 0..ROUNDS {
        let sid = handshake(s.addr).await;
        let socket = s.engine.socket(&sid).unwrap();
        let mut c = Conn::connect(s.addr).await;
        c.send(&build_request("GET", &polling_url(&sid), &[], b""))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // No await between the two: the server sees the packet and the dropped connection together.
        drop(c);
        socket.send_text("precious").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reasons = s.close_reasons(&sid);
        if reasons.is_empty() {
            // A marker behind it, so that the next poll returns at once either way.
            socket.send_text("marker").unwrap();
            let res = poll(s.addr, &sid).await;
            assert_eq!(res.status, 200, "{:?}", res.text());
            if !res.text().contains("precious") {
                lost += 1;
            }
            socket.close();
        } else {
            assert_eq!(reasons, ["transport error"]);
            assert!(s.engine.socket(&sid).is_none());
            closed += 1;
        }
    }
    assert_eq!(
        lost, 0,
        "the packet was lost while the session lived, {lost}/{ROUNDS} times ({closed} closed)"
    );
}

/// Case 13 (variant): the client half-closes (shuts down its write side) while its GET is pending.
#[tokio::test]
async fn half_closed_poll_is_noticed() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.stream.shutdown().await.unwrap();
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(2)).await,
        "transport error"
    );
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 20 (polling): a payload of 10 000 pongs, noops and upgrade packets is cheap and harmless.
#[tokio::test]
async fn polling_flood_of_control_packets() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    for kind in [&b"3"[..], b"6", b"5", b"3probe"] {
        let body = vec![kind; 10_000].join(&b'\x1e');
        let t = Instant::now();
        let res = post(s.addr, &sid, &body).await;
        assert_eq!(res.status, 200, "{:?}", String::from_utf8_lossy(kind));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    assert_eq!(post(s.addr, &sid, b"4after").await.status, 200);
    assert_eq!(poll(s.addr, &sid).await.text(), "4after");
    assert_eq!(s.engine.clients_count(), 1);
    assert!(s.closes().is_empty());
    // `2probe` (or any ping) from a client breaks v4: the session closes with "transport error".
    let res = post(s.addr, &sid, b"2probe").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
}
