//! A private `redis-server` per test, and ferrio nodes using the Redis adapter.
#![allow(dead_code)]

use std::time::Duration;

use ferrio_redis::{
    AdapterHandle, ClassicTransport, RedisAdapterConfig, RedisAdapterHandle,
    RedisStreamsAdapterHandle, RedisStreamsConfig, ShardedConfig, ShardedRedisAdapterHandle,
    ShardedTransport, StreamsTransport, SubscriptionMode,
};

pub mod harness;
pub mod servers;
#[path = "../../../ferrio/tests/sio_common/mod.rs"]
pub mod sio;

#[allow(unused_imports)]
pub use servers::{Redis, RedisCluster};
pub use sio::{Client, Incoming, TestServer};

/// A ferrio node on a Redis adapter: classic by default, or sharded.
pub struct Node<F = ClassicTransport> {
    pub server: TestServer,
    pub redis: AdapterHandle<F>,
}

impl Node {
    /// A node on the classic adapter at `url`.
    pub async fn start(url: &str) -> Node {
        Self::start_with(url, RedisAdapterConfig::default()).await
    }

    pub async fn start_with(url: &str, config: RedisAdapterConfig) -> Node {
        Node::on(RedisAdapterHandle::connect(url, config).await.unwrap()).await
    }
}

impl Node<ShardedTransport> {
    /// A node on the sharded adapter of `cluster`.
    pub async fn sharded(cluster: &RedisCluster, mode: SubscriptionMode) -> Self {
        let config = ShardedConfig::builder().subscription_mode(mode).build();
        let redis = ShardedRedisAdapterHandle::connect(cluster.urls(), config)
            .await
            .unwrap();
        Node::on(redis).await
    }
}

impl Node<StreamsTransport> {
    /// A node on the Redis Streams adapter at `url`.
    pub async fn streams(url: &str, config: RedisStreamsConfig) -> Self {
        let redis = RedisStreamsAdapterHandle::connect(url, config)
            .await
            .unwrap();
        Node::on(redis).await
    }
}

impl<F> Node<F> {
    async fn on(redis: AdapterHandle<F>) -> Self {
        let mut cfg = sio::config();
        cfg.adapter = redis.factory();
        let server = TestServer::start(cfg).await;
        Node { server, redis }
    }

    pub fn io(&self) -> &ferrio::Io {
        &self.server.io
    }

    /// A client joined to `/`, with its socket id.
    pub async fn client(&self) -> (Client, String) {
        let mut c = self.server.client().await;
        let sid = c.join("/").await;
        (c, sid)
    }
}

impl<F> Drop for Node<F> {
    fn drop(&mut self) {
        self.redis.close();
    }
}

pub use ferrio_core::testing::eventually;

/// Waits until node `a` counts `n` servers.
pub async fn wait_cluster<F>(a: &Node<F>, n: usize) {
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let count = a.io().of("/").adapter().server_count().await;
        if count >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "server count stays {count}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next text frame that is not a ping, within 3 s.
pub async fn next_text(c: &mut Client) -> String {
    loop {
        match c.recv().await {
            Incoming::Text(t) => return t,
            Incoming::Binary(_) => continue,
            Incoming::Closed => panic!("closed"),
        }
    }
}

/// Fails if a text frame arrives within `within`.
pub async fn expect_silence(c: &mut Client, within: Duration) {
    if let Some(i) = c.recv_within(within).await {
        panic!("nothing expected, got {i:?}");
    }
}
