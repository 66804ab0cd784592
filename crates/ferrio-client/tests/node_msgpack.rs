//! The client with the msgpack parser against the official `socket.io` 4.8 server with
//! `socket.io-msgpack-parser` (interop/node-servers/socketio-server.mjs `--msgpack`), over polling,
//! websocket and the upgrade: events, acks both ways, binary both ways, namespaces, CONNECT_ERROR, `send`.
//!
//! Each test starts its own Node server on port 0 and kills it when done. `interop/node_modules` is
//! installed with `npm ci` the first time it is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, MsgpackParser, Socket, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

fn ensure_node_modules() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = interop_dir();
        if dir
            .join("node_modules/socket.io-msgpack-parser/package.json")
            .exists()
        {
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

/// A running `socketio-server.mjs --msgpack`, killed on drop (it also exits when its stdin closes).
struct NodeServer {
    url: String,
    _child: Child,
    _stdin: ChildStdin,
}

impl NodeServer {
    async fn start() -> NodeServer {
        ensure_node_modules();
        let dir = interop_dir();
        let node = std::env::var("FERRIO_NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(node)
            .arg(dir.join("node-servers/socketio-server.mjs"))
            .args(["--port", "0", "--msgpack"])
            .args(["--ping-interval", "1000", "--ping-timeout", "1000"])
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

const MODES: [&[TransportKind]; 3] = [
    &[TransportKind::Polling],
    &[TransportKind::WebSocket],
    &[TransportKind::Polling, TransportKind::WebSocket],
];

fn options(transports: &[TransportKind]) -> ClientOptions {
    let mut o = ClientOptions::builder()
        .parser(MsgpackParser::new())
        .force_new(true)
        .build();
    o.engine.transports = transports.to_vec();
    o.engine.upgrade = true;
    o
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out")
        .expect("closed")
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

fn json(v: serde_json::Value) -> Value {
    ferrio_client::to_value(&v).unwrap()
}

#[tokio::test]
async fn events_acks_and_binary_with_the_node_server() {
    let server = NodeServer::start().await;
    for mode in MODES {
        let main = ferrio_client::connect(&server.url, options(mode));
        let who = main.emit_with_ack("whoami", &()).await.unwrap();
        assert_eq!(who.0[0].get("nsp"), Some(&Value::from("/")), "{mode:?}");
        let custom = main.io().socket("/custom");
        let who = custom.emit_with_ack("whoami", &()).await.unwrap();
        assert_eq!(who.0[0].get("nsp"), Some(&Value::from("/custom")));

        // Our blobs arrive as Node Buffers, nested or not.
        let blob = Value::Binary(Bytes::from_static(&[0, 1, 255]));
        let described = main
            .emit_with_ack(
                "describe",
                &(
                    blob.clone(),
                    json(serde_json::json!({"n": -1.5, "big": 1u64 << 40})),
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            described.0[0],
            json(serde_json::json!([{"$binary": "0001ff"}, {"n": -1.5, "big": 1u64 << 40}]))
        );
        let echoed = custom
            .emit_with_ack("echo", &Value::Array(vec![blob.clone(), Value::Null]))
            .await
            .unwrap();
        assert_eq!(
            echoed.0,
            vec![Value::Array(vec![blob.clone(), Value::Null])]
        );

        // Node's Buffers arrive as blobs.
        let mut made = events(&main, "made-binary");
        main.emit("make-binary", &"beef").unwrap();
        let args = recv(&mut made).await;
        let b = Value::Binary(Bytes::from_static(&[0xbe, 0xef]));
        assert_eq!(args[0].get("a").and_then(|a| a.get_index(0)), Some(&b));
        assert_eq!(args[1].get_index(2).and_then(|e| e.get("e")), Some(&b));

        // The server asks, the client answers.
        main.on("question", |_s, mut ev| async move {
            let args = ev.take_args();
            let _ = ev.ack(&Value::Array(args));
        });
        let mut answers = events(&main, "answer");
        main.emit("ask", &"why?").unwrap();
        assert_eq!(
            recv(&mut answers).await,
            vec![Value::Array(vec![Value::from("why?")])]
        );

        // send: a `message` both ways.
        let mut messages = events(&main, "message");
        main.send(&(1, "a")).unwrap();
        assert_eq!(
            recv(&mut messages).await,
            vec![Value::from(1u64), Value::from("a")]
        );

        main.disconnect();
        custom.disconnect();
    }
}

#[tokio::test]
async fn connect_error_from_the_node_server() {
    let server = NodeServer::start().await;
    let socket = ferrio_client::connect(
        &format!("{}/nowhere", server.url),
        options(&[TransportKind::WebSocket]),
    );
    let (tx, mut errors) = mpsc::unbounded_channel();
    socket.on_connect_error(move |_s, err| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(err);
        }
    });
    assert_eq!(recv(&mut errors).await.message, "Invalid namespace");
    socket.disconnect();
}
