//! The client with `Protocol::V3` against the official JavaScript `socket.io` 2.x server (Engine.IO v3,
//! Socket.IO protocol v4; interop/node-servers/socketio-v2-server.mjs), over every transport setting:
//! polling only, websocket only, polling then the upgrade to websocket.
//!
//! Each test starts its own Node server on port 0 and kills it when done. `interop/node_modules` is
//! installed with `npm ci` the first time it is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrio_client::engine::{Protocol, TransportKind};
use ferrio_client::{ClientOptions, ConnectError, DisconnectReason, Manager, Socket, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Any single wait for something the server or the client should do.
const STEP: Duration = Duration::from_secs(5);

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Installs `interop/node_modules` once per test process when it is missing.
fn ensure_node_modules() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = interop_dir();
        if dir.join("node_modules/socket.io-v2/package.json").exists() {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("cannot run npm (is Node.js installed?)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

/// A running `socketio-v2-server.mjs`, killed on drop (it also exits when its stdin closes).
struct NodeServer {
    url: String,
    _child: Child,
    _stdin: ChildStdin,
}

impl NodeServer {
    /// Starts the server with `extra` flags (a 1 s + 1 s heartbeat unless they set one).
    async fn start(extra: &[&str]) -> NodeServer {
        ensure_node_modules();
        let dir = interop_dir();
        let node = std::env::var("FERRIO_NODE").unwrap_or_else(|_| "node".into());
        let heartbeat: &[&str] = if extra.contains(&"--ping-interval") {
            &[]
        } else {
            &["--ping-interval", "1000", "--ping-timeout", "1000"]
        };
        let mut child = Command::new(node)
            .arg(dir.join("node-servers/socketio-v2-server.mjs"))
            .args(["--port", "0"])
            .args(heartbeat)
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot spawn node");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("the node server did not print its listening line in time")
            .expect("cannot read the node server's stdout")
            .expect("the node server exited before listening");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodeServer {
            url,
            _child: child,
            _stdin: stdin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Polling,
    WebSocket,
    Upgrade,
}

fn options(mode: Mode) -> ClientOptions {
    let transports = match mode {
        Mode::Polling => vec![TransportKind::Polling],
        Mode::WebSocket => vec![TransportKind::WebSocket],
        Mode::Upgrade => vec![TransportKind::Polling, TransportKind::WebSocket],
    };
    ClientOptions::builder()
        .protocol(Protocol::V3)
        .transports(transports)
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
        .force_new(true)
        .build()
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(STEP, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("channel closed waiting for {what}"))
}

async fn nothing_within<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, d: Duration) {
    if let Ok(Some(v)) = tokio::time::timeout(d, rx.recv()).await {
        panic!("unexpected {v:?}");
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn events(socket: &Socket, name: &str) -> mpsc::UnboundedReceiver<Vec<Value>> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on(name, move |_s, mut ev| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ev.take_args());
        }
    });
    rx
}

fn disconnects(socket: &Socket) -> mpsc::UnboundedReceiver<DisconnectReason> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_disconnect(move |_s, r| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(r);
        }
    });
    rx
}

fn connects(socket: &Socket) -> mpsc::UnboundedReceiver<Option<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_connect(move |s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s.id());
        }
    });
    rx
}

fn connect_errors(socket: &Socket) -> mpsc::UnboundedReceiver<ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_connect_error(move |_s, e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e);
        }
    });
    rx
}

async fn ack(socket: &Socket, event: &str, args: impl serde::Serialize) -> Vec<Value> {
    tokio::time::timeout(STEP, socket.emit_with_ack(event, &args))
        .await
        .unwrap_or_else(|_| panic!("no ack to {event} in time"))
        .unwrap_or_else(|e| panic!("ack to {event} failed: {e}"))
        .0
}

async fn whoami(socket: &Socket) -> Value {
    ack(socket, "whoami", ())
        .await
        .into_iter()
        .next()
        .expect("whoami acked without arguments")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key} in {v:?}"))
}

fn obj<const N: usize>(entries: [(&str, Value); N]) -> Value {
    entries.into_iter().collect()
}

fn json(v: serde_json::Value) -> Value {
    ferrio_client::to_value(&v).unwrap()
}

fn transport_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Polling => "polling",
        Mode::WebSocket | Mode::Upgrade => "websocket",
    }
}

/// In upgrade mode, waits for the upgrade to websocket.
async fn settle(manager: &Manager, mode: Mode) {
    let want = match mode {
        Mode::Polling => TransportKind::Polling,
        Mode::WebSocket | Mode::Upgrade => TransportKind::WebSocket,
    };
    wait_until("the transport settles", || {
        manager.transport() == Some(want)
    })
    .await;
}

/// The reason the server saw for socket `id` disconnecting, asked from another connection.
async fn server_disconnect_reason(url: &str, id: &str) -> Value {
    let p = ferrio_client::connect(url, options(Mode::WebSocket));
    wait_until("the probe is connected", || p.connected()).await;
    let deadline = Instant::now() + STEP;
    loop {
        let r = ack(&p, "disconnect-reason", id).await.remove(0);
        if !r.is_null() || Instant::now() > deadline {
            p.disconnect();
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three tests per scenario, one per transport setting.
macro_rules! per_transport {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn polling() {
                super::$scenario(super::Mode::Polling).await
            }
            #[tokio::test]
            async fn websocket() {
                super::$scenario(super::Mode::WebSocket).await
            }
            #[tokio::test]
            async fn upgrade() {
                super::$scenario(super::Mode::Upgrade).await
            }
        }
    )*};
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
    let server = NodeServer::start(&["--ping-interval", "300", "--ping-timeout", "200"]).await;
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
    assert_eq!(str_of(&a, "transport"), transport_name(mode));

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
    let server = NodeServer::start(&[]).await;
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
    let server = NodeServer::start(&[]).await;
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
    let server = NodeServer::start(&[]).await;
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
    let server = NodeServer::start(&[]).await;
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
    let refusing = NodeServer::start(&["--refuse-root"]).await;
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
    let server = NodeServer::start(&[]).await;
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
        server_disconnect_reason(&server.url, &first).await,
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
        server_disconnect_reason(&server.url, &custom_id).await,
        Value::from("server namespace disconnect")
    );

    // The client leaves: the server sees "client namespace disconnect".
    socket.disconnect();
    assert_eq!(
        recv(&mut reasons, "client disconnect").await,
        DisconnectReason::IoClientDisconnect
    );
    assert_eq!(
        server_disconnect_reason(&server.url, &second).await,
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
