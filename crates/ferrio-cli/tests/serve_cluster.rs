//! Two `ferrio serve --adapter redis://…` nodes on a private Redis behave as one server: a `chat` sent
//! to a room on one node reaches the members of the room on the other.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrio_client::{ClientOptions, Socket};

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private, non-persistent redis-server; None when redis-server is not installed.
fn start_redis() -> Option<(Proc, String)> {
    let port = free_port();
    let child = match Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping: cannot start redis-server ({e})");
            return None;
        }
    };
    let redis = Proc(child);
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((redis, format!("redis://127.0.0.1:{port}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not come up on port {port}");
}

fn start_node(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args([
            "serve",
            "--port",
            "0",
            "--log",
            "warn",
            "--serve-client",
            "false",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ferrio serve");
    let stdout = child.stdout.take().expect("stdout");
    let node = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (node, url)
}

/// Connects, joins `room`, and forwards the text of every `chat` received.
async fn member(url: &str, room: &str) -> (Socket, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let socket = ferrio_client::connect(url, ClientOptions::default());
    socket.on("chat", move |_s: Socket, ev| {
        let tx = tx.clone();
        async move {
            if let Ok(v) = ev.parse::<serde_json::Value>() {
                let _ = tx.send(v["text"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let joined = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if socket.connected() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        socket
            .timeout(Duration::from_secs(5))
            .emit_with_ack("join", &room)
            .await
    })
    .await
    .unwrap_or_else(|_| panic!("{url}: not connected in time"))
    .unwrap_or_else(|e| panic!("{url}: join failed: {e:?}"));
    assert!(joined.parse::<bool>().unwrap(), "join refused");
    (socket, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_every_node() {
    let Some((_redis, redis_url)) = start_redis() else {
        return;
    };
    let (_n1, url1) = start_node(&["--adapter", &redis_url]);
    let (_n2, url2) = start_node(&["--adapter", &redis_url, "--adapter-key", "socket.io"]);
    assert_ne!(url1, url2);

    let (a, mut a_rx) = member(&url1, "r").await;
    let (b, mut b_rx) = member(&url2, "r").await;

    // Both ways: node 1 → node 2, then node 2 → node 1.
    for (from, to_rx, text) in [
        (&a, &mut b_rx, "hello from 1"),
        (&b, &mut a_rx, "hello from 2"),
    ] {
        from.emit("chat", &serde_json::json!({ "room": "r", "text": text }))
            .expect("emit chat");
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(t) = to_rx.recv().await {
                if t == text {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(got, Ok(true), "{text:?} did not reach the other node");
    }
    a.disconnect();
    b.disconnect();

    // `ferrio bench fanout URL1 --urls URL2` spreads the receivers over both nodes: nothing is lost.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["bench", "fanout", &url1, "--urls", &url2])
        .args(["--clients", "10", "--duration", "1", "--rate", "20"])
        .args(["--drain", "3", "--check", "--json", "-q"])
        .output()
        .await
        .expect("run ferrio bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).expect("bench JSON");
    assert_eq!(summary["url"], format!("{url1},{url2}").as_str());
    assert_eq!(summary["lost"], 0);
    assert!(summary["deliveries"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_every_node_over_redis_streams() {
    let Some((_redis, redis_url)) = start_redis() else {
        return;
    };
    let streams_url = redis_url.replacen("redis://", "redis-streams://", 1);
    let (_n1, url1) = start_node(&["--adapter", &streams_url, "--connection-state-recovery"]);
    let (_n2, url2) = start_node(&["--adapter", &streams_url, "--connection-state-recovery"]);
    let (a, mut a_rx) = member(&url1, "r").await;
    let (b, mut b_rx) = member(&url2, "r").await;
    for (from, to_rx, text) in [
        (&a, &mut b_rx, "streamed from 1"),
        (&b, &mut a_rx, "streamed from 2"),
    ] {
        from.emit("chat", &serde_json::json!({ "room": "r", "text": text }))
            .expect("emit chat");
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(t) = to_rx.recv().await {
                if t == text {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(got, Ok(true), "{text:?} did not reach the other node");
    }
    a.disconnect();
    b.disconnect();
}

#[test]
fn unreachable_redis_is_a_clear_error() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["serve", "--port", "0", "--adapter"])
        .arg(format!("redis://127.0.0.1:{port}"))
        .output()
        .expect("run ferrio serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis unreachable"), "stderr: {err}");
    assert!(out.stdout.is_empty(), "it must not listen");
}
