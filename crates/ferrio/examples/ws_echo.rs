//! A raw websocket echo server on ferrio's websocket layer (no Engine.IO): what `autobahn/run.sh` runs
//! the Autobahn|Testsuite server cases against.
//!
//! `cargo run --release -p ferrio --example ws_echo -- --port 9002` prints `listening on
//! ws://127.0.0.1:PORT` once bound. Every text or binary message is echoed back; pings are answered; a
//! close is answered with the peer's code. permessage-deflate is negotiable (threshold 0, so that every
//! echo of a compressed message is compressed too) unless `--no-deflate` is given. Messages up to
//! 16 MiB (Autobahn section 9 sends 16 MB).

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use ferrio::websocket::{DeflateConfig, Message, RawError, RawWebSocket};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;

const MAX_MESSAGE: usize = 16 * 1024 * 1024 + 1024;

async fn echo(mut ws: RawWebSocket) {
    loop {
        let r = match ws.next().await {
            Ok(Message::Text(t)) => ws.send_text(&t, true).await,
            Ok(Message::Binary(b)) => ws.send_binary(&b, true).await,
            Ok(Message::Ping(p)) => ws.pong(&p).await,
            Ok(Message::Pong(_)) => Ok(()),
            Ok(Message::Close(c)) => return ws.close(c.map(|c| c.code)).await,
            Err(RawError::Protocol(e)) => return ws.close(Some(e.close_code())).await,
            Err(RawError::Io) => return,
        };
        if r.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut port = 9002u16;
    let mut deflate = Some(DeflateConfig {
        threshold: 0,
        ..Default::default()
    });
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).expect("--port N"),
            "--no-deflate" => deflate = None,
            other => panic!("unknown flag {other}"),
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (io, peer) = listener.accept().await?;
        let _ = io.set_nodelay(true);
        let svc = tower::service_fn(move |req: Request<ferrio::RequestBody>| async move {
            let res = match RawWebSocket::upgrade(req, MAX_MESSAGE, deflate) {
                Ok((res, ws)) => {
                    tokio::spawn(async move {
                        if let Some(ws) = ws.await {
                            echo(ws).await;
                        }
                    });
                    res
                }
                Err(_) => {
                    let mut res = Response::new(Bytes::from_static(b"websocket only"));
                    *res.status_mut() = StatusCode::BAD_REQUEST;
                    res
                }
            };
            Ok::<_, Infallible>(res.map(Full::new))
        });
        tokio::spawn(ferrio::serve_connection(
            io,
            peer,
            svc,
            Duration::from_secs(10),
            std::future::pending(),
        ));
    }
}
