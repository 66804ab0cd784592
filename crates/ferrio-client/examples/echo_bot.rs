//! A bot: connects, joins a room through the `join` event, and echoes every chat message of the room.
//!
//! Start the demo server (`bash scripts/run.sh`, or `ferrio serve`), then
//! `cargo run -p ferrio-client --example echo_bot -- http://127.0.0.1:3000 lobby`.

use std::time::Duration;

use ferrio_client::{ClientOptions, Socket};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Chat {
    from: String,
    room: Option<String>,
    text: String,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let room = args.next().unwrap_or_else(|| "lobby".into());

    let opts = ClientOptions::builder()
        .ack_timeout(Duration::from_secs(5))
        .build();
    let socket = ferrio_client::connect(&url, opts);
    let joined_room = room.clone();
    socket.on_connect(move |socket: Socket| {
        let room = joined_room.clone();
        async move {
            // Joining again after every reconnection: the server forgets rooms with the connection.
            // Waits up to `ack_timeout` for the server's answer.
            match socket.emit_with_ack("join", &room).await {
                Ok(ack) if ack.clone().parse::<bool>().unwrap_or(false) => {
                    println!("joined {room} as {:?}", socket.id())
                }
                other => eprintln!("join failed: {other:?}"),
            }
        }
    });
    socket.on("chat", |socket: Socket, ev| async move {
        let Ok(msg) = ev.parse::<Chat>() else { return };
        // Our own echoes come back too (the sender is included): don't answer them.
        if Some(&msg.from) == socket.id().as_ref() {
            return;
        }
        println!("{}: {}", msg.from, msg.text);
        let reply = serde_json::json!({ "room": msg.room, "text": format!("echo: {}", msg.text) });
        let _ = socket.emit("chat", &reply);
    });
    socket.on_connect_error(|_s, err| async move {
        eprintln!("cannot join: {err} (data: {:?})", err.data)
    });
    socket.on_disconnect(|_s, reason| async move {
        eprintln!(
            "disconnected: {reason} (reconnecting: {})",
            reason.will_reconnect()
        )
    });

    tokio::signal::ctrl_c().await.ok();
    socket.disconnect();
}
