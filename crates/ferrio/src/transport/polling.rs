//! HTTP long-polling: a GET waits for packets (the session's writer while it lasts), a POST delivers them.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use ferrio_proto::engine::{CloseReason, Frame, PacketType, Protocol};
use flate2::Compression;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use super::delivery::AnswerWatch;
use super::payload::{PollPayload, decode_post, mark_binary};
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
        let release = socket.poll_release.notified();
        let mut release = std::pin::pin!(release);
        // Registered before the check, so a release between the two is not missed.
        release.as_mut().enable();
        let first = if socket.poll_must_not_wait() {
            Some(outbox.try_recv().unwrap_or_else(Frame::noop))
        } else if let Some(f) = outbox.try_recv() {
            Some(f)
        } else {
            // About to wait, maybe for a whole ping interval.
            own_request_bytes(parts);
            tokio::select! {
                biased;
                f = outbox.recv() => f,
                () = socket.closed() => None,
                _ = release => Some(outbox.try_recv().unwrap_or_else(Frame::noop)),
            }
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
    let body = payload.finish(socket);
    let binary = body.binary;
    let body = body.body;
    let mut res = match config
        .http_compression
        .filter(|c| body.len() >= c.threshold)
    {
        Some(_) => compress(body, parts),
        None => payload_response(body),
    };
    mark_binary(&mut res, binary);
    apply_headers_hooks(config, res.headers_mut(), parts, false);
    // Served by `serve_connection`: the answer counts as delivered once written to a live client.
    if let Some(watch) = parts.extensions.get::<AnswerWatch>() {
        watch.arm(socket.clone(), res.body().len());
    }
    Ok(res)
}

/// Copies the request's URI and headers out of hyper's read buffer, of which they are slices: a poll
/// that waits would otherwise pin that buffer (8 KiB or more) for as long as it waits, while hyper
/// allocates another one to watch the connection. Done only when the poll is about to wait, so a busy
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

/// Compresses with gzip or deflate when the client accepts one of them.
fn compress(body: Bytes, parts: &Parts) -> Response<Bytes> {
    let Some(encoding) = parts
        .headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| pick_encoding(v.as_bytes()))
    else {
        return payload_response(body);
    };
    let compressed = match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 2),
                Compression::fast(),
            );
            e.write_all(&body).and_then(|_| e.finish())
        }
        _ => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(body.len() / 2),
                Compression::fast(),
            );
            e.write_all(&body).and_then(|_| e.finish())
        }
    };
    match compressed {
        Ok(out) => {
            let mut res = payload_response(Bytes::from(out));
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            res
        }
        Err(_) => payload_response(body),
    }
}

/// The preferred encoding the client accepts: gzip, then deflate; `q=0` refuses one.
fn pick_encoding(accept: &[u8]) -> Option<&'static str> {
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

    let config = &socket.engine.config;
    // In v4 binary data travels base64-encoded in a text payload; a binary body is a broken client.
    // A v3 client sends binary payloads that way.
    let octet_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
    if octet_stream && socket.protocol() == Protocol::V4 {
        socket.close_with(CloseReason::TransportError);
        return Err(RequestError::BadRequest);
    }
    let limit = config.max_http_buffer_size;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        socket.close_with(CloseReason::TransportError);
        return Err(RequestError::PayloadTooLarge);
    }

    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    let mut body = std::pin::pin!(body);
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(config.body_read_timeout, body.frame()) => f,
            () = socket.closed() => return Err(RequestError::BadRequest),
        };
        let frame = match frame {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                socket.close_with(CloseReason::TransportError);
                return Err(RequestError::BadRequest);
            }
        };
        if let Ok(mut data) = frame.into_data() {
            use bytes::Buf;
            if buf.len() + data.remaining() > limit {
                socket.close_with(CloseReason::TransportError);
                return Err(RequestError::PayloadTooLarge);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                buf.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }

    let packets = match decode_post(socket, buf.freeze(), octet_stream) {
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

    let mut res = Response::new(Bytes::from_static(b"ok"));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    apply_headers_hooks(config, res.headers_mut(), parts, false);
    Ok(res)
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
