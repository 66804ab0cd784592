//! BAD_INPUTS.md cases 6 and 7, the parts the other suites leave out: the `Secure` attribute of the sid
//! cookie, and the recovery id (pid) being random and never the public sid.

mod common;
mod sio_common;

use std::collections::HashSet;

use base64::Engine as _;
use common::{PATH, Server, parse_open, quiet_config, request};
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
