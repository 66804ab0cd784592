//! BAD_INPUTS.md cases 2, 6, 7 and 11, the parts the other suites leave out: 10 000 unknown sids, the
//! `Secure` attribute of the sid cookie, the recovery id (pid) being random and never the public sid,
//! and thousands of idle connections cut off by the header timeout.

mod common;
mod sio_common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    Conn, PATH, Server, assert_unknown_sid, build_request, handshake, parse_open, poll,
    polling_url, post, quiet_config, request,
};
use ferrio::ConnectionStateRecovery;
use ferrio::engine::{Cookie, EngineConfigBuilder, SameSite};
use sio_common::{TestServer, config};

/// Case 6: with `secure` on (as a server behind TLS is configured), the cookie says `Secure`, and
/// `SameSite=None` comes with it.
#[tokio::test]
async fn c06_secure_cookie_when_configured() {
    let cookie = Cookie {
        secure: true,
        same_site: Some(SameSite::None),
        ..Cookie::default()
    };
    let s = Server::start(
        EngineConfigBuilder::from(quiet_config())
            .cookie(cookie)
            .build(),
    )
    .await;
    let res = request(
        s.addr,
        "GET",
        &format!("{PATH}?EIO=4&transport=polling"),
        &[],
        b"",
    )
    .await;
    assert_eq!(res.status, 200);
    let sid = parse_open(&res.body)["sid"].as_str().unwrap().to_string();
    assert_eq!(
        res.header_all("set-cookie"),
        vec![format!("io={sid}; Path=/; HttpOnly; Secure; SameSite=None")]
    );
}

/// Case 7: with recovery on, each CONNECT answer carries a pid that is not the socket id, not the
/// Engine.IO sid, at least 120 random bits, and never repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c07_recovery_pids_are_random_and_not_the_public_ids() {
    let mut cfg = config();
    cfg.connection_state_recovery = Some(ConnectionStateRecovery::default());
    let server = TestServer::start(cfg).await;
    let mut pids = HashSet::new();
    for _ in 0..100 {
        let mut c = server.client().await;
        c.send("40").await;
        let t = c.recv_text().await;
        let body: serde_json::Value = serde_json::from_str(
            t.strip_prefix("40")
                .unwrap_or_else(|| panic!("CONNECT expected, got {t:?}")),
        )
        .unwrap();
        let sid = body["sid"].as_str().expect("sid").to_owned();
        let pid = body["pid"]
            .as_str()
            .expect("pid with recovery on")
            .to_owned();
        assert_ne!(pid, sid, "the pid is the public socket id");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&pid)
            .unwrap_or_else(|e| panic!("pid {pid:?} is not base64url: {e}"));
        assert!(bytes.len() >= 15, "pid {pid:?} holds fewer than 120 bits");
        assert!(pids.insert(pid.clone()), "pid {pid} repeated");
        assert!(!pids.contains(&sid), "a socket id equals a pid");
        c.close().await;
    }
    assert_eq!(pids.len(), 100);
}

/// Case 2: 10 000 random unknown sids, GET and POST alternately on one keep-alive connection → each
/// 400 "Session ID unknown", and no session is ever allocated.
#[tokio::test]
async fn c02_ten_thousand_unknown_sids_allocate_nothing() {
    let s = Server::start(quiet_config()).await;
    let mut c = Conn::connect(s.addr).await;
    for i in 0..10_000 {
        let bytes: [u8; 15] = rand::random();
        let sid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (method, body): (&str, &[u8]) = if i % 2 == 0 {
            ("GET", b"")
        } else {
            ("POST", b"4hello")
        };
        c.send(&build_request(method, &polling_url(&sid), &[], body))
            .await
            .unwrap();
        assert_unknown_sid(&c.response().await);
    }
    assert_eq!(s.engine.clients_count(), 0);
    assert_eq!(s.opens(), 0);
    // The control: a real session on the same server works.
    let sid = handshake(s.addr).await;
    assert_eq!(post(s.addr, &sid, b"4x").await.status, 200);
    assert_eq!(poll(s.addr, &sid).await.text(), "4x");
}

/// Case 11: 2 000 TCP connections that never send a byte do not stop service, and the header timeout
/// (10 s) closes every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c11_thousands_of_idle_connections_are_cut_off() {
    let s = Server::start(quiet_config()).await;
    let t = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(Conn::connect(s.addr).await);
    }
    // Served in the meantime, at once.
    let served = Instant::now();
    let sid = handshake(s.addr).await;
    assert_eq!(post(s.addr, &sid, b"4x").await.status, 200);
    assert_eq!(poll(s.addr, &sid).await.text(), "4x");
    assert!(
        served.elapsed() < Duration::from_secs(1),
        "{:?}",
        served.elapsed()
    );
    // Every idle connection is closed by the server within the header timeout (plus slack).
    let closes = idle
        .iter_mut()
        .map(|c| c.closed_within(Duration::from_secs(15)));
    let closed = futures_util::future::join_all(closes).await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} of 2 000 idle connections still open");
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_secs(9),
        "cut off too early: {elapsed:?}"
    );
}
