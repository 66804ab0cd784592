//! The server the `interop/` tests run the official `engine.io-client` against.
//!
//! `cargo run -p ferrio --example engine_interop -- --port 0` serves Engine.IO at `/engine.io/` and prints
//! one line, `listening on http://127.0.0.1:PORT`, once bound; nothing else goes to stdout.
//!
//! Flags:
//! - `--port N` (0, the default, picks a free port);
//! - `--ping-interval MS` / `--ping-timeout MS` (300 / 200);
//! - `--cors-origin URL`, repeatable: only these origins are allowed, with credentials; without it any
//!   origin is allowed (`Access-Control-Allow-Origin: *`).
//!
//! Behaviour: on open the server sends the text message `hello`. The text message `close-me` makes the
//! server close the session; `binary-please` makes it send the binary message `[0, 1, 2, 255]`; any other
//! message, text or binary, is echoed back unchanged.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use ferrio::engine::{
    Cors, Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket,
};

struct Interop;

impl EngineHandler for Interop {
    type State = ();

    fn on_open(&self, socket: &Arc<Socket>) {
        let _ = socket.send_text("hello");
    }

    fn on_message(&self, socket: &Arc<Socket>, _: &(), data: EngineData) {
        match &data {
            EngineData::Text(t) if &**t == "close-me" => socket.close(),
            EngineData::Text(t) if &**t == "binary-please" => {
                let _ = socket.send_binary(vec![0u8, 1, 2, 255]);
            }
            _ => {
                let _ = socket.send(data);
            }
        }
    }

    fn on_close(&self, _socket: &Arc<Socket>, _: &(), _reason: EngineCloseReason) {}
}

struct Args {
    port: u16,
    ping_interval: u64,
    ping_timeout: u64,
    cors_origins: Vec<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: engine_interop [--port N] [--ping-interval MS] [--ping-timeout MS] [--cors-origin URL]..."
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        ping_interval: 300,
        ping_timeout: 200,
        cors_origins: vec![],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v:?}")))
        };
        match flag.as_str() {
            "--port" => {
                let v = value();
                args.port = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--port: not a port: {v:?}")));
            }
            "--ping-interval" => args.ping_interval = number(value()),
            "--ping-timeout" => args.ping_timeout = number(value()),
            "--cors-origin" => args.cors_origins.push(value()),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    args
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = parse_args();
    let cors = if args.cors_origins.is_empty() {
        Cors::any()
    } else {
        let mut c = Cors::origins(args.cors_origins);
        c.credentials = true;
        c
    };
    let config = EngineConfig::builder()
        .path("/engine.io/")
        .ping_interval(Duration::from_millis(args.ping_interval))
        .ping_timeout(Duration::from_millis(args.ping_timeout))
        .cors(cors)
        .build();
    let engine = Engine::new(config, Interop);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
    }
    ferrio::serve(
        listener,
        ferrio::EngineService::new(engine, ferrio::NotFound),
    )
    .await
}
