//! permessage-deflate on the client's websocket, against the ferrio server and the official socket.io
//! 4.8 server (`perMessageDeflate: true`): a 10 KB message round-trips both ways, and a TCP proxy between
//! the two counts the bytes, which shows that both directions were compressed (and were not, when the
//! client does not offer the extension).

#[allow(unused_macros)]
#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::NodeServer;
use ferrio::{Io, IoConfig, Socket as ServerSocket};
use ferrio_client::engine::{DeflateConfig, RawWebSocket};
use ferrio_client::{ClientOptions, Value};
use ferrio_proto::engine::TransportKind;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A 10 KB message that compresses well, as text usually does.
fn big_message() -> String {
    let mut s = String::with_capacity(10_240);
    let mut i = 0u32;
    while s.len() < 10_240 {
        s.push_str(&format!("ferrio message line {} ", i % 50));
        i += 1;
    }
    s.truncate(10_240);
    s
}

/// Bytes that went through the proxy, each way.
#[derive(Default)]
struct Counts {
    up: AtomicUsize,
    down: AtomicUsize,
}

/// A TCP proxy to `target` that counts the bytes it forwards; returns its `http://` URL.
async fn counting_proxy(target: &str) -> (String, Arc<Counts>) {
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = pipe(&mut cr, &mut sw, &c.up);
                let down = pipe(&mut sr, &mut cw, &c.down);
                tokio::join!(up, down);
            });
        }
    });
    (url, counts)
}

async fn pipe(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    count: &AtomicUsize,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        count.fetch_add(n, Ordering::Relaxed);
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

async fn ferrio_server(deflate: bool) -> (Io, String) {
    let mut config = IoConfig::default();
    if deflate {
        config.engine.per_message_deflate = Some(DeflateConfig::default());
    }
    let io = Io::new(config);
    io.of("/").on_connection(|socket: ServerSocket| async move {
        socket.on("echo", |_s, mut ev: ferrio::Event| async move {
            let args = ev.take_args();
            if let Some(a) = ev.take_ack() {
                let _ = a.send_args(args);
            }
        });
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    (io, url)
}

/// Connects through a counting proxy (websocket only, `offer`: whether the client offers deflate),
/// round-trips a 10 KB message through `echo`, and returns the bytes each way.
async fn round_trip(server_url: &str, offer: bool) -> (usize, usize) {
    let (url, counts) = counting_proxy(server_url).await;
    let mut o = ClientOptions::builder()
        .transports([TransportKind::WebSocket])
        .per_message_deflate(offer.then(DeflateConfig::default))
        .build();
    o.reconnection = false;
    o.force_new = true;
    let socket = ferrio_client::connect(&url, o);
    let big = big_message();
    // An emit before the connection is up is buffered, then sent.
    let answer = common::ack(&socket, "echo", &big).await;
    assert_eq!(answer, vec![Value::from(big.clone())]);
    socket.disconnect();
    (
        counts.up.load(Ordering::Relaxed),
        counts.down.load(Ordering::Relaxed),
    )
}

/// Both directions carried the 10 KB message in far fewer bytes, and did not without the offer.
async fn check(server_url: &str) {
    let (up, down) = round_trip(server_url, true).await;
    assert!(up < 4_000, "client to server not compressed: {up} bytes");
    assert!(
        down < 4_000,
        "server to client not compressed: {down} bytes"
    );
    let (up, down) = round_trip(server_url, false).await;
    assert!(up > 10_240, "{up} bytes up without the extension");
    assert!(down > 10_240, "{down} bytes down without the extension");
}

#[tokio::test]
async fn deflate_with_the_ferrio_server() {
    let (_io, url) = ferrio_server(true).await;
    check(&url).await;
}

#[tokio::test]
async fn deflate_with_the_node_server() {
    let node = NodeServer::start("socketio-server.mjs", &["--per-message-deflate"]).await;
    check(&node.url).await;
}

/// A server without the extension: the offer is declined and messages go uncompressed.
#[tokio::test]
async fn offer_declined_by_a_server_without_deflate() {
    let (_io, url) = ferrio_server(false).await;
    let (up, down) = round_trip(&url, true).await;
    assert!(up > 10_240 && down > 10_240, "{up} / {down}");
}

/// The agreed parameters are visible on the raw websocket.
#[tokio::test]
async fn raw_websocket_reports_the_agreement() {
    let (_io, url) = ferrio_server(true).await;
    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replace("http://", "ws://")
    );
    let ws = RawWebSocket::connect(&ws_url, 1 << 20, Some(DeflateConfig::default()))
        .await
        .unwrap();
    let p = ws.deflate().expect("deflate negotiated");
    assert_eq!(p.server_max_window_bits, 15);
    let ws = RawWebSocket::connect(&ws_url, 1 << 20, None).await.unwrap();
    assert!(ws.deflate().is_none());
}
