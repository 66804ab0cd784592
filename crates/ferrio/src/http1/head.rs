//! Request heads in, response heads out.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use super::body::{Chunked, Framing};

/// More header lines than this is a 431, as in hyper and Node.
pub(crate) const MAX_HEADERS: usize = 100;
/// A head longer than this is a 431.
pub(crate) const MAX_HEAD_LEN: usize = 64 * 1024;

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Malformed: 400.
    Bad,
    /// Too many header lines or too long: 431.
    TooLarge,
}

impl HeadError {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            HeadError::Bad => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

/// A parsed request head.
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// How the body is delimited; `None`: no body.
    pub(crate) framing: Option<Framing>,
    /// The client wants the connection kept after the answer.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue`.
    pub(crate) expects_continue: bool,
    /// The request asks to switch protocols.
    pub(crate) upgrade: bool,
}

/// Takes a complete head off the front of `buf` and parses it; `None` while the head is incomplete.
/// The URI and the header values are slices of the head's bytes, not copies.
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    // Offsets into the head (start, end) of the path and of each header's name and value, so that the
    // parser's borrow of `buf` ends before the head is split off it.
    let mut at = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let (len, method, path, count, version) = {
        // Left uninitialized: the parser writes the slots it fills (a hundred initialized headers
        // cost more to set up than a short head costs to parse).
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_LEN => {
                return Err(HeadError::TooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Bad),
        };
        let base = buf.as_ptr() as usize;
        let off = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
            .map_err(|_| HeadError::Bad)?;
        let path = req.path.unwrap_or_default().as_bytes();
        let path = (off(path), off(path) + path.len() as u32);
        for (slot, h) in at.iter_mut().zip(req.headers.iter()) {
            let (n, v) = (off(h.name.as_bytes()), off(h.value));
            *slot = (n, n + h.name.len() as u32, v, v + h.value.len() as u32);
        }
        (len, method, path, req.headers.len(), req.version)
    };
    let bytes = buf.split_to(len).freeze();
    let range = |(a, b): (u32, u32)| a as usize..b as usize;
    let uri = Uri::from_maybe_shared(bytes.slice(range(path))).map_err(|_| HeadError::Bad)?;
    let version = match version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(count);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut upgrade_token = false;
    let mut expects_continue = false;
    for &(n0, n1, v0, v1) in &at[..count] {
        let raw = &bytes[range((v0, v1))];
        let name = HeaderName::from_bytes(&bytes[range((n0, n1))]).map_err(|_| HeadError::Bad)?;
        if name == header::CONTENT_LENGTH {
            let n = parse_length(raw).ok_or(HeadError::Bad)?;
            // Repeated lengths must agree (RFC 9112, 6.3).
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Bad);
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Only chunked is understood, and it must come last.
            chunked = last_token(raw).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                return Err(HeadError::Bad);
            }
        } else if name == header::CONNECTION {
            for token in raw.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name == header::EXPECT {
            expects_continue = raw.eq_ignore_ascii_case(b"100-continue");
        }
        let value = HeaderValue::from_maybe_shared(bytes.slice(range((v0, v1))))
            .map_err(|_| HeadError::Bad)?;
        headers.append(name, value);
    }
    // Both framings at once is how requests are smuggled past proxies: refused (RFC 9112, 6.1).
    if chunked && (length.is_some() || version == Version::HTTP_10) {
        return Err(HeadError::Bad);
    }
    let framing = if chunked {
        Some(Framing::Chunked(Chunked::Size(0, 0)))
    } else {
        length.filter(|&n| n > 0).map(Framing::Length)
    };
    let upgrade = upgrade_token && headers.contains_key(header::UPGRADE);
    Ok(Some(Head {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive: if version == Version::HTTP_10 {
            keep_alive && !close
        } else {
            !close
        },
        expects_continue: expects_continue && version == Version::HTTP_11,
        upgrade,
    }))
}

/// Whether `bytes` hold the end of a head (an empty line), as far as they go.
pub(crate) fn has_end(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes)
        .any(|i| matches!(&bytes[i + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn last_token(v: &[u8]) -> Option<&[u8]> {
    v.split(|&b| b == b',').next_back().map(<[u8]>::trim_ascii)
}

/// How a response's body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyOut {
    /// No body (1xx, 204, 304, or a HEAD request's answer).
    None,
    /// This many bytes, announced with `Content-Length`.
    Length(u64),
    /// Chunked transfer coding (HTTP/1.1).
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    UntilClose,
}

/// Writes a response head into `out`. Framing headers the service set are replaced by the framing
/// the connection uses; `Connection` is written from `keep_alive` (except for a switch of protocols,
/// whose headers are the service's).
pub(crate) fn write_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    body: BodyOut,
    keep_alive: bool,
    http10: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut has_date = false;
    for (name, value) in headers {
        if !switching
            && (name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
                || name == header::CONNECTION)
        {
            continue;
        }
        has_date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        with_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    match body {
        BodyOut::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyOut::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyOut::None | BodyOut::UntilClose => {}
    }
    if !switching {
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` header's value, formatted once a second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let s = httpdate::fmt_http_date(now);
            if s.len() == text.len() {
                text.copy_from_slice(s.as_bytes());
                *at = secs;
            }
        }
        f(&text[..]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, HeadError> {
        let mut buf = BytesMut::from(format!("{text}NEXT").as_bytes());
        let head = parse(&mut buf).map(|h| h.expect("complete"));
        if head.is_ok() {
            assert_eq!(&buf[..], b"NEXT", "only the head is taken");
        }
        head
    }

    fn head_len(text: &[u8]) -> Result<Option<usize>, HeadError> {
        let mut buf = BytesMut::from(text);
        Ok(parse(&mut buf)?.map(|_| text.len() - buf.len()))
    }

    #[test]
    fn heads_parse_with_their_framing_and_connection() {
        let h = head("POST /engine.io/?EIO=4&sid=x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-A: 1\r\nX-A: 2\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path(), "/engine.io/");
        assert_eq!(h.uri.query(), Some("EIO=4&sid=x"));
        assert_eq!(h.framing, Some(Framing::Length(12)));
        assert!(h.keep_alive && !h.upgrade && !h.expects_continue);
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);

        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.framing, None);
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(h.keep_alive);
        let h = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h =
            head("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
        assert!(h.upgrade);
        let h = head(
            "PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.framing, Some(Framing::Chunked(Chunked::Size(0, 0))));
        assert!(h.expects_continue);
        let h = head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(h.framing, None);
    }

    #[test]
    fn bad_heads_are_refused() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(head(text).err(), Some(HeadError::Bad), "{text:?}");
        }
        assert_eq!(
            head_len(b"GET / HTTP/1.1\r\nA B: c\r\n\r\n"),
            Err(HeadError::Bad)
        );
        assert_eq!(head_len(b"G\0T / HTTP/1.1\r\n\r\n"), Err(HeadError::Bad));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            head_len(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(HeadError::TooLarge)
        );
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_LEN));
        assert_eq!(head_len(long.as_bytes()), Err(HeadError::TooLarge));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn response_heads_carry_the_connections_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        let mut out = Vec::new();
        write_response_head(
            &mut out,
            StatusCode::OK,
            &headers,
            BodyOut::Length(5),
            false,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: "),
            "{text}"
        );
        assert!(
            text.ends_with(" GMT\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
        assert!(!text.contains("999"));

        let mut out = Vec::new();
        write_response_head(
            &mut out,
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            BodyOut::Chunked,
            true,
            true,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"),
            "{text}"
        );
    }

    proptest::proptest! {
        /// Any bytes: a head, `None` (incomplete), or a refusal; never a panic, and a head takes only
        /// bytes that were there.
        #[test]
        fn any_bytes_parse_or_are_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut buf = BytesMut::from(&bytes[..]);
            if let Ok(Some(_)) = parse(&mut buf) {
                proptest::prop_assert!(buf.len() < bytes.len());
            }
        }

        /// Heads made of arbitrary header values: parsed, or refused, never a panic.
        #[test]
        fn heads_with_any_values_are_safe(
            values in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..12),
        ) {
            let mut text = b"POST /engine.io/?EIO=4 HTTP/1.1\r\n".to_vec();
            for (i, v) in values.iter().enumerate() {
                let name: &[u8] = match i % 4 {
                    0 => b"content-length",
                    1 => b"transfer-encoding",
                    2 => b"connection",
                    _ => b"x-any",
                };
                text.extend_from_slice(name);
                text.extend_from_slice(b": ");
                text.extend_from_slice(v);
                text.extend_from_slice(b"\r\n");
            }
            text.extend_from_slice(b"\r\n");
            let mut buf = BytesMut::from(&text[..]);
            let _ = parse(&mut buf);
        }
    }
}
