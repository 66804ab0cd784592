//! `ferrio serve --metrics` reports the tasks alive on its tokio runtime
//! (`ferrio_runtime_alive_tasks`), the figure a soak watches for task leaks: it grows with connected
//! clients and comes back down when they leave.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrio_client::ClientOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["serve", "--port", "0", "--metrics", "--log", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferrio serve");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (proc, url)
}

/// One GET, answered in full (HTTP/1.0: the server closes after the answer).
async fn get(url: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn alive_tasks(url: &str) -> f64 {
    let (status, body) = get(url, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("ferrio_runtime_alive_tasks "))
        .unwrap_or_else(|| panic!("no ferrio_runtime_alive_tasks in {body}"))
        .parse()
        .unwrap()
}

async fn settle(url: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..200 {
        let n = alive_tasks(url).await;
        if ok(n) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {}", alive_tasks(url).await);
}

#[tokio::test]
async fn alive_tasks_follow_the_clients() {
    let (_server, url) = start_server();
    let idle = alive_tasks(&url).await;
    assert!(idle >= 1.0, "the accept loop at least: {idle}");
    let clients: Vec<_> = (0..20)
        .map(|_| {
            ferrio_client::connect(
                &url,
                ClientOptions::builder()
                    .force_new(true)
                    .reconnection(false)
                    .build(),
            )
        })
        .collect();
    for _ in 0..200 {
        if clients.iter().all(|c| c.connected()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(clients.iter().all(|c| c.connected()));
    // Each connection holds tasks of its own (its transport, its socket).
    let busy = settle(&url, "tasks of 20 clients", |n| n >= idle + 20.0).await;
    for c in &clients {
        c.disconnect();
        c.io().close();
    }
    drop(clients);
    settle(&url, "tasks freed after the clients left", |n| {
        n <= idle + 2.0
    })
    .await;
    assert!(busy > idle);
}
