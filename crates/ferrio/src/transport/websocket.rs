//! WebSocket: direct sessions, and the probe that upgrades a polling session.
//!
//! Each websocket session has one reader (the task that owns the upgraded connection's read half) and
//! one writer task that owns the session's outbox and batches what is queued into one write. Frames are
//! ferrio-proto's sans-IO codec ([`ferrio_proto::ws`]), with permessage-deflate when configured.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{CloseReason, Frame, PacketType, ProbeOutcome, decode_text};
use ferrio_proto::ws::{self, Decoder, DeflateConfig, DeflateParams, Encoder, Message, Role};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::engine::{EngineConfig, Outbox, RequestError, Socket};
use crate::transport::delivery::AnswerIo;

/// Frames written per flush at most, so one busy session cannot hold its writer's buffer forever.
const MAX_BATCH: usize = 256;

/// Bytes read per read call while no frame is in progress. The buffer lives on the stack for the
/// duration of one poll only: an idle connection holds no read buffer.
const READ_CHUNK: usize = 4096;

/// A write buffer up to this size is kept between batches; a bigger one is given back.
const KEEP_WRITE_BUFFER: usize = 1024;

/// An accepted upgrade request: the `Sec-WebSocket-Accept` value and the permessage-deflate agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upgrade {
    accept: String,
    deflate: Option<(DeflateParams, String)>,
}

/// Checks the RFC 6455 handshake headers and negotiates permessage-deflate when `config` allows it.
pub(crate) fn check_upgrade_request(
    parts: &Parts,
    config: &EngineConfig,
) -> Result<Upgrade, RequestError> {
    let h = &parts.headers;
    let has_token = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if parts.method != http::Method::GET
        || !has_token(header::UPGRADE, "websocket")
        || !has_token(header::CONNECTION, "upgrade")
        || h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13")
        || parts.extensions.get::<OnUpgrade>().is_none()
    {
        return Err(RequestError::BadRequest);
    }
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(RequestError::BadRequest)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.as_bytes())
        .map_err(|_| RequestError::BadRequest)?;
    if decoded.len() != 16 {
        return Err(RequestError::BadRequest);
    }
    let deflate = config.per_message_deflate.as_ref().and_then(|c| {
        ws::negotiate(
            h.get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
            c,
        )
    });
    Ok(Upgrade {
        accept: ws::accept_key(key.as_bytes()),
        deflate,
    })
}

/// The `101 Switching Protocols` answer.
pub(crate) fn switching_protocols(upgrade: &Upgrade) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&upgrade.accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some((_, answer)) = &upgrade.deflate
        && let Ok(v) = HeaderValue::from_str(answer)
    {
        h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
    }
    res
}

/// The read half of an upgraded connection: the TCP stream itself when hyper hands it back, else
/// hyper's `Upgraded` (TLS and other streams).
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Other(tokio::io::ReadHalf<TokioIo<Upgraded>>),
}

/// The write half of an upgraded connection.
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<TokioIo<Upgraded>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Other(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Other(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Other(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Other(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Reads messages off a websocket.
pub(crate) struct WsReader {
    io: ReadHalf,
    decoder: Decoder,
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer broke the protocol: close with the error's code.
    Ws(ws::Error),
    /// The connection failed or ended without a close frame.
    Io,
}

impl WsReader {
    /// The next message; pings and pongs included, the caller answers pings.
    pub(crate) async fn next(&mut self) -> Result<Message, ReadError> {
        loop {
            if let Some(m) = self.decoder.next_message().map_err(ReadError::Ws)? {
                return Ok(m);
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx))
                .await
                .map_err(|_| ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Io);
            }
        }
    }

    /// Reads what the connection has: into the decoder's buffer while a frame is in progress (it is
    /// sized for the frame), else through a buffer on the stack, so that waiting holds no memory.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.decoder.buffered() > 0 {
            return tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                self.decoder.buffer_mut(),
            );
        }
        let mut chunk = [0u8; READ_CHUNK];
        let mut rb = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        self.decoder.feed(rb.filled());
        Poll::Ready(Ok(rb.filled().len()))
    }
}

/// Writes frames onto a websocket.
pub(crate) struct WsWriter {
    io: WriteHalf,
    encoder: Encoder,
    buf: Vec<u8>,
    /// Bytes of `buf` already written: a write cut short (the session closed meanwhile) resumes there,
    /// so the close frame after it never follows half a frame twice.
    written: usize,
}

impl WsWriter {
    /// Writes what was encoded into `buf`, then gives a large buffer back.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        while self.written < self.buf.len() {
            let n = self.io.write(&self.buf[self.written..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        self.io.flush().await?;
        self.written = 0;
        if self.buf.capacity() > KEEP_WRITE_BUFFER {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Ok(())
    }

    /// Encodes a queued frame; `compress: false` sends it uncompressed whatever its size.
    pub(crate) fn encode(&mut self, frame: &Frame, compress: bool) -> Result<(), ws::Error> {
        match frame {
            Frame::Text(s) => self.encoder.text(s, compress, &mut self.buf),
            Frame::Binary(b) => self.encoder.binary(b, compress, &mut self.buf),
        }
    }

    pub(crate) fn pong(&mut self, payload: &[u8]) {
        self.encoder.pong(payload, &mut self.buf);
    }

    /// Sends a close frame and ends the write side, within a second (a peer that does not read must
    /// not hold the task).
    pub(crate) async fn close(&mut self, code: u16) {
        self.encoder.close(Some(code), "", &mut self.buf);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            self.flush().await?;
            self.io.shutdown().await
        })
        .await;
    }
}

/// Takes over the upgraded connection: its two halves, with the codec's state for `deflate`.
pub(crate) async fn accept(
    on_upgrade: OnUpgrade,
    max_message: usize,
    deflate: Option<(&DeflateParams, &DeflateConfig)>,
) -> Option<(WsReader, WsWriter)> {
    let upgraded = on_upgrade.await.ok()?;
    // The plain TCP stream when that is what lies under hyper: no wrapper between the codec and the
    // socket, and tokio's owned halves instead of a lock shared by the reader and the writer.
    let (tcp, pre) = match upgraded.downcast::<TokioIo<AnswerIo<TcpStream>>>() {
        Ok(p) => (Ok(p.io.into_inner().into_inner()), p.read_buf),
        Err(u) => match u.downcast::<TokioIo<TcpStream>>() {
            Ok(p) => (Ok(p.io.into_inner()), p.read_buf),
            Err(u) => (Err(u), Bytes::new()),
        },
    };
    let (r, w) = match tcp {
        Ok(t) => {
            let (r, w) = t.into_split();
            (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
        }
        Err(u) => {
            let (r, w) = tokio::io::split(TokioIo::new(u));
            (ReadHalf::Other(r), WriteHalf::Other(w))
        }
    };
    let mut decoder = Decoder::new(Role::Server, max_message, deflate.map(|(p, _)| p));
    // Bytes hyper read past the request: the client may have sent its first frames already.
    decoder.feed(&pre);
    Some((
        WsReader { io: r, decoder },
        WsWriter {
            io: w,
            encoder: Encoder::server(deflate),
            buf: Vec::new(),
            written: 0,
        },
    ))
}

fn deflate_of<'a>(
    socket: &'a Socket,
    upgrade: &'a Upgrade,
) -> Option<(&'a DeflateParams, &'a DeflateConfig)> {
    let (p, _) = upgrade.deflate.as_ref()?;
    Some((p, socket.engine.config.per_message_deflate.as_ref()?))
}

/// Runs a session that was opened directly over websocket.
pub(crate) fn spawn_session(socket: Arc<Socket>, parts: &mut Parts, upgrade: Upgrade) {
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    tokio::spawn(async move {
        let max = socket.engine.config.max_http_buffer_size;
        let ws = match on_upgrade {
            Some(u) => accept(u, max, deflate_of(&socket, &upgrade)).await,
            None => None,
        };
        // Not needed past the handshake: its strings are not kept for the session's life.
        drop(upgrade);
        match ws {
            Some((r, w)) => {
                // An Engine.IO v3 client sends the pings, so after the open packet it hears nothing until
                // it speaks. A client that attaches its message listener once `open` has fired (the v3
                // conformance suite does) misses an open packet that arrived in the same read as the
                // 101 answer, and then waits forever. A millisecond between the two keeps them in
                // separate reads; v4 sessions need no such pause (a ping follows anyway).
                if socket.protocol() == ferrio_proto::engine::Protocol::V3 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                run(socket, r, w).await
            }
            None => socket.close_with(CloseReason::TransportError),
        }
    });
}

/// Accepts a websocket only to close it: a second websocket for a session that is already upgrading or
/// upgraded gets a clean close, as the official server does, not a failed handshake.
pub(crate) fn spawn_reject(parts: &mut Parts) {
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    tokio::spawn(async move {
        if let Some(u) = on_upgrade
            && let Some((_, mut w)) = accept(u, 1024, None).await
        {
            w.close(ws::CLOSE_NORMAL).await;
        }
    });
}

/// Runs the probe websocket of an upgrade: `2probe` → `3probe`, then `5` moves the session onto it.
pub(crate) fn spawn_probe(
    socket: Arc<Socket>,
    parts: &mut Parts,
    cancel: CancellationToken,
    upgrade: Upgrade,
) {
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    tokio::spawn(async move {
        let max = socket.engine.config.max_http_buffer_size;
        let ws = match on_upgrade {
            Some(u) => accept(u, max, deflate_of(&socket, &upgrade)).await,
            None => None,
        };
        drop(upgrade);
        let Some((mut r, mut w)) = ws else {
            socket.abort_upgrade();
            return;
        };
        let mut code = ws::CLOSE_NORMAL;
        loop {
            let msg = tokio::select! {
                m = r.next() => m,
                // The upgrade timed out, or the session closed.
                _ = cancel.cancelled() => break,
            };
            let packet = match msg {
                Ok(Message::Text(t)) => match decode_text(t) {
                    Ok(p) => p,
                    Err(_) => break,
                },
                Ok(Message::Ping(p)) => {
                    w.pong(&p);
                    if w.flush().await.is_err() {
                        break;
                    }
                    continue;
                }
                Ok(Message::Pong(_)) => continue,
                Err(ReadError::Ws(e)) => {
                    code = e.close_code();
                    break;
                }
                _ => break,
            };
            match socket.on_probe_packet(&packet) {
                ProbeOutcome::SendProbePong => {
                    let probe = Frame::Text(ByteString::from_static("3probe"));
                    if w.encode(&probe, true).is_err() || w.flush().await.is_err() {
                        break;
                    }
                }
                ProbeOutcome::Upgraded => {
                    return crate::telemetry::upgraded(run(socket, r, w)).await;
                }
                ProbeOutcome::Abort => break,
            }
        }
        socket.abort_upgrade();
        w.close(code).await;
    });
}

/// Reads packets until the session ends, with a writer task beside it.
async fn run(socket: Arc<Socket>, mut reader: WsReader, writer: WsWriter) {
    let Some(outbox) = socket.acquire_outbox().await else {
        return;
    };
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    let close_code = Arc::new(AtomicU16::new(ws::CLOSE_NORMAL));
    tokio::spawn(write_loop(
        socket.clone(),
        writer.clone(),
        outbox,
        close_code.clone(),
    ));
    let mut closed = CancelWatch::new(&socket.closed);
    loop {
        // The session's end is checked first: a closed session stops reading at once.
        let msg = {
            let mut next = std::pin::pin!(reader.next());
            std::future::poll_fn(|cx| {
                if closed.is_cancelled() {
                    return Poll::Ready(None);
                }
                if let Poll::Ready(m) = next.as_mut().poll(cx) {
                    return Poll::Ready(Some(m));
                }
                if closed.poll_cancelled(cx) {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await
        };
        let Some(msg) = msg else { return };
        match msg {
            Ok(Message::Text(t)) => match socket.wire().decode_text(t) {
                Ok(p) => socket.on_packet(p).await,
                Err(_) => {
                    socket.close_with(CloseReason::ParseError);
                    return;
                }
            },
            Ok(Message::Binary(b)) => match socket.wire().decode_binary(b) {
                Ok(p) => socket.on_packet(p).await,
                Err(_) => {
                    socket.close_with(CloseReason::ParseError);
                    return;
                }
            },
            Ok(Message::Ping(p)) => {
                // Rare (Engine.IO has its own heartbeat): answered under the writer's lock rather than
                // through a second queue that every session would carry.
                let mut w = writer.lock().await;
                w.pong(&p);
                if w.flush().await.is_err() {
                    drop(w);
                    socket.close_with(CloseReason::TransportError);
                    return;
                }
            }
            Ok(Message::Pong(_)) => {}
            Ok(Message::Close(c)) => {
                // The close is answered with the peer's own code (RFC 6455 section 5.5.1).
                if let Some(c) = c {
                    close_code.store(c.code, Ordering::Relaxed);
                }
                socket.close_with(CloseReason::TransportClose);
                return;
            }
            Err(e) => {
                if let ReadError::Ws(e) = &e {
                    tracing::debug!(sid = socket.id(), error = %e, "websocket error");
                    close_code.store(e.close_code(), Ordering::Relaxed);
                    socket.close_with(CloseReason::TransportError);
                } else {
                    socket.close_with(CloseReason::TransportClose);
                }
                return;
            }
        }
    }
}

/// A websocket on ferrio's codec and connection handling, without Engine.IO on top: what the Autobahn
/// echo example drives (`examples/ws_echo.rs`).
pub struct RawWebSocket {
    reader: WsReader,
    writer: WsWriter,
}

/// Why [`RawWebSocket::next`] stopped.
#[derive(Debug)]
pub enum RawError {
    /// The peer broke the protocol; close with [`ferrio_proto::ws::Error::close_code`].
    Protocol(ws::Error),
    /// The connection ended or failed.
    Io,
}

impl RawWebSocket {
    /// Answers a websocket upgrade request (`400` when it is not one): the response to send, and the
    /// connection once hyper hands it over. `deflate` makes permessage-deflate negotiable.
    #[allow(clippy::type_complexity)]
    pub fn upgrade<B>(
        req: http::Request<B>,
        max_message: usize,
        deflate: Option<DeflateConfig>,
    ) -> Result<
        (
            Response<Bytes>,
            impl Future<Output = Option<RawWebSocket>> + Send + 'static,
        ),
        RequestError,
    > {
        let config = EngineConfig {
            per_message_deflate: deflate,
            ..Default::default()
        };
        let (mut parts, _) = req.into_parts();
        let upgrade = check_upgrade_request(&parts, &config)?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        let res = switching_protocols(&upgrade);
        Ok((res, async move {
            let deflate = upgrade
                .deflate
                .as_ref()
                .zip(config.per_message_deflate.as_ref())
                .map(|((p, _), c)| (p, c));
            let (reader, writer) = accept(on_upgrade?, max_message, deflate).await?;
            Some(RawWebSocket { reader, writer })
        }))
    }

    /// The next message, pings and pongs included (answer pings with [`RawWebSocket::pong`]).
    pub async fn next(&mut self) -> Result<Message, RawError> {
        self.reader.next().await.map_err(|e| match e {
            ReadError::Ws(e) => RawError::Protocol(e),
            ReadError::Io => RawError::Io,
        })
    }

    /// Sends a text message (compressed above the threshold when negotiated and `compress`).
    pub async fn send_text(&mut self, text: &str, compress: bool) -> io::Result<()> {
        self.writer
            .encoder
            .text(text, compress, &mut self.writer.buf)
            .map_err(io::Error::other)?;
        self.writer.flush().await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: &[u8], compress: bool) -> io::Result<()> {
        self.writer
            .encoder
            .binary(data, compress, &mut self.writer.buf)
            .map_err(io::Error::other)?;
        self.writer.flush().await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.writer.pong(payload);
        self.writer.flush().await
    }

    /// Sends a close frame (`None`: without a status code) and ends the write side.
    pub async fn close(mut self, code: Option<u16>) {
        self.writer.encoder.close(code, "", &mut self.writer.buf);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            self.writer.flush().await?;
            self.writer.io.shutdown().await
        })
        .await;
    }
}

/// Watches a session's cancellation token from the one task that reads or writes its websocket.
///
/// A `select!` on `token.cancelled()` polls the cancellation future at every wake of the task, and each
/// poll locks the token's waiter list: about 500 instructions per echo round trip between the reader and
/// the writer. The future only needs polling once, to register the task's waker (a task's waker does not
/// change, so it stays valid); after that, reading the flag is enough.
struct CancelWatch {
    token: CancellationToken,
    cancelled: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    registered: bool,
}

impl CancelWatch {
    fn new(token: &CancellationToken) -> Self {
        CancelWatch {
            token: token.clone(),
            cancelled: Box::pin(token.clone().cancelled_owned()),
            registered: false,
        }
    }

    fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Registers the task's waker the first time; true once the token is cancelled.
    fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.registered {
            return self.token.is_cancelled();
        }
        self.registered = true;
        self.cancelled.as_mut().poll(cx).is_ready()
    }
}

/// The session's only writer while it runs on websocket: takes what is queued, writes it in batches.
async fn write_loop(
    socket: Arc<Socket>,
    writer: Arc<tokio::sync::Mutex<WsWriter>>,
    mut outbox: Outbox,
    close_code: Arc<AtomicU16>,
) {
    let mut graceful_close = false;
    let mut closed = CancelWatch::new(&socket.closed);
    let write = async {
        while let Some(first) = outbox.recv().await {
            let mut w = writer.lock().await;
            let mut next = Some(first);
            let mut n = 0;
            while let Some(f) = next.take() {
                if f.packet_type() == PacketType::Close {
                    graceful_close = true;
                    break;
                }
                let compress = !outbox.last_uncompressed();
                if let Err(e) = w.encode(&socket.wire().websocket_frame(f), compress) {
                    return Err(io::Error::other(e));
                }
                n += 1;
                if n < MAX_BATCH {
                    next = outbox.try_recv();
                }
            }
            w.flush().await?;
            if graceful_close {
                break;
            }
        }
        Ok::<_, io::Error>(())
    };
    // Stops writing as soon as the session is closed (checked first at every wake).
    let failed = {
        let mut write = std::pin::pin!(write);
        std::future::poll_fn(|cx| {
            if closed.is_cancelled() {
                return Poll::Ready(false);
            }
            if let Poll::Ready(r) = write.as_mut().poll(cx) {
                return Poll::Ready(r.is_err());
            }
            if closed.poll_cancelled(cx) {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    };
    if failed {
        socket.close_with(CloseReason::TransportError);
    }
    // The lock may be held by a pong on its way out: that finishes first (bounded by its own write).
    let mut w = writer.lock().await;
    // A batch cut short by the session's end goes out before the close, from where it stopped.
    w.close(close_code.load(Ordering::Relaxed)).await;
    if graceful_close {
        socket.close_delivered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder()
            .method("GET")
            .uri("/engine.io/?EIO=4&transport=websocket");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut p, _) = b.body(()).unwrap().into_parts();
        // Any hyper request that can upgrade carries this extension; build one from a real request.
        let mut req = hyper::Request::new(());
        p.extensions.insert(hyper::upgrade::on(&mut req));
        p
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn accepts_rfc_example() {
        let c = EngineConfig::default();
        let u = check_upgrade_request(&parts(GOOD), &c).unwrap();
        assert_eq!(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(u.deflate, None);
    }

    #[test]
    fn negotiates_deflate_when_configured() {
        let mut headers = GOOD.to_vec();
        headers.push((
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        ));
        let off = EngineConfig::default();
        assert_eq!(
            check_upgrade_request(&parts(&headers), &off)
                .unwrap()
                .deflate,
            None
        );
        let on = EngineConfig {
            per_message_deflate: Some(Default::default()),
            ..Default::default()
        };
        let u = check_upgrade_request(&parts(&headers), &on).unwrap();
        let res = switching_protocols(&u);
        assert_eq!(
            res.headers()[header::SEC_WEBSOCKET_EXTENSIONS],
            "permessage-deflate"
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let mut cases: Vec<Vec<(&str, &str)>> = vec![];
        for i in 0..GOOD.len() {
            let mut c = GOOD.to_vec();
            c.remove(i);
            cases.push(c);
        }
        for (k, bad) in [
            ("upgrade", "h2c"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "short"),
            ("sec-websocket-key", "not base64 at all!!!!!!!"),
        ] {
            let mut c: Vec<_> = GOOD.iter().filter(|(n, _)| *n != k).copied().collect();
            c.push((k, bad));
            cases.push(c);
        }
        for c in cases {
            assert_eq!(
                check_upgrade_request(&parts(&c), &EngineConfig::default()),
                Err(RequestError::BadRequest),
                "{c:?}"
            );
        }
    }
}
