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
//! - `burst` `{room, from, count, cut?, cutAfter?}` broadcasts `n` with `from, from + 1, …` to `room`,
//!   pausing a millisecond every 10 packets (so that a client can drop in the middle), then acks
//!   `true`. With `cut` (a socket id), the server cuts that socket's transport once `cutAfter` (0)
//!   packets went out: every TCP connection of its Engine.IO session is shut down, without a close
//!   packet or a close frame, as a failing network would (the server sees "transport error" or
//!   "transport close", the client its transport die), and the connections of later requests for
//!   that session are shut down too;
//! - `last-disconnect` `id` acks the reason the server gave for the last disconnection of socket
//!   `id`, or `null`.
//!
//! To cut connections, the example runs its own accept loop over `ferrio::serve_connection` and keeps
//! a handle on each connection; a connection is tied to a session by the `sid` of its requests, or by
//! the session's handshake address (a websocket-only session's one connection). (`serve_connection`
//! peeks for a client's EOF before writing a polling answer only on a `tokio::net::TcpStream`, which
//! this shared stream is not; the tests run here do not depend on that peek.)

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ferrio::{ConnectionStateRecovery, Event, Io, IoConfig, Socket, Value};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
    let conns = Connections::default();
    let last_disconnect: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let (io2, conns2, last2) = (io.clone(), conns.clone(), last_disconnect.clone());
    io.on_connection(move |socket: Socket| {
        let (io, conns, last_disconnect) = (io2.clone(), conns2.clone(), last2.clone());
        async move {
            let last = last_disconnect.clone();
            socket.on_disconnect(move |s: Socket, reason| {
                let last = last.clone();
                async move {
                    last.lock().insert(s.id().to_owned(), reason.to_string());
                }
            });
            socket.on("last-disconnect", move |_s: Socket, mut ev: Event| {
                let last = last_disconnect.clone();
                async move {
                    let id = ev.args().first().and_then(Value::as_str).unwrap_or("");
                    let reason = last.lock().get(id).cloned();
                    let _ = ev.ack(&reason);
                }
            });
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
                let (io, conns) = (io.clone(), conns.clone());
                async move {
                    let spec = ev.args().first().cloned().unwrap_or(Value::Null);
                    let room = spec.get("room").and_then(Value::as_str).unwrap_or("r");
                    let from = spec.get("from").and_then(Value::as_u64).unwrap_or(0);
                    let count = spec.get("count").and_then(Value::as_u64).unwrap_or(0);
                    let cut = spec.get("cut").and_then(Value::as_str);
                    let cut_after = spec.get("cutAfter").and_then(Value::as_u64).unwrap_or(0);
                    for n in from..from + count {
                        if n - from == cut_after
                            && let Some(id) = cut
                        {
                            conns.cut_socket(&io, id);
                        }
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
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let key = conns.add(peer, &stream);
        let (service, conns) = (io.service(), conns.clone());
        let service = tower::service_fn(move |req: http::Request<ferrio::RequestBody>| {
            conns.tag(key, sid_of(req.uri()).as_deref());
            tower::ServiceExt::oneshot(service.clone(), req)
        });
        tokio::spawn(async move {
            let _ = ferrio::serve_connection(
                SharedStream(stream),
                peer,
                service,
                ferrio::DEFAULT_HEADER_READ_TIMEOUT,
                std::future::pending(),
            )
            .await;
        });
    }
}

/// The `sid` query parameter of a request.
fn sid_of(uri: &http::Uri) -> Option<String> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("sid="))
        .map(str::to_owned)
}

/// The open TCP connections, each with a handle to shut it down and the session it serves.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<ConnectionsInner>>);

#[derive(Default)]
struct ConnectionsInner {
    next: u64,
    open: HashMap<u64, Tracked>,
    /// Sessions whose transport was cut: their later requests are cut too.
    cut: HashSet<String>,
}

struct Tracked {
    peer: SocketAddr,
    sid: Option<String>,
    /// Weak: the connection closes as usual once its IO is dropped.
    stream: Weak<TcpStream>,
}

impl Connections {
    fn add(&self, peer: SocketAddr, stream: &Arc<TcpStream>) -> u64 {
        let mut c = self.0.lock();
        c.open.retain(|_, t| t.stream.strong_count() > 0);
        c.next += 1;
        let key = c.next;
        let stream = Arc::downgrade(stream);
        c.open.insert(
            key,
            Tracked {
                peer,
                sid: None,
                stream,
            },
        );
        key
    }

    /// Ties connection `key` to the session of its request; shuts the connection down when that
    /// session was cut (the request still goes to the engine, which sees its connection die: a GET
    /// gets "transport error", as when the cut found it pending).
    fn tag(&self, key: u64, sid: Option<&str>) {
        let mut c = self.0.lock();
        let Some(sid) = sid else { return };
        if c.cut.contains(sid) {
            if let Some(t) = c.open.remove(&key) {
                shut_down(&t.stream);
            }
        } else if let Some(t) = c.open.get_mut(&key) {
            t.sid = Some(sid.to_owned());
        }
    }

    /// Cuts the transport of socket `id` (of the main namespace): every connection of its session.
    fn cut_socket(&self, io: &Io, id: &str) {
        let Some(socket) = io.of("/").socket(id) else {
            return;
        };
        let sid = socket.conn_id().to_owned();
        let handshake_peer = io
            .engine()
            .socket(&sid)
            .and_then(|s| s.handshake().remote_addr());
        let mut c = self.0.lock();
        c.cut.insert(sid.clone());
        c.open.retain(|_, t| {
            let of_session =
                t.sid.as_deref() == Some(sid.as_str()) || Some(t.peer) == handshake_peer;
            if of_session {
                shut_down(&t.stream);
            }
            !of_session
        });
    }
}

/// Both directions: the server's reads see EOF, the client gets a FIN, nothing else is sent.
fn shut_down(stream: &Weak<TcpStream>) {
    if let Some(s) = stream.upgrade() {
        let _ = socket2::SockRef::from(&*s).shutdown(std::net::Shutdown::Both);
    }
}

/// A TCP stream shared with the connection table (which may shut it down), read and written through
/// `&TcpStream`.
struct SharedStream(Arc<TcpStream>);

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}
