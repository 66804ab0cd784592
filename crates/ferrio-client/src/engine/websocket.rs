//! The websocket transport on ferrio-proto's sans-IO codec ([`ferrio_proto::ws`]): the HTTP/1.1 upgrade
//! (optionally over TLS, offering permessage-deflate), the two halves the session task drives, and the
//! steps of the upgrade probe.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use bytes::BytesMut;
use ferrio_proto::engine::client::HandshakeError;
use ferrio_proto::engine::{
    ClientConfig, ClientSession, Frame, Packet, TransportKind, decode_binary, decode_text,
};
use ferrio_proto::ws::{
    self, Decoder, DeflateConfig, DeflateParams, Encoder, Message, Outgoing, Role,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

use super::EngineError;
use super::driver::{Opened, Transport};
use super::endpoint::Endpoint;
use super::tls::{BoxIo, io_error};

/// The read limit of a websocket opened before `maxPayload` is known; messages are checked against the
/// real limit after the handshake.
const HANDSHAKE_READ_LIMIT: usize = 64 * 1024 * 1024;

/// Largest upgrade response head accepted (status line and headers).
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Largest body of a refused upgrade read for the error.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Bytes read per read call while no frame is in progress, through a buffer on the stack: an idle
/// websocket holds no read buffer.
const READ_CHUNK: usize = 4096;

/// How a websocket failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    /// The server broke the websocket protocol.
    #[error("{0}")]
    Protocol(#[from] ws::Error),
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The connection ended, with or without a close frame.
    #[error("connection closed")]
    Closed,
}

/// An open websocket: its reader and its writer. Whoever owns both answers pings (the session task
/// queues the pong on its writer; [`Ws::next`] writes it at once): no lock between the halves.
pub(crate) struct Ws {
    pub(crate) reader: WsReader,
    pub(crate) writer: WsWriter,
}

impl Ws {
    /// The next data or close message; pings are answered here and pongs skipped.
    pub(crate) async fn next(&mut self) -> Result<Message, WsError> {
        loop {
            match self.reader.next().await? {
                Message::Ping(p) => {
                    self.writer.pong(&p);
                    self.writer.flush().await?;
                }
                Message::Pong(_) => {}
                m => return Ok(m),
            }
        }
    }
}

/// A websocket on ferrio's codec without Engine.IO on top: what the Autobahn client example drives
/// (`examples/ws_autobahn_client.rs`). Pings are answered while reading.
pub struct RawWebSocket {
    ws: Ws,
}

/// Why [`RawWebSocket::next`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// The server broke the protocol; close with [`ferrio_proto::ws::Error::close_code`].
    #[error("websocket protocol error: {0}")]
    Protocol(ws::Error),
    /// The connection failed.
    #[error("connection failed: {0}")]
    Io(io::Error),
    /// The connection ended without a close frame.
    #[error("connection closed")]
    Closed,
}

impl From<WsError> for RawError {
    fn from(e: WsError) -> Self {
        match e {
            WsError::Protocol(e) => RawError::Protocol(e),
            WsError::Io(e) => RawError::Io(e),
            WsError::Closed => RawError::Closed,
        }
    }
}

impl RawWebSocket {
    /// Connects to a `ws://` or `wss://` URL (TLS with the default roots), taking messages up to
    /// `max_message` bytes; `deflate` offers permessage-deflate.
    pub async fn connect(
        url: &str,
        max_message: usize,
        deflate: Option<DeflateConfig>,
    ) -> Result<RawWebSocket, EngineError> {
        let opts = super::EngineOptions {
            per_message_deflate: deflate,
            ..Default::default()
        };
        let endpoint = Endpoint::new(url, &opts)?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| EngineError::InvalidUrl(format!("{url}: {e}")))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let io = endpoint.open_stream().await?;
        let ws = connect_io(
            io,
            endpoint.authority(),
            path,
            &http::HeaderMap::new(),
            deflate.as_ref(),
            max_message,
        )
        .await?;
        Ok(RawWebSocket { ws })
    }

    /// The permessage-deflate parameters agreed in the handshake, `None` when not negotiated.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.ws.reader.deflate.as_ref()
    }

    /// The next text, binary or close message.
    pub async fn next(&mut self) -> Result<Message, RawError> {
        Ok(self.ws.next().await?)
    }

    /// Sends a text message (compressed from the threshold on when negotiated).
    pub async fn send_text(&mut self, text: &str) -> Result<(), RawError> {
        let frame = Frame::Text(text.into());
        Ok(self.ws.writer.send(vec![frame]).await?)
    }

    /// Sends a binary message (compressed as for [`RawWebSocket::send_text`]).
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), RawError> {
        let frame = Frame::Binary(bytes::Bytes::copy_from_slice(data));
        Ok(self.ws.writer.send(vec![frame]).await?)
    }

    /// Sends a close frame (`code`, or none) and ends the write side.
    pub async fn close(&mut self, code: Option<u16>) -> Result<(), RawError> {
        Ok(self.ws.writer.close(code).await?)
    }
}

/// Reads messages off a websocket.
pub(crate) struct WsReader {
    io: ReadHalf<BoxIo>,
    decoder: Decoder,
    deflate: Option<DeflateParams>,
}

impl WsReader {
    /// The next message, pings and pongs included (the owner of the writer answers pings).
    /// Cancel-safe: bytes are fed to the decoder only once read.
    pub(crate) async fn next(&mut self) -> Result<Message, WsError> {
        loop {
            // A decoder that holds nothing decodes nothing: the session task asks on every turn, most
            // of which find the socket empty. (One holding an empty buffer is asked, and gives it back.)
            let next = if self.decoder.holds_memory() {
                self.decoder.next_message()?
            } else {
                None
            };
            match next {
                Some(m) => return Ok(m),
                None => {
                    let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
                    if n == 0 {
                        return Err(WsError::Closed);
                    }
                }
            }
        }
    }

    /// Reads into the decoder's buffer while a frame is in progress (it is sized for the frame), else
    /// through a buffer on the stack.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.decoder.buffered() > 0 {
            let buf: &mut BytesMut = self.decoder.buffer_mut();
            if buf.capacity() == buf.len() {
                buf.reserve(READ_CHUNK);
            }
            return tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buf);
        }
        // Uninitialised: zero-filling 4 KiB before every read (most of which find nothing and return
        // Pending) cost more than the rest of an ack together.
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut rb = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        self.decoder.feed(rb.filled());
        Poll::Ready(Ok(rb.filled().len()))
    }
}

/// Writes frames onto a websocket. Frames are encoded into one buffer and written by
/// [`WsWriter::poll_flush`], so whatever is queued while a write is in flight goes out behind it, and
/// one flush writes every frame of a batch with one system call.
pub(crate) struct WsWriter {
    io: WriteHalf<BoxIo>,
    encoder: Encoder,
    /// A write cut short resumes where it stopped, so no frame is ever torn.
    out: Outgoing,
    /// Something was encoded and not flushed yet (the bytes, or the transport's own flush: TLS).
    dirty: bool,
}

impl WsWriter {
    /// Appends `frames` to what is to be written.
    pub(crate) fn encode(&mut self, frames: &[Frame]) -> Result<(), WsError> {
        self.dirty = true;
        for f in frames {
            match f {
                Frame::Text(s) => self.encoder.text(s, true, self.out.buf_mut())?,
                Frame::Binary(b) => self.encoder.binary(b, true, self.out.buf_mut())?,
            }
        }
        Ok(())
    }

    /// Appends the pong that answers a ping carrying `payload`.
    pub(crate) fn pong(&mut self, payload: &[u8]) {
        self.dirty = true;
        self.encoder.pong(payload, self.out.buf_mut());
    }

    /// Encodes `frame` and writes it now, from a sender's thread, without waiting: true when all of it
    /// went out. What the socket does not take waits for [`WsWriter::poll_flush`], which the session
    /// task then calls with its own waker (the one registered here wakes nobody).
    pub(crate) fn write_now(&mut self, frame: &Frame) -> Result<bool, WsError> {
        self.encode(std::slice::from_ref(frame))?;
        match self.poll_flush(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(r) => r.map(|()| true),
            Poll::Pending => Ok(false),
        }
    }

    /// Whether encoded bytes wait for [`WsWriter::poll_flush`].
    pub(crate) fn has_pending(&self) -> bool {
        self.dirty
    }

    /// Encodes `frames` and writes them in one go.
    pub(crate) async fn send(&mut self, frames: Vec<Frame>) -> Result<(), WsError> {
        self.encode(&frames)?;
        self.flush().await
    }

    /// Writes what was encoded, then gives a large buffer back. Cancel-safe.
    pub(crate) async fn flush(&mut self) -> Result<(), WsError> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Writes what was encoded; ready once all of it is written and flushed.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let io = &mut self.io;
        ready!(
            self.out
                .poll_drain(|b| Pin::new(&mut *io).poll_write(cx, b))
        )?;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.dirty = false;
        self.out.written_out();
        Poll::Ready(Ok(()))
    }

    /// Sends a close frame (`code`, or none) behind what is still queued, and ends the write side.
    pub(crate) async fn close(&mut self, code: Option<u16>) -> Result<(), WsError> {
        self.dirty = true;
        self.encoder.close(code, "", self.out.buf_mut());
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// A fresh unpredictable masking key per frame (RFC 6455 section 5.3).
fn mask_key() -> [u8; 4] {
    rand::random()
}

/// The upgrade request for `path` on `authority`.
fn upgrade_request(
    authority: &str,
    path: &str,
    key: &str,
    headers: &http::HeaderMap,
    deflate: Option<&DeflateConfig>,
) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    )
    .into_bytes();
    if let Some(c) = deflate {
        req.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        req.extend_from_slice(ws::client_offer(c).as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    const OWN: [&str; 6] = [
        "host",
        "connection",
        "upgrade",
        "sec-websocket-version",
        "sec-websocket-key",
        "sec-websocket-extensions",
    ];
    for (name, value) in headers {
        if OWN.contains(&name.as_str()) {
            continue;
        }
        req.extend_from_slice(name.as_str().as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// What the server answered to the upgrade: the agreed deflate parameters, or why it is refused.
fn check_response(
    status: u16,
    headers: &[httparse::Header<'_>],
    key: &str,
    deflate: Option<&DeflateConfig>,
) -> Result<Option<DeflateParams>, EngineError> {
    let bad = |why: &str| EngineError::WebSocket(format!("invalid upgrade response: {why}"));
    if status != 101 {
        return Err(bad("unexpected status"));
    }
    fn get<'a>(
        headers: &'a [httparse::Header<'a>],
        name: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
    }
    let get = |name: &'static str| get(headers, name);
    let has_token = |name: &'static str, token: &str| {
        get(name).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") {
        return Err(bad("no Upgrade: websocket"));
    }
    if !has_token("connection", "upgrade") {
        return Err(bad("no Connection: Upgrade"));
    }
    let mut accepts = get("sec-websocket-accept");
    if accepts.next().map(str::trim) != Some(ws::accept_key(key.as_bytes()).as_str())
        || accepts.next().is_some()
    {
        return Err(bad("wrong Sec-WebSocket-Accept"));
    }
    if get("sec-websocket-protocol").next().is_some() {
        return Err(bad("a subprotocol that was not asked for"));
    }
    let extensions: Vec<&str> = get("sec-websocket-extensions").collect();
    match deflate {
        Some(c) => ws::accept_answer(extensions, c).map_err(|e| bad(&e.to_string())),
        None if extensions.is_empty() => Ok(None),
        None => Err(bad("an extension that was not offered")),
    }
}

/// Opens a websocket on `io` to `path`: writes the upgrade request and checks the answer.
pub(crate) async fn connect_io(
    mut io: BoxIo,
    authority: &str,
    path: &str,
    headers: &http::HeaderMap,
    deflate: Option<&DeflateConfig>,
    limit: usize,
) -> Result<Ws, EngineError> {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let req = upgrade_request(authority, path, &key, headers, deflate);
    io.write_all(&req).await.map_err(io_error)?;
    io.flush().await.map_err(io_error)?;
    let mut buf = BytesMut::with_capacity(1024);
    let (status, head_len, params, body_len) = loop {
        if io.read_buf(&mut buf).await.map_err(io_error)? == 0 {
            return Err(EngineError::WebSocket(
                "connection closed during the upgrade".into(),
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        match res.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = res.code.unwrap_or(0);
                if status == 101 {
                    let params = check_response(status, res.headers, &key, deflate)?;
                    break (status, n, params, 0);
                }
                let len = res
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                break (status, n, None, len.min(MAX_ERROR_BODY));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(EngineError::WebSocket("upgrade response too large".into()));
            }
            Err(e) => {
                return Err(EngineError::WebSocket(format!(
                    "invalid upgrade response: {e}"
                )));
            }
        }
    };
    if status != 101 {
        // A refusal: its body says why (an Engine.IO error document, usually).
        while buf.len() < head_len + body_len {
            if io.read_buf(&mut buf).await.map_err(io_error)? == 0 {
                break;
            }
        }
        let end = buf.len().min(head_len + body_len);
        let body = String::from_utf8_lossy(&buf[head_len..end]).into_owned();
        let status = http::StatusCode::from_u16(status)
            .map_err(|_| EngineError::WebSocket("invalid upgrade response status".into()))?;
        return Err(EngineError::Http { status, body });
    }
    let (r, w) = tokio::io::split(io);
    let mut decoder = Decoder::new(Role::Client, limit, params.as_ref());
    // Frames the server sent right behind its answer.
    decoder.feed(&buf[head_len..]);
    let writer = WsWriter {
        io: w,
        encoder: Encoder::client(mask_key, params.as_ref().zip(deflate)),
        out: Outgoing::default(),
        dirty: false,
    };
    Ok(Ws {
        reader: WsReader {
            io: r,
            decoder,
            deflate: params,
        },
        writer,
    })
}

/// Opens a websocket to the engine, for a new session (`sid` `None`) or an upgrade.
pub(crate) async fn open(
    endpoint: &Endpoint,
    sid: Option<&str>,
    limit: usize,
) -> Result<Ws, EngineError> {
    let io = endpoint.open_stream().await?;
    connect_io(
        io,
        endpoint.authority(),
        &endpoint.path_and_query(TransportKind::WebSocket, sid),
        &endpoint.headers,
        endpoint.per_message_deflate.as_ref(),
        limit,
    )
    .await
}

pub(crate) fn ws_error(e: WsError) -> EngineError {
    match e {
        WsError::Io(e) => io_error(e),
        other => EngineError::WebSocket(other.to_string()),
    }
}

/// Opens a session over websocket: the first message is the open packet.
pub(crate) async fn handshake(
    endpoint: &Endpoint,
    config: ClientConfig,
) -> Result<Opened, EngineError> {
    let mut ws = open(endpoint, None, HANDSHAKE_READ_LIMIT).await?;
    let session = match ws.next().await {
        Ok(Message::Text(t)) => {
            ClientSession::from_text(tokio::time::Instant::now().into_std(), config, t)
        }
        Ok(Message::Binary(_)) => Err(HandshakeError::Binary),
        Ok(_) | Err(WsError::Closed) => {
            return Err(EngineError::Handshake(
                "websocket closed before the open packet".into(),
            ));
        }
        Err(e) => return Err(ws_error(e)),
    };
    let session = session.map_err(|e| EngineError::Handshake(e.to_string()))?;
    Ok(Opened {
        session,
        transport: Transport::WebSocket(Box::new(ws)),
    })
}

/// Writes `frame` (`2probe`) on the upgrade websocket and reads the packet that answers it.
pub(crate) async fn answer_probe(mut ws: Ws, frame: Frame) -> Result<(Ws, Packet), EngineError> {
    ws.writer.send(vec![frame]).await.map_err(ws_error)?;
    let packet = match ws.next().await {
        Ok(Message::Text(t)) => {
            decode_text(t).map_err(|e| EngineError::WebSocket(format!("probe error: {e}")))?
        }
        Ok(Message::Binary(b)) => decode_binary(b),
        Ok(_) | Err(WsError::Closed) => {
            return Err(EngineError::WebSocket("probe error: closed".into()));
        }
        Err(e) => return Err(ws_error(e)),
    };
    Ok((ws, packet))
}

/// The length of a message, for the size limit.
pub(crate) fn message_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            ws::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rejects_bad_upgrade_answers() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let h = |pairs: &'static [(&'static str, &'static str)]| -> Vec<httparse::Header<'static>> {
            pairs
                .iter()
                .map(|(n, v)| httparse::Header {
                    name: n,
                    value: v.as_bytes(),
                })
                .collect()
        };
        let good = h(&[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert_eq!(check_response(101, &good, key, None).unwrap(), None);
        let c = DeflateConfig::default();
        assert_eq!(check_response(101, &good, key, Some(&c)).unwrap(), None);
        let deflate = h(&[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ]);
        let p = check_response(101, &deflate, key, Some(&c))
            .unwrap()
            .unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        // An extension that was not offered.
        assert!(check_response(101, &deflate, key, None).is_err());
        let wrong = h(&[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ]);
        assert!(check_response(101, &wrong, key, None).is_err());
        let no_upgrade = h(&[
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(check_response(101, &no_upgrade, key, None).is_err());
    }
}
