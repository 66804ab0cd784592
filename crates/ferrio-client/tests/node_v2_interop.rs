//! The client with `Protocol::V3` against the official JavaScript `socket.io` 2.x server (Engine.IO v3,
//! Socket.IO protocol v4; interop/node-servers/socketio-v2-server.mjs), over every transport setting:
//! polling only, websocket only, polling then the upgrade to websocket.
//!
//! Each test starts its own Node server on port 0 and kills it when done. `interop/node_modules` is
//! installed with `npm ci` the first time it is missing.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ferrio_client::engine::Protocol;
use ferrio_client::{ClientOptions, ConnectError, DisconnectReason, Manager, Value};

fn options(mode: Mode) -> ClientOptions {
    ClientOptions::builder()
        .protocol(Protocol::V3)
        .transports(mode.transports())
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
        .force_new(true)
        .build()
}

per_transport!(
    namespaces_ids_and_heartbeat,
    events_and_acks_both_ways,
    binary_both_ways,
    rooms_and_broadcast,
    namespace_errors,
    disconnect_reasons,
);

async fn namespaces_ids_and_heartbeat(mode: Mode) {
    // The client pings every 300 ms and the server gives up 500 ms after the last one.
    let server = NodeServer::start("socketio-v2-server.mjs", FAST_HEARTBEAT).await;
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
    let engine_id = manager.engine_id().expect("connected");
    assert_eq!(str_of(&a, "engineId"), engine_id);
    assert_eq!(str_of(&b, "engineId"), engine_id, "one Engine.IO session");
    assert_eq!(str_of(&a, "nsp"), "/");
    assert_eq!(str_of(&b, "nsp"), "/custom");
    // socket.io 2.x ids: the engine id on `/`, `<nsp>#<engine id>` elsewhere.
    assert_eq!(str_of(&a, "id"), engine_id);
    assert_eq!(str_of(&b, "id"), format!("/custom#{engine_id}"));
    assert_eq!(main.id().as_deref(), Some(str_of(&a, "id")));
    assert_eq!(custom.id().as_deref(), Some(str_of(&b, "id")));
    assert_eq!(str_of(&a, "transport"), mode.transport_name());

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
    nothing_within(&mut main_back, Duration::from_millis(100)).await;

    // The client's pings keep the session alive well past the server's 500 ms window.
    let mut reasons = disconnects(&main);
    nothing_within(&mut reasons, Duration::from_millis(1500)).await;
    assert_eq!(str_of(&whoami(&main).await, "engineId"), engine_id);
    main.disconnect();
    custom.disconnect();
}

async fn events_and_acks_both_ways(mode: Mode) {
    let server = NodeServer::start("socketio-v2-server.mjs", &[]).await;
    let socket = ferrio_client::connect(&server.url, options(mode));
    let mut answers = events(&socket, "answer");
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

    // Server → client with an ack (a binary ack on the way back).
    socket.emit("ask", &("why?", 21)).unwrap();
    assert_eq!(
        recv(&mut answers, "answer").await,
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

async fn binary_both_ways(mode: Mode) {
    let server = NodeServer::start("socketio-v2-server.mjs", &[]).await;
    // Binary payloads from the server, and base64 (`b64=1`) on a second connection.
    for force_base64 in [false, true] {
        let mut opts = options(mode);
        opts.engine.force_base64 = force_base64;
        let socket = ferrio_client::connect(&server.url, opts);
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
        let nested = obj([
            (
                "a",
                Value::Array(vec![every_byte.clone(), obj([("b", big.clone())])]),
            ),
            ("s", Value::from("text é")),
        ]);
        let args = vec![
            nested.clone(),
            Value::Array(vec![Value::from("x"), every_byte.clone()]),
            Value::Binary(Bytes::from_static(b"\x00top\xff")),
        ];
        let tuple = (args[0].clone(), args[1].clone(), args[2].clone());

        let described = ack(&socket, "describe", tuple.clone()).await;
        assert_eq!(
            described,
            vec![describe(&Value::Array(args.clone()))],
            "b64 {force_base64}"
        );
        assert_eq!(ack(&socket, "echo", tuple.clone()).await, args);
        socket.emit("emit-back", &tuple).unwrap();
        assert_eq!(recv(&mut back, "echo-back").await, args);

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
}

async fn rooms_and_broadcast(mode: Mode) {
    let server = NodeServer::start("socketio-v2-server.mjs", &[]).await;
    let manager = Manager::new(&server.url, options(mode));
    let main = manager.socket("/");
    let custom = manager.socket("/custom");
    let other = ferrio_client::connect(&format!("{}/custom", server.url), options(mode));
    let outsider = ferrio_client::connect(&format!("{}/custom", server.url), options(mode));
    let mut main_msgs = events(&main, "room-msg");
    let mut custom_msgs = events(&custom, "room-msg");
    let mut other_msgs = events(&other, "room-msg");
    let mut outsider_msgs = events(&outsider, "room-msg");
    wait_until("connected", || {
        main.connected() && custom.connected() && other.connected() && outsider.connected()
    })
    .await;
    assert_eq!(ack(&custom, "join", "r1").await, vec![Value::Bool(true)]);
    assert_eq!(ack(&other, "join", "r1").await, vec![Value::Bool(true)]);
    // `/`'s room of the same name is another room.
    assert_eq!(ack(&main, "join", "r1").await, vec![Value::Bool(true)]);

    let payload = obj([
        ("room", Value::from("r1")),
        ("event", Value::from("room-msg")),
    ]);
    let mut with_args = payload.clone();
    if let Value::Object(m) = &mut with_args {
        m.insert(
            "args".into(),
            Value::Array(vec![
                Value::from("hi"),
                Value::Binary(Bytes::from_static(b"\x01")),
            ]),
        );
    }
    assert_eq!(
        ack(&outsider, "broadcast-room", with_args).await,
        vec![Value::Bool(true)]
    );
    let want = vec![
        Value::from("hi"),
        Value::Binary(Bytes::from_static(b"\x01")),
    ];
    assert_eq!(recv(&mut custom_msgs, "custom room-msg").await, want);
    assert_eq!(recv(&mut other_msgs, "other room-msg").await, want);
    nothing_within(&mut outsider_msgs, Duration::from_millis(200)).await;
    nothing_within(&mut main_msgs, Duration::from_millis(1)).await;
    for s in [&main, &custom, &other, &outsider] {
        s.disconnect();
    }
}

async fn namespace_errors(mode: Mode) {
    let server = NodeServer::start("socketio-v2-server.mjs", &[]).await;
    let manager = Manager::new(&server.url, options(mode));

    // A middleware refusal with a message: a string on the wire.
    let guarded = manager.socket("/guarded");
    let mut errors = connect_errors(&guarded);
    let err = recv(&mut errors, "connect_error of /guarded").await;
    assert_eq!(err, ConnectError::new("not authorized"));
    assert!(!guarded.active() && !guarded.connected());

    // A refusal with `err.data`: the object on the wire, as the error's data.
    let data = manager.socket("/guarded-data");
    let mut errors = connect_errors(&data);
    let err = recv(&mut errors, "connect_error of /guarded-data").await;
    assert_eq!(err.message, "denied");
    assert_eq!(
        err.data,
        Some(json(serde_json::json!({ "message": "denied", "code": 42 })))
    );

    // A namespace the server does not have.
    let nope = manager.socket("/nope");
    let mut errors = connect_errors(&nope);
    assert_eq!(
        recv(&mut errors, "connect_error of /nope").await,
        ConnectError::new("Invalid namespace")
    );

    // The query goes with the namespace's CONNECT: the middleware lets this one in.
    let mut opts = options(mode);
    opts.engine.query.push(("token".into(), "ok".into()));
    let allowed = ferrio_client::connect(&format!("{}/guarded", server.url), opts);
    wait_until("connected with the token", || allowed.connected()).await;
    let me = whoami(&allowed).await;
    assert_eq!(str_of(&me, "nsp"), "/guarded");
    assert_eq!(
        me.get("query"),
        Some(&json(serde_json::json!({ "token": "ok" })))
    );
    allowed.disconnect();

    // A refusal of `/` reaches every socket: the server joins no namespace before `/`.
    let refusing = NodeServer::start("socketio-v2-server.mjs", &["--refuse-root"]).await;
    let manager = Manager::new(&refusing.url, options(mode));
    let custom = manager.socket("/custom");
    let root = manager.socket("/");
    let mut custom_errors = connect_errors(&custom);
    let mut root_errors = connect_errors(&root);
    assert_eq!(
        recv(&mut root_errors, "connect_error of /").await,
        ConnectError::new("root refused")
    );
    assert_eq!(
        recv(&mut custom_errors, "connect_error of /custom").await,
        ConnectError::new("root refused")
    );
    assert!(!root.connected() && !custom.connected());
}

async fn disconnect_reasons(mode: Mode) {
    let server = NodeServer::start("socketio-v2-server.mjs", &[]).await;
    let manager = Manager::new(&server.url, options(mode));
    let socket = manager.socket("/");
    let custom = manager.socket("/custom");
    let mut reasons = disconnects(&socket);
    let mut custom_reasons = disconnects(&custom);
    let mut connected = connects(&socket);
    let mut custom_connected = connects(&custom);
    let first = recv(&mut connected, "connect").await.expect("an id");
    recv(&mut custom_connected, "custom connect").await;
    settle(&manager, mode).await;

    // The Engine.IO connection closes under both sockets: "transport close", then a reconnection with
    // a new engine id, `/` joined by the server again.
    socket.emit("kill-transport", &()).unwrap();
    assert_eq!(
        recv(&mut reasons, "disconnect").await,
        DisconnectReason::TransportClose
    );
    assert_eq!(
        recv(&mut custom_reasons, "custom disconnect").await,
        DisconnectReason::TransportClose
    );
    let second = recv(&mut connected, "reconnect").await.expect("an id");
    let custom_id = recv(&mut custom_connected, "custom reconnect")
        .await
        .expect("an id");
    assert_ne!(first, second);
    assert_eq!(custom_id, format!("/custom#{second}"));
    // socket.io 2.x names the close it made itself "forced close".
    assert_eq!(
        server_disconnect_reason(&server.url, &first, options(Mode::WebSocket)).await,
        Value::from("forced close")
    );

    // Kicked by the server: "io server disconnect", no reconnection; the other namespace stays.
    custom.emit("kick", &()).unwrap();
    assert_eq!(
        recv(&mut custom_reasons, "kick").await,
        DisconnectReason::IoServerDisconnect
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!custom.connected() && !custom.active());
    assert!(socket.connected());
    assert_eq!(
        server_disconnect_reason(&server.url, &custom_id, options(Mode::WebSocket)).await,
        Value::from("server namespace disconnect")
    );

    // The client leaves: the server sees "client namespace disconnect".
    socket.disconnect();
    assert_eq!(
        recv(&mut reasons, "client disconnect").await,
        DisconnectReason::IoClientDisconnect
    );
    assert_eq!(
        server_disconnect_reason(&server.url, &second, options(Mode::WebSocket)).await,
        Value::from("client namespace disconnect")
    );

    // Joining `/` again on a new connection.
    socket.connect();
    let third = recv(&mut connected, "connect again").await.expect("an id");
    assert_eq!(manager.engine_id().as_deref(), Some(third.as_str()));
    assert_eq!(
        ack(&socket, "echo", "back").await,
        vec![Value::from("back")]
    );
    socket.disconnect();
}
