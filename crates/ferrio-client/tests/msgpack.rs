//! The client and the server with the msgpack parser, in-process, over every transport: events, acks both
//! ways, binary, namespaces, CONNECT_ERROR, and `send` / `write` (the `message` event) on every emitter.

use std::sync::Arc;
use std::time::Duration;

use ferrio::{ConnectError, Io, IoConfig, MsgpackParser, Socket as ServerSocket};
use ferrio_client::{ClientOptions, Value};
use ferrio_proto::engine::TransportKind;
use tokio::sync::mpsc;

#[allow(unused_macros)]
#[macro_use]
mod common;
use common::*;

async fn server() -> (Io, String) {
    let config = IoConfig::builder()
        .parser(Arc::new(MsgpackParser::new()))
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(300))
        .build();
    let io = Io::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    (io, url)
}

fn options(transports: &[TransportKind]) -> ClientOptions {
    let mut o = ClientOptions::builder()
        .parser(MsgpackParser::new())
        .force_new(true)
        .build();
    o.engine.transports = transports.to_vec();
    o
}

fn app(io: &Io) {
    for nsp in ["/", "/custom"] {
        io.of(nsp).on_connection(|socket: ServerSocket| async move {
            socket.on("echo", |_s, mut ev: ferrio::Event| async move {
                let args = ev.take_args();
                if let Some(a) = ev.take_ack() {
                    let _ = a.send_args(args);
                }
            });
            socket.on("ask-me", |s: ServerSocket, _ev| async move {
                let answer = s
                    .timeout(Duration::from_secs(2))
                    .emit_with_ack(
                        "question",
                        &Value::Binary(bytes::Bytes::from_static(b"why?")),
                    )
                    .await;
                let text = match answer {
                    Ok(args) => args.parse::<String>().unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                let _ = s.emit("answer", &text);
            });
            // A `message` from the client comes back through every `send` of the server.
            socket.on(
                "message",
                |s: ServerSocket, mut ev: ferrio::Event| async move {
                    let args = ev.take_args();
                    let _ = s.send(&Value::Array(args.clone()));
                    let _ = s.write(&"write");
                    let _ = s.volatile().write(&"volatile");
                    let _ = s.namespace().to(s.id().to_string()).send(&"room");
                    let _ = s.namespace().write(&"namespace");
                },
            );
            socket.join([socket.id().to_string()]).unwrap();
            let _ = socket.emit("welcome", &socket.nsp());
        });
    }
}

#[tokio::test]
async fn events_acks_binary_and_namespaces_over_every_transport() {
    let (io, url) = server().await;
    app(&io);
    for mode in MODES {
        let main = ferrio_client::connect(&url, options(mode));
        let mut welcome = events(&main, "welcome");
        assert_eq!(
            recv(&mut welcome, "welcome").await,
            vec![Value::from("/")],
            "{mode:?}"
        );
        let custom = main.io().socket("/custom");
        let mut welcome2 = events(&custom, "welcome");
        assert_eq!(
            recv(&mut welcome2, "welcome2").await,
            vec![Value::from("/custom")]
        );
        assert_eq!(io.clients_count(), 1, "one connection for both namespaces");

        // Binary travels in place (no attachments), nested or not, with numbers of every size.
        let blob = bytes::Bytes::from_static(&[0, 1, 2, 255]);
        let nested = Value::Array(vec![
            Value::Object(
                [
                    ("blob".to_string(), Value::Binary(blob.clone())),
                    ("big".to_string(), Value::from(u64::MAX)),
                    ("neg".to_string(), Value::from(-70_000i64)),
                    ("pi".to_string(), Value::from(3.25f64)),
                    ("text".to_string(), Value::from("héllo")),
                ]
                .into_iter()
                .collect(),
            ),
            Value::Null,
        ]);
        let back = main
            .emit_with_ack("echo", &(nested.clone(), Value::Binary(blob.clone())))
            .await
            .unwrap();
        assert_eq!(back.0, vec![nested.clone(), Value::Binary(blob.clone())]);
        let back = custom.emit_with_ack("echo", &nested).await.unwrap();
        assert_eq!(back.0, vec![nested]);

        // The server asks (with a blob), the client answers.
        main.on("question", |_s, mut ev| async move {
            assert_eq!(ev.args()[0].as_bytes(), Some(&b"why?"[..]));
            let _ = ev.ack(&"because");
        });
        let mut answers = events(&main, "answer");
        main.emit("ask-me", &()).unwrap();
        assert_eq!(
            recv(&mut answers, "answers").await,
            vec![Value::from("because")]
        );

        // send / write both ways.
        let mut messages = events(&main, "message");
        main.send(&(1, "a")).unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(recv(&mut messages, "messages").await);
        }
        got.sort_by_key(|v| format!("{v:?}"));
        assert_eq!(
            got,
            vec![
                vec![Value::Array(vec![Value::from(1u64), Value::from("a")])],
                vec![Value::from("namespace")],
                vec![Value::from("room")],
                vec![Value::from("volatile")],
                vec![Value::from("write")],
            ]
        );
        main.write(&"again").unwrap();
        assert_eq!(
            recv(&mut messages, "messages").await,
            vec![Value::Array(vec![Value::from("again")])]
        );
        for _ in 0..4 {
            recv(&mut messages, "messages").await;
        }
        // Io::send reaches the main namespace only.
        let mut custom_messages = events(&custom, "message");
        io.send(&"everyone").unwrap();
        assert_eq!(
            recv(&mut messages, "messages").await,
            vec![Value::from("everyone")]
        );
        io.of("/custom").send(&"custom").unwrap();
        assert_eq!(
            recv(&mut custom_messages, "custom_messages").await,
            vec![Value::from("custom")]
        );
        main.volatile().send(&"from the emitter").unwrap();
        assert_eq!(
            recv(&mut messages, "messages").await,
            vec![Value::Array(vec![Value::from("from the emitter")])]
        );
        for _ in 0..4 {
            recv(&mut messages, "messages").await;
        }

        main.disconnect();
        custom.disconnect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connect_errors_of_middlewares_and_unknown_namespaces() {
    let (io, url) = server().await;
    io.of("/private")
        .use_middleware(|_s: ServerSocket| async move {
            Err(ConnectError::new("not authorized")
                .with_data(&serde_json::json!({ "code": 42 }))
                .expect("json serializes"))
        });
    for (nsp, message) in [
        ("/private", "not authorized"),
        ("/nowhere", "Invalid namespace"),
    ] {
        let socket =
            ferrio_client::connect(&format!("{url}{nsp}"), options(&[TransportKind::WebSocket]));
        let (tx, mut errors) = mpsc::unbounded_channel();
        socket.on_connect_error(move |_s, err| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(err);
            }
        });
        let err = recv(&mut errors, "errors").await;
        assert_eq!(err.message, message);
        if nsp == "/private" {
            assert_eq!(
                err.data.as_ref().and_then(|d| d.get("code")),
                Some(&Value::from(42u64))
            );
        }
        socket.disconnect();
    }
}

#[tokio::test]
async fn a_json_client_cannot_talk_to_a_msgpack_server() {
    let (io, url) = server().await;
    app(&io);
    let mut opts = options(&[TransportKind::WebSocket]);
    opts.parser = Arc::new(ferrio_client::JsonParser::default());
    opts.reconnection = false;
    let socket = ferrio_client::connect(&url, opts);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!socket.connected());
    assert!(io.of("/").sockets().is_empty());
    socket.disconnect();
}
