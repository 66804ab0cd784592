//! The client against the ferrio server, in-process: namespaces, acks both ways, binary, offline buffer,
//! reconnection, manual disconnect, connect errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrio::{ConnectError, Io, IoConfig, Socket as ServerSocket};
use ferrio_client::{AckError, Auth, ClientOptions, DisconnectReason, ManagerEvent, Value};
use ferrio_proto::engine::TransportKind;
use tokio::sync::mpsc;

#[allow(unused_macros)]
#[macro_use]
mod common;
use common::*;

async fn server(config: IoConfig) -> (Io, String) {
    let io = Io::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    (io, url)
}

fn fast_config() -> IoConfig {
    let mut c = IoConfig::default();
    c.engine.ping_interval = Duration::from_millis(200);
    c.engine.ping_timeout = Duration::from_millis(200);
    c
}

fn echo_app(io: &Io) {
    for nsp in ["/", "/custom"] {
        let engine = io.engine().clone();
        io.of(nsp).on_connection(move |socket: ServerSocket| {
            let engine = engine.clone();
            async move {
                socket.on("echo", |_s, mut ev: ferrio::Event| async move {
                    let args = ev.take_args();
                    if let Some(a) = ev.take_ack() {
                        let _ = a.send_args(args);
                    }
                });
                socket.on("ask-me", |s: ServerSocket, _ev| async move {
                    let answer = s
                        .timeout(Duration::from_secs(2))
                        .emit_with_ack("question", &"why?")
                        .await;
                    let text = match answer {
                        Ok(args) => args.parse::<String>().unwrap_or_default(),
                        Err(e) => e.to_string(),
                    };
                    let _ = s.emit("answer", &text);
                });
                // Closes the Engine.IO connection without a Socket.IO DISCONNECT: the client must reconnect.
                socket.on("kill-transport", move |s: ServerSocket, _ev| {
                    let engine = engine.clone();
                    async move {
                        if let Some(conn) = engine.socket(s.conn_id()) {
                            conn.close();
                        }
                    }
                });
                socket.on("kick", |s: ServerSocket, _ev| async move {
                    s.disconnect(false);
                });
                let _ = socket.emit("welcome", &socket.nsp());
            }
        });
    }
}

fn options(transports: &[TransportKind]) -> ClientOptions {
    let mut o = ClientOptions::default();
    o.engine.transports = transports.to_vec();
    o.reconnection_delay = Duration::from_millis(50);
    o.reconnection_delay_max = Duration::from_millis(200);
    o.force_new = true;
    o
}

#[tokio::test]
async fn namespaces_acks_and_binary_over_every_transport() {
    let (io, url) = server(fast_config()).await;
    echo_app(&io);
    for mode in MODES {
        let main = ferrio_client::connect(&url, options(mode));
        let mut welcome = events(&main, "welcome");
        assert_eq!(recv(&mut welcome, "welcome").await, vec![Value::from("/")]);
        let custom = main.io().socket("/custom");
        let mut welcome2 = events(&custom, "welcome");
        assert_eq!(
            recv(&mut welcome2, "welcome2").await,
            vec![Value::from("/custom")],
            "{mode:?}"
        );
        assert_eq!(
            io.clients_count(),
            1,
            "both namespaces share one connection"
        );

        let blob = bytes::Bytes::from_static(&[0, 1, 2, 255]);
        let sent = serde_json::json!({ "text": "héllo", "n": [1, 2, 3] });
        let ack = main
            .emit_with_ack("echo", &(sent.clone(), serde_bytes::Bytes::new(&blob)))
            .await
            .unwrap();
        let (text, bin): (serde_json::Value, serde_bytes::ByteBuf) = ack.parse().unwrap();
        assert_eq!(text, sent);
        assert_eq!(bin.as_ref(), &blob[..]);
        let nested = Value::Array(vec![Value::Object(
            [("blob".to_string(), Value::Binary(blob.clone()))]
                .into_iter()
                .collect(),
        )]);
        let back = custom.emit_with_ack("echo", &nested).await.unwrap();
        assert_eq!(back.0, vec![nested.clone()]);

        // The server asks, the client answers.
        main.on("question", |_s, mut ev| async move {
            let _ = ev.ack(&"because");
        });
        let mut answers = events(&main, "answer");
        main.emit("ask-me", &()).unwrap();
        assert_eq!(
            recv(&mut answers, "answers").await,
            vec![Value::from("because")]
        );

        main.disconnect();
        custom.disconnect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn offline_buffer_then_reconnection_after_the_server_kills_the_transport() {
    let (io, url) = server(fast_config()).await;
    echo_app(&io);
    for mode in MODES {
        let mut opts = options(mode);
        opts.auto_connect = false;
        let socket = ferrio_client::Manager::new(&url, opts).socket("/");
        let (tx, mut reasons) = mpsc::unbounded_channel();
        socket.on_disconnect(move |_s, r| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(r);
            }
        });
        let (ctx, mut connects) = mpsc::unbounded_channel();
        socket.on_connect(move |_s| {
            let tx = ctx.clone();
            async move {
                let _ = tx.send(());
            }
        });
        // Emitted while disconnected: kept, sent in order on connect.
        let a = socket.emit_with_ack("echo", &1);
        let b = socket.emit_with_ack("echo", &2);
        socket.volatile().emit("echo", &"dropped").unwrap();
        socket.connect();
        let (a, b) = tokio::join!(a, b);
        assert_eq!(a.unwrap().parse::<u32>().unwrap(), 1);
        assert_eq!(b.unwrap().parse::<u32>().unwrap(), 2);
        recv(&mut connects, "connects").await;

        let events_seen = Arc::new(AtomicUsize::new(0));
        let seen = events_seen.clone();
        socket.on_any(move |_s, _name, _args| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        socket.emit("kill-transport", &()).unwrap();
        let reason = recv(&mut reasons, "reasons").await;
        assert!(reason.will_reconnect(), "{reason:?} in {mode:?}");
        recv(&mut connects, "connects").await;
        assert!(socket.connected());
        let ok = socket.emit_with_ack("echo", &"after").await.unwrap();
        assert_eq!(ok.parse::<String>().unwrap(), "after");

        // Kicked by the server: no reconnection.
        socket.emit("kick", &()).unwrap();
        assert_eq!(
            recv(&mut reasons, "reasons").await,
            DisconnectReason::IoServerDisconnect
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!socket.connected());
    }
}

#[tokio::test]
async fn manual_disconnect_does_not_reconnect_and_fails_pending_acks() {
    let (io, url) = server(fast_config()).await;
    echo_app(&io);
    let socket = ferrio_client::connect(&url, options(&[TransportKind::WebSocket]));
    let (tx, mut reasons) = mpsc::unbounded_channel();
    socket.on_disconnect(move |_s, r| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(r);
        }
    });
    socket.emit_with_ack("echo", &0).await.unwrap();
    socket.disconnect();
    assert_eq!(
        recv(&mut reasons, "reasons").await,
        DisconnectReason::IoClientDisconnect
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!socket.connected());
    assert_eq!(
        io.clients_count(),
        0,
        "the connection closes when no socket wants it"
    );
}

#[tokio::test]
async fn connect_error_carries_message_and_data_and_auth_is_refreshed() {
    let (io, url) = server(fast_config()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    io.use_middleware(|s: ServerSocket| async move {
        match s.handshake().auth.get("token").and_then(Value::as_str) {
            Some("good") => Ok(()),
            _ => Err(ConnectError::new("not authorized")
                .with_data(&serde_json::json!({ "code": 42 }))
                .expect("json serializes")),
        }
    });
    let mut opts = options(&[TransportKind::WebSocket]);
    opts.auth = Auth::value(&serde_json::json!({ "token": "bad" })).unwrap();
    let refused = ferrio_client::connect(&url, opts);
    let (tx, mut errors) = mpsc::unbounded_channel();
    refused.on_connect_error(move |_s, err| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(err);
        }
    });
    let err = recv(&mut errors, "errors").await;
    assert_eq!(err.message, "not authorized");
    assert_eq!(
        err.data
            .as_ref()
            .and_then(|d| d.get("code"))
            .and_then(Value::as_u64),
        Some(42)
    );

    let mut opts = options(&[TransportKind::WebSocket]);
    let counter = calls.clone();
    opts.auth = Auth::function(move || {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        async move { ferrio_client::to_value(&serde_json::json!({ "token": "good", "n": n })).unwrap() }
    });
    let ok = ferrio_client::connect(&url, opts);
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        while !ok.connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(r.is_ok());
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "auth evaluated per connection"
    );
}

#[tokio::test]
async fn ack_timeout_and_retries() {
    let (io, url) = server(fast_config()).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    io.on_connection(move |socket: ServerSocket| {
        let seen = s2.clone();
        async move {
            socket.on("flaky", move |_s, mut ev: ferrio::Event| {
                let seen = seen.clone();
                async move {
                    // The first delivery is never acked; the retry is.
                    if seen.fetch_add(1, Ordering::Relaxed) > 0 {
                        let _ = ev.ack(&"ok");
                    }
                }
            });
            socket.on("silent", |_s, _ev| async move {});
        }
    });
    let mut opts = options(&[TransportKind::WebSocket]);
    opts.ack_timeout = Some(Duration::from_millis(200));
    opts.retries = 2;
    let socket = ferrio_client::connect(&url, opts);
    let r = socket.emit_with_ack("flaky", &1).await.unwrap();
    assert_eq!(r.parse::<String>().unwrap(), "ok");
    assert_eq!(
        seen.load(Ordering::Relaxed),
        2,
        "delivered again after the first ack was lost"
    );
    let err = socket.emit_with_ack("silent", &1).await.unwrap_err();
    assert!(matches!(err, AckError::Timeout), "{err:?}");

    let plain = ferrio_client::connect(&url, options(&[TransportKind::WebSocket]));
    let err = plain
        .timeout(Duration::from_millis(100))
        .emit_with_ack("silent", &1)
        .await
        .unwrap_err();
    assert!(matches!(err, AckError::Timeout));
}

#[tokio::test]
async fn manager_events_and_gave_up() {
    // Nothing listens on this port: every attempt fails.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut opts = options(&[TransportKind::WebSocket]);
    opts.reconnection_attempts = Some(2);
    let manager = ferrio_client::Manager::new(&format!("http://127.0.0.1:{port}"), opts);
    let (tx, mut evs) = mpsc::unbounded_channel();
    manager.on_event(move |e| {
        let _ = tx.send(e.clone());
    });
    let _socket = manager.socket("/");
    let mut seen = vec![];
    loop {
        let e = recv(&mut evs, "evs").await;
        let done = e == ManagerEvent::ReconnectFailed;
        seen.push(e);
        if done {
            break;
        }
    }
    let attempts = seen
        .iter()
        .filter(|e| matches!(e, ManagerEvent::ReconnectAttempt(_)))
        .count();
    assert_eq!(attempts, 2, "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, ManagerEvent::ReconnectError(_)))
    );
}

/// Acks are resolved in the connection's own task, ahead of the manager's: an ack must still wait for
/// the packets the server sent before it (here a binary event, whose attachment comes as a message of
/// its own). The event reaches its listener's queue first, so on this current-thread runtime its
/// listener runs before the task that awaited the ack.
#[tokio::test]
async fn an_ack_is_handled_after_the_packets_sent_before_it() {
    let (io, url) = server(fast_config()).await;
    io.of("/").on_connection(|socket: ServerSocket| async move {
        socket.on("go", |s: ServerSocket, mut ev: ferrio::Event| async move {
            let _ = s.emit("bin", &serde_bytes::Bytes::new(b"\x01\x02"));
            if let Some(a) = ev.take_ack() {
                let _ = a.send(&"done");
            }
        });
    });
    let socket = ferrio_client::connect(&url, options(&[TransportKind::WebSocket]));
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = log.clone();
    socket.on("bin", move |_s, _ev| {
        let l = l.clone();
        async move { l.lock().unwrap().push("bin") }
    });
    wait_until("connected", || socket.connected()).await;
    for _ in 0..20 {
        let (s, l) = (socket.clone(), log.clone());
        tokio::spawn(async move {
            s.emit_with_ack("go", &()).await.unwrap();
            l.lock().unwrap().push("ack");
        })
        .await
        .unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert_eq!(log, ["bin", "ack"].repeat(20));
    socket.disconnect();
}
