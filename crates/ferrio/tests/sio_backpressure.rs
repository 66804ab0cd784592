//! Backpressure and ordering (BAD_INPUTS case 33): a client that stops reading is disconnected as a
//! slow consumer instead of being buffered for forever, volatile packets to it are dropped, other clients
//! are unaffected; one socket's events run in order, different sockets' events run concurrently.

mod sio_common;

use std::time::{Duration, Instant};

use ferrio::{DisconnectReason, Event, IoConfig, Socket};
use sio_common::*;

/// Most 1 KB messages a flood may emit before the test declares the buffering unbounded (100 MB).
const FLOOD_CAP: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
enum FloodEnd {
    /// `emit` failed after this many messages.
    Failed(usize),
    /// The cap was reached without any failure.
    Unbounded,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c33_slow_consumer_is_disconnected() {
    // Heartbeats far apart: the slow client answers no ping, and on a loaded machine the 400 ms window of
    // the default test heartbeat can run out before the flood fills its budget ("ping timeout" first).
    let server = TestServer::start(
        IoConfig::builder()
            .ping_interval(Duration::from_secs(5))
            .ping_timeout(Duration::from_secs(5))
            .build(),
    )
    .await;
    install_echo(&server.io);
    let ends = Log::<FloodEnd>::new();
    let reasons = Log::<DisconnectReason>::new();
    let (e, r) = (ends.clone(), reasons.clone());
    server.io.on_connection(move |socket: Socket| {
        let (e, r) = (e.clone(), r.clone());
        async move {
            socket.on("flood", move |s: Socket, _ev: Event| {
                let e = e.clone();
                async move {
                    let payload = "x".repeat(1024);
                    let mut end = FloodEnd::Unbounded;
                    for i in 0..FLOOD_CAP {
                        if s.emit("m", &payload).is_err() {
                            end = FloodEnd::Failed(i);
                            break;
                        }
                        if i % 256 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    e.push(end);
                }
            });
            socket.on_disconnect(move |_s, reason| {
                let r = r.clone();
                async move { r.push(reason) }
            });
        }
    });
    let mut healthy = server.joined().await;

    // The slow client joins, asks for the flood, and never reads again.
    let mut ws = raw_ws(server.addr).await;
    read_open(&mut ws).await;
    raw_join(&mut ws).await;
    {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            r#"42["flood"]"#,
        ))
        .await
        .unwrap();
    }
    let start = Instant::now();
    // The healthy client is served while the flood runs.
    let mut n = 0;
    while ends.is_empty() && start.elapsed() < Duration::from_secs(5) {
        n += 1;
        healthy.assert_echo(n, "\"during\"").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until(Duration::from_secs(5), "flood ended", || !ends.is_empty()).await;
    let end = ends.get()[0].clone();
    let FloodEnd::Failed(sent) = end else {
        panic!("{FLOOD_CAP} messages of 1 KB were buffered for a client that does not read")
    };
    wait_until(Duration::from_secs(3), "slow client disconnected", || {
        !reasons.is_empty()
    })
    .await;
    assert_eq!(reasons.get(), vec![DisconnectReason::TransportError]);
    server.wait_clients(1, Duration::from_secs(3)).await;
    eprintln!(
        "slow consumer cut after {sent} messages, {:?}",
        start.elapsed()
    );
    healthy.assert_echo(1000, "\"after\"").await;
    healthy.expect_open(Duration::from_millis(50)).await;
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c33_volatile_emits_are_dropped_without_disconnecting() {
    // Heartbeats far apart: a ping queued while the queue is full would close the session on purpose.
    let server = TestServer::start(
        IoConfig::builder()
            .ping_interval(Duration::from_secs(5))
            .ping_timeout(Duration::from_secs(5))
            .max_buffered_packets(64)
            .build(),
    )
    .await;
    install_echo(&server.io);
    let results = Log::<(usize, usize, bool)>::new();
    let reasons = Log::<DisconnectReason>::new();
    let (res, r) = (results.clone(), reasons.clone());
    let total = 20_000;
    server.io.on_connection(move |socket: Socket| {
        let (res, r) = (res.clone(), r.clone());
        async move {
            socket.on("vflood", move |s: Socket, _ev: Event| {
                let res = res.clone();
                async move {
                    let payload = "v".repeat(1024);
                    let (mut ok, mut dropped) = (0, 0);
                    for i in 0..total {
                        match s.emit_volatile("v", &payload) {
                            Ok(()) => ok += 1,
                            Err(_) => dropped += 1,
                        }
                        if i % 256 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    res.push((ok, dropped, s.connected()));
                }
            });
            socket.on_disconnect(move |_s, reason| {
                let r = r.clone();
                async move { r.push(reason) }
            });
        }
    });
    let mut ws = raw_ws(server.addr).await;
    let sid = read_open(&mut ws).await;
    raw_join(&mut ws).await;
    {
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            r#"42["vflood"]"#,
        ))
        .await
        .unwrap();
    }
    wait_until(Duration::from_secs(5), "volatile flood ended", || {
        !results.is_empty()
    })
    .await;
    let (ok, dropped, connected) = results.get()[0];
    assert_eq!(ok + dropped, total);
    assert!(
        dropped > 0,
        "nothing was dropped: {ok} volatile packets queued"
    );
    assert!(connected, "volatile packets disconnected the socket");
    assert!(reasons.is_empty(), "disconnected: {:?}", reasons.get());
    assert_eq!(server.io.clients_count(), 1);

    // Now read: what was queued arrives, then the connection works normally.
    let mut c = Client::wrap(ws, sid);
    let mut received = 0;
    while let Some(Incoming::Text(t)) = c.recv_within(Duration::from_millis(500)).await {
        assert!(t.starts_with(r#"42["v""#), "{}", &t[..t.len().min(40)]);
        received += 1;
    }
    assert_eq!(received, ok, "every queued volatile packet arrives, once");
    c.assert_echo(1, "\"alive\"").await;
    assert!(reasons.is_empty());
}

/// Floods room "all" from a plain thread (so that a hang cannot stall the test's runtime) until the slow
/// client is cut or `FLOOD_CAP` is reached; `volatile` floods with volatile broadcasts. Returns the
/// number of broadcasts sent, or None if the flood did not finish within 8 s (the emitting thread hangs).
async fn broadcast_flood(
    server: &TestServer,
    healthy: &mut Client,
    reasons: &Log<DisconnectReason>,
    volatile: bool,
) -> (Option<usize>, usize) {
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let handle = tokio::runtime::Handle::current();
    let io = server.io.clone();
    let r = reasons.clone();
    std::thread::spawn(move || {
        let _guard = handle.enter();
        let payload = "b".repeat(1024);
        let mut sent = 0;
        let start = Instant::now();
        while r.is_empty() && sent < FLOOD_CAP && start.elapsed() < Duration::from_secs(4) {
            let op = if volatile {
                io.volatile().to("all")
            } else {
                io.to("all")
            };
            op.emit("b", &payload).unwrap();
            sent += 1;
            if sent % 128 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = done_tx.send(sent);
    });
    // The healthy client reads everything as it comes.
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(8);
    let sent = loop {
        if let Ok(n) = done_rx.try_recv() {
            break Some(n);
        }
        if Instant::now() > deadline {
            break None;
        }
        if let Some(i) = healthy.recv_within(Duration::from_millis(5)).await {
            assert!(
                matches!(&i, Incoming::Text(t) if t.starts_with(r#"42["b""#)),
                "{i:?}"
            );
            received += 1;
        }
    };
    (sent, received)
}

async fn slow_and_healthy() -> (TestServer, Log<DisconnectReason>, Client, Ws) {
    // Heartbeats far apart, so that the cut comes from the full queue, not from the unanswered pings.
    let server = TestServer::start(patient_config(256)).await;
    install_echo(&server.io);
    let reasons = Log::<DisconnectReason>::new();
    let r = reasons.clone();
    server.io.on_connection(move |socket: Socket| {
        let r = r.clone();
        async move {
            socket.join(["all"]).unwrap();
            socket.on_disconnect(move |_s, reason| {
                let r = r.clone();
                async move { r.push(reason) }
            });
        }
    });
    let healthy = server.joined().await;
    let mut ws = raw_ws(server.addr).await;
    read_open(&mut ws).await;
    raw_join(&mut ws).await;
    (server, reasons, healthy, ws)
}

/// A broadcast (non-volatile) to a client that stops reading disconnects it; the others keep receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c33_broadcast_flood_cuts_only_the_slow_client() {
    let (server, reasons, mut healthy, ws) = slow_and_healthy().await;
    let (sent, mut received) = broadcast_flood(&server, &mut healthy, &reasons, false).await;
    let Some(sent) = sent else {
        panic!(
            "io.to(room).emit() never returned after the slow client's queue filled \
             (disconnect reasons so far: {:?})",
            reasons.get()
        )
    };
    wait_until(Duration::from_secs(3), "slow client cut", || {
        !reasons.is_empty()
    })
    .await;
    assert_eq!(reasons.get(), vec![DisconnectReason::TransportError]);
    while received < sent {
        match healthy.recv().await {
            Incoming::Text(t) => {
                assert!(t.starts_with(r#"42["b""#));
                received += 1;
            }
            other => panic!("{other:?} after {received}/{sent}"),
        }
    }
    healthy.assert_echo(1, "1").await;
    drop(ws);
}

/// Volatile broadcasts to a client that stops reading are dropped for it; nobody is disconnected and the
/// healthy client gets every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c33_volatile_broadcast_flood_drops_for_the_slow_client() {
    let (server, reasons, mut healthy, ws) = slow_and_healthy().await;
    let (sent, mut received) = broadcast_flood(&server, &mut healthy, &reasons, true).await;
    let sent = sent.expect("the volatile flood hung");
    assert!(reasons.is_empty(), "disconnected: {:?}", reasons.get());
    while received < sent {
        match healthy.recv().await {
            Incoming::Text(t) => {
                assert!(t.starts_with(r#"42["b""#));
                received += 1;
            }
            other => panic!("{other:?} after {received}/{sent}"),
        }
    }
    healthy.assert_echo(1, "1").await;
    // The slow client is still connected, and gets some, not all, of the flood once it reads.
    let mut slow = Client::wrap(ws, String::new());
    let mut got = 0;
    while let Some(Incoming::Text(t)) = slow.recv_within(Duration::from_millis(500)).await {
        assert!(t.starts_with(r#"42["b""#));
        got += 1;
    }
    assert!(got > 0 && got < sent, "slow client got {got} of {sent}");
    slow.assert_echo(2, "2").await;
    assert!(reasons.is_empty());
    assert_eq!(server.io.clients_count(), 2);
}

// ---- ordering and concurrency ----

/// A cheap deterministic pseudo-random sequence (xorshift).
fn jitter(i: u64) -> Duration {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Duration::from_micros(x % 1500)
}

/// Heartbeats far enough apart that a backlog of events is drained well within them.
fn patient_config(max_pending_events: usize) -> IoConfig {
    IoConfig::builder()
        .ping_interval(Duration::from_secs(5))
        .ping_timeout(Duration::from_secs(5))
        .max_pending_events(max_pending_events)
        .build()
}

/// Sends 1000 `seq` events at once; the handler sleeps a little for each. Returns the order in which
/// they were handled and the disconnect reasons seen.
async fn events_in_order(config: IoConfig) -> (Vec<u64>, Vec<DisconnectReason>) {
    let server = TestServer::start(config).await;
    let seen = Log::<u64>::new();
    let reasons = Log::<DisconnectReason>::new();
    let (s, r) = (seen.clone(), reasons.clone());
    server.io.on_connection(move |socket: Socket| {
        let (s, r) = (s.clone(), r.clone());
        async move {
            socket.on("seq", move |_s, ev: Event| {
                let s = s.clone();
                async move {
                    let i: u64 = ev.parse().unwrap();
                    tokio::time::sleep(jitter(i)).await;
                    s.push(i);
                }
            });
            socket.on_disconnect(move |_s, reason| {
                let r = r.clone();
                async move { r.push(reason) }
            });
        }
    });
    let c = server.joined().await;
    let n = 1000u64;
    for i in 0..n {
        c.send(&format!(r#"42["seq",{i}]"#)).await;
    }
    eventually(Duration::from_secs(10), || {
        seen.len() as u64 == n || !reasons.is_empty()
    })
    .await;
    // Let a late disconnect show up.
    tokio::time::sleep(Duration::from_millis(50)).await;
    (seen.get(), reasons.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_of_one_socket_are_handled_in_order() {
    let (seen, reasons) = events_in_order(patient_config(256)).await;
    assert!(reasons.is_empty(), "disconnected: {reasons:?}");
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

/// The same with a one-event queue: the connection's reader waits on every event (backpressure path).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_in_order_with_a_tiny_queue() {
    let (seen, reasons) = events_in_order(patient_config(1)).await;
    assert!(reasons.is_empty(), "disconnected: {reasons:?}");
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

/// The same with 200 ms + 200 ms heartbeats: draining the backlog takes longer than ping_timeout, but the
/// client answered every ping at once; its pong just sits behind its events while the reader waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_backlog_does_not_cause_a_ping_timeout() {
    let (seen, reasons) = events_in_order(config()).await;
    assert!(
        reasons.is_empty(),
        "disconnected with {reasons:?} after {} of 1000 events",
        seen.len()
    );
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

async fn slow_and_fast_server() -> (TestServer, Log<&'static str>) {
    let server = TestServer::start(config()).await;
    let log = Log::<&'static str>::new();
    for nsp in ["/", "/b"] {
        let l = log.clone();
        server.io.of(nsp).on_connection(move |socket: Socket| {
            let l = l.clone();
            async move {
                let l2 = l.clone();
                socket.on("slow", move |_s, mut ev: Event| {
                    let l = l2.clone();
                    async move {
                        l.push("slow start");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        l.push("slow end");
                        let _ = ev.ack(&"slow");
                    }
                });
                socket.on("fast", move |_s, mut ev: Event| {
                    let l = l.clone();
                    async move {
                        l.push("fast");
                        let _ = ev.ack(&"fast");
                    }
                });
            }
        });
    }
    (server, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sockets_of_two_connections_run_concurrently() {
    let (server, log) = slow_and_fast_server().await;
    let mut a = server.joined().await;
    let mut b = server.joined().await;
    a.send(r#"421["slow"]"#).await;
    wait_until(Duration::from_secs(2), "slow started", || log.len() == 1).await;
    let t = Instant::now();
    b.send(r#"422["fast"]"#).await;
    assert_eq!(b.recv_text().await, r#"432["fast"]"#);
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "socket B waited {:?} for socket A's handler",
        t.elapsed()
    );
    assert_eq!(a.recv_text().await, r#"431["slow"]"#);
    assert_eq!(log.get(), vec!["slow start", "fast", "slow end"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sockets_of_two_namespaces_on_one_connection_run_concurrently() {
    let (server, log) = slow_and_fast_server().await;
    let mut c = server.joined().await;
    c.join("/b").await;
    c.send(r#"421["slow"]"#).await;
    wait_until(Duration::from_secs(2), "slow started", || log.len() == 1).await;
    let t = Instant::now();
    c.send(r#"42/b,2["fast"]"#).await;
    assert_eq!(c.recv_text().await, r#"43/b,2["fast"]"#);
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "/b waited {:?} for /'s handler",
        t.elapsed()
    );
    assert_eq!(c.recv_text().await, r#"431["slow"]"#);
    // Within one socket, the fast event waits for the slow one.
    c.send(r#"423["slow"]"#).await;
    c.send(r#"424["fast"]"#).await;
    assert_eq!(c.recv_text().await, r#"433["slow"]"#);
    assert_eq!(c.recv_text().await, r#"434["fast"]"#);
}

/// A handler that takes longer than ping_interval + ping_timeout does not stop the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_handler_does_not_block_heartbeats() {
    let server = TestServer::start(config()).await;
    install_echo(&server.io);
    server.io.on_connection(|socket: Socket| async move {
        socket.on("long", |_s, mut ev: Event| async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let _ = ev.ack(&"done");
        });
    });
    let mut c = server.joined().await;
    let pings = c.pings();
    c.send(r#"421["long"]"#).await;
    assert_eq!(c.recv_text().await, r#"431["done"]"#);
    assert!(c.pings() >= pings + 2, "pings kept coming");
    c.assert_echo(2, "2").await;
}
