//! Mounting the engine: a tower `Service`/`Layer` for axum or hyper, and a one-line `listen`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::engine::{Engine, RemoteAddr};
use crate::serve_client::ClientFiles;
use crate::transport::delivery::{AnswerIo, AnswerWatch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers requests under the engine's path and passes every other request to `inner`.
#[derive(Debug, Clone)]
pub struct EngineService<S> {
    engine: Engine,
    inner: S,
    client_files: Option<ClientFiles>,
}

/// Wraps a service in an [`EngineService`].
#[derive(Debug, Clone)]
pub struct EngineLayer {
    engine: Engine,
    client_files: Option<ClientFiles>,
}

impl EngineLayer {
    /// A layer that mounts `engine` in front of the services it wraps.
    pub fn new(engine: Engine) -> Self {
        EngineLayer {
            engine,
            client_files: None,
        }
    }

    /// Also serves the client bundle (`serve_client`).
    pub fn with_client_files(mut self, files: ClientFiles) -> Self {
        self.client_files = Some(files);
        self
    }
}

impl<S> tower_layer::Layer<S> for EngineLayer {
    type Service = EngineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EngineService {
            engine: self.engine.clone(),
            inner,
            client_files: self.client_files.clone(),
        }
    }
}

impl<S> EngineService<S> {
    /// `engine` in front of `inner`.
    pub fn new(engine: Engine, inner: S) -> Self {
        EngineService {
            engine,
            inner,
            client_files: None,
        }
    }

    /// Also serves the client bundle (`serve_client`).
    pub fn with_client_files(mut self, files: ClientFiles) -> Self {
        self.client_files = Some(files);
        self
    }
}

/// A service answering 404 to everything: what the engine falls back to when served alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> tower_service::Service<Request<B>> for NotFound {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *res.status_mut() = StatusCode::NOT_FOUND;
        std::future::ready(Ok(res))
    }
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for EngineService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Either<Full<Bytes>, ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(files) = &self.client_files
            && req.method() == http::Method::GET
            && let Some(name) = files.matches(req.uri().path())
        {
            let res = files.respond(name, req.headers());
            return Box::pin(async move { Ok(res.map(|b| Either::Left(Full::new(b)))) });
        }
        if self.engine.matches(req.uri().path()) {
            let engine = self.engine.clone();
            let (mut parts, body) = req.into_parts();
            Box::pin(async move {
                Ok(engine
                    .handle_parts(&mut parts, body)
                    .await
                    .map(Either::Left))
            })
        } else {
            // The clone that was polled ready serves this call; the fresh clone waits for the next one.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            Box::pin(async move { Ok(inner.call(req).await?.map(Either::Right)) })
        }
    }
}

/// Serves `service` over HTTP/1.1 (with upgrades) on `listener` until the process ends.
pub async fn serve<S, ResBody>(listener: TcpListener, service: S) -> std::io::Result<()>
where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    serve_until(listener, service, std::future::pending()).await
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting connections (those
/// already accepted go on until their peers or the application close them).
pub async fn serve_until<S, ResBody>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let served = serve_connection(
                stream,
                peer,
                service,
                DEFAULT_HEADER_READ_TIMEOUT,
                std::future::pending(),
            );
            if let Err(e) = served.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// How long [`serve_until`] gives a client to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 (with upgrades) on one accepted connection, as [`serve_until`] does for each: for
/// accept loops of their own (TLS, connection limits). `peer` reaches the engine as [`RemoteAddr`].
/// Clients that take longer than `header_read_timeout` to send a request's headers are cut off. When
/// `shutdown` completes, the connection ends after the request in progress (an idle keep-alive
/// connection at once); a connection upgraded to websocket is no longer this function's.
pub async fn serve_connection<I, S, ResBody>(
    io: I,
    peer: SocketAddr,
    service: S,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    // Lets a polling answer find out whether it reached the client (see `transport::delivery`).
    let watch = AnswerWatch::default();
    let io = AnswerIo::new(io, watch.clone());
    let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(RemoteAddr(peer));
        // Only a GET can be a poll whose answer is watched; every extension costs an allocation.
        if req.method() == http::Method::GET {
            req.extensions_mut().insert(watch.clone());
        }
        let mut service = service.clone();
        async move {
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            service.call(req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(ConnTimer::default())
        // Slow-header clients are cut off instead of holding a connection forever.
        .header_read_timeout(header_read_timeout)
        .max_buf_size(64 * 1024)
        .writev(false)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut shutdown = std::pin::pin!(shutdown);
    // `shutdown` is polled only when its own waker fired, not at every wake of the connection (each
    // read, each answer): a watch or a notify re-registers its waiter under a lock at every poll.
    let gate = Arc::new(ShutdownGate {
        woken: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    let shutdown_waker = Waker::from(gate.clone());
    let shut = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        gate.task.register(cx.waker());
        if gate.woken.swap(false, Ordering::AcqRel)
            && shutdown
                .as_mut()
                .poll(&mut Context::from_waker(&shutdown_waker))
                .is_ready()
        {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    if let Some(r) = shut {
        return r;
    }
    conn.as_mut().graceful_shutdown();
    conn.await
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

/// hyper's timer for one connection. hyper times the read of each request's head (`header_read_timeout`)
/// with a new sleep, dropped once the head is read: with tokio's timer that is a registration with the
/// runtime's timer wheel and a removal for every request. Here the sleeps of a connection share one
/// runtime timer, which a later deadline only pushes back (an atomic store while it is registered).
#[derive(Clone, Default)]
struct ConnTimer(Arc<SharedSleep>);

/// The runtime timer of a connection, made when first needed.
type SharedSleep = parking_lot::Mutex<Option<Pin<Box<tokio::time::Sleep>>>>;

impl hyper::rt::Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // Only one sleep at a time can own the shared timer (hyper's HTTP/1 server has only the one);
        // another while it lives gets a timer of its own.
        let shared = (Arc::strong_count(&self.0) == 1).then(|| self.0.clone());
        Box::pin(ConnSleep {
            shared,
            own: None,
            deadline: deadline.into(),
        })
    }
}

/// A sleep of a [`ConnTimer`].
struct ConnSleep {
    /// The connection's timer, when this sleep owns it.
    shared: Option<Arc<SharedSleep>>,
    /// Otherwise a timer of its own, made when first polled.
    own: Option<Pin<Box<tokio::time::Sleep>>>,
    deadline: tokio::time::Instant,
}

impl Future for ConnSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.deadline;
        let arm = |slot: &mut Option<Pin<Box<tokio::time::Sleep>>>, cx: &mut Context<'_>| {
            let sleep = match slot {
                Some(sleep) => {
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    sleep
                }
                None => slot.insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            sleep.as_mut().poll(cx)
        };
        match &this.shared {
            Some(shared) => arm(&mut shared.lock(), cx),
            None => arm(&mut this.own, cx),
        }
    }
}

impl hyper::rt::Sleep for ConnSleep {}

/// Binds `addr` and serves the engine alone (404 for every other path).
pub async fn listen(addr: impl tokio::net::ToSocketAddrs, engine: Engine) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener, EngineService::new(engine, NotFound)).await
}

/// The address a listener bound, for servers started on port 0.
pub fn local_addr(listener: &TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}

/// Closes every session of `engine` gracefully, as a draining server does: what each has queued is
/// still delivered, then a close packet (polling) or a close frame (websocket) ends it. Clients see a
/// transport close, which they answer by reconnecting, while a Socket.IO disconnect packet would tell
/// them to stay away. Sessions leave [`Engine::clients_count`] as they finish; returns how many were open.
pub fn close_sessions_gracefully(engine: &Engine) -> usize {
    let all: Vec<_> = engine
        .inner
        .sessions
        .iter()
        .map(|s| s.value().clone())
        .collect();
    for s in &all {
        s.close();
    }
    all.len()
}
