//! BAD_INPUTS.md case 37 for the client: what a server sends goes through the same parser limits as
//! what a client sends to the server. A scripted websocket server completes the handshake and the
//! CONNECT, then sends one bad Socket.IO packet; the client must close with "parse error", run no
//! handler, not panic and not hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrio_client::{ClientOptions, DisconnectReason, Value};
use ferrio_proto::engine::TransportKind;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);
const OPEN: &str = r#"0{"sid":"bad1","upgrades":[],"pingInterval":20000,"pingTimeout":20000,"maxPayload":1000000}"#;

/// A websocket server for one connection: the open packet, `40` answered, then `bad` (text or binary
/// frames). It reports on `ended` when the client closed the connection.
async fn bad_server(bad: Vec<Message>) -> (String, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ended_tx, ended) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        if ws.send(Message::text(OPEN)).await.is_err() {
            return;
        }
        // Waits for the client's CONNECT to `/`.
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with("40") => break,
                Some(Ok(_)) => continue,
                _ => return,
            }
        }
        if ws.send(Message::text(r#"40{"sid":"s1"}"#)).await.is_err() {
            return;
        }
        for m in bad {
            if ws.send(m).await.is_err() {
                break;
            }
        }
        // The client must now close the connection.
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
        let _ = ended_tx.send(());
    });
    (format!("http://{addr}"), ended)
}

fn options() -> ClientOptions {
    let mut o = ClientOptions::default();
    o.engine.transports = vec![TransportKind::WebSocket];
    o.reconnection = false;
    o.force_new = true;
    o
}

/// Connects, lets the server send `bad`, and checks the client's answer.
async fn expect_parse_error(bad: Vec<Message>, what: &str) {
    let (url, mut ended) = bad_server(bad).await;
    let socket = ferrio_client::connect(&url, options());
    let (ctx, mut connects) = mpsc::unbounded_channel();
    socket.on_connect(move |_s| {
        let tx = ctx.clone();
        async move {
            let _ = tx.send(());
        }
    });
    let (dtx, mut reasons) = mpsc::unbounded_channel();
    socket.on_disconnect(move |_s, r| {
        let tx = dtx.clone();
        async move {
            let _ = tx.send(r);
        }
    });
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    socket.on_any(move |_s, _name, _args| {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    tokio::time::timeout(WAIT, connects.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: never connected"));
    let reason = tokio::time::timeout(WAIT, reasons.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no disconnect"))
        .unwrap();
    assert_eq!(reason, DisconnectReason::ParseError, "{what}");
    assert_eq!(handled.load(Ordering::Relaxed), 0, "{what}: a handler ran");
    assert!(!socket.connected(), "{what}");
    tokio::time::timeout(WAIT, ended.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: the client kept the connection open"));
}

fn text(s: impl Into<String>) -> Vec<Message> {
    vec![Message::text(s.into())]
}

/// Cases 23, 25 and 29 from the server: malformed events, bad ack ids, deep nesting.
#[tokio::test]
async fn c37_malformed_packets_from_the_server_close_with_parse_error() {
    let deep = format!(r#"42["e",{}{}]"#, "[".repeat(100_000), "]".repeat(100_000));
    let digits = format!("42{}[\"e\"]", "9".repeat(100_000));
    let cases: Vec<(Vec<Message>, &str)> = vec![
        (text("42{}"), "object payload"),
        (text("42[]"), "empty array"),
        (text("42[true]"), "event name not a string"),
        (text(r#"42"x""#), "string payload"),
        (text("4abc"), "garbage"),
        (text("42abc[\"e\"]"), "letters before the payload"),
        (text("49[\"e\"]"), "packet type 9"),
        (text(deep), "100 000 levels of nesting"),
        (text(digits), "100 000-digit ack id"),
    ];
    for (bad, what) in cases {
        expect_parse_error(bad, what).await;
    }
}

/// Cases 26 and 27 from the server: bad placeholders and attachment counts.
#[tokio::test]
async fn c37_bad_binary_packets_from_the_server_close_with_parse_error() {
    let blob = || Message::binary(vec![1u8, 2, 3]);
    let digits = format!("45{}-[\"e\"]", "1".repeat(100_000));
    let cases: Vec<(Vec<Message>, &str)> = vec![
        (
            vec![
                Message::text(r#"451-["e",{"_placeholder":true,"num":"splice"}]"#),
                blob(),
            ],
            "num a string",
        ),
        (
            vec![
                Message::text(r#"451-["e",{"_placeholder":true,"num":-1}]"#),
                blob(),
            ],
            "num -1",
        ),
        (
            vec![
                Message::text(r#"451-["e",{"_placeholder":true,"num":1.5}]"#),
                blob(),
            ],
            "num 1.5",
        ),
        (
            vec![
                Message::text(r#"451-["e",{"_placeholder":true,"num":1}]"#),
                blob(),
            ],
            "num past the attachments",
        ),
        (
            vec![
                Message::text(r#"451-["e",{"_placeholder":"true","num":0}]"#),
                blob(),
            ],
            "_placeholder a string",
        ),
        (text("455999999-[\"e\"]"), "attachment count 5999999-"),
        (text(digits), "100 000-digit attachment count"),
        (vec![blob()], "stray binary frame"),
        (
            vec![
                Message::text(r#"451-["e",{"_placeholder":true,"num":0}]"#),
                Message::text(r#"42["e"]"#),
            ],
            "text while an attachment is pending",
        ),
        (
            vec![
                Message::text(r#"452-["e",{"_placeholder":true,"num":0}]"#),
                blob(),
                blob(),
            ],
            "fewer placeholders than attachments",
        ),
    ];
    for (bad, what) in cases {
        expect_parse_error(bad, what).await;
    }
}

/// The control: the same server with well-formed packets delivers them to the handlers.
#[tokio::test]
async fn c37_control_good_packets_are_delivered() {
    let (url, _ended) = bad_server(vec![
        Message::text(r#"42["e",1]"#),
        Message::text(r#"451-["e",{"_placeholder":true,"num":0}]"#),
        Message::binary(vec![1u8, 2, 3]),
    ])
    .await;
    let socket = ferrio_client::connect(&url, options());
    let (tx, mut rx) = mpsc::unbounded_channel();
    socket.on_any(move |_s, name, args| {
        let _ = tx.send((name.to_owned(), args.to_vec()));
    });
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no event");
    assert_eq!(first, Some(("e".to_owned(), vec![Value::from(1)])));
    let second = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no event");
    assert_eq!(
        second.unwrap(),
        ("e".to_owned(), vec![Value::Binary(vec![1u8, 2, 3].into())])
    );
    assert!(socket.connected());
}
