//! The client against the official JavaScript `socket.io` 4.8 server (interop/node-servers/socketio-server.mjs),
//! over every transport setting: polling only, websocket only, polling then the upgrade to websocket.
//!
//! Each test starts its own Node server on port 0 and kills it when done. `interop/node_modules` is
//! installed with `npm ci` the first time it is missing.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ferrio_client::{
    AckError, Auth, ClientOptions, DisconnectReason, Manager, ManagerEvent, Value,
};
use tokio::sync::mpsc;

fn options(mode: Mode) -> ClientOptions {
    let mut o = ClientOptions::default();
    o.engine.transports = mode.transports();
    o.engine.upgrade = true;
    o.reconnection_delay = Duration::from_millis(50);
    o.reconnection_delay_max = Duration::from_millis(200);
    o.force_new = true;
    o
}

per_transport!(
    namespaces_share_one_engine_session,
    auth_is_refreshed_on_reconnect,
    acks_both_ways,
    binary_nested_both_ways,
    volatile_emits,
    offline_buffer_in_order,
    retries_with_ack_timeout,
    reconnects_after_transport_close,
    manual_disconnect_does_not_reconnect,
    kicked_by_the_server,
    rooms,
    recovery_broadcast_during_disconnection,
    recovery_broadcast_around_reconnection,
);

// ---------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------

async fn namespaces_share_one_engine_session(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", FAST_HEARTBEAT).await;
    let manager = Manager::new(&server.url, options(mode));
    let main = manager.socket("/");
    let custom = manager.socket("/custom");
    let mut main_back = events(&main, "echo-back");
    let mut custom_back = events(&custom, "echo-back");
    wait_until("both namespaces are connected", || {
        main.connected() && custom.connected()
    })
    .await;
    settle(&manager, mode).await;

    let a = whoami(&main).await;
    let b = whoami(&custom).await;
    assert_eq!(str_of(&a, "nsp"), "/");
    assert_eq!(str_of(&b, "nsp"), "/custom");
    assert_eq!(
        str_of(&a, "engineId"),
        str_of(&b, "engineId"),
        "one Engine.IO session"
    );
    assert_eq!(manager.engine_id().as_deref(), Some(str_of(&a, "engineId")));
    assert_ne!(str_of(&a, "id"), str_of(&b, "id"));
    assert_eq!(main.id().as_deref(), Some(str_of(&a, "id")));
    assert_eq!(custom.id().as_deref(), Some(str_of(&b, "id")));
    assert_eq!(str_of(&a, "transport"), mode.transport_name());
    assert_eq!(str_of(&b, "transport"), mode.transport_name());

    // Packets go to their namespace only.
    custom.emit("emit-back", &"to custom").unwrap();
    main.emit("emit-back", &"to main").unwrap();
    assert_eq!(
        recv(&mut custom_back, "custom echo-back").await,
        vec![Value::from("to custom")]
    );
    assert_eq!(
        recv(&mut main_back, "main echo-back").await,
        vec![Value::from("to main")]
    );
    nothing_within(&mut main_back, Duration::from_millis(200)).await;
    nothing_within(&mut custom_back, Duration::from_millis(1)).await;

    // Heartbeats (pingInterval 300 ms, pingTimeout 200 ms) keep the session alive.
    let mut reasons = disconnects(&main);
    nothing_within(&mut reasons, Duration::from_millis(1200)).await;
    assert_eq!(whoami(&main).await.get("engineId"), a.get("engineId"));

    // `connect(url)` multiplexes too (no force_new).
    let mut opts = options(mode);
    opts.force_new = false;
    let c1 = ferrio_client::connect(&server.url, opts.clone());
    let c2 = ferrio_client::connect(&format!("{}/custom", server.url), opts);
    wait_until("the connect() sockets are connected", || {
        c1.connected() && c2.connected()
    })
    .await;
    let a = whoami(&c1).await;
    let b = whoami(&c2).await;
    assert_eq!(str_of(&b, "nsp"), "/custom");
    assert_eq!(str_of(&a, "engineId"), str_of(&b, "engineId"));
    assert_ne!(
        manager.engine_id().as_deref(),
        Some(str_of(&a, "engineId")),
        "force_new gave the first manager its own session"
    );
    for s in [main, custom, c1, c2] {
        s.disconnect();
    }
}

async fn auth_is_refreshed_on_reconnect(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut opts = options(mode);
    opts.auth = Auth::function(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move { json(serde_json::json!({ "token": format!("t{n}"), "n": n })) }
    });
    let socket = ferrio_client::connect(&server.url, opts);
    let mut reasons = disconnects(&socket);
    let mut connected = connects(&socket);
    recv(&mut connected, "connect").await;
    let first = whoami(&socket).await;
    assert_eq!(
        first.get("auth"),
        Some(&json(serde_json::json!({ "token": "t0", "n": 0 })))
    );

    socket.emit("kill-transport", &()).unwrap();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::TransportClose
    );
    recv(&mut connected, "reconnect").await;
    let second = whoami(&socket).await;
    assert_eq!(
        second.get("auth"),
        Some(&json(serde_json::json!({ "token": "t1", "n": 1 }))),
        "the auth function runs again for the new connection"
    );
    assert_ne!(str_of(&first, "engineId"), str_of(&second, "engineId"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    socket.disconnect();
}

async fn acks_both_ways(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let socket = ferrio_client::connect(&server.url, options(mode));
    let mut answers = events(&socket, "answer");
    let mut answer_errors = events(&socket, "answer-error");
    let questions = Arc::new(Mutex::new(Vec::new()));
    let seen = questions.clone();
    socket.on("question", move |_s, mut ev| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(ev.args().to_vec());
            let n = ev.args().get(1).and_then(Value::as_u64).unwrap_or(0);
            let blob = Value::Binary(Bytes::from_static(&[0, 255, 1]));
            ev.ack(&("because", n * 2, serde_json::json!({ "ok": true }), blob))
                .unwrap();
        }
    });
    wait_until("connected", || socket.connected()).await;

    // Client → server, several arguments and none.
    let args = (1, "two", serde_json::json!({ "three": [3, null, 3.5] }));
    assert_eq!(
        ack(&socket, "echo", args.clone()).await,
        ferrio_client::to_args(&args).unwrap()
    );
    assert_eq!(ack(&socket, "echo", ()).await, Vec::<Value>::new());
    assert_eq!(
        ack(&socket, "echo", "é ☃ 😀").await,
        vec![Value::from("é ☃ 😀")]
    );
    // A timeout for one emit: `emit-back` never acks.
    let t0 = Instant::now();
    let err = socket
        .timeout(Duration::from_millis(200))
        .emit_with_ack("emit-back", &1)
        .await
        .unwrap_err();
    assert!(matches!(err, AckError::Timeout), "{err:?}");
    assert!(t0.elapsed() >= Duration::from_millis(190));

    // Server → client: emitWithAck `question`, the client's ack comes back as `answer`.
    socket.emit("ask", &("why?", 21)).unwrap();
    let answer = tokio::select! {
        a = recv(&mut answers, "answer") => a,
        e = recv(&mut answer_errors, "answer-error") => panic!("the server got no ack: {e:?}"),
    };
    assert_eq!(
        answer,
        vec![
            Value::from("because"),
            Value::from(42u64),
            json(serde_json::json!({ "ok": true })),
            Value::Binary(Bytes::from_static(&[0, 255, 1])),
        ]
    );
    assert_eq!(
        *questions.lock().unwrap(),
        vec![vec![Value::from("why?"), Value::from(21u64)]]
    );
    socket.disconnect();
}

/// What the server's `describe` answers for a value: buffers become `{"$binary": hex}`.
fn describe(v: &Value) -> Value {
    match v {
        Value::Binary(b) => obj([("$binary", Value::from(hex(b)))]),
        Value::Array(a) => Value::Array(a.iter().map(describe).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), describe(v))).collect())
        }
        other => other.clone(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn binary_nested_both_ways(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let socket = ferrio_client::connect(&server.url, options(mode));
    let mut back = events(&socket, "echo-back");
    let mut made = events(&socket, "made-binary");
    wait_until("connected", || socket.connected()).await;

    let every_byte = Value::Binary((0..=255u8).collect::<Vec<u8>>().into());
    let big = Value::Binary(
        (0..100_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>()
            .into(),
    );
    let empty = Value::Binary(Bytes::new());
    let nested = obj([
        (
            "a",
            Value::Array(vec![every_byte.clone(), obj([("b", big.clone())])]),
        ),
        (
            "c",
            obj([("d", Value::Array(vec![Value::Array(vec![empty])]))]),
        ),
        ("s", Value::from("text")),
        ("n", Value::from(1.5f64)),
    ]);
    let args = vec![
        nested.clone(),
        Value::Array(vec![Value::from("x"), every_byte.clone()]),
        Value::Binary(Bytes::from_static(b"\x00top\xff")),
    ];
    let tuple = (args[0].clone(), args[1].clone(), args[2].clone());

    // Client → server: the server sees Buffers with the same bytes, where they were.
    let described = ack(&socket, "describe", tuple.clone()).await;
    assert_eq!(described, vec![describe(&Value::Array(args.clone()))]);

    // Round trips through the server's ack and through a server emit.
    assert_eq!(ack(&socket, "echo", tuple.clone()).await, args);
    socket.emit("emit-back", &tuple).unwrap();
    assert_eq!(recv(&mut back, "echo-back").await, args);

    // Server → client: buffers built by Node.
    let bytes = b"\x00\x01binary\xfe\xff";
    socket.emit("make-binary", &hex(bytes)).unwrap();
    let buf = Value::Binary(Bytes::from_static(bytes));
    assert_eq!(
        recv(&mut made, "made-binary").await,
        vec![
            obj([
                (
                    "a",
                    Value::Array(vec![buf.clone(), obj([("b", buf.clone())])])
                ),
                (
                    "c",
                    obj([("d", Value::Array(vec![Value::Array(vec![buf.clone()])]))])
                ),
            ]),
            Value::Array(vec![buf.clone(), Value::from("x"), obj([("e", buf)])]),
        ]
    );
    socket.disconnect();
}

async fn volatile_emits(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let mut opts = options(mode);
    opts.auto_connect = false;
    // Long enough for the emits of the disconnect handler to happen while disconnected.
    opts.reconnection_delay = Duration::from_millis(300);
    opts.reconnection_delay_max = Duration::from_millis(300);
    opts.randomization_factor = 0.0;
    let manager = Manager::new(&server.url, opts);
    let socket = manager.socket("/");
    let mut back = events(&socket, "echo-back");
    let mut volatile = events(&socket, "v");
    let mut connected = connects(&socket);
    let mut reasons = disconnects(&socket);

    // Before the first connection: the volatile emits are dropped, the others buffered.
    socket.volatile().emit("emit-back", &"volatile-1").unwrap();
    socket.emit("emit-back", &"buffered-1").unwrap();
    socket.volatile().emit("emit-back", &"volatile-2").unwrap();
    socket.emit("emit-back", &"buffered-2").unwrap();
    socket.connect();
    recv(&mut connected, "connect").await;
    assert_eq!(
        recv(&mut back, "echo-back").await,
        vec![Value::from("buffered-1")]
    );
    assert_eq!(
        recv(&mut back, "echo-back").await,
        vec![Value::from("buffered-2")]
    );
    settle(&manager, mode).await;
    socket
        .volatile()
        .emit("emit-back", &"volatile-online")
        .unwrap();
    assert_eq!(
        recv(&mut back, "echo-back").await,
        vec![Value::from("volatile-online")]
    );

    // While reconnecting: the same.
    let emitted_disconnected = Arc::new(Mutex::new(None));
    let flag = emitted_disconnected.clone();
    socket.on_disconnect(move |s, _r| {
        let flag = flag.clone();
        async move {
            let offline = !s.connected();
            s.volatile().emit("emit-back", &"volatile-3").unwrap();
            s.emit("emit-back", &"buffered-3").unwrap();
            *flag.lock().unwrap() = Some(offline);
        }
    });
    socket.emit("kill-transport", &()).unwrap();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::TransportClose
    );
    recv(&mut connected, "reconnect").await;
    assert_eq!(
        recv(&mut back, "echo-back").await,
        vec![Value::from("buffered-3")]
    );
    assert_eq!(
        *emitted_disconnected.lock().unwrap(),
        Some(true),
        "the disconnect handler ran while disconnected"
    );
    nothing_within(&mut back, Duration::from_millis(300)).await;

    // Server → client volatile emits: whatever arrives is in order, without duplicates.
    settle(&manager, mode).await;
    socket.emit("volatile-burst", &20).unwrap();
    let mut got = vec![];
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(300), volatile.recv()).await
    {
        got.push(v[0].as_u64().unwrap());
    }
    assert!(!got.is_empty(), "no volatile event at all");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]) && got.iter().all(|&i| i < 20),
        "{got:?}"
    );
    socket.disconnect();
}

async fn offline_buffer_in_order(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let mut opts = options(mode);
    opts.auto_connect = false;
    let socket = Manager::new(&server.url, opts).socket("/");
    let mut back = events(&socket, "echo-back");
    let outgoing = Arc::new(Mutex::new(Vec::new()));
    let out = outgoing.clone();
    socket.on_any_outgoing(move |_s, name, args| {
        out.lock().unwrap().push((name.to_owned(), args.to_vec()));
    });

    for i in 0..10u32 {
        socket.emit("emit-back", &i).unwrap();
    }
    let s = socket.clone();
    let acked = tokio::spawn(async move { s.emit_with_ack("echo", &"with ack").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.emit("emit-back", &10).unwrap();
    assert!(!socket.connected());
    assert!(
        outgoing.lock().unwrap().is_empty(),
        "nothing goes out while disconnected"
    );

    socket.connect();
    for i in 0..=10u32 {
        assert_eq!(
            recv(&mut back, "echo-back").await,
            vec![Value::from(i)],
            "in order"
        );
    }
    let r = tokio::time::timeout(STEP, acked)
        .await
        .expect("no ack")
        .unwrap()
        .unwrap();
    assert_eq!(r.0, vec![Value::from("with ack")]);
    let names: Vec<String> = outgoing
        .lock()
        .unwrap()
        .iter()
        .map(|(n, a)| match &a[0] {
            Value::String(s) => format!("{n}:{s}"),
            v => format!("{n}:{}", v.as_u64().unwrap()),
        })
        .collect();
    let mut expected: Vec<String> = (0..10).map(|i| format!("emit-back:{i}")).collect();
    expected.push("echo:with ack".into());
    expected.push("emit-back:10".into());
    assert_eq!(names, expected);
    socket.disconnect();
}

async fn retries_with_ack_timeout(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let mut opts = options(mode);
    opts.ack_timeout = Some(Duration::from_millis(300));
    opts.retries = 3;
    let socket = ferrio_client::connect(&server.url, opts);
    wait_until("connected", || socket.connected()).await;

    // One emit: the first delivery is not acked, the second is.
    let t0 = Instant::now();
    let r = tokio::time::timeout(STEP, socket.emit_with_ack("drop-first-ack", &"single"))
        .await
        .expect("no answer")
        .expect("the retry got no ack");
    assert_eq!(
        r.0,
        vec![Value::from(2u64)],
        "answered by the second delivery"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t0.elapsed()
    );

    // Several queued emits (with and without ack): one in flight at a time, order kept.
    let done = Arc::new(Mutex::new(Vec::new()));
    let run = |key: &'static str| {
        let socket = socket.clone();
        let done = done.clone();
        async move {
            let r = socket.emit_with_ack("drop-first-ack", &key).await;
            done.lock().unwrap().push(key);
            r
        }
    };
    let a = run("order-a");
    let c = run("order-c");
    let (a, c) = tokio::time::timeout(STEP * 2, async {
        tokio::join!(a, async {
            // Polled after `a` has been queued.
            socket.emit("drop-first-ack", &"order-b").unwrap();
            c.await
        })
    })
    .await
    .expect("the queued emits did not complete");
    assert_eq!(a.unwrap().0, vec![Value::from(2u64)]);
    assert_eq!(c.unwrap().0, vec![Value::from(2u64)]);
    assert_eq!(*done.lock().unwrap(), vec!["order-a", "order-c"]);

    // Nothing is delivered a third time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = ack(&socket, "deliveries", "").await.remove(0);
    assert_eq!(
        seen,
        json(serde_json::json!({
            "counts": { "single": 2, "order-a": 2, "order-b": 2, "order-c": 2 },
            "log": ["single", "single", "order-a", "order-a", "order-b", "order-b", "order-c", "order-c"],
        }))
    );
    socket.disconnect();
}

async fn reconnects_after_transport_close(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let manager = Manager::new(&server.url, options(mode));
    let (tx, mut manager_events) = mpsc::unbounded_channel();
    manager.on_event(move |e| {
        let _ = tx.send(e.clone());
    });
    let socket = manager.socket("/");
    let mut reasons = disconnects(&socket);
    let mut connected = connects(&socket);
    let first_id = recv(&mut connected, "connect").await;
    settle(&manager, mode).await;
    let before = whoami(&socket).await;
    assert_eq!(first_id.as_deref(), Some(str_of(&before, "id")));

    socket.emit("kill-transport", &()).unwrap();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::TransportClose
    );
    let second_id = recv(&mut connected, "reconnect").await;
    assert!(socket.connected());
    assert_ne!(first_id, second_id, "a new session without recovery");
    let after = whoami(&socket).await;
    assert_eq!(second_id.as_deref(), Some(str_of(&after, "id")));
    assert_ne!(str_of(&before, "engineId"), str_of(&after, "engineId"));
    assert_eq!(after.get("recovered"), Some(&Value::Bool(false)));
    assert_eq!(
        ack(&socket, "echo", "after").await,
        vec![Value::from("after")]
    );

    let mut seen = vec![];
    while let Ok(e) = manager_events.try_recv() {
        seen.push(e);
    }
    let close = seen
        .iter()
        .position(|e| *e == ManagerEvent::Close("transport close".into()));
    let attempt = seen
        .iter()
        .position(|e| matches!(e, ManagerEvent::ReconnectAttempt(1)));
    let reconnect = seen
        .iter()
        .position(|e| matches!(e, ManagerEvent::Reconnect(1)));
    assert!(
        close.is_some() && close < attempt && attempt < reconnect,
        "{seen:?}"
    );
    socket.disconnect();
}

async fn manual_disconnect_does_not_reconnect(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let socket = ferrio_client::connect(&server.url, options(mode));
    let mut reasons = disconnects(&socket);
    let mut connected = connects(&socket);
    let id = recv(&mut connected, "connect")
        .await
        .expect("connected without id");
    assert_eq!(ack(&socket, "echo", 1).await, vec![Value::from(1u64)]);

    socket.disconnect();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::IoClientDisconnect
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!socket.connected());
    assert!(socket.id().is_none());
    nothing_within(&mut connected, Duration::from_millis(1)).await;

    // `connect()` brings it back.
    socket.connect();
    let again = recv(&mut connected, "connect after connect()").await;
    assert_ne!(again.as_deref(), Some(id.as_str()));
    assert_eq!(ack(&socket, "echo", 2).await, vec![Value::from(2u64)]);
    socket.disconnect();
}

/// The server must see the client's DISCONNECT ("client namespace disconnect"), not the end of the
/// transport. The official client sends the Engine.IO close packet only once the DISCONNECT has been
/// written (in its own request over polling).
async fn server_sees_client_namespace_disconnect(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let socket = ferrio_client::connect(&server.url, options(mode));
    let mut connected = connects(&socket);
    let id = recv(&mut connected, "connect")
        .await
        .expect("connected without id");
    // Right away: in upgrade mode, most often before the upgrade completes.
    socket.disconnect();
    assert_eq!(
        server_disconnect_reason(&server.url, &id, options(Mode::WebSocket)).await,
        Value::from("client namespace disconnect")
    );
}

// Written out: the polling variants fail (client bug, see the ignore reasons).
mod server_sees_client_namespace_disconnect {
    #[tokio::test]
    async fn polling() {
        super::server_sees_client_namespace_disconnect(super::Mode::Polling).await
    }
    #[tokio::test]
    async fn websocket() {
        super::server_sees_client_namespace_disconnect(super::Mode::WebSocket).await
    }
    #[tokio::test]
    async fn upgrade() {
        super::server_sees_client_namespace_disconnect(super::Mode::Upgrade).await
    }
}

async fn kicked_by_the_server(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let socket = ferrio_client::connect(&server.url, options(mode));
    let mut reasons = disconnects(&socket);
    let mut connected = connects(&socket);
    let id = recv(&mut connected, "connect")
        .await
        .expect("connected without id");

    socket.emit("kick", &()).unwrap();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::IoServerDisconnect
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!socket.connected());
    nothing_within(&mut connected, Duration::from_millis(1)).await;
    nothing_within(&mut reasons, Duration::from_millis(1)).await;
    assert_eq!(
        server_disconnect_reason(&server.url, &id, options(Mode::WebSocket)).await,
        Value::from("server namespace disconnect")
    );
}

async fn rooms(mode: Mode) {
    let server = NodeServer::start("socketio-server.mjs", &[]).await;
    let manager = Manager::new(&server.url, options(mode));
    let main = manager.socket("/");
    let custom = manager.socket("/custom");
    let other = ferrio_client::connect(&format!("{}/custom", server.url), options(mode));
    let mut main_msgs = events(&main, "room-msg");
    let mut custom_msgs = events(&custom, "room-msg");
    let mut other_msgs = events(&other, "room-msg");
    wait_until("connected", || {
        main.connected() && custom.connected() && other.connected()
    })
    .await;
    assert_eq!(ack(&custom, "join", "r1").await, vec![Value::Bool(true)]);
    let blob = Value::Binary(Bytes::from_static(&[9, 8, 7]));
    let payload = obj([
        ("room", Value::from("r1")),
        ("event", Value::from("room-msg")),
        ("args", Value::Array(vec![Value::from(1u64), blob.clone()])),
    ]);
    // Sent from a socket that is not in the room.
    assert_eq!(
        ack(&other, "broadcast-room", payload).await,
        vec![Value::Bool(true)]
    );
    assert_eq!(
        recv(&mut custom_msgs, "room-msg").await,
        vec![Value::from(1u64), blob]
    );
    nothing_within(&mut other_msgs, Duration::from_millis(200)).await;
    nothing_within(&mut main_msgs, Duration::from_millis(1)).await;
    for s in [main, custom, other] {
        s.disconnect();
    }
}

/// Connection state recovery: `count` events are broadcast `broadcast_delay` after the transport is
/// killed; the client comes back after `reconnect_delay`, recovers its session and gets every event once.
async fn recovery(mode: Mode, reconnect_delay: Duration, broadcast_delay: Duration) {
    const N: u64 = 20;
    let server = NodeServer::start("socketio-server.mjs", &["--recovery"]).await;
    let mut opts = options(mode);
    opts.reconnection_delay = reconnect_delay;
    opts.reconnection_delay_max = reconnect_delay;
    opts.randomization_factor = 0.0;
    let manager = Manager::new(&server.url, opts);
    let socket = manager.socket("/");
    let mut reasons = disconnects(&socket);
    let mut connected = connects(&socket);
    let mut warmup = events(&socket, "warmup");
    let mut missed = events(&socket, "missed");
    let mut room_msgs = events(&socket, "room-msg");
    let id = recv(&mut connected, "connect").await.expect("no id");
    assert!(!socket.recovered());
    settle(&manager, mode).await;
    assert_eq!(ack(&socket, "join", "kept").await, vec![Value::Bool(true)]);

    // The session is restored from the offset of the last broadcast received: get one first.
    socket
        .emit(
            "broadcast-later",
            &serde_json::json!({ "event": "warmup", "count": 1, "delayMs": 0 }),
        )
        .unwrap();
    let w = recv(&mut warmup, "warmup").await;
    assert_eq!(w.first(), Some(&Value::from(0u64)));
    assert!(
        matches!(w.last(), Some(Value::String(_))),
        "the server appends the offset: {w:?}"
    );

    socket
        .emit(
            "broadcast-later",
            &serde_json::json!({
                "event": "missed", "count": N, "delayMs": broadcast_delay.as_millis() as u64,
            }),
        )
        .unwrap();
    socket.emit("kill-transport", &()).unwrap();
    let t0 = Instant::now();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::TransportClose
    );
    let again = recv(&mut connected, "reconnect").await;
    let reconnected_after = t0.elapsed();
    assert!(
        socket.recovered(),
        "not recovered (reconnected after {reconnected_after:?})"
    );
    assert_eq!(again.as_deref(), Some(id.as_str()), "same socket id");

    let mut got = vec![];
    for _ in 0..N {
        let args = recv(&mut missed, "missed").await;
        got.push(args[0].as_u64().expect("a number"));
    }
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "every event once, in order"
    );
    nothing_within(&mut missed, Duration::from_millis(300)).await;

    let me = whoami(&socket).await;
    assert_eq!(me.get("recovered"), Some(&Value::Bool(true)));
    assert_eq!(str_of(&me, "id"), id);
    // The rooms came back with the session.
    let payload = obj([
        ("room", Value::from("kept")),
        ("event", Value::from("room-msg")),
        ("args", Value::Array(vec![Value::from("still here")])),
    ]);
    ack(&socket, "broadcast-room", payload).await;
    assert_eq!(
        recv(&mut room_msgs, "room-msg").await[0],
        Value::from("still here")
    );
    socket.disconnect();
}

async fn recovery_broadcast_during_disconnection(mode: Mode) {
    // The broadcast happens at 100 ms, the client is back at ~600 ms: the events are replayed.
    recovery(mode, Duration::from_millis(600), Duration::from_millis(100)).await;
}

async fn recovery_broadcast_around_reconnection(mode: Mode) {
    // The client is back at ~50 ms, the broadcast happens at 200 ms: live or replayed, once each.
    recovery(mode, Duration::from_millis(50), Duration::from_millis(200)).await;
}
