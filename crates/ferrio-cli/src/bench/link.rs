//! One lean Engine.IO connection: a websocket, or a long-polling pair of HTTP/1 connections.
//!
//! A [`Link`] yields decoded Engine.IO packets and sends encoded frames; the Socket.IO layer above it
//! (in `mod.rs`) answers pings and speaks to namespace `/`.

use std::time::Duration;

use bytes::Bytes;
use ferrio_proto::ByteString;
use ferrio_proto::engine::{self, Frame, Packet, PayloadEncoder, decode_payload, decode_text};
use ferrio_proto::socket::{self, Decoder};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
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
}

impl Target {
    /// Parses `http://host:port[/]` (or `ws://`).
    pub fn parse(url: &str, path: &str, websocket: bool) -> Result<Target, String> {
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
        })
    }
}

/// An established Engine.IO connection, already joined to namespace `/`.
pub enum Link {
    Ws(Box<WebSocketStream<TcpStream>>),
    Poll(PollLink),
}

/// How long connecting (TCP, handshake, namespace) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

impl Link {
    /// Connects and joins namespace `/`.
    pub async fn connect(target: &Target) -> Result<Link, String> {
        let fut = async {
            let mut link = if target.websocket {
                Link::Ws(Box::new(connect_ws(target).await?))
            } else {
                Link::Poll(PollLink::connect(target).await?)
            };
            link.send(&socket::encode(&socket::Packet::Connect {
                nsp: "/".into(),
                data: None,
            }))
            .await?;
            let mut decoder = Decoder::new(10);
            loop {
                match link.recv().await {
                    Some(Ok(Packet::Ping(_))) => {
                        link.send_frame(Frame::text_packet(engine::PacketType::Pong, ""))
                            .await?
                    }
                    Some(Ok(Packet::Message(engine::Data::Text(t)))) => {
                        match decoder.decode_text(&t) {
                            Ok(Some(socket::Packet::Connect { .. })) => return Ok(link),
                            Ok(Some(socket::Packet::ConnectError { data, .. })) => {
                                return Err(format!("namespace refused: {data:?}"));
                            }
                            Ok(_) => {}
                            Err(e) => return Err(format!("bad packet while connecting: {e}")),
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Err("closed while connecting".into()),
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| "connect timed out".to_owned())?
    }

    /// The next Engine.IO packet; `None` once the peer closed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Packet, String>> {
        match self {
            Link::Ws(ws) => loop {
                match ws.next().await? {
                    Ok(Message::Text(t)) => {
                        return Some(
                            decode_text(ByteString::from(t.as_str())).map_err(|e| e.to_string()),
                        );
                    }
                    Ok(Message::Binary(b)) => return Some(Ok(engine::decode_binary(b))),
                    Ok(Message::Close(_)) => return None,
                    Ok(_) => {}
                    Err(e) => return Some(Err(format!("websocket: {e}"))),
                }
            },
            Link::Poll(p) => p.rx.recv().await,
        }
    }

    /// Sends one Engine.IO frame.
    pub async fn send_frame(&mut self, frame: Frame) -> Result<(), String> {
        match self {
            Link::Ws(ws) => {
                let msg = match frame {
                    Frame::Text(s) => Message::text(String::from(&*s)),
                    Frame::Binary(b) => Message::binary(b),
                };
                ws.send(msg).await.map_err(|e| format!("websocket: {e}"))
            }
            Link::Poll(p) => {
                p.tx.send(frame)
                    .map_err(|_| "polling: sender gone".to_owned())
            }
        }
    }

    /// Sends an encoded Socket.IO packet.
    pub async fn send(&mut self, enc: &socket::Encoded) -> Result<(), String> {
        for f in enc.frames() {
            self.send_frame(f).await?;
        }
        Ok(())
    }

    /// Closes the connection (Engine.IO close packet, then the transport).
    pub async fn close(mut self) {
        let _ = self.send_frame(Frame::close()).await;
        match self {
            Link::Ws(mut ws) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), SinkExt::close(&mut ws)).await;
            }
            Link::Poll(p) => {
                // Give the POST task a moment to deliver the close packet.
                let _ = tokio::time::timeout(Duration::from_secs(1), p.post_done()).await;
            }
        }
    }
}

async fn tcp(target: &Target) -> Result<TcpStream, String> {
    let s = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("connect {}: {e}", target.authority))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn connect_ws(target: &Target) -> Result<WebSocketStream<TcpStream>, String> {
    let stream = tcp(target).await?;
    let url = format!(
        "ws://{}{}?EIO=4&transport=websocket",
        target.authority, target.path
    );
    // Small buffers: thousands of these live in one process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    // The open packet comes first.
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with('0') => Ok(ws),
        Some(Ok(m)) => Err(format!("expected the open packet, got {m:?}")),
        Some(Err(e)) => Err(format!("websocket: {e}")),
        None => Err("closed before the open packet".into()),
    }
}

/// Long polling: one HTTP/1 connection for the GET loop, one for POSTs, each driven by its own task.
pub struct PollLink {
    rx: mpsc::Receiver<Result<Packet, String>>,
    tx: mpsc::UnboundedSender<Frame>,
    get_task: JoinHandle<()>,
    post_task: Option<JoinHandle<()>>,
}

impl Drop for PollLink {
    fn drop(&mut self) {
        self.get_task.abort();
        if let Some(t) = &self.post_task {
            t.abort();
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

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
    target: &Target,
    uri: &str,
    body: Option<Bytes>,
) -> Result<Bytes, String> {
    sender.ready().await.map_err(|e| format!("http: {e}"))?;
    let builder = http::Request::builder()
        .uri(uri)
        .header(http::header::HOST, &target.authority);
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

impl PollLink {
    async fn connect(target: &Target) -> Result<PollLink, String> {
        let mut get = http_conn(target).await?;
        let base = format!("{}?EIO=4&transport=polling", target.path);
        let body = request(&mut get, target, &base, None).await?;
        let mut packets = decode_payload(body).map_err(|e| e.to_string())?;
        let sid = match packets.next() {
            Some(Ok(Packet::Open(doc))) => {
                serde_json::from_str::<engine::OpenPacket>(&doc)
                    .map_err(|e| format!("bad open packet: {e}"))?
                    .sid
            }
            other => return Err(format!("expected the open packet, got {other:?}")),
        };
        let uri = format!("{base}&sid={sid}");
        let post = http_conn(target).await?;
        let (in_tx, rx) = mpsc::channel(256);
        for p in packets {
            let _ = in_tx.try_send(p.map_err(|e| e.to_string()));
        }
        let (tx, mut out_rx) = mpsc::unbounded_channel::<Frame>();

        let post_task = {
            let (target, uri, in_tx) = (target.clone(), uri.clone(), in_tx.clone());
            let mut post = post;
            tokio::spawn(async move {
                while let Some(first) = out_rx.recv().await {
                    let mut enc = PayloadEncoder::new(usize::MAX);
                    let mut closing = first.packet_type() == engine::PacketType::Close;
                    enc.push(&first);
                    while let Ok(f) = out_rx.try_recv() {
                        closing |= f.packet_type() == engine::PacketType::Close;
                        enc.push(&f);
                    }
                    if let Err(e) = request(&mut post, &target, &uri, Some(enc.finish())).await {
                        if !closing {
                            let _ = in_tx.send(Err(e)).await;
                        }
                        return;
                    }
                    if closing {
                        return;
                    }
                }
            })
        };
        let get_task = {
            let target = target.clone();
            tokio::spawn(async move {
                loop {
                    let body = match request(&mut get, &target, &uri, None).await {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = in_tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let packets = match decode_payload(body) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = in_tx.send(Err(e.to_string())).await;
                            return;
                        }
                    };
                    for p in packets {
                        let close = matches!(p, Ok(Packet::Close) | Err(_));
                        if in_tx.send(p.map_err(|e| e.to_string())).await.is_err() || close {
                            return;
                        }
                    }
                }
            })
        };
        Ok(PollLink {
            rx,
            tx,
            get_task,
            post_task: Some(post_task),
        })
    }

    async fn post_done(mut self) {
        if let Some(t) = self.post_task.take() {
            let _ = t.await;
        }
    }
}
