//! Bad inputs at the HTTP level and in the handshake (BAD_INPUTS.md cases 1–7 and the slow-header part
//! of case 11).

mod common;

use ferrio::engine::EngineConfigBuilder;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use ferrio::engine::{Cookie, Cors};

/// Case 1: a `transport` that is missing, unknown, or an Object.prototype key → 400 code 0.
#[tokio::test]
async fn unknown_transport_is_code_0() {
    let s = Server::start(quiet_config()).await;
    for query in [
        "EIO=4&transport=__proto__",
        "EIO=4&transport=abc",
        "EIO=4",
        "EIO=4&transport=",
        "EIO=4&transport=constructor",
        "EIO=4&transport=Polling",
        "",
    ] {
        let res = request(s.addr, "GET", &format!("{PATH}?{query}"), &[], b"").await;
        res.assert_error(400, 0, "Transport unknown");
    }
    // Also without any query string at all.
    request(s.addr, "GET", PATH, &[], b"")
        .await
        .assert_error(400, 0, "Transport unknown");
    assert_eq!(s.engine.clients_count(), 0);
    assert_eq!(s.opens(), 0);
}

/// Case 1: an `EIO` that is not 4 → 400 code 5.
#[tokio::test]
async fn unsupported_protocol_version_is_code_5() {
    let s = Server::start(quiet_config()).await;
    for query in [
        "EIO=abc&transport=polling",
        "EIO=3&transport=polling",
        "transport=polling",
        "EIO=&transport=polling",
        "EIO=5&transport=polling",
        "EIO=04&transport=polling",
    ] {
        let res = request(s.addr, "GET", &format!("{PATH}?{query}"), &[], b"").await;
        res.assert_error(400, 5, "Unsupported protocol version");
    }
    // The websocket handshake is checked the same way.
    let res = raw_request(
        s.addr,
        &ws_request(&format!("{PATH}?EIO=3&transport=websocket"), &[]),
    )
    .await;
    res.assert_error(400, 5, "Unsupported protocol version");
    assert_eq!(s.engine.clients_count(), 0);
    // The control: the same request with EIO=4 opens a session.
    let sid = handshake(s.addr).await;
    assert!(s.engine.socket(&sid).is_some());
}

/// Case 2: a handshake that is not a GET, or a POST without sid → 400 code 2.
#[tokio::test]
async fn bad_handshake_method_is_code_2() {
    let s = Server::start(quiet_config()).await;
    let url = format!("{PATH}?EIO=4&transport=polling");
    for method in ["PUT", "DELETE", "POST", "PATCH"] {
        let res = request(s.addr, method, &url, &[], b"4hello").await;
        res.assert_error(400, 2, "Bad handshake method");
    }
    assert_eq!(s.engine.clients_count(), 0);
    assert_eq!(s.opens(), 0);
}

/// Case 2: unknown sids (GET and POST) → 400 code 1 each, and no state is allocated.
#[tokio::test]
async fn unknown_sids_allocate_nothing() {
    let s = Server::start(quiet_config()).await;
    // One keep-alive connection for all of them, which also proves the error answers keep it usable.
    let mut c = Conn::connect(s.addr).await;
    for i in 0..1000 {
        let bytes: [u8; 16] = rand::random();
        let sid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (method, body): (&str, &[u8]) = if i % 2 == 0 {
            ("GET", b"")
        } else {
            ("POST", b"4hello")
        };
        c.send(&build_request(method, &polling_url(&sid), &[], body))
            .await
            .unwrap();
        let res = c.response().await;
        assert_unknown_sid(&res);
        assert_eq!(s.engine.clients_count(), 0);
    }
    // Odd sids: empty, huge, with separators.
    let long = "A".repeat(4000);
    for sid in ["", "%00", "__proto__", "a&sid=b", long.as_str()] {
        let res = poll(s.addr, sid).await;
        assert_unknown_sid(&res);
    }
    // A websocket upgrade for an unknown sid, too.
    let res = raw_request(s.addr, &ws_request(&websocket_url(Some("nope")), &[])).await;
    assert_unknown_sid(&res);
    assert_eq!(s.engine.clients_count(), 0);
    assert_eq!(s.opens(), 0);
}

/// Case 3: `transport=websocket` without a proper upgrade → 400 (code 3 when the engine answers).
#[tokio::test]
async fn bad_websocket_handshakes_are_400() {
    let s = Server::start(quiet_config()).await;
    let url = websocket_url(None);
    // No Upgrade header at all.
    let res = request(
        s.addr,
        "GET",
        &url,
        &[
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", WS_KEY),
        ],
        b"",
    )
    .await;
    res.assert_error(400, 3, "Bad request");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("Upgrade", "h2c"),
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ],
        vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "short"),
        ],
        vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "not base64 at all!!!!!!!"),
        ],
        vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
        ],
        vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", WS_KEY),
        ],
        vec![
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", WS_KEY),
        ],
    ];
    for headers in &cases {
        let res = request(s.addr, "GET", &url, headers, b"").await;
        assert_eq!(res.status, 400, "{headers:?}: {:?}", res.text());
        res.assert_error(400, 3, "Bad request");
    }
    assert_eq!(s.engine.clients_count(), 0);

    // The same bad upgrades on an existing polling session leave the session alone.
    let sid = handshake(s.addr).await;
    for headers in &cases {
        let res = request(s.addr, "GET", &websocket_url(Some(&sid)), headers, b"").await;
        res.assert_error(400, 3, "Bad request");
    }
    assert!(s.engine.socket(&sid).is_some_and(|s| s.is_open()));
    assert_eq!(post(s.addr, &sid, b"4still here").await.status, 200);
    assert_eq!(poll(s.addr, &sid).await.text(), "4still here");
}

/// Case 4: 200 headers → 431 (hyper's limit is 100) and quickly.
#[tokio::test]
async fn too_many_headers_is_431() {
    let s = Server::start(quiet_config()).await;
    let names: Vec<String> = (0..200).map(|i| format!("X-H{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let t = Instant::now();
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &headers,
        b"",
    )
    .await;
    assert!(
        res.status == 431 || res.status == 400,
        "status {}",
        res.status
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(s.engine.clients_count(), 0);
    handshake(s.addr).await;
}

/// Case 4: a 1 MB header → 431 (or 400) quickly, and the server serves the next request.
#[tokio::test]
async fn one_megabyte_header_is_rejected_quickly() {
    let s = Server::start(quiet_config()).await;
    let mut c = Conn::connect(s.addr).await;
    let t = Instant::now();
    let head = format!("GET {PATH}?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Big: ");
    c.send(head.as_bytes()).await.unwrap();
    let big = vec![b'a'; 1 << 20];
    // The server stops reading at its buffer limit: write from a task and read the answer meanwhile.
    let (mut rd, mut wr) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = wr.write_all(&big).await;
        let _ = wr.write_all(b"\r\n\r\n").await;
        wr
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 4096];
        loop {
            match rd.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
            if got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 2 s");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.1 400"),
        "answer: {text:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    writer.abort();
    assert_eq!(s.engine.clients_count(), 0);
    // The next request is served.
    let sid = handshake(s.addr).await;
    assert!(s.engine.socket(&sid).is_some());
}

/// Case 4: `Sec-WebSocket-Protocol` of 64 KB of spaces → answered (any status) at once.
#[tokio::test]
async fn huge_websocket_protocol_header_is_answered_quickly() {
    let s = Server::start(quiet_config()).await;
    // Over hyper's 64 KiB buffer, and just under it (so the value reaches the engine).
    for n in [64 * 1024, 60_000] {
        let spaces = " ".repeat(n);
        let value = format!("{spaces}chat{spaces}");
        let value = &value[..n];
        let t = Instant::now();
        let mut c = Conn::connect(s.addr).await;
        c.send(&ws_request(
            &websocket_url(None),
            &[("Sec-WebSocket-Protocol", value)],
        ))
        .await
        .unwrap();
        let head = tokio::time::timeout(Duration::from_secs(2), c.read_head())
            .await
            .expect("no answer within 2 s");
        let elapsed = t.elapsed();
        assert!(elapsed < Duration::from_millis(500), "{n}: {elapsed:?}");
        if let Ok(head) = head {
            assert!([101, 400, 431].contains(&head.status), "{n}: {head:?}");
        }
    }
    handshake(s.addr).await;
}

/// Case 5: an origin outside the list → 403 on the polling handshake, on a polling request, on a
/// preflight, and on the websocket upgrade; the allowed origin is served.
#[tokio::test]
async fn cors_refuses_other_origins() {
    let s = Server::start(
        EngineConfigBuilder::from(quiet_config())
            .cors(Cors::origins(["http://ok.example"]))
            .build(),
    )
    .await;
    let hs = format!("{PATH}?EIO=4&transport=polling");
    let evil = [("Origin", "http://evil.example")];
    request(s.addr, "GET", &hs, &evil, b"")
        .await
        .assert_error(403, 4, "Forbidden");
    // Prefix/suffix tricks.
    for origin in [
        "http://ok.example.evil.example",
        "http://ok.exampl",
        "http://OK.example",
        "null",
        "",
    ] {
        let res = request(s.addr, "GET", &hs, &[("Origin", origin)], b"").await;
        assert_eq!(res.status, 403, "{origin:?}");
    }
    let res = raw_request(s.addr, &ws_request(&websocket_url(None), &evil)).await;
    res.assert_error(403, 4, "Forbidden");
    assert_eq!(s.engine.clients_count(), 0);
    assert_eq!(s.opens(), 0);

    // An existing session is not reachable from another origin either.
    let sid = handshake(s.addr).await;
    let res = request(s.addr, "POST", &polling_url(&sid), &evil, b"4x").await;
    assert_eq!(res.status, 403);
    let res = raw_request(s.addr, &ws_request(&websocket_url(Some(&sid)), &evil)).await;
    assert_eq!(res.status, 403);
    let res = request(
        s.addr,
        "OPTIONS",
        &hs,
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(res.status, 403);
    assert_eq!(res.header("access-control-allow-origin"), None);
    assert!(s.messages(&sid).is_empty());

    // The allowed origin works, and is echoed.
    let res = request(s.addr, "GET", &hs, &[("Origin", "http://ok.example")], b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some("http://ok.example")
    );
    let res = request(
        s.addr,
        "OPTIONS",
        &hs,
        &[
            ("Origin", "http://ok.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(res.status, 204);
    let mut ws = RawWs::connect(
        s.addr,
        &websocket_url(None),
        &[("Origin", "http://ok.example")],
    )
    .await;
    assert!(ws.next_text().await.unwrap().starts_with('0'));
}

/// Case 5: an `Origin` with bytes a header value may not carry → 400, never a 2xx, never echoed.
#[tokio::test]
async fn origin_with_invalid_bytes_is_rejected() {
    for cors in [
        None,
        Some(Cors::any()),
        Some(Cors::origins(["http://ok.example"])),
    ] {
        let s = Server::start(
            EngineConfigBuilder::from(quiet_config())
                .cors(cors.clone())
                .build(),
        )
        .await;
        let bad_origins: [&[u8]; 4] = [
            b"http://ok.example\x01",
            b"http://\xffok.example",
            b"http://ok.example\x7f",
            b"http://\xc3\xa9.example",
        ];
        for origin in bad_origins {
            for target in [
                format!("{PATH}?EIO=4&transport=polling"),
                websocket_url(None),
            ] {
                let mut req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nOrigin: ").into_bytes();
                req.extend_from_slice(origin);
                req.extend_from_slice(
                    b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
                );
                req.extend_from_slice(format!("Sec-WebSocket-Key: {WS_KEY}\r\n\r\n").as_bytes());
                let mut c = Conn::connect(s.addr).await;
                c.send(&req).await.unwrap();
                match tokio::time::timeout(READ_TIMEOUT, c.read_response()).await {
                    Ok(Ok(res)) => {
                        assert_eq!(res.status, 400, "{cors:?} {origin:?} {target}: {res:?}");
                        assert_eq!(res.header("access-control-allow-origin"), None);
                        if res.header("content-type").as_deref() == Some("application/json") {
                            res.assert_error(400, 3, "Bad request");
                        }
                    }
                    // hyper may also refuse the bytes by closing the connection.
                    Ok(Err(e)) => assert!(!e.contains("HTTP/1.1 2"), "{e}"),
                    Err(_) => panic!("no answer for {origin:?}"),
                }
            }
        }
        assert_eq!(s.engine.clients_count(), 0, "{cors:?}");
        assert_eq!(s.opens(), 0);
    }
}

/// Case 5: with credentials and a list, the allowed origin is echoed, never `*`; `Cors::any()` never
/// sends `Access-Control-Allow-Credentials`, even when asked to.
#[tokio::test]
async fn cors_credentials_never_with_wildcard() {
    let mut listed = Cors::origins(["http://ok.example"]);
    listed.credentials = true;
    let s = Server::start(
        EngineConfigBuilder::from(quiet_config())
            .cors(listed)
            .build(),
    )
    .await;
    let hs = format!("{PATH}?EIO=4&transport=polling");
    let ok = [("Origin", "http://ok.example")];
    let res = request(s.addr, "GET", &hs, &ok, b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header_all("access-control-allow-origin"),
        vec!["http://ok.example"]
    );
    assert_eq!(
        res.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(
        res.header_all("vary").iter().any(|v| v.contains("Origin")),
        "{res:?}"
    );
    let sid = parse_open(&res.body)["sid"].as_str().unwrap().to_string();
    let res = request(s.addr, "POST", &polling_url(&sid), &ok, b"4x").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header_all("access-control-allow-origin"),
        vec!["http://ok.example"]
    );
    drop(s);

    for credentials in [false, true] {
        let mut any = Cors::any();
        any.credentials = credentials;
        let s = Server::start(EngineConfigBuilder::from(quiet_config()).cors(any).build()).await;
        for origin in ["http://evil.example", "http://ok.example"] {
            let res = request(s.addr, "GET", &hs, &[("Origin", origin)], b"").await;
            assert_eq!(res.status, 200);
            assert_eq!(res.header_all("access-control-allow-origin"), vec!["*"]);
            assert_eq!(res.header("access-control-allow-credentials"), None);
            let res = request(
                s.addr,
                "OPTIONS",
                &hs,
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                ],
                b"",
            )
            .await;
            assert_eq!(res.status, 204);
            assert_eq!(res.header_all("access-control-allow-origin"), vec!["*"]);
            assert_eq!(res.header("access-control-allow-credentials"), None);
        }
    }
}

/// Case 6: no cookie by default.
#[tokio::test]
async fn no_cookie_by_default() {
    let s = Server::start(quiet_config()).await;
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("set-cookie"), None);
    let ws = RawWs::connect(s.addr, &websocket_url(None), &[]).await;
    assert_eq!(ws.head.header("set-cookie"), None);
}

/// Case 6: the configured cookie carries the sid with its attributes; a malformed `Cookie` is harmless.
#[tokio::test]
async fn cookie_when_configured_and_malformed_cookie_is_harmless() {
    let s = Server::start(
        EngineConfigBuilder::from(quiet_config())
            .cookie(Cookie::default())
            .build(),
    )
    .await;
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    let sid = parse_open(&res.body)["sid"].as_str().unwrap().to_string();
    assert_eq!(
        res.header_all("set-cookie"),
        vec![format!("io={sid}; Path=/; HttpOnly; SameSite=Lax")]
    );
    let mut ws = RawWs::connect(s.addr, &websocket_url(None), &[]).await;
    let ws_sid = parse_open(ws.next_text().await.unwrap().as_bytes())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ws.head.header_all("set-cookie"),
        vec![format!("io={ws_sid}; Path=/; HttpOnly; SameSite=Lax")]
    );

    let long = format!("io={}", "x".repeat(30_000));
    for cookie in [
        ";;;;",
        "=",
        "io",
        "io=; io=; io==",
        "io=\"unterminated",
        "io=%zz%00",
        "=io=;\t;  ; a=b=c",
        long.as_str(),
    ] {
        let res = request(
            s.addr,
            "GET",
            &format!("{PATH}?EIO=4&transport=polling"),
            &[("Cookie", cookie)],
            b"",
        )
        .await;
        assert_eq!(res.status, 200, "{cookie:?}");
        let new_sid = parse_open(&res.body)["sid"].as_str().unwrap().to_string();
        assert_ne!(new_sid, sid);
        // A cookie naming a session must not make a request act on it.
        let res = request(
            s.addr,
            "POST",
            &polling_url(&new_sid),
            &[("Cookie", cookie)],
            b"4ok",
        )
        .await;
        assert_eq!(res.status, 200, "{cookie:?}");
    }
    // A cookie carrying another session's id does not matter either.
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[("Cookie", &format!("io={sid}"))],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    assert_ne!(parse_open(&res.body)["sid"].as_str().unwrap(), sid);
}

/// Case 7: session ids are distinct, ≥ 22 characters of base64url (≥ 128 bits).
#[tokio::test]
async fn session_ids_are_random_and_long() {
    let s = Server::start(quiet_config()).await;
    let mut seen = HashSet::new();
    for i in 0..100 {
        let sid = if i % 10 == 0 {
            let (ws, sid) = RawWs::open(s.addr).await;
            drop(ws);
            sid
        } else {
            handshake(s.addr).await
        };
        assert!(sid.len() >= 22, "{sid:?}");
        assert!(
            sid.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{sid:?}"
        );
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&sid)
            .expect("base64url");
        assert!(decoded.len() >= 16, "{sid:?}");
        assert!(seen.insert(sid.clone()), "duplicate sid {sid}");
    }
    assert_eq!(seen.len(), 100);
}

/// Case 11: a client that sends part of a request line and stalls, one that trickles its headers a
/// byte at a time, one that connects and sends nothing, and an idle keep-alive connection are all cut
/// off by the header timeout (10 s in `serve`); meanwhile the server serves others.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    let s = Server::start(quiet_config()).await;
    let t = Instant::now();
    let mut stalled = Conn::connect(s.addr).await;
    stalled.send(b"GET /engine.io/?EIO=4&tra").await.unwrap();
    let mut silent = Conn::connect(s.addr).await;
    let mut keep_alive = Conn::connect(s.addr).await;
    keep_alive
        .send(&build_request("GET", "/elsewhere", &[], b""))
        .await
        .unwrap();
    assert_eq!(keep_alive.response().await.status, 404);
    let mut trickle = Conn::connect(s.addr).await;
    let trickler = tokio::spawn(async move {
        let req = build_request("GET", &format!("{PATH}?EIO=4&transport=polling"), &[], b"");
        for b in req.iter().cycle().take(60) {
            if trickle.send(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        trickle.closed_within(Duration::from_secs(12)).await
    });
    // Others are served in the meantime.
    handshake(s.addr).await;
    let within = Duration::from_secs(12);
    let (a, b, c) = tokio::join!(
        stalled.closed_within(within),
        silent.closed_within(within),
        keep_alive.closed_within(within),
    );
    assert!(a, "the stalled connection is still open after 12 s");
    assert!(b, "the silent connection is still open after 12 s");
    assert!(c, "the idle keep-alive connection is still open after 12 s");
    assert!(
        trickler.await.unwrap(),
        "the trickling connection is still open"
    );
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_secs(9), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(12), "{elapsed:?}");
    assert_eq!(s.engine.clients_count(), 1);
}
