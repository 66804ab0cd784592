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
//! Both flavours are one [`ClusterAdapter`] core (request ids, pending requests, ack fan-in, timeouts,
//! the local fallback) over a transport that only moves messages: [`ClassicTransport`] (SUBSCRIBE /
//! PSUBSCRIBE, the classic message format) and [`ShardedTransport`] (SSUBSCRIBE / SPUBLISH, the
//! `ClusterAdapter` message format).
//!
//! Two connections per server, shared by all namespaces: one publishes (pipelined, in order), one holds
//! the subscriptions. Both reconnect by themselves with backoff, and the subscriptions are made again.
//! Local delivery never waits for Redis; while it is unreachable, what should go to other nodes is
//! dropped and counted ([`Metrics::dropped`]).
#![warn(missing_docs)]

mod classic;
mod cluster;
mod emitter;
mod link;
pub mod msgpack;
mod sharded;
mod wire;

pub use classic::{
    ClassicTransport, RedisAdapter, RedisAdapterConfig, RedisAdapterConfigBuilder,
    RedisAdapterHandle, RedisParser, redis_adapter,
};
pub use cluster::ClusterAdapter;
pub use emitter::{Emitter, NotPublished};
pub use link::Metrics;
pub use sharded::{
    NodeUrls, ShardedConfig, ShardedConfigBuilder, ShardedRedisAdapter, ShardedRedisAdapterHandle,
    ShardedTransport, SubscriptionMode,
};

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
