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
//! let io = ferrio::Io::new(ferrio::IoConfig::builder().adapter(redis.factory()).build());
//! # let _ = io; Ok(()) }
//! ```
//!
//! For a Redis Cluster (sharded Pub/Sub, `createShardedAdapter`), see [`ShardedRedisAdapterHandle`];
//! for `@socket.io/redis-streams-adapter` 0.3.x (one Redis stream, connection state recovery across
//! nodes), see [`RedisStreamsAdapterHandle`].
//!
//! ## Layers
//!
//! ```text
//!  ClusterAdapter<T>   cluster/   one per namespace: local rooms, request ids, pending requests, ack
//!                                 fan-in, timeouts, the local fallback; one handler per message kind
//!        |  Transport (typed Message / Response out)     ^  Inbox (typed, decoded, in)
//!  ClassicTransport    classic/   the redis-adapter format; SUBSCRIBE / PSUBSCRIBE channels
//!  ShardedTransport    sharded/   the ClusterAdapter format (cluster/wire.rs); SSUBSCRIBE channels
//!  StreamsTransport    streams/   the ClusterAdapter messages as stream entry fields; XADD / XREAD;
//!                                 heartbeat membership; sessions and missed packets (session.rs)
//!        |  PublishQueue (bytes out)                     ^  Subscriber (channel + bytes in)
//!  drivers             classic/conn.rs, sharded/conn.rs, streams/conn.rs: a server's connections,
//!                      shared by its namespaces; reconnection, pipelining, counters (link.rs)
//! ```
//!
//! The streams transport's `publish` resolves with the entry id, and what it reads carries it as the
//! offset of each incoming message: with connection state recovery on, broadcasts are delivered as the
//! stream orders them, each with its entry id as offset, and any node restores any session.
//!
//! Classic: two connections per server, shared by all namespaces: one publishes (pipelined, in order),
//! one holds the subscriptions. Both reconnect by themselves with backoff, and the subscriptions are
//! made again. Local delivery never waits for Redis; while it is unreachable, what should go to other
//! nodes is dropped and counted ([`Metrics::dropped`]).
#![warn(missing_docs)]

/// The builder of a `#[non_exhaustive]` configuration: `Config::builder()`, one setter per option,
/// `build()`. Adding an option is one more line here, not a breaking change.
macro_rules! config_builder {
    ($(#[$meta:meta])* $builder:ident builds $config:ident {
        $($(#[$doc:meta])* $option:ident: $ty:ty,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default)]
        pub struct $builder {
            config: $config,
        }

        impl $config {
            /// A builder starting from the official defaults.
            pub fn builder() -> $builder {
                $builder::default()
            }
        }

        impl $builder {
            $(
                $(#[$doc])*
                pub fn $option(mut self, value: impl Into<$ty>) -> Self {
                    self.config.$option = value.into();
                    self
                }
            )*

            /// The configuration.
            pub fn build(self) -> $config {
                self.config
            }
        }
    };
}

/// The message types of a wire format: an enum of their numbers, and `from_u64` to read one.
macro_rules! wire_enum {
    ($(#[$meta:meta])* enum $name:ident {
        $($(#[$doc:meta])* $variant:ident = $n:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        enum $name {
            $($(#[$doc])* $variant = $n,)*
        }

        impl $name {
            fn from_u64(n: u64) -> Option<Self> {
                match n {
                    $($n => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

mod classic;
mod cluster;
mod emitter;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod link;
pub mod msgpack;
mod sharded;
mod streams;
mod wire;

pub use classic::{
    ClassicTransport, RedisAdapter, RedisAdapterConfig, RedisAdapterConfigBuilder,
    RedisAdapterHandle, RedisParser, redis_adapter,
};
pub use cluster::ClusterAdapter;
pub use emitter::{Emitter, NotPublished};
pub use handle::AdapterHandle;
pub use link::Metrics;
pub use sharded::{
    NodeUrls, ShardedConfig, ShardedConfigBuilder, ShardedRedisAdapter, ShardedRedisAdapterHandle,
    ShardedTransport, SubscriptionMode,
};
pub use streams::{
    RedisStreamsAdapter, RedisStreamsAdapterHandle, RedisStreamsConfig, RedisStreamsConfigBuilder,
    StreamsTransport,
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
