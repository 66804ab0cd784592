//! What `ferrio serve` adds around the Socket.IO service to run in production: its own accept loop
//! (TLS, header read timeout), a limit on connected clients, `/healthz`, and the drain on SIGTERM.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ferrio::engine::Engine;
use futures_util::FutureExt as _;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The path of the health endpoint.
pub const HEALTH_PATH: &str = "/healthz";

/// State shared by the accept loop, the gate and the drain.
#[derive(Debug)]
pub struct Ops {
    engine: Engine,
    /// Most clients (Engine.IO sessions) at once; `None`: no limit.
    max_connections: Option<usize>,
    /// Handshakes admitted but not answered yet: their sessions are not counted by the engine yet.
    admitting: AtomicUsize,
    draining: watch::Sender<bool>,
    /// Open HTTP connections (a connection upgraded to websocket counts as a session instead).
    open: AtomicUsize,
    closed: Notify,
    refused: AtomicBool,
}

impl Ops {
    /// State for a server whose sessions `engine` holds.
    pub fn new(engine: Engine, max_connections: Option<usize>) -> Arc<Ops> {
        Arc::new(Ops {
            engine,
            max_connections,
            admitting: AtomicUsize::new(0),
            draining: watch::channel(false).0,
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            refused: AtomicBool::new(false),
        })
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// For a connection accepted now: completes when the drain begins, or never when it already has
    /// (such a connection must still read its one request; the gate makes it the last). For one that
    /// `moved` to another serving thread between two requests, at once when the drain has begun: it
    /// is an idle keep-alive connection, which ends then.
    fn drain_started(&self, moved: bool) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        let already = *rx.borrow_and_update();
        async move {
            if already && !moved {
                std::future::pending::<()>().await;
            }
            let _ = rx.wait_for(|d| *d).await;
        }
    }

    /// Admits a new session unless draining or full; the permit is held until the handshake is answered.
    fn admit(self: &Arc<Self>) -> Result<Admission, &'static str> {
        if self.is_draining() {
            return Err("draining");
        }
        let admitting = self.admitting.fetch_add(1, Ordering::AcqRel);
        let permit = Admission(self.clone());
        if let Some(max) = self.max_connections
            && self.engine.clients_count() + admitting >= max
        {
            // Log the first refusal of a burst only: a full server refuses many.
            if !self.refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(max, "connection limit reached: refusing new clients");
            }
            return Err("too many connections");
        }
        self.refused.store(false, Ordering::Relaxed);
        Ok(permit)
    }

    /// Stops admitting clients, closes every session so that its client reconnects (elsewhere, once
    /// the health check has taken this node out), then waits until sessions and HTTP connections are
    /// gone or `deadline` passes. Returns whether everything was gone in time.
    pub async fn drain(&self, deadline: Duration) -> bool {
        self.draining.send_replace(true);
        let sessions = ferrio::close_sessions_gracefully(&self.engine);
        tracing::info!(
            sessions,
            deadline_ms = deadline.as_millis() as u64,
            "draining"
        );
        let all_gone = async {
            loop {
                let notified = self.closed.notified();
                if self.engine.clients_count() == 0 && self.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                // Sessions end without telling: look again now and then.
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        let done = tokio::time::timeout(deadline, all_gone).await.is_ok();
        let left = self.engine.clients_count();
        if done {
            tracing::info!("drained");
        } else {
            tracing::warn!(
                sessions = left,
                connections = self.open.load(Ordering::Acquire),
                "drain deadline passed"
            );
        }
        done
    }
}

/// A handshake in progress, counted against the limit until it is answered.
struct Admission(Arc<Ops>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An open HTTP connection, counted while it lives.
struct OpenConnection(Arc<Ops>);

impl OpenConnection {
    fn new(ops: &Arc<Ops>) -> Self {
        ops.open.fetch_add(1, Ordering::AcqRel);
        OpenConnection(ops.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.notify_waiters();
    }
}

/// What `ferrio serve` answers a connection's requests with: the bounds its accept loops need.
pub trait ConnService<ResBody>:
    tower::Service<
        Request<ferrio::RequestBody>,
        Response = Response<ResBody>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + 'static
{
}

impl<S, ResBody> ConnService<ResBody> for S where
    S: tower::Service<
            Request<ferrio::RequestBody>,
            Response = Response<ResBody>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + 'static
{
}

/// The body of an answer a [`ConnService`] gives.
pub trait AnswerBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> AnswerBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// Accepts connections on `listener` until `stop` completes, each served (after a TLS handshake when
/// `tls` is set) by `service` through [`ferrio::serve_connection`]. Accepting goes on while draining, so
/// that health checks read 503 instead of a refused connection; the gate refuses new clients then.
pub async fn accept_loop<S, ResBody>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    ops: Arc<Ops>,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
) where
    S: ConnService<ResBody>,
    ResBody: AnswerBody,
{
    let mut stop = std::pin::pin!(stop);
    let resume = resumer(service.clone(), header_read_timeout);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => return,
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
        let open = OpenConnection::new(&ops);
        let service = service.clone();
        match tls.clone() {
            // Spawned as the connection's own future with a combinator, not inside an async block
            // that also holds the TLS branch: every plain connection would keep room for a TLS stream
            // (and a second copy of its own future) for its whole life.
            None => {
                let start = Start::New(resume.clone());
                serve_plain(stream, start, peer, service, header_read_timeout, open);
            }
            Some(acceptor) => {
                // As for a plain connection (`serve_plain`).
                let shutdown = ops.drain_started(false);
                tokio::spawn(async move {
                    let _open = open;
                    // A client that stalls its TLS handshake is cut off like one that stalls its
                    // headers.
                    let stream =
                        match tokio::time::timeout(header_read_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let served = ferrio::serve_connection(
                        stream,
                        peer,
                        service,
                        header_read_timeout,
                        shutdown,
                    );
                    if let Err(e) = served.await {
                        tracing::trace!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
}

/// Connections that followed a long-polling session to another serving thread (`/metrics`:
/// `ferrio_connections_moved_total`).
pub(crate) static MOVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Resumes a connection that moved to another serving thread (`serve_plain`), with the service of
/// the accept loop that first served it: shared by that loop's connections, so that each holds a
/// pointer to it rather than a second copy of the service.
type Resume =
    Arc<dyn Fn(ferrio::MovedConnection, std::net::SocketAddr, OpenConnection) + Send + Sync>;

/// `resume` for the connections of an accept loop.
fn resumer<S, ResBody>(service: S, header_read_timeout: Duration) -> Resume
where
    S: ConnService<ResBody>,
    ResBody: AnswerBody,
{
    // Locked only to be cloned, at each move: a service need not be `Sync`.
    let service = std::sync::Mutex::new(service);
    Arc::new(move |moved: ferrio::MovedConnection, peer, open| {
        let Some(rt) = crate::serve::serving_runtime(moved.to) else {
            return;
        };
        MOVED.fetch_add(1, Ordering::Relaxed);
        let service = service
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        rt.spawn(async move {
            match tokio::net::TcpStream::from_std(moved.stream) {
                Ok(stream) => {
                    let start = Start::Moved(moved.read);
                    serve_plain(stream, start, peer, service, header_read_timeout, open);
                }
                Err(e) => tracing::debug!(%peer, error = %e, "a moved connection failed"),
            }
        });
    })
}

/// How a plain connection comes to `serve_plain`.
enum Start {
    /// Accepted here: it may follow a long-polling session once, through its accept loop's `Resume`.
    New(Resume),
    /// Moved here, with what its client sent past its last request: it stays.
    Moved(Bytes),
}

/// Serves a plain TCP connection on this thread's runtime until it ends, or until it follows a
/// long-polling session to the serving thread that session belongs to: it goes on there, with what
/// its client sent past the last request, and still counts as one open connection.
fn serve_plain<S, ResBody>(
    stream: tokio::net::TcpStream,
    start: Start,
    peer: std::net::SocketAddr,
    service: S,
    header_read_timeout: Duration,
    open: OpenConnection,
) where
    S: ConnService<ResBody>,
    ResBody: AnswerBody,
{
    let (resume, moved) = match start {
        Start::New(resume) => (Some(resume), None),
        Start::Moved(read) => (None, Some(read)),
    };
    // Connections open before the drain end after their current request; those accepted during
    // it close after each answer (the gate sets `Connection: close`); one that moved here between
    // two requests ends at once if the drain has begun.
    let shutdown = open.0.drain_started(moved.is_some());
    // The engine answers its sessions' long-polling requests itself: the gate has nothing to do with
    // them (they are not handshakes, nor its health check), except to close each connection accepted
    // during a drain after its answer, which it is left to do.
    let engine = (!open.0.is_draining()).then(|| open.0.engine.clone());
    let served = ferrio::serve_tcp_connection_with_engine(
        stream,
        moved,
        peer,
        service,
        engine,
        header_read_timeout,
        shutdown,
    );
    tokio::spawn(served.map(move |r| match r {
        Ok(ferrio::Served::Ended) => {}
        Ok(ferrio::Served::Moved(moved)) => {
            if let Some(resume) = resume {
                resume(moved, peer, open);
            }
        }
        Err(e) => tracing::trace!(%peer, error = %e, "connection ended with an error"),
    }));
}

/// The service in front of everything: `/healthz`, the connection limit and the drain.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    ops: Arc<Ops>,
}

impl<S> Gate<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, ops: Arc<Ops>) -> Self {
        Gate { inner, ops }
    }
}

/// Whether a request under the engine's path opens a new session (no `sid`: a handshake).
fn is_handshake(query: Option<&str>) -> bool {
    // Over bytes rather than with `split`, whose char searchers cost more than this for every request.
    !query
        .unwrap_or("")
        .as_bytes()
        .split(|&b| b == b'&')
        .any(|pair| pair == b"sid" || pair.starts_with(b"sid="))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl<S, B, ResBody> tower::Service<Request<B>> for Gate<S>
where
    S: tower::Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Unpin + Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Either<Full<Bytes>, ResBody>>;
    type Error = S::Error;
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let draining = self.ops.is_draining();
        if req.uri().path() == HEALTH_PATH {
            let res = if draining {
                plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                plain(StatusCode::OK, "ok\n")
            };
            return GateFuture::answer(res, draining);
        }
        let mut admission = None;
        if self.ops.engine.matches(req.uri().path()) && is_handshake(req.uri().query()) {
            match self.ops.admit() {
                Ok(permit) => admission = Some(permit),
                Err(why) => {
                    let mut res = plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        if draining {
                            "draining: connect to another server\n"
                        } else {
                            "too many connections\n"
                        },
                    );
                    // Official clients retry with their own backoff; this tells proxies the same.
                    res.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    tracing::debug!(reason = why, "handshake refused");
                    return GateFuture::answer(res, draining);
                }
            }
        }
        // Called now, on the instance that was polled ready: no clone of it for a later call, and no
        // box around its future (every request goes through here).
        GateFuture {
            state: GateState::Inner {
                future: self.inner.call(req),
                admission,
            },
            draining,
        }
    }
}

/// The answer of a [`Gate`]: its own, or the inner service's.
pub struct GateFuture<F> {
    state: GateState<F>,
    draining: bool,
}

enum GateState<F> {
    Answer(Option<Response<Full<Bytes>>>),
    Inner {
        future: F,
        /// Held until the handshake is answered.
        admission: Option<Admission>,
    },
}

impl<F> GateFuture<F> {
    fn answer(res: Response<Full<Bytes>>, draining: bool) -> Self {
        GateFuture {
            state: GateState::Answer(Some(res)),
            draining,
        }
    }
}

impl<F, ResBody, E> Future for GateFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>> + Unpin,
{
    type Output = Result<Response<Either<Full<Bytes>, ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut res = match &mut this.state {
            GateState::Answer(res) => res
                .take()
                .expect("GateFuture polled after completion")
                .map(Either::Left),
            GateState::Inner { future, admission } => {
                let res = std::task::ready!(Pin::new(future).poll(cx))?;
                admission.take();
                res.map(Either::Right)
            }
        };
        if this.draining {
            // Every connection made during the drain is for one answer only.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, LogFormat, ServeOptions};

    #[test]
    fn production_options_layer_like_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferrio.toml");
        std::fs::write(
            &file,
            r#"
tls_cert = "/etc/ferrio/cert.pem"
max_connections = 100
header_read_timeout = 5000
log_format = "json"

[profile.staging]
drain_timeout = 1000
log_format = "text"
"#,
        )
        .unwrap();
        // The key from a flag completes the pair the file started.
        let flags = ServeOptions {
            tls_key: Some("/etc/ferrio/key.pem".into()),
            max_connections: Some(7),
            ..Default::default()
        };
        let r = flags.resolve(Some(&file), Some("staging")).unwrap();
        assert_eq!(r.tls_cert.as_deref(), Some("/etc/ferrio/cert.pem".as_ref()));
        assert_eq!(r.max_connections, Some(7), "flags win");
        assert_eq!(r.header_read_timeout, Some(5000));
        assert_eq!(r.drain_timeout, Some(1000));
        assert_eq!(r.log_format, Some(LogFormat::Text), "the profile wins");
        // A certificate without its key is refused, wherever each comes from.
        assert!(matches!(
            ServeOptions::default().resolve(Some(&file), None),
            Err(ConfigError::Tls)
        ));
        std::fs::write(&file, "log_format = \"yaml\"\n").unwrap();
        assert!(matches!(
            ServeOptions::default().resolve(Some(&file), None),
            Err(ConfigError::Parse(..))
        ));
    }

    #[test]
    fn handshakes_have_no_sid() {
        assert!(is_handshake(None));
        assert!(is_handshake(Some("EIO=4&transport=polling&t=x")));
        assert!(is_handshake(Some("EIO=4&sidx=1")));
        assert!(!is_handshake(Some("EIO=4&transport=polling&sid=abc")));
        assert!(!is_handshake(Some("sid=abc&EIO=4")));
        assert!(!is_handshake(Some("sid")));
    }
}
