//! Harness of the Socket.IO integration tests (`sio_*.rs`): an in-process `ferrio::Io` on 127.0.0.1 with
//! short heartbeats, and a raw client that speaks Engine.IO v4 / Socket.IO v5 by hand over a websocket
//! (tokio-tungstenite), so that malformed packets reach the server byte for byte.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrio::{Io, IoConfig};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long any single read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Heartbeats of the test servers.
pub const PING_INTERVAL: Duration = Duration::from_millis(200);
/// Time a client has to answer a ping.
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Options of a test server: 200 ms + 200 ms heartbeats, the rest as by default.
pub fn config() -> IoConfig {
    IoConfig::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .build()
}

/// A `ferrio::Io` served on 127.0.0.1; dropping it stops the accept loop.
pub struct TestServer {
    pub io: Io,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Serves `io` (handlers may be added before or after, as long as it is before clients connect).
    pub async fn serve(io: Io) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = io.clone();
        let task = tokio::spawn(async move {
            let _ = served.serve(listener).await;
        });
        TestServer { io, addr, task }
    }

    /// A new server with `config`.
    pub async fn start(config: IoConfig) -> TestServer {
        Self::serve(Io::new(config)).await
    }

    /// A raw client with the Engine.IO session open (no namespace joined yet).
    pub async fn client(&self) -> Client {
        Client::open(self.addr).await
    }

    /// A raw client joined to the main namespace.
    pub async fn joined(&self) -> Client {
        let mut c = self.client().await;
        c.join("/").await;
        c
    }

    /// Waits until the server counts `n` Engine.IO clients.
    pub async fn wait_clients(&self, n: usize, within: Duration) {
        let ok = eventually(within, || self.io.clients_count() == n).await;
        assert!(
            ok,
            "clients_count is {} after {within:?}, expected {n}",
            self.io.clients_count()
        );
    }
}

/// What the raw client read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text frame (the complete Engine.IO packet, e.g. `42["x"]`).
    Text(String),
    /// A binary frame (an attachment).
    Binary(Bytes),
    /// The websocket was closed (Close frame, EOF or error).
    Closed,
}

/// A raw Socket.IO client over one websocket. A background task reads every frame, answers the server's
/// pings `2` with `3` (unless told not to) and queues the rest, so that a test that sleeps does not miss
/// a heartbeat.
pub struct Client {
    pub sid: String,
    sink: Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>,
    rx: mpsc::UnboundedReceiver<Incoming>,
    answer_pings: Arc<AtomicBool>,
    pings: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Opens a websocket to the Socket.IO path of `addr`, without reading anything.
pub async fn raw_ws(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (ws, _) = tokio::time::timeout(READ_TIMEOUT, connect_async(url))
        .await
        .expect("websocket connect timed out")
        .expect("websocket connect failed");
    ws
}

/// Joins `/` on a raw websocket (no background reader: nothing is read after the CONNECT answer) and
/// returns the Socket.IO socket id.
pub async fn raw_join(ws: &mut Ws) -> String {
    ws.send(Message::text("40")).await.unwrap();
    loop {
        let msg = tokio::time::timeout(READ_TIMEOUT, ws.next())
            .await
            .expect("no CONNECT answer")
            .expect("closed before the CONNECT answer")
            .expect("websocket error");
        let Message::Text(t) = msg else { continue };
        if t.as_str() == "2" {
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        let body = t.as_str().strip_prefix("40").expect("CONNECT answer");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        return v["sid"].as_str().unwrap().to_owned();
    }
}

/// Reads the Engine.IO open packet `0{...}` from a raw websocket and returns the session id.
pub async fn read_open(ws: &mut Ws) -> String {
    let msg = tokio::time::timeout(READ_TIMEOUT, ws.next())
        .await
        .expect("no open packet")
        .expect("closed before the open packet")
        .expect("websocket error before the open packet");
    let Message::Text(t) = msg else {
        panic!("open packet expected, got {msg:?}")
    };
    let t = t.as_str();
    assert!(t.starts_with("0{"), "open packet expected, got {t:?}");
    let v: serde_json::Value = serde_json::from_str(&t[1..]).unwrap();
    v["sid"].as_str().unwrap().to_owned()
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    sink: Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>,
    tx: mpsc::UnboundedSender<Incoming>,
    answer_pings: Arc<AtomicBool>,
    pings: Arc<AtomicUsize>,
) {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => {
                if t.as_str() == "2" {
                    pings.fetch_add(1, Ordering::SeqCst);
                    if answer_pings.load(Ordering::SeqCst) {
                        let _ = sink.lock().await.send(Message::text("3")).await;
                    }
                    continue;
                }
                let _ = tx.send(Incoming::Text(t.as_str().to_owned()));
            }
            Some(Ok(Message::Binary(b))) => {
                let _ = tx.send(Incoming::Binary(b));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                let _ = tx.send(Incoming::Closed);
                return;
            }
        }
    }
}

impl Client {
    /// Opens the Engine.IO session and starts the background reader.
    pub async fn open(addr: SocketAddr) -> Client {
        let mut ws = raw_ws(addr).await;
        let sid = read_open(&mut ws).await;
        Client::wrap(ws, sid)
    }

    /// Starts the background reader on a websocket whose open packet was already read.
    pub fn wrap(ws: Ws, sid: String) -> Client {
        let (sink, stream) = ws.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let (tx, rx) = mpsc::unbounded_channel();
        let answer_pings = Arc::new(AtomicBool::new(true));
        let pings = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_loop(
            stream,
            sink.clone(),
            tx,
            answer_pings.clone(),
            pings.clone(),
        ));
        Client {
            sid,
            sink,
            rx,
            answer_pings,
            pings,
            reader,
        }
    }

    /// Stops (or resumes) answering pings.
    pub fn answer_pings(&self, on: bool) {
        self.answer_pings.store(on, Ordering::SeqCst);
    }

    /// Pings seen so far.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    /// Sends one text frame as it is (the Engine.IO type included: `42["x"]`). Errors are ignored: the
    /// server may already have closed the connection, which the test checks with `expect_closed`.
    pub async fn send(&self, text: &str) {
        let _ = self.sink.lock().await.send(Message::text(text)).await;
    }

    /// Sends one binary frame (an attachment).
    pub async fn send_binary(&self, data: impl Into<Bytes>) {
        let _ = self
            .sink
            .lock()
            .await
            .send(Message::Binary(data.into()))
            .await;
    }

    /// Closes the websocket (a clean close frame).
    pub async fn close(&self) {
        let _ = self.sink.lock().await.send(Message::Close(None)).await;
    }

    /// The next frame; fails the test if nothing comes within `READ_TIMEOUT`.
    pub async fn recv(&mut self) -> Incoming {
        self.recv_within(READ_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("nothing received within {READ_TIMEOUT:?}"))
    }

    /// The next frame, or None after `within`.
    pub async fn recv_within(&mut self, within: Duration) -> Option<Incoming> {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some(i)) => Some(i),
            // The reader is gone: the connection is closed.
            Ok(None) => Some(Incoming::Closed),
            Err(_) => None,
        }
    }

    /// The next text frame; fails on a binary frame or a close.
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Incoming::Text(t) => t,
            other => panic!("text frame expected, got {other:?}"),
        }
    }

    /// Joins a namespace (`40` or `40/nsp,`) and returns the Socket.IO socket id from `40{"sid":…}`.
    pub async fn join(&mut self, nsp: &str) -> String {
        if nsp == "/" {
            self.send("40").await;
        } else {
            self.send(&format!("40{nsp},")).await;
        }
        let t = self.recv_text().await;
        let prefix = if nsp == "/" {
            "40".to_owned()
        } else {
            format!("40{nsp},")
        };
        let body = t
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("CONNECT to {nsp} expected, got {t:?}"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["sid"].as_str().unwrap().to_owned()
    }

    /// Waits until the connection is closed; fails the test if it is still open after `within`. Frames
    /// received before the close are returned (a protocol violation should produce none).
    pub async fn expect_closed(&mut self, within: Duration) -> Vec<Incoming> {
        let end = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(Incoming::Closed)) | Ok(None) => return seen,
                Ok(Some(other)) => seen.push(other),
                Err(_) => panic!("connection still open after {within:?}; received {seen:?}"),
            }
        }
    }

    /// Fails the test if the connection closes within `within`; returns what was received meanwhile.
    pub async fn expect_open(&mut self, within: Duration) -> Vec<Incoming> {
        let end = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(Incoming::Closed)) | Ok(None) => {
                    panic!("connection closed unexpectedly; received {seen:?}")
                }
                Ok(Some(other)) => seen.push(other),
                Err(_) => return seen,
            }
        }
    }

    /// Emits `message` with an ack id on the main namespace and expects the echo handler's ack
    /// (see [`install_echo`]): proves the connection still works end to end.
    pub async fn assert_echo(&mut self, id: u64, payload: &str) {
        self.send(&format!("42{id}[\"echo\",{payload}]")).await;
        let expected = format!("43{id}[{payload}]");
        loop {
            let t = self.recv_text().await;
            if t == expected {
                return;
            }
            assert!(
                !t.starts_with("43"),
                "unexpected ack {t:?}, expected {expected:?}"
            );
        }
    }
}

/// Registers on `/` an `echo` event that acks its arguments, so that clients can check the socket works.
pub fn install_echo(io: &Io) {
    io.on_connection(|socket| async move {
        socket.on("echo", |_s, mut ev: ferrio::Event| async move {
            let args = ev.take_args();
            if let Some(ack) = ev.take_ack() {
                let _ = ack.send_args(args);
            }
        });
    });
}

/// Counts calls from handlers.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A list shared with handlers.
#[derive(Clone)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Default for Log<T> {
    fn default() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&self, v: T) {
        self.0.lock().push(v);
    }
    pub fn get(&self) -> Vec<T> {
        self.0.lock().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }
}

/// Polls `cond` every 5 ms until it holds (true) or `within` passes (false).
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `cond` holds, or fails the test with `what`.
pub async fn wait_until(within: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(eventually(within, cond).await, "timed out: {what}");
}
