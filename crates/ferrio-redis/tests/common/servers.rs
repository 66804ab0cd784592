//! Private Redis servers for tests: a `redis-server`, or a 3-node Redis Cluster, on free ports (never
//! 6379), killed on drop.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` on a free port (never 6379), killed on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// Where a persistent server keeps its append-only file (removed on drop).
    dir: Option<PathBuf>,
}

fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `redis-server` on `port` that saves nothing, in `dir` (for its cluster files), with `extra`
/// arguments.
fn redis_server(port: u16, dir: Option<&PathBuf>, extra: &[&str]) -> Child {
    let mut cmd = Command::new("redis-server");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let port = port.to_string();
    cmd.args([
        "--port",
        &port,
        "--save",
        "",
        "--appendonly",
        "no",
        "--bind",
        "127.0.0.1",
    ])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("redis-server must be installed")
}

/// Waits (up to 10 s) until every port accepts connections.
fn wait_listening(ports: &[u16]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for &p in ports {
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on {p}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        assert_ne!(port, 6379);
        let mut r = Redis {
            port,
            child: None,
            dir: None,
        };
        r.restart();
        r
    }

    /// A server keeping its data in an append-only file in a directory of its own: stopped with
    /// [`stop`](Self::stop) and started again, it has what it had, as a production Redis does.
    pub fn start_persistent() -> Redis {
        let port = free_port();
        assert_ne!(port, 6379);
        let dir = std::env::temp_dir().join(format!(
            "ferrio-redis-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port,
            child: None,
            dir: Some(dir),
        };
        r.restart();
        r
    }

    /// Shuts the server down as an operator does (`SHUTDOWN`: it writes its data first) and waits for
    /// it to exit.
    pub fn stop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let persistent = ["--appendonly", "yes", "--appendfsync", "always"];
        let extra: &[&str] = if self.dir.is_some() { &persistent } else { &[] };
        self.child = Some(redis_server(self.port, self.dir.as_ref(), extra));
        wait_listening(&[self.port]);
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
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Three `redis-server --cluster-enabled yes` on free ports in a temporary directory, joined with
/// `redis-cli --cluster create`; all killed (and the directory removed) on drop.
pub struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        if port == 6379 || port > 55_000 || taken.contains(&port) {
            continue;
        }
        if StdListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_cli(args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        assert!(
            Command::new("redis-cli")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "redis-cli must be installed for the cluster tests"
        );
        let dir = std::env::temp_dir().join(format!(
            "ferrio-redis-cluster-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let port = free_cluster_port(&cluster.ports);
            let config_file = format!("nodes-{port}.conf");
            let cluster_args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config_file,
            ];
            let child = redis_server(port, Some(&cluster.dir), &cluster_args);
            cluster.ports.push(port);
            cluster.children.push(child);
        }
        wait_listening(&cluster.ports);
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        redis_cli(&args).expect("redis-cli --cluster create");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for &p in &cluster.ports {
            loop {
                let info =
                    redis_cli(&["-p", &p.to_string(), "cluster", "info"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "cluster not ok on {p}: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// SPUBLISHes raw bytes (through the cluster).
    pub async fn spublish(&self, channel: &str, payload: &[u8]) {
        let client = redis::cluster::ClusterClient::new(self.urls()).unwrap();
        let mut c = client.get_async_connection().await.unwrap();
        let _: i64 = redis::cmd("SPUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
