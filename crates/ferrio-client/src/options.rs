//! Client options, with the official names (in snake_case) and defaults.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ferrio_proto::value::Value;

use crate::engine::EngineOptions;

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
    /// An auth payload from anything serializable.
    pub fn value<T: serde::Serialize + ?Sized>(v: &T) -> Self {
        ferrio_proto::value::to_value(v)
            .map(Auth::Value)
            .unwrap_or(Auth::None)
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
#[derive(Debug, Clone)]
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
    /// Time allowed for each connection attempt (20 s).
    pub timeout: Duration,
    /// Connect as soon as the socket is created (on).
    pub auto_connect: bool,
    /// Share one connection between the namespaces of one server (on).
    pub multiplex: bool,
    /// Always open a new connection (off).
    pub force_new: bool,
    /// The CONNECT payload.
    pub auth: Auth,
    /// Default ack timeout of `emit_with_ack` (none: wait until disconnected).
    pub ack_timeout: Option<Duration>,
    /// Times an emit is sent again when its ack does not come within `ack_timeout` (0: no queue).
    pub retries: u32,
    /// Events queued per socket while its handlers run; past it, reading from the server waits (256).
    pub max_pending_events: usize,
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
            timeout: Duration::from_millis(20_000),
            auto_connect: true,
            multiplex: true,
            force_new: false,
            auth: Auth::None,
            ack_timeout: None,
            retries: 0,
            max_pending_events: 256,
        }
    }
}
