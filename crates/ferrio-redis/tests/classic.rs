//! What is particular to the classic Redis adapter, with ferrio nodes on a private Redis: malformed
//! messages, Redis going away and coming back, the Rust emitter, ALL_ROOMS. The `Adapter` contract
//! itself is checked by the conformance suite (`conformance_classic.rs`).

mod common;

use std::time::Duration;

use common::{Node, Redis, eventually, expect_silence, next_text, wait_cluster};
use ferrio::Value;
use ferrio_redis::RedisAdapterConfig;

const QUIET: Duration = Duration::from_millis(300);

/// `all_rooms` asks every node (the classic adapter's ALL_ROOMS request), and answers come back on the
/// requester's own channel when `publish_on_specific_response_channel` is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_rooms_of_every_node_on_specific_response_channels() {
    let redis = Redis::start();
    let config = RedisAdapterConfig::builder()
        .publish_on_specific_response_channel(true)
        .build();
    let (a, b) = (
        Node::start_with(&redis.url(), config.clone()).await,
        Node::start_with(&redis.url(), config).await,
    );
    wait_cluster(&a, 2).await;
    let (_c1, s1) = a.client().await;
    let (_c2, s2) = b.client().await;
    b.io().of("/").socket(&s2).unwrap().join(["far"]).unwrap();
    let rooms = a.io().of("/").all_rooms().await;
    for want in ["far", s1.as_str(), s2.as_str()] {
        assert!(rooms.iter().any(|r| &**r == want), "{want} in {rooms:?}");
    }
    assert_eq!(a.io().fetch_sockets().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_are_ignored_and_counted() {
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
    let (mut c1, _) = a.client().await;
    let before = a.redis.metrics().malformed;
    let bad: [&[u8]; 8] = [
        b"garbage",
        &[0xc1],
        &[0x93, 0xa1],
        &[0x92, 0xa1, 0x78, 0x01],
        &[
            0x93, 0xa3, b'x', b'y', b'z', 0x81, 0xa4, b't', b'y', b'p', b'e', 0x02, 0x80,
        ],
        &[0xdd, 0xff, 0xff, 0xff, 0xff],
        &[0x91; 10_000],
        b"",
    ];
    for p in bad {
        redis.publish("socket.io#/#", p).await;
    }
    for p in [
        &b"{not json"[..],
        br#"{"uid":"zzz","type":42}"#,
        br#"{"uid":"zzz","type":"x"}"#,
        br#"{"uid":"zzz","type":6,"data":[]}"#,
        br#"{"uid":"zzz","type":5,"requestId":"r"}"#,
        &[0x81, 0xa4, b't', b'y', b'p', b'e', 0x07],
        b"[1,2,3]",
    ] {
        redis.publish("socket.io-request#/#", p).await;
    }
    redis.publish("socket.io-response#/#", b"{oops").await;
    let malformed = || a.redis.metrics().malformed - before;
    assert!(
        eventually(Duration::from_secs(2), || malformed() >= 15).await,
        "malformed counted: {}",
        malformed()
    );
    // Still working.
    b.io().emit("after", &()).unwrap();
    assert_eq!(next_text(&mut c1).await, r#"42["after"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_under_load_then_restarted() {
    let mut redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
    let (mut c1, _) = a.client().await;
    let (mut c2, _) = b.client().await;
    a.io().emit("before", &()).unwrap();
    assert_eq!(next_text(&mut c2).await, r#"42["before"]"#);
    assert_eq!(next_text(&mut c1).await, r#"42["before"]"#);

    // Load: A emits continuously while Redis dies; A's own client gets every event.
    let io = a.io().clone();
    let load = tokio::spawn(async move {
        for i in 0..400u32 {
            io.emit("n", &i).unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis.kill();
    for i in 0..400u32 {
        assert_eq!(next_text(&mut c1).await, format!(r#"42["n",{i}]"#));
    }
    load.await.unwrap();
    // Drain whatever reached B before the kill.
    while c2.recv_within(Duration::from_millis(100)).await.is_some() {}
    // Operations that need other nodes complete without them.
    assert_eq!(a.io().fetch_sockets().await.len(), 1);
    assert_eq!(a.io().of("/").adapter().server_count().await, 1);
    assert!(a.redis.metrics().dropped > 0);

    redis.restart();
    assert!(
        eventually(Duration::from_secs(8), || a.redis.is_connected()
            && b.redis.is_connected())
        .await,
        "reconnected"
    );
    wait_cluster(&a, 2).await;
    a.io().emit("after", &()).unwrap();
    assert_eq!(next_text(&mut c2).await, r#"42["after"]"#);
    b.io().emit("back", &()).unwrap();
    loop {
        let t = next_text(&mut c1).await;
        if t == r#"42["back"]"# {
            break;
        }
        assert_eq!(t, r#"42["after"]"#);
    }
    assert!(a.redis.metrics().reconnects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_emitter_reaches_every_node() {
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
    let (mut c1, s1) = a.client().await;
    let (mut c2, _) = b.client().await;
    a.io().of("/").socket(&s1).unwrap().join(["r"]).unwrap();
    let emitter = ferrio_redis::Emitter::connect(&redis.url(), Default::default())
        .await
        .unwrap();
    emitter.emit("e", vec![Value::from(1u64)]).await.unwrap();
    assert_eq!(next_text(&mut c1).await, r#"42["e",1]"#);
    assert_eq!(next_text(&mut c2).await, r#"42["e",1]"#);
    emitter.clone().to("r").emit("r", vec![]).await.unwrap();
    assert_eq!(next_text(&mut c1).await, r#"42["r"]"#);
    expect_silence(&mut c2, QUIET).await;
    emitter.sockets_join(&["j"]).await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || b
            .io()
            .of("/")
            .sockets()
            .iter()
            .all(|s| s.rooms().iter().any(|r| &**r == "j")))
        .await
    );
    emitter.close();
}
