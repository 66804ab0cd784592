//! What a session keeps of its handshake request.

use std::net::SocketAddr;
use std::time::SystemTime;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// What the client's handshake request looked like: its URI, headers, the peer's address and the time.
///
/// The URI and the headers are copied into one allocation (`uri`, then one `name:value\n` line per
/// header). The request's own header values are slices of the HTTP server's read buffer (the request's bytes
/// under `serve_connection`, 8 KiB or more under hyper), so keeping them would pin that buffer for the session's whole life; a `HeaderMap` copy also costs a
/// few hundred bytes of tables. Reading is a scan of a few hundred bytes, done when the application
/// asks (its `socket.handshake()`), not per message.
#[derive(Clone)]
pub struct HandshakeInfo {
    raw: Box<[u8]>,
    /// Where the headers start in `raw` (the URI is before it, without a separator).
    uri_len: u32,
    remote_addr: Option<SocketAddr>,
    issued: SystemTime,
}

impl std::fmt::Debug for HandshakeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeInfo")
            .field("uri", &self.uri())
            .field("headers", &self.header_map())
            .field("remote_addr", &self.remote_addr)
            .field("issued", &self.issued)
            .finish()
    }
}

impl HandshakeInfo {
    /// A copy of what `parts` says, owning its bytes.
    pub(crate) fn new(parts: &http::request::Parts, remote_addr: Option<SocketAddr>) -> Self {
        let uri = parts.uri.to_string();
        let len = uri.len()
            + parts
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 2)
                .sum::<usize>();
        let mut raw = Vec::with_capacity(len);
        raw.extend_from_slice(uri.as_bytes());
        for (k, v) in &parts.headers {
            // Neither a header name nor a value can hold a newline: the HTTP server refused such a request.
            raw.extend_from_slice(k.as_str().as_bytes());
            raw.push(b':');
            raw.extend_from_slice(v.as_bytes());
            raw.push(b'\n');
        }
        HandshakeInfo {
            raw: raw.into_boxed_slice(),
            uri_len: uri.len() as u32,
            remote_addr,
            issued: SystemTime::now(),
        }
    }

    /// The request URI as received: path and query (the absolute form when the client sent it).
    pub fn uri(&self) -> &str {
        // Written from a `String` in `new`.
        std::str::from_utf8(&self.raw[..self.uri_len as usize]).unwrap_or_default()
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.uri().split_once('?').map(|(_, q)| q)
    }

    /// The request headers in their order, names in lower case; a repeated header appears once per value.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.raw[self.uri_len as usize..]
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                let name = std::str::from_utf8(&line[..colon]).ok()?;
                Some((name, &line[colon + 1..]))
            })
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The headers as a `HeaderMap`, built on each call.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in self.headers() {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_bytes(v),
            ) {
                map.append(k, v);
            }
        }
        map
    }

    /// The peer's address, when the server knows it.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// When the session was created.
    pub fn issued(&self) -> SystemTime {
        self.issued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_uri_headers_and_address() {
        let (parts, ()) = http::Request::builder()
            .uri("/socket.io/?EIO=4&transport=polling&t=x")
            .header("Host", "example.com")
            .header("X-Multi", "a")
            .header("x-multi", "b")
            .header("x-bytes", HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .body(())
            .unwrap()
            .into_parts();
        let addr: SocketAddr = "10.0.0.1:4242".parse().unwrap();
        let info = HandshakeInfo::new(&parts, Some(addr));
        assert_eq!(info.uri(), "/socket.io/?EIO=4&transport=polling&t=x");
        assert_eq!(info.query(), Some("EIO=4&transport=polling&t=x"));
        assert_eq!(info.header("HOST"), Some(&b"example.com"[..]));
        assert_eq!(info.header("x-bytes"), Some(&b"caf\xe9"[..]));
        let multi: Vec<_> = info.headers().filter(|(k, _)| *k == "x-multi").collect();
        assert_eq!(multi, [("x-multi", &b"a"[..]), ("x-multi", &b"b"[..])]);
        assert_eq!(info.header_map(), parts.headers);
        assert_eq!(info.remote_addr(), Some(addr));
        assert_eq!(info.header("absent"), None);
    }

    #[test]
    fn empty_request() {
        let (parts, ()) = http::Request::builder()
            .uri("/")
            .body(())
            .unwrap()
            .into_parts();
        let info = HandshakeInfo::new(&parts, None);
        assert_eq!(info.uri(), "/");
        assert_eq!(info.query(), None);
        assert_eq!(info.headers().count(), 0);
        assert!(info.header_map().is_empty());
    }
}
