//! A private `redis-server` per test, and ferrio nodes using the Redis adapter.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrio::IoConfig;
use ferrio_redis::{RedisAdapterConfig, RedisAdapterHandle};

#[path = "../../../ferrio/tests/sio_common/mod.rs"]
pub mod sio;

pub use sio::{Client, Incoming, TestServer};

/// A `redis-server` on a free port (never 6379), killed on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        assert_ne!(port, 6379);
        let mut r = Redis { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Publishes raw bytes on a channel (through a plain connection).
    pub async fn publish(&self, channel: &str, payload: &[u8]) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

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
