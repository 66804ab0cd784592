//! Where the server is and how each request to it is addressed.

use std::sync::Arc;

use ferrio_proto::engine::{Protocol, TransportKind};
use http::HeaderMap;

use super::tls::{self, BoxIo};
use super::{EngineError, EngineOptions};

/// The parsed server address and everything needed to build its request URIs.
#[derive(Debug)]
pub(crate) struct Endpoint {
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) secure: bool,
    /// Host for the TCP connection and TLS server name (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host:port` as in the Host header (also the `remember_upgrade` key).
    authority: String,
    path: String,
    /// Extra query parameters, already encoded, without a leading `&`.
    extra_query: String,
    timestamp_param: Option<String>,
    force_base64: bool,
    protocol: Protocol,
    pub(crate) headers: HeaderMap,
    /// What the websocket handshake offers of permessage-deflate, `None`: not offered.
    pub(crate) per_message_deflate: Option<ferrio_proto::ws::DeflateConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Query parameters the client sets itself; user values for them are dropped.
const RESERVED: [&str; 4] = ["EIO", "transport", "sid", "b64"];

impl Endpoint {
    pub(crate) fn new(url: &str, opts: &EngineOptions) -> Result<Endpoint, EngineError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| EngineError::InvalidUrl(format!("{url}: {e}")))?;
        let secure = match uri.scheme_str() {
            Some("http") | Some("ws") => false,
            Some("https") | Some("wss") => true,
            _ => {
                return Err(EngineError::InvalidUrl(format!(
                    "{url}: scheme must be http, https, ws or wss"
                )));
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| EngineError::InvalidUrl(format!("{url}: no host")))?;
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();

        let mut path = opts.path.clone();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if path.contains(['?', '#', ' ']) {
            return Err(EngineError::InvalidUrl(format!("invalid path {path:?}")));
        }

        let timestamp_param = opts
            .timestamp_requests
            .then(|| opts.timestamp_param.clone())
            .filter(|p| !p.is_empty());
        let mut pairs: Vec<String> = Vec::new();
        let skip = |k: &str| RESERVED.contains(&k) || timestamp_param.as_deref() == Some(k);
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if !skip(key) {
                pairs.push(pair.to_string());
            }
        }
        for (k, v) in &opts.query {
            if !skip(k) {
                pairs.push(format!("{}={}", encode(k), encode(v)));
            }
        }
        let tls = if secure {
            Some(tls::client_config(&opts.tls)?)
        } else {
            None
        };
        Ok(Endpoint {
            secure,
            host,
            port,
            authority,
            path,
            extra_query: pairs.join("&"),
            timestamp_param,
            force_base64: opts.force_base64,
            protocol: opts.protocol,
            headers: opts.extra_headers.clone(),
            per_message_deflate: opts.per_message_deflate,
            tls,
        })
    }

    pub(crate) fn host_key(&self) -> &str {
        &self.authority
    }

    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// Path and query of a request on `transport` (origin form).
    pub(crate) fn path_and_query(&self, transport: TransportKind, sid: Option<&str>) -> String {
        let eio = match self.protocol {
            Protocol::V3 => 3,
            Protocol::V4 => 4,
        };
        let mut q = format!("{}?EIO={eio}&transport={}", self.path, transport.as_str());
        if let Some(sid) = sid {
            q.push_str("&sid=");
            q.push_str(&encode(sid));
        }
        if transport == TransportKind::Polling {
            if let Some(t) = &self.timestamp_param {
                q.push('&');
                q.push_str(&encode(t));
                q.push('=');
                q.push_str(&cache_buster());
            }
            if self.force_base64 {
                q.push_str("&b64=1");
            }
        } else if self.force_base64 && self.protocol == Protocol::V3 {
            // A v3 server sends binary as base64 text frames to a websocket client that asks.
            q.push_str("&b64=1");
        }
        if !self.extra_query.is_empty() {
            q.push('&');
            q.push_str(&self.extra_query);
        }
        q
    }

    /// The full websocket URL (the handshake sends its parts; tests read it whole).
    #[cfg(test)]
    pub(crate) fn websocket_url(&self, sid: Option<&str>) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}",
            self.authority,
            self.path_and_query(TransportKind::WebSocket, sid)
        )
    }

    /// Opens a TCP connection to the server, with TLS when the URL is secure.
    pub(crate) async fn open_stream(&self) -> Result<BoxIo, EngineError> {
        tls::open_stream(&self.host, self.port, self.tls.as_ref()).await
    }
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Seven random characters, like the official client's cache buster.
fn cache_buster() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
    (0..7)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_request_uris() {
        let opts = EngineOptions {
            query: vec![("token".into(), "a b&c".into()), ("EIO".into(), "3".into())],
            timestamp_requests: false,
            ..EngineOptions::default()
        };
        let e = Endpoint::new("http://localhost:3000/ignored?x=1&sid=evil", &opts).unwrap();
        assert_eq!(e.host_key(), "localhost:3000");
        assert_eq!(
            e.path_and_query(TransportKind::Polling, Some("abc")),
            "/engine.io/?EIO=4&transport=polling&sid=abc&x=1&token=a%20b%26c"
        );
        assert_eq!(
            e.websocket_url(None),
            "ws://localhost:3000/engine.io/?EIO=4&transport=websocket&x=1&token=a%20b%26c"
        );
        let v3 = EngineOptions {
            protocol: Protocol::V3,
            force_base64: true,
            timestamp_requests: false,
            ..EngineOptions::default()
        };
        let e = Endpoint::new("http://h", &v3).unwrap();
        assert_eq!(
            e.path_and_query(TransportKind::Polling, None),
            "/engine.io/?EIO=3&transport=polling&b64=1"
        );
        assert_eq!(
            e.websocket_url(Some("s")),
            "ws://h:80/engine.io/?EIO=3&transport=websocket&sid=s&b64=1"
        );
        let e = Endpoint::new("https://[::1]", &EngineOptions::default()).unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.port, 443);
        assert!(
            e.path_and_query(TransportKind::Polling, None)
                .starts_with("/engine.io/?EIO=4&transport=polling&t=")
        );
        assert!(matches!(
            Endpoint::new("ftp://x", &EngineOptions::default()),
            Err(EngineError::InvalidUrl(_))
        ));
        assert!(matches!(
            Endpoint::new("nohost", &EngineOptions::default()),
            Err(EngineError::InvalidUrl(_))
        ));
    }
}
