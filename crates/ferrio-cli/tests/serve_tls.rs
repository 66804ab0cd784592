//! `ferrio serve --tls-cert --tls-key`: ferrio's client over `https://` polling, `wss://` and the upgrade
//! with a CA made by the test; SIGHUP serves a new certificate to new connections while the connections
//! already open go on.

mod prod;

use std::time::Duration;

use ferrio_client::engine::{TlsOptions, TransportKind};
use ferrio_client::{ClientOptions, Socket};
use prod::{Ca, Server};

const STEP: Duration = Duration::from_secs(10);

/// A client of `url` trusting only `ca_pem`, on `transports`, that does not retry (a refused
/// certificate must show, not be retried until the test times out).
fn client(url: &str, ca_pem: &str, transports: &[TransportKind]) -> Socket {
    let opts = ClientOptions::builder()
        .transports(transports.to_vec())
        .tls(TlsOptions {
            webpki_roots: false,
            root_certificates: vec![ca_pem.as_bytes().to_vec()],
            ..TlsOptions::default()
        })
        .force_new(true)
        .reconnection(false)
        .build();
    ferrio_client::connect(url, opts)
}

/// The demo's `echo` event answers with its arguments.
async fn echo(socket: &Socket, text: &str) -> Result<String, String> {
    echo_within(socket, text, STEP).await
}

/// Where the echo must fail: a short wait is enough (the emit waits offline, never connected).
async fn refused(socket: &Socket) -> bool {
    echo_within(socket, "refused?", Duration::from_secs(2))
        .await
        .is_err()
}

async fn echo_within(socket: &Socket, text: &str, limit: Duration) -> Result<String, String> {
    let answer = socket
        .timeout(limit)
        .emit_with_ack("echo", &text)
        .await
        .map_err(|e| format!("{e:?}"))?;
    answer.parse::<String>().map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_over_https_polling_wss_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ferrio test CA");
    let (cert, key) = ca.write_leaf(dir.path());
    let server = Server::start(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let port = server.addr().rsplit(':').next().unwrap().to_owned();
    for (url, transports) in [
        (
            format!("https://localhost:{port}"),
            vec![TransportKind::Polling],
        ),
        (
            format!("wss://127.0.0.1:{port}"),
            vec![TransportKind::WebSocket],
        ),
        (
            format!("https://localhost:{port}"),
            vec![TransportKind::Polling, TransportKind::WebSocket],
        ),
    ] {
        let socket = client(&url, &ca.pem, &transports);
        assert_eq!(
            echo(&socket, "over tls").await.as_deref(),
            Ok("over tls"),
            "{url} {transports:?}"
        );
        socket.disconnect();
    }
    // A client that does not trust the CA is refused by its TLS check.
    let other = Ca::new("another CA");
    let socket = client(
        &format!("https://localhost:{port}"),
        &other.pem,
        &[TransportKind::Polling],
    );
    assert!(refused(&socket).await);
    // Plain HTTP on the TLS port is not served.
    assert!(
        tokio::time::timeout(STEP, async {
            let (status, _) = tokio::task::spawn_blocking({
                let addr = server.addr().to_owned();
                move || plain_http_status(&addr)
            })
            .await
            .unwrap();
            status
        })
        .await
        .unwrap()
        .is_none()
    );
}

/// The status of a plain-HTTP GET /healthz, None when the server answered no HTTP.
fn plain_http_status(addr: &str) -> (Option<u16>, ()) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    let _ = write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok());
    (status, ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_the_new_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let (cert, key) = old_ca.write_leaf(dir.path());
    let mut server = Server::start(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let url = server.url.replace("127.0.0.1", "localhost");
    // One connection per transport, open before the reload.
    let ws = client(&url, &old_ca.pem, &[TransportKind::WebSocket]);
    // A polling client opens new TLS connections as it goes: this one trusts both CAs, as clients do
    // through a renewal by the same CA, and must keep its session across the reload.
    let both = format!("{}{}", old_ca.pem, new_ca.pem);
    let polling = client(&url, &both, &[TransportKind::Polling]);
    assert_eq!(echo(&ws, "before").await.as_deref(), Ok("before"));
    assert_eq!(echo(&polling, "before").await.as_deref(), Ok("before"));
    let polling_id = polling.id();
    assert!(polling_id.is_some());

    // A broken pair first: the reload fails and the old certificate stays.
    std::fs::write(&cert, "garbage").unwrap();
    server.signal("HUP");
    assert!(
        prod::eventually(STEP, || server.logs().contains("not reloaded")),
        "{}",
        server.logs()
    );
    let fresh = client(&url, &old_ca.pem, &[TransportKind::WebSocket]);
    assert_eq!(echo(&fresh, "still old").await.as_deref(), Ok("still old"));
    fresh.disconnect();

    new_ca.write_leaf(dir.path());
    server.signal("HUP");
    assert!(
        prod::eventually(STEP, || server.logs().contains("TLS certificate reloaded")),
        "{}",
        server.logs()
    );
    // New connections get the new certificate: trusted by the new CA only.
    for transports in [[TransportKind::WebSocket], [TransportKind::Polling]] {
        let fresh = client(&url, &new_ca.pem, &transports);
        assert_eq!(
            echo(&fresh, "new").await.as_deref(),
            Ok("new"),
            "{transports:?}"
        );
        fresh.disconnect();
        let stale = client(&url, &old_ca.pem, &transports);
        assert!(refused(&stale).await, "{transports:?}");
    }
    // The websocket opened before the reload goes on in the TLS session it negotiated then.
    assert_eq!(echo(&ws, "after").await.as_deref(), Ok("after"));
    assert!(ws.connected());
    ws.disconnect();
    assert_eq!(echo(&polling, "after").await.as_deref(), Ok("after"));
    assert_eq!(polling.id(), polling_id, "the same session");
    polling.disconnect();
}

#[test]
fn a_missing_or_mismatched_pair_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = Ca::new("a").write_leaf(dir.path());
    // Another key than the certificate's.
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, Ca::new("b").leaf().1).unwrap();
    let missing = dir.path().join("missing.pem");
    for (key, wanted) in [(&missing, "cannot read"), (&other_key, "other-key.pem")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrio"))
            .args([
                "serve",
                "--port",
                "0",
                "--serve-client",
                "false",
                "--tls-cert",
            ])
            .arg(&cert)
            .arg("--tls-key")
            .arg(key)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(out.stdout.is_empty(), "never listened");
        assert!(stderr.contains(wanted), "{stderr}");
    }
}
