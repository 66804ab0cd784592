//! Client options, with the official names (in snake_case) and defaults.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ferrio_proto::engine::{Protocol, TransportKind};
use ferrio_proto::reconnect::ReconnectConfig;
use ferrio_proto::socket::{JsonParser, Parser};
use ferrio_proto::value::{Value, ValueError};

use crate::engine::{EngineOptions, TlsOptions};

/// A boxed future, as returned by the async auth function.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The `auth` payload sent with each CONNECT: none, a value, or a function evaluated again on every
/// (re)connection (to refresh a token).
#[derive(Clone, Default)]
pub enum Auth {
    /// No payload.
    #[default]
    None,
    /// The same payload every time.
    Value(Value),
    /// A payload computed for each connection attempt.
    Fn(Arc<dyn Fn() -> BoxFuture<Value> + Send + Sync>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Auth::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}

impl Auth {
    /// An auth payload from anything serializable; what does not serialize is an error, not an empty
    /// payload that the server would refuse without saying why.
    pub fn value<T: serde::Serialize + ?Sized>(v: &T) -> Result<Self, ValueError> {
        ferrio_proto::value::to_value(v).map(Auth::Value)
    }

    /// An auth payload computed before each connection attempt.
    pub fn function<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Value> + Send + 'static,
    {
        Auth::Fn(Arc::new(move || Box::pin(f())))
    }

    pub(crate) async fn resolve(&self) -> Option<Value> {
        match self {
            Auth::None => None,
            Auth::Value(v) => Some(v.clone()),
            Auth::Fn(f) => Some(f().await),
        }
    }
}

/// Options of a client connection (the Manager's and the Socket's, as `io(url, opts)` takes them).
///
/// Build them with [`ClientOptions::builder`], or start from `ClientOptions::default()` and set fields:
/// new options may be added without breaking either form.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Engine.IO options (path `/socket.io/`, transports, upgrade, query, headers, TLS…).
    pub engine: EngineOptions,
    /// Reconnect after an unplanned disconnection (on).
    pub reconnection: bool,
    /// Attempts before giving up (`None`: infinite).
    pub reconnection_attempts: Option<u32>,
    /// First delay between attempts (1 s).
    pub reconnection_delay: Duration,
    /// Largest delay between attempts (5 s).
    pub reconnection_delay_max: Duration,
    /// Jitter of the delays (0.5).
    pub randomization_factor: f64,
    /// Time allowed for each connection attempt (20 s; `None`: no limit).
    pub timeout: Option<Duration>,
    /// Connect as soon as the socket is created (on).
    pub auto_connect: bool,
    /// Share one connection between the namespaces of one server (on).
    pub multiplex: bool,
    /// Always open a new connection (off).
    pub force_new: bool,
    /// The CONNECT payload (not sent with Engine.IO v3: Socket.IO protocol v4 has none).
    pub auth: Auth,
    /// Default ack timeout of `emit_with_ack` (none: wait until disconnected); `socket.timeout(d)`
    /// overrides it for one emit.
    pub ack_timeout: Option<Duration>,
    /// Times an emit is sent again when its ack does not come within `ack_timeout` (0: no queue).
    pub retries: u32,
    /// Events queued per socket while its handlers run; past it, reading from the server waits (256).
    pub max_pending_events: usize,
    /// How packets are encoded (JSON by default; the server must use the same parser).
    pub parser: Arc<dyn Parser>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("engine", &self.engine)
            .field("reconnection", &self.reconnection)
            .field("reconnection_attempts", &self.reconnection_attempts)
            .field("reconnection_delay", &self.reconnection_delay)
            .field("reconnection_delay_max", &self.reconnection_delay_max)
            .field("randomization_factor", &self.randomization_factor)
            .field("timeout", &self.timeout)
            .field("auto_connect", &self.auto_connect)
            .field("multiplex", &self.multiplex)
            .field("force_new", &self.force_new)
            .field("auth", &self.auth)
            .field("ack_timeout", &self.ack_timeout)
            .field("retries", &self.retries)
            .field("max_pending_events", &self.max_pending_events)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            engine: EngineOptions {
                path: "/socket.io/".into(),
                ..EngineOptions::default()
            },
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_millis(1000),
            reconnection_delay_max: Duration::from_millis(5000),
            randomization_factor: 0.5,
            timeout: Some(Duration::from_millis(20_000)),
            auto_connect: true,
            multiplex: true,
            force_new: false,
            auth: Auth::None,
            ack_timeout: None,
            retries: 0,
            max_pending_events: 256,
            parser: Arc::new(JsonParser::default()),
        }
    }
}

impl ClientOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> ClientOptionsBuilder {
        ClientOptionsBuilder {
            opts: ClientOptions::default(),
        }
    }

    /// The reconnection settings, for the manager's state machine.
    pub(crate) fn reconnect_config(&self) -> ReconnectConfig {
        ReconnectConfig::default()
            .reconnection(self.reconnection)
            .reconnection_attempts(self.reconnection_attempts)
            .reconnection_delay(self.reconnection_delay)
            .reconnection_delay_max(self.reconnection_delay_max)
            .randomization_factor(self.randomization_factor)
            .timeout(self.timeout)
    }
}

/// Options of one socket (`manager.socket(nsp, opts)` in JavaScript): what may differ between the
/// namespaces sharing one connection. [`Manager::socket`](crate::Manager::socket) takes them from the
/// manager's [`ClientOptions`]; [`Manager::socket_with`](crate::Manager::socket_with) sets them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SocketOptions {
    /// The CONNECT payload.
    pub auth: Auth,
    /// Default ack timeout of `emit_with_ack` (none).
    pub ack_timeout: Option<Duration>,
    /// Times an emit is sent again when its ack does not come within `ack_timeout` (0).
    pub retries: u32,
}

impl SocketOptions {
    /// Sets `auth`.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets `ack_timeout`.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = Some(timeout);
        self
    }

    /// Sets `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

impl From<&ClientOptions> for SocketOptions {
    fn from(o: &ClientOptions) -> Self {
        SocketOptions {
            auth: o.auth.clone(),
            ack_timeout: o.ack_timeout,
            retries: o.retries,
        }
    }
}

/// Builds [`ClientOptions`]: `ClientOptions::builder().transports([TransportKind::WebSocket]).build()`.
#[derive(Debug, Clone)]
pub struct ClientOptionsBuilder {
    opts: ClientOptions,
}

impl ClientOptionsBuilder {
    /// Every Engine.IO option at once.
    pub fn engine(mut self, engine: EngineOptions) -> Self {
        self.opts.engine = engine;
        self
    }

    /// The path of the server's endpoint (`/socket.io/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.opts.engine.path = path.into();
        self
    }

    /// The transports to use, the first one opening the connection (`[Polling, WebSocket]`).
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportKind>) -> Self {
        self.opts.engine.transports = transports.into_iter().collect();
        self
    }

    /// Whether to upgrade from polling to websocket (on).
    pub fn upgrade(mut self, on: bool) -> Self {
        self.opts.engine.upgrade = on;
        self
    }

    /// permessage-deflate offered in the websocket handshake (offered, `threshold` 1024, as
    /// `perMessageDeflate` in engine.io-client); `None` does not offer it.
    pub fn per_message_deflate(mut self, config: Option<crate::engine::DeflateConfig>) -> Self {
        self.opts.engine.per_message_deflate = config;
        self
    }

    /// Start with websocket when it worked before with that host (off).
    pub fn remember_upgrade(mut self, on: bool) -> Self {
        self.opts.engine.remember_upgrade = on;
        self
    }

    /// A query parameter added to every request.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.opts.engine.query.push((key.into(), value.into()));
        self
    }

    /// Headers added to every request and to the websocket handshake.
    pub fn extra_headers(mut self, headers: http::HeaderMap) -> Self {
        self.opts.engine.extra_headers = headers;
        self
    }

    /// The Engine.IO protocol revision (v4): [`Protocol::V3`] talks to socket.io 2.x servers, with
    /// Engine.IO v3 and Socket.IO protocol v4. There, the server joins `/` by itself, a namespace's
    /// CONNECT carries the `query` parameters instead of `auth` (which v4 does not have: it is not
    /// sent), and a socket's id is `<nsp>#<engine id>` outside `/`.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.opts.engine.protocol = protocol;
        self
    }

    /// Ask the server for base64-encoded binary (`b64=1`) (off).
    pub fn force_base64(mut self, on: bool) -> Self {
        self.opts.engine.force_base64 = on;
        self
    }

    /// TLS settings for `https://` and `wss://`.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.opts.engine.tls = tls;
        self
    }

    /// Reconnect after an unplanned disconnection (on).
    pub fn reconnection(mut self, on: bool) -> Self {
        self.opts.reconnection = on;
        self
    }

    /// Attempts before giving up (`None`: infinite, the default).
    pub fn reconnection_attempts(mut self, attempts: Option<u32>) -> Self {
        self.opts.reconnection_attempts = attempts;
        self
    }

    /// First delay between attempts (1 s).
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.opts.reconnection_delay = delay;
        self
    }

    /// Largest delay between attempts (5 s).
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.opts.reconnection_delay_max = delay;
        self
    }

    /// Jitter of the delays, 0 to 1 (0.5).
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.opts.randomization_factor = factor;
        self
    }

    /// Time allowed for each connection attempt (20 s; `None`: no limit).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.opts.timeout = timeout;
        self
    }

    /// Connect as soon as the socket is created (on).
    pub fn auto_connect(mut self, on: bool) -> Self {
        self.opts.auto_connect = on;
        self
    }

    /// Share one connection between the namespaces of one server (on).
    pub fn multiplex(mut self, on: bool) -> Self {
        self.opts.multiplex = on;
        self
    }

    /// Always open a new connection (off).
    pub fn force_new(mut self, on: bool) -> Self {
        self.opts.force_new = on;
        self
    }

    /// The CONNECT payload.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.opts.auth = auth;
        self
    }

    /// Default ack timeout of `emit_with_ack` (none).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.opts.ack_timeout = Some(timeout);
        self
    }

    /// Times an emit is sent again when its ack does not come within `ack_timeout` (0).
    pub fn retries(mut self, retries: u32) -> Self {
        self.opts.retries = retries;
        self
    }

    /// Events queued per socket while its handlers run (256).
    pub fn max_pending_events(mut self, n: usize) -> Self {
        self.opts.max_pending_events = n;
        self
    }

    /// The packet parser (JSON by default).
    pub fn parser(mut self, parser: impl Parser) -> Self {
        self.opts.parser = Arc::new(parser);
        self
    }

    /// The options.
    pub fn build(self) -> ClientOptions {
        self.opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_defaults() {
        let o = ClientOptions::default();
        assert_eq!(o.engine.path, "/socket.io/");
        assert!(o.reconnection);
        assert_eq!(o.reconnection_attempts, None);
        assert_eq!(o.reconnection_delay, Duration::from_millis(1000));
        assert_eq!(o.reconnection_delay_max, Duration::from_millis(5000));
        assert_eq!(o.randomization_factor, 0.5);
        assert_eq!(o.timeout, Some(Duration::from_millis(20_000)));
        assert!(o.auto_connect && o.multiplex && !o.force_new);
        assert_eq!(o.ack_timeout, None);
        assert_eq!(o.retries, 0);
    }

    #[test]
    fn builder_sets_what_it_names() {
        let o = ClientOptions::builder()
            .transports([TransportKind::WebSocket])
            .reconnection_attempts(Some(3))
            .ack_timeout(Duration::from_secs(2))
            .retries(2)
            .query("k", "v")
            .build();
        assert_eq!(o.engine.transports, [TransportKind::WebSocket]);
        assert_eq!(o.engine.path, "/socket.io/", "the rest keeps its default");
        assert_eq!(o.reconnection_attempts, Some(3));
        assert_eq!(o.ack_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.retries, 2);
        assert_eq!(o.engine.query, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(o.engine.protocol, Protocol::V4, "v4 unless asked");
        let v3 = ClientOptions::builder()
            .protocol(Protocol::V3)
            .force_base64(true)
            .build();
        assert_eq!(v3.engine.protocol, Protocol::V3);
        assert!(v3.engine.force_base64);
        let r = o.reconnect_config();
        assert_eq!(r.reconnection_attempts, Some(3));
        assert_eq!(r.timeout, Some(Duration::from_millis(20_000)));
    }

    #[test]
    fn auth_value_that_does_not_serialize_is_an_error() {
        let mut map = std::collections::HashMap::new();
        // JSON object keys must be strings.
        map.insert(vec![1u8], 1);
        assert!(Auth::value(&map).is_err());
        assert!(matches!(
            Auth::value(&serde_json::json!({ "token": "x" })),
            Ok(Auth::Value(_))
        ));
    }
}
