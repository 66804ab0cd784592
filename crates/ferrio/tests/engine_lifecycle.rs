//! Engine.IO session lifecycle under hostile or broken clients (BAD_INPUTS.md cases 19–21): heartbeats,
//! packet floods and upgrade races.

mod common;

use ferrio::engine::EngineConfigBuilder;
use std::time::{Duration, Instant};

use common::*;
use ferrio::engine::EngineData;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// Ping interval + ping timeout of [`fast_config`].
const HEARTBEAT: Duration = Duration::from_millis(200);

/// Case 19: a websocket client that never answers pings is closed after ping_interval + ping_timeout.
#[tokio::test]
async fn websocket_without_pongs_times_out() {
    let s = Server::start(fast_config()).await;
    let t = Instant::now();
    let (mut ws, sid) = RawWs::open(s.addr).await;
    // The server pings after ping_interval.
    assert_eq!(ws.next_text().await.unwrap(), "2");
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t.elapsed()
    );
    let code = ws.close_code(Duration::from_secs(2)).await;
    assert!(code.is_some(), "the websocket was not closed");
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "ping timeout"
    );
    let elapsed = t.elapsed();
    assert!(
        elapsed >= HEARTBEAT - Duration::from_millis(10),
        "{elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 19: a client that never reads at all (a half-open peer) is closed just the same.
#[tokio::test]
async fn silent_websocket_peer_times_out() {
    let s = Server::start(fast_config()).await;
    let t = Instant::now();
    let (_ws, sid) = RawWs::open(s.addr).await;
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "ping timeout"
    );
    assert!(t.elapsed() >= HEARTBEAT - Duration::from_millis(10));
    assert_eq!(s.engine.clients_count(), 0);
}

/// Case 19: a polling client that never polls is closed after ping_interval + ping_timeout.
#[tokio::test]
async fn polling_client_that_never_polls_times_out() {
    let s = Server::start(fast_config()).await;
    let t = Instant::now();
    let sid = handshake(s.addr).await;
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "ping timeout"
    );
    let elapsed = t.elapsed();
    assert!(
        elapsed >= HEARTBEAT - Duration::from_millis(10),
        "{elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(s.engine.clients_count(), 0);
    assert_unknown_sid(&poll(s.addr, &sid).await);
}

/// Case 19 (control): clients that answer pings stay open well past the heartbeat.
#[tokio::test]
async fn clients_answering_pings_stay_open() {
    let s = Server::start(fast_config()).await;
    let (mut ws, ws_sid) = ws_open(s.addr).await;
    let sid = handshake(s.addr).await;
    let end = Instant::now() + Duration::from_millis(800);
    let websocket = async {
        let mut pings = 0;
        while Instant::now() < end {
            if let Ok(Some(m)) = ws_recv_within(&mut ws, Duration::from_millis(50)).await {
                assert_eq!(m, "2");
                pings += 1;
                ws_send(&mut ws, "3").await;
            }
        }
        pings
    };
    let polling = async {
        let mut pings = 0;
        while Instant::now() < end {
            let res = poll(s.addr, &sid).await;
            assert_eq!(res.status, 200, "{:?}", res.text());
            for packet in res.text().split('\x1e') {
                assert_eq!(packet, "2");
                pings += 1;
                assert_eq!(post(s.addr, &sid, b"3").await.status, 200);
            }
        }
        pings
    };
    let (ws_pings, polling_pings) = tokio::join!(websocket, polling);
    assert!(ws_pings >= 3, "{ws_pings}");
    assert!(polling_pings >= 3, "{polling_pings}");
    assert!(s.closes().is_empty(), "{:?}", s.closes());
    assert_eq!(s.engine.clients_count(), 2);
    // Then they stop answering, and time out.
    assert_eq!(
        s.wait_close(&ws_sid, Duration::from_secs(1)).await,
        "ping timeout"
    );
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "ping timeout"
    );
}

/// Case 20: floods of `3`, `6`, `5` on a websocket session are harmless; the session stays responsive.
/// Then `2probe` on the established session is a client ping, which v4 forbids: "transport error".
#[tokio::test]
async fn websocket_flood_of_control_packets() {
    let s = Server::start(quiet_config()).await;
    let (mut ws, sid) = ws_open(s.addr).await;
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let t = Instant::now();
    for packet in ["3", "6", "5", "3probe", "6x"] {
        for _ in 0..10_000 {
            ws.feed(Message::text(packet)).await.unwrap();
        }
        ws.flush().await.unwrap();
    }
    ws_send(&mut ws, "4after").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4after"));
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let tasks_after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        tasks_after <= tasks_before + 2,
        "tasks grew from {tasks_before} to {tasks_after}"
    );
    assert_eq!(s.messages(&sid), vec![EngineData::Text("after".into())]);
    assert!(s.closes().is_empty());
    assert_eq!(s.engine.clients_count(), 1);

    ws_send(&mut ws, "2probe").await;
    assert_eq!(
        s.wait_close(&sid, Duration::from_secs(1)).await,
        "transport error"
    );
    assert!(ws_ended_within(&mut ws, Duration::from_secs(2)).await);
    assert_eq!(s.engine.clients_count(), 0);
}

/// Starts an upgrade of a polling session: opens the probe websocket and exchanges `2probe`/`3probe`.
async fn probe(s: &Server, sid: &str) -> Ws {
    let mut ws = ws_client(s.addr, &websocket_url(Some(sid))).await;
    ws_send(&mut ws, "2probe").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("3probe"));
    ws
}

/// A polling session upgraded to websocket.
async fn upgraded(s: &Server) -> (Ws, String) {
    let sid = handshake(s.addr).await;
    let mut ws = probe(s, &sid).await;
    ws_send(&mut ws, "5").await;
    ws_send(&mut ws, "4up").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4up"));
    (ws, sid)
}

/// Case 21: polls during the upgrade get a noop at once (the pending one, and new ones).
#[tokio::test]
async fn polls_during_upgrade_get_noop() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut pending = Conn::connect(s.addr).await;
    pending
        .send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ws = probe(&s, &sid).await;
    let res = tokio::time::timeout(Duration::from_secs(1), pending.read_response())
        .await
        .expect("the pending poll was not released by the probe")
        .unwrap();
    assert_eq!(res.text(), "6");
    let t = Instant::now();
    let res = poll(s.addr, &sid).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "6");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    ws_send(&mut ws, "5").await;
    ws_send(&mut ws, "4x").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4x"));
    assert!(s.closes().is_empty());
}

/// Case 21: a second websocket for the same sid, after the upgrade, is closed; the first keeps working.
#[tokio::test]
async fn second_websocket_after_upgrade_is_rejected() {
    let s = Server::start(quiet_config()).await;
    let (mut ws, sid) = upgraded(&s).await;
    let mut second = ws_client(s.addr, &websocket_url(Some(&sid))).await;
    assert!(ws_ended_within(&mut second, Duration::from_secs(1)).await);
    // And a second attempt with a probe on it goes nowhere either.
    let mut third = ws_client(s.addr, &websocket_url(Some(&sid))).await;
    let _ = third.send(Message::text("2probe")).await;
    let _ = third.send(Message::text("5")).await;
    assert!(ws_ended_within(&mut third, Duration::from_secs(1)).await);
    ws_send(&mut ws, "4still").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4still"));
    assert!(s.closes().is_empty(), "{:?}", s.closes());
    assert_eq!(s.engine.clients_count(), 1);
}

/// Case 21: a second websocket for the same sid during the upgrade is closed; the first completes it.
#[tokio::test]
async fn second_websocket_during_upgrade_is_rejected() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    let mut ws = probe(&s, &sid).await;
    let mut second = ws_client(s.addr, &websocket_url(Some(&sid))).await;
    let _ = second.send(Message::text("2probe")).await;
    assert!(ws_ended_within(&mut second, Duration::from_secs(1)).await);
    ws_send(&mut ws, "5").await;
    ws_send(&mut ws, "4x").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4x"));
    assert!(s.closes().is_empty());
}

/// Case 21: polling after the upgrade → 400, and the websocket keeps working.
#[tokio::test]
async fn polling_after_upgrade_is_rejected() {
    let s = Server::start(quiet_config()).await;
    let (mut ws, sid) = upgraded(&s).await;
    poll(s.addr, &sid).await.assert_error(400, 3, "Bad request");
    post(s.addr, &sid, b"4sneaky")
        .await
        .assert_error(400, 3, "Bad request");
    ws_send(&mut ws, "4still").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4still"));
    assert_eq!(
        s.messages(&sid),
        vec![
            EngineData::Text("up".into()),
            EngineData::Text("still".into())
        ]
    );
    assert!(s.closes().is_empty());
}

/// Case 21: a probe websocket that never sends `5` is dropped after upgrade_timeout, and polling goes on
/// (long polls wait again, messages flow).
#[tokio::test]
async fn probe_without_upgrade_is_dropped_and_polling_goes_on() {
    let s = Server::start(
        EngineConfigBuilder::from(quiet_config())
            .upgrade_timeout(Duration::from_millis(300))
            .build(),
    )
    .await;
    let sid = handshake(s.addr).await;
    let t = Instant::now();
    let mut ws = probe(&s, &sid).await;
    assert!(ws_ended_within(&mut ws, Duration::from_secs(2)).await);
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(s.engine.socket(&sid).is_some_and(|s| s.is_open()));

    let mut pending = Conn::connect(s.addr).await;
    pending
        .send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(200), pending.read_head()).await;
    assert!(early.is_err(), "the poll no longer waits: {early:?}");
    assert_eq!(post(s.addr, &sid, b"4hi").await.status, 200);
    let res = tokio::time::timeout(Duration::from_secs(1), pending.read_response())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.text(), "4hi");

    // A probe that never even sends `2probe` is dropped the same way, and a later upgrade succeeds.
    let mut mute = ws_client(s.addr, &websocket_url(Some(&sid))).await;
    assert!(ws_ended_within(&mut mute, Duration::from_secs(2)).await);
    // A probe that sends garbage is dropped at once.
    let mut garbage = ws_client(s.addr, &websocket_url(Some(&sid))).await;
    ws_send(&mut garbage, "4not a probe").await;
    assert!(ws_ended_within(&mut garbage, Duration::from_millis(500)).await);
    let mut ws = probe(&s, &sid).await;
    ws_send(&mut ws, "5").await;
    ws_send(&mut ws, "4up").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4up"));
    assert!(s.closes().is_empty(), "{:?}", s.closes());
    assert_eq!(s.engine.clients_count(), 1);
}

/// Case 21: a probe websocket whose connection drops after `3probe` aborts the upgrade; polling goes on
/// and a new upgrade succeeds.
#[tokio::test]
async fn dropped_probe_aborts_the_upgrade() {
    let s = Server::start(quiet_config()).await;
    let sid = handshake(s.addr).await;
    drop(probe(&s, &sid).await);
    // The raw variant: the probe's TCP connection ends without a close frame.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut raw = RawWs::connect(s.addr, &websocket_url(Some(&sid)), &[]).await;
    let _ = raw.send_text("2probe").await;
    assert_eq!(raw.next_text().await.unwrap(), "3probe");
    drop(raw);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.engine.socket(&sid).is_some_and(|s| s.is_open()));
    // Polls wait again.
    let mut pending = Conn::connect(s.addr).await;
    pending
        .send(&build_request("GET", &polling_url(&sid), &[], b""))
        .await
        .unwrap();
    let early = tokio::time::timeout(Duration::from_millis(200), pending.read_head()).await;
    assert!(early.is_err(), "the poll no longer waits: {early:?}");
    assert_eq!(post(s.addr, &sid, b"4hi").await.status, 200);
    assert_eq!(pending.response().await.text(), "4hi");
    let mut ws = probe(&s, &sid).await;
    ws_send(&mut ws, "5").await;
    ws_send(&mut ws, "4up").await;
    assert_eq!(ws_recv(&mut ws).await.as_deref(), Some("4up"));
    assert!(s.closes().is_empty(), "{:?}", s.closes());
}

/// Case 21: messages the server sends during the upgrade arrive exactly once, in order, whichever
/// transport carries them.
#[tokio::test]
async fn messages_during_upgrade_arrive_once_in_order() {
    let s = Server::start(quiet_config()).await;
    for round in 0..5 {
        let sid = handshake(s.addr).await;
        let mut ws = probe(&s, &sid).await;
        let mut got: Vec<String> = vec![];
        // Echoes queued during the upgrade, some fetched by a poll, the last right before `5`.
        assert_eq!(post(s.addr, &sid, b"4m1\x1e4m2").await.status, 200);
        let res = poll(s.addr, &sid).await;
        got.extend(res.text().split('\x1e').map(String::from));
        assert_eq!(post(s.addr, &sid, b"4m3").await.status, 200);
        if round % 2 == 1 {
            // The noop poll a real client makes before it sends `5`.
            let res = poll(s.addr, &sid).await;
            got.extend(res.text().split('\x1e').map(String::from));
        }
        assert_eq!(post(s.addr, &sid, b"4m4").await.status, 200);
        ws_send(&mut ws, "5").await;
        ws_send(&mut ws, "4m5").await;
        loop {
            match ws_recv_within(&mut ws, Duration::from_millis(300)).await {
                Ok(Some(m)) => got.push(m),
                Ok(None) => panic!("websocket ended"),
                Err(()) => break,
            }
        }
        got.retain(|m| m != "6");
        assert_eq!(got, ["4m1", "4m2", "4m3", "4m4", "4m5"], "round {round}");
        assert!(s.close_reasons(&sid).is_empty(), "round {round}");
    }
}
