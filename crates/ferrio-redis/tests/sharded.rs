//! Two ferrio nodes on a private 3-node Redis Cluster, with the sharded adapter (SSUBSCRIBE / SPUBLISH).

mod common;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, Incoming, TestServer, eventually, expect_silence, next_text, sio};
use ferrio::Value;
use ferrio::adapter::AckEvent;
use ferrio_redis::{ShardedConfig, ShardedRedisAdapterHandle, SubscriptionMode};
use parking_lot::Mutex;

const QUIET: Duration = Duration::from_millis(300);

/// Three `redis-server --cluster-enabled yes` on free ports in a temporary directory, joined with
/// `redis-cli --cluster create`; all killed (and the directory removed) on drop.
struct RedisCluster {
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
    fn start() -> RedisCluster {
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
            let child = Command::new("redis-server")
                .current_dir(&cluster.dir)
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--port",
                    &port.to_string(),
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
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
            cluster.ports.push(port);
            cluster.children.push(child);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for &p in &cluster.ports {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "redis-server did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
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

    fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// SPUBLISHes raw bytes (through the cluster).
    async fn spublish(&self, channel: &str, payload: &[u8]) {
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

struct Node {
    server: TestServer,
    redis: ShardedRedisAdapterHandle,
}

impl Node {
    async fn start(cluster: &RedisCluster, mode: SubscriptionMode) -> Node {
        let config = ShardedConfig::builder().subscription_mode(mode).build();
        let redis = ShardedRedisAdapterHandle::connect(cluster.urls(), config)
            .await
            .unwrap();
        let cfg = ferrio::IoConfig {
            adapter: redis.factory(),
            ..sio::config()
        };
        Node {
            server: TestServer::start(cfg).await,
            redis,
        }
    }

    fn io(&self) -> &ferrio::Io {
        &self.server.io
    }

    async fn client(&self) -> (Client, String) {
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

async fn wait_count(a: &Node, n: usize) {
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

/// Waits until the room's channel has `n` subscribers (dynamic modes subscribe in the background).
async fn wait_room_subscribers(cluster: &RedisCluster, channel: &str, n: i64) {
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut total = 0;
        for url in cluster.urls() {
            let single = redis::Client::open(url).unwrap();
            let mut s = single.get_multiplexed_async_connection().await.unwrap();
            let v: Vec<redis::Value> = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(channel)
                .query_async(&mut s)
                .await
                .unwrap();
            if let Some(redis::Value::Int(k)) = v.get(1) {
                total += k;
            }
        }
        if total >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{channel}: {total} subscribers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn two_nodes(mode: SubscriptionMode) -> (RedisCluster, Node, Node) {
    let cluster = RedisCluster::start();
    let a = Node::start(&cluster, mode).await;
    let b = Node::start(&cluster, mode).await;
    wait_count(&a, 2).await;
    wait_count(&b, 2).await;
    (cluster, a, b)
}

/// A broadcast to a room across nodes, binary included, and `except`.
async fn room_broadcast(mode: SubscriptionMode) {
    let (cluster, a, b) = two_nodes(mode).await;
    let (mut c1, s1) = a.client().await;
    let (mut c2, s2) = b.client().await;
    let (mut c3, _s3) = b.client().await;
    a.io().of("/").socket(&s1).unwrap().join(["r"]);
    b.io().of("/").socket(&s2).unwrap().join(["r"]);
    if mode != SubscriptionMode::Static {
        wait_room_subscribers(&cluster, "socket.io#/#r#", 2).await;
    }

    a.io()
        .to("r")
        .emit(
            "hello",
            &("x", Value::Binary(bytes::Bytes::from_static(&[1, 2, 3]))),
        )
        .unwrap();
    for c in [&mut c1, &mut c2] {
        assert_eq!(
            next_text(c).await,
            r#"451-["hello","x",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(c.recv().await, Incoming::Binary(vec![1, 2, 3].into()));
    }
    expect_silence(&mut c3, QUIET).await;

    // Plain JSON too, from the other node.
    b.io().to("r").emit("again", &1).unwrap();
    assert_eq!(next_text(&mut c1).await, r#"42["again",1]"#);
    assert_eq!(next_text(&mut c2).await, r#"42["again",1]"#);
    expect_silence(&mut c3, QUIET).await;

    // To one socket of the other node (its private room).
    a.io().to(s2.as_str()).emit("direct", &()).unwrap();
    assert_eq!(next_text(&mut c2).await, r#"42["direct"]"#);
    expect_silence(&mut c3, QUIET).await;

    // except, everyone.
    b.io().except("r").emit("ex", &1).unwrap();
    assert_eq!(next_text(&mut c3).await, r#"42["ex",1]"#);
    expect_silence(&mut c1, QUIET).await;
    a.io().emit("all", &()).unwrap();
    for c in [&mut c1, &mut c2, &mut c3] {
        assert_eq!(next_text(c).await, r#"42["all"]"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_to_a_room_dynamic() {
    room_broadcast(SubscriptionMode::Dynamic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_to_a_room_static() {
    room_broadcast(SubscriptionMode::Static).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_to_a_room_dynamic_private() {
    room_broadcast(SubscriptionMode::DynamicPrivate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamic_room_channels_follow_the_rooms() {
    let (cluster, a, _b) = two_nodes(SubscriptionMode::Dynamic).await;
    let (_c1, s1) = a.client().await;
    let socket = a.io().of("/").socket(&s1).unwrap();
    socket.join(["room-x"]);
    wait_room_subscribers(&cluster, "socket.io#/#room-x#", 1).await;
    socket.leave("room-x");
    let urls = cluster.urls();
    let gone = async {
        for _ in 0..250 {
            let mut total = 0;
            for url in &urls {
                let c = redis::Client::open(url.as_str()).unwrap();
                let mut s = c.get_multiplexed_async_connection().await.unwrap();
                let v: Vec<redis::Value> = redis::cmd("PUBSUB")
                    .arg("SHARDNUMSUB")
                    .arg("socket.io#/#room-x#")
                    .query_async(&mut s)
                    .await
                    .unwrap();
                if let Some(redis::Value::Int(k)) = v.get(1) {
                    total += k;
                }
            }
            if total == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(gone.await, "unsubscribed once the room is empty");
}

/// Reads `42<id>["ask",…]` and answers it with `43<id>[answer]`.
async fn answer_ask(c: &mut Client, answer: &str) {
    let t = next_text(c).await;
    let rest = t.strip_prefix("42").expect("event");
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    assert!(rest[digits.len()..].starts_with(r#"["ask""#), "{t}");
    c.send(&format!(r#"43{digits}["{answer}"]"#)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_with_acks_across_nodes() {
    let (_cluster, a, b) = two_nodes(SubscriptionMode::Dynamic).await;
    let (mut c1, _) = a.client().await;
    let (mut c2, _) = b.client().await;
    let (mut c3, _) = b.client().await;
    let io = a.io().clone();
    let task = tokio::spawn(async move {
        io.timeout(Duration::from_secs(3))
            .emit_with_ack("ask", &())
            .await
    });
    answer_ask(&mut c1, "one").await;
    answer_ask(&mut c2, "two").await;
    answer_ask(&mut c3, "three").await;
    let acks = task.await.unwrap().expect("all acks");
    let mut got: Vec<String> = acks
        .into_iter()
        .map(|a| a.0[0].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["one", "three", "two"]);

    // One remote client stays silent: the timeout comes with what arrived.
    let io = a.io().clone();
    let task = tokio::spawn(async move {
        io.timeout(Duration::from_millis(800))
            .emit_with_ack("ask", &())
            .await
    });
    answer_ask(&mut c1, "one").await;
    answer_ask(&mut c2, "two").await;
    let _ = next_text(&mut c3).await;
    let (err, partial) = task.await.unwrap().expect_err("timeout");
    assert!(matches!(err, ferrio::AckError::Timeout), "{err:?}");
    assert_eq!(partial.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetch_sockets_join_leave_disconnect_and_count() {
    let (_cluster, a, b) = two_nodes(SubscriptionMode::Dynamic).await;
    assert_eq!(b.io().of("/").adapter().server_count().await, 2);
    let (_c1, s1) = a.client().await;
    let (mut c2, s2) = b.client().await;
    let remote = b.io().of("/").socket(&s2).unwrap();
    remote.join(["far"]);
    remote.set_data(&serde_json::json!({"node": "b"})).unwrap();

    let mut seen = a.io().fetch_sockets().await;
    seen.sort_by(|x, y| x.id().cmp(y.id()));
    let ids: Vec<&str> = seen.iter().map(|s| s.id()).collect();
    let mut want = vec![s1.as_str(), s2.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let far = seen.iter().find(|s| s.id() == s2).unwrap();
    let mut rooms = far.rooms().to_vec();
    rooms.sort();
    let mut want_rooms = vec!["far".to_owned(), s2.clone()];
    want_rooms.sort();
    assert_eq!(rooms, want_rooms);
    assert!(far.handshake().url.starts_with("/socket.io/"));
    assert_eq!(a.io().to("far").fetch_sockets().await.len(), 1);

    a.io().of("/").sockets_join(["everyone"]).await;
    assert!(
        eventually(Duration::from_secs(2), || remote
            .rooms()
            .iter()
            .any(|r| &**r == "everyone"))
        .await
    );
    assert!(
        a.io()
            .of("/")
            .socket(&s1)
            .unwrap()
            .rooms()
            .iter()
            .any(|r| &**r == "everyone")
    );
    a.io().to("far").sockets_leave(["everyone"]).await;
    assert!(
        eventually(Duration::from_secs(2), || !remote
            .rooms()
            .iter()
            .any(|r| &**r == "everyone"))
        .await
    );

    a.io().to("far").disconnect_sockets(false).await;
    assert_eq!(next_text(&mut c2).await, "41");
    assert!(
        eventually(Duration::from_secs(2), || b
            .io()
            .of("/")
            .socket(&s2)
            .is_none())
        .await
    );
    assert!(a.io().of("/").socket(&s1).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_side_emit_with_and_without_acks() {
    let (cluster, a, b) = two_nodes(SubscriptionMode::Dynamic).await;
    let got: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    let g = got.clone();
    b.io().of("/").on_server_side("hi", move |args, sink| {
        g.lock().push(args.clone());
        if let Some(sink) = sink {
            let _ = sink.send(AckEvent::Response(vec![Value::from("pong")]));
        }
    });
    let own: Arc<Mutex<usize>> = Arc::default();
    let o = own.clone();
    a.io()
        .of("/")
        .on_server_side("hi", move |_, _| *o.lock() += 1);

    a.io().server_side_emit("hi", &(1, "two")).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || got.lock().len() == 1).await);
    assert_eq!(got.lock()[0], vec![Value::from(1u64), Value::from("two")]);

    let acks = a
        .io()
        .of("/")
        .server_side_emit_with_ack("hi", &(), Duration::from_secs(2))
        .await
        .expect("one ack");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, vec![Value::from("pong")]);
    assert_eq!(*own.lock(), 0);

    // A third node that never answers: the request ends at its timeout with what arrived.
    let c = Node::start(&cluster, SubscriptionMode::Dynamic).await;
    c.io().of("/").on_server_side("hi", |_, _| {});
    wait_count(&a, 3).await;
    let (err, partial) = a
        .io()
        .of("/")
        .server_side_emit_with_ack("hi", &(), Duration::from_millis(700))
        .await
        .expect_err("timeout");
    assert!(matches!(err, ferrio::AckError::Timeout), "{err:?}");
    assert_eq!(partial.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wire_format_and_malformed_messages() {
    let (cluster, a, _b) = two_nodes(SubscriptionMode::Dynamic).await;
    let (mut c1, _) = a.client().await;
    // A broadcast as the official adapter writes it (JSON), from an unknown server.
    cluster
        .spublish(
            "socket.io#/#",
            br#"{"type":3,"data":{"packet":{"type":2,"data":["j",1],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}"#,
        )
        .await;
    assert_eq!(next_text(&mut c1).await, r#"42["j",1]"#);
    // Another namespace, our own uid-less garbage: ignored.
    cluster
        .spublish(
            "socket.io#/#",
            br#"{"type":3,"data":{"packet":{"type":2,"data":["k"],"nsp":"/x"},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/x"}"#,
        )
        .await;
    let before = a.redis.metrics().malformed;
    for p in [
        &b"{not json"[..],
        &[0xc1],
        br#"{"type":42,"uid":"z","nsp":"/"}"#,
        br#"{"type":3,"uid":"z","nsp":"/","data":{}}"#,
        b"[1,2]",
    ] {
        cluster.spublish("socket.io#/#", p).await;
    }
    assert!(
        eventually(Duration::from_secs(2), || a.redis.metrics().malformed
            - before
            >= 5)
        .await,
        "malformed counted"
    );
    expect_silence(&mut c1, QUIET).await;
    _b.io().emit("after", &()).unwrap();
    assert_eq!(next_text(&mut c1).await, r#"42["after"]"#);
}

/// What ferrio publishes, read with a raw SSUBSCRIBE: channels (`computeChannel`) and encoding
/// (JSON unless binary; MessagePack then).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wire_channels_and_encoding() {
    let (cluster, a, _b) = two_nodes(SubscriptionMode::Dynamic).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<redis::PushInfo>();
    let client = redis::cluster::ClusterClientBuilder::new(cluster.urls())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .build()
        .unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    for ch in [
        "socket.io#/#",
        "socket.io#/#r#",
        "socket.io#/#abcdefghijklmnopqrst#",
    ] {
        c.ssubscribe(ch).await.unwrap();
    }
    let mut next_message = async || -> (String, Vec<u8>) {
        loop {
            let p = tokio::time::timeout(Duration::from_secs(3), rx.recv())
                .await
                .expect("a message")
                .unwrap();
            if p.kind != redis::PushKind::SMessage {
                continue;
            }
            let mut d = p.data.into_iter();
            let (Some(redis::Value::BulkString(ch)), Some(redis::Value::BulkString(msg))) =
                (d.next(), d.next())
            else {
                panic!("smessage shape");
            };
            return (String::from_utf8(ch).unwrap(), msg);
        }
    };
    let uid = a
        .io()
        .of("/")
        .adapter()
        .as_any()
        .downcast_ref::<ferrio_redis::ShardedRedisAdapter>()
        .unwrap()
        .uid()
        .to_owned();
    assert_eq!(uid.len(), 16);
    assert!(uid.bytes().all(|b| b.is_ascii_hexdigit()));

    a.io().emit("plain", &1).unwrap();
    let (ch, msg) = next_message().await;
    assert_eq!(ch, "socket.io#/#");
    assert_eq!(
        String::from_utf8(msg).unwrap(),
        format!(
            r#"{{"type":3,"data":{{"packet":{{"type":2,"data":["plain",1],"nsp":"/"}},"opts":{{"rooms":[],"except":[],"flags":{{}}}}}},"uid":"{uid}","nsp":"/"}}"#
        )
    );

    // One public room: its own channel; binary: MessagePack.
    a.io()
        .to("r")
        .emit("bin", &Value::Binary(bytes::Bytes::from_static(&[1, 2])))
        .unwrap();
    let (ch, msg) = next_message().await;
    assert_eq!(ch, "socket.io#/#r#");
    assert_eq!(msg[0], 0x84, "a 4-entry msgpack map");
    let v = ferrio_redis::msgpack::decode(&msg).unwrap();
    assert_eq!(v.get("type").and_then(Value::as_u64), Some(3));
    assert_eq!(v.get("uid").and_then(Value::as_str), Some(uid.as_str()));

    // A room of 20 characters looks like a socket id: the namespace channel.
    a.io().to("abcdefghijklmnopqrst").emit("sid", &()).unwrap();
    let (ch, _) = next_message().await;
    assert_eq!(ch, "socket.io#/#");

    // Two rooms, and a broadcast with acks: the namespace channel.
    a.io().to("r").to("q").emit("two", &()).unwrap();
    assert_eq!(next_message().await.0, "socket.io#/#");
    let io = a.io().clone();
    let acks = tokio::spawn(async move {
        io.to("r")
            .timeout(Duration::from_millis(300))
            .emit_with_ack("ask", &())
            .await
    });
    let (ch, msg) = next_message().await;
    assert_eq!(ch, "socket.io#/#");
    let v = Value::from_json(std::str::from_utf8(&msg).unwrap()).unwrap();
    assert_eq!(
        v.get("data")
            .and_then(|d| d.get("requestId"))
            .and_then(Value::as_str)
            .map(str::len),
        Some(16)
    );
    let _ = acks.await;

    // `static`: a room broadcast stays on the namespace channel.
    let s = Node::start(&cluster, SubscriptionMode::Static).await;
    s.io().to("r").emit("static", &()).unwrap();
    assert_eq!(next_message().await.0, "socket.io#/#");
}
