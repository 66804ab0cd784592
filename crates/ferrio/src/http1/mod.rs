//! ferrio's own HTTP/1.1 server connection, behind [`serve_connection`](crate::serve_connection).
//!
//! Long-polling clients keep connections open that wait: a GET for up to a ping interval, a keep-alive
//! connection for their next POST. A general HTTP server keeps read and write buffers on each (hyper:
//! 8 KiB each), which made most of an idle polling session's memory. Here a connection holds no buffer
//! while it waits: a read lands on the stack and is copied out at its exact size only when bytes came,
//! a request's head and body are slices of that one copy, and an answer is written from a buffer that
//! lives for that write.
//!
//! What it serves: requests delimited by `Content-Length` or chunked transfer coding, keep-alive and
//! pipelining, `Expect: 100-continue`, upgrades (handed to the websocket transport), a timeout for a
//! request's head, and a graceful end. A client closing its connection while its request waits drops
//! the request's future, as it did under hyper (a waiting poll then ends its session).

mod body;
mod head;

use std::any::Any;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use http::{Method, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub use body::{Body, BodyError};
use body::{Decoded, Demand, Framing, Pipe};
use head::{BodyOut, Head, HeadError};

use crate::engine::RemoteAddr;
use crate::transport::delivery::{AnswerIo, AnswerWatch};
use crate::transport::websocket::Stream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A read lands in a stack buffer of this size first: an idle connection holds no read buffer.
const STACK_READ: usize = 4096;
/// How much a read buffer grows by once bytes of a message are waiting in it.
const READ_CHUNK: usize = 8192;
/// An answer's bytes are written once this many are gathered (or at its end).
const WRITE_CHUNK: usize = 64 * 1024;

/// Why a connection ended other than by its client closing it between requests.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading or writing failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// The client took longer than the header read timeout to send a request's head.
    #[error("the request's head took too long")]
    HeaderTimeout,
    /// The request's head was malformed or too large (answered with 400 or 431).
    #[error("bad request head ({0})")]
    BadRequest(StatusCode),
    /// The client closed the connection while its request was being answered.
    #[error("the client left before its answer")]
    ClientLeft,
    /// The service failed.
    #[error("the service failed: {0}")]
    Service(BoxError),
    /// The answer's body failed or did not match its length.
    #[error("the answer's body failed: {0}")]
    ResponseBody(BoxError),
}

/// The connection of a request that asked to switch protocols, once the switch was answered: put in
/// the request's extensions. Cloning shares it; the first to take it has it.
#[derive(Clone)]
pub(crate) struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    /// The connection, once the `101` went out; `None` when the request was answered otherwise or
    /// the connection failed.
    pub(crate) async fn take(self) -> Option<Upgraded> {
        let rx = self.0.lock().take()?;
        rx.await.ok()
    }
}

/// An upgraded connection and what its client sent past the request.
pub(crate) struct Upgraded {
    pub(crate) io: Stream,
    pub(crate) read: Bytes,
}

/// Serves HTTP/1.1 on `io` (see [`crate::serve_connection`]).
pub(crate) async fn serve_connection<I, S, ResBody>(
    io: I,
    peer: SocketAddr,
    mut service: S,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConnError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    // Lets a polling answer find out whether it reached the client (see `transport::delivery`).
    let watch = AnswerWatch::default();
    let mut io = AnswerIo::new(io, watch.clone());
    let mut buf = BytesMut::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = Shutdown::new(shutdown);
    let mut timer = std::pin::pin!(tokio::time::sleep(header_read_timeout));
    loop {
        // One runtime timer for every head of the connection: a later deadline only pushes it back.
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + header_read_timeout);
        let wait = std::future::poll_fn(|cx| {
            poll_head(cx, &mut io, &mut buf, timer.as_mut(), &mut shutdown)
        });
        let head = match wait.await? {
            HeadWait::Head(head) => head,
            HeadWait::Closed => return Ok(()),
            HeadWait::TimedOut => return Err(ConnError::HeaderTimeout),
            HeadWait::Refused(e) => {
                let mut out = Vec::with_capacity(128);
                head::write_response_head(
                    &mut out,
                    e.status(),
                    &http::HeaderMap::new(),
                    BodyOut::Length(0),
                    false,
                    false,
                );
                io.write_all(&out).await?;
                io.flush().await?;
                return Err(ConnError::BadRequest(e.status()));
            }
        };
        let Head {
            method,
            uri,
            version,
            headers,
            framing,
            keep_alive,
            expects_continue,
            upgrade,
        } = head;
        let answers_head = method == Method::HEAD;
        // The body: whole when it came with the head, else read as the service asks for it.
        let mut framing = framing.unwrap_or(Framing::Length(0));
        let (body, pipe) = match framing {
            Framing::Length(n) if buf.len() as u64 >= n => {
                framing = Framing::Length(0);
                (Body::full(buf.split_to(n as usize).freeze()), None)
            }
            Framing::Length(n) => {
                let pipe = Pipe::new(Some(n));
                (Body::piped(pipe.clone()), Some(pipe))
            }
            Framing::Chunked(_) => {
                let pipe = Pipe::new(None);
                (Body::piped(pipe.clone()), Some(pipe))
            }
        };
        if buf.is_empty() {
            // Nothing of a next request: the allocation goes (a head that a waiting request keeps may
            // still hold it, until the request lets it go).
            buf = BytesMut::new();
        }
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        req.extensions_mut().insert(RemoteAddr(peer));
        // Only a GET can be a poll whose answer is watched; every extension costs an allocation.
        if req.method() == Method::GET {
            req.extensions_mut().insert(watch.clone());
        }
        let upgrade_tx = upgrade.then(|| {
            let (tx, rx) = oneshot::channel();
            req.extensions_mut()
                .insert(OnUpgrade(Arc::new(Mutex::new(Some(rx)))));
            tx
        });
        let mut pipe = pipe;
        // Whether the connection can carry another request after this one: not once its body failed
        // or was left unread.
        let mut reusable = true;
        if expects_continue && pipe.is_some() {
            io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            io.flush().await?;
        }
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| ConnError::Service(e.into()))?;
        // In a block of its own, so the answer's future is dropped before the answer is written.
        let res = {
            let mut answer = std::pin::pin!(service.call(req));
            let res = std::future::poll_fn(|cx| {
                loop {
                    if let Poll::Ready(res) = answer.as_mut().poll(cx) {
                        return Poll::Ready(Ok(res));
                    }
                    if let Some(p) = &pipe {
                        match p.demand(cx) {
                            Demand::None => return Poll::Pending,
                            Demand::Abandoned => {
                                pipe = None;
                                if !framing.is_done() {
                                    reusable = false;
                                }
                                continue;
                            }
                            Demand::More => {}
                        }
                        let step = match framing.decode(&mut buf) {
                            Ok(Decoded::NeedMore) => match poll_read_some(&mut io, cx, &mut buf) {
                                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                    Err(BodyError::Incomplete)
                                }
                                Poll::Ready(Ok(_)) => continue,
                                Poll::Pending => return Poll::Pending,
                            },
                            Ok(Decoded::Data(d)) => Ok(Some(d)),
                            Ok(Decoded::End) => Ok(None),
                            Err(e) => Err(e),
                        };
                        if step.is_err() {
                            reusable = false;
                        }
                        let end = !matches!(step, Ok(Some(_)));
                        p.give(step);
                        if end {
                            pipe = None;
                        }
                        continue;
                    }
                    if !reusable || buf.len() >= head::MAX_HEAD_LEN {
                        return Poll::Pending;
                    }
                    // The request was read: watch for the client leaving while it waits for its answer.
                    // Bytes of a next request (pipelining) are kept for later.
                    return match poll_read_some(&mut io, cx, &mut buf) {
                        Poll::Ready(Ok(0)) => Poll::Ready(Err(ConnError::ClientLeft)),
                        Poll::Ready(Ok(_)) => continue,
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            })
            .await?;
            res.map_err(|e| ConnError::Service(e.into()))?
        };
        if pipe.is_some() || !framing.is_done() {
            reusable = false;
        }
        let (parts, body) = res.into_parts();
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        let keep = keep_alive
            && reusable
            && !switching
            && !says_close(&parts.headers)
            && !std::future::poll_fn(|cx| Poll::Ready(shutdown.poll(cx))).await;
        let no_body = answers_head
            || parts.status.is_informational()
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED;
        let hint = http_body::Body::size_hint(&body).exact();
        let http10 = version == Version::HTTP_10;
        let (out_kind, keep) = match hint {
            _ if no_body => (BodyOut::None, keep),
            Some(n) => (BodyOut::Length(n), keep),
            None if http10 => (BodyOut::UntilClose, false),
            None => (BodyOut::Chunked, keep),
        };
        let first = hint.unwrap_or(0).min(WRITE_CHUNK as u64) as usize;
        let mut out = Vec::with_capacity(160 + parts.headers.len() * 48 + first);
        head::write_response_head(
            &mut out,
            parts.status,
            &parts.headers,
            out_kind,
            keep,
            http10,
        );
        if out_kind != BodyOut::None {
            write_body(&mut io, &mut out, body, out_kind).await?;
        }
        io.write_all(&out).await?;
        io.flush().await?;
        drop(out);
        if switching {
            if let Some(tx) = upgrade_tx {
                let read = std::mem::take(&mut buf).freeze();
                let _ = tx.send(Upgraded {
                    io: into_stream(io.into_inner()),
                    read,
                });
            }
            return Ok(());
        }
        if !keep {
            let _ = io.shutdown().await;
            return Ok(());
        }
    }
}

/// Writes an answer's body after its head (in `out`), in `WRITE_CHUNK` pieces.
async fn write_body<I, B>(
    io: &mut AnswerIo<I>,
    out: &mut Vec<u8>,
    body: B,
    kind: BodyOut,
) -> Result<(), ConnError>
where
    I: AsyncWrite + Unpin + 'static,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut sent: u64 = 0;
    loop {
        // The frame's error is turned into ours at once: it need not be `Send` across the writes.
        let data = match body.as_mut().frame().await {
            None => break,
            Some(Err(e)) => return Err(ConnError::ResponseBody(e.into())),
            // Trailers are not sent.
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if kind == BodyOut::Chunked {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&data);
        }
        if out.len() >= WRITE_CHUNK {
            io.write_all(out).await?;
            out.clear();
        }
    }
    match kind {
        BodyOut::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        BodyOut::Length(n) if n != sent => {
            return Err(ConnError::ResponseBody(
                format!("the body had {sent} bytes for a length of {n}").into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Whether the service's answer asks to close the connection (`Connection: close`).
fn says_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

// Made once per request and matched at once: boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum HeadWait {
    Head(Head),
    /// The client closed the connection, or the server is shutting down, between requests.
    Closed,
    TimedOut,
    Refused(HeadError),
}

fn poll_head<I: AsyncRead + Unpin, F: Future<Output = ()>>(
    cx: &mut Context<'_>,
    io: &mut I,
    buf: &mut BytesMut,
    timer: Pin<&mut tokio::time::Sleep>,
    shutdown: &mut Shutdown<'_, F>,
) -> Poll<Result<HeadWait, ConnError>> {
    loop {
        if !buf.is_empty() {
            match head::parse(buf) {
                Ok(Some(head)) => return Poll::Ready(Ok(HeadWait::Head(head))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Ok(HeadWait::Refused(e))),
            }
        } else if shutdown.poll(cx) {
            // Between requests: an idle connection ends at once when the server shuts down.
            return Poll::Ready(Ok(HeadWait::Closed));
        }
        match poll_read_some(io, cx, buf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(HeadWait::Closed)),
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => {
                return match timer.poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Ok(HeadWait::TimedOut)),
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    }
}

/// Reads what the connection has into `buf`: through the stack when `buf` is empty, so a connection
/// that waits holds no buffer and one that got bytes holds exactly them.
fn poll_read_some<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
        let mut read = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        return Poll::Ready(Ok(read.filled().len()));
    }
    buf.reserve(READ_CHUNK);
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// The connection handed to the websocket transport: the TCP stream itself when that is what it is.
fn into_stream<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: I) -> Stream {
    let mut slot = Some(io);
    if let Some(tcp) = (&mut slot as &mut dyn Any).downcast_mut::<Option<TcpStream>>()
        && let Some(tcp) = tcp.take()
    {
        return Stream::Tcp(tcp);
    }
    match slot {
        Some(io) => Stream::Other(Box::new(io)),
        None => unreachable!("taken only when it is a TCP stream"),
    }
}

/// A connection's `shutdown` future, polled only when its own waker fired rather than at every wake
/// of the connection (each read, each answer): a watch or a notify re-registers its waiter under a
/// lock at every poll.
struct Shutdown<'a, F> {
    future: Pin<&'a mut F>,
    gate: Arc<ShutdownGate>,
    waker: Waker,
    fired: bool,
}

impl<'a, F: Future<Output = ()>> Shutdown<'a, F> {
    fn new(future: Pin<&'a mut F>) -> Self {
        let gate = Arc::new(ShutdownGate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Shutdown {
            future,
            waker: Waker::from(gate.clone()),
            gate,
            fired: false,
        }
    }

    /// Whether the shutdown came; registers the connection's waker for it when it did not.
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        if self.fired {
            return true;
        }
        self.gate.task.register(cx.waker());
        if self.gate.woken.swap(false, Ordering::AcqRel)
            && self
                .future
                .as_mut()
                .poll(&mut Context::from_waker(&self.waker))
                .is_ready()
        {
            self.fired = true;
        }
        self.fired
    }
}

/// The waker of a connection's `shutdown` future: notes that it is worth polling again, and wakes the
/// connection's task.
struct ShutdownGate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ShutdownGate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}
