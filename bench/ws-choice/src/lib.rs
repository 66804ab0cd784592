//! Shared bits of the two echo servers: the hyper 1 accept loop, so both
//! libraries sit behind exactly the same HTTP stack and runtime.
use std::{convert::Infallible, future::Future};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

/// Max message (and frame) size enforced by both servers, per the brief.
pub const MAX_MSG: usize = 1_000_000;

pub type Resp = Response<Empty<Bytes>>;

/// Runs an HTTP/1.1 server on 127.0.0.1:`port` on a current-thread runtime.
/// Current-thread because run.sh pins the server to one core anyway; a
/// multi-thread runtime on one core only adds work-stealing overhead that
/// would blur the library comparison.
pub fn serve<F, Fut>(port: u16, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Resp, Infallible>> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        println!("listening on 127.0.0.1:{port}");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            // Small request/response messages: Nagle would add 40 ms stalls.
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                // with_upgrades(): keep the connection alive and hand the raw
                // IO to hyper::upgrade::on once the 101 has been written.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handler))
                    .with_upgrades()
                    .await;
            });
        }
    });
}

/// Plain-status reply for rejected upgrade requests.
pub fn status(code: u16) -> Resp {
    Response::builder().status(code).body(Empty::new()).unwrap()
}

/// `srv PORT [--map-errors]`. With --map-errors the echo loop turns a read
/// error into the RFC 6455 close code itself (what the ferrio shell would have
/// to do); without it we see the library's own behaviour.
pub fn args() -> (u16, bool) {
    let a: Vec<String> = std::env::args().collect();
    let port = a.get(1).and_then(|p| p.parse().ok()).unwrap_or(9001);
    (port, a.iter().any(|x| x == "--map-errors"))
}
