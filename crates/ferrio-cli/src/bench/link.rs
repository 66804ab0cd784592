//! One lean Engine.IO connection: a websocket, or a long-polling pair of HTTP/1 connections, executing
//! a `ferrio_proto` [`ClientSession`] (heartbeat, write buffer, `maxPayload`, close ordering).
//!
//! A [`Link`] yields the data the server sent and takes encoded frames; the Socket.IO layer above it (in
//! `mod.rs`) speaks to namespace `/`. No upgrade: the bench measures one transport at a time.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrio_proto::ByteString;
use ferrio_proto::engine::client::{Event, Output, TransportEnd};
use ferrio_proto::engine::{self, ClientConfig, ClientSession, Data, Frame};
use ferrio_proto::socket;

use crate::config::ParserKind;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    /// Engine.IO path, with its trailing slash (`/socket.io/`).
    pub path: String,
    pub websocket: bool,
    /// Packet parser of the server.
    pub parser: ParserKind,
}

impl Target {
    /// Parses `http://host:port[/]` (or `ws://`).
    pub fn parse(
        url: &str,
        path: &str,
        websocket: bool,
        parser: ParserKind,
    ) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("{url}: only http:// and ws:// URLs are supported"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let mut path = path.to_owned();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(Target {
            authority,
            path,
            websocket,
            parser,
        })
    }
}

/// How long connecting (TCP, handshake, namespace) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long closing (the queued frames and the close packet) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// An established Engine.IO connection, already joined to namespace `/`.
pub struct Link {
    session: ClientSession,
    io: Io,
    /// Events of the session the caller has not taken yet.
    events: VecDeque<Event>,
    /// Frames of an `Output::Write` not yet handed to the websocket.
    ws_out: VecDeque<Frame>,
    /// An `Output::Write` is being written (until its flush).
    ws_writing: bool,
    shutdown: bool,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<std::time::Instant>,
}

enum Io {
    Ws(Box<WebSocketStream<TcpStream>>),
    Poll(Box<Polling>),
}

type Sender = SendRequest<Full<Bytes>>;
type Request = Pin<Box<dyn Future<Output = (Sender, Result<Bytes, String>)> + Send>>;

/// Long polling: one HTTP/1 connection for the GET loop, one for POSTs, each lent to its request.
struct Polling {
    authority: Arc<str>,
    /// Path and query with the session id.
    uri: Arc<str>,
    get: Slot,
    post: Slot,
}

enum Slot {
    Idle(Sender),
    Busy(Request),
    Gone,
}

impl Slot {
    fn start(&mut self, authority: &Arc<str>, uri: &Arc<str>, body: Option<Bytes>) {
        if let Slot::Idle(sender) = std::mem::replace(self, Slot::Gone) {
            let (authority, uri) = (authority.clone(), uri.clone());
            *self = Slot::Busy(Box::pin(async move {
                let mut sender = sender;
                let r = request(&mut sender, &authority, &uri, body).await;
                (sender, r)
            }));
        }
    }

    /// Waits for the request in flight; pending forever when there is none. Cancel-safe.
    async fn wait(&mut self) -> Result<Bytes, String> {
        match self {
            Slot::Busy(f) => {
                let (sender, r) = f.await;
                *self = Slot::Idle(sender);
                r
            }
            _ => std::future::pending().await,
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The session's options: no upgrade (one transport per run).
fn config() -> ClientConfig {
    ClientConfig {
        upgrade: false,
        ..ClientConfig::default()
    }
}

impl Link {
    /// Connects and joins namespace `/`.
    pub async fn connect(target: &Target) -> Result<Link, String> {
        let fut = async {
            let mut link = if target.websocket {
                connect_ws(target).await?
            } else {
                connect_polling(target).await?
            };
            let parser = target.parser.parser();
            link.send(&parser.encode(&socket::Packet::Connect {
                nsp: "/".into(),
                data: None,
            }));
            let mut decoder = parser.decoder();
            loop {
                match link.recv().await {
                    Some(Ok(data)) => match decoder.decode(data) {
                        Ok(Some(socket::Packet::Connect { .. })) => return Ok(link),
                        Ok(Some(socket::Packet::ConnectError { data, .. })) => {
                            return Err(format!("namespace refused: {data:?}"));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(format!("bad packet while connecting: {e}")),
                    },
                    Some(Err(e)) => return Err(e),
                    None => return Err("closed while connecting".into()),
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| "connect timed out".to_owned())?
    }

    fn new(session: ClientSession, io: Io) -> Link {
        Link {
            session,
            io,
            events: VecDeque::new(),
            ws_out: VecDeque::new(),
            ws_writing: false,
            shutdown: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_at: None,
        }
    }

    /// The next data the server sent; `None` once the server closed the session. Pings are answered
    /// on the way. Cancel-safe: nothing is lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Result<Data, String>> {
        loop {
            self.execute();
            while let Some(event) = self.events.pop_front() {
                match event {
                    Event::Message(data) => return Some(Ok(data)),
                    Event::Close {
                        reason: engine::CloseReason::TransportClose,
                        ..
                    } => return None,
                    Event::Close { reason, detail } => {
                        return Some(Err(match detail {
                            Some(d) => format!("{reason}: {d}"),
                            None => reason.to_string(),
                        }));
                    }
                    Event::Ping | Event::Upgrade(_) => {}
                }
            }
            if self.shutdown {
                return None;
            }
            self.drive().await;
        }
    }

    /// Queues one Engine.IO frame; it goes out during the next [`Link::recv`] (or [`Link::close`]).
    pub fn send_frame(&mut self, frame: Frame) {
        self.session.send(frame);
    }

    /// Queues an encoded Socket.IO packet.
    pub fn send(&mut self, enc: &socket::Encoded) {
        for f in enc.frames() {
            self.session.send(f);
        }
    }

    /// Closes the session: the queued frames, then the close packet, then the transport.
    pub async fn close(mut self) {
        self.session.close(now());
        let flush = async {
            loop {
                self.execute();
                if self.shutdown {
                    break;
                }
                self.drive().await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, flush).await;
        if let Io::Ws(ws) = &mut self.io {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, SinkExt::close(ws)).await;
        }
    }

    /// Does what the session asks, without waiting: requests start, websocket frames are set aside for
    /// [`Link::drive`], events are kept for [`Link::recv`].
    fn execute(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Event(e) => self.events.push_back(e),
                Output::Write(frames) => {
                    self.ws_out.extend(frames);
                    self.ws_writing = true;
                }
                Output::Poll | Output::Post(_) => {
                    if let Io::Poll(p) = &mut self.io {
                        match output {
                            Output::Poll => p.get.start(&p.authority, &p.uri, None),
                            Output::Post(body) => p.post.start(&p.authority, &p.uri, Some(body)),
                            _ => {}
                        }
                    }
                }
                Output::Shutdown => self.shutdown = true,
                // No upgrade is ever offered to this session (`upgrade: false`).
                Output::OpenProbe
                | Output::ProbeWrite(_)
                | Output::DropProbe { .. }
                | Output::SwitchToProbe => {}
            }
        }
    }

    /// Waits for one thing to happen (a write done, a message, a request answered, the session's
    /// deadline) and tells the session. Cancel-safe.
    async fn drive(&mut self) {
        let deadline = self.session.poll_timeout();
        if deadline != self.timer_at {
            self.timer_at = deadline;
            if let Some(d) = deadline {
                self.timer.as_mut().reset(Instant::from_std(d));
            }
        }
        let armed = self.timer_at.is_some();
        let session = &mut self.session;
        match &mut self.io {
            Io::Ws(ws) => {
                if self.ws_writing {
                    let r = write(ws, &mut self.ws_out).await;
                    self.ws_writing = false;
                    return session.on_write(now(), r);
                }
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            session.on_text(now(), ByteString::from(t.as_str()));
                        }
                        Some(Ok(Message::Binary(b))) => session.on_binary(now(), b),
                        Some(Ok(Message::Close(_))) | None => {
                            session.on_transport_end(TransportEnd::Closed);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            session.on_transport_end(TransportEnd::Error(format!("websocket: {e}")));
                        }
                    },
                    _ = &mut self.timer, if armed => {
                        self.timer_at = None;
                        session.handle_timeout(now());
                    }
                }
            }
            Io::Poll(p) => tokio::select! {
                r = p.get.wait() => session.on_poll(now(), r.map_err(TransportEnd::Error)),
                r = p.post.wait() => session.on_post(now(), r.map(drop).map_err(TransportEnd::Error)),
                _ = &mut self.timer, if armed => {
                    self.timer_at = None;
                    session.handle_timeout(now());
                }
            },
        }
    }
}

/// Writes and flushes `out`. Cancel-safe: a frame leaves `out` only once the websocket holds it.
async fn write(
    ws: &mut WebSocketStream<TcpStream>,
    out: &mut VecDeque<Frame>,
) -> Result<(), TransportEnd> {
    let fail = |e| TransportEnd::Error(format!("websocket: {e}"));
    while !out.is_empty() {
        poll_fn(|cx| ws.poll_ready_unpin(cx)).await.map_err(fail)?;
        if let Some(frame) = out.pop_front() {
            let msg = match frame {
                Frame::Text(s) => Message::text(String::from(&*s)),
                Frame::Binary(b) => Message::binary(b),
            };
            ws.start_send_unpin(msg).map_err(fail)?;
        }
    }
    poll_fn(|cx| ws.poll_flush_unpin(cx)).await.map_err(fail)
}

async fn tcp(target: &Target) -> Result<TcpStream, String> {
    let s = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("connect {}: {e}", target.authority))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn connect_ws(target: &Target) -> Result<Link, String> {
    let stream = tcp(target).await?;
    let url = format!(
        "ws://{}{}?EIO=4&transport=websocket",
        target.authority, target.path
    );
    // Small buffers: thousands of these live in one process.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    // The open packet comes first.
    let session = match ws.next().await {
        Some(Ok(Message::Text(t))) => {
            ClientSession::from_text(now(), config(), ByteString::from(t.as_str()))
                .map_err(|e| format!("handshake: {e}"))?
        }
        Some(Ok(m)) => return Err(format!("expected the open packet, got {m:?}")),
        Some(Err(e)) => return Err(format!("websocket: {e}")),
        None => return Err("closed before the open packet".into()),
    };
    Ok(Link::new(session, Io::Ws(Box::new(ws))))
}

async fn connect_polling(target: &Target) -> Result<Link, String> {
    let mut get = http_conn(target).await?;
    let base = format!("{}?EIO=4&transport=polling", target.path);
    let body = request(&mut get, &target.authority, &base, None).await?;
    let session = ClientSession::from_payload(now(), config(), body)
        .map_err(|e| format!("handshake: {e}"))?;
    let uri = format!("{base}&sid={}", session.sid());
    let post = http_conn(target).await?;
    let polling = Polling {
        authority: target.authority.as_str().into(),
        uri: uri.into(),
        get: Slot::Idle(get),
        post: Slot::Idle(post),
    };
    Ok(Link::new(session, Io::Poll(Box::new(polling))))
}

async fn http_conn(target: &Target) -> Result<Sender, String> {
    let stream = tcp(target).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn request(
    sender: &mut Sender,
    authority: &str,
    uri: &str,
    body: Option<Bytes>,
) -> Result<Bytes, String> {
    sender.ready().await.map_err(|e| format!("http: {e}"))?;
    let builder = http::Request::builder()
        .uri(uri)
        .header(http::header::HOST, authority);
    let req = match body {
        Some(b) => builder
            .method(http::Method::POST)
            .header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Full::new(b)),
        None => builder
            .method(http::Method::GET)
            .body(Full::new(Bytes::new())),
    }
    .map_err(|e| format!("http: {e}"))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("http: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("http body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "polling: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body)
}
