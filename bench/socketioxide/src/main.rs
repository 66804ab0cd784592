//! The ferrio demo events (`join`, `leave`, `chat`, `echo`) on socketioxide, for `bench/run.sh`.
//!
//! Usage: `bench-socketioxide [PORT]` (default 3000, or the `PORT` variable); prints
//! `listening on http://ADDR` once bound.

use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

#[derive(Deserialize)]
struct ChatIn {
    room: Option<String>,
    text: String,
}

async fn on_connect(socket: SocketRef) {
    socket.on(
        "join",
        async |s: SocketRef, Data(room): Data<String>, ack: AckSender| {
            s.join(room);
            let _ = ack.send(&true);
        },
    );
    socket.on(
        "leave",
        async |s: SocketRef, Data(room): Data<String>, ack: AckSender| {
            s.leave(room);
            let _ = ack.send(&true);
        },
    );
    socket.on(
        "chat",
        async |s: SocketRef, io: SocketIo, Data(msg): Data<ChatIn>| {
            let out = json!({ "from": s.id.to_string(), "room": msg.room, "text": msg.text });
            match &msg.room {
                Some(room) => {
                    let _ = io.to(room.clone()).emit("chat", &out).await;
                    // The sender sees its own message even when it is not in the room.
                    if !s.rooms().iter().any(|r| r.as_ref() == room.as_str()) {
                        let _ = s.emit("chat", &out);
                    }
                }
                None => {
                    let _ = io.emit("chat", &out).await;
                }
            }
        },
    );
    socket.on("echo", async |Data(args): Data<Value>, ack: AckSender| {
        let _ = ack.send(&args);
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // axum::serve leaves Nagle's algorithm on (TCP_NODELAY off); NODELAY=1 turns it off, as Node's
    // http server and ferrio do by default, to compare like with like.
    if std::env::var("NODELAY").is_ok_and(|v| v == "1") {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
    } else {
        axum::serve(listener, app).await?;
    }
    Ok(())
}
