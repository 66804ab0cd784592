//! Socket.IO protocol v4 (socket.io-client 2.x) over Engine.IO v3, beside v5 on the same server: the
//! implicit connection to `/`, CONNECT and refusal shapes, socket ids, namespace queries, acks, and
//! broadcasts shared with v5 clients, each in its own framing.

mod sio_common;

use std::time::Duration;

use bytes::Bytes;
use ferrio::{ConnectError, Event, Io, IoConfig, Socket, Value};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use sio_common::*;
use std::sync::Arc;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

fn v3_config() -> IoConfig {
    // Long heartbeats: the raw clients here do not ping.
    IoConfig::builder()
        .ping_interval(Duration::from_secs(20))
        .ping_timeout(Duration::from_secs(20))
        .allow_eio3(true)
        .build()
}

/// Opens a v3 websocket session; returns it with its Engine.IO id, the open packet read.
async fn open_v3(addr: std::net::SocketAddr) -> (Ws, String) {
    let url = format!("ws://{addr}/socket.io/?EIO=3&transport=websocket");
    let (mut ws, _) = tokio::time::timeout(READ_TIMEOUT, connect_async(url))
        .await
        .unwrap()
        .unwrap();
    let sid = read_open(&mut ws).await;
    (ws, sid)
}

async fn next_frame(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(READ_TIMEOUT, ws.next())
            .await
            .expect("nothing from the server")
            .expect("connection ended")
            .unwrap();
        if matches!(m, Message::Text(_) | Message::Binary(_) | Message::Close(_)) {
            return m;
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    match next_frame(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Records what the server's sockets saw: (namespace, socket id, connection id, auth as JSON).
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

fn server() -> (Io, Seen) {
    let io = Io::new(v3_config());
    let seen: Seen = Arc::default();
    for nsp in ["/", "/custom", "/private"] {
        let seen = seen.clone();
        io.of(nsp).on_connection(move |s: Socket| {
            let seen = seen.clone();
            async move {
                seen.lock().push((
                    s.nsp().to_owned(),
                    s.id().to_owned(),
                    s.conn_id().to_owned(),
                    s.handshake().auth.to_string(),
                ));
                s.join(["room"]);
                s.on("echo", |_s, mut ev: Event| async move {
                    let args = ev.take_args();
                    if let Some(ack) = ev.take_ack() {
                        let _ = ack.send_args(args);
                    }
                });
            }
        });
    }
    io.of("/private").use_middleware(|s: Socket| async move {
        match s.handshake().auth.get("token").and_then(|t| t.as_str()) {
            Some("data") => Err(ConnectError::new("with data")
                .with_data(&serde_json::json!({"code": 42}))
                .unwrap()),
            Some("ok") => Ok(()),
            _ => Err(ConnectError::new("not authorized")),
        }
    });
    (io, seen)
}

#[tokio::test]
async fn main_namespace_is_joined_on_open_with_the_engine_id() {
    let (io, seen) = server();
    let s = TestServer::serve(io).await;
    let (mut ws, sid) = open_v3(s.addr).await;
    assert_eq!(next_text(&mut ws).await, "40");
    assert!(eventually(READ_TIMEOUT, || !seen.lock().is_empty()).await);
    assert_eq!(
        seen.lock()[0],
        ("/".into(), sid.clone(), sid.clone(), "{}".into())
    );
    // Acks work as in v5.
    ws.send(Message::text(r#"427["echo","x",{"n":1}]"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, r#"437["x",{"n":1}]"#);
}

#[tokio::test]
async fn namespaces_take_their_query_as_auth() {
    let (io, seen) = server();
    let s = TestServer::serve(io).await;
    let (mut ws, sid) = open_v3(s.addr).await;
    assert_eq!(next_text(&mut ws).await, "40");
    ws.send(Message::text("40/custom?token=a%20b&x=1"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "40/custom,");
    assert!(eventually(READ_TIMEOUT, || seen.lock().len() == 2).await);
    assert_eq!(
        seen.lock()[1],
        (
            "/custom".into(),
            format!("/custom#{sid}"),
            sid.clone(),
            r#"{"token":"a b","x":"1"}"#.into()
        )
    );
    // Packets of the namespace name it without the query.
    ws.send(Message::text(r#"40/private?token=ok"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "40/private,");
    ws.send(Message::text(r#"42/private,1["echo",true]"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, r#"43/private,1[true]"#);
}

#[tokio::test]
async fn refusals_have_the_v4_shapes() {
    let (io, _) = server();
    let s = TestServer::serve(io).await;
    let (mut ws, _) = open_v3(s.addr).await;
    assert_eq!(next_text(&mut ws).await, "40");
    ws.send(Message::text("40/private")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, r#"44/private,"not authorized""#);
    ws.send(Message::text("40/private?token=data"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, r#"44/private,{"code":42}"#);
    ws.send(Message::text("40/nowhere")).await.unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        r#"44/nowhere,{"message":"Invalid namespace"}"#
    );
    // The connection is still usable after refusals.
    ws.send(Message::text(r#"421["echo",1]"#)).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "431[1]");
    // A second CONNECT to a joined namespace closes the connection, as in v5.
    ws.send(Message::text("40/custom")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "40/custom,");
    ws.send(Message::text("40/custom")).await.unwrap();
    let mut closed = false;
    for _ in 0..4 {
        match tokio::time::timeout(READ_TIMEOUT, ws.next()).await {
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => {
                closed = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Err(_) => break,
        }
    }
    assert!(closed, "the connection stayed open");
}

#[tokio::test]
async fn broadcasts_reach_both_generations_in_their_framing() {
    let (io, seen) = server();
    let s = TestServer::serve(io.clone()).await;
    let (mut v3, _) = open_v3(s.addr).await;
    assert_eq!(next_text(&mut v3).await, "40");
    let mut v5 = s.joined().await;
    assert!(eventually(READ_TIMEOUT, || seen.lock().len() == 2).await);

    io.to("room")
        .emit("blob", &(Value::Binary(vec![1u8, 2, 3].into()), "text"))
        .unwrap();
    let head = r#"451-["blob",{"_placeholder":true,"num":0},"text"]"#;
    assert_eq!(next_text(&mut v3).await, head);
    match next_frame(&mut v3).await {
        Message::Binary(b) => assert_eq!(&b[..], &[4, 1, 2, 3], "v3: the type byte first"),
        other => panic!("expected the attachment, got {other:?}"),
    }
    assert_eq!(v5.recv().await, Incoming::Text(head.into()));
    assert_eq!(
        v5.recv().await,
        Incoming::Binary(Bytes::from_static(&[1, 2, 3]))
    );
}

#[tokio::test]
async fn polling_v3_client_joins_and_gets_events() {
    let (io, _) = server();
    let s = TestServer::serve(io.clone()).await;
    let get = |sid: Option<&str>| {
        let url = match sid {
            Some(sid) => format!(
                "http://{}/socket.io/?EIO=3&transport=polling&b64=1&sid={sid}",
                s.addr
            ),
            None => format!("http://{}/socket.io/?EIO=3&transport=polling&b64=1", s.addr),
        };
        async move { http_get(&url).await }
    };
    let open = get(None).await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(get(Some(&sid)).await, "2:40");
    io.to("room")
        .emit("blob", &(Value::Binary(vec![1u8, 2, 3].into()),))
        .unwrap();
    assert_eq!(
        get(Some(&sid)).await,
        r#"42:451-["blob",{"_placeholder":true,"num":0}]6:b4AQID"#
    );
}

/// A GET with a plain HTTP/1.1 exchange; returns the body as text.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(READ_TIMEOUT, stream.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    body.to_owned()
}
