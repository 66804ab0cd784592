//! What users bring from socket.io: per-socket timeouts, EventEmitter listeners, one `emit_with_ack`,
//! typed data, room counts, the namespace of a socket, and listeners that work while `on_connection`
//! awaits.

mod sio_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrio::{AckError, ConnectError, Event, IoConfigBuilder, Socket, TransportKind, Value};
use serde::{Deserialize, Serialize};
use sio_common::*;

async fn socket_of(server: &TestServer, sid: &str) -> Socket {
    let main = server.io.of("/");
    wait_until(Duration::from_secs(2), "socket registered", || {
        main.socket(sid).is_some()
    })
    .await;
    main.socket(sid).unwrap()
}

/// The ack id of an event the server emitted (`42<id>["q",…]`).
fn ack_id_of(frame: &str) -> u64 {
    let rest = frame
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("event expected, got {frame:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no ack id in {frame:?}"))
}

/// The bug a port from socket.io hit: `socket.timeout(d).emit_with_ack` must reach this socket (bob),
/// not everyone else (alice).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn socket_timeout_targets_this_socket_only() {
    let server = TestServer::start(config()).await;
    let mut alice = server.client().await;
    alice.join("/").await;
    let mut bob = server.client().await;
    let bob_sid = bob.join("/").await;
    let bob_socket = socket_of(&server, &bob_sid).await;

    let s = bob_socket.clone();
    let call = tokio::spawn(async move {
        s.timeout(Duration::from_secs(2))
            .emit_with_ack("q", &"for bob")
            .await
    });
    let frame = bob.recv_text().await;
    assert!(frame.ends_with(r#"["q","for bob"]"#), "{frame}");
    bob.send(&format!(r#"43{}["bob says yes"]"#, ack_id_of(&frame)))
        .await;
    let args = call.await.unwrap().expect("bob's ack").into_inner();
    assert_eq!(args, vec![Value::String("bob says yes".into())]);
    let to_alice = alice.expect_open(Duration::from_millis(200)).await;
    assert!(to_alice.is_empty(), "alice received {to_alice:?}");

    // Silent bob: a timeout, still nothing for alice.
    let t = Instant::now();
    let r = bob_socket
        .timeout(Duration::from_millis(200))
        .emit_with_ack("q", &2)
        .await;
    assert!(matches!(r, Err(AckError::Timeout)), "{r:?}");
    assert!(t.elapsed() >= Duration::from_millis(190));
    bob.recv_text().await;
    assert!(
        alice
            .expect_open(Duration::from_millis(100))
            .await
            .is_empty()
    );

    // The broadcast form has its own name and reaches everyone but bob.
    let s = bob_socket.clone();
    let call = tokio::spawn(async move {
        s.broadcast()
            .timeout(Duration::from_secs(2))
            .emit_with_ack("q", &"for the others")
            .await
    });
    let frame = alice.recv_text().await;
    alice
        .send(&format!(r#"43{}["alice says yes"]"#, ack_id_of(&frame)))
        .await;
    let acks = call.await.unwrap().expect("alice's ack");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, vec![Value::String("alice says yes".into())]);
    assert!(bob.expect_open(Duration::from_millis(100)).await.is_empty());
}

/// `IoConfig::ack_timeout` is the default of every `emit_with_ack` without `timeout(d)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_ack_timeout_applies_everywhere() {
    let config = IoConfigBuilder::from(config())
        .ack_timeout(Some(Duration::from_millis(150)))
        .build();
    let server = TestServer::start(config).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;

    let r = socket.emit_with_ack("q", &1).await;
    assert!(matches!(r, Err(AckError::Timeout)), "{r:?}");
    let r = server.io.emit_with_ack("q", &2).await;
    let e = r.expect_err("nobody answers");
    assert!(e.is_timeout() && e.responses().is_empty(), "{e}");
    // `timeout(d)` still wins over the default.
    let s = socket.clone();
    let call = tokio::spawn(async move {
        s.timeout(Duration::from_secs(2))
            .emit_with_ack("q", &3)
            .await
    });
    c.recv_text().await;
    c.recv_text().await;
    let frame = c.recv_text().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send(&format!("43{}[3]", ack_id_of(&frame))).await;
    assert!(call.await.unwrap().is_ok());
}

/// `on` appends, every listener runs in order; `once` runs once; `off` removes all; `off_listener` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listeners_follow_event_emitter_semantics() {
    let server = TestServer::start(config()).await;
    let seen = Log::<String>::new();
    let log = seen.clone();
    server.io.on_connection(move |socket: Socket| {
        let log = log.clone();
        async move {
            let l = log.clone();
            socket.on("e", move |_s, ev: Event| {
                let l = l.clone();
                async move { l.push(format!("first {}", ev.parse::<u32>().unwrap())) }
            });
            let l = log.clone();
            let second = socket.on("e", move |_s, ev: Event| {
                let l = l.clone();
                async move { l.push(format!("second {}", ev.parse::<u32>().unwrap())) }
            });
            let l = log.clone();
            socket.once("e", move |_s, ev: Event| {
                let l = l.clone();
                async move { l.push(format!("once {}", ev.parse::<u32>().unwrap())) }
            });
            let l = log.clone();
            socket.on("control", move |s: Socket, ev: Event| {
                let l = l.clone();
                async move {
                    match ev.parse::<String>().unwrap().as_str() {
                        "drop-second" => l.push(format!("removed {}", s.off_listener(second))),
                        "off" => s.off("e"),
                        _ => {}
                    }
                }
            });
            // Only the first listener acks: the ack goes once even though every listener holds it.
            socket.on("acked", |_s, mut ev: Event| async move {
                let _ = ev.ack(&"first");
            });
            socket.on("acked", |_s, mut ev: Event| async move {
                let _ = ev.ack(&"second");
            });
        }
    });
    let mut c = server.joined().await;
    c.send(r#"42["e",1]"#).await;
    c.send(r#"42["e",2]"#).await;
    c.send(r#"42["control","drop-second"]"#).await;
    c.send(r#"42["e",3]"#).await;
    c.send(r#"42["control","off"]"#).await;
    c.send(r#"42["e",4]"#).await;
    c.send(r#"427["acked"]"#).await;
    assert_eq!(c.recv_text().await, r#"437["first"]"#);
    assert!(c.expect_open(Duration::from_millis(100)).await.is_empty());
    assert_eq!(
        seen.get(),
        vec![
            "first 1",
            "second 1",
            "once 1",
            "first 2",
            "second 2",
            "removed true",
            "first 3",
        ]
    );
}

/// A listener added before the connection handler's first `await` receives events while it awaits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_flow_while_on_connection_awaits() {
    let server = TestServer::start(config()).await;
    let done = Counter::new();
    let d = done.clone();
    server.io.on_connection(move |socket: Socket| {
        let d = d.clone();
        async move {
            socket.on("ping", |s: Socket, _ev: Event| async move {
                let _ = s.emit("pong", &());
            });
            // An ack the client answers late: the handler waits 1 s here.
            let _ = socket
                .timeout(Duration::from_secs(1))
                .emit_with_ack("hello", &())
                .await;
            d.incr();
        }
    });
    let mut c = server.joined().await;
    assert!(c.recv_text().await.ends_with(r#"["hello"]"#));
    let t = Instant::now();
    c.send(r#"42["ping"]"#).await;
    assert_eq!(c.recv_text().await, r#"42["pong"]"#);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "the event waited for the connection handler: {:?}",
        t.elapsed()
    );
    assert_eq!(done.get(), 0, "the connection handler is still awaiting");
    wait_until(Duration::from_secs(2), "handler done", || done.get() == 1).await;
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct User {
    name: String,
    level: u32,
}

/// Typed data is stored as is and read back without JSON; other nodes see it serialized.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typed_socket_data() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;
    assert!(socket.data::<User>().is_none());
    socket.set_data(User {
        name: "bob".into(),
        level: 3,
    });
    let a = socket.data::<User>().expect("a User");
    let b = socket.data::<User>().expect("a User");
    assert!(Arc::ptr_eq(&a, &b), "read twice, stored once");
    assert_eq!(a.name, "bob");
    assert!(socket.data::<String>().is_none(), "not a String");
    let remote = server.io.fetch_sockets().await;
    assert_eq!(remote.len(), 1);
    assert_eq!(
        remote[0].data::<User>().unwrap(),
        User {
            name: "bob".into(),
            level: 3
        }
    );
}

/// A handler reaches its namespace, and a room's size is one adapter query.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_handle_and_room_count() {
    let server = TestServer::start(config()).await;
    server
        .io
        .of("/chat")
        .on_connection(|socket: Socket| async move {
            socket.on("join", |s: Socket, mut ev: Event| async move {
                let room = ev.parse::<String>().unwrap();
                s.join([room.clone()]).unwrap();
                let ns = s.namespace();
                let n = ns.to(room.as_str()).count().await.unwrap();
                let _ = ev.ack(&(ns.name(), n, s.transport() == TransportKind::WebSocket));
            });
        });
    let mut clients = Vec::new();
    for i in 1..=3 {
        let mut c = server.client().await;
        c.join("/chat").await;
        c.send(&format!(r#"42/chat,{i}["join","r"]"#)).await;
        assert_eq!(
            c.recv_text().await,
            format!(r#"43/chat,{i}["/chat",{i},true]"#)
        );
        clients.push(c);
    }
    let chat = server.io.of("/chat");
    assert_eq!(chat.to("r").count().await.unwrap(), 3);
    assert_eq!(chat.to("nobody").count().await.unwrap(), 0);
    let mut ids = chat.to("r").socket_ids().await.unwrap();
    ids.sort();
    let mut expected: Vec<_> = chat.sockets().iter().map(|s| s.id().to_owned()).collect();
    expected.sort();
    assert_eq!(
        ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        chat.to("r").except(ids[0].clone()).count().await.unwrap(),
        2
    );
}

/// A listener that captures its own socket does not keep the socket's listeners alive past disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listeners_are_dropped_when_the_socket_disconnects() {
    let server = TestServer::start(config()).await;
    let guard = Arc::new(());
    let g = guard.clone();
    server.io.on_connection(move |socket: Socket| {
        let g = g.clone();
        async move {
            let me = socket.clone();
            socket.on("x", move |_s, _ev: Event| {
                // Holds both its own socket and the guard: a cycle if the socket owned its listeners.
                let _keep = (me.clone(), g.clone());
                async {}
            });
        }
    });
    let c = server.joined().await;
    wait_until(Duration::from_secs(2), "listener added", || {
        Arc::strong_count(&guard) == 3
    })
    .await;
    c.close().await;
    wait_until(Duration::from_secs(2), "listeners dropped", || {
        Arc::strong_count(&guard) == 2
    })
    .await;
}

struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}

#[test]
fn connect_error_keeps_its_data_or_says_why_not() {
    let e = ConnectError::new("nope")
        .with_data(&serde_json::json!({"code": 7}))
        .unwrap();
    assert_eq!(e.data.unwrap().get("code").and_then(Value::as_u64), Some(7));
    assert!(
        ConnectError::new("nope")
            .with_data(&Unserializable)
            .is_err()
    );
}

/// `serve_until` stops accepting and disconnects everyone when its signal fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_until_shuts_down() {
    let io = ferrio::Io::new(config());
    let reasons = Log::<String>::new();
    let r = reasons.clone();
    io.on_connection(move |socket: Socket| {
        let r = r.clone();
        async move {
            socket.on_disconnect(move |_s, reason| {
                let r = r.clone();
                async move { r.push(reason.to_string()) }
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = io.clone();
    let server = tokio::spawn(async move {
        served
            .serve_until(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let mut c = Client::open(addr).await;
    c.join("/").await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("serve_until returns")
        .unwrap()
        .unwrap();
    c.expect_closed(Duration::from_secs(2)).await;
    wait_until(Duration::from_secs(2), "disconnect ran", || {
        reasons.get() == vec!["server shutting down".to_owned()]
    })
    .await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// One node: a server-side emit with acks has nobody to wait for, with or without a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_emit_with_ack_on_one_node() {
    let io = ferrio::Io::new(config());
    let acks = tokio::time::timeout(
        Duration::from_secs(1),
        io.server_side_emit_with_ack("sync", &1),
    )
    .await
    .expect("no other node to wait for")
    .unwrap();
    assert!(acks.is_empty());
    let acks = io
        .timeout(Duration::from_secs(5))
        .server_side_emit_with_ack("sync", &2)
        .await
        .unwrap();
    assert!(acks.is_empty());
}

#[derive(Serialize)]
struct Chat<'a> {
    from: &'a str,
    text: &'a str,
    n: Vec<Option<f64>>,
}

/// An emit is written straight from its data to text unless something needs its arguments as values
/// (an outgoing listener); either way the client reads the same frame, and a broadcast writes it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emits_read_the_same_whichever_way_they_are_written() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;
    let chat = Chat {
        from: "a",
        text: "q\"\n😀",
        n: vec![Some(1.0), Some(-2.5), None, Some(f64::NAN)],
    };
    let data = (&chat, 7u8, Some("x"), ());
    let expected = r#"42["ev",{"from":"a","text":"q\"\n😀","n":[1.0,-2.5,null,null]},7,"x",null]"#;

    socket.emit("ev", &data).unwrap();
    assert_eq!(c.recv_text().await, expected);
    server.io.to(sid.as_str()).emit("ev", &data).unwrap();
    assert_eq!(c.recv_text().await, expected);

    let seen = Log::new();
    let s = seen.clone();
    socket.on_any_outgoing(move |_s, event, args| s.push((event.to_owned(), args.to_vec())));
    socket.emit("ev", &data).unwrap();
    assert_eq!(c.recv_text().await, expected);
    assert_eq!(
        seen.get(),
        vec![("ev".to_owned(), ferrio::to_args(&data).unwrap())]
    );

    // The errors of serializing, before anything is written.
    assert!(socket.emit("ev", &Unserializable).is_err());
    assert!(
        server
            .io
            .to(sid.as_str())
            .emit("ev", &Unserializable)
            .is_err()
    );
    socket.off_any_outgoing();
    assert!(socket.emit("ev", &Unserializable).is_err());
    assert!(socket.emit("ev", &(1, i128::MAX)).is_err());
    // A blob still goes as an attachment.
    socket.emit("ev", &(1, Value::from(vec![1u8, 2]))).unwrap();
    assert_eq!(
        c.recv_text().await,
        r#"451-["ev",1,{"_placeholder":true,"num":0}]"#
    );
    // Its attachment, and nothing else.
    let rest = c.expect_open(Duration::from_millis(100)).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
}
