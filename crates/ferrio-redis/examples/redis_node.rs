//! A ferrio node on a Redis adapter, for the `interop/redis*.test.js` cluster tests.
//!
//! `cargo run -p ferrio-redis --example redis_node -- --port 0 --redis redis://127.0.0.1:PORT [--name NAME]`
//! prints `listening on http://127.0.0.1:PORT` once bound and connected to Redis; nothing else goes to
//! stdout. With `--sharded`, the sharded adapter (`createShardedAdapter`, default options) on the Redis
//! Cluster whose nodes `--redis` lists (comma-separated URLs; one is enough). With `--streams`, the
//! Redis Streams adapter (`@socket.io/redis-streams-adapter`, default options) with connection state
//! recovery on (default options); each socket then also answers `recovered` with whether it was.
//!
//! Every socket of `/` gets `data = {node: NAME}`. Events (each acks once done):
//! - `join` (a room) joins it, acks `true`;
//! - `broadcast` `{room?, event, args: [arg]}` is `io.to(room).emit(event, arg)` (everyone without a room);
//! - `fetch` acks `[{id, rooms, data}]` of `io.fetch_sockets()` (all nodes), sorted by id, rooms sorted;
//! - `sse` `{timeout}` is `server_side_emit_with_ack("ping", NAME)`: acks `{ok, responses}`, the
//!   responses sorted;
//! - `rooms` acks the sorted rooms of the socket.
//!
//! Server side: `ping` acks `"pong from NAME"`; `note` emits `note` with its arguments to the clients of
//! this node (local).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use ferrio::adapter::AckEvent;
use ferrio::engine::Cors;
use ferrio::{ConnectionStateRecovery, Event, Io, IoConfig, Socket, Value};
use ferrio_redis::{
    RedisAdapterConfig, RedisAdapterHandle, RedisStreamsAdapterHandle, RedisStreamsConfig,
    ShardedConfig, ShardedRedisAdapterHandle,
};
use serde_json::json;

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: redis_node [--port N] --redis URL[,URL…] [--name NAME] [--sharded | --streams]"
    );
    std::process::exit(2);
}

fn ack(ev: &mut Event, v: &serde_json::Value) {
    if let Some(a) = ev.take_ack() {
        let _ = a.send(v);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (mut port, mut url, mut name) = (0u16, None, "ferrio".to_owned());
    let (mut sharded, mut streams) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--sharded" {
            sharded = true;
            continue;
        }
        if flag == "--streams" {
            streams = true;
            continue;
        }
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| usage("--port")),
            "--redis" => url = Some(value),
            "--name" => name = value,
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--redis is required"));
    let adapter = if streams {
        RedisStreamsAdapterHandle::connect(&url, RedisStreamsConfig::default())
            .await
            .unwrap_or_else(|e| usage(&e.to_string()))
            .factory()
    } else if sharded {
        let urls: Vec<&str> = url.split(',').collect();
        ShardedRedisAdapterHandle::connect(urls, ShardedConfig::default())
            .await
            .unwrap_or_else(|e| usage(&e.to_string()))
            .factory()
    } else {
        RedisAdapterHandle::connect(&url, RedisAdapterConfig::default())
            .await
            .unwrap_or_else(|e| usage(&e.to_string()))
            .factory()
    };
    let mut config = IoConfig::builder()
        .path("/socket.io/")
        .cors(Cors::any())
        .adapter(adapter);
    if streams {
        config = config.connection_state_recovery(ConnectionStateRecovery::default());
    }
    let io = Io::new(config.build());
    let name: Arc<str> = Arc::from(name);

    let ns = io.of("/");
    {
        let name = name.clone();
        ns.on_server_side("ping", move |_args, sink| {
            if let Some(sink) = sink {
                let _ = sink.send(AckEvent::Response(vec![Value::from(format!(
                    "pong from {name}"
                ))]));
            }
        });
    }
    {
        let io2 = io.clone();
        ns.on_server_side("note", move |args, _| {
            let _ = io2.local().emit("note", &args);
        });
    }
    let (io2, name2) = (io.clone(), name.clone());
    ns.on_connection(move |socket: Socket| {
        socket.set_data(json!({ "node": &*name2 }));
        install(&socket, &io2, &name2);
        async {}
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    io.serve(listener).await
}

fn install(socket: &Socket, io: &Io, name: &Arc<str>) {
    socket.on("join", |s: Socket, mut ev: Event| async move {
        let ok = match ev.args().first().and_then(Value::as_str) {
            Some(r) => s.join([r]).is_ok(),
            None => true,
        };
        ack(&mut ev, &json!(ok));
    });
    socket.on("recovered", |s: Socket, mut ev: Event| async move {
        ack(&mut ev, &json!(s.recovered()));
    });
    socket.on("rooms", |s: Socket, mut ev: Event| async move {
        let mut rooms: Vec<String> = s.rooms().iter().map(|r| r.to_string()).collect();
        rooms.sort();
        ack(&mut ev, &json!(rooms));
    });
    let io2 = io.clone();
    socket.on("broadcast", move |_s: Socket, mut ev: Event| {
        let io = io2.clone();
        async move {
            let spec = ev.args().first().cloned().unwrap_or_default();
            let event = spec.get("event").and_then(Value::as_str).unwrap_or("x");
            let arg = spec
                .get("args")
                .and_then(Value::as_array)
                .and_then(|a| a.first().cloned())
                .unwrap_or_default();
            let _ = match spec.get("room").and_then(Value::as_str) {
                Some(r) => io.to(r).emit(event, &arg),
                None => io.emit(event, &arg),
            };
            ack(&mut ev, &json!(true));
        }
    });
    let io2 = io.clone();
    socket.on("fetch", move |_s: Socket, mut ev: Event| {
        let io = io2.clone();
        async move {
            let mut out: Vec<serde_json::Value> = io
                .fetch_sockets()
                .await
                .iter()
                .map(|s| {
                    let mut rooms = s.rooms().to_vec();
                    rooms.sort();
                    json!({
                        "id": s.id(),
                        "rooms": rooms,
                        "data": s.data::<serde_json::Value>().unwrap_or_default(),
                    })
                })
                .collect();
            out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            ack(&mut ev, &json!(out));
        }
    });
    let (io2, name2) = (io.clone(), name.clone());
    socket.on("sse", move |_s: Socket, mut ev: Event| {
        let (io, name) = (io2.clone(), name2.clone());
        async move {
            let timeout = ev
                .args()
                .first()
                .and_then(|v| v.get("timeout"))
                .and_then(Value::as_u64)
                .unwrap_or(2000);
            let r = io
                .of("/")
                .timeout(Duration::from_millis(timeout))
                .server_side_emit_with_ack("ping", &*name)
                .await;
            let (ok, acks) = match r {
                Ok(a) => (true, a),
                Err(e) => (false, e.into_responses()),
            };
            let mut responses: Vec<String> = acks
                .into_iter()
                .map(|a| {
                    a.0.first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            responses.sort();
            ack(&mut ev, &json!({ "ok": ok, "responses": responses }));
        }
    });
}
