//! Engine.IO server options, with the official names (in snake_case) and defaults.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferrio_proto::engine::{Protocol, SessionConfig, TransportKind};
use http::HeaderMap;
use http::request::Parts;

use super::cors::Cors;

/// A boxed future, as returned by the async hooks.
pub use ferrio_core::BoxFuture;

/// Decides whether a handshake or an upgrade may proceed (`allowRequest`).
pub type AllowRequest = Arc<dyn Fn(&Parts) -> BoxFuture<Result<(), Rejection>> + Send + Sync>;

/// Adds or changes response headers (`initial_headers` and `headers` hooks).
pub type HeadersHook = Arc<dyn Fn(&mut HeaderMap, &Parts) + Send + Sync>;

/// Generates session ids (`generateId`).
pub type GenerateId = Arc<dyn Fn(&Parts) -> String + Send + Sync>;

/// Why `allow_request` refused a request: sent to the client as `{"code":…,"message":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The Engine.IO error code (4, "Forbidden", unless said otherwise).
    pub code: u8,
    /// The message sent to the client.
    pub message: String,
}

impl Rejection {
    /// A `Forbidden` rejection (HTTP 403, code 4) with this message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Rejection {
            code: 4,
            message: message.into(),
        }
    }
}

/// The sid cookie set on the handshake response (`cookie`), off by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Cookie name (`io`).
    pub name: String,
    /// `Path` attribute (`/`).
    pub path: Option<String>,
    /// `HttpOnly` attribute (on).
    pub http_only: bool,
    /// `SameSite` attribute (`Lax`).
    pub same_site: Option<SameSite>,
    /// `Secure` attribute (off).
    pub secure: bool,
    /// `Max-Age` in seconds (none: a session cookie).
    pub max_age: Option<u64>,
}

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `Strict`.
    Strict,
    /// `Lax`.
    Lax,
    /// `None` (requires `secure`).
    None,
}

impl Default for Cookie {
    fn default() -> Self {
        Cookie {
            name: "io".into(),
            path: Some("/".into()),
            http_only: true,
            same_site: Some(SameSite::Lax),
            secure: false,
            max_age: None,
        }
    }
}

impl Cookie {
    /// The `Set-Cookie` value for session `sid`.
    pub(crate) fn header_value(&self, sid: &str) -> String {
        let mut v = format!("{}={}", self.name, sid);
        if let Some(p) = &self.path {
            v.push_str("; Path=");
            v.push_str(p);
        }
        if let Some(age) = self.max_age {
            v.push_str(&format!("; Max-Age={age}"));
        }
        if self.http_only {
            v.push_str("; HttpOnly");
        }
        if self.secure {
            v.push_str("; Secure");
        }
        if let Some(s) = self.same_site {
            v.push_str(match s {
                SameSite::Strict => "; SameSite=Strict",
                SameSite::Lax => "; SameSite=Lax",
                SameSite::None => "; SameSite=None",
            });
        }
        v
    }
}

/// Compression of polling responses (`http_compression`), on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCompression {
    /// Responses smaller than this many bytes are sent as they are (1024).
    pub threshold: usize,
}

impl Default for HttpCompression {
    fn default() -> Self {
        HttpCompression { threshold: 1024 }
    }
}

/// Every Engine.IO server option. Built with [`EngineConfig::builder`] (or changed field by field on a
/// default), so that a new option is not a breaking change.
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Path the server answers on (`/engine.io/`; Socket.IO uses `/socket.io/`).
    pub path: String,
    /// Also answer on the path without its trailing slash (on).
    pub add_trailing_slash: bool,
    /// Allowed transports, in order of preference (polling, websocket).
    pub transports: Vec<TransportKind>,
    /// Whether polling sessions may upgrade to websocket (on).
    pub allow_upgrades: bool,
    /// Time between the server's pings (25 s).
    pub ping_interval: Duration,
    /// Time the client has to answer a ping (20 s).
    pub ping_timeout: Duration,
    /// Time the client has to complete an upgrade (10 s).
    pub upgrade_timeout: Duration,
    /// Largest POST body or websocket message, in bytes (1e6); also the largest poll response.
    pub max_http_buffer_size: usize,
    /// Cross-origin policy (none: no CORS headers, every origin served).
    pub cors: Option<Cors>,
    /// The sid cookie (none).
    pub cookie: Option<Cookie>,
    /// Compression of polling responses (on, threshold 1024 bytes).
    pub http_compression: Option<HttpCompression>,
    /// Accepts or rejects a handshake or an upgrade.
    pub allow_request: Option<AllowRequest>,
    /// Called on the headers of the handshake response only.
    pub initial_headers: Option<HeadersHook>,
    /// Called on the headers of every response.
    pub headers: Option<HeadersHook>,
    /// Session id generator (default: 128 random bits from the OS CSPRNG, base64url).
    pub generate_id: Option<GenerateId>,
    /// Bytes queued for one session before it counts as a slow consumer (8 MiB). Each queued frame costs
    /// its encoded size plus 64 bytes (its slot in the queue), so a flood of tiny frames is bounded too.
    /// Past it, volatile packets are dropped and any other packet closes the session with "transport
    /// error". A polling client receives everything queued between two polls, so the budget must hold a
    /// burst: the default takes about 60 000 messages of 70 bytes.
    pub max_buffered_bytes: usize,
    /// Frames queued for one session at most, a second bound beside `max_buffered_bytes` (1 048 576: never
    /// reached before the byte budget with the defaults). Past it, the same policy applies.
    pub max_buffered_packets: usize,
    /// Time a graceful close waits for a poll to fetch the last packets (30 s).
    pub close_timeout: Duration,
    /// Time allowed between two chunks of a request body before the request fails (10 s).
    pub body_read_timeout: Duration,
    /// Also accept Engine.IO v3 clients (socket.io-client 2.x, engine.io-client 3.x) and their
    /// JSONP polling, beside v4 (off, as in socket.io: `EIO=3` is then refused with code 5).
    pub allow_eio3: bool,
    /// Handshakes in progress from one remote address at most (none here; the Socket.IO server sets
    /// 1 000). A session counts from its handshake until its handler calls [`Socket::established`]
    /// (the Socket.IO server does at the first namespace joined) or until it closes; past the cap a
    /// handshake is refused with HTTP 403 `{"code":4,"message":"Too many pending handshakes"}`, as
    /// `allow_request` refuses one. The address is the peer socket's IP (an IPv6 address counts by its
    /// /64): behind a reverse proxy it is the proxy's, so every client shares the cap. No address
    /// (a transport without one), no cap.
    ///
    /// [`Socket::established`]: super::Socket::established
    pub max_pending_handshakes_per_address: Option<usize>,
    /// permessage-deflate on websocket connections (off, as in engine.io 4+). When on, a client's offer
    /// is accepted and messages of `threshold` bytes or more (1024) are compressed, unless sent with
    /// `compress(false)`. The compressor and decompressor of a connection exist only once it sent or
    /// received a compressed message.
    pub per_message_deflate: Option<PerMessageDeflate>,
}

/// permessage-deflate options (`perMessageDeflate` of the `ws` package): `threshold` (1024),
/// `server_no_context_takeover`, `client_no_context_takeover`, `server_max_window_bits`,
/// `client_max_window_bits` (8..=15, `None`: as the client offers) and the zlib `level` (`None`: 6).
pub use ferrio_proto::ws::DeflateConfig as PerMessageDeflate;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/engine.io/".into(),
            add_trailing_slash: true,
            transports: vec![TransportKind::Polling, TransportKind::WebSocket],
            allow_upgrades: true,
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_http_buffer_size: 1_000_000,
            cors: None,
            cookie: None,
            http_compression: Some(HttpCompression::default()),
            allow_request: None,
            initial_headers: None,
            headers: None,
            generate_id: None,
            max_buffered_bytes: 8 * 1024 * 1024,
            max_buffered_packets: 1 << 20,
            close_timeout: Duration::from_millis(30_000),
            body_read_timeout: Duration::from_millis(10_000),
            allow_eio3: false,
            max_pending_handshakes_per_address: None,
            per_message_deflate: None,
        }
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("path", &self.path)
            .field("add_trailing_slash", &self.add_trailing_slash)
            .field("transports", &self.transports)
            .field("allow_upgrades", &self.allow_upgrades)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("upgrade_timeout", &self.upgrade_timeout)
            .field("max_http_buffer_size", &self.max_http_buffer_size)
            .field("cors", &self.cors)
            .field("cookie", &self.cookie)
            .field("http_compression", &self.http_compression)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_buffered_packets", &self.max_buffered_packets)
            .field("allow_eio3", &self.allow_eio3)
            .field(
                "max_pending_handshakes_per_address",
                &self.max_pending_handshakes_per_address,
            )
            .field("per_message_deflate", &self.per_message_deflate)
            .finish_non_exhaustive()
    }
}

/// Builds an [`EngineConfig`]: every method is an option, named as the official one in snake_case.
#[derive(Debug, Clone, Default)]
pub struct EngineConfigBuilder {
    config: EngineConfig,
}

/// Setters of plain options, one per field.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value.into();
                self
            }
        )*
    };
}
pub(crate) use setters;

impl EngineConfigBuilder {
    setters! {
        /// Path the server answers on.
        path: impl Into<String>,
        /// Also answer on the path without its trailing slash.
        add_trailing_slash: bool,
        /// Allowed transports, in order of preference.
        transports: Vec<TransportKind>,
        /// Whether polling sessions may upgrade to websocket.
        allow_upgrades: bool,
        /// Time between the server's pings.
        ping_interval: Duration,
        /// Time the client has to answer a ping.
        ping_timeout: Duration,
        /// Time the client has to complete an upgrade.
        upgrade_timeout: Duration,
        /// Largest POST body or websocket message, in bytes; also the largest poll response.
        max_http_buffer_size: usize,
        /// Cross-origin policy.
        cors: impl Into<Option<Cors>>,
        /// The sid cookie.
        cookie: impl Into<Option<Cookie>>,
        /// Compression of polling responses (`None`: off).
        http_compression: Option<HttpCompression>,
        /// Bytes queued for one session before it counts as a slow consumer.
        max_buffered_bytes: usize,
        /// Frames queued for one session at most.
        max_buffered_packets: usize,
        /// Time a graceful close waits for a poll to fetch the last packets.
        close_timeout: Duration,
        /// Time allowed between two chunks of a request body.
        body_read_timeout: Duration,
        /// Also accept Engine.IO v3 clients (socket.io-client 2.x) and JSONP polling.
        allow_eio3: bool,
        /// Handshakes in progress from one remote address at most (`None`: no limit).
        max_pending_handshakes_per_address: Option<usize>,
        /// permessage-deflate on websocket connections (`None`: off).
        per_message_deflate: Option<PerMessageDeflate>,
    }

    /// Accepts or rejects a handshake or an upgrade (`allowRequest`), from an async closure.
    pub fn allow_request<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        self.config.allow_request = Some(Arc::new(move |p| Box::pin(f(p))));
        self
    }

    /// Changes the headers of the handshake response (`initial_headers`).
    pub fn initial_headers(
        mut self,
        f: impl Fn(&mut HeaderMap, &Parts) + Send + Sync + 'static,
    ) -> Self {
        self.config.initial_headers = Some(Arc::new(f));
        self
    }

    /// Changes the headers of every response (`headers`).
    pub fn headers(mut self, f: impl Fn(&mut HeaderMap, &Parts) + Send + Sync + 'static) -> Self {
        self.config.headers = Some(Arc::new(f));
        self
    }

    /// Generates session ids (`generateId`).
    pub fn generate_id(mut self, f: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.config.generate_id = Some(Arc::new(f));
        self
    }

    /// The options.
    pub fn build(self) -> EngineConfig {
        self.config
    }
}

impl From<EngineConfig> for EngineConfigBuilder {
    /// A builder starting from these options.
    fn from(config: EngineConfig) -> Self {
        EngineConfigBuilder { config }
    }
}

impl From<EngineConfigBuilder> for EngineConfig {
    fn from(b: EngineConfigBuilder) -> Self {
        b.build()
    }
}

impl EngineConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> EngineConfigBuilder {
        EngineConfigBuilder::default()
    }

    /// Sets `allow_request` from an async closure.
    pub fn allow_request<F, Fut>(self, f: F) -> Self
    where
        F: Fn(&Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Rejection>> + Send + 'static,
    {
        EngineConfigBuilder { config: self }
            .allow_request(f)
            .build()
    }

    pub(crate) fn session_config(&self, protocol: Protocol) -> SessionConfig {
        SessionConfig {
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            upgrade_timeout: self.upgrade_timeout,
            close_timeout: self.close_timeout,
            protocol,
        }
    }

    /// The path without its trailing slash, for matching.
    pub(crate) fn path_trimmed(&self) -> &str {
        self.path.strip_suffix('/').unwrap_or(&self.path)
    }

    /// Whether a request path belongs to the engine.
    pub(crate) fn matches(&self, path: &str) -> bool {
        if path == self.path {
            return true;
        }
        let trimmed = self.path_trimmed();
        if self.add_trailing_slash {
            path == trimmed
                || path
                    .strip_prefix(trimmed)
                    .is_some_and(|rest| rest.starts_with('/'))
        } else {
            path.starts_with(&self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_official() {
        let c = EngineConfig::default();
        assert_eq!(c.ping_interval, Duration::from_millis(25_000));
        assert_eq!(c.ping_timeout, Duration::from_millis(20_000));
        assert_eq!(c.upgrade_timeout, Duration::from_millis(10_000));
        assert_eq!(c.max_http_buffer_size, 1_000_000);
        assert!(c.allow_upgrades && c.add_trailing_slash);
        assert_eq!(
            c.http_compression,
            Some(HttpCompression { threshold: 1024 })
        );
        assert!(c.cookie.is_none() && c.cors.is_none());
        assert!(!c.allow_eio3);
        assert!(c.per_message_deflate.is_none());
        assert_eq!(PerMessageDeflate::default().threshold, 1024);
    }

    #[test]
    fn path_matching() {
        let c = EngineConfig {
            path: "/socket.io/".into(),
            ..Default::default()
        };
        assert!(c.matches("/socket.io/"));
        assert!(c.matches("/socket.io"));
        assert!(c.matches("/socket.io/socket.io.js"));
        assert!(!c.matches("/socket.iox"));
        assert!(!c.matches("/other"));
        let c = EngineConfig {
            add_trailing_slash: false,
            ..c
        };
        assert!(c.matches("/socket.io/"));
        assert!(!c.matches("/socket.io"));
    }

    #[test]
    fn cookie_header() {
        let c = Cookie::default();
        assert_eq!(
            c.header_value("abc"),
            "io=abc; Path=/; HttpOnly; SameSite=Lax"
        );
        let c = Cookie {
            secure: true,
            max_age: Some(60),
            same_site: Some(SameSite::None),
            ..c
        };
        assert_eq!(
            c.header_value("x"),
            "io=x; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=None"
        );
    }
}
