//! Two ferrio nodes on one private Redis behave as one server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Incoming, Node, Redis, eventually, expect_silence, next_text, wait_cluster};
use ferrio::Value;
use ferrio::adapter::AckEvent;
use parking_lot::Mutex;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_rooms_except_and_binary_across_nodes() {
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
    let (mut c1, s1) = a.client().await;
    let (mut c2, s2) = b.client().await;
    let (mut c3, _s3) = b.client().await;
    a.io().of("/").socket(&s1).unwrap().join(["r"]);
    b.io().of("/").socket(&s2).unwrap().join(["r"]);

    // One room: the room channel; binary crosses as msgpack bin and reaches the client as an attachment.
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

    // except, from the other node.
    b.io().except("r").emit("ex", &1).unwrap();
    assert_eq!(next_text(&mut c3).await, r#"42["ex",1]"#);
    expect_silence(&mut c1, QUIET).await;
    expect_silence(&mut c2, QUIET).await;

    // Everyone; and `local` stays on its node.
    a.io().emit("all", &()).unwrap();
    for c in [&mut c1, &mut c2, &mut c3] {
        assert_eq!(next_text(c).await, r#"42["all"]"#);
    }
    a.io().local().emit("mine", &()).unwrap();
    assert_eq!(next_text(&mut c1).await, r#"42["mine"]"#);
    expect_silence(&mut c2, QUIET).await;

    // Two rooms: the namespace channel.
    b.io().of("/").socket(&_s3).unwrap().join(["q"]);
    a.io().to("r").to("q").emit("two", &()).unwrap();
    for c in [&mut c1, &mut c2, &mut c3] {
        assert_eq!(next_text(c).await, r#"42["two"]"#);
    }
}

/// Reads `42<id>["ask",…]` and answers it with `43<id>[answer]`.
async fn answer_ask(c: &mut common::Client, answer: &str) {
    let t = next_text(c).await;
    let rest = t.strip_prefix("42").expect("event");
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    assert!(rest[digits.len()..].starts_with(r#"["ask""#), "{t}");
    c.send(&format!(r#"43{digits}["{answer}"]"#)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcast_with_acks_across_nodes_and_timeout() {
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
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
    let _ = next_text(&mut c3).await; // never answered
    let (err, partial) = task.await.unwrap().expect_err("timeout");
    assert!(matches!(err, ferrio::AckError::Timeout), "{err:?}");
    assert_eq!(partial.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fetch_sockets_join_leave_disconnect_rooms_and_count() {
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
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
    assert_eq!(
        far.data::<serde_json::Value>().unwrap(),
        serde_json::json!({"node": "b"})
    );
    assert!(far.handshake().url.starts_with("/socket.io/"));

    let in_far = a.io().to("far").fetch_sockets().await;
    assert_eq!(in_far.len(), 1);

    let rooms = a.io().of("/").all_rooms().await;
    assert!(rooms.iter().any(|r| &**r == "far"), "{rooms:?}");

    // sockets_join / sockets_leave from A reach B's socket.
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

    // disconnect_sockets from A closes B's socket.
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
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis.url()).await,
        Node::start(&redis.url()).await,
    );
    wait_cluster(&a, 2).await;
    let got: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    let g = got.clone();
    b.io().of("/").on_server_side("hi", move |args, sink| {
        g.lock().push(args.clone());
        if let Some(sink) = sink {
            let _ = sink.send(AckEvent::Response(vec![Value::from("pong")]));
        }
    });
    // A gets its own events? No: a node never runs its own server-side emits.
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
    let c = Node::start(&redis.url()).await;
    c.io().of("/").on_server_side("hi", |_, _| {});
    wait_cluster(&a, 3).await;
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
    a.io().of("/").socket(&s1).unwrap().join(["r"]);
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
