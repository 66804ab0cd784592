//! The server `interop/recovery.test.js` runs the official `socket.io-client` against: connection state
//! recovery on.
//!
//! `cargo run -p ferrio --example recovery_interop -- --port 0` serves Socket.IO at `/socket.io/` and
//! prints one line, `listening on http://127.0.0.1:PORT`, once bound; nothing else goes to stdout.
//!
//! Flags: `--port N` (0: a free port); `--max-disconnection-duration MS` (120000);
//! `--max-stored-packets N` (10000). Heartbeats are short (300 ms + 200 ms) so that a polling client
//! that vanished is noticed quickly.
//!
//! A new socket joins room `r`, unless its `auth` has `observer: true`. Events:
//! - `whoami` acks `{id, recovered, rooms, data}` (rooms sorted, the socket's own id included);
//! - `set-data` (any value) stores it as `socket.data` and acks `true`;
//! - `burst` `{room, from, count}` broadcasts `n` with `from, from + 1, …` to `room`, pausing a
//!   millisecond every 10 packets (so that a client can drop in the middle), then acks `true`.

use std::io::Write;
use std::time::Duration;

use ferrio::{ConnectionStateRecovery, Event, Io, IoConfig, Socket, Value};
use serde_json::json;

struct Args {
    port: u16,
    max_disconnection_duration: u64,
    max_stored_packets: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: recovery_interop [--port N] [--max-disconnection-duration MS] [--max-stored-packets N]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        max_disconnection_duration: 120_000,
        max_stored_packets: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v:?}")))
        };
        match flag.as_str() {
            "--port" => {
                args.port = u16::try_from(number(&value))
                    .unwrap_or_else(|_| usage(&format!("--port: out of range: {value}")))
            }
            "--max-disconnection-duration" => args.max_disconnection_duration = number(&value),
            "--max-stored-packets" => {
                args.max_stored_packets = usize::try_from(number(&value))
                    .unwrap_or_else(|_| usage(&format!("--max-stored-packets: too large: {value}")))
            }
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    args
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = parse_args();
    let io = Io::new(
        IoConfig::builder()
            .ping_interval(Duration::from_millis(300))
            .ping_timeout(Duration::from_millis(200))
            .connection_state_recovery(
                ConnectionStateRecovery::default()
                    .max_disconnection_duration(Duration::from_millis(
                        args.max_disconnection_duration,
                    ))
                    .max_stored_packets(args.max_stored_packets),
            )
            .build(),
    );
    let io2 = io.clone();
    io.on_connection(move |socket: Socket| {
        let io = io2.clone();
        async move {
            let observer = socket.handshake().auth.get("observer") == Some(&Value::Bool(true));
            if !socket.recovered() && !observer {
                socket.join(["r"]).expect("one room");
            }
            socket.on("whoami", |s: Socket, mut ev: Event| async move {
                let mut rooms: Vec<String> = s.rooms().iter().map(|r| r.to_string()).collect();
                rooms.sort();
                let data = s.data_value().unwrap_or(Value::Null);
                let _ = ev.ack(&json!({
                    "id": s.id(),
                    "recovered": s.recovered(),
                    "rooms": rooms,
                    "data": data,
                }));
            });
            socket.on("set-data", |s: Socket, mut ev: Event| async move {
                let value = ev.take_args().into_iter().next().unwrap_or(Value::Null);
                s.set_data(value);
                let _ = ev.ack(&true);
            });
            socket.on("burst", move |_s: Socket, mut ev: Event| {
                let io = io.clone();
                async move {
                    let spec = ev.args().first().cloned().unwrap_or(Value::Null);
                    let room = spec.get("room").and_then(Value::as_str).unwrap_or("r");
                    let from = spec.get("from").and_then(Value::as_u64).unwrap_or(0);
                    let count = spec.get("count").and_then(Value::as_u64).unwrap_or(0);
                    for n in from..from + count {
                        let _ = io.to(room.to_owned()).emit("n", &n);
                        if n % 10 == 9 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    let _ = ev.ack(&true);
                }
            });
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    io.serve(listener).await
}
