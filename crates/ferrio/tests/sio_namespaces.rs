//! Namespaces, rooms and connection middlewares (BAD_INPUTS cases 30 and 31): unknown namespaces are
//! refused without allocating anything, dynamic children are cleaned up, a repeated CONNECT never makes a
//! second socket, a socket's rooms are freed when it leaves, and a refusing middleware keeps the client out.

mod sio_common;

use ferrio::IoConfigBuilder;
use std::time::Duration;

use ferrio::{ConnectError, Event, Socket, Value};
use serde_json::json;
use sio_common::*;

const WITHIN: Duration = Duration::from_secs(3);

// ---- 30 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_unknown_namespaces_are_refused_without_state() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let start = server.io.namespaces_count();
    let mut c = server.joined().await;
    let n = 10_000;
    // In batches, reading the answers as they come, like a client would.
    for batch in (0..n).collect::<Vec<_>>().chunks(500) {
        for i in batch {
            c.send(&format!("40/ns{i},")).await;
        }
        for i in batch {
            let t = c.recv_text().await;
            assert_eq!(t, format!(r#"44/ns{i},{{"message":"Invalid namespace"}}"#));
        }
    }
    assert_eq!(server.io.namespaces_count(), start);
    assert_eq!(server.io.clients_count(), 1);
    // With auth payloads too, and names that look like the dynamic pattern of another test.
    c.send(r#"40/dyn-1,{"token":"x"}"#).await;
    assert_eq!(
        c.recv_text().await,
        r#"44/dyn-1,{"message":"Invalid namespace"}"#
    );
    assert_eq!(server.io.namespaces_count(), start);
    c.assert_echo(1, "\"alive\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_unknown_namespace_before_any_join() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let start = server.io.namespaces_count();
    let mut c = server.client().await;
    c.send("40/nope,").await;
    assert_eq!(
        c.recv_text().await,
        r#"44/nope,{"message":"Invalid namespace"}"#
    );
    // The connection may still join a real namespace afterwards.
    c.join("/").await;
    c.assert_echo(1, "1").await;
    assert_eq!(server.io.namespaces_count(), start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_dynamic_children_are_cleaned_up() {
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .cleanup_empty_child_namespaces(true)
            .build(),
    )
    .await;
    let connections = Counter::new();
    let dynamic = server
        .io
        .of_regex(regex::Regex::new(r"^/dyn-\d+$").unwrap());
    let cn = connections.clone();
    dynamic.on_connection(move |_s| {
        let cn = cn.clone();
        async move { cn.incr() }
    });
    dynamic.use_middleware(|s: Socket| async move {
        if s.nsp() == "/dyn-999" {
            Err(ConnectError::new("refused"))
        } else {
            Ok(())
        }
    });
    let start = server.io.namespaces_count();

    // 100 children joined, then left with `41`.
    let mut c = server.client().await;
    for i in 0..100 {
        c.join(&format!("/dyn-{i}")).await;
    }
    wait_until(WITHIN, "100 connections", || connections.get() == 100).await;
    assert_eq!(server.io.namespaces_count(), start + 100);
    for i in 0..100 {
        c.send(&format!("41/dyn-{i},")).await;
    }
    wait_until(WITHIN, "children removed after 41", || {
        server.io.namespaces_count() == start
    })
    .await;

    // 100 more, left by closing the connection.
    let mut c2 = server.client().await;
    for i in 100..200 {
        c2.join(&format!("/dyn-{i}")).await;
    }
    assert_eq!(server.io.namespaces_count(), start + 100);
    c2.close().await;
    wait_until(WITHIN, "children removed after close", || {
        server.io.namespaces_count() == start
    })
    .await;

    // A refused child leaves nothing behind.
    c.send("40/dyn-999,").await;
    let t = c.recv_text().await;
    assert_eq!(t, r#"44/dyn-999,{"message":"refused"}"#);
    wait_until(WITHIN, "refused child removed", || {
        server.io.namespaces_count() == start
    })
    .await;
    // The connection still works: join and leave one more child.
    c.join("/dyn-5").await;
    c.send("41/dyn-5,").await;
    wait_until(WITHIN, "last child removed", || {
        server.io.namespaces_count() == start
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_dynamic_children_stay_without_cleanup() {
    let server = TestServer::start(config()).await;
    let dynamic = server
        .io
        .of_regex(regex::Regex::new(r"^/dyn-\d+$").unwrap());
    dynamic.on_connection(|_s| async {});
    let start = server.io.namespaces_count();
    let mut c = server.client().await;
    c.join("/dyn-1").await;
    c.send("41/dyn-1,").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.io.namespaces_count(), start + 1);
    // Joining again reuses the child.
    c.join("/dyn-1").await;
    assert_eq!(server.io.namespaces_count(), start + 1);
}

async fn repeated_connect(nsp: &str) {
    let server = TestServer::start(config()).await;
    let connections = Counter::new();
    let cn = connections.clone();
    server.io.of(nsp).on_connection(move |_s| {
        let cn = cn.clone();
        async move { cn.incr() }
    });
    let mut c = server.client().await;
    c.join(nsp).await;
    let again = if nsp == "/" {
        "40".to_owned()
    } else {
        format!("40{nsp},")
    };
    c.send(&again).await;
    c.send(&again).await;
    // ferrio closes the connection (as the official server does); never a second socket.
    let seen = c.expect_closed(WITHIN).await;
    assert!(
        !seen
            .iter()
            .any(|i| matches!(i, Incoming::Text(t) if t.starts_with("40"))),
        "a second CONNECT was acknowledged: {seen:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(connections.get(), 1);
    server.wait_clients(0, WITHIN).await;
    assert!(server.io.of(nsp).sockets().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_repeated_connect_never_duplicates_main() {
    repeated_connect("/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_repeated_connect_never_duplicates_custom() {
    repeated_connect("/chat").await;
}

/// Two CONNECTs back to back, before the first is acknowledged (the middleware is slow).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c30_connect_race_makes_one_socket() {
    let server = TestServer::start(config()).await;
    let connections = Counter::new();
    let cn = connections.clone();
    server.io.use_middleware(|_s| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    });
    server.io.on_connection(move |_s| {
        let cn = cn.clone();
        async move { cn.incr() }
    });
    let mut c = server.client().await;
    c.send("40").await;
    c.send("40").await;
    let seen = c.expect_closed(WITHIN).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        connections.get() <= 1,
        "{} connections; received {seen:?}",
        connections.get()
    );
    assert!(server.io.of("/").sockets().len() <= 1);
    server.wait_clients(0, WITHIN).await;
    assert!(server.io.of("/").sockets().is_empty());
}

// ---- 31 ----

/// A million rooms, in the debug build too: the in-memory adapter is built optimized in test builds
/// (`[profile.dev.package.ferrio-core]`) and reserves room for a large join at once, so the whole test
/// costs about 3.5 s of CPU in a debug build.
const ROOMS: usize = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c31_a_million_rooms_are_freed_on_disconnect() {
    // Far past the default `max_rooms_per_socket` (10 000): the limit is off here.
    // Heartbeats as by default: the join computes for seconds in a debug build without awaiting, which
    // holds its connection's reading (listeners start on the connection's task), pongs included.
    let server = TestServer::start(
        IoConfigBuilder::from(config())
            .max_rooms_per_socket(None)
            .ping_interval(Duration::from_secs(25))
            .ping_timeout(Duration::from_secs(20))
            .build(),
    )
    .await;
    install_echo(&server.io);
    let joined = Counter::new();
    let left = Log::<Vec<ferrio::adapter::Room>>::new();
    let (j, l) = (joined.clone(), left.clone());
    server.io.on_connection(move |socket: Socket| {
        let (j, l) = (j.clone(), l.clone());
        async move {
            socket.on("join", move |s: Socket, _ev| {
                let j = j.clone();
                async move {
                    s.join((0..ROOMS).map(|i| format!("room-{i}"))).unwrap();
                    j.incr();
                }
            });
            socket.on_disconnect(move |s: Socket, _reason| {
                let l = l.clone();
                async move { l.push(s.rooms()) }
            });
        }
    });
    let mut other = server.joined().await;
    let mut c = server.joined().await;
    c.send(r#"42["join"]"#).await;
    // Generous waits: they end as soon as the work is done, and a loaded machine may be slow.
    wait_until(Duration::from_secs(30), "rooms joined", || {
        joined.get() == 1
    })
    .await;
    let main = server.io.of("/");
    // Both own rooms, plus the joined ones.
    assert_eq!(main.all_rooms().await.len(), ROOMS + 2);
    c.send("41").await;
    wait_until(Duration::from_secs(30), "disconnect handler", || {
        left.len() == 1
    })
    .await;
    assert_eq!(left.get()[0], Vec::<ferrio::adapter::Room>::new());
    let rooms = main.all_rooms().await;
    assert_eq!(rooms.len(), 1, "only the other socket's own room may stay");
    other.send("41").await;
    wait_until(Duration::from_secs(3), "second disconnect", || {
        left.len() == 2
    })
    .await;
    assert!(main.all_rooms().await.is_empty());
    // Both connections are still open (only the namespace was left).
    c.expect_open(Duration::from_millis(50)).await;
    other.expect_open(Duration::from_millis(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c31_rooms_are_freed_on_transport_close() {
    let server = TestServer::start(config()).await;
    server.io.on_connection(|socket: Socket| async move {
        socket.join(["a", "b", "c"]).unwrap();
    });
    let c1 = server.joined().await;
    let _c2 = server.joined().await;
    let main = server.io.of("/");
    // Two own rooms plus a, b, c.
    assert_eq!(main.all_rooms().await.len(), 5);
    c1.close().await;
    let mut rooms = 0;
    for _ in 0..200 {
        rooms = main.all_rooms().await.len();
        if rooms == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rooms, 4, "c1's own room must go, a/b/c stay for c2");
}

// ---- connection middlewares ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn middleware_refusal_sends_connect_error_with_data() {
    let server = TestServer::start(config()).await;
    let connections = Counter::new();
    let handled = Counter::new();
    server.io.use_middleware(|s: Socket| async move {
        if s.handshake().auth.get("token").and_then(Value::as_str) == Some("ok") {
            Ok(())
        } else {
            Err(ConnectError::new("nope")
                .with_data(&json!({"a": 1}))
                .unwrap())
        }
    });
    let (cn, h) = (connections.clone(), handled.clone());
    server.io.on_connection(move |socket: Socket| {
        cn.incr();
        let h = h.clone();
        async move {
            socket.on("x", move |_s, _ev: Event| {
                let h = h.clone();
                async move { h.incr() }
            });
        }
    });

    let mut c = server.client().await;
    c.send("40").await;
    assert_eq!(
        c.recv_text().await,
        r#"44{"message":"nope","data":{"a":1}}"#
    );
    // An event from the refused client is not handled (the namespace is not joined).
    c.send(r#"42["x"]"#).await;
    c.expect_closed(WITHIN).await;
    assert_eq!((connections.get(), handled.get()), (0, 0));
    assert!(server.io.of("/").sockets().is_empty());

    // Refused, then accepted on the same connection with the right auth (what the official client does).
    let mut c = server.client().await;
    c.send(r#"40{"token":"bad"}"#).await;
    assert_eq!(
        c.recv_text().await,
        r#"44{"message":"nope","data":{"a":1}}"#
    );
    c.send(r#"40{"token":"ok"}"#).await;
    let t = c.recv_text().await;
    assert!(t.starts_with(r#"40{"sid":""#), "{t}");
    c.send(r#"42["x"]"#).await;
    wait_until(WITHIN, "event handled", || handled.get() == 1).await;
    assert_eq!(connections.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn middleware_refusal_on_custom_namespace() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let admin = server.io.of("/admin");
    admin.use_middleware(|_s| async { Err(ConnectError::new("admins only")) });
    let connections = Counter::new();
    let cn = connections.clone();
    admin.on_connection(move |_s| {
        let cn = cn.clone();
        async move { cn.incr() }
    });
    let mut c = server.joined().await;
    c.send("40/admin,").await;
    assert_eq!(c.recv_text().await, r#"44/admin,{"message":"admins only"}"#);
    // The main namespace socket is unaffected.
    c.assert_echo(1, "1").await;
    assert_eq!(connections.get(), 0);
    assert!(admin.sockets().is_empty());
}

/// Events sent while a slow middleware runs are dropped if it refuses, and handled after the connection
/// handler if it accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_during_slow_middleware() {
    let server = TestServer::start(config()).await;
    let handled = Counter::new();
    server.io.use_middleware(|s: Socket| async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if s.handshake().auth.get("ok").is_some() {
            Ok(())
        } else {
            Err(ConnectError::new("slow no"))
        }
    });
    let h = handled.clone();
    server.io.on_connection(move |socket: Socket| {
        let h = h.clone();
        async move {
            socket.on("x", move |_s, _ev| {
                let h = h.clone();
                async move { h.incr() }
            });
        }
    });
    let mut refused = server.client().await;
    refused.send("40").await;
    refused.send(r#"42["x"]"#).await;
    let seen = refused.expect_open(Duration::from_millis(300)).await;
    assert_eq!(
        seen,
        vec![Incoming::Text(r#"44{"message":"slow no"}"#.into())]
    );
    assert_eq!(handled.get(), 0);

    let mut accepted = server.client().await;
    accepted.send(r#"40{"ok":1}"#).await;
    accepted.send(r#"42["x"]"#).await;
    let t = accepted.recv_text().await;
    assert!(t.starts_with("40{"), "{t}");
    wait_until(WITHIN, "queued event handled", || handled.get() == 1).await;
}
