//! HTTP long-polling: a GET waits for packets (the session's writer while it lasts), a POST delivers them.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use ferrio_proto::engine::{CloseReason, Frame, PacketType, Protocol};
use flate2::Compression;
use http::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

use super::delivery::AnswerWatch;
use super::payload::{PollBody, PollPayload, decode_post};
use crate::engine::{RequestError, Socket, apply_headers_hooks};

/// A `200` carrying a polling payload.
pub(crate) fn payload_response(body: Bytes) -> Response<Bytes> {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Holds the session's outbox for the duration of one GET. If the request is dropped before it has its
/// answer (the client went away), the session ends: its queued packets must not vanish silently.
struct PollGuard<'a> {
    socket: &'a Arc<Socket>,
    outbox: Option<crate::engine::Outbox>,
    answered: bool,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if let Some(outbox) = self.outbox.take() {
            self.socket.return_outbox(outbox);
        }
        if !self.answered {
            tracing::debug!(sid = self.socket.id(), "poll connection closed prematurely");
            self.socket.close_with(CloseReason::TransportError);
        }
    }
}

/// A GET: waits until something is queued, then answers with as many queued frames as fit in
/// `max_http_buffer_size`.
pub(crate) async fn poll(
    socket: &Arc<Socket>,
    parts: &mut Parts,
) -> Result<Response<Bytes>, RequestError> {
    let config = &socket.engine.config;
    // The encoding the client accepts, read before a wait that releases the request's headers.
    let mut accepted: Option<Option<&'static str>> = None;
    let body = take_payload(socket, || {
        // About to wait, maybe for a whole ping interval: the request must not pin the HTTP server's
        // read buffer meanwhile (see `own_request_bytes`). Without a headers hook nothing after the
        // wait reads the request but compression, so its bytes are dropped instead of copied.
        if config.headers.is_none() {
            accepted = Some(accepted_encoding(config, parts));
            release_request_bytes(parts);
        } else {
            own_request_bytes(parts);
        }
    })
    .await?;
    let compress = compresses(config, &body);
    let encoding = match compress {
        true => accepted.unwrap_or_else(|| accepted_encoding(config, parts)),
        false => None,
    };
    let answer = Answer::payload(body, encoding);
    let len = answer.body.len();
    let mut res = answer.into_response();
    apply_headers_hooks(config, res.headers_mut(), parts, false);
    // Served by `serve_connection`: the answer counts as delivered once written to a live client.
    if let Some(watch) = parts.extensions.get::<AnswerWatch>() {
        watch.arm(socket.clone(), len);
    }
    Ok(res)
}

/// A lean GET (see `Engine::lean_call`): [`poll`] for a request whose head the HTTP server kept only
/// `accepted` of, the encoding the client takes.
pub(crate) async fn lean_poll(
    socket: &Arc<Socket>,
    accepted: Option<&'static str>,
) -> Result<Answer, RequestError> {
    let body = take_payload(socket, || {}).await?;
    let encoding = accepted.filter(|_| compresses(&socket.engine.config, &body));
    Ok(Answer::payload(body, encoding))
}

/// Whether a poll answer of this size is compressed when the client takes it.
fn compresses(config: &crate::engine::EngineConfig, body: &PollBody) -> bool {
    config
        .http_compression
        .is_some_and(|c| body.body.len() >= c.threshold)
}

/// A `200` of the polling transport before it is a response (a poll's payload, or a POST's "ok"): its
/// body, and the headers that describe it.
pub(crate) struct Answer {
    pub(crate) body: Bytes,
    content_type: &'static str,
    /// `Cache-Control: no-store` (a payload).
    no_store: bool,
    /// `Content-Encoding` (and `Vary: Accept-Encoding`).
    encoding: Option<&'static str>,
}

impl Answer {
    /// A poll's payload, compressed with `encoding` when given.
    fn payload(body: PollBody, encoding: Option<&'static str>) -> Self {
        let content_type = if body.binary {
            "application/octet-stream"
        } else {
            "text/plain; charset=UTF-8"
        };
        let (body, encoding) = match encoding {
            Some(e) => match compress(&body.body, e) {
                Some(c) => (c, Some(e)),
                None => (body.body, None),
            },
            None => (body.body, None),
        };
        Answer {
            body,
            content_type,
            no_store: true,
            encoding,
        }
    }

    /// A POST's: its packets were taken.
    fn posted() -> Self {
        Answer {
            body: Bytes::from_static(b"ok"),
            content_type: "text/html",
            no_store: false,
            encoding: None,
        }
    }

    /// The header lines, in the order they are written.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            Some(("content-type", self.content_type)),
            self.no_store.then_some(("cache-control", "no-store")),
            self.encoding.map(|e| ("content-encoding", e)),
            self.encoding.map(|_| ("vary", "Accept-Encoding")),
        ]
        .into_iter()
        .flatten()
    }

    fn into_response(self) -> Response<Bytes> {
        let mut res = Response::new(Bytes::new());
        let h = res.headers_mut();
        for (name, value) in self.headers() {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        *res.body_mut() = self.body;
        res
    }
}

/// Takes the session's outbox for one GET and waits until something is queued: as many queued frames
/// as fit in `max_http_buffer_size`. `before_wait` runs once, if the poll is about to wait.
async fn take_payload(
    socket: &Arc<Socket>,
    before_wait: impl FnOnce(),
) -> Result<PollBody, RequestError> {
    let Some(outbox) = socket.take_outbox() else {
        // Two GETs at once for one session: the client is broken or hostile.
        socket.close_with(CloseReason::TransportError);
        return Err(RequestError::BadRequest);
    };
    let mut guard = PollGuard {
        socket,
        outbox: Some(outbox),
        answered: false,
    };
    let config = &socket.engine.config;
    let mut payload = PollPayload::new(socket, config.max_http_buffer_size);
    let mut delivered_close = false;
    {
        let outbox = guard.outbox.as_mut().expect("set above");
        let first = if socket.poll_must_not_wait() {
            Some(outbox.try_recv().unwrap_or_else(Frame::noop))
        } else if let Some(f) = outbox.try_recv() {
            Some(f)
        } else {
            before_wait();
            // One waker, the queue's: the session's end and a release (upgrade under way) wake the
            // writer too, so the wait registers nowhere else. Each is checked after the waker is
            // registered, so one happening in between is not missed.
            std::future::poll_fn(|cx| {
                if let Poll::Ready(f) = outbox.poll_recv(cx) {
                    return Poll::Ready(f.map(|(f, _)| f));
                }
                if socket.is_finished() {
                    return Poll::Ready(None);
                }
                if socket.poll_must_not_wait() {
                    return Poll::Ready(Some(outbox.try_recv().unwrap_or_else(Frame::noop)));
                }
                Poll::Pending
            })
            .await
        };
        match first {
            Some(f) => {
                delivered_close = f.packet_type() == PacketType::Close;
                payload.push(&f);
                while !delivered_close && let Some(f) = outbox.try_recv() {
                    // The close marker goes out alone, in the next poll: a client reads the close of a
                    // payload before the packets next to it, and would report "transport close" instead
                    // of the disconnect packet the server sent just before.
                    if !payload.fits(&f) || f.packet_type() == PacketType::Close {
                        outbox.put_back(f);
                        break;
                    }
                    payload.push(&f);
                }
            }
            None => {
                // The session ended while the poll waited: a noop when the client closed it, a close
                // packet when the server did.
                let f = match socket.close_reason() {
                    Some(CloseReason::TransportClose) => Frame::noop(),
                    _ => Frame::close(),
                };
                payload.push(&f);
            }
        }
    }
    guard.answered = true;
    drop(guard);
    if delivered_close {
        socket.close_delivered();
    }
    Ok(payload.finish(socket))
}

/// The encoding a poll answer may be compressed with: none when compression is off.
fn accepted_encoding(config: &crate::engine::EngineConfig, parts: &Parts) -> Option<&'static str> {
    config.http_compression?;
    parts
        .headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| pick_encoding(v.as_bytes()))
}

/// Drops the request's URI and headers, slices of the HTTP server's read buffer, for a poll about to wait when
/// nothing will read them again: cheaper than copying them (`own_request_bytes`), which a headers hook
/// needs. The URI left in their place is `/`; only an error answer logs it, and a poll that waited
/// answers with a payload.
fn release_request_bytes(parts: &mut Parts) {
    parts.headers = HeaderMap::new();
    parts.uri = http::Uri::default();
}

/// Copies the request's URI and headers out of the HTTP server's read buffer, of which they are slices:
/// a poll that waits would otherwise pin that buffer (the request's bytes; 8 KiB or more under hyper,
/// which allocates another one to watch the connection) for as long as it waits. Done only when the poll is about to wait, so a busy
/// session's polls do not pay for it.
fn own_request_bytes(parts: &mut Parts) {
    let shared = std::mem::take(&mut parts.headers);
    let mut owned = HeaderMap::with_capacity(shared.len());
    let mut name: Option<HeaderName> = None;
    for (k, v) in shared {
        // `None`: another value of the previous name.
        if let Some(k) = k {
            // Standard names are static; others hold bytes of their own once copied.
            name = HeaderName::from_bytes(k.as_str().as_bytes()).ok();
        }
        if let (Some(k), Ok(mut copy)) = (&name, HeaderValue::from_bytes(v.as_bytes())) {
            copy.set_sensitive(v.is_sensitive());
            owned.append(k.clone(), copy);
        }
    }
    parts.headers = owned;
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
}

/// Compresses with `encoding` (gzip or deflate, see `pick_encoding`).
/// `body` compressed with `encoding` (gzip or deflate); `None` if that failed.
fn compress(body: &[u8], encoding: &'static str) -> Option<Bytes> {
    let compressed = match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 2),
                Compression::fast(),
            );
            e.write_all(body).and_then(|_| e.finish())
        }
        _ => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(body.len() / 2),
                Compression::fast(),
            );
            e.write_all(body).and_then(|_| e.finish())
        }
    };
    compressed.ok().map(Bytes::from)
}

pub(crate) fn pick_encoding(accept: &[u8]) -> Option<&'static str> {
    let accept = std::str::from_utf8(accept).ok()?;
    let accepted = |name: &str| {
        accept.split(',').any(|item| {
            let mut it = item.split(';');
            let token = it.next().unwrap_or("").trim();
            let refused = it.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (token.eq_ignore_ascii_case(name) || token == "*") && !refused
        })
    };
    ["gzip", "deflate"].into_iter().find(|e| accepted(e))
}

/// A POST: reads the payload (never more than `max_http_buffer_size` bytes) and hands its packets to the
/// session in order.
pub(crate) async fn post<B>(
    socket: &Arc<Socket>,
    parts: &Parts,
    body: B,
) -> Result<Response<Bytes>, RequestError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let octet_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = socket.engine.config.max_http_buffer_size;
    let answer = take_post(socket, octet_stream, declared, async {
        read_body(socket, body, declared, limit)
            .await
            .map(BytesMut::freeze)
    })
    .await?;
    let mut res = answer.into_response();
    apply_headers_hooks(&socket.engine.config, res.headers_mut(), parts, false);
    Ok(res)
}

/// A lean POST (see `Engine::lean_call`), whose body came whole with its head: [`post`] without the
/// request.
pub(crate) async fn lean_post(
    socket: &Arc<Socket>,
    octet_stream: bool,
    body: Bytes,
) -> Result<Answer, RequestError> {
    let declared = Some(body.len() as u64);
    take_post(socket, octet_stream, declared, async { Ok(body) }).await
}

/// Hands the packets of a POST to the session (`read` reads its body), and answers it.
async fn take_post(
    socket: &Arc<Socket>,
    octet_stream: bool,
    declared: Option<u64>,
    read: impl Future<Output = Result<Bytes, BodyError>>,
) -> Result<Answer, RequestError> {
    if socket.posting.swap(true, Ordering::AcqRel) {
        socket.close_with(CloseReason::TransportError);
        return Err(RequestError::BadRequest);
    }
    struct Posting<'a>(&'a Socket);
    impl Drop for Posting<'_> {
        fn drop(&mut self) {
            self.0.posting.store(false, Ordering::Release);
        }
    }
    let _posting = Posting(socket);

    if octet_stream && socket.protocol() == Protocol::V4 {
        socket.close_with(CloseReason::TransportError);
        return Err(RequestError::BadRequest);
    }
    let limit = socket.engine.config.max_http_buffer_size;
    if declared.is_some_and(|n| n > limit as u64) {
        socket.close_with(CloseReason::TransportError);
        return Err(RequestError::PayloadTooLarge);
    }

    let buf = match read.await {
        Ok(buf) => buf,
        Err(BodyError::SessionClosed) => return Err(RequestError::BadRequest),
        Err(BodyError::TooLarge) => {
            socket.close_with(CloseReason::TransportError);
            return Err(RequestError::PayloadTooLarge);
        }
        Err(BodyError::Failed) => {
            socket.close_with(CloseReason::TransportError);
            return Err(RequestError::BadRequest);
        }
    };

    let packets = match decode_post(socket, buf, octet_stream) {
        Ok(p) => p,
        Err(_) => {
            socket.close_with(CloseReason::ParseError);
            return Err(RequestError::BadRequest);
        }
    };
    for packet in packets {
        match packet {
            Ok(p) => socket.on_packet(p).await,
            Err(_) => {
                socket.close_with(CloseReason::ParseError);
                return Err(RequestError::BadRequest);
            }
        }
    }
    Ok(Answer::posted())
}

/// Why a POST body was not read whole.
enum BodyError {
    /// The session closed meanwhile.
    SessionClosed,
    /// Over `max_http_buffer_size`.
    TooLarge,
    /// The connection failed, or no frame came within `body_read_timeout`.
    Failed,
}

/// Reads a POST body of at most `limit` bytes. Each frame must come within `body_read_timeout`, and the
/// read stops when the session closes. The timer and the close watch are set up only once the body has
/// to be waited for: the HTTP server has usually read a small body with the request's head, and arming a timer
/// (and waiting for the session's end) for it would cost more than reading it.
async fn read_body<B>(
    socket: &Socket,
    body: B,
    declared: Option<u64>,
    limit: usize,
) -> Result<BytesMut, BodyError>
where
    B: http_body::Body,
{
    use bytes::Buf;

    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    let mut body = std::pin::pin!(body);
    let timeout = socket.engine.config.body_read_timeout;
    // Both boxed, and made only when the body is waited for: inline they would grow every POST's
    // future, which the service boxes.
    // The deadline of the frame being waited for; `None` while none is waited for.
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut closed: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    std::future::poll_fn(|cx| {
        loop {
            match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // A frame came: the next one gets a full `body_read_timeout` of its own.
                    deadline = None;
                    if let Ok(mut data) = frame.into_data() {
                        if buf.len() + data.remaining() > limit {
                            return Poll::Ready(Err(BodyError::TooLarge));
                        }
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(BodyError::Failed)),
                Poll::Pending => break,
            }
        }
        let closed = closed.get_or_insert_with(|| Box::pin(socket.closed()));
        if closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(BodyError::SessionClosed));
        }
        let deadline = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(BodyError::Failed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::{own_request_bytes, pick_encoding};

    #[test]
    fn request_bytes_are_copied_whole() {
        let (mut parts, ()) = http::Request::builder()
            .uri("/socket.io/?EIO=4&transport=polling&sid=abc")
            .header("accept-encoding", "gzip")
            .header("x-custom", "a")
            .header("x-custom", "b")
            .header("cookie", "io=abc")
            .body(())
            .unwrap()
            .into_parts();
        let before = parts.clone();
        own_request_bytes(&mut parts);
        assert_eq!(parts.headers, before.headers);
        assert_eq!(parts.uri, before.uri);
        let custom: Vec<_> = parts.headers.get_all("x-custom").iter().collect();
        assert_eq!(custom, ["a", "b"]);
    }

    #[test]
    fn accept_encoding() {
        assert_eq!(pick_encoding(b"gzip, deflate, br"), Some("gzip"));
        assert_eq!(pick_encoding(b"deflate"), Some("deflate"));
        assert_eq!(pick_encoding(b"gzip;q=0, deflate"), Some("deflate"));
        assert_eq!(pick_encoding(b"br"), None);
        assert_eq!(pick_encoding(b"*"), Some("gzip"));
        assert_eq!(pick_encoding(b"identity"), None);
    }
}
