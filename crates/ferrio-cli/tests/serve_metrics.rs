//! `ferrio serve --metrics`: `/metrics` in the Prometheus text format, scraped while a client talks to
//! the server; the counters move as the traffic says.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrio_client::{ClientOptions, Value};
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

/// `name{labels}` -> value, for every sample of a scrape.
async fn scrape(url: &str) -> HashMap<String, f64> {
    let (status, body) = get(url, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

async fn eventually(url: &str, what: &str, ok: impl Fn(&HashMap<String, f64>) -> bool) {
    for _ in 0..100 {
        if ok(&scrape(url).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", scrape(url).await);
}

#[tokio::test]
async fn metrics_move_with_the_traffic() {
    let (_server, url) = start_server();
    let before = scrape(&url).await;

    // A refused handshake: Engine.IO v3 is not spoken (code 5, unsupported protocol version).
    let (status, _) = get(&url, "/socket.io/?EIO=3&transport=polling").await;
    assert_eq!(status, 400);

    let client = ferrio_client::connect(
        &url,
        ClientOptions::builder()
            .force_new(true)
            .reconnection(false)
            .build(),
    );
    // Ten echoes with their acks: ten messages in at least, ten acks out.
    for i in 0..10 {
        let back = client
            .timeout(Duration::from_secs(5))
            .emit_with_ack("echo", &("payload", i))
            .await
            .expect("echo answered");
        assert_eq!(back.0, vec![Value::from("payload"), Value::from(i)]);
    }
    eventually(&url, "one socket in /, upgraded", |m| {
        value(m, r#"ferrio_sockets{namespace="/"}"#) == 1.0
            && value(m, "ferrio_upgrades_total") >= 1.0
    })
    .await;
    let during = scrape(&url).await;
    assert_eq!(
        value(&during, r#"ferrio_handshake_errors_total{code="5"}"#),
        1.0
    );
    assert_eq!(
        value(&during, r#"ferrio_connections_total{transport="polling"}"#)
            - value(&before, r#"ferrio_connections_total{transport="polling"}"#),
        1.0,
        "the client's handshake"
    );
    assert_eq!(value(&during, "ferrio_connections"), 1.0);
    assert_eq!(
        value(&during, r#"ferrio_sockets_connected_total{namespace="/"}"#),
        1.0
    );
    let packets_in = value(&during, "ferrio_packets_in_total");
    assert!(packets_in >= 11.0, "CONNECT and ten events: {packets_in}");
    assert!(
        value(&during, "ferrio_bytes_in_total") >= 10.0 * "42[\"echo\",\"payload\",0]".len() as f64
    );
    assert!(
        value(&during, "ferrio_packets_out_total") >= 11.0,
        "CONNECT ack and ten acks"
    );
    assert!(value(&during, "ferrio_bytes_out_total") > 0.0);

    client.disconnect();
    eventually(&url, "the socket and its session gone", |m| {
        value(m, r#"ferrio_sockets{namespace="/"}"#) == 0.0 && value(m, "ferrio_connections") == 0.0
    })
    .await;
    let after = scrape(&url).await;
    assert!(
        value(&after, "ferrio_packets_in_total") > packets_in,
        "the DISCONNECT packet"
    );
    assert_eq!(value(&after, "ferrio_slow_consumer_disconnects_total"), 0.0);
}
