//! What is particular to the sharded adapter (SSUBSCRIBE / SPUBLISH), with ferrio nodes on a private
//! 3-node Redis Cluster: room channels and the wire format. The `Adapter` contract itself, in every
//! subscription mode, is checked by the conformance suite (`conformance_sharded.rs`).

mod common;

use std::time::Duration;

use common::{RedisCluster, eventually, expect_silence, next_text, wait_cluster};
use ferrio::Value;
use ferrio_redis::{ShardedTransport, SubscriptionMode};

const QUIET: Duration = Duration::from_millis(300);

type Node = common::Node<ShardedTransport>;

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
    let a = Node::sharded(&cluster, mode).await;
    let b = Node::sharded(&cluster, mode).await;
    wait_cluster(&a, 2).await;
    wait_cluster(&b, 2).await;
    (cluster, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamic_room_channels_follow_the_rooms() {
    let (cluster, a, _b) = two_nodes(SubscriptionMode::Dynamic).await;
    let (_c1, s1) = a.client().await;
    let socket = a.io().of("/").socket(&s1).unwrap();
    socket.join(["room-x"]).unwrap();
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
    let s = Node::sharded(&cluster, SubscriptionMode::Static).await;
    s.io().to("r").emit("static", &()).unwrap();
    assert_eq!(next_message().await.0, "socket.io#/#");
}
