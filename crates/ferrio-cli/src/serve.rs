//! `ferrio serve`: a configurable Socket.IO server running the demo chat application.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use ferrio::{Event, Io, Socket};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;
use tower_layer::Layer;

use crate::config::ServeOptions;

const DEMO_PAGE: &str = include_str!("demo.html");

#[derive(Deserialize)]
struct ChatIn {
    room: Option<String>,
    text: String,
}

/// Registers the demo events on the main namespace.
pub fn demo_app(io: &Io) {
    let io2 = io.clone();
    io.on_connection(move |socket: Arc<Socket>| {
        let io = io2.clone();
        async move {
            socket.on("join", |socket: Arc<Socket>, mut ev: Event| async move {
                let ok = match ev.parse::<String>() {
                    Ok(room) => {
                        socket.join([room]);
                        true
                    }
                    Err(_) => false,
                };
                let _ = ev.ack(&ok);
            });
            socket.on("leave", |socket: Arc<Socket>, mut ev: Event| async move {
                let ok = match ev.parse::<String>() {
                    Ok(room) => {
                        socket.leave(room);
                        true
                    }
                    Err(_) => false,
                };
                let _ = ev.ack(&ok);
            });
            socket.on("chat", move |socket: Arc<Socket>, ev: Event| {
                let io = io.clone();
                async move {
                    let Ok(msg) = ev.parse::<ChatIn>() else { return };
                    let out = serde_json::json!({ "from": socket.id(), "room": msg.room, "text": msg.text });
                    match &msg.room {
                        Some(room) => {
                            let _ = io.to(room.as_str()).emit("chat", &out);
                            // The sender sees its own message even when it is not in the room.
                            if !socket.rooms().iter().any(|r| &**r == room.as_str()) {
                                let _ = socket.emit("chat", &out);
                            }
                        }
                        None => {
                            let _ = io.emit("chat", &out);
                        }
                    }
                }
            });
            socket.on("echo", |_socket, mut ev: Event| async move {
                let args = ev.take_args();
                if let Some(ack) = ev.take_ack() {
                    let _ = ack.send_args(args);
                }
            });
        }
    });
}

async fn page(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = if req.uri().path() == "/" {
        let mut r = Response::new(Full::new(Bytes::from_static(DEMO_PAGE.as_bytes())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    } else {
        Response::new(Full::new(Bytes::from_static(b"Not Found")))
    };
    if req.uri().path() != "/" {
        *res.status_mut() = StatusCode::NOT_FOUND;
    }
    Ok(res)
}

/// Runs the server until Ctrl-C or SIGTERM, then closes every connection.
pub async fn run(opts: ServeOptions) -> std::io::Result<()> {
    let config = opts.io_config();
    let dist = config.client_dist.clone();
    if config.serve_client && !dist.join("socket.io.js").exists() {
        tracing::warn!(dir = %dist.display(), "socket.io-client bundle not found: /socket.io/socket.io.js will answer 404");
    }
    let io = Io::new(config);
    demo_app(&io);
    let host = opts.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let listener =
        tokio::net::TcpListener::bind((host.as_str(), opts.port.unwrap_or(3000))).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let service = io.layer().layer(tower::service_fn(page));
    tokio::select! {
        r = ferrio::serve(listener, service) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            io.close().await;
            // Let the close frames and the last poll answers go out.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
