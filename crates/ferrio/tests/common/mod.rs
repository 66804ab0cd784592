//! Shared harness of the integration tests: an in-process server with a recording handler, a raw HTTP/1.1
//! client over `TcpStream` (so that malformed requests reach the server byte for byte), a raw WebSocket
//! frame reader/writer, and a well-behaved tokio-tungstenite client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrio::engine::{Engine, EngineCloseReason, EngineConfig, EngineData, EngineHandler, Socket};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// How long any single read of a test waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine path.
pub const PATH: &str = "/engine.io/";

/// What the handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Open(String),
    Message(String, EngineData),
    Close(String, String),
}

/// Records every call; echoes each message back to its session when `echo` is on.
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    echo: bool,
}

impl EngineHandler for Recorder {
    type State = ();

    fn on_open(&self, socket: &Arc<Socket>) {
        self.events
            .lock()
            .push(Event::Open(socket.id().to_string()));
    }

    fn on_message(&self, socket: &Arc<Socket>, _: &(), data: EngineData) {
        self.events
            .lock()
            .push(Event::Message(socket.id().to_string(), data.clone()));
        if self.echo {
            let _ = socket.send(data);
        }
    }

    fn on_close(&self, socket: &Arc<Socket>, _: &(), reason: EngineCloseReason) {
        self.events
            .lock()
            .push(Event::Close(socket.id().to_string(), reason.to_string()));
    }
}

/// Default options, but heartbeats far enough apart that they never interfere with a test.
pub fn quiet_config() -> EngineConfig {
    EngineConfig::builder()
        .ping_interval(Duration::from_secs(20))
        .ping_timeout(Duration::from_secs(20))
        .build()
}

/// Heartbeats of 100 ms + 100 ms, for the timing tests.
pub fn fast_config() -> EngineConfig {
    EngineConfig::builder()
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(100))
        .build()
}

/// An engine served on 127.0.0.1 with a recording, echoing handler.
pub struct Server {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(config: EngineConfig) -> Server {
        Self::start_with(config, true).await
    }

    pub async fn start_with(config: EngineConfig, echo: bool) -> Server {
        Self::start_served(config, echo, true).await
    }

    /// As `start`, with every request going through the engine's service (`serve_connection` on each
    /// connection): none is answered lean, as `serve` answers long-polling requests (see
    /// `ferrio::serve_tcp_connection_with_engine`).
    pub async fn start_through_service(config: EngineConfig) -> Server {
        Self::start_served(config, true, false).await
    }

    async fn start_served(config: EngineConfig, echo: bool, lean: bool) -> Server {
        let events = Arc::new(Mutex::new(Vec::new()));
        let engine = Engine::new(
            config,
            Recorder {
                events: events.clone(),
                echo,
            },
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = ferrio::EngineService::new(engine.clone(), ferrio::NotFound);
        let task = tokio::spawn(async move {
            if lean {
                let _ = ferrio::serve(listener, service).await;
                return;
            }
            while let Ok((stream, peer)) = listener.accept().await {
                tokio::spawn(ferrio::serve_connection(
                    stream,
                    peer,
                    service.clone(),
                    ferrio::DEFAULT_HEADER_READ_TIMEOUT,
                    std::future::pending(),
                ));
            }
        });
        Server {
            addr,
            engine,
            events,
            task,
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }

    pub fn opens(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Open(_)))
            .count()
    }

    /// Every close seen, as (sid, reason).
    pub fn closes(&self) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Close(s, r) => Some((s, r)),
                _ => None,
            })
            .collect()
    }

    /// The close reasons seen for `sid` (a correct server reports exactly one).
    pub fn close_reasons(&self, sid: &str) -> Vec<String> {
        self.closes()
            .into_iter()
            .filter(|(s, _)| s == sid)
            .map(|(_, r)| r)
            .collect()
    }

    /// The messages the handler received from `sid`.
    pub fn messages(&self, sid: &str) -> Vec<EngineData> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(s, d) if s == sid => Some(d),
                _ => None,
            })
            .collect()
    }

    /// Waits for the handler to see `sid` close and returns the reason; fails the test after `within`.
    pub async fn wait_close(&self, sid: &str, within: Duration) -> String {
        let ok = eventually(within, || !self.close_reasons(sid).is_empty()).await;
        assert!(
            ok,
            "session {sid} did not close within {within:?}; events: {:?}",
            self.events()
        );
        let reasons = self.close_reasons(sid);
        assert_eq!(reasons.len(), 1, "on_close must run once: {reasons:?}");
        reasons[0].clone()
    }

    /// Waits until `clients_count()` is `n`; fails the test after `within`.
    pub async fn wait_clients(&self, n: usize, within: Duration) {
        let ok = eventually(within, || self.engine.clients_count() == n).await;
        assert!(
            ok,
            "clients_count is {} after {within:?}, expected {n}",
            self.engine.clients_count()
        );
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

// ---------------------------------------------------------------------------------------------------
// Raw HTTP/1.1
// ---------------------------------------------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of a header, as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts an Engine.IO error answer: this status, `{"code":code,"message":message}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: u64, message: &str) {
        assert_eq!(self.status, status, "status; body: {:?}", self.text());
        assert_eq!(
            self.json(),
            serde_json::json!({ "code": code, "message": message }),
            "body"
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json")
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One TCP connection with a read buffer.
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    async fn fill(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n {
            match self.read_more().await {
                Ok(0) => return Err("EOF".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
        Ok(())
    }

    /// Reads until EOF (or an error); returns whether it was a clean EOF.
    pub async fn read_to_eof(&mut self) -> Result<(), String> {
        loop {
            match self.read_more().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// Reads a response head (status line and headers).
    pub async fn read_head(&mut self) -> Result<HttpResponse, String> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            match self.read_more().await {
                Ok(0) => return Err(format!("EOF before a response head ({:?})", self.buf)),
                Ok(_) => {}
                Err(e) => return Err(format!("read error: {e}")),
            }
        };
        let head: Vec<u8> = self.buf.drain(..end + 4).collect();
        let head = &head[..end];
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers = lines
            .filter_map(|l| {
                let i = l.iter().position(|&b| b == b':')?;
                let name = String::from_utf8_lossy(&l[..i]).trim().to_string();
                let mut v = &l[i + 1..];
                while let [b' ' | b'\t', rest @ ..] = v {
                    v = rest;
                }
                Some((name, v.to_vec()))
            })
            .collect();
        Ok(HttpResponse {
            status,
            headers,
            body: Vec::new(),
        })
    }

    /// Reads a whole response (head and body).
    pub async fn read_response(&mut self) -> Result<HttpResponse, String> {
        let mut res = self.read_head().await?;
        if res.status < 200 || res.status == 204 || res.status == 304 {
            return Ok(res);
        }
        let chunked = res
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    self.fill(self.buf.len() + 1).await?;
                };
                let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                self.fill(line_end + 2 + size + 2).await?;
                res.body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    return Ok(res);
                }
            }
        } else if let Some(len) = res.header("content-length") {
            let len: usize = len.trim().parse().map_err(|_| "bad content-length")?;
            self.fill(len).await?;
            res.body = self.buf.drain(..len).collect();
            Ok(res)
        } else {
            let _ = self.read_to_eof().await;
            res.body = std::mem::take(&mut self.buf);
            Ok(res)
        }
    }

    /// `read_response` bounded by [`READ_TIMEOUT`].
    pub async fn response(&mut self) -> HttpResponse {
        match tokio::time::timeout(READ_TIMEOUT, self.read_response()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("no response: {e}"),
            Err(_) => panic!("no response within {READ_TIMEOUT:?}"),
        }
    }

    /// Whether the server closes the connection (EOF or reset) within `within`, discarding what it sends.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                match self.read_more().await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}

/// Builds a request. `Host` is added; `Content-Length` too when there is a body or the method is POST,
/// unless the headers already carry `Content-Length` or `Transfer-Encoding`.
pub fn build_request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed && (!body.is_empty() || method == "POST") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Sends raw bytes on a new connection and reads one response.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> HttpResponse {
    let mut c = Conn::connect(addr).await;
    c.send(bytes).await.unwrap();
    c.response().await
}

/// One request on a new connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    raw_request(addr, &build_request(method, target, headers, body)).await
}

pub fn polling_url(sid: &str) -> String {
    format!("{PATH}?EIO=4&transport=polling&sid={sid}")
}

pub fn websocket_url(sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("{PATH}?EIO=4&transport=websocket&sid={sid}"),
        None => format!("{PATH}?EIO=4&transport=websocket"),
    }
}

/// The open packet of a handshake body (`0{…}`).
pub fn parse_open(body: &[u8]) -> serde_json::Value {
    assert_eq!(body.first(), Some(&b'0'), "not an open packet: {body:?}");
    serde_json::from_slice(&body[1..]).unwrap()
}

/// A polling handshake; returns the sid.
pub async fn handshake(addr: SocketAddr) -> String {
    let res = request(
        addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200, "handshake: {:?}", res.text());
    parse_open(&res.body)["sid"].as_str().unwrap().to_string()
}

/// A GET on the session.
pub async fn poll(addr: SocketAddr, sid: &str) -> HttpResponse {
    request(addr, "GET", &polling_url(sid), &[], b"").await
}

/// A POST of `body` on the session.
pub async fn post(addr: SocketAddr, sid: &str, body: &[u8]) -> HttpResponse {
    request(
        addr,
        "POST",
        &polling_url(sid),
        &[("Content-Type", "text/plain;charset=UTF-8")],
        body,
    )
    .await
}

/// Asserts the session is gone for the client: a GET is answered 400 code 1.
#[track_caller]
pub fn assert_unknown_sid(res: &HttpResponse) {
    res.assert_error(400, 1, "Session ID unknown");
}

// ---------------------------------------------------------------------------------------------------
// Raw WebSocket
// ---------------------------------------------------------------------------------------------------

pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;
pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;

/// A well-formed upgrade request to `target`, with `extra` headers.
pub fn ws_request(target: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", WS_KEY),
    ];
    headers.extend_from_slice(extra);
    build_request("GET", target, &headers, b"")
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl WsFrame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Encodes a client frame. `b0` is FIN | RSV | opcode; `mask` masks the payload when given.
pub fn encode_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = frame_header(b0, payload.len() as u64, mask);
    match mask {
        Some(m) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// The header of a frame announcing `len` payload bytes (any 64-bit value).
pub fn frame_header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= u16::MAX as u64 {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(mask) = mask {
        out.extend_from_slice(&mask);
    }
    out
}

pub const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// A raw WebSocket connection that went through the 101.
pub struct RawWs {
    pub conn: Conn,
    pub head: HttpResponse,
}

impl RawWs {
    /// Opens a websocket to `target` with raw bytes; asserts the 101 and its accept key.
    pub async fn connect(addr: SocketAddr, target: &str, extra: &[(&str, &str)]) -> RawWs {
        let mut conn = Conn::connect(addr).await;
        conn.send(&ws_request(target, extra)).await.unwrap();
        let head = tokio::time::timeout(READ_TIMEOUT, conn.read_head())
            .await
            .expect("no 101 in time")
            .unwrap();
        assert_eq!(head.status, 101, "upgrade refused: {head:?}");
        assert_eq!(
            head.header("sec-websocket-accept").as_deref(),
            Some(WS_ACCEPT)
        );
        RawWs { conn, head }
    }

    /// A direct websocket session: connects and reads the open packet; returns the sid.
    pub async fn open(addr: SocketAddr) -> (RawWs, String) {
        let mut ws = RawWs::connect(addr, &websocket_url(None), &[]).await;
        let f = ws.frame().await.expect("no open packet");
        assert_eq!(f.opcode, OP_TEXT);
        let sid = parse_open(&f.payload)["sid"].as_str().unwrap().to_string();
        (ws, sid)
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.send(bytes).await
    }

    /// Sends a masked frame.
    pub async fn send(&mut self, b0: u8, payload: &[u8]) -> std::io::Result<()> {
        self.conn.send(&encode_frame(b0, payload, MASK)).await
    }

    /// Sends a masked final text frame.
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send(FIN | OP_TEXT, text.as_bytes()).await
    }

    /// Reads one frame; `Err` at EOF or on a read error.
    pub async fn read_frame(&mut self) -> Result<WsFrame, String> {
        loop {
            if let Some((f, n)) = parse_frame(&self.conn.buf) {
                self.conn.buf.drain(..n);
                return Ok(f);
            }
            match self.conn.read_more().await {
                Ok(0) => return Err("EOF".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// One frame within [`READ_TIMEOUT`].
    pub async fn frame(&mut self) -> Result<WsFrame, String> {
        tokio::time::timeout(READ_TIMEOUT, self.read_frame())
            .await
            .unwrap_or_else(|_| Err("timeout".into()))
    }

    /// Reads frames until a close frame and returns its code; `None` if the connection ended without one
    /// (or nothing came within `within`).
    pub async fn close_code(&mut self, within: Duration) -> Option<u16> {
        read_close_code(&mut self.conn.stream, &mut self.conn.buf, within).await
    }

    /// Reads frames until a text frame and returns it.
    pub async fn next_text(&mut self) -> Result<String, String> {
        loop {
            let f = self.frame().await?;
            match f.opcode {
                OP_TEXT => return Ok(f.text()),
                OP_CLOSE => return Err(format!("closed: {:?}", f.close_code())),
                _ => {}
            }
        }
    }
}

/// Parses one server frame at the start of `buf`; returns it and the bytes it used.
pub fn parse_frame(buf: &[u8]) -> Option<(WsFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (b0, b1) = (buf[0], buf[1]);
    assert_eq!(b1 & 0x80, 0, "the server masked a frame");
    let (len, at) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let frame = WsFrame {
        fin: b0 & FIN != 0,
        opcode: b0 & 0x0f,
        payload: buf[at..at + len].to_vec(),
    };
    Some((frame, at + len))
}

/// Reads server frames from `rd` until a close frame and returns its code; `None` if the connection
/// ended without one or nothing came within `within`.
pub async fn read_close_code<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    within: Duration,
) -> Option<u16> {
    tokio::time::timeout(within, async {
        loop {
            while let Some((f, n)) = parse_frame(buf) {
                buf.drain(..n);
                if f.opcode == OP_CLOSE {
                    return f.close_code();
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

// ---------------------------------------------------------------------------------------------------
// A well-behaved WebSocket client
// ---------------------------------------------------------------------------------------------------

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a websocket to `target` (path and query) with tokio-tungstenite.
pub async fn ws_client(addr: SocketAddr, target: &str) -> Ws {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let url = format!("ws://{addr}{target}");
    let (ws, res) = tokio::time::timeout(
        READ_TIMEOUT,
        tokio_tungstenite::client_async(url.as_str(), stream),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake failed");
    assert_eq!(res.status(), 101);
    ws
}

/// A direct websocket session; returns the client and the sid read from the open packet.
pub async fn ws_open(addr: SocketAddr) -> (Ws, String) {
    let mut ws = ws_client(addr, &websocket_url(None)).await;
    let open = ws_recv(&mut ws).await.expect("no open packet");
    let sid = parse_open(open.as_bytes())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    (ws, sid)
}

/// The next text message within [`READ_TIMEOUT`]; `None` when the websocket closed or failed.
pub async fn ws_recv(ws: &mut Ws) -> Option<String> {
    ws_recv_within(ws, READ_TIMEOUT).await.ok().flatten()
}

/// The next text message: `Err` when nothing came within `within`, `Ok(None)` when the websocket ended.
pub async fn ws_recv_within(ws: &mut Ws, within: Duration) -> Result<Option<String>, ()> {
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .map_err(|_| ())
}

/// Sends a text message.
pub async fn ws_send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// Waits until the websocket ends (close frame, error or EOF); returns false if it is still open
/// after `within`. Text messages that arrive meanwhile are discarded.
pub async fn ws_ended_within(ws: &mut Ws, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}
