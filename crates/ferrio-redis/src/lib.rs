//! A Redis adapter for ferrio, byte-compatible with `@socket.io/redis-adapter` 8.x: ferrio nodes and
//! Node `socket.io` nodes sharing one Redis behave as one server.
//!
//! ```no_run
//! # async fn run() -> Result<(), ferrio_redis::RedisAdapterError> {
//! let redis = ferrio_redis::RedisAdapterHandle::connect(
//!     "redis://127.0.0.1:6379",
//!     ferrio_redis::RedisAdapterConfig::default(),
//! )
//! .await?;
//! let io = ferrio::Io::new(ferrio::IoConfig {
//!     adapter: redis.factory(),
//!     ..Default::default()
//! });
//! # let _ = io; Ok(()) }
//! ```
//!
//! For a Redis Cluster (sharded Pub/Sub, `createShardedAdapter`), see [`ShardedRedisAdapterHandle`].
//!
//! Two connections per server, shared by all namespaces: one publishes (pipelined, in order), one holds
//! the subscriptions. Both reconnect by themselves with backoff, and the subscriptions are made again.
//! Local delivery never waits for Redis; while it is unreachable, what should go to other nodes is
//! dropped and counted ([`Metrics::dropped`]).
#![warn(missing_docs)]

mod adapter;
mod conn;
mod emitter;
pub mod msgpack;
mod sharded;
mod sharded_conn;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use ferrio_core::adapter::{Adapter, AdapterFactory};

pub use adapter::RedisAdapter;
pub use conn::Metrics;
pub use emitter::Emitter;
pub use sharded::{
    NodeUrls, ShardedConfig, ShardedRedisAdapter, ShardedRedisAdapterHandle, SubscriptionMode,
};

/// How payloads that may hold binary are encoded (broadcasts, broadcast acks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisParser {
    /// MessagePack as notepack.io 3.x writes it (the official adapter's default).
    #[default]
    Msgpack,
}

/// Options of the adapter, named and defaulted as `@socket.io/redis-adapter` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAdapterConfig {
    /// Channel prefix (`socket.io`).
    pub key: String,
    /// How long `fetch_sockets`, `all_rooms` and `server_side_emit` with acks wait for other nodes (5 s).
    pub requests_timeout: Duration,
    /// Answer on `<key>-response#<nsp>#<uid>#` instead of `<key>-response#<nsp>#` (off).
    pub publish_on_specific_response_channel: bool,
    /// Payload encoding (MessagePack).
    pub parser: RedisParser,
}

impl Default for RedisAdapterConfig {
    fn default() -> Self {
        RedisAdapterConfig {
            key: "socket.io".into(),
            requests_timeout: Duration::from_millis(5000),
            publish_on_specific_response_channel: false,
            parser: RedisParser::Msgpack,
        }
    }
}

/// Errors of setting up the adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisAdapterError {
    /// The URL is not a Redis URL.
    #[error("invalid redis url: {0}")]
    Url(#[source] redis::RedisError),
    /// No tokio runtime to run the connections on.
    #[error("the redis adapter needs a tokio runtime")]
    NoRuntime,
    /// Redis could not be reached in time (`connect` only).
    #[error("redis unreachable at {0}")]
    Unreachable(String),
    /// A Redis command failed (the emitter).
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),
}

/// The connections of one server to Redis; its [`factory`](Self::factory) makes the adapter of each
/// namespace. Dropping the handle leaves the connections running while an adapter uses them; call
/// [`close`](Self::close) to stop them.
#[derive(Clone)]
pub struct RedisAdapterHandle {
    driver: Arc<conn::Driver>,
    config: Arc<RedisAdapterConfig>,
}

impl std::fmt::Debug for RedisAdapterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapterHandle")
            .field("config", &self.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl RedisAdapterHandle {
    /// Starts the connections in the background (they retry until Redis answers) and returns at once.
    pub fn start(
        client_url: &str,
        config: RedisAdapterConfig,
    ) -> Result<RedisAdapterHandle, RedisAdapterError> {
        let client = redis::Client::open(client_url).map_err(RedisAdapterError::Url)?;
        tokio::runtime::Handle::try_current().map_err(|_| RedisAdapterError::NoRuntime)?;
        Ok(RedisAdapterHandle {
            driver: conn::Driver::start(client),
            config: Arc::new(config),
        })
    }

    /// Starts the connections and waits (up to 5 s) until both are up.
    pub async fn connect(
        client_url: &str,
        config: RedisAdapterConfig,
    ) -> Result<RedisAdapterHandle, RedisAdapterError> {
        let handle = Self::start(client_url, config)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !handle.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                handle.close();
                return Err(RedisAdapterError::Unreachable(client_url.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(handle)
    }

    /// The adapter factory for `IoConfig::adapter`.
    pub fn factory(&self) -> AdapterFactory {
        let driver = self.driver.clone();
        let config = self.config.clone();
        Arc::new(move |ns| {
            Arc::new(RedisAdapter::new(ns, driver.clone(), config.clone())) as Arc<dyn Adapter>
        })
    }

    /// Whether both connections are up.
    pub fn is_connected(&self) -> bool {
        self.driver.is_connected()
    }

    /// The counters (all namespaces).
    pub fn metrics(&self) -> Metrics {
        self.driver.counters.snapshot()
    }

    /// Stops both connections.
    pub fn close(&self) {
        self.driver.shutdown();
    }
}

/// The adapter factory for `IoConfig::adapter` (connections start in the background; needs a tokio
/// runtime). Use [`RedisAdapterHandle`] to wait for Redis first or to read the metrics.
pub fn redis_adapter(
    client_url: &str,
    config: RedisAdapterConfig,
) -> Result<AdapterFactory, RedisAdapterError> {
    Ok(RedisAdapterHandle::start(client_url, config)?.factory())
}
