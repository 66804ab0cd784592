//! What the client's integration tests share: the transport settings, waiting for what a socket
//! receives, and for the tests against the official Node servers, starting a server script from
//! `interop/node-servers/` on port 0 (installing `interop/node_modules` with `npm ci` when missing).
//!
//! Each test file uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, ConnectError, DisconnectReason, Manager, Socket, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Any single wait for something the server or the client should do.
pub const STEP: Duration = Duration::from_secs(5);

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Installs `interop/node_modules` once per test process when it is missing.
fn ensure_node_modules() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = interop_dir();
        // Every package the servers load: a partial install is reinstalled.
        let installed = ["socket.io", "socket.io-v2", "socket.io-msgpack-parser"]
            .iter()
            .all(|p| {
                dir.join("node_modules")
                    .join(p)
                    .join("package.json")
                    .exists()
            });
        if installed {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("cannot run npm (is Node.js installed?)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

/// Bounds the Node servers running at once (each test runs on its own thread, with its own runtime), so
/// that `--test-threads` far above the CPU count does not starve the 300 ms heartbeats.
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| Slots {
        used: Mutex::new(0),
        freed: Condvar::new(),
        max: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
    })
}

struct Slot;

impl Slot {
    fn acquire() -> Slot {
        let s = slots();
        let mut used = s.used.lock().unwrap();
        while *used >= s.max {
            used = s.freed.wait(used).unwrap();
        }
        *used += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let s = slots();
        *s.used.lock().unwrap() -= 1;
        s.freed.notify_one();
    }
}

/// The server's own heartbeat (pingInterval 300 ms, pingTimeout 200 ms: a 500 ms window), for the
/// heartbeat checks; the other scenarios use [`RELAXED_HEARTBEAT`], so that a loaded machine does not
/// turn a late ping into an unexpected "ping timeout".
pub const FAST_HEARTBEAT: &[&str] = &["--ping-interval", "300", "--ping-timeout", "200"];
const RELAXED_HEARTBEAT: &[&str] = &["--ping-interval", "1000", "--ping-timeout", "1000"];

/// A running server script, killed on drop (it also exits when its stdin closes).
pub struct NodeServer {
    pub url: String,
    _child: Child,
    _stdin: ChildStdin,
    _slot: Slot,
}

impl NodeServer {
    /// Starts `interop/node-servers/<script>` with `extra` flags (and [`RELAXED_HEARTBEAT`] unless they
    /// set the heartbeat); returns once it prints the URL it listens on.
    pub async fn start(script: &str, extra: &[&str]) -> NodeServer {
        ensure_node_modules();
        let slot = Slot::acquire();
        let dir = interop_dir();
        let node = std::env::var("FERRIO_NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(node)
            .arg(dir.join("node-servers").join(script))
            .args(["--port", "0"])
            .args(if extra.contains(&"--ping-interval") {
                &[]
            } else {
                RELAXED_HEARTBEAT
            })
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot spawn node");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("the node server did not print its listening line in time")
            .expect("cannot read the node server's stdout")
            .expect("the node server exited before listening");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        // Keep draining stdout so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodeServer {
            url,
            _child: child,
            _stdin: stdin,
            _slot: slot,
        }
    }
}

/// Every transport setting: polling only, websocket only, polling then the upgrade.
pub const MODES: [&[TransportKind]; 3] = [
    &[TransportKind::Polling],
    &[TransportKind::WebSocket],
    &[TransportKind::Polling, TransportKind::WebSocket],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Polling,
    WebSocket,
    Upgrade,
}

impl Mode {
    pub fn transports(self) -> Vec<TransportKind> {
        match self {
            Mode::Polling => vec![TransportKind::Polling],
            Mode::WebSocket => vec![TransportKind::WebSocket],
            Mode::Upgrade => vec![TransportKind::Polling, TransportKind::WebSocket],
        }
    }

    /// The transport a connection ends up on.
    pub fn settled(self) -> TransportKind {
        match self {
            Mode::Polling => TransportKind::Polling,
            Mode::WebSocket | Mode::Upgrade => TransportKind::WebSocket,
        }
    }

    pub fn transport_name(self) -> &'static str {
        match self.settled() {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }
}

/// Three tests per scenario, one per transport setting: `scenario::polling`, `scenario::websocket`,
/// `scenario::upgrade`.
macro_rules! per_transport {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn polling() {
                super::$scenario(super::Mode::Polling).await
            }
            #[tokio::test]
            async fn websocket() {
                super::$scenario(super::Mode::WebSocket).await
            }
            #[tokio::test]
            async fn upgrade() {
                super::$scenario(super::Mode::Upgrade).await
            }
        }
    )*};
}

pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(STEP, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("channel closed waiting for {what}"))
}

/// Nothing arrives on `rx` within `d`.
pub async fn nothing_within<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>, d: Duration) {
    if let Ok(Some(v)) = tokio::time::timeout(d, rx.recv()).await {
        panic!("unexpected {v:?}");
    }
}

pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn events(socket: &Socket, name: &str) -> mpsc::UnboundedReceiver<Vec<Value>> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on(name, move |_s, mut ev| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ev.take_args());
        }
    });
    rx
}

pub fn disconnects(socket: &Socket) -> mpsc::UnboundedReceiver<DisconnectReason> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_disconnect(move |_s, r| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(r);
        }
    });
    rx
}

/// Receives the socket id on every connection.
pub fn connects(socket: &Socket) -> mpsc::UnboundedReceiver<Option<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_connect(move |s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s.id());
        }
    });
    rx
}

pub fn connect_errors(socket: &Socket) -> mpsc::UnboundedReceiver<ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_connect_error(move |_s, e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e);
        }
    });
    rx
}

pub async fn ack(socket: &Socket, event: &str, args: impl serde::Serialize) -> Vec<Value> {
    tokio::time::timeout(STEP, socket.emit_with_ack(event, &args))
        .await
        .unwrap_or_else(|_| panic!("no ack to {event} in time"))
        .unwrap_or_else(|e| panic!("ack to {event} failed: {e}"))
        .0
}

pub async fn whoami(socket: &Socket) -> Value {
    ack(socket, "whoami", ())
        .await
        .into_iter()
        .next()
        .expect("whoami acked without arguments")
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key} in {v:?}"))
}

pub fn obj<const N: usize>(entries: [(&str, Value); N]) -> Value {
    entries.into_iter().collect()
}

pub fn json(v: serde_json::Value) -> Value {
    ferrio_client::to_value(&v).unwrap()
}

/// In upgrade mode, waits for the upgrade to websocket.
pub async fn settle(manager: &Manager, mode: Mode) {
    wait_until("the transport settles", || {
        manager.transport() == Some(mode.settled())
    })
    .await;
}

/// The reason the server saw for socket `id` disconnecting, asked over a separate connection made with
/// `options`.
pub async fn server_disconnect_reason(url: &str, id: &str, options: ClientOptions) -> Value {
    let p = ferrio_client::connect(url, options);
    wait_until("the probe is connected", || p.connected()).await;
    let deadline = Instant::now() + STEP;
    loop {
        let r = ack(&p, "disconnect-reason", id).await.remove(0);
        if !r.is_null() || Instant::now() > deadline {
            p.disconnect();
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
