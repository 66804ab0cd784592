//! A private `redis-server` per test, and ferrio nodes using the Redis adapter.
#![allow(dead_code)]

use std::time::Duration;

use ferrio::IoConfig;
use ferrio_redis::{RedisAdapterConfig, RedisAdapterHandle};

pub mod harness;
pub mod servers;
#[path = "../../../ferrio/tests/sio_common/mod.rs"]
pub mod sio;

#[allow(unused_imports)]
pub use servers::{Redis, RedisCluster};
pub use sio::{Client, Incoming, TestServer};

/// A ferrio node on the Redis at `url`.
pub struct Node {
    pub server: TestServer,
    pub redis: RedisAdapterHandle,
}

impl Node {
    pub async fn start(url: &str) -> Node {
        Self::start_with(url, RedisAdapterConfig::default()).await
    }

    pub async fn start_with(url: &str, config: RedisAdapterConfig) -> Node {
        let redis = RedisAdapterHandle::connect(url, config).await.unwrap();
        let cfg = IoConfig {
            adapter: redis.factory(),
            ..sio::config()
        };
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

impl Drop for Node {
    fn drop(&mut self) {
        self.redis.close();
    }
}

/// Waits until `f` holds (polling every 10 ms).
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until both nodes see two subscribers on the request channel of `/`.
pub async fn wait_cluster(a: &Node, n: usize) {
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
