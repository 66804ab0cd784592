//! Malformed Socket.IO packets from a client (BAD_INPUTS cases 22–29): each closes the offending
//! connection, runs no handler, and leaves the server serving other clients.

mod sio_common;

use ferrio::IoConfigBuilder;
use std::time::Duration;

use ferrio::{DisconnectReason, Event, IoConfig, Socket, Value};
use sio_common::*;

const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// A server whose `/` sockets count every non-`echo` event they handle (`on_any` plus named handlers),
/// with the `echo` ack handler installed.
async fn counting_server(config: IoConfig) -> (TestServer, Counter) {
    let server = TestServer::start(config).await;
    let handled = Counter::new();
    install_echo(&server.io);
    let h = handled.clone();
    server.io.on_connection(move |socket: Socket| {
        let h = h.clone();
        async move {
            let any = h.clone();
            socket.on_any(move |_s, name, _args| {
                if name != "echo" {
                    any.incr();
                }
            });
            for name in ["x", "a", "b", "abc", "toString", "error", "message"] {
                let h = h.clone();
                socket.on(name, move |_s, _ev| {
                    let h = h.clone();
                    async move { h.incr() }
                });
            }
        }
    });
    (server, handled)
}

/// Sends `frames` (text, or binary when prefixed by `bin:`) on a fresh joined client, expects the
/// connection to close, then checks that no handler ran and that another client is still served.
async fn assert_rejected(server: &TestServer, handled: &Counter, frames: &[&[u8]]) {
    let mut c = server.joined().await;
    for f in frames {
        match f.strip_prefix(b"bin:") {
            Some(bin) => c.send_binary(bin.to_vec()).await,
            None => c.send(std::str::from_utf8(f).unwrap()).await,
        }
    }
    let seen = c.expect_closed(CLOSE_WITHIN).await;
    let shown: Vec<String> = frames
        .iter()
        .map(|f| String::from_utf8_lossy(&f[..f.len().min(80)]).into_owned())
        .collect();
    assert!(
        seen.is_empty(),
        "{shown:?}: nothing expected before the close, got {seen:?}"
    );
    // Give a wrongly queued event the time to run before counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(handled.get(), 0, "{shown:?}: a handler ran");
    server.wait_clients(0, CLOSE_WITHIN).await;
    let mut other = server.joined().await;
    other.assert_echo(1, "\"still here\"").await;
    other.close().await;
    server.wait_clients(0, CLOSE_WITHIN).await;
}

// ---- 22 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c22_no_connect_within_connect_timeout_closes() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .connect_timeout(Duration::from_millis(300))
            .build(),
    )
    .await;
    install_echo(&server.io);
    let mut idle = server.client().await;
    let mut joined = server.joined().await;
    assert_eq!(server.io.clients_count(), 2);
    let start = std::time::Instant::now();
    idle.expect_closed(Duration::from_secs(2)).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200),
        "closed after {elapsed:?}, before connect_timeout"
    );
    server.wait_clients(1, CLOSE_WITHIN).await;
    // A client that joined in time is not affected, even well past the timeout.
    joined.expect_open(Duration::from_millis(500)).await;
    joined.assert_echo(7, "1").await;
}

// ---- 23 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c23_malformed_event_payloads_close() {
    let (server, handled) = counting_server(config()).await;
    for bad in [
        r#"42[{"toString":"foo"}]"#,
        "42[true]",
        "42[]",
        "42{}",
        "4abc",
        r#"42"x""#,
        "42[null]",
        r#"42[["x"]]"#,
        "42",
        r#"42["x"]trailing"#,
        "47",
        "4",
    ] {
        assert_rejected(&server, &handled, &[bad.as_bytes()]).await;
    }
}

// ---- 24 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c24_reserved_event_names_close() {
    let (server, handled) = counting_server(config()).await;
    for name in [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ] {
        let frame = format!(r#"42["{name}","arg"]"#);
        assert_rejected(&server, &handled, &[frame.as_bytes()]).await;
        let frame = format!(r#"42["{name}"]"#);
        assert_rejected(&server, &handled, &[frame.as_bytes()]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c24_error_event_is_delivered_safely() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let errors = Log::<Vec<Value>>::new();
    let e = errors.clone();
    server.io.on_connection(move |socket: Socket| {
        let e = e.clone();
        async move {
            socket.on("error", move |_s, ev: Event| {
                let e = e.clone();
                async move { e.push(ev.args().to_vec()) }
            });
        }
    });
    let mut c = server.joined().await;
    c.send(r#"42["error","boom"]"#).await;
    c.send(r#"42["error"]"#).await;
    c.assert_echo(1, "2").await;
    // Delivered to the handler as an ordinary event (or ignored): never a crash, never twice.
    let got = errors.get();
    assert!(got.len() <= 2, "error handler ran {} times", got.len());
    if let Some(first) = got.first() {
        assert_eq!(first, &vec![Value::String("boom".into())]);
    }
    let mut second = server.joined().await;
    second.assert_echo(2, "3").await;
    c.expect_open(Duration::from_millis(100)).await;
}

// ---- 25 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c25_bad_ack_ids_close() {
    let (server, handled) = counting_server(config()).await;
    for bad in [
        r#"42abc["x"]"#,
        r#"421234567890123456789012345["x"]"#,
        // u64::MAX + 1
        r#"4218446744073709551616["x"]"#,
        r#"431234567890123456789012345["x"]"#,
        r#"43abc["x"]"#,
        // An ack needs an id and an array.
        r#"43["x"]"#,
        r#"431{}"#,
    ] {
        assert_rejected(&server, &handled, &[bad.as_bytes()]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c25_largest_ack_id_is_accepted() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let mut c = server.joined().await;
    c.assert_echo(u64::MAX, "\"max\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c25_unknown_ack_id_is_ignored() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let mut c = server.joined().await;
    c.send(r#"43999["x"]"#).await;
    c.send(r#"430[]"#).await;
    c.expect_open(Duration::from_millis(200)).await;
    c.assert_echo(5, "\"after\"").await;
}

// ---- 26 / 27 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c26_bad_placeholders_close() {
    let (server, handled) = counting_server(config()).await;
    for head in [
        r#"451-["a",{"_placeholder":true,"num":"splice"}]"#,
        r#"451-["a",{"_placeholder":true,"num":-1}]"#,
        r#"451-["a",{"_placeholder":true,"num":1.5}]"#,
        r#"451-["a",{"_placeholder":true,"num":1}]"#,
        r#"451-["a",{"_placeholder":"true","num":0}]"#,
        r#"451-["a",{"_placeholder":true}]"#,
        r#"451-["a",{"_placeholder":true,"num":0,"extra":1}]"#,
        r#"451-["a",{"_placeholder":true,"num":null}]"#,
        r#"451-["a",{"_placeholder":true,"num":1e400}]"#,
        r#"451-["a",{"_placeholder":true,"num":18446744073709551616}]"#,
    ] {
        assert_rejected(&server, &handled, &[head.as_bytes(), b"bin:\x01\x02"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c27_bad_attachment_counts_close() {
    let (server, handled) = counting_server(config()).await;
    assert_rejected(&server, &handled, &[br#"45999999-["a"]"#]).await;
    assert_rejected(&server, &handled, &[br#"455999999-["a"]"#]).await;
    assert_rejected(&server, &handled, &[br#"45-["a"]"#]).await;
    assert_rejected(&server, &handled, &[br#"451["a"]"#]).await;
    // A run of digits just under max_http_buffer_size (1e6), so that the parser, not the websocket
    // message limit, has to refuse it.
    let digits = format!("45{}-[\"a\"]", "9".repeat(999_000));
    assert_rejected(&server, &handled, &[digits.as_bytes()]).await;
    // Count ≠ placeholders, both ways.
    assert_rejected(
        &server,
        &handled,
        &[
            br#"452-["a",{"_placeholder":true,"num":0}]"#,
            b"bin:1",
            b"bin:2",
        ],
    )
    .await;
    assert_rejected(
        &server,
        &handled,
        &[
            br#"451-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,
            b"bin:1",
        ],
    )
    .await;
    // 11 attachments (limit 10).
    let mut head = String::from(r#"4511-["a""#);
    for i in 0..11 {
        head.push_str(&format!(r#",{{"_placeholder":true,"num":{i}}}"#));
    }
    head.push(']');
    let mut frames: Vec<&[u8]> = vec![head.as_bytes()];
    frames.extend(std::iter::repeat_n(&b"bin:z"[..], 11));
    assert_rejected(&server, &handled, &frames).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c27_stray_binary_and_interleaved_text_close() {
    let (server, handled) = counting_server(config()).await;
    // A binary frame with no binary packet pending.
    assert_rejected(&server, &handled, &[b"bin:\x00\x01"]).await;
    // Text while an attachment is still expected.
    assert_rejected(
        &server,
        &handled,
        &[br#"451-["a",{"_placeholder":true,"num":0}]"#, br#"42["b"]"#],
    )
    .await;
    // `50-` announces no attachment: every following binary frame is stray.
    let mut c = server.joined().await;
    c.send(r#"450-["zz"]"#).await;
    for _ in 0..1000 {
        c.send_binary(vec![0u8; 16]).await;
    }
    c.expect_closed(CLOSE_WITHIN).await;
    server.wait_clients(0, CLOSE_WITHIN).await;
    // A zero-count binary event is an event without attachments: it may have been handled, once.
    assert!(handled.get() <= 1, "handled {} times", handled.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c27_good_binary_events_keep_bytes_in_place() {
    let server = TestServer::start(config()).await;
    let got = Log::<Vec<Value>>::new();
    let g = got.clone();
    server.io.on_connection(move |socket: Socket| {
        let g = g.clone();
        async move {
            socket.on("bin", move |s: Socket, mut ev: Event| {
                let g = g.clone();
                async move {
                    g.push(ev.args().to_vec());
                    let _ = s.emit_args("bin-back", ev.take_args());
                }
            });
        }
    });
    let mut c = server.joined().await;
    c.send(concat!(
        r#"452-["bin",{"x":{"_placeholder":true,"num":1}},"#,
        r#"[1,{"y":{"_placeholder":true,"num":0}}]]"#
    ))
    .await;
    c.send_binary(vec![4u8, 5]).await;
    c.send_binary(vec![1u8, 2, 3]).await;
    let head = c.recv_text().await;
    assert!(head.starts_with("452-[\"bin-back\""), "{head}");
    assert_eq!(c.recv().await, Incoming::Binary(vec![1u8, 2, 3].into()));
    assert_eq!(c.recv().await, Incoming::Binary(vec![4u8, 5].into()));
    let args = got.get().pop().expect("handler ran");
    assert_eq!(args.len(), 2);
    assert_eq!(
        args[0].get("x"),
        Some(&Value::Binary(vec![1u8, 2, 3].into()))
    );
    assert_eq!(
        args[1].get_index(1).and_then(|v| v.get("y")),
        Some(&Value::Binary(vec![4u8, 5].into()))
    );
    assert_eq!(args[1].get_index(0).and_then(Value::as_u64), Some(1));

    // Exactly the limit (10 attachments) is accepted.
    let mut head = String::from(r#"4510-["bin""#);
    for i in 0..10 {
        head.push_str(&format!(r#",{{"_placeholder":true,"num":{i}}}"#));
    }
    head.push(']');
    c.send(&head).await;
    for i in 0..10u8 {
        c.send_binary(vec![i]).await;
    }
    let back = c.recv_text().await;
    assert!(back.starts_with("4510-[\"bin-back\""), "{back}");
    for i in 0..10u8 {
        assert_eq!(c.recv().await, Incoming::Binary(vec![i].into()));
    }
    let args = got.get().pop().unwrap();
    assert_eq!(args.len(), 10);
    for (i, a) in args.iter().enumerate() {
        assert_eq!(a, &Value::Binary(vec![i as u8].into()));
    }
}

// ---- 28 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c28_close_in_the_middle_of_attachments_frees_state() {
    let (server, handled) = counting_server(config()).await;
    let reasons = Log::<DisconnectReason>::new();
    let r = reasons.clone();
    server.io.on_connection(move |socket: Socket| {
        let r = r.clone();
        async move {
            socket.on_disconnect(move |_s, reason| {
                let r = r.clone();
                async move { r.push(reason) }
            });
        }
    });
    let c = server.joined().await;
    c.send(r#"452-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    c.send_binary(vec![1u8]).await;
    c.close().await;
    server.wait_clients(0, CLOSE_WITHIN).await;
    wait_until(CLOSE_WITHIN, "disconnect handler", || reasons.len() == 1).await;
    assert_eq!(reasons.get(), vec![DisconnectReason::TransportClose]);
    assert_eq!(handled.get(), 0);
    assert!(server.io.of("/").sockets().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c28_binary_packet_for_a_namespace_not_joined_closes() {
    let (server, handled) = counting_server(config()).await;
    server.io.of("/other");
    assert_rejected(
        &server,
        &handled,
        &[
            br#"451-/other,["a",{"_placeholder":true,"num":0}]"#,
            b"bin:1",
        ],
    )
    .await;
    assert_rejected(
        &server,
        &handled,
        &[
            br#"451-/nowhere,["a",{"_placeholder":true,"num":0}]"#,
            b"bin:1",
        ],
    )
    .await;
    // Text events for a namespace not joined too.
    assert_rejected(&server, &handled, &[br#"42/other,["a"]"#]).await;
    assert_eq!(server.io.clients_count(), 0);
    assert!(server.io.of("/other").sockets().is_empty());
}

// ---- 29 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c29_deeply_nested_json_closes_without_overflow() {
    let (server, handled) = counting_server(config()).await;
    let n = 100_000;
    let arrays = format!(r#"42["a",{}{}]"#, "[".repeat(n), "]".repeat(n));
    assert_rejected(&server, &handled, &[arrays.as_bytes()]).await;
    let objects = format!(r#"42["a",{}1{}]"#, r#"{"k":"#.repeat(n), "}".repeat(n));
    assert_rejected(&server, &handled, &[objects.as_bytes()]).await;
    let binary = format!(
        r#"451-["a",{{"_placeholder":true,"num":0}},{}{}]"#,
        "[".repeat(n),
        "]".repeat(n)
    );
    assert_rejected(&server, &handled, &[binary.as_bytes(), b"bin:1"]).await;
    // In the CONNECT auth payload, on a connection that has not joined yet.
    let mut c = server.client().await;
    c.send(&format!(r#"40{}1{}"#, r#"{"k":"#.repeat(n), "}".repeat(n)))
        .await;
    c.expect_closed(CLOSE_WITHIN).await;
    server.wait_clients(0, CLOSE_WITHIN).await;
    let mut other = server.joined().await;
    other.assert_echo(1, "1").await;
}

/// Moderately nested JSON (well under any depth limit) is still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c29_reasonable_nesting_is_accepted() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let mut c = server.joined().await;
    let nested = format!("{}1{}", "[".repeat(32), "]".repeat(32));
    c.assert_echo(3, &nested).await;
}
