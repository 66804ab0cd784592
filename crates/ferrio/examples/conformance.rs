//! The server the official protocol test suites expect.
//!
//! `cargo run --release -p ferrio --example conformance -- engine --port 3000` serves Engine.IO at
//! `/engine.io/` with ping_interval 300 ms, ping_timeout 200 ms, max_http_buffer_size 1e6 and CORS for any
//! origin, echoing every message back.
//!
//! `cargo run --release -p ferrio --example conformance -- socket --port 3000` serves Socket.IO at
//! `/socket.io/` with the same timings and connect_timeout 1000 ms, namespaces `/` and `/custom`: on
//! connection it emits `auth` with the handshake auth; `message` is answered with `message-back` and the
//! same arguments; `message-with-ack` is acked with the same arguments.
//!
//! `--allow-eio3` also accepts Engine.IO v3 / Socket.IO v4 clients (socket.io-client 2.x) and JSONP
//! polling, for the official v3 test suite.
//!
//! `--port 0` picks a free port; the bound address is printed as `listening on http://ADDR` so that test
//! harnesses can find it.

use std::sync::Arc;
use std::time::Duration;

use ferrio::{Event, Io, IoConfig, Socket as SioSocket};

use ferrio::engine::{
    Cors, Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket,
};

struct Echo;

impl EngineHandler for Echo {
    type State = ();

    fn on_open(&self, _socket: &Arc<Socket>) {}

    fn on_message(&self, socket: &Arc<Socket>, _: &(), data: EngineData) {
        let _ = socket.send(data);
    }

    fn on_close(&self, _socket: &Arc<Socket>, _: &(), _reason: EngineCloseReason) {}
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
    let allow_eio3 = args.iter().any(|a| a == "--allow-eio3");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    match mode {
        "engine" => serve_engine(listener, allow_eio3).await,
        "socket" => serve_socket(listener, allow_eio3).await,
        _ => {
            eprintln!("unknown mode {mode:?}: engine or socket");
            std::process::exit(2);
        }
    }
}

fn timings(path: &str, allow_eio3: bool) -> EngineConfig {
    EngineConfig::builder()
        .path(path)
        .allow_eio3(allow_eio3)
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .max_http_buffer_size(1_000_000)
        .cors(Cors::any())
        .build()
}

async fn serve_socket(listener: tokio::net::TcpListener, allow_eio3: bool) -> std::io::Result<()> {
    let io = Io::new(
        IoConfig::builder()
            .engine(timings("/socket.io/", allow_eio3))
            .connect_timeout(Duration::from_millis(1000))
            .build(),
    );
    for name in ["/", "/custom"] {
        io.of(name).on_connection(|socket: SioSocket| async move {
            let _ = socket.emit("auth", &socket.handshake().auth);
            socket.on("message", |socket: SioSocket, mut ev: Event| async move {
                let _ = socket.emit_args("message-back", ev.take_args());
            });
            socket.on("message-with-ack", |_socket, mut ev: Event| async move {
                let args = ev.take_args();
                if let Some(ack) = ev.take_ack() {
                    let _ = ack.send_args(args);
                }
            });
        });
    }
    println!("listening on http://{}", listener.local_addr()?);
    io.serve(listener).await
}

async fn serve_engine(listener: tokio::net::TcpListener, allow_eio3: bool) -> std::io::Result<()> {
    let config = timings("/engine.io/", allow_eio3);
    let engine = Engine::new(config, Echo);
    println!("listening on http://{}", listener.local_addr()?);
    ferrio::serve(
        listener,
        ferrio::EngineService::new(engine, ferrio::NotFound),
    )
    .await
}
