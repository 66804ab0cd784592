//! `ferrio connect URL`: a Socket.IO client on the command line, like wscat.
//!
//! Everything that happens is printed as one JSON line on stdout: `{"type":"event","nsp":…,"event":…,
//! "args":[…]}`, connects, disconnects, acks. Binary arguments print as `{"$binary":"<base64>"}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ferrio_client::{AckSender, Auth, ClientOptions, Manager, ManagerEvent, Socket, Value};
use ferrio_proto::engine::{Protocol, TransportKind};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::config::ParserKind;

/// Options of `ferrio connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectOptions {
    /// Server URL (`http://host:port`, a namespace may follow: `http://host:port/chat`).
    pub url: String,
    /// Emit this event once connected (then wait and exit), instead of the interactive prompt.
    #[arg(long)]
    pub emit: Option<String>,
    /// Arguments of `--emit`: a JSON array is several arguments, anything else one.
    #[arg(value_name = "JSON")]
    pub args: Option<String>,
    /// Ask for an ack on `--emit` and print it.
    #[arg(long)]
    pub ack: bool,
    /// Namespace (overrides the URL's path).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only this transport.
    #[arg(long, value_parser = ["polling", "websocket"])]
    pub transport: Option<String>,
    /// CONNECT payload (JSON object).
    #[arg(long)]
    pub auth: Option<String>,
    /// Seconds to keep listening after `--emit` (default 1).
    #[arg(long)]
    pub wait: Option<f64>,
    /// Socket.IO path.
    #[arg(long, default_value = "/socket.io/")]
    pub path: String,
    /// Packet parser: the server's (`json` or `msgpack`).
    #[arg(long, value_enum, default_value_t = ParserKind::Json)]
    pub parser: ParserKind,
    /// Engine.IO protocol revision: 4, or 3 for socket.io 2.x servers (Socket.IO protocol v4 then,
    /// which has no `--auth`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=4))]
    pub eio: u8,
}

/// One JSON line on stdout, the only thing stdout carries (help, prompts and errors go to stderr).
fn print(v: serde_json::Value) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{v}").and_then(|()| out.flush()).is_err() {
        // The reader is gone (`ferrio connect … | head -1`): nobody is left to tell anything.
        std::process::exit(0);
    }
}

/// A Value as plain JSON for printing: binary becomes `{"$binary": base64}`.
fn to_json(v: &Value) -> serde_json::Value {
    use base64::Engine as _;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Number(n) => serde_json::Value::Number(n.clone()),
        Value::String(s) => json!(s),
        Value::Binary(b) => {
            json!({ "$binary": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// Parses command-line JSON arguments: an array is the argument list, anything else one argument.
fn parse_args(text: Option<&str>) -> Result<Vec<Value>, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(vec![]);
    };
    match Value::from_json(text).map_err(|e| format!("invalid JSON arguments: {e}"))? {
        Value::Array(items) => Ok(items),
        v => Ok(vec![v]),
    }
}

fn split_url(url: &str) -> (String, String) {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => {
            let path = &url[after + i..];
            let nsp = path
                .split(['?', '#'])
                .next()
                .filter(|p| *p != "/" && !p.is_empty())
                .unwrap_or("/");
            (url[..after + i].to_owned(), nsp.to_owned())
        }
        None => (url.to_owned(), "/".to_owned()),
    }
}

struct Session {
    manager: Manager,
    sockets: Mutex<HashMap<String, Socket>>,
    pending_acks: Mutex<HashMap<u64, AckSender>>,
    next_ack: Mutex<u64>,
}

impl Session {
    /// The socket of `nsp`, created and wired to print everything on first use.
    fn socket(self: &Arc<Self>, nsp: &str) -> Socket {
        if let Some(s) = self.sockets.lock().get(nsp) {
            return s.clone();
        }
        let socket = self.manager.socket(nsp);
        let name = nsp.to_owned();
        socket.on_connect(move |s| {
            let nsp = name.clone();
            async move { print(json!({ "type": "connect", "nsp": nsp, "id": s.id() })) }
        });
        let name = nsp.to_owned();
        socket.on_connect_error(move |_s, err| {
            let nsp = name.clone();
            async move { print(json!({ "type": "connect_error", "nsp": nsp, "error": to_json(&err.to_value()) })) }
        });
        let name = nsp.to_owned();
        socket.on_disconnect(move |_s, reason| {
            let nsp = name.clone();
            async move { print(json!({ "type": "disconnect", "nsp": nsp, "reason": reason.as_str() })) }
        });
        let me = self.clone();
        let name = nsp.to_owned();
        socket.on_unhandled(move |_s, mut ev| {
            let me = me.clone();
            let nsp = name.clone();
            async move {
                let ack = ev.take_ack();
                me.print_event(&nsp, ev.name(), ev.args(), ack);
            }
        });
        self.sockets.lock().insert(nsp.to_owned(), socket.clone());
        socket
    }

    fn print_event(&self, nsp: &str, event: &str, args: &[Value], ack: Option<AckSender>) {
        let mut line = json!({
            "type": "event",
            "nsp": nsp,
            "event": event,
            "args": args.iter().map(to_json).collect::<Vec<_>>(),
        });
        if let Some(ack) = ack {
            let mut n = self.next_ack.lock();
            *n += 1;
            line["ack"] = json!(*n);
            self.pending_acks.lock().insert(*n, ack);
        }
        print(line);
    }
}

/// Runs `ferrio connect`.
pub async fn run(opts: ConnectOptions) -> Result<(), String> {
    let (origin, url_nsp) = split_url(&opts.url);
    let nsp = opts.namespace.clone().unwrap_or(url_nsp);
    let mut client = ClientOptions::default();
    client.engine.path = opts.path.clone();
    client.parser = opts.parser.parser();
    client.engine.protocol = if opts.eio == 3 {
        Protocol::V3
    } else {
        Protocol::V4
    };
    if let Some(t) = &opts.transport {
        client.engine.transports = vec![TransportKind::parse(t).ok_or("unknown transport")?];
    }
    if opts.auth.is_some() && opts.eio == 3 {
        // Socket.IO protocol v4 has no CONNECT payload: dropping it silently would hide why a server
        // refuses the connection.
        return Err(
            "--auth needs Engine.IO v4 (socket.io 2.x servers read the query instead)".into(),
        );
    }
    if let Some(a) = &opts.auth {
        client.auth = Auth::Value(Value::from_json(a).map_err(|e| format!("invalid --auth: {e}"))?);
    }
    client.force_new = true;
    let manager = Manager::new(&origin, client);
    manager.on_event(|e| match e {
        ManagerEvent::ReconnectAttempt(n) => {
            print(json!({ "type": "reconnect_attempt", "attempt": n }))
        }
        ManagerEvent::Reconnect(n) => print(json!({ "type": "reconnect", "attempts": n })),
        ManagerEvent::Error(msg) => print(json!({ "type": "error", "message": msg })),
        ManagerEvent::ReconnectFailed => print(json!({ "type": "reconnect_failed" })),
        _ => {}
    });
    let session = Arc::new(Session {
        manager,
        sockets: Mutex::new(HashMap::new()),
        pending_acks: Mutex::new(HashMap::new()),
        next_ack: Mutex::new(0),
    });
    let socket = open(&session, &nsp);

    if let Some(event) = &opts.emit {
        let args = parse_args(opts.args.as_deref())?;
        wait_connected(&socket).await?;
        if opts.ack {
            match socket
                .timeout(Duration::from_secs(10))
                .emit_with_ack(event, &ArgsRef(&args))
                .await
            {
                Ok(a) => print(
                    json!({ "type": "ack", "args": a.0.iter().map(to_json).collect::<Vec<_>>() }),
                ),
                Err(e) => print(json!({ "type": "ack_error", "message": e.to_string() })),
            }
        } else {
            socket.emit_args(event, args).map_err(|e| e.to_string())?;
        }
        tokio::time::sleep(Duration::from_secs_f64(opts.wait.unwrap_or(1.0).max(0.0))).await;
        socket.disconnect();
        return Ok(());
    }
    interactive(session, nsp, opts.wait.unwrap_or(1.0)).await
}

/// Event arguments given as a list, serialized as a tuple would be: one argument each.
struct ArgsRef<'a>(&'a [Value]);

impl serde::Serialize for ArgsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

fn open(session: &Arc<Session>, nsp: &str) -> Socket {
    session.socket(nsp)
}

async fn wait_connected(socket: &Socket) -> Result<(), String> {
    for _ in 0..200 {
        if socket.connected() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("could not connect within 10 s".into())
}

const HELP: &str = "commands: emit EVENT [JSON] | ack EVENT [JSON] (emit and wait for the ack) | \
answer N [JSON] (answer the server's ack N) | ns /NAME (switch namespace) | quit";

async fn interactive(session: Arc<Session>, mut nsp: String, wait: f64) -> Result<(), String> {
    // On stderr, piped or not: a script reading stdout gets JSON lines only.
    eprintln!("{HELP}");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let socket = open(&session, &nsp);
        match cmd {
            "" => {}
            "quit" | "exit" => break,
            "emit" | "ack" => {
                let (event, json) = rest.split_once(' ').unwrap_or((rest, ""));
                let args = match parse_args(Some(json)) {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("{e}");
                        continue;
                    }
                };
                if cmd == "emit" {
                    if let Err(e) = socket.emit_args(event, args) {
                        eprintln!("{e}");
                    }
                } else {
                    let socket = socket.clone();
                    let event = event.to_owned();
                    tokio::spawn(async move {
                        match socket
                            .timeout(Duration::from_secs(10))
                            .emit_with_ack(&event, &ArgsRef(&args))
                            .await
                        {
                            Ok(a) => print(
                                json!({ "type": "ack", "event": event, "args": a.0.iter().map(to_json).collect::<Vec<_>>() }),
                            ),
                            Err(e) => print(
                                json!({ "type": "ack_error", "event": event, "message": e.to_string() }),
                            ),
                        }
                    });
                }
            }
            "answer" => {
                let (n, json) = rest.split_once(' ').unwrap_or((rest, ""));
                let sender = n
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| session.pending_acks.lock().remove(&n));
                match (sender, parse_args(Some(json))) {
                    (Some(s), Ok(args)) => {
                        if let Err(e) = s.send_args(args) {
                            eprintln!("{e}");
                        }
                    }
                    (None, _) => eprintln!("no pending ack {n}"),
                    (_, Err(e)) => eprintln!("{e}"),
                }
            }
            "ns" => {
                nsp = ferrio_proto::socket::normalize_namespace(rest).into_owned();
                open(&session, &nsp);
            }
            _ => eprintln!("{HELP}"),
        }
    }
    // Input ended (a pipe): let what was sent get its answers before leaving.
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    session.manager.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_parsing() {
        assert_eq!(parse_args(None).unwrap(), vec![]);
        assert_eq!(
            parse_args(Some("[1,\"a\"]")).unwrap(),
            vec![Value::from(1u64), Value::from("a")]
        );
        assert_eq!(parse_args(Some("{\"a\":1}")).unwrap().len(), 1);
        assert!(parse_args(Some("{nope")).is_err());
    }

    #[test]
    fn url_and_namespace() {
        assert_eq!(
            split_url("http://h:1/chat"),
            ("http://h:1".into(), "/chat".into())
        );
        assert_eq!(split_url("http://h:1"), ("http://h:1".into(), "/".into()));
        assert_eq!(split_url("http://h:1/"), ("http://h:1".into(), "/".into()));
    }

    #[test]
    fn binary_prints_as_base64() {
        let v = Value::Array(vec![Value::Binary(bytes::Bytes::from_static(&[1, 2, 3]))]);
        assert_eq!(to_json(&v), json!([{ "$binary": "AQID" }]));
    }
}
