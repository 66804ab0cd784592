//! Conformance harnesses: clusters of classic or sharded adapters on a private Redis (one per test;
//! each cluster of a test gets its own channel prefix, so that it starts empty).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::testing::{Harness, Nodes};
use ferrio_redis::{
    RedisAdapterConfig, RedisAdapterHandle, RedisStreamsAdapterHandle, RedisStreamsConfig,
    ShardedConfig, ShardedRedisAdapterHandle, SubscriptionMode,
};

use super::servers::{Redis, RedisCluster};

/// Closes the nodes' connections when the cluster is dropped.
struct Closing<H: Send + Sync + 'static>(Vec<H>, fn(&H));

impl<H: Send + Sync + 'static> Drop for Closing<H> {
    fn drop(&mut self) {
        for h in &self.0 {
            (self.1)(h);
        }
    }
}

/// The classic adapter on one `redis-server`.
pub struct Classic {
    redis: Redis,
    runs: AtomicUsize,
}

impl Classic {
    pub fn start() -> Classic {
        Classic {
            redis: Redis::start(),
            runs: AtomicUsize::new(0),
        }
    }
}

impl Harness for Classic {
    fn max_nodes(&self) -> usize {
        3
    }

    fn start(&self, nodes: usize) -> BoxFuture<Nodes> {
        let key = format!("conformance{}", self.runs.fetch_add(1, Ordering::Relaxed));
        let url = self.redis.url();
        Box::pin(async move {
            let mut handles = Vec::new();
            for _ in 0..nodes {
                let config = RedisAdapterConfig::builder().key(key.clone()).build();
                handles.push(RedisAdapterHandle::connect(&url, config).await.unwrap());
            }
            let factories = handles.iter().map(RedisAdapterHandle::factory).collect();
            Nodes::new(factories, Closing(handles, RedisAdapterHandle::close))
        })
    }
}

/// The sharded adapter on a 3-node Redis Cluster.
pub struct Sharded {
    cluster: RedisCluster,
    mode: SubscriptionMode,
    runs: AtomicUsize,
}

impl Sharded {
    pub fn start(mode: SubscriptionMode) -> Sharded {
        Sharded {
            cluster: RedisCluster::start(),
            mode,
            runs: AtomicUsize::new(0),
        }
    }
}

impl Harness for Sharded {
    fn max_nodes(&self) -> usize {
        3
    }

    fn start(&self, nodes: usize) -> BoxFuture<Nodes> {
        let prefix = format!("conformance{}", self.runs.fetch_add(1, Ordering::Relaxed));
        let (urls, mode) = (self.cluster.urls(), self.mode);
        Box::pin(async move {
            let mut handles = Vec::new();
            for _ in 0..nodes {
                let config = ShardedConfig::builder()
                    .channel_prefix(prefix.clone())
                    .subscription_mode(mode)
                    .build();
                let handle = ShardedRedisAdapterHandle::connect(urls.clone(), config)
                    .await
                    .unwrap();
                handles.push(handle);
            }
            let factories = handles
                .iter()
                .map(ShardedRedisAdapterHandle::factory)
                .collect();
            Nodes::new(
                factories,
                Closing(handles, ShardedRedisAdapterHandle::close),
            )
        })
    }

    /// A room's channel is subscribed (SSUBSCRIBE) in the background once the room appears, as the
    /// official adapter does; give it time to reach the cluster.
    fn settle(&self) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep(Duration::from_millis(300)))
    }
}

/// The Redis Streams adapter on one `redis-server`; each cluster gets its own stream and session keys.
pub struct Streams {
    redis: Redis,
    runs: AtomicUsize,
}

impl Streams {
    pub fn start() -> Streams {
        Streams {
            redis: Redis::start(),
            runs: AtomicUsize::new(0),
        }
    }
}

impl Harness for Streams {
    fn max_nodes(&self) -> usize {
        3
    }

    fn start(&self, nodes: usize) -> BoxFuture<Nodes> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let url = self.redis.url();
        Box::pin(async move {
            let mut handles = Vec::new();
            for _ in 0..nodes {
                let config = RedisStreamsConfig::builder()
                    .stream_name(format!("conformance{run}"))
                    .session_key_prefix(format!("conformance{run}:session:"))
                    .build();
                let handle = RedisStreamsAdapterHandle::connect(&url, config)
                    .await
                    .unwrap();
                handles.push(handle);
            }
            let factories = handles
                .iter()
                .map(RedisStreamsAdapterHandle::factory)
                .collect();
            Nodes::new(
                factories,
                Closing(handles, RedisStreamsAdapterHandle::close),
            )
        })
    }

    fn supports_recovery(&self) -> bool {
        true
    }

    /// Membership comes from heartbeats: a new node's initial heartbeat and the answers to it go
    /// through the stream before every node counts every other.
    fn settle(&self) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep(Duration::from_millis(300)))
    }
}
