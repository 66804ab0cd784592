//! WebSocket: direct sessions, and the probe that upgrades a polling session.
//!
//! Each websocket session has one reader (the task that owns the upgraded connection) and one writer
//! task that owns the session's outbox and batches what is queued into one flush.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use ferrio_proto::engine::{CloseReason, Frame, PacketType, ProbeOutcome, decode_text};
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::engine::{Outbox, RequestError, Socket};

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Frames written per flush at most, so one busy session cannot hold its writer's buffer forever.
const MAX_BATCH: usize = 256;

/// Checks the RFC 6455 handshake headers; returns the `Sec-WebSocket-Accept` value.
pub(crate) fn check_upgrade_request(parts: &Parts) -> Result<String, RequestError> {
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
    Ok(derive_accept_key(key.as_bytes()))
}

/// The `101 Switching Protocols` answer.
pub(crate) fn switching_protocols(accept: &str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

fn ws_config(max_message: usize) -> WebSocketConfig {
    // The message limit is max_http_buffer_size, checked by the frame header before any allocation.
    // An 8 KiB read buffer instead of the 128 KiB default: the default is zero-filled before every read and
    // costs ~135 KiB per idle connection (measured in bench/ws-choice).
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

async fn accept(on_upgrade: OnUpgrade, max_message: usize) -> Option<Ws> {
    let upgraded = on_upgrade.await.ok()?;
    Some(
        WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config(max_message)),
        )
        .await,
    )
}

/// Runs a session that was opened directly over websocket.
pub(crate) fn spawn_session(socket: Arc<Socket>, parts: &mut Parts) {
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    tokio::spawn(async move {
        let max = socket.engine.config.max_http_buffer_size;
        let ws = match on_upgrade {
            Some(u) => accept(u, max).await,
            None => None,
        };
        match ws {
            Some(ws) => run(socket, ws).await,
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
            && let Some(mut ws) = accept(u, 1024).await
        {
            let _ = ws.close(None).await;
        }
    });
}

/// Runs the probe websocket of an upgrade: `2probe` → `3probe`, then `5` moves the session onto it.
pub(crate) fn spawn_probe(socket: Arc<Socket>, parts: &mut Parts, cancel: CancellationToken) {
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    tokio::spawn(async move {
        let max = socket.engine.config.max_http_buffer_size;
        let ws = match on_upgrade {
            Some(u) => accept(u, max).await,
            None => None,
        };
        let Some(mut ws) = ws else {
            socket.abort_upgrade();
            return;
        };
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                // The upgrade timed out, or the session closed.
                _ = cancel.cancelled() => break,
            };
            let packet = match msg {
                Some(Ok(Message::Text(t))) => match decode_text(to_byte_string(t)) {
                    Ok(p) => p,
                    Err(_) => break,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                _ => break,
            };
            match socket.on_probe_packet(&packet) {
                ProbeOutcome::SendProbePong => {
                    if ws.send(Message::text("3probe")).await.is_err() {
                        break;
                    }
                }
                ProbeOutcome::Upgraded => return crate::telemetry::upgraded(run(socket, ws)).await,
                ProbeOutcome::Abort => break,
            }
        }
        socket.abort_upgrade();
        let _ = ws.close(None).await;
    });
}

fn to_byte_string(t: Utf8Bytes) -> ByteString {
    #[allow(unsafe_code)]
    // SAFETY: tungstenite validated the text frame, and Utf8Bytes holds valid UTF-8 by construction:
    // checking it again cost a second pass over every incoming message.
    unsafe {
        ByteString::from_bytes_unchecked(Bytes::from(t))
    }
}

/// Reads packets until the session ends, with a writer task beside it.
async fn run(socket: Arc<Socket>, ws: Ws) {
    let Some(outbox) = socket.acquire_outbox().await else {
        return;
    };
    let (sink, mut stream) = ws.split();
    let close_code = Arc::new(AtomicU16::new(CloseCode::Normal.into()));
    tokio::spawn(write_loop(socket.clone(), sink, outbox, close_code.clone()));
    let mut closed = CancelWatch::new(&socket.closed);
    loop {
        // The session's end is checked first: a closed session stops reading at once.
        let msg = std::future::poll_fn(|cx| {
            if closed.is_cancelled() {
                return Poll::Ready(None);
            }
            if let Poll::Ready(m) = stream.poll_next_unpin(cx) {
                return Poll::Ready(Some(m));
            }
            if closed.poll_cancelled(cx) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let Some(msg) = msg else { return };
        match msg {
            Some(Ok(Message::Text(t))) => match socket.wire().decode_text(to_byte_string(t)) {
                Ok(p) => socket.on_packet(p).await,
                Err(_) => {
                    socket.close_with(CloseReason::ParseError);
                    return;
                }
            },
            Some(Ok(Message::Binary(b))) => match socket.wire().decode_binary(b) {
                Ok(p) => socket.on_packet(p).await,
                Err(_) => {
                    socket.close_with(CloseReason::ParseError);
                    return;
                }
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => {
                socket.close_with(CloseReason::TransportClose);
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(sid = socket.id(), error = %e, "websocket error");
                close_code.store(error_close_code(&e).into(), Ordering::Relaxed);
                socket.close_with(CloseReason::TransportError);
                return;
            }
        }
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

/// The close code that tells the peer what it did wrong (RFC 6455 section 7.4.1).
fn error_close_code(e: &WsError) -> CloseCode {
    match e {
        WsError::Protocol(_) => CloseCode::Protocol,
        WsError::Utf8(_) => CloseCode::Invalid,
        WsError::Capacity(_) => CloseCode::Size,
        _ => CloseCode::Error,
    }
}

fn to_message(frame: Frame) -> Message {
    match frame {
        #[allow(unsafe_code)]
        // SAFETY: a ByteString holds valid UTF-8 by construction, which is all Utf8Bytes requires.
        Frame::Text(s) => Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(s.into_bytes()) }),
        Frame::Binary(b) => Message::Binary(b),
    }
}

/// The session's only writer while it runs on websocket: takes what is queued, writes it in batches.
async fn write_loop(
    socket: Arc<Socket>,
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut outbox: Outbox,
    close_code: Arc<AtomicU16>,
) {
    let mut graceful_close = false;
    let mut closed = CancelWatch::new(&socket.closed);
    let write = async {
        while let Some(first) = outbox.recv().await {
            let mut next = Some(first);
            let mut n = 0;
            while let Some(f) = next.take() {
                if f.packet_type() == PacketType::Close {
                    graceful_close = true;
                    break;
                }
                sink.feed(to_message(socket.wire().websocket_frame(f)))
                    .await?;
                n += 1;
                if n < MAX_BATCH {
                    next = outbox.try_recv();
                }
            }
            sink.flush().await?;
            if graceful_close {
                break;
            }
        }
        Ok::<_, WsError>(())
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
    let close = CloseFrame {
        code: close_code.load(Ordering::Relaxed).into(),
        reason: "".into(),
    };
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        sink.send(Message::Close(Some(close))),
    )
    .await;
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
        assert_eq!(
            check_upgrade_request(&parts(GOOD)).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
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
                check_upgrade_request(&parts(&c)),
                Err(RequestError::BadRequest),
                "{c:?}"
            );
        }
    }
}
