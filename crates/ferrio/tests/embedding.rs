//! The engine mounted as a tower layer in axum: its path is answered by the engine (polling and websocket),
//! every other path by the application.

use std::sync::Arc;

use axum::{Router, routing::get};
use ferrio::EngineLayer;
use ferrio::engine::{Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

struct Echo;

impl EngineHandler for Echo {
    type State = ();

    fn on_open(&self, _: &Arc<Socket>) {}
    fn on_message(&self, socket: &Arc<Socket>, _: &(), data: EngineData) {
        let _ = socket.send(data);
    }
    fn on_close(&self, _: &Arc<Socket>, _: &(), _: EngineCloseReason) {}
}

async fn start() -> std::net::SocketAddr {
    let engine = Engine::new(EngineConfig::default(), Echo);
    let app = Router::new()
        .route("/", get(|| async { "app" }))
        .layer(EngineLayer::new(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn get_raw(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn other_paths_reach_the_application() {
    let addr = start().await;
    let res = get_raw(addr, "/").await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("app"), "{res}");
    let res = get_raw(addr, "/missing").await;
    assert!(res.starts_with("HTTP/1.1 404"), "{res}");
}

#[tokio::test]
async fn engine_path_handshakes_over_polling_and_websocket() {
    let addr = start().await;
    let res = get_raw(addr, "/engine.io/?EIO=4&transport=polling").await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("\r\n\r\n0{\"sid\":"), "{res}");

    let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{\"sid\":"));
    ws.send(Message::text("4through axum")).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.to_text().unwrap(), "4through axum");
}
