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
//!
//! Limits, none of which the engine meets: a request body is read from the connection only while its
//! answer is pending (a body the service reads after answering ends with an error); while a streaming
//! answer is written, a client that leaves is noticed at the next write only; and, as under hyper,
//! there is no timeout for a client that stops reading an answer. HTTP/2 is not served here (mount the
//! engine in an HTTP/2 server for that).

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
use futures_util::FutureExt as _;
use futures_util::task::AtomicWaker;
use http::{Method, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt as _;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub use body::{Body, BodyError};
use body::{Decoded, Demand, Framing, Pipe};
pub(crate) use head::Lean;
use head::{BodyOut, Head, HeadError, Parsed};

use crate::engine::{Engine, LeanCall, RemoteAddr};
use crate::serving::FollowSession;
use crate::transport::delivery::{AnswerIo, AnswerWatch};
use crate::transport::polling;
use crate::transport::websocket::Stream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// A read lands in a stack buffer of this size first: an idle connection holds no read buffer.
const STACK_READ: usize = 4096;
/// How much a read buffer grows by once bytes of a message are waiting in it.
const READ_CHUNK: usize = 8192;
/// How long, and for how many bytes, a connection closed on a client still sending reads on.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// Room for the head of a lean request's answer (a compressed poll's, with `connection: close`, is
/// about 230 bytes).
const LEAN_HEAD: usize = 256;
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

/// Serves HTTP/1.1 (with upgrades) on one accepted connection, as [`serve_until`](crate::serve_until)
/// does for each: for accept loops of their own (TLS, connection limits). `peer` reaches the engine as
/// [`RemoteAddr`]. The HTTP/1.1 server is ferrio's own (no buffer held while a connection waits, which
/// long-polling connections mostly do); requests reach `service` with a [`RequestBody`](Body).
/// Clients that take longer than `header_read_timeout` to send a request's headers are cut off. When
/// `shutdown` completes, the connection ends after the request in progress (an idle keep-alive
/// connection at once); a connection upgraded to websocket is no longer this function's.
///
/// The connection's future lives as long as the connection, idle or not, so it is kept small: not an
/// `async fn` (which would store its arguments twice), and each phase of a request (reading its head,
/// waiting for its answer, writing it) awaits a future of its own, so that the big values of one phase
/// share their room with those of the others.
pub fn serve_connection<I, S, ResBody>(
    io: I,
    peer: SocketAddr,
    service: S,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = Result<(), ConnError>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    serve_engine_connection(io, peer, service, None, header_read_timeout, shutdown)
}

/// [`serve_connection`], and with an engine, its sessions' lean long-polling requests are answered by
/// the engine itself (see [`serve_tcp_connection_with_engine`]): for [`serve_until`](crate::serve_until)
/// when its service is the engine's alone.
pub(crate) fn serve_engine_connection<I, S, ResBody>(
    io: I,
    peer: SocketAddr,
    service: S,
    engine: Option<Engine>,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = Result<(), ConnError>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let served = serve(
        io,
        BytesMut::new(),
        false,
        peer,
        service,
        engine,
        header_read_timeout,
        shutdown,
    );
    served.map(|r| r.map(|_| ()))
}

/// How a connection served by [`serve_tcp_connection`] ended without an error.
#[derive(Debug)]
pub enum Served {
    /// The client closed it, it was answered with `Connection: close`, the server shut down, or it
    /// went to the websocket transport.
    Ended,
    /// It goes to another serving thread (see [`set_serving_thread`](crate::set_serving_thread)).
    Moved(MovedConnection),
}

/// A keep-alive connection between two requests, handed on to the serving thread of the long-polling
/// session it last served: resume it there with [`serve_tcp_connection`] (from that thread's runtime,
/// which the stream is registered with by `TcpStream::from_std`).
#[derive(Debug)]
pub struct MovedConnection {
    /// Out of the runtime it was served on, still non-blocking.
    pub stream: std::net::TcpStream,
    /// What the client sent past the last request (a pipelined request): read first.
    pub read: Bytes,
    /// The serving thread to go to.
    pub to: u16,
}

/// [`serve_connection`] on a plain TCP connection that may move, once: after answering a request of a
/// long-polling session that belongs to another serving thread, a new connection (`moved: None`) ends
/// with [`Served::Moved`] instead of reading the next request. One that moved already
/// (`moved: Some(bytes read past its last request)`) is served where it is from then on, whatever
/// sessions its requests belong to: a connection that carries several clients' requests (from a
/// proxy, or a browser's tabs) does not go back and forth.
pub fn serve_tcp_connection<S, ResBody>(
    io: TcpStream,
    moved: Option<Bytes>,
    peer: SocketAddr,
    service: S,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = Result<Served, ConnError>>
where
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    serve_tcp_connection_with_engine(
        io,
        moved,
        peer,
        service,
        None,
        header_read_timeout,
        shutdown,
    )
}

/// [`serve_tcp_connection`], and with an engine, its sessions' long-polling requests are answered by
/// the engine itself rather than by `service`: a GET or POST of a polling session (with its `sid`),
/// unless a headers hook is set or CORS has an `Origin` to judge. They skip the `http` types and the
/// service's layers, which cost a long-polling server more than the rest of each request. For a service
/// whose layers in front of the engine need not see those requests (`ferrio serve`'s: a health check,
/// and a connection limit that counts handshakes); every other request goes to `service`.
pub fn serve_tcp_connection_with_engine<S, ResBody>(
    io: TcpStream,
    moved: Option<Bytes>,
    peer: SocketAddr,
    service: S,
    engine: Option<Engine>,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = Result<Served, ConnError>>
where
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let movable = moved.is_none();
    serve(
        io,
        BytesMut::from(moved.unwrap_or_default()),
        movable,
        peer,
        service,
        engine,
        header_read_timeout,
        shutdown,
    )
}

#[allow(clippy::too_many_arguments)]
fn serve<I, S, ResBody>(
    io: I,
    read: BytesMut,
    movable: bool,
    peer: SocketAddr,
    service: S,
    lean: Option<Engine>,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = Result<Served, ConnError>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    // Lets a polling answer find out whether it reached the client (see `transport::delivery`).
    let watch = AnswerWatch::default();
    // Used in place by the block below, not rebound there: a rebinding would take room of its own.
    let mut conn = Conn {
        io: AnswerIo::new(io, watch.clone()),
        buf: read,
        scanned: 0,
        movable,
        watch,
        peer,
        service,
        lean,
        unserved: None,
    };
    async move {
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown = Shutdown::new(shutdown);
        let mut timer = std::pin::pin!(tokio::time::sleep(header_read_timeout));
        loop {
            // One runtime timer for every head of the connection: a later deadline only pushes it back.
            // Moved at every head, not only when it fires early: one left behind would wake each
            // polling connection once a timeout for nothing, which costs more than the moves.
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + header_read_timeout);
            let head = std::future::poll_fn(|cx| conn.poll_head(cx, timer.as_mut(), &mut shutdown));
            let next = match head.await {
                HeadWait::Head(head) => {
                    let (req, mut exchange) = conn.request(head);
                    let res = conn.answer(req, &mut exchange, &mut shutdown).await?;
                    conn.respond(res, exchange).await?
                }
                HeadWait::Lean(call, body_len, keep_alive) => {
                    // Boxed, as the engine's service boxes its answers: the connection's future
                    // keeps no room for a poll's wait, which would be memory per connection.
                    Box::pin(conn.lean(call, body_len, keep_alive, &mut shutdown)).await?
                }
                HeadWait::Closed => return Ok(Served::Ended),
                HeadWait::TimedOut => return Err(ConnError::HeaderTimeout),
                HeadWait::Failed(e) => return Err(e.into()),
                HeadWait::NotReady(e) => return Err(e),
                HeadWait::Refused(e) => return conn.refuse(e).await.map(|()| Served::Ended),
            };
            match next {
                Next::Request => continue,
                Next::Move(to) => {
                    // The server is shutting down: the connection ends here, between
                    // requests, as it would have on this thread.
                    if shutdown.poll(&mut Context::from_waker(Waker::noop())) {
                        return Ok(Served::Ended);
                    }
                    let read = std::mem::take(&mut conn.buf).freeze();
                    // Only `serve_tcp_connection`'s connections move: a TCP stream.
                    let Ok(tcp) = into_tcp(conn.io.into_inner()) else {
                        return Ok(Served::Ended);
                    };
                    return Ok(Served::Moved(MovedConnection {
                        stream: tcp.into_std()?,
                        read,
                        to,
                    }));
                }
                Next::Close => return Ok(Served::Ended),
                Next::Upgrade(tx) => {
                    let read = std::mem::take(&mut conn.buf).freeze();
                    let _ = tx.send(Upgraded {
                        io: into_stream(conn.io.into_inner()),
                        read,
                    });
                    return Ok(Served::Ended);
                }
            }
        }
    }
}

/// A connection's lasting state.
struct Conn<I, S> {
    io: AnswerIo<I>,
    /// Bytes read and not yet taken: part of a head or body, or a pipelined request. Empty (no
    /// allocation) between requests as a rule.
    buf: BytesMut,
    /// How much of `buf` is known to hold no end of a head: a head trickled in is parsed once it
    /// is complete, not at every read (which would take time quadratic in its length).
    scanned: usize,
    /// Whether the connection may go to another serving thread between requests (a plain TCP one
    /// served by `serve_tcp_connection`).
    movable: bool,
    watch: AnswerWatch,
    peer: SocketAddr,
    service: S,
    /// The engine that answers its sessions' lean long-polling requests itself (see
    /// [`serve_tcp_connection_with_engine`]).
    lean: Option<Engine>,
    /// A head read while the service was not ready for it.
    unserved: Option<Box<Head>>,
}

/// One request's exchange, beside the request itself.
struct Exchange {
    /// The body still to be read from the connection, when it did not come with the head.
    pipe: Option<Arc<Pipe>>,
    framing: Framing,
    /// Bytes of `100 Continue` still to be sent before the body is first read (a write may be short).
    continue_left: usize,
    /// Whether the client wants the connection kept after this exchange (and the server is not
    /// shutting down). A body left unread or failed (framing not done) ends it as well.
    keep_alive: bool,
    answers_head: bool,
    http10: bool,
    upgrade: Option<oneshot::Sender<Upgraded>>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // A body the service still holds (a task of its own, or an answer that streams it back) is
        // not fed once the exchange is over: it ends with an error instead of waiting forever.
        if let Some(pipe) = self.pipe.take() {
            pipe.give(Err(BodyError::Incomplete));
        }
    }
}

enum Next {
    Request,
    Close,
    /// The protocol was switched: the connection goes to the upgrade's receiver.
    Upgrade(oneshot::Sender<Upgraded>),
    /// Kept alive, and goes to the serving thread of the session it answered.
    Move(u16),
}

impl<I, S, ResBody> Conn<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    fn poll_head<F: Future<Output = ()>>(
        &mut self,
        cx: &mut Context<'_>,
        timer: Pin<&mut tokio::time::Sleep>,
        shutdown: &mut Shutdown<'_, F>,
    ) -> Poll<HeadWait> {
        if let Some(head) = self.unserved.take() {
            return self.when_ready(cx, *head);
        }
        loop {
            // Parsed when its first bytes came (so that junk is refused at once), then only once the
            // end of a head may be there, or the head is too long.
            let worth_parsing = !self.buf.is_empty()
                && (self.scanned == 0
                    || self.buf.len() > head::MAX_HEAD_LEN
                    || head::has_end(&self.buf[self.scanned.saturating_sub(3)..]));
            if worth_parsing {
                let lean = &self.lean;
                match head::parse(&mut self.buf, |req| lean.as_ref()?.lean_call(req)) {
                    Ok(Some(Parsed::Head(head))) => {
                        self.scanned = 0;
                        return self.when_ready(cx, head);
                    }
                    Ok(Some(Parsed::Lean {
                        taken,
                        body_len,
                        keep_alive,
                    })) => {
                        self.scanned = 0;
                        return Poll::Ready(HeadWait::Lean(taken, body_len, keep_alive));
                    }
                    Ok(None) => self.scanned = self.buf.len(),
                    Err(e) => return Poll::Ready(HeadWait::Refused(e)),
                }
            } else if !self.buf.is_empty() {
                self.scanned = self.buf.len();
            } else if shutdown.poll(cx) {
                // Between requests: an idle connection ends at once when the server shuts down.
                return Poll::Ready(HeadWait::Closed);
            }
            match poll_read_some(&mut self.io, cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(HeadWait::Closed),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(HeadWait::Failed(e)),
                Poll::Pending => {
                    return match timer.poll(cx) {
                        Poll::Ready(()) => Poll::Ready(HeadWait::TimedOut),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    /// `head`, once the service is ready for it (a lean request, which the service does not see, takes
    /// none of its readiness: a layer that reserves room in `poll_ready` would keep it).
    fn when_ready(&mut self, cx: &mut Context<'_>, head: Head) -> Poll<HeadWait> {
        match self.service.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(HeadWait::Head(head)),
            Poll::Ready(Err(e)) => Poll::Ready(HeadWait::NotReady(ConnError::Service(e.into()))),
            Poll::Pending => {
                // Boxed: a service seldom makes a request wait, and the connection stays small.
                self.unserved = Some(Box::new(head));
                Poll::Pending
            }
        }
    }

    /// The request of `head`, its body whole when it came with the head, else read as the service
    /// asks for it.
    fn request(&mut self, head: Head) -> (Request<Body>, Exchange) {
        let mut framing = head.framing.unwrap_or(Framing::Length(0));
        let (body, pipe) = match framing {
            Framing::Length(n) if self.buf.len() as u64 >= n => {
                framing = Framing::Length(0);
                (Body::full(self.buf.split_to(n as usize).freeze()), None)
            }
            Framing::Length(n) => {
                let pipe = Pipe::new(Some(n));
                (Body::piped(pipe.clone()), Some(pipe))
            }
            Framing::Chunked(_) => match body::take_whole_chunked(&mut self.buf) {
                // Whole already (a small chunked body comes with its head): nothing to read later,
                // and the connection is watched for its client leaving meanwhile.
                Some(Ok(data)) => {
                    framing = Framing::Length(0);
                    (Body::full(data), None)
                }
                _ => {
                    let pipe = Pipe::new(None);
                    (Body::piped(pipe.clone()), Some(pipe))
                }
            },
        };
        if self.buf.is_empty() {
            // Nothing of a next request: the allocation goes (a head that a waiting request keeps may
            // still hold it, until the request lets it go).
            self.buf = BytesMut::new();
        }
        let mut req = Request::new(body);
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers;
        req.extensions_mut().insert(RemoteAddr(self.peer));
        // Only a GET can be a poll whose answer is watched; every extension costs an allocation.
        if req.method() == Method::GET {
            req.extensions_mut().insert(self.watch.clone());
        }
        let upgrade = head.upgrade.then(|| {
            let (tx, rx) = oneshot::channel();
            req.extensions_mut()
                .insert(OnUpgrade(Arc::new(Mutex::new(Some(rx)))));
            tx
        });
        let exchange = Exchange {
            continue_left: if head.expects_continue && pipe.is_some() {
                CONTINUE.len()
            } else {
                0
            },
            pipe,
            framing,
            keep_alive: head.keep_alive,
            answers_head: req.method() == Method::HEAD,
            http10: head.version == Version::HTTP_10,
            upgrade,
        };
        (req, exchange)
    }

    /// Calls the service and waits for its answer (see [`wait_for`](Self::wait_for)).
    ///
    /// The service was polled ready by `poll_head`.
    fn answer<'a, F: Future<Output = ()>>(
        &'a mut self,
        req: Request<Body>,
        x: &'a mut Exchange,
        shutdown: &'a mut Shutdown<'_, F>,
    ) -> impl Future<Output = Result<Response<ResBody>, ConnError>> + 'a
    where
        ResBody: 'a,
    {
        // Called now: the future that waits holds the service's future, not the request.
        let answer = self.service.call(req);
        async move {
            let res = self.wait_for(answer, x, shutdown).await?;
            res.map_err(|e| ConnError::Service(e.into()))
        }
    }

    /// Waits for a request's answer, feeding it the body as it asks and watching for the client
    /// leaving meanwhile. A server shutting down makes this the connection's last exchange.
    async fn wait_for<T, F: Future<Output = ()>>(
        &mut self,
        answer: impl Future<Output = T>,
        x: &mut Exchange,
        shutdown: &mut Shutdown<'_, F>,
    ) -> Result<T, ConnError> {
        let mut answer = std::pin::pin!(answer);
        std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(res) = answer.as_mut().poll(cx) {
                    if shutdown.poll(cx) {
                        x.keep_alive = false;
                    }
                    return Poll::Ready(Ok(res));
                }
                if let Some(p) = &x.pipe {
                    match p.demand(cx) {
                        Demand::None => return Poll::Pending,
                        Demand::Abandoned => {
                            x.pipe = None;
                            continue;
                        }
                        Demand::More => {}
                    }
                    while x.continue_left > 0 {
                        // The service reads the body: the client may send it now.
                        let rest = &CONTINUE[CONTINUE.len() - x.continue_left..];
                        match Pin::new(&mut self.io).poll_write(cx, rest) {
                            Poll::Ready(Ok(0)) => {
                                return Poll::Ready(Err(
                                    io::Error::from(io::ErrorKind::WriteZero).into()
                                ));
                            }
                            Poll::Ready(Ok(n)) => x.continue_left -= n,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    let step = match x.framing.decode(&mut self.buf) {
                        Ok(Decoded::NeedMore) => {
                            match poll_read_some(&mut self.io, cx, &mut self.buf) {
                                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                                    Err(BodyError::Incomplete)
                                }
                                Poll::Ready(Ok(_)) => continue,
                                Poll::Pending => return Poll::Pending,
                            }
                        }
                        Ok(Decoded::Data(d)) => Ok(Some(d)),
                        Ok(Decoded::End) => Ok(None),
                        Err(e) => Err(e),
                    };
                    let end = !matches!(step, Ok(Some(_)));
                    p.give(step);
                    if end {
                        x.pipe = None;
                    }
                    continue;
                }
                if !x.framing.is_done() || self.buf.len() >= head::MAX_HEAD_LEN {
                    return Poll::Pending;
                }
                // The request was read: watch for the client leaving while it waits for its answer.
                // Bytes of a next request (pipelining) are kept for later.
                return match poll_read_some(&mut self.io, cx, &mut self.buf) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Err(ConnError::ClientLeft)),
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                    Poll::Pending => Poll::Pending,
                };
            }
        })
        .await
    }

    /// Answers a lean long-polling request (see [`serve_tcp_connection_with_engine`]) with the
    /// engine's own functions, as the engine's service would, and writes the answer: the head from
    /// the few header lines a poll's answer has, without the `http` types.
    fn lean<'a, F: Future<Output = ()>>(
        &'a mut self,
        call: LeanCall,
        body_len: usize,
        keep_alive: bool,
        shutdown: &'a mut Shutdown<'_, F>,
    ) -> impl Future<Output = Result<Next, ConnError>> + 'a {
        // The body, which came whole: all of the buffer as a rule (no copy, and no allocation to share
        // it), else its front.
        let body = if body_len == 0 {
            Bytes::new()
        } else if body_len == self.buf.len() {
            std::mem::take(&mut self.buf).freeze()
        } else {
            self.buf.split_to(body_len).freeze()
        };
        if self.buf.is_empty() {
            // Nothing of a next request: the allocation goes (a poll may wait long).
            self.buf = BytesMut::new();
        }
        async move {
            let mut x = Exchange {
                pipe: None,
                framing: Framing::Length(0),
                continue_left: 0,
                keep_alive,
                answers_head: false,
                http10: false,
                upgrade: None,
            };
            let (socket, answer, poll) = match call {
                LeanCall::Poll { socket, accepted } => {
                    let answer = polling::lean_poll(&socket, accepted);
                    let answer = self.wait_for(answer, &mut x, shutdown).await?;
                    (socket, answer, true)
                }
                LeanCall::Post {
                    socket,
                    octet_stream,
                } => {
                    let answer = polling::lean_post(&socket, octet_stream, body);
                    let answer = self.wait_for(answer, &mut x, shutdown).await?;
                    (socket, answer, false)
                }
            };
            let mut out = Vec::new();
            let follow = match answer {
                Ok(a) => {
                    out.reserve_exact(LEAN_HEAD + a.body.len());
                    head::write_lean_head(&mut out, a.headers(), a.body.len(), x.keep_alive);
                    out.extend_from_slice(&a.body);
                    if poll {
                        // The answer counts as delivered once written to a live client.
                        self.watch.arm(socket.clone(), a.body.len());
                    }
                    socket.home_elsewhere().filter(|_| self.movable)
                }
                Err(e) => {
                    tracing::debug!(sid = socket.id(), error = %e, "request refused");
                    let res = e.into_response();
                    let len = BodyOut::Length(res.body().len() as u64);
                    head::write_response_head(
                        &mut out,
                        res.status(),
                        res.headers(),
                        len,
                        x.keep_alive,
                        false,
                    );
                    out.extend_from_slice(res.body());
                    None
                }
            };
            self.io.write_all(&out).await?;
            self.io.flush().await?;
            drop(out);
            if !x.keep_alive {
                let _ = self.io.shutdown().await;
                return Ok(Next::Close);
            }
            Ok(follow.map_or(Next::Request, Next::Move))
        }
    }

    /// Writes the answer; hands the connection over when it switched protocols. A body that is ready at
    /// once (as every answer of the engine's is) is gathered here, so the future that writes holds only
    /// the bytes; a body that streams is written by a boxed future.
    fn respond<'a>(
        &'a mut self,
        res: Response<ResBody>,
        mut x: Exchange,
    ) -> impl Future<Output = Result<Next, ConnError>> + 'a
    where
        ResBody: 'a,
    {
        let (parts, body) = res.into_parts();
        let follow = match parts.extensions.get::<FollowSession>() {
            Some(f) if self.movable => Some(f.0),
            _ => None,
        };
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        // A body left unread (or failed) loses the connection's framing, and its client may still be
        // sending it.
        let unread = !x.framing.is_done();
        let keep = x.keep_alive && !unread && !switching && !says_close(&parts.headers);
        let bodiless = parts.status.is_informational()
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED;
        let hint = http_body::Body::size_hint(&body).exact();
        let (kind, keep) = match hint {
            _ if bodiless => (BodyOut::None, keep),
            // A HEAD answer announces the length a GET's body would have, and sends no body.
            Some(n) => (BodyOut::Length(n), keep),
            None if x.answers_head => (BodyOut::None, keep),
            None if x.http10 => (BodyOut::UntilClose, false),
            None => (BodyOut::Chunked, keep),
        };
        let first = hint.unwrap_or(0).min(WRITE_CHUNK as u64) as usize;
        let mut out = Vec::with_capacity(160 + parts.headers.len() * 48 + first);
        head::write_response_head(&mut out, parts.status, &parts.headers, kind, keep, x.http10);
        drop(parts);
        let kind = if x.answers_head { BodyOut::None } else { kind };
        let next = if switching {
            x.upgrade.take().map_or(Next::Close, Next::Upgrade)
        } else if keep {
            follow.map_or(Next::Request, Next::Move)
        } else {
            Next::Close
        };
        async move {
            if kind != BodyOut::None {
                let mut body = std::pin::pin!(body);
                let mut sent = 0;
                // A body that streams is written by a boxed future: the bytes of a whole body are
                // written below, and the connection's future keeps no room for the streaming case.
                if !gather(body.as_mut(), &mut out, kind, &mut sent)? {
                    Box::pin(write_body(&mut self.io, &mut out, body, kind, &mut sent)).await?;
                }
                finish_body(&mut out, kind, sent)?;
            }
            self.io.write_all(&out).await?;
            self.io.flush().await?;
            drop(out);
            if matches!(next, Next::Close) {
                if unread {
                    self.linger().await;
                } else {
                    let _ = self.io.shutdown().await;
                }
            }
            Ok(next)
        }
    }

    /// Ends a connection whose client may still be sending (a refused head, a body left unread): the
    /// write side is shut, then what comes is read and dropped for a while. Closing with unread bytes
    /// would make the kernel reset the connection, and the client could lose the answer just sent.
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let mut left = LINGER_BYTES;
        let drain = std::future::poll_fn(|cx| {
            while left > 0 {
                let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
                let mut read = ReadBuf::uninit(&mut stack);
                match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                    Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                        left = left.saturating_sub(read.filled().len());
                    }
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(())
        });
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// Answers a head that could not be read (400 or 431) and ends the connection.
    async fn refuse(&mut self, e: HeadError) -> Result<(), ConnError> {
        let mut out = Vec::with_capacity(128);
        head::write_response_head(
            &mut out,
            e.status(),
            &http::HeaderMap::new(),
            BodyOut::Length(0),
            false,
            false,
        );
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        self.linger().await;
        Err(ConnError::BadRequest(e.status()))
    }
}

/// Gathers what `body` has ready into `out` after the head; `Ok(true)` once the body ended.
fn gather<B>(
    mut body: Pin<&mut B>,
    out: &mut Vec<u8>,
    kind: BodyOut,
    sent: &mut u64,
) -> Result<bool, ConnError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // A body that is not ready registers this waker and is polled again by `write_body`, with the
    // connection's.
    let mut cx = Context::from_waker(Waker::noop());
    while out.len() < WRITE_CHUNK {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(None) => return Ok(true),
            Poll::Ready(Some(Ok(frame))) => {
                // Trailers are not sent.
                if let Ok(data) = frame.into_data() {
                    push_data(out, &data, kind, sent);
                }
            }
            Poll::Ready(Some(Err(e))) => return Err(ConnError::ResponseBody(e.into())),
            Poll::Pending => return Ok(false),
        }
    }
    Ok(false)
}

fn push_data(out: &mut Vec<u8>, data: &[u8], kind: BodyOut, sent: &mut u64) {
    if data.is_empty() {
        return;
    }
    *sent += data.len() as u64;
    if kind == BodyOut::Chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// Writes the rest of a body that was not ready at once, in `WRITE_CHUNK` pieces.
async fn write_body<I, B>(
    io: &mut AnswerIo<I>,
    out: &mut Vec<u8>,
    mut body: Pin<&mut B>,
    kind: BodyOut,
    sent: &mut u64,
) -> Result<(), ConnError>
where
    I: AsyncWrite + Unpin + 'static,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    loop {
        if out.len() >= WRITE_CHUNK {
            io.write_all(out).await?;
            out.clear();
        }
        // What is gathered goes out before the body is waited for: a body that streams (events sent
        // as they happen) reaches the client as it comes.
        // The frame's error is turned into ours at once: it need not be `Send` across the writes.
        let ready = body.as_mut().frame().now_or_never().map(frame_data);
        let data = match ready {
            Some(data) => data?,
            None => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    io.flush().await?;
                    out.clear();
                }
                frame_data(body.as_mut().frame().await)?
            }
        };
        let Some(data) = data else {
            return Ok(());
        };
        push_data(out, &data, kind, sent);
    }
}

/// A frame's data (empty for trailers, which are not sent); `None` at the body's end.
fn frame_data<E: Into<BoxError>>(
    frame: Option<Result<http_body::Frame<Bytes>, E>>,
) -> Result<Option<Bytes>, ConnError> {
    match frame {
        None => Ok(None),
        Some(Err(e)) => Err(ConnError::ResponseBody(e.into())),
        Some(Ok(frame)) => Ok(Some(frame.into_data().unwrap_or_default())),
    }
}

/// Ends a body: the last chunk, or a check that the body had its announced length.
fn finish_body(out: &mut Vec<u8>, kind: BodyOut, sent: u64) -> Result<(), ConnError> {
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
    /// A lean long-polling request the engine takes, its body's length (in the buffer), and whether
    /// the client keeps the connection.
    Lean(LeanCall, usize, bool),
    /// The client closed the connection, or the server is shutting down, between requests.
    Closed,
    TimedOut,
    Refused(HeadError),
    Failed(io::Error),
    NotReady(ConnError),
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

/// The TCP stream, when that is what `io` is.
fn into_tcp<I: 'static>(io: I) -> Result<TcpStream, I> {
    let mut slot = Some(io);
    if let Some(tcp) = (&mut slot as &mut dyn Any).downcast_mut::<Option<TcpStream>>()
        && let Some(tcp) = tcp.take()
    {
        return Ok(tcp);
    }
    Err(slot.expect("taken only when it is a TCP stream"))
}

/// The connection handed to the websocket transport: the TCP stream itself when that is what it is.
fn into_stream<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: I) -> Stream {
    match into_tcp(io) {
        Ok(tcp) => Stream::Tcp(std::sync::Arc::new(tcp)),
        Err(io) => Stream::Other(Box::new(io)),
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

#[cfg(test)]
mod tests {
    /// A connection's future lives as long as the connection, idle or not: what it holds is memory per
    /// connection (two per long-polling client). It was 1 992 B before its phases got futures of their
    /// own.
    #[tokio::test]
    async fn a_connections_future_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = crate::Io::new(Default::default());
        let f = crate::serve_connection(
            c,
            addr,
            io.service(),
            std::time::Duration::from_secs(1),
            std::future::pending(),
        );
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1024, "{size} B");
        // `ferrio serve`'s, which may move its connection.
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let f = crate::serve_tcp_connection(
            c,
            None,
            addr,
            io.service(),
            std::time::Duration::from_secs(1),
            std::future::pending(),
        );
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1024, "{size} B");
    }

    /// The header read timeout counts from the start of each head's wait: a keep-alive connection
    /// whose next request comes after most of a timeout is not cut at the first request's deadline,
    /// and is cut once its own wait runs out.
    #[tokio::test(start_paused = true)]
    async fn each_head_has_the_whole_header_read_timeout() {
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let timeout = Duration::from_secs(10);
        let (mut client, server) = tokio::io::duplex(4096);
        let served = tokio::spawn(crate::serve_connection(
            server,
            "127.0.0.1:1".parse().unwrap(),
            Follow,
            timeout,
            std::future::pending(),
        ));
        let start = tokio::time::Instant::now();
        let mut out = vec![0; 1024];
        for wait in [Duration::from_secs(7), Duration::from_secs(9)] {
            tokio::time::sleep(wait).await;
            client.write_all(REQ).await.unwrap();
            let n = client.read(&mut out).await.unwrap();
            assert!(out[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &out[..n]);
        }
        // 16 s in: both requests were served, past the first deadline (10 s). The third head's wait
        // began at 16 s and ends at 26 s.
        let r = served.await.unwrap();
        assert!(matches!(r, Err(super::ConnError::HeaderTimeout)), "{r:?}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(26) && took < Duration::from_secs(27),
            "{took:?}"
        );
    }

    /// Answers with the request's path; a request for `/follow` is answered as for a session of
    /// serving thread 2.
    #[derive(Clone)]
    struct Follow;

    impl tower_service::Service<http::Request<super::Body>> for Follow {
        type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<super::Body>) -> Self::Future {
            let path = req.uri().path().to_owned();
            let mut res = http::Response::new(http_body_util::Full::new(path.clone().into()));
            if path == "/follow" {
                res.extensions_mut()
                    .insert(crate::serving::FollowSession(2));
            }
            std::future::ready(Ok(res))
        }
    }

    /// A keep-alive connection that answered a request of another thread's session ends with
    /// `Moved` once the answer is out, handing on the stream and the next request already read; served
    /// again from there, it answers that request. `serve_connection` (which cannot move its connection)
    /// answers both in place, and a server shutting down ends it instead of moving it.
    #[tokio::test]
    async fn a_connection_follows_its_session_with_the_bytes_read_past_the_answer() {
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const TWO: &[u8] =
            b"GET /follow HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n";
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let t = Duration::from_secs(5);
        // The end of the first request.
        let end = TWO.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        fn answers(out: &[u8]) -> (usize, String) {
            let text = String::from_utf8_lossy(out).into_owned();
            (text.matches("HTTP/1.1 200").count(), text)
        }
        // Reads until `out` holds `n` answers.
        async fn read_answers(client: &mut tokio::net::TcpStream, out: &mut Vec<u8>, n: usize) {
            while answers(out).0 < n {
                let mut chunk = [0; 1024];
                let read = client.read(&mut chunk);
                let got = tokio::time::timeout(Duration::from_secs(5), read).await;
                let got = got.unwrap().unwrap();
                assert!(got > 0, "{}", answers(out).1);
                out.extend_from_slice(&chunk[..got]);
            }
        }

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        client.write_all(TWO).await.unwrap();
        let served =
            super::serve_tcp_connection(server, None, peer, Follow, t, std::future::pending());
        let moved = match tokio::time::timeout(t, served).await.unwrap().unwrap() {
            super::Served::Moved(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(moved.to, 2);
        assert_eq!(&moved.read[..], b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        let stream = tokio::net::TcpStream::from_std(moved.stream).unwrap();
        let resumed = tokio::spawn(super::serve_tcp_connection(
            stream,
            Some(moved.read),
            peer,
            Follow,
            t,
            std::future::pending(),
        ));
        let mut out = Vec::new();
        read_answers(&mut client, &mut out, 2).await;
        let text = answers(&out).1;
        assert!(
            text.find("/follow").unwrap() < text.find("/next").unwrap(),
            "{text}"
        );
        // Moved once, it moves no more: another thread's session is answered in place.
        client.write_all(&TWO[..end]).await.unwrap();
        read_answers(&mut client, &mut out, 3).await;
        client.shutdown().await.unwrap();
        let ended = tokio::time::timeout(t, resumed).await.unwrap().unwrap();
        assert!(matches!(ended, Ok(super::Served::Ended)), "{ended:?}");

        // A server shutting down ends the connection after the answer instead of moving it.
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        let first = bytes::Bytes::from_static(&TWO[..end]);
        // Comes at its second poll: after the connection waited for its first request.
        let mut polled = false;
        let shutdown = std::future::poll_fn(move |cx| {
            if std::mem::replace(&mut polled, true) {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        });
        let served = super::serve_tcp_connection(server, None, peer, Follow, t, shutdown);
        client.write_all(first.as_ref()).await.unwrap();
        let ended = tokio::time::timeout(t, served).await.unwrap();
        assert!(matches!(ended, Ok(super::Served::Ended)), "{ended:?}");
        let mut out = Vec::new();
        tokio::time::timeout(t, client.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answers(&out).0, 1, "{}", answers(&out).1);

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        let in_place = tokio::spawn(crate::serve_connection(
            server,
            peer,
            Follow,
            t,
            std::future::pending(),
        ));
        client.write_all(TWO).await.unwrap();
        client.shutdown().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(t, client.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answers(&out).0, 2, "{}", answers(&out).1);
        assert!(
            tokio::time::timeout(t, in_place)
                .await
                .unwrap()
                .unwrap()
                .is_ok()
        );
    }

    /// Pieces of requests and random bytes, in random order, on one connection whose client then
    /// stops sending: the connection ends (no hang, no panic) and whatever it wrote is HTTP answers.
    #[tokio::test(start_paused = true)]
    async fn any_bytes_end_the_connection() {
        use std::net::SocketAddr;
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const PIECES: &[&[u8]] = &[
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n",
            b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n",
            b"GET /elsewhere HTTP/1.0\r\n",
            b"Host: a\r\n",
            b"Content-Length: 5\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
            b"Expect: 100-continue\r\n",
            b"\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"40",
        ];
        let io = crate::Io::new(Default::default());
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut answered, mut ok) = (0, 0);
        for _ in 0..300 {
            let mut input = Vec::new();
            for _ in 0..(next() % 12) {
                if next() % 4 == 0 {
                    let n = (next() % 24) as usize;
                    input.extend((0..n).map(|_| next() as u8));
                } else {
                    input.extend_from_slice(PIECES[(next() as usize) % PIECES.len()]);
                }
            }
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let conn = tokio::spawn(crate::serve_connection(
                server,
                addr,
                io.service(),
                Duration::from_secs(1),
                std::future::pending(),
            ));
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut out = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut out));
            assert!(read.await.is_ok(), "no end for {input:?}");
            let ended = tokio::time::timeout(Duration::from_secs(60), conn).await;
            assert!(
                matches!(ended, Ok(Ok(_))),
                "the connection did not end for {input:?}"
            );
            assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 "), "{input:?}");
            let text = String::from_utf8_lossy(&out);
            answered += text.matches("HTTP/1.1 ").count();
            ok += text.matches("HTTP/1.1 200").count();
        }
        // The inputs reach past the head parser: requests are answered, a few with a 200 (a handshake).
        assert!(
            answered > 100 && ok > 0,
            "{answered} answers, {ok} of them 200"
        );
    }
}
