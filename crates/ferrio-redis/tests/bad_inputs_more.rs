//! BAD_INPUTS.md case 40 on the classic Redis adapter: a node that is counted but never answers (it
//! died mid-request) leaves `fetch_sockets`, `all_rooms` and `server_side_emit` with acks to end at
//! their timeout with what the live nodes sent.

// The shared helpers hold more than this file uses.
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::{Node, Redis, wait_cluster};
use ferrio::Value;
use ferrio_core::adapter::AckEvent;
use ferrio_redis::RedisAdapterConfig;

const TIMEOUT: Duration = Duration::from_millis(500);

/// Asserts that a request took about its timeout: not less (it waited for the silent node), not much
/// more (it did not hang).
fn took_the_timeout(elapsed: Duration, what: &str) {
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50),
        "{what} ended after {elapsed:?}, before its timeout"
    );
    assert!(
        elapsed < TIMEOUT + Duration::from_secs(2),
        "{what} ended after {elapsed:?}, long past its timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c40_a_node_that_dies_mid_request_leaves_requests_to_their_timeout() {
    let redis = Redis::start();
    let config = RedisAdapterConfig::builder()
        .requests_timeout(TIMEOUT)
        .build();
    let (a, b) = (
        Node::start_with(&redis.url(), config.clone()).await,
        Node::start_with(&redis.url(), config).await,
    );
    wait_cluster(&a, 2).await;
    let (_c1, s1) = a.client().await;
    let (_c2, s2) = b.client().await;
    b.io().of("/").socket(&s2).unwrap().join(["far"]).unwrap();
    b.io().of("/").on_server_side("sync", |_, sink| {
        if let Some(sink) = sink {
            let _ = sink.send(AckEvent::Response(vec![Value::from("b")]));
        }
    });

    // The dead node: subscribed to the request channel (so NUMSUB counts it), it never answers.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut dead = client.get_async_pubsub().await.unwrap();
    dead.subscribe("socket.io-request#/#").await.unwrap();
    wait_cluster(&a, 3).await;

    // fetch_sockets: the live nodes' sockets, at the timeout.
    let t = Instant::now();
    let mut ids: Vec<String> = a
        .io()
        .fetch_sockets()
        .await
        .iter()
        .map(|s| s.id().to_string())
        .collect();
    took_the_timeout(t.elapsed(), "fetch_sockets");
    ids.sort();
    let mut want = vec![s1.clone(), s2.clone()];
    want.sort();
    assert_eq!(ids, want);

    // all_rooms: the live nodes' rooms, at the timeout.
    let t = Instant::now();
    let rooms = a.io().of("/").all_rooms().await;
    took_the_timeout(t.elapsed(), "all_rooms");
    for room in ["far", s1.as_str(), s2.as_str()] {
        assert!(rooms.iter().any(|r| &**r == room), "{room} in {rooms:?}");
    }

    // server_side_emit with acks: a timeout error that carries B's answer.
    let t = Instant::now();
    let err = a
        .io()
        .timeout(TIMEOUT)
        .server_side_emit_with_ack("sync", &1)
        .await
        .expect_err("the dead node never answers");
    took_the_timeout(t.elapsed(), "server_side_emit_with_ack");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.responses().len(), 1, "{err:?}");
    assert_eq!(err.responses()[0].0, vec![Value::from("b")]);

    // Once the dead node is gone for good, requests complete at once again.
    drop(dead);
    wait_until_count(&a, 2).await;
    let t = Instant::now();
    assert_eq!(a.io().fetch_sockets().await.len(), 2);
    assert!(t.elapsed() < TIMEOUT, "{:?}", t.elapsed());
}

/// Waits until node `a` counts exactly `n` servers.
async fn wait_until_count(a: &Node, n: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let count = a.io().of("/").adapter().server_count().await;
        if count == n {
            return;
        }
        assert!(Instant::now() < end, "server count stays {count}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
