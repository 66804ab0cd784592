//! ferrio's own HTTP/1.1 server (`serve_connection`): framings, keep-alive, pipelining, 100-continue,
//! upgrades with bytes behind the request, and what a bad or vanishing client gets.

mod common;

use std::time::Duration;

use common::*;
use ferrio::engine::EngineData;

fn text(s: &str) -> EngineData {
    EngineData::Text(s.into())
}

/// A chunked POST whose chunks arrive in separate writes is read whole.
#[tokio::test]
async fn chunked_bodies_are_read_across_writes() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    let head = build_request(
        "POST",
        &polling_url(&sid),
        &[("Transfer-Encoding", "chunked")],
        b"",
    );
    c.send(&head).await.unwrap();
    for piece in [
        &b"6;x=y\r\n4hello\r\n"[..],
        b"8\r\n\x1e4 worl",
        b"d\r\n0\r\n\r\n",
    ] {
        c.send(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let res = c.response().await;
    assert_eq!(res.status, 200, "{:?}", res.text());
    assert_eq!(res.text(), "ok");
    assert_eq!(s.messages(&sid), vec![text("hello"), text(" world")]);
    // The connection is reused for the next request.
    c.send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(c.response().await.text(), "4hello\x1e4 world");
}

/// A malformed chunked body is refused, and the connection closed (its framing is lost).
#[tokio::test]
async fn malformed_chunked_body_is_refused() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    let mut req = build_request(
        "POST",
        &polling_url(&sid),
        &[("Transfer-Encoding", "chunked")],
        b"",
    );
    req.extend_from_slice(b"zz\r\n4hi\r\n0\r\n\r\n");
    c.send(&req).await.unwrap();
    let res = c.response().await;
    assert!(res.status >= 400, "{res:?}");
    assert!(c.closed_within(Duration::from_secs(2)).await);
    assert!(s.messages(&sid).is_empty());
}

/// `Expect: 100-continue` gets its interim answer before the body is sent.
#[tokio::test]
async fn expect_continue_is_answered_before_the_body() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request(
        "POST",
        &polling_url(&sid),
        &[("Expect", "100-continue"), ("Content-Length", "6")],
        b"",
    ))
    .await
    .unwrap();
    let interim = tokio::time::timeout(READ_TIMEOUT, c.read_head())
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"4hello").await.unwrap();
    let res = c.response().await;
    assert_eq!((res.status, res.text().as_str()), (200, "ok"));
    assert_eq!(s.messages(&sid), vec![text("hello")]);
}

/// Requests sent back to back in one write are answered in order on the one connection.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    let mut all = build_request("POST", &polling_url(&sid), &[], b"4one");
    all.extend(build_request("GET", "/elsewhere", &[], b""));
    all.extend(build_request("POST", &polling_url(&sid), &[], b"4two"));
    all.extend(build_request("GET", &polling_url(&sid), &[], b""));
    c.send(&all).await.unwrap();
    assert_eq!(c.response().await.text(), "ok");
    assert_eq!(c.response().await.status, 404);
    assert_eq!(c.response().await.text(), "ok");
    assert_eq!(c.response().await.text(), "4one\x1e4two");
}

/// A body longer than one read, trickled in pieces, arrives whole.
#[tokio::test]
async fn long_bodies_arrive_whole() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let message: String = (0..150_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let body = format!("4{message}");
    let req = build_request("POST", &polling_url(&sid), &[], body.as_bytes());
    let mut c = Conn::connect(s.addr).await;
    for piece in req.chunks(40_000) {
        c.send(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = c.response().await;
    assert_eq!((res.status, res.text().as_str()), (200, "ok"));
    assert_eq!(s.messages(&sid), vec![text(&message)]);
}

/// A request refused before its body was read closes the connection instead of reading the body as
/// the next request.
#[tokio::test]
async fn an_unread_body_closes_the_connection() {
    let s = Server::start(quiet_config()).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request(
        "POST",
        &polling_url("nobody"),
        &[("Content-Length", "100000")],
        b"",
    ))
    .await
    .unwrap();
    // The client goes on sending its body while the answer comes: the answer is not lost to a reset.
    let (mut rd, mut wr) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for _ in 0..100 {
            if wr.write_all(&[b'x'; 1000]).await.is_err() {
                break;
            }
        }
        wr
    });
    let mut c = Conn {
        stream: {
            let _ = &mut rd;
            let wr = writer.await.unwrap();
            rd.reunite(wr).unwrap()
        },
        buf: Vec::new(),
    };
    let res = c.response().await;
    assert_unknown_sid(&res);
    assert_eq!(res.header("connection").as_deref(), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)).await);
}

/// HTTP/1.0: closed after the answer unless the client asks for keep-alive.
#[tokio::test]
async fn http10_clients_get_their_connection_semantics() {
    let s = Server::start(quiet_config()).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(b"GET /elsewhere HTTP/1.0\r\n\r\n").await.unwrap();
    assert_eq!(c.response().await.status, 404);
    assert!(c.closed_within(Duration::from_secs(2)).await);

    let mut c = Conn::connect(s.addr).await;
    let req =
        format!("GET {PATH}?EIO=4&transport=polling HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    c.send(req.as_bytes()).await.unwrap();
    let res = c.response().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("connection").as_deref(), Some("keep-alive"));
    let sid = parse_open(&res.body)["sid"].as_str().unwrap().to_string();
    c.send(b"GET /elsewhere HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(c.response().await.status, 404);
    assert!(s.engine.socket(&sid).is_some());
}

/// Malformed heads and ambiguous framings get a 400 and a closed connection; the server goes on.
#[tokio::test]
async fn bad_heads_are_400_and_close() {
    let s = Server::start(quiet_config()).await;
    let target = format!("{PATH}?EIO=4&transport=polling");
    for bad in [
        "GET\r\n\r\n".to_string(),
        format!("GET {target} HTTP/1.1\r\nBad Header: x\r\n\r\n"),
        format!(
            "POST {target} HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        format!("POST {target} HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        format!("POST {target} HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        format!("POST {target} HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc"),
    ] {
        let mut c = Conn::connect(s.addr).await;
        c.send(bad.as_bytes()).await.unwrap();
        let res = c.response().await;
        assert_eq!(res.status, 400, "{bad:?}");
        assert!(c.closed_within(Duration::from_secs(2)).await, "{bad:?}");
    }
    assert_eq!(s.engine.clients_count(), 0);
    handshake(s.addr).await;
}

/// Frames a client sends right behind its upgrade request, in the same write, are not lost.
#[tokio::test]
async fn bytes_behind_an_upgrade_request_reach_the_websocket() {
    let s = Server::start(quiet_config()).await;
    let mut c = Conn::connect(s.addr).await;
    let mut bytes = ws_request(&websocket_url(None), &[]);
    bytes.extend(encode_frame(FIN | OP_TEXT, b"4early", MASK));
    c.send(&bytes).await.unwrap();
    let head = tokio::time::timeout(READ_TIMEOUT, c.read_head())
        .await
        .expect("no 101")
        .unwrap();
    assert_eq!(head.status, 101);
    let mut ws = RawWs { conn: c, head };
    let open = ws.frame().await.expect("no open packet");
    let sid = parse_open(&open.payload)["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ws.frame().await.expect("no echo").text(), "4early");
    assert_eq!(s.messages(&sid), vec![text("early")]);
}

/// A client that closes its connection while its GET waits ends the session, as under any HTTP
/// server: the packets the GET would have carried must not vanish silently.
#[tokio::test]
async fn a_poll_whose_client_leaves_ends_the_session() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(2)).await,
        "transport error"
    );
}

/// Answers carry a `Date` and their length, and a HEAD request gets no body.
#[tokio::test]
async fn answers_are_framed() {
    let s = Server::start(quiet_config()).await;
    let res = request(s.addr, "GET", "/elsewhere", &[], b"").await;
    assert_eq!(res.status, 404);
    assert!(res.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(res.header("content-length").as_deref(), Some("9"));
    let mut c = Conn::connect(s.addr).await;
    c.send(&build_request("HEAD", "/elsewhere", &[], b""))
        .await
        .unwrap();
    let head = tokio::time::timeout(READ_TIMEOUT, c.read_head())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.status, 404);
    // The length a GET's body would have, and no body.
    assert_eq!(head.header("content-length").as_deref(), Some("9"));
    // Nothing follows the head: the next answer on the connection starts right after it.
    c.send(&build_request("GET", "/elsewhere", &[], b""))
        .await
        .unwrap();
    let next = c.response().await;
    assert_eq!((next.status, next.text().as_str()), (404, "Not Found"));
}

/// A head sent a byte at a time is answered once complete; junk is refused at once.
#[tokio::test]
async fn trickled_heads_and_junk() {
    let s = Server::start(quiet_config()).await;
    let mut c = Conn::connect(s.addr).await;
    let req = build_request(
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[("X-Padding", &"p".repeat(300))],
        b"",
    );
    for b in &req {
        c.send(&[*b]).await.unwrap();
    }
    let res = c.response().await;
    assert_eq!(res.status, 200);

    let t = std::time::Instant::now();
    let mut c = Conn::connect(s.addr).await;
    c.send(b"\x00\x01\x02 not http at all").await.unwrap();
    assert_eq!(c.response().await.status, 400);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// A long-poll GET whose (empty) chunked body came with its head still notices its client leaving.
#[tokio::test]
async fn a_chunked_poll_whose_client_leaves_ends_the_session() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut c = Conn::connect(s.addr).await;
    let mut req = build_request(
        "GET",
        &polling_url(&sid),
        &[("Transfer-Encoding", "chunked")],
        b"",
    );
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(2)).await,
        "transport error"
    );
}

mod services {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::net::TcpListener;

    use super::common::*;

    async fn serve<F, Fut, B>(f: F) -> std::net::SocketAddr
    where
        F: Fn(http::Request<ferrio::RequestBody>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<http::Response<B>, Infallible>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ferrio::serve(listener, tower::service_fn(f)));
        addr
    }

    /// A streaming answer reaches the client as it comes, not only at its end.
    #[tokio::test]
    async fn streaming_answers_are_flushed_as_they_come() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let addr = serve(move |_req| {
            let rx = rx.clone();
            async move {
                let rx = rx.lock().await.take().expect("one request");
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    let b = rx.recv().await?;
                    Some((Ok::<_, Infallible>(http_body::Frame::data(b)), rx))
                });
                Ok(http::Response::new(StreamBody::new(stream)))
            }
        })
        .await;
        let mut c = Conn::connect(addr).await;
        c.send(&build_request("GET", "/events", &[], b""))
            .await
            .unwrap();
        tx.send(Bytes::from_static(b"first")).await.unwrap();
        let head = tokio::time::timeout(READ_TIMEOUT, c.read_head())
            .await
            .expect("no head while the body streams")
            .unwrap();
        assert_eq!(head.header("transfer-encoding").as_deref(), Some("chunked"));
        let got = tokio::time::timeout(READ_TIMEOUT, async {
            while !String::from_utf8_lossy(&c.buf).contains("first") {
                c.read_more().await.unwrap();
            }
        })
        .await;
        assert!(
            got.is_ok(),
            "the first piece did not come before the body's end"
        );
        drop(tx);
        let rest = tokio::time::timeout(READ_TIMEOUT, async {
            while !c.buf.ends_with(b"0\r\n\r\n") {
                if c.read_more().await.unwrap() == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(rest.is_ok() && c.buf.ends_with(b"0\r\n\r\n"), "{:?}", c.buf);
    }

    /// A body the service reads after it answered ends (with an error) instead of waiting forever.
    #[tokio::test]
    async fn a_body_read_after_the_answer_ends() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
        let done_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(done_tx)));
        let addr = serve(move |req: http::Request<ferrio::RequestBody>| {
            let done_tx = done_tx.clone();
            async move {
                let body = req.into_body();
                tokio::spawn(async move {
                    let whole = body.collect().await.is_ok();
                    if let Some(tx) = done_tx.lock().unwrap().take() {
                        let _ = tx.send(whole);
                    }
                });
                Ok(http::Response::new(http_body_util::Full::new(
                    Bytes::from_static(b"ok"),
                )))
            }
        })
        .await;
        let mut c = Conn::connect(addr).await;
        c.send(&build_request(
            "POST",
            "/upload",
            &[("Content-Length", "100000")],
            b"",
        ))
        .await
        .unwrap();
        c.send(&[b'x'; 100]).await.unwrap();
        assert_eq!(c.response().await.status, 200);
        let whole = tokio::time::timeout(Duration::from_secs(3), done_rx)
            .await
            .expect("the body's reader still waits")
            .unwrap();
        assert!(!whole, "a body cut short must not read as complete");
    }
}

/// What a client of `s` sees of a script of long-polling requests, each answer as its status, its
/// header lines but the date, and its body.
async fn polling_script(s: &Server) -> Vec<String> {
    fn seen(res: HttpResponse) -> String {
        let mut out = format!("{}", res.status);
        for (k, v) in &res.headers {
            if !k.eq_ignore_ascii_case("date") {
                out.push_str(&format!("|{k}: {}", String::from_utf8_lossy(v)));
            }
        }
        // Long bodies by their length and a checksum: the assertions print them whole.
        let sum = res
            .body
            .iter()
            .fold(0u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
        match res.body.len() {
            0..=64 => format!("{out}|{:?}", String::from_utf8_lossy(&res.body)),
            n => format!("{out}|{n} bytes, sum {sum:08x}"),
        }
    }
    let get =
        |sid: &str, headers: &[(&str, &str)]| build_request("GET", &polling_url(sid), headers, b"");
    let post = |sid: &str, headers: &[(&str, &str)], body: &[u8]| {
        build_request("POST", &polling_url(sid), headers, body)
    };
    let mut seen_all = Vec::new();
    let sid = handshake(s.addr).await;
    // A POST and a GET on one keep-alive connection, pipelined.
    let mut c = Conn::connect(s.addr).await;
    let mut two = post(
        &sid,
        &[("Content-Type", "text/plain;charset=UTF-8")],
        b"4hello",
    );
    two.extend_from_slice(&get(&sid, &[]));
    c.send(&two).await.unwrap();
    seen_all.push(seen(c.response().await));
    seen_all.push(seen(c.response().await));
    // A payload above the compression threshold, for a client that takes gzip; then one it may not
    // compress.
    let big = format!("4{}", "x".repeat(3000));
    c.send(&post(&sid, &[], big.as_bytes())).await.unwrap();
    seen_all.push(seen(c.response().await));
    c.send(&get(&sid, &[("Accept-Encoding", "gzip, deflate")]))
        .await
        .unwrap();
    seen_all.push(seen(c.response().await));
    c.send(&post(&sid, &[], big.as_bytes())).await.unwrap();
    seen_all.push(seen(c.response().await));
    c.send(&get(&sid, &[("Accept-Encoding", "br")]))
        .await
        .unwrap();
    seen_all.push(seen(c.response().await));
    // A POST whose client closes the connection with it.
    c.send(&post(&sid, &[("Connection", "close")], b"4bye"))
        .await
        .unwrap();
    seen_all.push(seen(c.response().await));
    assert!(
        c.closed_within(READ_TIMEOUT).await,
        "closed after `Connection: close`"
    );
    // Its echo, on a new connection.
    seen_all.push(seen(poll(s.addr, &sid).await));
    // A GET that waits, then a second GET at once: the second is refused and the session closes,
    // which answers the first with a close packet.
    let mut waiting = Conn::connect(s.addr).await;
    waiting.send(&get(&sid, &[])).await.unwrap();
    seen_all.push(seen(poll(s.addr, &sid).await));
    seen_all.push(seen(waiting.response().await));
    // A binary POST to a v4 session, and a payload that does not decode: refused, and each ends its
    // session.
    for body in [&b"4hi"[..], b"\xff\xfe"] {
        let sid = handshake(s.addr).await;
        let octet = [("Content-Type", "application/octet-stream")];
        let headers: &[(&str, &str)] = if body == b"4hi" { &octet } else { &[] };
        seen_all.push(seen(raw_request(s.addr, &post(&sid, headers, body)).await));
        seen_all.push(seen(poll(s.addr, &sid).await));
    }
    seen_all
}

/// The long-polling requests that `ferrio::serve` answers lean (without the `http` types or the
/// service's layers) are answered as the engine's service answers them, byte for byte but the date:
/// pipelined, compressed or not, closing, refused.
#[tokio::test]
async fn lean_answers_are_the_services() {
    let lean = polling_script(&Server::start(quiet_config()).await).await;
    let service = polling_script(&Server::start_through_service(quiet_config()).await).await;
    assert_eq!(lean, service);
    // And they are the answers expected (not the same mistake twice).
    let starts = |i: usize, with: &str| {
        assert!(lean[i].starts_with(with), "answer {i}: {}", lean[i]);
    };
    starts(0, "200|content-type: text/html|content-length: 2|\"ok\"");
    starts(
        1,
        "200|content-type: text/plain; charset=UTF-8|cache-control: no-store|content-length: 6|\"4hello\"",
    );
    starts(
        3,
        "200|content-type: text/plain; charset=UTF-8|cache-control: no-store|content-encoding: gzip|vary: Accept-Encoding|",
    );
    starts(
        5,
        "200|content-type: text/plain; charset=UTF-8|cache-control: no-store|content-length: 3001|",
    );
    starts(
        6,
        "200|content-type: text/html|content-length: 2|connection: close|",
    );
    starts(
        7,
        "200|content-type: text/plain; charset=UTF-8|cache-control: no-store|content-length: 4|\"4bye\"",
    );
    starts(8, "400|content-type: application/json|");
    starts(
        9,
        "200|content-type: text/plain; charset=UTF-8|cache-control: no-store|content-length: 1|\"1\"",
    );
    for i in [10, 11, 12, 13] {
        starts(i, "400|content-type: application/json|");
    }
    assert_eq!(lean.len(), 14);
}

/// `serve_tcp_connection_with_engine` hands the engine its sessions' plain long-polling requests and
/// the service everything else: here a service that finds nothing, beside the engine's own server.
#[tokio::test]
async fn lean_requests_reach_the_engine_and_the_rest_the_service() {
    let s = Server::start(quiet_config()).await;
    let cors = Server::start(
        ferrio::engine::EngineConfig::builder()
            .cors(ferrio::engine::Cors::any())
            .build(),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let engines = [s.engine.clone(), cors.engine.clone()];
    let serving = tokio::spawn(async move {
        let mut next = 0;
        while let Ok((stream, peer)) = listener.accept().await {
            // Each connection of the test's, in turn, with each engine.
            let engine = engines[next % 2].clone();
            next += 1;
            tokio::spawn(ferrio::serve_tcp_connection_with_engine(
                stream,
                None,
                peer,
                ferrio::NotFound,
                Some(engine),
                ferrio::DEFAULT_HEADER_READ_TIMEOUT,
                std::future::pending(),
            ));
        }
    });
    let sid = handshake(s.addr).await;
    let cors_sid = handshake(cors.addr).await;
    let mut plain = Conn::connect(addr).await;
    let mut with_cors = Conn::connect(addr).await;
    let req = |sid: &str, method: &str, headers: &[(&str, &str)], body: &[u8]| {
        build_request(method, &polling_url(sid), headers, body)
    };
    // The engine's: a POST and a GET of its session.
    plain.send(&req(&sid, "POST", &[], b"4hi")).await.unwrap();
    assert_eq!(plain.response().await.text(), "ok");
    plain.send(&req(&sid, "GET", &[], b"")).await.unwrap();
    assert_eq!(plain.response().await.text(), "4hi");
    // The service's: a handshake, an unknown session, a websocket, a PUT.
    for r in [
        build_request("GET", &format!("{PATH}?EIO=4&transport=polling"), &[], b""),
        req("nope", "GET", &[], b""),
        build_request("GET", &websocket_url(Some(&sid)), &[], b""),
        req(&sid, "PUT", &[], b""),
    ] {
        plain.send(&r).await.unwrap();
        assert_eq!(plain.response().await.status, 404);
    }
    // With CORS on, a request with an origin is the service's; one without, the engine's.
    let origin = [("Origin", "http://a.example")];
    with_cors
        .send(&req(&cors_sid, "POST", &origin, b"4x"))
        .await
        .unwrap();
    assert_eq!(with_cors.response().await.status, 404);
    with_cors
        .send(&req(&cors_sid, "POST", &[], b"4x"))
        .await
        .unwrap();
    assert_eq!(with_cors.response().await.text(), "ok");
    serving.abort();
}

/// A layer that takes room in `poll_ready` (as tower's `ConcurrencyLimit` takes a permit) keeps none
/// for the requests the engine answers lean: with one permit for all connections, a connection that
/// only long-polls leaves the service to another connection's request.
#[tokio::test]
async fn lean_requests_take_no_room_from_the_service() {
    use std::task::{Context, Poll, ready};
    use tokio_util::sync::PollSemaphore;

    struct OnePermit {
        permits: PollSemaphore,
        held: Option<tokio::sync::OwnedSemaphorePermit>,
    }
    impl Clone for OnePermit {
        fn clone(&self) -> Self {
            OnePermit {
                permits: self.permits.clone(),
                held: None,
            }
        }
    }
    impl tower_service::Service<http::Request<ferrio::RequestBody>> for OnePermit {
        type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.held.is_none() {
                self.held = ready!(self.permits.poll_acquire(cx));
            }
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<ferrio::RequestBody>) -> Self::Future {
            // The permit goes back once the request is answered (here, at once).
            self.held = None;
            let mut res = http::Response::new(http_body_util::Full::new("none".into()));
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            std::future::ready(Ok(res))
        }
    }

    let s = Server::start(quiet_config()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let service = OnePermit {
        permits: PollSemaphore::new(permits.clone()),
        held: None,
    };
    let engine = s.engine.clone();
    let serving = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(ferrio::serve_tcp_connection_with_engine(
                stream,
                None,
                peer,
                service.clone(),
                Some(engine.clone()),
                ferrio::DEFAULT_HEADER_READ_TIMEOUT,
                std::future::pending(),
            ));
        }
    });
    let sid = handshake(s.addr).await;
    let mut polling = Conn::connect(addr).await;
    polling
        .send(&build_request("POST", &polling_url(&sid), &[], b"4hi"))
        .await
        .unwrap();
    assert_eq!(polling.response().await.text(), "ok");
    // The polling connection stays open, between requests, and holds no permit.
    for _ in 0..2 {
        let res = request(addr, "GET", "/elsewhere", &[], b"").await;
        assert_eq!((res.status, res.text()), (404, "none".to_string()));
    }
    polling
        .send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    assert_eq!(polling.response().await.text(), "4hi");
    // A request read while the service has no room waits for it, then is answered.
    let taken = permits.clone().acquire_owned().await.unwrap();
    let mut other = Conn::connect(addr).await;
    other
        .send(&build_request("GET", "/elsewhere", &[], b""))
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(200), other.read_more()).await;
    assert!(waited.is_err(), "answered without room: {waited:?}");
    drop(taken);
    assert_eq!(other.response().await.status, 404);
    serving.abort();
}
