//! The server the `interop/socket*.test.js` tests run the official `socket.io-client` against.
//!
//! `cargo run -p ferrio --example socket_interop -- --port 0` serves Socket.IO at `/socket.io/` (CORS for
//! any origin) and prints one line, `listening on http://127.0.0.1:PORT`, once bound; nothing else goes
//! to stdout.
//!
//! Flags: `--port N` (0, the default, picks a free port); `--ping-interval MS` / `--ping-timeout MS`
//! (300 / 200); `--parser json|msgpack` (json; msgpack is `socket.io-msgpack-parser`); `--allow-eio3`
//! (also accept socket.io-client 2.x: Engine.IO v3, Socket.IO v4, JSONP); `--per-message-deflate`
//! (permessage-deflate on websockets, threshold 1024).
//!
//! Namespaces:
//! - `/` and `/custom`: the events below;
//! - `/private`: the same, behind a middleware refusing with `"not authorized"` and data `{"code": 42}`
//!   unless `auth.token == "secret"`;
//! - every name matching `^/dyn-\d+$` (a dynamic namespace): on connection the server emits `hello` with
//!   the namespace name, then the same events.
//!
//! Events (every "spec" is one object argument; handlers that answer with an ack do so once the action
//! is done, so that the client knows when it happened):
//! - `message` is answered with `socket.send` of the same arguments (as one array);
//! - `echo` acks with the same arguments; `emit-back` emits `echo-back` with the same arguments;
//! - `binary-please` emits `binary` with `([42, 42, 42], OBJ)` and acks `(OBJ, [42, 42, 42])`, OBJ being
//!   `{single: [0, 1, 2, 255], list: [bytes 0..=255, {deep: empty bytes}, "text"], n: 1.5}` (bytes as
//!   binary attachments);
//! - `whoami` acks `{id, nsp, connId, transport}`; `handshake` acks `{auth, query}`;
//! - `join` (a room or an array of rooms) acks `true`; `leave` (a room) acks `true`; `rooms` acks the
//!   sorted list of the socket's rooms (its own id included);
//! - broadcasts, each acking `true` once emitted, `args` being the list of event arguments (0 to 3):
//!   `to-room` `{rooms, event, args}` is `socket.to(r1).to(r2)…emit`;
//!   `except` `{rooms, event, args}` is `socket.except(r1)…emit` (everyone but those rooms and the sender);
//!   `broadcast` `{event, args}` is `socket.broadcast().emit`;
//!   `io-emit` `{to?, except?, event, args}` is `io.of(nsp).to(..).except(..).local().emit` (the plain
//!   `ns.emit` without `to`/`except`);
//!   `volatile` `{to?, event, args}` is `io.of(nsp).volatile().to(..).emit`;
//! - `server-ack` `{timeout, args}` (timeout in ms) emits `ask` with `args` and an ack; then emits
//!   `ask-result` with `{ok: true, args}` (what the client acked) or `{ok: false, error}`;
//! - `broadcast-ack` `{room, timeout, args}`: `io.of(nsp).to(room).timeout(t).emit_with_ack("ask", args)`,
//!   then emits `broadcast-ack-result` `{timedOut, error, responses}` (`responses`: one argument list per
//!   answer, sorted by their JSON text so the order does not depend on timing);
//! - `fetch` `{room?}` acks `[{id, nsp, rooms, data}]` of `fetch_sockets` (in the room, or everyone),
//!   sorted by id, rooms sorted;
//! - `sockets-join` / `sockets-leave` `{room?, rooms}` make the sockets of `room` (or everyone) join /
//!   leave `rooms`, then ack `true`;
//! - `disconnect-sockets` `{room?, close}` disconnects the sockets of `room` (or everyone), then acks `true`;
//! - `set-data` (any value) stores it as `socket.data` and acks `true`; `get-data` acks `socket.data`;
//! - `null-through-send` emits `null-event` with `&Value::Null` and acks with `&Value::Null` (through
//!   `emit` / `AckSender::send`, not the raw-argument variants);
//! - `disconnect-me` is `socket.disconnect(false)`; `close-me` is `socket.disconnect(true)`;
//! - `any-log` acks the names of the events `on_any` saw (itself included); `outgoing-log` acks the names
//!   of the events `on_any_outgoing` saw;
//! - `forbidden` is refused by a `socket.use` middleware with the error `{message: "forbidden event",
//!   event}`; `on_error` then emits `error-seen` with that error;
//! - `last-disconnect-reason` `{id}` acks the reason string with which the server socket `id` (any
//!   namespace) disconnected, or `null` if it has not (yet).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use ferrio::engine::Cors;
use ferrio::{BroadcastOperator, ConnectError, Event, Io, IoConfig, Socket, Value, to_value};
use parking_lot::Mutex;
use serde_json::json;

struct Args {
    port: u16,
    ping_interval: u64,
    ping_timeout: u64,
    msgpack: bool,
    allow_eio3: bool,
    per_message_deflate: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: socket_interop [--port N] [--ping-interval MS] [--ping-timeout MS] [--parser json|msgpack] [--allow-eio3] [--per-message-deflate]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        ping_interval: 300,
        ping_timeout: 200,
        msgpack: false,
        allow_eio3: false,
        per_message_deflate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--allow-eio3" {
            args.allow_eio3 = true;
            continue;
        }
        if flag == "--per-message-deflate" {
            args.per_message_deflate = true;
            continue;
        }
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
            "--ping-interval" => args.ping_interval = number(&value),
            "--ping-timeout" => args.ping_timeout = number(&value),
            "--parser" => {
                args.msgpack = match value.as_str() {
                    "json" => false,
                    "msgpack" => true,
                    other => usage(&format!("--parser: json or msgpack, not {other:?}")),
                }
            }
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    args
}

/// What the server remembers across sockets.
#[derive(Default)]
struct State {
    /// Socket id → reason of its disconnection.
    reasons: Mutex<HashMap<String, &'static str>>,
}

/// Per-socket logs of the catch-all listeners.
#[derive(Default)]
struct Logs {
    incoming: Mutex<Vec<String>>,
    outgoing: Mutex<Vec<String>>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A room or a list of rooms.
fn rooms_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

fn spec(ev: &Event) -> Value {
    ev.args().first().cloned().unwrap_or(Value::Null)
}

fn millis(v: &Value, key: &str, default: u64) -> Duration {
    Duration::from_millis(v.get(key).and_then(Value::as_u64).unwrap_or(default))
}

fn args_of(v: &Value) -> Vec<Value> {
    v.get("args")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `op.emit(event, args...)` with 0 to 3 positional arguments.
fn emit_op(op: &BroadcastOperator, event: &str, args: &[Value]) -> Result<(), ferrio::EmitError> {
    match args {
        [] => op.emit(event, &()),
        [a] => op.emit(event, a),
        [a, b] => op.emit(event, &(a, b)),
        [a, b, c, ..] => op.emit(event, &(a, b, c)),
    }
}

fn ack_true(ev: &mut Event) {
    let _ = ev.ack(&true);
}

fn sorted_json(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_json().0);
    v
}

/// Installs every listener of the test protocol on a socket.
fn install(socket: &Socket, io: &Io, state: &Arc<State>) {
    let logs = Arc::new(Logs::default());
    {
        let logs = logs.clone();
        socket.on_any(move |_s, name, _args| logs.incoming.lock().push(name.to_owned()));
    }
    {
        let logs = logs.clone();
        socket.on_any_outgoing(move |_s, name, _args| logs.outgoing.lock().push(name.to_owned()));
    }
    socket.use_middleware(|_s, ev| {
        if ev.name() == "forbidden" {
            Err(to_value(&json!({"message": "forbidden event", "event": ev.name()})).unwrap())
        } else {
            Ok(())
        }
    });
    socket.on_error(|s, err| {
        let _ = s.emit("error-seen", err);
    });
    {
        let state = state.clone();
        socket.on_disconnect(move |s: Socket, reason| {
            let state = state.clone();
            async move {
                state
                    .reasons
                    .lock()
                    .insert(s.id().to_owned(), reason.as_str());
            }
        });
    }

    socket.on("message", |s: Socket, mut ev: Event| async move {
        let _ = s.send(&Value::Array(ev.take_args()));
    });
    socket.on("echo", |_s, mut ev: Event| async move {
        let args = ev.take_args();
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send_args(args);
        }
    });
    socket.on("emit-back", |s: Socket, mut ev: Event| async move {
        let _ = s.emit_args("echo-back", ev.take_args());
    });
    socket.on("binary-please", |s: Socket, mut ev: Event| async move {
        // Blobs made on the Rust side: [0, 1, 2, 255], 0..=255 and an empty one, nested.
        let all: Vec<u8> = (0..=255).collect();
        let mut deep = ferrio::value::Map::new();
        deep.insert("deep".into(), Value::from(Vec::<u8>::new()));
        let mut obj = ferrio::value::Map::new();
        obj.insert("single".into(), Value::from(vec![0u8, 1, 2, 255]));
        obj.insert(
            "list".into(),
            Value::Array(vec![
                Value::from(all),
                Value::Object(deep),
                Value::from("text"),
            ]),
        );
        obj.insert("n".into(), Value::from(1.5));
        let obj = Value::Object(obj);
        let blob = Value::from(vec![42u8; 3]);
        let _ = s.emit("binary", &(&blob, &obj));
        let _ = ev.ack(&(&obj, &blob));
    });
    socket.on("whoami", |s: Socket, mut ev: Event| async move {
        let _ = ev.ack(&json!({
            "id": s.id(),
            "nsp": s.nsp(),
            "connId": s.conn_id(),
            "transport": s.transport().as_str(),
        }));
    });
    socket.on("handshake", |s: Socket, mut ev: Event| async move {
        let hs = s.handshake();
        let mut map = ferrio::value::Map::new();
        map.insert("auth".into(), hs.auth.clone());
        map.insert("query".into(), to_value(&hs.query).unwrap_or_default());
        let _ = ev.ack(&Value::Object(map));
    });

    // ---- rooms ----
    socket.on("join", |s: Socket, mut ev: Event| async move {
        // The interop tests join a handful of rooms, far below max_rooms_per_socket.
        s.join(rooms_of(ev.args().first()))
            .expect("within max_rooms_per_socket");
        ack_true(&mut ev);
    });
    socket.on("leave", |s: Socket, mut ev: Event| async move {
        for r in rooms_of(ev.args().first()) {
            s.leave(r);
        }
        ack_true(&mut ev);
    });
    socket.on("rooms", |s: Socket, mut ev: Event| async move {
        let mut rooms: Vec<String> = s.rooms().iter().map(|r| r.to_string()).collect();
        rooms.sort();
        let _ = ev.ack(&rooms);
    });

    // ---- broadcasts ----
    socket.on("to-room", |s: Socket, mut ev: Event| async move {
        let spec = spec(&ev);
        let mut rooms = rooms_of(spec.get("rooms")).into_iter();
        let Some(first) = rooms.next() else { return };
        let op = rooms.fold(s.to(first), |op, r| op.to(r));
        let _ = emit_op(
            &op,
            str_field(&spec, "event").unwrap_or("?"),
            &args_of(&spec),
        );
        ack_true(&mut ev);
    });
    socket.on("except", |s: Socket, mut ev: Event| async move {
        let spec = spec(&ev);
        let op = rooms_of(spec.get("rooms"))
            .into_iter()
            .fold(s.broadcast(), |op, r| op.except(r));
        let _ = emit_op(
            &op,
            str_field(&spec, "event").unwrap_or("?"),
            &args_of(&spec),
        );
        ack_true(&mut ev);
    });
    socket.on("broadcast", |s: Socket, mut ev: Event| async move {
        let spec = spec(&ev);
        let _ = emit_op(
            &s.broadcast(),
            str_field(&spec, "event").unwrap_or("?"),
            &args_of(&spec),
        );
        ack_true(&mut ev);
    });
    {
        let io = io.clone();
        socket.on("io-emit", move |s: Socket, mut ev: Event| {
            let io = io.clone();
            async move {
                let spec = spec(&ev);
                let ns = io.of(s.nsp());
                let event = str_field(&spec, "event").unwrap_or("?");
                let args = args_of(&spec);
                let to = rooms_of(spec.get("to"));
                let except = rooms_of(spec.get("except"));
                if to.is_empty() && except.is_empty() {
                    match args.as_slice() {
                        [] => drop(ns.emit(event, &())),
                        [a] => drop(ns.emit(event, a)),
                        [a, b] => drop(ns.emit(event, &(a, b))),
                        [a, b, c, ..] => drop(ns.emit(event, &(a, b, c))),
                    }
                } else {
                    let op = to.into_iter().fold(ns.local(), |op, r| op.to(r));
                    let op = except.into_iter().fold(op, |op, r| op.except(r));
                    let _ = emit_op(&op, event, &args);
                }
                ack_true(&mut ev);
            }
        });
    }
    {
        let io = io.clone();
        socket.on("volatile", move |s: Socket, mut ev: Event| {
            let io = io.clone();
            async move {
                let spec = spec(&ev);
                let op = rooms_of(spec.get("to"))
                    .into_iter()
                    .fold(io.of(s.nsp()).volatile(), |op, r| op.to(r));
                let _ = emit_op(
                    &op,
                    str_field(&spec, "event").unwrap_or("?"),
                    &args_of(&spec),
                );
                ack_true(&mut ev);
            }
        });
    }

    // ---- acks ----
    socket.on("server-ack", |s: Socket, ev: Event| async move {
        let spec = spec(&ev);
        let timeout = millis(&spec, "timeout", 1000);
        let args = args_of(&spec);
        // On a task: the socket's later events are not held back while the client thinks.
        tokio::spawn(async move {
            let result = match args.as_slice() {
                [] => s.timeout(timeout).emit_with_ack("ask", &()).await,
                [a] => s.timeout(timeout).emit_with_ack("ask", a).await,
                [a, b] => s.timeout(timeout).emit_with_ack("ask", &(a, b)).await,
                [a, b, c, ..] => s.timeout(timeout).emit_with_ack("ask", &(a, b, c)).await,
            };
            let mut out = ferrio::value::Map::new();
            match result {
                Ok(args) => {
                    out.insert("ok".into(), Value::Bool(true));
                    out.insert("args".into(), Value::Array(args.into_inner()));
                }
                Err(e) => {
                    out.insert("ok".into(), Value::Bool(false));
                    out.insert("error".into(), Value::String(e.to_string()));
                }
            }
            let _ = s.emit("ask-result", &Value::Object(out));
        });
    });
    {
        let io = io.clone();
        socket.on("broadcast-ack", move |s: Socket, ev: Event| {
            let io = io.clone();
            async move {
                let spec = spec(&ev);
                let timeout = millis(&spec, "timeout", 1000);
                let args = args_of(&spec);
                let mut op = io.of(s.nsp()).timeout(timeout);
                for r in rooms_of(spec.get("room")) {
                    op = op.to(r);
                }
                tokio::spawn(async move {
                    let result = match args.as_slice() {
                        [] => op.emit_with_ack("ask", &()).await,
                        [a] => op.emit_with_ack("ask", a).await,
                        [a, b] => op.emit_with_ack("ask", &(a, b)).await,
                        [a, b, c, ..] => op.emit_with_ack("ask", &(a, b, c)).await,
                    };
                    let (timed_out, error, responses) = match result {
                        Ok(r) => (false, None, r),
                        Err(e) => (
                            e.is_timeout(),
                            Some(e.error().to_string()),
                            e.into_responses(),
                        ),
                    };
                    let mut out = ferrio::value::Map::new();
                    out.insert("timedOut".into(), Value::Bool(timed_out));
                    out.insert(
                        "error".into(),
                        error.map_or(Value::Null, |e| Value::String(e.to_string())),
                    );
                    out.insert(
                        "responses".into(),
                        Value::Array(sorted_json(
                            responses
                                .into_iter()
                                .map(|a| Value::Array(a.into_inner()))
                                .collect(),
                        )),
                    );
                    let _ = s.emit("broadcast-ack-result", &Value::Object(out));
                });
            }
        });
    }

    // ---- server-side utilities ----
    {
        let io = io.clone();
        socket.on("fetch", move |s: Socket, mut ev: Event| {
            let io = io.clone();
            async move {
                let spec = spec(&ev);
                let ns = io.of(s.nsp());
                let room = rooms_of(spec.get("room"));
                let sockets = match room.first() {
                    Some(r) => ns.to(r.as_str()).fetch_sockets().await,
                    None => ns.fetch_sockets().await,
                };
                let mut out: Vec<Value> = sockets
                    .iter()
                    .map(|rs| {
                        let mut rooms = rs.rooms().to_vec();
                        rooms.sort();
                        let mut m = ferrio::value::Map::new();
                        m.insert("id".into(), Value::String(rs.id().to_owned()));
                        m.insert("nsp".into(), Value::String(s.nsp().to_owned()));
                        m.insert("rooms".into(), to_value(&rooms).unwrap_or_default());
                        m.insert("data".into(), rs.data::<Value>().unwrap_or(Value::Null));
                        Value::Object(m)
                    })
                    .collect();
                out.sort_by(|a, b| str_field(a, "id").cmp(&str_field(b, "id")));
                let _ = ev.ack(&out);
            }
        });
    }
    for (event, join) in [("sockets-join", true), ("sockets-leave", false)] {
        let io = io.clone();
        socket.on(event, move |s: Socket, mut ev: Event| {
            let io = io.clone();
            async move {
                let spec = spec(&ev);
                let ns = io.of(s.nsp());
                let rooms = rooms_of(spec.get("rooms"));
                let target = rooms_of(spec.get("room"));
                match (target.first(), join) {
                    (Some(t), true) => ns.to(t.as_str()).sockets_join(rooms).await,
                    (Some(t), false) => ns.to(t.as_str()).sockets_leave(rooms).await,
                    (None, true) => ns.sockets_join(rooms).await,
                    (None, false) => ns.sockets_leave(rooms).await,
                }
                ack_true(&mut ev);
            }
        });
    }
    {
        let io = io.clone();
        socket.on("disconnect-sockets", move |s: Socket, mut ev: Event| {
            let io = io.clone();
            async move {
                let spec = spec(&ev);
                let ns = io.of(s.nsp());
                let close = spec.get("close").and_then(Value::as_bool).unwrap_or(false);
                match rooms_of(spec.get("room")).first() {
                    Some(r) => ns.to(r.as_str()).disconnect_sockets(close).await,
                    None => ns.disconnect_sockets(close).await,
                }
                ack_true(&mut ev);
            }
        });
    }
    socket.on("set-data", |s: Socket, mut ev: Event| async move {
        s.set_data(spec(&ev));
        ack_true(&mut ev);
    });
    socket.on("get-data", |s: Socket, mut ev: Event| async move {
        // `send_args`: `ack(&Value::Null)` would send no argument at all (see `null-through-send`).
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send_args(vec![s.data_value().unwrap_or_default()]);
        }
    });
    socket.on("null-through-send", |s: Socket, mut ev: Event| async move {
        // `AckSender::send` / `Socket::emit` document "a tuple is several arguments, `()` none, anything
        // else one": a `Value::Null` should be one `null` argument, as `ack(null)` is in JavaScript.
        let _ = s.emit("null-event", &Value::Null);
        let _ = ev.ack(&Value::Null);
    });
    socket.on("disconnect-me", |s: Socket, _ev: Event| async move {
        s.disconnect(false);
    });
    socket.on("close-me", |s: Socket, _ev: Event| async move {
        s.disconnect(true);
    });
    {
        let logs = logs.clone();
        socket.on("any-log", move |_s, mut ev: Event| {
            let log = logs.incoming.lock().clone();
            async move {
                let _ = ev.ack(&log);
            }
        });
    }
    socket.on("outgoing-log", move |_s, mut ev: Event| {
        let log = logs.outgoing.lock().clone();
        async move {
            let _ = ev.ack(&log);
        }
    });
    {
        let state = state.clone();
        socket.on("last-disconnect-reason", move |_s, mut ev: Event| {
            let reason =
                str_field(&spec(&ev), "id").and_then(|id| state.reasons.lock().get(id).copied());
            async move {
                let _ = ev.ack(&reason);
            }
        });
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = parse_args();
    let mut config = IoConfig::builder()
        .ping_interval(Duration::from_millis(args.ping_interval))
        .ping_timeout(Duration::from_millis(args.ping_timeout))
        .cors(Cors::any())
        .allow_eio3(args.allow_eio3)
        .per_message_deflate(
            args.per_message_deflate
                .then(ferrio::engine::PerMessageDeflate::default),
        );
    if args.msgpack {
        config = config.parser(Arc::new(ferrio::MsgpackParser::new()));
    }
    let io = Io::new(config.build());
    let state = Arc::new(State::default());

    for name in ["/", "/custom", "/private"] {
        let (io2, state) = (io.clone(), state.clone());
        io.of(name).on_connection(move |socket: Socket| {
            install(&socket, &io2, &state);
            async {}
        });
    }
    io.of("/private")
        .use_middleware(|socket: Socket| async move {
            if str_field(&socket.handshake().auth, "token") == Some("secret") {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized")
                    .with_data(&json!({"code": 42}))
                    .expect("JSON data serializes"))
            }
        });
    {
        let (io2, state) = (io.clone(), state.clone());
        io.of_regex(regex::Regex::new(r"^/dyn-\d+$").expect("valid regex"))
            .on_connection(move |socket: Socket| {
                install(&socket, &io2, &state);
                let _ = socket.emit("hello", socket.nsp());
                async {}
            });
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    io.serve(listener).await
}
