//! The client with the msgpack parser against the official `socket.io` 4.8 server with
//! `socket.io-msgpack-parser` (interop/node-servers/socketio-server.mjs `--msgpack`), over polling,
//! websocket and the upgrade: events, acks both ways, binary both ways, namespaces, CONNECT_ERROR, `send`.
//!
//! Each test starts its own Node server on port 0 and kills it when done. `interop/node_modules` is
//! installed with `npm ci` the first time it is missing.

#[allow(unused_macros)]
#[macro_use]
mod common;

use bytes::Bytes;
use common::*;
use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, MsgpackParser, Value};

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

#[tokio::test]
async fn events_acks_and_binary_with_the_node_server() {
    let server = NodeServer::start("socketio-server.mjs", &["--msgpack"]).await;
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
        let args = recv(&mut made, "made").await;
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
            recv(&mut answers, "answers").await,
            vec![Value::Array(vec![Value::from("why?")])]
        );

        // send: a `message` both ways.
        let mut messages = events(&main, "message");
        main.send(&(1, "a")).unwrap();
        assert_eq!(
            recv(&mut messages, "messages").await,
            vec![Value::from(1u64), Value::from("a")]
        );

        main.disconnect();
        custom.disconnect();
    }
}

#[tokio::test]
async fn connect_error_from_the_node_server() {
    let server = NodeServer::start("socketio-server.mjs", &["--msgpack"]).await;
    let socket = ferrio_client::connect(
        &format!("{}/nowhere", server.url),
        options(&[TransportKind::WebSocket]),
    );
    let mut errors = connect_errors(&socket);
    assert_eq!(
        recv(&mut errors, "errors").await.message,
        "Invalid namespace"
    );
    socket.disconnect();
}
