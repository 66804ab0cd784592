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
/// The longest header name `http::HeaderName` takes.
const MAX_NAME_LEN: usize = (1 << 16) - 1;

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

/// A request that may be answered without the `http` types (see [`parse`]): a GET without a body, or
/// a POST whose whole body came with its head, over HTTP/1.1, without an upgrade, `Expect` or chunked
/// body, whose target holds only the bytes of a plain path and query.
pub(crate) struct Lean<'a> {
    pub(crate) post: bool,
    /// The path and the query.
    pub(crate) target: &'a str,
    pub(crate) origin: Option<&'a [u8]>,
    pub(crate) accept_encoding: Option<&'a [u8]>,
    /// `Content-Type: application/octet-stream`.
    pub(crate) octet_stream: bool,
}

/// A complete head: the `http` types for the service, or what `lean` took from a lean request.
// Made once per request and matched at once: boxing the head would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed<T> {
    Head(Head),
    Lean {
        taken: T,
        /// The body's length (a POST's, all in the buffer after the head; 0 for a GET).
        body_len: usize,
        keep_alive: bool,
    },
}

/// What the header lines say about the request's framing and connection, read off the raw lines.
#[derive(Default, Clone, Copy)]
struct Framed {
    length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    upgrade_token: bool,
    upgrade: bool,
    expects_continue: bool,
}

/// `Framed`, and the few fields a lean request is read by, as slices of the head.
#[derive(Default)]
struct Fields<'a> {
    framed: Framed,
    origin: Option<&'a [u8]>,
    origins: usize,
    accept_encoding: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn read(headers: &[httparse::Header<'a>]) -> Result<Self, HeadError> {
        let mut f = Fields::default();
        for h in headers {
            let (name, raw) = (h.name.as_bytes(), h.value);
            // As `HeaderName` refuses it, whichever way the request goes.
            if name.len() > MAX_NAME_LEN {
                return Err(HeadError::Bad);
            }
            // By length first: most lines are none of these, and are passed over at one compare.
            let is = |n: &str| name.len() == n.len() && name.eq_ignore_ascii_case(n.as_bytes());
            if is("content-length") {
                let n = parse_length(raw).ok_or(HeadError::Bad)?;
                // Repeated lengths must agree (RFC 9112, 6.3).
                if f.framed.length.is_some_and(|l| l != n) {
                    return Err(HeadError::Bad);
                }
                f.framed.length = Some(n);
            } else if is("transfer-encoding") {
                // Only chunked is understood, and it must come last.
                f.framed.chunked =
                    last_token(raw).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
                if !f.framed.chunked {
                    return Err(HeadError::Bad);
                }
            } else if is("connection") {
                for token in raw.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    f.framed.close |= token.eq_ignore_ascii_case(b"close");
                    f.framed.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                    f.framed.upgrade_token |= token.eq_ignore_ascii_case(b"upgrade");
                }
            } else if is("expect") {
                f.framed.expects_continue = raw.eq_ignore_ascii_case(b"100-continue");
            } else if is("upgrade") {
                f.framed.upgrade = true;
            } else if is("origin") {
                f.origins += 1;
                f.origin = Some(raw);
            } else if is("accept-encoding") {
                f.accept_encoding.get_or_insert(raw);
            } else if is("content-type") {
                // The first, as a service reads it.
                f.content_type.get_or_insert(raw);
            }
        }
        Ok(f)
    }
}

/// Whether a request target is a plain path and query, which `http::Uri` takes as it is: so that
/// answering it without `http::Uri` cannot take a target that would be refused. The parser let through
/// only visible ASCII and bytes above it; of those, `Uri` refuses `<`, `>`, a `"` in the query and a
/// `` ` `` in the path, cuts a fragment at `#`, and checks what is not ASCII.
fn plain_target(target: &str) -> bool {
    let b = target.as_bytes();
    b.first() == Some(&b'/')
        && b.len() < usize::from(u16::MAX - 1)
        && target.is_ascii()
        && memchr::memchr3(b'#', b'<', b'>', b).is_none()
        && memchr::memchr2(b'"', b'`', b).is_none()
}

/// Takes a complete head off the front of `buf` and parses it; `None` while the head is incomplete.
/// The URI and the header values are slices of the head's bytes, not copies.
///
/// A lean request (see [`Lean`]) is first offered to `lean`: what it takes is returned instead of a
/// [`Head`], without the `http` types a service needs, and the head's bytes are dropped.
pub(crate) fn parse<T>(
    buf: &mut BytesMut,
    lean: impl FnOnce(&Lean<'_>) -> Option<T>,
) -> Result<Option<Parsed<T>>, HeadError> {
    // Offsets into the head (start, end) of the path and of each header's name and value, so that the
    // parser's borrow of `buf` ends before the head is split off it. Set only for a head made into
    // `http` types.
    let mut at: [(u32, u32, u32, u32); MAX_HEADERS];
    let (len, method, path, count, version, framed) = {
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
        let fields = Fields::read(req.headers)?;
        let target = req.path.unwrap_or_default();
        let raw_method = req.method.unwrap_or_default();
        let post = raw_method == "POST";
        let f = fields.framed;
        let body_len = f.length.unwrap_or(0);
        let is_lean = (post || raw_method == "GET")
            && req.version == Some(1)
            && !f.chunked
            && !f.upgrade
            && !f.upgrade_token
            && !f.expects_continue
            // More than one is the service's to judge.
            && fields.origins <= 1
            && if post {
                body_len <= (buf.len() - len) as u64
            } else {
                body_len == 0
            }
            && plain_target(target);
        let taken = if is_lean {
            lean(&Lean {
                post,
                target,
                origin: fields.origin,
                accept_encoding: fields.accept_encoding,
                octet_stream: fields.content_type == Some(&b"application/octet-stream"[..]),
            })
        } else {
            None
        };
        if let Some(taken) = taken {
            let keep_alive = !f.close;
            bytes::Buf::advance(buf, len);
            return Ok(Some(Parsed::Lean {
                taken,
                body_len: body_len as usize,
                keep_alive,
            }));
        }
        let base = buf.as_ptr() as usize;
        let off = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let method = Method::from_bytes(raw_method.as_bytes()).map_err(|_| HeadError::Bad)?;
        let path = target.as_bytes();
        let path = (off(path), off(path) + path.len() as u32);
        at = [(0, 0, 0, 0); MAX_HEADERS];
        for (slot, h) in at.iter_mut().zip(req.headers.iter()) {
            let (n, v) = (off(h.name.as_bytes()), off(h.value));
            *slot = (n, n + h.name.len() as u32, v, v + h.value.len() as u32);
        }
        (len, method, path, req.headers.len(), req.version, f)
    };
    let Framed {
        length,
        chunked,
        close,
        keep_alive,
        ..
    } = framed;
    let bytes = buf.split_to(len).freeze();
    let range = |(a, b): (u32, u32)| a as usize..b as usize;
    let uri = Uri::from_maybe_shared(bytes.slice(range(path))).map_err(|_| HeadError::Bad)?;
    let version = match version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(count);
    for &(n0, n1, v0, v1) in &at[..count] {
        let name = HeaderName::from_bytes(&bytes[range((n0, n1))]).map_err(|_| HeadError::Bad)?;
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
    Ok(Some(Parsed::Head(Head {
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
        expects_continue: framed.expects_continue && version == Version::HTTP_11,
        upgrade: framed.upgrade_token && framed.upgrade,
    })))
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
        field(out, name.as_str(), value.as_bytes());
    }
    end_head(
        out,
        has_date,
        body,
        (!switching).then_some((keep_alive, http10)),
    );
}

/// Writes the head of a `200` answer to a lean request (see [`Lean`]): `fields`, then what every head
/// ends with, as [`write_response_head`] writes it.
pub(crate) fn write_lean_head<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    len: usize,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    for (name, value) in fields {
        field(out, name, value.as_bytes());
    }
    end_head(
        out,
        false,
        BodyOut::Length(len as u64),
        Some((keep_alive, false)),
    );
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The date (unless the service set one), the framing, and `Connection` (`keep_alive, http10`; none
/// for a switch of protocols, whose headers are the service's).
fn end_head(out: &mut Vec<u8>, has_date: bool, body: BodyOut, connection: Option<(bool, bool)>) {
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
    match connection {
        Some((false, _)) => out.extend_from_slice(b"connection: close\r\n"),
        Some((true, true)) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
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

    fn no_lean(_: &Lean<'_>) -> Option<()> {
        None
    }

    fn head(text: &str) -> Result<Head, HeadError> {
        let mut buf = BytesMut::from(format!("{text}NEXT").as_bytes());
        let head = parse(&mut buf, no_lean).map(|h| match h.expect("complete") {
            Parsed::Head(h) => h,
            Parsed::Lean { .. } => unreachable!("nothing is taken lean"),
        });
        if head.is_ok() {
            assert_eq!(&buf[..], b"NEXT", "only the head is taken");
        }
        head
    }

    fn head_len(text: &[u8]) -> Result<Option<usize>, HeadError> {
        let mut buf = BytesMut::from(text);
        Ok(parse(&mut buf, no_lean)?.map(|_| text.len() - buf.len()))
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
        // A name longer than `HeaderName` takes, in a head that came whole with its last read.
        let name = "a".repeat(MAX_NAME_LEN + 1);
        let text = format!("GET /e/?sid=a HTTP/1.1\r\n{name}: v\r\n\r\n");
        assert_eq!(head_len(text.as_bytes()), Err(HeadError::Bad));
        let text = format!("GET /e/?sid=a HTTP/1.1\r\n{}: v\r\n\r\n", &name[1..]);
        assert_eq!(head_len(text.as_bytes()), Ok(Some(text.len())));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_LEN));
        assert_eq!(head_len(long.as_bytes()), Err(HeadError::TooLarge));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    /// What `parse` offered to `lean`, owned.
    #[derive(Debug, PartialEq)]
    struct Offered {
        post: bool,
        target: String,
        origin: Option<Vec<u8>>,
        accept_encoding: Option<Vec<u8>>,
        octet_stream: bool,
    }

    /// Parses `text` with a `lean` that takes every request offered; returns what was offered, and the
    /// lean request's body length and keep-alive, or `None` when the head went to the service.
    fn lean(text: &str) -> (Option<Offered>, Option<(usize, bool)>, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        let mut offered = None;
        let parsed = parse(&mut buf, |l| {
            offered = Some(Offered {
                post: l.post,
                target: l.target.to_owned(),
                origin: l.origin.map(<[u8]>::to_vec),
                accept_encoding: l.accept_encoding.map(<[u8]>::to_vec),
                octet_stream: l.octet_stream,
            });
            Some(())
        });
        let taken = match parsed {
            Ok(Some(Parsed::Lean {
                taken: (),
                body_len,
                keep_alive,
            })) => Some((body_len, keep_alive)),
            // Made into the `http` types, or refused by them.
            Ok(Some(Parsed::Head(_))) | Err(_) => None,
            Ok(None) => panic!("{text:?}: incomplete"),
        };
        (offered, taken, buf)
    }

    #[test]
    fn lean_requests_are_offered_with_their_fields() {
        let (offered, taken, buf) = lean(
            "GET /e/?EIO=4&sid=a-b_c&transport=polling HTTP/1.1\r\nHost: x\r\nACCEPT-Encoding: gzip\r\n\
             Accept-Encoding: br\r\nOrigin: http://o\r\nConnection: close\r\n\r\nNEXT",
        );
        assert_eq!(
            offered,
            Some(Offered {
                post: false,
                target: "/e/?EIO=4&sid=a-b_c&transport=polling".into(),
                origin: Some(b"http://o".to_vec()),
                accept_encoding: Some(b"gzip".to_vec()),
                octet_stream: false,
            })
        );
        // The head's bytes are gone; what follows it stays.
        assert_eq!((taken, &buf[..]), (Some((0, false)), &b"NEXT"[..]));

        let (offered, taken, buf) = lean(
            "POST /e/?sid=a HTTP/1.1\r\ncontent-type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhelloNEXT",
        );
        let offered = offered.unwrap();
        assert!(offered.post && offered.octet_stream && offered.origin.is_none());
        assert_eq!((taken, &buf[..]), (Some((5, true)), &b"helloNEXT"[..]));
        // The first content type counts, as for a service reading the request's headers.
        let (offered, _, _) = lean(
            "POST /e/?sid=a HTTP/1.1\r\nContent-Type: text/plain\r\ncontent-type: application/octet-stream\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!offered.unwrap().octet_stream);

        // A request `lean` declines goes to the service, whole.
        let mut buf = BytesMut::from(&b"GET /e/?sid=a HTTP/1.1\r\n\r\n"[..]);
        let parsed = parse(&mut buf, |_| None::<()>);
        assert!(matches!(parsed, Ok(Some(Parsed::Head(h))) if h.uri.query() == Some("sid=a")));
    }

    #[test]
    fn only_plain_requests_are_offered_lean() {
        for text in [
            "GET /e/ HTTP/1.0\r\n\r\n",
            "PUT /e/ HTTP/1.1\r\n\r\n",
            "get /e/ HTTP/1.1\r\n\r\n",
            // A body not all read yet, or not delimited by its length.
            "POST /e/ HTTP/1.1\r\nContent-Length: 9\r\n\r\nhello",
            "POST /e/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /e/ HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            "POST /e/ HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok",
            "GET /e/ HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET /e/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET /e/ HTTP/1.1\r\nOrigin: a\r\nOrigin: b\r\n\r\n",
            // Targets beyond a plain path and query.
            "GET * HTTP/1.1\r\n\r\n",
            "GET http://a/e/ HTTP/1.1\r\n\r\n",
            "GET /e/?a=b#c HTTP/1.1\r\n\r\n",
            "GET /e/?a=<b> HTTP/1.1\r\n\r\n",
            "GET /e/`?a=b HTTP/1.1\r\n\r\n",
            "GET /e/?a=\"b\" HTTP/1.1\r\n\r\n",
            "GET /\u{e9}/?a=b HTTP/1.1\r\n\r\n",
        ] {
            let (offered, taken, _) = lean(text);
            assert_eq!((&offered, taken), (&None, None), "{text:?}");
        }
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
            if let Ok(Some(_)) = parse(&mut buf, no_lean) {
                proptest::prop_assert!(buf.len() < bytes.len());
            }
            // Taken lean: the head is gone, and the body is in what is left.
            let mut buf = BytesMut::from(&bytes[..]);
            if let Ok(Some(Parsed::Lean { body_len, .. })) = parse(&mut buf, |_| Some(())) {
                proptest::prop_assert!(buf.len() < bytes.len() && body_len <= buf.len());
            }
        }

        /// A target taken as plain is one `http::Uri` takes, whole (no fragment cut off).
        #[test]
        fn plain_targets_are_uris(target in "/[!-~]{0,60}") {
            if plain_target(&target) {
                let uri = Uri::from_maybe_shared(bytes::Bytes::from(target.clone()));
                proptest::prop_assert_eq!(
                    uri.ok().and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned())),
                    Some(target)
                );
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
            let _ = parse(&mut buf, no_lean);
        }
    }
}
