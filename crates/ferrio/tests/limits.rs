//! Limits a server needs beyond the protocol's own: handshakes in progress per address, children of
//! dynamic namespaces, rooms per socket and attachments per packet. Each is configurable, answered the
//! way the official server answers the same refusal, and leaves the rest of the server working.

mod common;
mod sio_common;

use std::sync::Arc;
use std::time::Duration;

use ferrio::{Io, IoConfig, IoConfigBuilder, JoinError, JsonParser, Socket};
use sio_common::{Counter, Incoming, Log, TestServer, config, wait_until};

const WITHIN: Duration = Duration::from_secs(3);

fn handshake_target() -> &'static str {
    "/socket.io/?EIO=4&transport=polling"
}

/// A polling handshake on the Socket.IO path: the response.
async fn try_handshake(server: &TestServer) -> common::HttpResponse {
    common::request(server.addr, "GET", handshake_target(), &[], b"").await
}

/// A polling handshake that must succeed: the sid.
async fn handshake(server: &TestServer) -> String {
    let res = try_handshake(server).await;
    assert_eq!(res.status, 200, "handshake refused: {}", res.text());
    common::parse_open(&res.body)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post(server: &TestServer, sid: &str, body: &str) -> common::HttpResponse {
    common::request(
        server.addr,
        "POST",
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        &[("Content-Type", "text/plain;charset=UTF-8")],
        body.as_bytes(),
    )
    .await
}

// ---- handshakes in progress per address ----

#[test]
fn handshake_cap_defaults() {
    assert_eq!(
        IoConfig::default()
            .engine
            .max_pending_handshakes_per_address,
        Some(1_000)
    );
    // A raw Engine.IO server has no notion of "established" of its own: no cap unless asked.
    assert_eq!(
        ferrio::engine::EngineConfig::default().max_pending_handshakes_per_address,
        None
    );
    let c = IoConfig::builder()
        .max_pending_handshakes_per_address(Some(7))
        .build();
    assert_eq!(c.engine.max_pending_handshakes_per_address, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_per_address_are_capped() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .max_pending_handshakes_per_address(Some(3))
            .build(),
    )
    .await;
    let sids = [
        handshake(&server).await,
        handshake(&server).await,
        handshake(&server).await,
    ];
    // The fourth session in progress from 127.0.0.1 is refused as `allow_request` refuses one.
    try_handshake(&server)
        .await
        .assert_error(403, 4, "Too many pending handshakes");
    // Over websocket too, and nothing was opened for the refused ones.
    let ws = common::request(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=websocket",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    )
    .await;
    ws.assert_error(403, 4, "Too many pending handshakes");
    assert_eq!(server.io.clients_count(), 3);

    // Joining a namespace ends the handshake: its slot is free again.
    assert_eq!(post(&server, &sids[0], "40").await.status, 200);
    wait_until(WITHIN, "joined", || server.io.of("/").sockets().len() == 1).await;
    let fourth = handshake(&server).await;
    try_handshake(&server)
        .await
        .assert_error(403, 4, "Too many pending handshakes");

    // Closing a session in progress frees its slot as well.
    assert_eq!(post(&server, &sids[1], "1").await.status, 200);
    wait_until(WITHIN, "session closed", || server.io.clients_count() == 3).await;
    let _fifth = handshake(&server).await;
    assert_eq!(server.io.clients_count(), 4);
    let _ = fourth;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_dropped_by_connect_timeout_free_their_slot() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .max_pending_handshakes_per_address(Some(1))
            .connect_timeout(Duration::from_millis(300))
            .build(),
    )
    .await;
    let _sid = handshake(&server).await;
    try_handshake(&server)
        .await
        .assert_error(403, 4, "Too many pending handshakes");
    // No CONNECT within connect_timeout: the server closes the session, and the address may try again.
    wait_until(WITHIN, "connect timeout", || server.io.clients_count() == 0).await;
    let _again = handshake(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handshake_cap_when_turned_off() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .max_pending_handshakes_per_address(None)
            .build(),
    )
    .await;
    for _ in 0..50 {
        handshake(&server).await;
    }
    assert_eq!(server.io.clients_count(), 50);
}

// ---- dynamic namespaces ----

#[test]
fn dynamic_namespace_and_room_caps_default() {
    let c = IoConfig::default();
    assert_eq!(c.max_dynamic_namespaces, Some(10_000));
    assert_eq!(c.max_rooms_per_socket, Some(10_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_namespaces_are_capped() {
    let io = Io::new(
        IoConfigBuilder::from(config())
            .max_dynamic_namespaces(Some(2))
            .cleanup_empty_child_namespaces(true)
            .build(),
    );
    io.of_regex(regex::Regex::new(r"^/dyn-\d+$").unwrap());
    let server = TestServer::serve(io).await;
    let base = server.io.namespaces_count();
    let mut a = server.joined().await;
    a.join("/dyn-1").await;
    a.join("/dyn-2").await;
    assert_eq!(server.io.namespaces_count(), base + 2);
    // A third new name matches the pattern, but would be one child too many: refused as a name that
    // matches nothing, and the connection stays.
    a.send("40/dyn-3,").await;
    assert_eq!(
        a.recv_text().await,
        r#"44/dyn-3,{"message":"Invalid namespace"}"#
    );
    assert_eq!(server.io.namespaces_count(), base + 2);
    // Children that exist still take new sockets.
    let mut b = server.joined().await;
    b.join("/dyn-1").await;
    // Once a child is removed (cleanup_empty_child_namespaces), its place is free.
    a.send("41/dyn-2,").await;
    wait_until(WITHIN, "child removed", || {
        server.io.namespaces_count() == base + 1
    })
    .await;
    a.join("/dyn-3").await;
    assert_eq!(server.io.namespaces_count(), base + 2);
    a.expect_open(Duration::from_millis(50)).await;
}

// ---- rooms per socket ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_per_socket_are_capped() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .max_rooms_per_socket(Some(5))
            .build(),
    )
    .await;
    let results = Log::<(String, Result<(), JoinError>, usize)>::new();
    let r = results.clone();
    server.io.on_connection(move |socket: Socket| {
        let r = r.clone();
        async move {
            let step = |what: &str, res: Result<(), JoinError>| {
                r.push((what.to_owned(), res, socket.rooms().len()));
            };
            // Its own room plus three: four of five.
            step("abc", socket.join(["a", "b", "c"]));
            // Two more would be six: refused, and neither is added.
            step("de", socket.join(["d", "e"]));
            // Rooms it is in already do not count again: `a` and `d` make five.
            step("ad", socket.join(["a", "d", "d"]));
            step("a again", socket.join(["a"]));
            step("f", socket.join(["f"]));
            // Leaving makes room.
            socket.leave("a");
            step("f after leave", socket.join(["f"]));
        }
    });
    let _c = server.joined().await;
    wait_until(WITHIN, "joins", || results.len() == 6).await;
    let too_many = Err(JoinError::TooManyRooms { max: 5 });
    let got = results.get();
    let expected = [
        ("abc", Ok(()), 4),
        ("de", too_many.clone(), 4),
        ("ad", Ok(()), 5),
        ("a again", Ok(()), 5),
        ("f", too_many, 5),
        ("f after leave", Ok(()), 5),
    ];
    for (g, e) in got.iter().zip(expected) {
        assert_eq!((g.0.as_str(), &g.1, g.2), (e.0, &e.1, e.2));
    }
    assert_eq!(
        JoinError::TooManyRooms { max: 5 }.to_string(),
        "too many rooms: a socket may be in 5 rooms at most"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_joins_skip_a_socket_at_its_cap() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .max_rooms_per_socket(Some(3))
            .build(),
    )
    .await;
    let full = Counter::new();
    let f = full.clone();
    server.io.on_connection(move |socket: Socket| {
        let f = f.clone();
        async move {
            // The first socket fills its rooms (its own, x and y).
            if f.get() == 0 {
                socket.join(["x", "y"]).unwrap();
            }
            f.incr();
        }
    });
    let _c = server.joined().await;
    wait_until(WITHIN, "full socket", || full.get() == 1).await;
    let _d = server.joined().await;
    wait_until(WITHIN, "second socket", || full.get() == 2).await;
    // `socketsJoin` on everyone: the socket at its cap is skipped, the other joins.
    server.io.of("/").sockets_join(["z"]).await;
    let in_z = server
        .io
        .of("/")
        .adapter()
        .sockets(&ferrio::adapter::BroadcastOptions {
            rooms: [Arc::from("z")].into_iter().collect(),
            ..Default::default()
        });
    assert_eq!(in_z.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_room_cap_when_turned_off() {
    // Default heartbeats: the join of many rooms holds a worker for a while in a debug build.
    let server = TestServer::start(IoConfig::builder().max_rooms_per_socket(None).build()).await;
    let ok = Counter::new();
    let o = ok.clone();
    server.io.on_connection(move |socket: Socket| {
        let o = o.clone();
        async move {
            socket.join((0..12_000).map(|i| format!("r{i}"))).unwrap();
            o.incr();
        }
    });
    let _c = server.joined().await;
    wait_until(Duration::from_secs(10), "joined", || ok.get() == 1).await;
    assert_eq!(server.io.of("/").all_rooms().await.len(), 12_001);
}

// ---- attachments per packet ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attachments_is_configurable() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .parser(Arc::new(JsonParser { max_attachments: 2 }) as Arc<dyn ferrio::Parser>)
            .build(),
    )
    .await;
    let got = Counter::new();
    let g = got.clone();
    server.io.on_connection(move |socket: Socket| {
        let g = g.clone();
        async move {
            socket.on("bin", move |_s: Socket, _ev| {
                let g = g.clone();
                async move { g.incr() }
            });
        }
    });
    let placeholder = |n: usize| format!(r#"{{"_placeholder":true,"num":{n}}}"#);
    // Two attachments: accepted.
    let mut ok = server.joined().await;
    ok.send(&format!(
        r#"452-["bin",{},{}]"#,
        placeholder(0),
        placeholder(1)
    ))
    .await;
    ok.send_binary(vec![1u8]).await;
    ok.send_binary(vec![2u8]).await;
    wait_until(WITHIN, "binary event", || got.get() == 1).await;
    // Three: the connection is closed ("parse error"), no handler runs.
    let mut bad = server.joined().await;
    bad.send(&format!(
        r#"453-["bin",{},{},{}]"#,
        placeholder(0),
        placeholder(1),
        placeholder(2)
    ))
    .await;
    let before_close = bad.expect_closed(WITHIN).await;
    assert!(
        !before_close.iter().any(|m| matches!(m, Incoming::Text(_))),
        "{before_close:?}"
    );
    assert_eq!(got.get(), 1);
    ok.expect_open(Duration::from_millis(50)).await;
}
