//! Mounting the engine: a tower `Service`/`Layer` for axum or hyper, and a one-line `listen`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tokio::net::TcpListener;

use crate::engine::Engine;
pub use crate::http1::{
    Body as RequestBody, BodyError as RequestBodyError, ConnError, MovedConnection, Served,
    serve_connection, serve_tcp_connection, serve_tcp_connection_with_engine,
};
use crate::serve_client::ClientFiles;

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
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResBody>>
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
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    // The engine's service alone (`Io::serve`, `listen`): no layer of the caller's sees the requests,
    // so the engine may answer its sessions' long-polling requests itself.
    let engine = (&service as &dyn std::any::Any)
        .downcast_ref::<EngineService<NotFound>>()
        .map(|s| s.engine.clone());
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
        let served = crate::http1::serve_engine_connection(
            stream,
            peer,
            service.clone(),
            engine.clone(),
            DEFAULT_HEADER_READ_TIMEOUT,
            std::future::pending(),
        );
        // A combinator rather than an async block: awaiting the connection's future from a block
        // would store it twice (as the block's capture and as the awaited value), for the
        // connection's whole life.
        tokio::spawn(served.map(|r| {
            if let Err(e) = r {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        }));
    }
}

/// How long [`serve_until`] gives a client to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
