//! `ferrio serve` run as in production, as a child process: `/healthz`, `--max-connections`, the header
//! read timeout, the drain on SIGTERM (clients told to reconnect, exit when they are gone or at the
//! deadline) and JSON logs; options from flags, the TOML file and `FERRIO_*` variables.

mod prod;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, DisconnectReason, Socket};
use prod::Server;

const STEP: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request on a new connection: (status, head, body).
fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(STEP)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A polling handshake: its status, and the session id when it opened one.
fn handshake(addr: &str) -> (u16, Option<String>) {
    let (status, _, body) = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "");
    let sid = body
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .and_then(|open| open["sid"].as_str().map(str::to_owned));
    (status, sid)
}

/// A client of `url` on `transports`, whose disconnect reasons are recorded.
fn client(url: &str, transports: &[TransportKind]) -> (Socket, Arc<Mutex<Vec<DisconnectReason>>>) {
    let opts = ClientOptions::builder()
        .transports(transports.to_vec())
        .force_new(true)
        .build();
    let socket = ferrio_client::connect(url, opts);
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = reasons.clone();
    socket.on_disconnect(move |_, reason| {
        seen.lock().unwrap().push(reason);
        async {}
    });
    (socket, reasons)
}

async fn echo(socket: &Socket) -> bool {
    socket
        .timeout(STEP)
        .emit_with_ack("echo", &"hi")
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_clients_reconnect_health_goes_503_exit_at_the_deadline() {
    let mut server = Server::start(&["--drain-timeout", "3000"], &[]);
    let addr = server.addr().to_owned();
    assert_eq!(request(&addr, "GET", "/healthz", "").0, 200);
    let (ws, ws_reasons) = client(&server.url, &[TransportKind::WebSocket]);
    let (polling, polling_reasons) = client(&server.url, &[TransportKind::Polling]);
    assert!(echo(&ws).await && echo(&polling).await);
    // A session whose client never polls again keeps the drain waiting until its deadline.
    let (status, stuck) = handshake(&addr);
    assert!(status == 200 && stuck.is_some());

    let signalled = std::time::Instant::now();
    server.signal("TERM");
    // Each client is told to go, with a reason it reconnects after (not "io server disconnect").
    for (name, reasons) in [("websocket", &ws_reasons), ("polling", &polling_reasons)] {
        assert!(
            prod::eventually(STEP, || !reasons.lock().unwrap().is_empty()),
            "{name} client not disconnected: {}",
            server.logs()
        );
        let reason = reasons.lock().unwrap()[0];
        assert!(reason.will_reconnect(), "{name}: {reason:?}");
    }
    // While draining: health says so, and new clients are refused (the port still answers).
    let (status, head, body) = request(&addr, "GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    assert!(head.contains("connection: close"), "{head}");
    let (status, _, _) = request(&addr, "GET", "/socket.io/?EIO=4&transport=polling", "");
    assert_eq!(status, 503);
    assert!(!ws.connected() && !polling.connected());

    let (status, _) = server.wait_exit(STEP);
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "exited before the deadline: {took:?}"
    );
    let logs = server.logs();
    assert!(logs.contains("drain deadline passed"), "{logs}");
    ws.disconnect();
    polling.disconnect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_as_soon_as_every_client_is_gone() {
    let mut server = Server::start(&["--drain-timeout", "30000"], &[]);
    let (ws, _) = client(&server.url, &[TransportKind::WebSocket]);
    let (polling, _) = client(&server.url, &[TransportKind::Polling]);
    assert!(echo(&ws).await && echo(&polling).await);
    server.signal("TERM");
    let (status, took) = server.wait_exit(STEP);
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let logs = server.logs();
    assert!(logs.contains("drained"), "{logs}");
    ws.disconnect();
    polling.disconnect();
}

/// The names of the server's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_serves_both_transports_and_drains() {
    let mut server = Server::start(&["--threads", "1"], &[]);
    let (ws, _) = client(&server.url, &[TransportKind::WebSocket]);
    let (polling, _) = client(&server.url, &[TransportKind::Polling]);
    for _ in 0..20 {
        assert!(echo(&ws).await && echo(&polling).await);
    }
    // Everything ran on the main thread.
    let names = thread_names(server.pid());
    assert_eq!(names.len(), 1, "threads: {names:?}");
    server.signal("TERM");
    let (status, took) = server.wait_exit(STEP);
    assert!(
        status.success() && took < Duration::from_secs(5),
        "{status:?} {took:?}"
    );
    ws.disconnect();
    polling.disconnect();
}

/// Three serving threads, each accepting on the same port: clients spread over them still share one
/// server (a broadcast reaches all of them, a polling session's requests may land on any thread), and
/// the drain closes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_threads_share_one_server() {
    let mut server = Server::start(&["--threads", "3"], &[]);
    let serving = || {
        thread_names(server.pid())
            .iter()
            .filter(|n| n.starts_with("ferrio-"))
            .count()
    };
    assert!(
        prod::eventually(STEP, || serving() == 2),
        "the main thread and two more: {:?}",
        thread_names(server.pid())
    );
    let mut clients = Vec::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    for i in 0..12 {
        let transport = if i % 3 == 0 {
            TransportKind::Polling
        } else {
            TransportKind::WebSocket
        };
        let (socket, reasons) = client(&server.url, &[transport]);
        let seen = heard.clone();
        socket.on("chat", move |_, ev: ferrio_client::Event| {
            let text = ev
                .parse::<serde_json::Value>()
                .ok()
                .map(|v| v["text"].clone());
            seen.lock().unwrap().push((i, text));
            async {}
        });
        assert!(echo(&socket).await, "client {i}");
        clients.push((socket, reasons));
    }
    // Each client's own connections: with 12 clients on three listeners the kernel spreads them, so
    // some broadcast crosses threads; every client hears every message.
    // The clients reached more than one thread: a thread that serves connections is woken for each
    // of their requests, one that only waits to accept is not.
    let woken: Vec<u64> = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .collect();
    assert!(
        woken.iter().filter(|&&n| n > 10).count() >= 2,
        "wake-ups per thread: {woken:?}"
    );
    for (i, (socket, _)) in clients.iter().enumerate().take(3) {
        socket
            .emit("chat", &serde_json::json!({ "text": format!("from {i}") }))
            .expect("emit");
    }
    assert!(
        prod::eventually(STEP, || heard.lock().unwrap().len() == 36),
        "heard: {:?}",
        heard.lock().unwrap()
    );
    for i in 0..12 {
        for from in 0..3 {
            let want = serde_json::json!(format!("from {from}"));
            assert!(
                heard
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|(to, text)| *to == i && text.as_ref() == Some(&want)),
                "client {i} missed {want}"
            );
        }
    }
    server.signal("TERM");
    for (i, (_, reasons)) in clients.iter().enumerate() {
        assert!(
            prod::eventually(STEP, || !reasons.lock().unwrap().is_empty()),
            "client {i} not told to go"
        );
        let reason = reasons.lock().unwrap()[0];
        assert!(reason.will_reconnect(), "client {i}: {reason:?}");
    }
    let (status, _) = server.wait_exit(STEP);
    assert!(status.success(), "{status:?}");
    for (socket, _) in &clients {
        socket.disconnect();
    }
}

/// Serving threads share their port with each other, not with another server: a second one on the
/// same port fails to start, as with one thread.
#[test]
fn a_second_server_on_the_port_is_refused() {
    let server = Server::start(&["--threads", "2"], &[]);
    let port = server.addr().rsplit(':').next().unwrap().to_owned();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args([
            "serve",
            "--threads",
            "2",
            "--port",
            &port,
            "--serve-client",
            "false",
        ])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ferrio");
    let exited = prod::eventually(STEP, || second.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = second.kill();
    }
    let out = second
        .wait_with_output()
        .expect("the second server's output");
    assert!(exited, "the second server runs on the first one's port");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("in use"), "{err}");
    drop(server);
}

#[test]
fn zero_threads_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["serve", "--port", "0"])
        .env("FERRIO_THREADS", "0")
        .output()
        .expect("run ferrio");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("threads must be at least 1"), "{err}");
}

#[test]
fn max_connections_refuses_further_clients_until_one_leaves() {
    // From the environment, as FERRIO_* variables set every option.
    let server = Server::start(&[], &[("FERRIO_MAX_CONNECTIONS", "2")]);
    let addr = server.addr();
    let (a, sid_a) = handshake(addr);
    let (b, _) = handshake(addr);
    assert_eq!((a, b), (200, 200));
    let (status, head, body) = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "");
    assert_eq!((status, body.as_str()), (503, "too many connections\n"));
    assert!(head.contains("retry-after: 1"), "{head}");
    // Requests of open sessions go on.
    let sid_a = sid_a.unwrap();
    let (status, _, _) = request(
        addr,
        "POST",
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid_a}"),
        "1",
    );
    assert_eq!(status, 200, "closing session a");
    assert!(
        prod::eventually(STEP, || handshake(addr).0 == 200),
        "a slot is free again once a client left"
    );
    assert_eq!(handshake(addr).0, 503);
    assert_eq!(request(addr, "GET", "/healthz", "").0, 200);
}

#[test]
fn slow_headers_are_cut_off() {
    let server = Server::start(&["--header-read-timeout", "300"], &[]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = std::time::Instant::now();
    let mut raw = Vec::new();
    // The server closes the connection (with or without a 408) instead of waiting for the rest.
    let _ = stream.read_to_end(&mut raw);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "still open after {took:?}");
    assert!(
        !String::from_utf8_lossy(&raw).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // A complete request on time is served.
    assert_eq!(request(server.addr(), "GET", "/healthz", "").0, 200);
}

#[test]
fn json_logs_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferrio.toml");
    std::fs::write(
        &file,
        "log_format = \"json\"\n\n[profile.production]\ndrain_timeout = 2000\n",
    )
    .unwrap();
    let mut server = Server::start(
        &[
            "--config",
            file.to_str().unwrap(),
            "--profile",
            "production",
        ],
        &[],
    );
    assert_eq!(handshake(server.addr()).0, 200);
    server.signal("TERM");
    let (status, took) = server.wait_exit(STEP);
    assert!(status.success());
    assert!(
        took < Duration::from_secs(5),
        "drain_timeout from the profile: {took:?}"
    );
    let logs = server.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| {
            assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
            l["message"].as_str().expect("a message")
        })
        .collect();
    for wanted in ["serving", "draining", "drain deadline passed", "stopped"] {
        assert!(messages.contains(&wanted), "{wanted}: {logs}");
    }
    let serving = lines.iter().find(|l| l["message"] == "serving").unwrap();
    assert!(
        serving["addr"].is_string(),
        "fields at the top level: {serving}"
    );
}

#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let mut server = Server::start(&["--drain-timeout", "60000"], &[]);
    // A client that never polls again: the drain would wait for it until the deadline.
    assert_eq!(handshake(server.addr()).0, 200);
    server.signal("TERM");
    assert!(
        prod::eventually(STEP, || server.logs().contains("draining")),
        "{}",
        server.logs()
    );
    assert_eq!(request(server.addr(), "GET", "/healthz", "").0, 503);
    server.signal("INT");
    let (status, took) = server.wait_exit(STEP);
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(server.logs().contains("second signal"), "{}", server.logs());
}
