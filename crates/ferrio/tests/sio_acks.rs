//! Acks the server waits for (BAD_INPUTS case 32): a silent client makes `emit_with_ack` time out, late
//! or unknown acks are ignored, and pending acks fail with `Disconnected` when the client goes away.

mod sio_common;

use std::time::{Duration, Instant};

use ferrio::{AckError, Socket, Value};
use sio_common::*;

/// The ack id of an event the server emitted (`42<id>["q",…]`).
fn ack_id_of(frame: &str, event: &str) -> u64 {
    let rest = frame
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("event expected, got {frame:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert!(
        rest[digits.len()..].starts_with(&format!("[\"{event}\"")),
        "{frame:?} is not {event}"
    );
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no ack id in {frame:?}"))
}

async fn socket_of(server: &TestServer, sid: &str) -> Socket {
    let main = server.io.of("/");
    wait_until(Duration::from_secs(2), "socket registered", || {
        main.socket(sid).is_some()
    })
    .await;
    main.socket(sid).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c32_ack_times_out_then_a_second_call_works() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;

    let s = socket.clone();
    let first = tokio::spawn(async move {
        let t = Instant::now();
        let r = s
            .timeout(Duration::from_millis(200))
            .emit_with_ack("q", &1)
            .await;
        (r, t.elapsed())
    });
    let frame = c.recv_text().await;
    let first_id = ack_id_of(&frame, "q");
    assert_eq!(frame, format!(r#"42{first_id}["q",1]"#));
    let (r, elapsed) = first.await.unwrap();
    assert!(matches!(r, Err(AckError::Timeout)), "{r:?}");
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(1500),
        "timed out after {elapsed:?}"
    );

    // A late answer to the expired ack is ignored, and does not answer the next call.
    c.send(&format!(r#"43{first_id}["late"]"#)).await;
    let s = socket.clone();
    let second = tokio::spawn(async move {
        s.timeout(Duration::from_secs(2))
            .emit_with_ack("q", &2)
            .await
    });
    let frame = c.recv_text().await;
    let second_id = ack_id_of(&frame, "q");
    assert_ne!(first_id, second_id);
    c.send(&format!(r#"43{second_id}["pong",{{"n":2}}]"#)).await;
    let args = second.await.unwrap().expect("second ack").into_inner();
    assert_eq!(args[0], Value::String("pong".into()));
    assert_eq!(args[1].get("n").and_then(Value::as_u64), Some(2));
    c.expect_open(Duration::from_millis(50)).await;
    assert!(socket.connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c32_many_expired_acks_then_normal_service() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = socket.clone();
        tasks.push(tokio::spawn(async move {
            s.timeout(Duration::from_millis(100))
                .emit_with_ack("q", &i)
                .await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(AckError::Timeout)));
    }
    // Drain the 200 events, then the connection still works both ways.
    for _ in 0..200 {
        let f = c.recv_text().await;
        assert!(f.starts_with("42"), "{f}");
    }
    c.assert_echo(1, "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c32_binary_ack_from_the_client() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;
    let s = socket.clone();
    let call = tokio::spawn(async move {
        s.timeout(Duration::from_secs(2))
            .emit_with_ack("q", &())
            .await
    });
    let id = ack_id_of(&c.recv_text().await, "q");
    c.send(&format!(r#"461-{id}[{{"_placeholder":true,"num":0}}]"#))
        .await;
    c.send_binary(vec![9u8, 8, 7]).await;
    let args = call.await.unwrap().expect("binary ack").into_inner();
    assert_eq!(args, vec![Value::Binary(vec![9u8, 8, 7].into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c32_pending_ack_fails_when_the_client_goes_away() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;
    let s = socket.clone();
    let pending = tokio::spawn(async move { s.emit_with_ack("q", &1).await });
    c.recv_text().await;
    c.close().await;
    let r = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("the pending ack must end when the client leaves")
        .unwrap();
    assert!(matches!(r, Err(AckError::Disconnected)), "{r:?}");
    // Emitting to a gone socket fails at once.
    let r = tokio::time::timeout(Duration::from_millis(500), socket.emit_with_ack("q", &2))
        .await
        .expect("an ack to a disconnected socket must not wait");
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c32_pending_ack_fails_on_namespace_disconnect() {
    let server = TestServer::start(config()).await;
    let mut c = server.client().await;
    let sid = c.join("/").await;
    let socket = socket_of(&server, &sid).await;
    let s = socket.clone();
    let pending = tokio::spawn(async move { s.emit_with_ack("q", &1).await });
    let id = ack_id_of(&c.recv_text().await, "q");
    c.send("41").await;
    let r = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("the pending ack must end when the socket leaves")
        .unwrap();
    assert!(matches!(r, Err(AckError::Disconnected)), "{r:?}");
    // An answer after leaving is for a namespace no longer joined: the connection is closed.
    c.send(&format!(r#"43{id}["late"]"#)).await;
    c.expect_closed(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c32_broadcast_ack_timeout_keeps_the_answers() {
    let server = TestServer::start(config()).await;
    let mut silent = server.joined().await;
    let mut talker = server.joined().await;
    let io = server.io.clone();
    let call = tokio::spawn(async move {
        io.timeout(Duration::from_millis(300))
            .emit_with_ack("q", &"all")
            .await
    });
    let f = silent.recv_text().await;
    ack_id_of(&f, "q");
    let id = ack_id_of(&talker.recv_text().await, "q");
    talker.send(&format!(r#"43{id}["yes"]"#)).await;
    let r = call.await.unwrap();
    let Err(e) = r else {
        panic!("timeout with partial answers expected, got {r:?}")
    };
    assert!(e.is_timeout(), "{e}");
    assert!(matches!(e.error(), AckError::Timeout));
    // A real error: it prints, and its source is the cause.
    assert_eq!(e.to_string(), "operation has timed out (1 acks arrived)");
    assert!(std::error::Error::source(&e).is_some());
    let got = e.into_responses();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, vec![Value::String("yes".into())]);

    // Both answer: Ok with both.
    let io = server.io.clone();
    let call = tokio::spawn(async move {
        io.timeout(Duration::from_secs(2))
            .emit_with_ack("q", &"again")
            .await
    });
    for c in [&mut silent, &mut talker] {
        let id = ack_id_of(&c.recv_text().await, "q");
        c.send(&format!(r#"43{id}[1]"#)).await;
    }
    let got = call.await.unwrap().expect("both answered");
    assert_eq!(got.len(), 2);
}
