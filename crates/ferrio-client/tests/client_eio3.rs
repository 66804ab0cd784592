//! The client with `Protocol::V3` against the ferrio server with `allow_eio3`, in-process, over every
//! transport setting: the implicit join of `/`, socket ids, the client's heartbeat, acks and binary
//! both ways, a refused namespace, and the clients of both generations in one room.

use std::time::Duration;

use bytes::Bytes;
use ferrio::{ConnectError, Io, IoConfig, Socket as ServerSocket};
use ferrio_client::engine::{Protocol, TransportKind};
use ferrio_client::{ClientOptions, DisconnectReason, Manager, Value};
use tokio::sync::mpsc;

#[allow(unused_macros)]
#[macro_use]
mod common;
use common::*;

async fn server() -> (Io, String) {
    let mut config = IoConfig::default();
    config.engine.allow_eio3 = true;
    // The v3 client pings every 200 ms; the server gives up 400 ms after the last ping.
    config.engine.ping_interval = Duration::from_millis(200);
    config.engine.ping_timeout = Duration::from_millis(200);
    let io = Io::new(config);
    for nsp in ["/", "/custom"] {
        io.of(nsp).on_connection(|socket: ServerSocket| async move {
            socket.on("echo", |_s, mut ev: ferrio::Event| async move {
                let args = ev.take_args();
                if let Some(a) = ev.take_ack() {
                    let _ = a.send_args(args);
                }
            });
            socket.on(
                "whoami",
                |s: ServerSocket, mut ev: ferrio::Event| async move {
                    if let Some(a) = ev.take_ack() {
                        let _ = a.send(&(s.id(), s.conn_id(), s.nsp()));
                    }
                },
            );
            socket.on("ask", |s: ServerSocket, _ev| async move {
                let answer = s
                    .timeout(Duration::from_secs(2))
                    .emit_with_ack("question", &Value::Binary(Bytes::from_static(b"\x01\x02")))
                    .await;
                let _ = match answer {
                    Ok(args) => s.emit_args("answer", args.0),
                    Err(e) => s.emit("answer", &e.to_string()),
                };
            });
            socket.on("join", |s: ServerSocket, ev: ferrio::Event| async move {
                if let Some(room) = ev.args().first().and_then(Value::as_str) {
                    s.join([room.to_owned()]).unwrap();
                }
            });
        });
    }
    io.of("/guarded")
        .use_middleware(|s: ServerSocket| async move {
            match s.handshake().auth.get("token").and_then(Value::as_str) {
                Some("ok") => Ok(()),
                _ => Err(ConnectError::new("not authorized")),
            }
        });
    io.of("/guarded")
        .on_connection(|_s: ServerSocket| async move {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    (io, url)
}

fn options(transports: &[TransportKind]) -> ClientOptions {
    ClientOptions::builder()
        .protocol(Protocol::V3)
        .transports(transports.iter().copied())
        .reconnection_delay(Duration::from_millis(50))
        .force_new(true)
        .build()
}

#[tokio::test]
async fn v3_client_with_the_ferrio_server() {
    let (_io, url) = server().await;
    for mode in MODES {
        let manager = Manager::new(&url, options(mode));
        let main = manager.socket("/");
        let custom = manager.socket("/custom");
        let mut answers = events(&main, "answer");
        main.on("question", |_s, mut ev| async move {
            let mut args = ev.take_args();
            args.push(Value::from("from the client"));
            ev.take_ack().unwrap().send_args(args).unwrap();
        });
        let (tx, mut reasons) = mpsc::unbounded_channel();
        main.on_disconnect(move |_s, r: DisconnectReason| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(r);
            }
        });
        wait_until("connected", || main.connected() && custom.connected()).await;
        let eid = manager.engine_id().unwrap();
        assert_eq!(
            ack(&main, "whoami", ()).await,
            vec![
                Value::from(eid.as_str()),
                Value::from(eid.as_str()),
                Value::from("/")
            ],
            "{mode:?}"
        );
        let custom_id = format!("/custom#{eid}");
        assert_eq!(custom.id().as_deref(), Some(custom_id.as_str()));
        assert_eq!(
            ack(&custom, "whoami", ()).await,
            vec![
                Value::from(custom_id.as_str()),
                Value::from(eid.as_str()),
                Value::from("/custom")
            ]
        );

        let args = vec![
            Value::from("é 😀"),
            Value::Binary(Bytes::from_static(&[0, 1, 255])),
            [("nested", Value::Binary(Bytes::from_static(b"x")))]
                .into_iter()
                .collect(),
        ];
        assert_eq!(
            ack(
                &custom,
                "echo",
                (args[0].clone(), args[1].clone(), args[2].clone())
            )
            .await,
            args
        );
        main.emit("ask", &()).unwrap();
        assert_eq!(
            recv(&mut answers, "answers").await,
            vec![
                Value::Binary(Bytes::from_static(b"\x01\x02")),
                Value::from("from the client")
            ]
        );
        // The client's pings keep the session past the server's 400 ms window.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(reasons.try_recv().is_err(), "{mode:?}");
        assert_eq!(manager.engine_id(), Some(eid));
        main.disconnect();
        custom.disconnect();
    }
}

#[tokio::test]
async fn v3_namespace_refusal_and_query() {
    let (_io, url) = server().await;
    for mode in MODES {
        let refused = ferrio_client::connect(&format!("{url}/guarded"), options(mode));
        let (tx, mut errors) = mpsc::unbounded_channel();
        refused.on_connect_error(move |_s, e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
        assert_eq!(
            recv(&mut errors, "errors").await,
            ConnectError::new("not authorized")
        );
        assert!(!refused.active());

        // The query travels in the namespace's CONNECT, where the server reads it as the auth.
        let mut opts = options(mode);
        opts.engine.query.push(("token".into(), "ok".into()));
        let allowed = ferrio_client::connect(&format!("{url}/guarded"), opts);
        wait_until("the token is accepted", || allowed.connected()).await;
        allowed.disconnect();
    }
}

#[tokio::test]
async fn v3_and_v4_clients_share_a_room() {
    let (io, url) = server().await;
    let old = ferrio_client::connect(&url, options(&[TransportKind::Polling]));
    let mut v4 = ClientOptions::default();
    v4.force_new = true;
    let new = ferrio_client::connect(&url, v4);
    let mut old_msgs = events(&old, "news");
    let mut new_msgs = events(&new, "news");
    wait_until("both connected", || old.connected() && new.connected()).await;
    old.emit("join", &"r").unwrap();
    new.emit("join", &"r").unwrap();
    let blob = Value::Binary(Bytes::from_static(b"\x00\xff"));
    let want = vec![Value::from("hello"), blob.clone()];
    // Joins are handled in order on each socket; retry the broadcast until both are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        io.to("r").emit("news", &("hello", blob.clone())).unwrap();
        let got = tokio::time::timeout(Duration::from_millis(200), async {
            (old_msgs.recv().await, new_msgs.recv().await)
        })
        .await;
        if let Ok((Some(a), Some(b))) = got {
            assert_eq!(a, want);
            assert_eq!(b, want);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no broadcast");
    }
}
