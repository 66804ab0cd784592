//! The server the official protocol test suites expect.
//!
//! `cargo run --release -p ferrio --example conformance -- engine --port 3000` serves Engine.IO at
//! `/engine.io/` with ping_interval 300 ms, ping_timeout 200 ms, max_http_buffer_size 1e6 and CORS for any
//! origin, echoing every message back. `--port 0` picks a free port; the bound address is printed as
//! `listening on http://ADDR` so that test harnesses can find it.

use std::sync::Arc;
use std::time::Duration;

use ferrio::engine::{
    Cors, Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket,
};

struct Echo;

impl EngineHandler for Echo {
    fn on_open(&self, _socket: &Arc<Socket>) {}

    fn on_message(&self, socket: &Arc<Socket>, data: EngineData) {
        let _ = socket.send(data);
    }

    fn on_close(&self, _socket: &Arc<Socket>, _reason: EngineCloseReason) {}
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("engine");
    let port: u16 = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    if mode != "engine" {
        eprintln!("unknown mode {mode:?}; this build serves: engine");
        std::process::exit(2);
    }
    let config = EngineConfig {
        path: "/engine.io/".into(),
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_http_buffer_size: 1_000_000,
        cors: Some(Cors::any()),
        ..Default::default()
    };
    let engine = Engine::new(config, Echo);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    ferrio::serve(
        listener,
        ferrio::EngineService::new(engine, ferrio::NotFound),
    )
    .await
}
