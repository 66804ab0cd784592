//! WebSocket: direct sessions, and the probe that upgrades a polling session.
//!
//! Each websocket session has one task: it reads the upgraded connection, hands packets to the session,
//! and writes what the session queued, batched into one write. Frames are ferrio-proto's sans-IO codec ([`ferrio_proto::ws`]), with permessage-deflate when configured.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{CloseReason, Frame, PacketType, ProbeOutcome, decode_text};
use ferrio_proto::ws::{
    self, Decoder, DeflateConfig, DeflateParams, Encoder, Message, Outgoing, Role,
};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineConfig, Outbox, RequestError, Socket};

/// Frames written per flush at most, so one busy session cannot hold its writer's buffer forever.
const MAX_BATCH: usize = 256;

/// Bytes read per read call while no frame is in progress. The buffer lives on the stack for the
/// duration of one poll only: an idle connection holds no read buffer.
const READ_CHUNK: usize = 4096;

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
        || !UpgradeSource::available(parts)
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

/// An upgraded connection: the TCP stream itself when that is what lies under the HTTP server, else
/// the stream boxed (TLS, hyper's `Upgraded` when mounted in axum or hyper).
///
/// The TCP stream is shared with the session's queue, which writes frames to it itself while the
/// writer is idle (see `Outbox::attach`): it is used through `&TcpStream` (readiness, then a
/// non-blocking try), as tokio's own reads and writes do inside.
pub(crate) enum Stream {
    Tcp(Arc<TcpStream>),
    Other(Box<dyn UpgradedIo>),
}

/// What an upgraded connection other than a plain TCP stream must be.
pub(crate) trait UpgradedIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> UpgradedIo for T {}

/// Where an upgrade request's connection comes from once it is answered: ferrio's own HTTP/1 server
/// (`serve_connection`), or hyper's when the engine is mounted in axum or hyper.
pub(crate) enum UpgradeSource {
    Own(crate::http1::OnUpgrade),
    Hyper(hyper::upgrade::OnUpgrade),
}

impl UpgradeSource {
    fn available(parts: &Parts) -> bool {
        parts.extensions.get::<crate::http1::OnUpgrade>().is_some()
            || parts
                .extensions
                .get::<hyper::upgrade::OnUpgrade>()
                .is_some()
    }

    /// Takes the request's upgrade out of its extensions.
    pub(crate) fn take(parts: &mut Parts) -> Option<Self> {
        if let Some(own) = parts.extensions.remove::<crate::http1::OnUpgrade>() {
            return Some(UpgradeSource::Own(own));
        }
        parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .map(UpgradeSource::Hyper)
    }

    /// The connection and the bytes its client sent past the request.
    async fn connection(self) -> Option<(Stream, Bytes)> {
        match self {
            UpgradeSource::Own(own) => {
                let u = own.take().await?;
                Some((u.io, u.read))
            }
            UpgradeSource::Hyper(on_upgrade) => {
                let upgraded = on_upgrade.await.ok()?;
                // The plain TCP stream when that is what lies under hyper: no wrapper between the
                // codec and the socket.
                Some(match upgraded.downcast::<TokioIo<TcpStream>>() {
                    Ok(p) => (Stream::Tcp(Arc::new(p.io.into_inner())), p.read_buf),
                    // `Upgraded` gives back the bytes it read past the request itself.
                    Err(u) => (Stream::Other(Box::new(TokioIo::new(u))), Bytes::new()),
                })
            }
        }
    }
}

thread_local! {
    /// Where a TCP stream's reads land while no frame is in progress: one buffer per thread, not one
    /// per connection.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `attempt` once `poll_ready` says the stream may take it, until it does not end in `WouldBlock`
/// (which clears the readiness, so that the next `poll_ready` waits for the stream).
fn poll_io<T>(
    cx: &mut Context<'_>,
    mut poll_ready: impl FnMut(&mut Context<'_>) -> Poll<io::Result<()>>,
    mut attempt: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        ready!(poll_ready(cx))?;
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return Poll::Ready(r),
        }
    }
}

/// Whether the runtime reports new bytes after a short read without a read that ends in `WouldBlock`:
/// with epoll and kqueue, which tokio uses on these systems. Windows re-arms a socket's readiness only
/// after a real `WouldBlock`, as does mio's fallback to `poll`, which tokio also respects in its own
/// `poll_read`.
const DRAINED_BY_SHORT_READ: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
));

/// Reads what `s` has into `buf`'s spare room. A read that leaves room unfilled drained the socket,
/// so the stream's readiness is cleared then, without a syscall: the next read waits for the runtime
/// to report new bytes instead of asking the kernel and getting `WouldBlock` (one `recvfrom` saved per
/// message a client sends one at a time, as tokio's own `poll_read` does where that is safe:
/// `DRAINED_BY_SHORT_READ`).
fn poll_read_tcp(
    s: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut impl bytes::BufMut,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(s.poll_read_ready(cx))?;
        let mut drained = 0;
        // `try_io` clears the readiness it saw before the read when its closure ends in
        // `WouldBlock`; bytes that came after the read raised a newer event, which that leaves set
        // (clearing after the read instead could lose it to another thread's driver).
        match s.try_io(tokio::io::Interest::READABLE, || {
            let room = buf.chunk_mut().len();
            let n = s.try_read_buf(buf)?;
            if DRAINED_BY_SHORT_READ && n > 0 && n < room {
                drained = n;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if drained > 0 {
                    return Poll::Ready(Ok(drained));
                }
            }
            r => return Poll::Ready(r),
        }
    }
}

impl Stream {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => poll_io(cx, |cx| s.poll_write_ready(cx), || s.try_write(buf)),
            Stream::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            // Nothing is held back on TCP.
            Stream::Tcp(_) => Poll::Ready(Ok(())),
            Stream::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            // Alone once the queue let it go (`Outbox::detach`); shared, it closes with its last owner.
            Stream::Tcp(s) => match Arc::get_mut(s) {
                Some(s) => s.shutdown().await,
                None => Ok(()),
            },
            Stream::Other(s) => s.shutdown().await,
        }
    }
}

/// One websocket connection: the stream, the codec's two directions and what is encoded but not yet
/// written. One task drives both directions, so the stream is not split (no shared halves, no lock).
pub(crate) struct WsConn {
    io: Stream,
    decoder: Decoder,
    encoder: Encoder,
    /// A write cut short (the session closed meanwhile) resumes where it stopped.
    out: Outgoing,
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer broke the protocol: close with the error's code.
    Ws(ws::Error),
    /// The connection failed or ended without a close frame.
    Io,
}

impl WsConn {
    /// The next message; pings and pongs included, the caller answers pings.
    pub(crate) async fn next(&mut self) -> Result<Message, ReadError> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, ReadError>> {
        loop {
            // Most polls find the decoder empty (a recipient of broadcasts that sends nothing): it has
            // no message to give then.
            if self.decoder.buffered() > 0
                && let Some(m) = self.decoder.next_message().map_err(ReadError::Ws)?
            {
                return Poll::Ready(Ok(m));
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) | Err(_) => return Poll::Ready(Err(ReadError::Io)),
                Ok(_) => {}
            }
        }
    }

    /// Reads what the connection has: into the decoder's buffer while a frame is in progress (it is
    /// sized for the frame), else through a buffer on the stack, so that waiting holds no memory.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let WsConn { io, decoder, .. } = self;
        match io {
            Stream::Tcp(s) => {
                if decoder.buffered() > 0 {
                    return poll_read_tcp(s, cx, decoder.buffer_mut());
                }
                READ_BUF.with_borrow_mut(|chunk| {
                    chunk.clear();
                    chunk.reserve(READ_CHUNK);
                    let n = ready!(poll_read_tcp(s, cx, chunk))?;
                    decoder.feed(chunk);
                    Poll::Ready(Ok(n))
                })
            }
            Stream::Other(s) => {
                if decoder.buffered() > 0 {
                    return tokio_util::io::poll_read_buf(Pin::new(s), cx, decoder.buffer_mut());
                }
                // Uninitialised: zeroing 4 KiB at every poll (most find nothing to read) would cost
                // more than the read.
                let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut rb = ReadBuf::uninit(&mut chunk);
                ready!(Pin::new(s).poll_read(cx, &mut rb))?;
                decoder.feed(rb.filled());
                Poll::Ready(Ok(rb.filled().len()))
            }
        }
    }

    /// Whether bytes read wait to be decoded: more messages are behind the one just taken.
    fn has_input(&self) -> bool {
        self.decoder.buffered() > 0
    }

    /// Whether encoded bytes wait to be written.
    fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes what was encoded, then gives a large buffer back.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &mut self.io;
        ready!(self.out.poll_drain(|b| io.poll_write(cx, b)))?;
        // A no-op on TCP; a TLS stream may hold bytes back until flushed.
        ready!(self.io.poll_flush(cx))?;
        self.out.written_out();
        Poll::Ready(Ok(()))
    }

    /// Writes what was encoded.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_out(cx)).await
    }

    /// Encodes a queued frame; `compress: false` sends it uncompressed whatever its size.
    pub(crate) fn encode(&mut self, frame: &Frame, compress: bool) -> Result<(), ws::Error> {
        match frame {
            Frame::Text(s) => self.encoder.text(s, compress, self.out.buf_mut()),
            Frame::Binary(b) => self.encoder.binary(b, compress, self.out.buf_mut()),
        }
    }

    pub(crate) fn pong(&mut self, payload: &[u8]) {
        self.encoder.pong(payload, self.out.buf_mut());
    }

    /// Appends bytes that are websocket frames already (the end of a frame written in part by the
    /// session's queue).
    fn raw(&mut self, bytes: &[u8]) {
        self.out.buf_mut().extend_from_slice(bytes);
    }

    /// The stream frames may be written to from elsewhere, while this connection's writer is idle: a
    /// plain TCP stream without compression (a compressed frame depends on the frames before it).
    fn shareable(&self) -> Option<Arc<TcpStream>> {
        match &self.io {
            Stream::Tcp(s) if !self.encoder.compresses() => Some(s.clone()),
            _ => None,
        }
    }

    /// Sends a close frame (after what is still unwritten) and ends the write side, within a second (a
    /// peer that does not read must not hold the task).
    pub(crate) async fn close(&mut self, code: Option<u16>) {
        self.encoder.close(code, "", self.out.buf_mut());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            self.flush().await?;
            self.io.shutdown().await
        })
        .await;
    }
}

/// Takes over the upgraded connection, with the codec's state for `deflate`.
pub(crate) async fn accept(
    source: UpgradeSource,
    max_message: usize,
    deflate: Option<(&DeflateParams, &DeflateConfig)>,
) -> Option<WsConn> {
    let (io, pre) = source.connection().await?;
    let mut decoder = Decoder::new(Role::Server, max_message, deflate.map(|(p, _)| p));
    // Bytes read past the request: the client may have sent its first frames already.
    decoder.feed(&pre);
    Some(WsConn {
        io,
        decoder,
        encoder: Encoder::server(deflate),
        out: Outgoing::default(),
    })
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
    let on_upgrade = UpgradeSource::take(parts);
    tokio::spawn(async move {
        let max = socket.engine.config.max_http_buffer_size;
        let ws = match on_upgrade {
            Some(u) => accept(u, max, deflate_of(&socket, &upgrade)).await,
            None => None,
        };
        // Not needed past the handshake: its strings are not kept for the session's life.
        drop(upgrade);
        let Some(ws) = ws else {
            socket.close_with(CloseReason::TransportError);
            return;
        };
        // An Engine.IO v3 client sends the pings, so after the open packet it hears nothing until it
        // speaks. A client that attaches its message listener once `open` has fired (the v3 conformance
        // suite does) misses an open packet that arrived in the same read as the 101 answer, and then
        // waits forever. A millisecond between the two keeps them in separate reads; v4 sessions need no
        // such pause (a ping follows anyway).
        if socket.protocol() == ferrio_proto::engine::Protocol::V3 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        if let Some(d) = Driver::start(socket, ws).await {
            // A task of its own, whose future is the driver and little else: this one's (the handshake's
            // steps) would be held for the session's life.
            tokio::spawn(d.run());
        }
    });
}

/// Accepts a websocket only to close it: a second websocket for a session that is already upgrading or
/// upgraded gets a clean close, as the official server does, not a failed handshake.
pub(crate) fn spawn_reject(parts: &mut Parts) {
    let on_upgrade = UpgradeSource::take(parts);
    tokio::spawn(async move {
        if let Some(u) = on_upgrade
            && let Some(mut ws) = accept(u, 1024, None).await
        {
            ws.close(Some(ws::CLOSE_NORMAL)).await;
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
    let on_upgrade = UpgradeSource::take(parts);
    tokio::spawn(async move {
        let max = socket.engine.config.max_http_buffer_size;
        let ws = match on_upgrade {
            Some(u) => accept(u, max, deflate_of(&socket, &upgrade)).await,
            None => None,
        };
        drop(upgrade);
        let Some(mut ws) = ws else {
            socket.abort_upgrade();
            return;
        };
        let mut code = ws::CLOSE_NORMAL;
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                // The upgrade timed out, or the session closed.
                _ = cancel.cancelled() => break,
            };
            let packet = match msg {
                Ok(Message::Text(t)) => match decode_text(t) {
                    Ok(p) => p,
                    Err(_) => break,
                },
                Ok(Message::Ping(p)) => {
                    ws.pong(&p);
                    if ws.flush().await.is_err() {
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
                    if ws.encode(&probe, true).is_err() || ws.flush().await.is_err() {
                        break;
                    }
                }
                ProbeOutcome::Upgraded => {
                    crate::telemetry::upgraded();
                    if let Some(d) = Driver::start(socket, ws).await {
                        // A task of its own: this one's future (the probe's steps) is larger than the
                        // driver, and would be held for the session's life.
                        tokio::spawn(d.run());
                    }
                    return;
                }
                ProbeOutcome::Abort => break,
            }
        }
        socket.abort_upgrade();
        ws.close(Some(code)).await;
    });
}

/// How a session's websocket driver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The session closed (here or elsewhere): stop at once.
    Closed,
    /// A write failed: the session closes with a transport error.
    WriteFailed,
    /// The session's close packet was reached: what was queued before it is written.
    Graceful,
    /// The session is gone and its queue drained.
    Drained,
}

/// Rounds of reading and writing in one wake before the driver yields to the other tasks.
const ROUNDS_PER_WAKE: usize = 32;

/// The state of one session's websocket task.
struct Driver {
    socket: Arc<Socket>,
    ws: WsConn,
    outbox: Outbox,
    /// What the close frame says: the peer's own code when it closed first, the rule it broke, or 1000.
    close_code: u16,
    /// The handler's backpressure: nothing is read until it is done.
    backpressure: Option<crate::engine::BoxFuture<()>>,
    /// The session's close packet was taken from the queue.
    graceful: bool,
}

impl Drop for Driver {
    /// A task dropped before `finish` (its runtime shutting down) lets the queue's share of the stream
    /// go too, so that the connection closes with the task.
    fn drop(&mut self) {
        drop(self.outbox.detach());
    }
}

impl Driver {
    /// Takes the session's queue (a pending poll hands it over when the session was upgraded).
    async fn start(socket: Arc<Socket>, ws: WsConn) -> Option<Driver> {
        let outbox = socket.acquire_outbox().await?;
        if let Some(stream) = ws.shareable() {
            let binary = socket.protocol() != ferrio_proto::engine::Protocol::V3;
            outbox.attach(stream, binary);
        }
        Some(Driver {
            socket,
            ws,
            outbox,
            close_code: ws::CLOSE_NORMAL,
            backpressure: None,
            graceful: false,
        })
    }

    /// Drives the session on its websocket until the session ends: reads, hands packets to the
    /// session, and writes what the session queues, in batches.
    ///
    /// Not an async fn: its argument would be stored twice in the future (as the argument and as the
    /// body's binding), and this future is what a connection holds for its whole life.
    fn run(self) -> impl Future<Output = ()> + Send + 'static {
        let mut d = self;
        async move {
            let end = std::future::poll_fn(|cx| d.poll(cx)).await;
            // Boxed: it runs once, and held inline it would take room in the task for the session's
            // life.
            Box::pin(d.finish(end)).await;
        }
    }

    async fn finish(mut self, end: End) {
        // Nothing goes through the stream from now on, and it is this task's alone to shut down. A
        // frame written through in part is finished first.
        if let Some(rest) = self.outbox.detach() {
            self.ws.raw(&rest);
        }
        if end == End::WriteFailed {
            self.socket.close_with(CloseReason::TransportError);
        }
        // A batch cut short by the session's end goes out before the close, from where it stopped.
        self.ws.close(Some(self.close_code)).await;
        if end == End::Graceful {
            self.socket.close_delivered();
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<End> {
        // Once reading found nothing, the stream has this task's waker: it is not asked again in this
        // wake (each ask takes the registration's lock), since new data wakes the task anyway.
        let mut read_blocked = false;
        // Likewise once a write emptied the queue: a frame queued since woke the task, which polls it
        // again. Reading a packet clears it (the handler's frames wake nobody; see `poll_read`).
        let mut write_idle = false;
        for _ in 0..ROUNDS_PER_WAKE {
            // The session's end is checked first: a closed session stops reading and writing at once.
            // `finish` wakes the task through the queue, where the write side keeps its waker.
            if self.socket.is_finished() {
                return Poll::Ready(End::Closed);
            }
            let read = !read_blocked
                && match self.poll_read(cx) {
                    Poll::Ready(Ok(())) => {
                        write_idle = false;
                        true
                    }
                    Poll::Ready(Err(end)) => return Poll::Ready(end),
                    Poll::Pending => {
                        read_blocked = true;
                        false
                    }
                };
            // Another round only for a write that may have left frames in the queue: one that emptied
            // it registered this task for the next frame already.
            let more = !write_idle
                && match self.poll_write(cx) {
                    Poll::Ready(Ok(more)) => {
                        write_idle = !more;
                        more
                    }
                    Poll::Ready(Err(end)) => return Poll::Ready(end),
                    // Nothing queued, or the peer takes no more for now: registered either way.
                    Poll::Pending => {
                        write_idle = true;
                        false
                    }
                };
            if !read && !more {
                // The write side registered this task with the queue, which `finish` wakes; a close
                // that came before that registration is seen here.
                if self.socket.is_finished() {
                    return Poll::Ready(End::Closed);
                }
                return Poll::Pending;
            }
        }
        // Busy: let the other tasks of this thread run, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reads and handles one message; `Pending` when there is none (or the handler holds reading back).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), End>> {
        if let Some(wait) = &mut self.backpressure {
            ready!(wait.as_mut().poll(cx));
            self.backpressure = None;
        }
        let msg = match ready!(self.ws.poll_next(cx)) {
            Ok(m) => m,
            Err(e) => {
                if let ReadError::Ws(e) = &e {
                    tracing::debug!(sid = self.socket.id(), error = %e, "websocket error");
                    self.close_code = e.close_code();
                    self.socket.close_with(CloseReason::TransportError);
                } else {
                    self.socket.close_with(CloseReason::TransportClose);
                }
                return Poll::Ready(Err(End::Closed));
            }
        };
        let packet = match msg {
            Message::Text(t) => self.socket.wire().decode_text(t),
            Message::Binary(b) => self.socket.wire().decode_binary(b),
            Message::Ping(p) => {
                // Rare (Engine.IO has its own heartbeat): goes out with the next write, and nothing
                // goes through the stream until then.
                if let Some(rest) = self.outbox.hold() {
                    self.ws.raw(&rest);
                }
                self.ws.pong(&p);
                return Poll::Ready(Ok(()));
            }
            Message::Pong(_) => return Poll::Ready(Ok(())),
            Message::Close(c) => {
                // The close is answered with the peer's own code (RFC 6455 section 5.5.1).
                if let Some(c) = c {
                    self.close_code = c.code;
                }
                self.socket.close_with(CloseReason::TransportClose);
                return Poll::Ready(Err(End::Closed));
            }
        };
        match packet {
            Ok(p) => {
                // What a handler queues while it runs here (an ack answered at once) is written by this
                // round's write step: a wake for it would only poll the task once more for nothing. Only
                // here, not at every wake: a recipient of broadcasts never reads and pays no lock for it.
                self.outbox.unregister();
                // More read behind this packet: what its handler sends waits for this task's writes.
                let burst = self.ws.has_input();
                self.backpressure = crate::engine::queued(burst, || self.socket.receive(p));
            }
            Err(_) => {
                self.socket.close_with(CloseReason::ParseError);
                return Poll::Ready(Err(End::Closed));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Encodes what the session queued (up to a batch) and writes it. `Ready(Ok(more))` once written,
    /// where `more` says that the queue may hold more (else it was emptied and this task is registered
    /// for its next frame); `Pending` when there is nothing to write or the connection cannot take more
    /// now.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, End>> {
        // What was encoded before and not written yet: the queue was not looked at.
        let mut more = true;
        if !self.ws.has_output() {
            if self.graceful {
                return Poll::Ready(Err(End::Graceful));
            }
            let mut n = 0;
            while n < MAX_BATCH {
                // Idle while nothing is taken: an empty queue then lets frames go through.
                let (f, emptied) = match self.outbox.poll_next(cx, n == 0) {
                    Poll::Ready(Some(f)) => f,
                    Poll::Ready(None) => {
                        if n == 0 {
                            return Poll::Ready(Err(End::Drained));
                        }
                        break;
                    }
                    Poll::Pending => {
                        more = false;
                        break;
                    }
                };
                match f {
                    // The end of a frame written through in part: websocket bytes already.
                    Frame::Binary(b) if self.outbox.last_raw() => self.ws.raw(&b),
                    f if f.packet_type() == PacketType::Close => {
                        self.graceful = true;
                        break;
                    }
                    f => {
                        let compress = !self.outbox.last_uncompressed();
                        let frame = self.socket.wire().websocket_frame(f);
                        if self.ws.encode(&frame, compress).is_err() {
                            return Poll::Ready(Err(End::WriteFailed));
                        }
                    }
                }
                n += 1;
                if emptied {
                    more = false;
                    break;
                }
            }
            if !self.ws.has_output() {
                return if self.graceful {
                    Poll::Ready(Err(End::Graceful))
                } else {
                    Poll::Pending
                };
            }
        }
        match self.ws.poll_write_out(cx) {
            Poll::Ready(Ok(())) => {
                if !more && !self.graceful {
                    // All written and the queue was empty at the last take: frames may go through.
                    self.outbox.idle();
                }
                Poll::Ready(Ok(more || self.graceful))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(End::WriteFailed)),
            Poll::Pending => {
                // Blocked on the peer: the session's end must still wake this task.
                self.outbox.register(cx);
                Poll::Pending
            }
        }
    }
}

/// A websocket on ferrio's codec and connection handling, without Engine.IO on top: what the Autobahn
/// echo example drives (`examples/ws_echo.rs`).
pub struct RawWebSocket {
    ws: WsConn,
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
        let on_upgrade = UpgradeSource::take(&mut parts);
        let res = switching_protocols(&upgrade);
        Ok((res, async move {
            let deflate = upgrade
                .deflate
                .as_ref()
                .zip(config.per_message_deflate.as_ref())
                .map(|((p, _), c)| (p, c));
            let ws = accept(on_upgrade?, max_message, deflate).await?;
            Some(RawWebSocket { ws })
        }))
    }

    /// The next message, pings and pongs included (answer pings with [`RawWebSocket::pong`]).
    pub async fn next(&mut self) -> Result<Message, RawError> {
        self.ws.next().await.map_err(|e| match e {
            ReadError::Ws(e) => RawError::Protocol(e),
            ReadError::Io => RawError::Io,
        })
    }

    /// Sends a text message (compressed above the threshold when negotiated and `compress`).
    pub async fn send_text(&mut self, text: &str, compress: bool) -> io::Result<()> {
        self.ws
            .encoder
            .text(text, compress, self.ws.out.buf_mut())
            .map_err(io::Error::other)?;
        self.ws.flush().await
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: &[u8], compress: bool) -> io::Result<()> {
        self.ws
            .encoder
            .binary(data, compress, self.ws.out.buf_mut())
            .map_err(io::Error::other)?;
        self.ws.flush().await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.ws.pong(payload);
        self.ws.flush().await
    }

    /// Sends a close frame (`None`: without a status code) and ends the write side.
    pub async fn close(mut self, code: Option<u16>) {
        self.ws.close(code).await;
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
