//! Mounting ferrio in an axum application: the engine answers under `/engine.io/`, axum serves the rest.
//!
//! `cargo run -p ferrio --example axum_engine` then open http://127.0.0.1:3000/ .

use std::sync::Arc;

use axum::{Router, routing::get};
use ferrio::EngineLayer;
use ferrio::engine::{Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket};

struct Shout;

impl EngineHandler for Shout {
    type State = ();

    fn on_open(&self, _socket: &Arc<Socket>) {}

    fn on_message(&self, socket: &Arc<Socket>, _: &(), data: EngineData) {
        if let EngineData::Text(text) = data {
            let _ = socket.send_text(&text.to_uppercase());
        }
    }

    fn on_close(&self, _socket: &Arc<Socket>, _: &(), _reason: EngineCloseReason) {}
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let engine = Engine::new(EngineConfig::default(), Shout);
    let app = Router::new()
        .route("/", get(|| async { "axum here; Engine.IO at /engine.io/" }))
        .layer(EngineLayer::new(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
