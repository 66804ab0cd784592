//! `ferrio serve --metrics`: `/metrics` in the Prometheus text format, scraped while a client talks to
//! the server; the counters move as the traffic says (connections, packets, recovery hits and misses,
//! the Redis adapter's publishes, receives and reconnects).

mod common;

use std::collections::HashMap;
use std::process::{ChildStderr, Command, Stdio};
use std::time::Duration;

use ferrio_client::{ClientOptions, Value};

use common::{Proc, serve};

fn start_server() -> (Proc, String, ChildStderr) {
    start_server_with(&[])
}

/// `ferrio serve --metrics ARGS`; its stderr is held open for as long as it runs.
fn start_server_with(extra: &[&str]) -> (Proc, String, ChildStderr) {
    let args: Vec<&str> = ["--metrics", "--log", "warn"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    serve(&args, &[], std::path::Path::new("."))
}

/// One GET: status and body as text.
async fn get(url: &str, path: &str) -> (u16, String) {
    let (status, body) = common::get(url, path);
    (status, String::from_utf8_lossy(&body).into_owned())
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
    for _ in 0..200 {
        if ok(&scrape(url).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", scrape(url).await);
}

#[tokio::test]
async fn metrics_move_with_the_traffic() {
    let (_server, url, _stderr) = start_server();
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

/// The sum of the samples of `name` carrying every `key="value"` of `labels`.
fn sum(m: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

/// A private, non-persistent redis-server on `port`; None when redis-server is not installed.
fn start_redis(port: u16) -> Option<Proc> {
    let child = match Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
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
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(redis);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not come up on port {port}");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A raw Engine.IO websocket session, its open packet read.
async fn ws(url: &str) -> Ws {
    use futures_util::StreamExt;
    let host = url.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("ws://{host}/socket.io/?EIO=4&transport=websocket"),
        tcp,
    )
    .await
    .unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with('0'), "{open:?}");
    ws
}

/// The next text message starting with `prefix` (pings answered, others skipped).
async fn read_until(ws: &mut Ws, prefix: &str) -> String {
    use futures_util::{SinkExt, StreamExt};
    let wait = async {
        loop {
            let msg = ws.next().await.expect("open").expect("a message");
            let Ok(text) = msg.to_text() else { continue };
            if text == "2" {
                ws.send("3".into()).await.unwrap();
            } else if text.starts_with(prefix) {
                return text.to_owned();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no message starting with {prefix}"))
}

async fn send(ws: &mut Ws, text: String) {
    use futures_util::SinkExt;
    ws.send(text.into()).await.unwrap();
}

#[tokio::test]
async fn recovery_and_redis_adapter_metrics_move() {
    let port = free_port();
    let Some(redis) = start_redis(port) else {
        return;
    };
    // Recovery across nodes needs the streams adapter; a second server on the classic adapter shares
    // the Redis.
    let streams = format!("redis-streams://127.0.0.1:{port}");
    let (_server, url, _stderr) =
        start_server_with(&["--connection-state-recovery", "--adapter", &streams]);
    let classic = format!("redis://127.0.0.1:{port}");
    let (_classic_server, classic_url, _classic_stderr) =
        start_server_with(&["--adapter", &classic]);

    // A socket gets a chat broadcast (published to Redis, received back) with its offset, then its
    // connection drops without a goodbye.
    let mut first = ws(&url).await;
    send(&mut first, "40".into()).await;
    let ack = read_until(&mut first, "40").await;
    let ack: serde_json::Value = serde_json::from_str(&ack[2..]).unwrap();
    let (sid, pid) = (ack["sid"].as_str().unwrap(), ack["pid"].as_str().unwrap());
    send(&mut first, r#"42["chat",{"text":"hi"}]"#.into()).await;
    let chat = read_until(&mut first, "42").await;
    let chat: serde_json::Value = serde_json::from_str(&chat[2..]).unwrap();
    let offset = chat.as_array().unwrap().last().unwrap().as_str().unwrap();
    drop(first);
    // The session is kept once the server has seen the socket go (its disconnect ran and stored the
    // session in Redis); a reconnection racing that would miss it, as it would with socket.io.
    eventually(&url, "the first socket gone", |m| {
        value(m, r#"ferrio_sockets{namespace="/"}"#) == 0.0
    })
    .await;

    // Its session back (a hit), then an unknown one (a miss).
    let mut again = ws(&url).await;
    send(
        &mut again,
        format!(r#"40{{"pid":"{pid}","offset":"{offset}"}}"#),
    )
    .await;
    let back = read_until(&mut again, "40").await;
    let back: serde_json::Value = serde_json::from_str(&back[2..]).unwrap();
    assert_eq!(back["sid"], sid, "recovered: {back}");
    let mut unknown = ws(&url).await;
    send(&mut unknown, r#"40{"pid":"nope","offset":"nope"}"#.into()).await;
    let fresh = read_until(&mut unknown, "40").await;
    assert!(!fresh.contains(sid), "{fresh}");
    eventually(&url, "one recovery hit and one miss", |m| {
        value(m, r#"ferrio_recoveries_total{result="hit"}"#) == 1.0
            && value(m, r#"ferrio_recoveries_total{result="miss"}"#) == 1.0
    })
    .await;
    let streams_label = r#"adapter="redis-streams""#;
    let m = scrape(&url).await;
    assert!(
        sum(
            &m,
            "ferrio_redis_publishes_total",
            &[streams_label, r#"result="ok""#]
        ) >= 1.0,
        "the chat broadcast appended: {m:?}"
    );
    assert!(sum(&m, "ferrio_redis_receives_total", &[streams_label]) >= 1.0);
    assert_eq!(
        sum(&m, "ferrio_redis_reconnects_total", &[streams_label]),
        0.0
    );

    // A chat on the classic adapter's server: published, and received back on the channel.
    let classic_label = r#"adapter="redis""#;
    let mut other = ws(&classic_url).await;
    send(&mut other, "40".into()).await;
    read_until(&mut other, "40").await;
    send(&mut other, r#"42["chat",{"text":"hi"}]"#.into()).await;
    read_until(&mut other, "42").await;
    eventually(&classic_url, "the classic adapter's traffic", |m| {
        sum(
            m,
            "ferrio_redis_publishes_total",
            &[classic_label, r#"result="ok""#],
        ) >= 1.0
            && sum(m, "ferrio_redis_receives_total", &[classic_label]) >= 1.0
    })
    .await;
    let m = scrape(&classic_url).await;
    assert_eq!(
        sum(&m, "ferrio_redis_reconnects_total", &[classic_label]),
        0.0
    );

    // Redis restarts on the same port: the connections of both adapters come back, and count it.
    drop(redis);
    let _redis = start_redis(port).expect("redis-server again");
    eventually(&classic_url, "the classic adapter reconnected", |m| {
        // Its publishing and its subscribing connection.
        sum(m, "ferrio_redis_reconnects_total", &[classic_label]) >= 2.0
    })
    .await;
    eventually(&url, "the streams adapter reconnected", |m| {
        sum(m, "ferrio_redis_reconnects_total", &[streams_label]) >= 1.0
    })
    .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
