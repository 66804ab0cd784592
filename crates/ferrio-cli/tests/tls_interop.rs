//! The official `socket.io-client` (Node, from `interop/node_modules`) against `ferrio serve` with TLS:
//! `https://` polling, `wss://` and the upgrade, trusting the test CA through `NODE_EXTRA_CA_CERTS` or
//! through the client's `ca` option; without the CA the client refuses the server. And the same client
//! drained by SIGTERM: it sees "transport close" and reconnects.

mod prod;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use prod::{Ca, Server};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Installs `interop/node_modules` once per test process when it is missing.
fn ensure_node_modules() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = interop_dir();
        if dir
            .join("node_modules/socket.io-client/package.json")
            .exists()
        {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("cannot run npm (is Node.js installed?)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

/// Connects with the transports of `mode`, waits for the upgrade in `upgrade` mode, emits `echo` with an
/// ack, and prints `{"answer":…,"transport":…}` or `{"error":…}`. Run from `interop/`, whose
/// node_modules `require` finds.
const CLIENT: &str = r#"
const fs = require("node:fs");
const { io } = require("socket.io-client");
const [url, mode] = process.argv.slice(1);
const transports = { polling: { transports: ["polling"] }, websocket: { transports: ["websocket"] }, upgrade: {} }[mode];
const ca = process.env.CA_FILE ? { ca: fs.readFileSync(process.env.CA_FILE) } : {};
const socket = io(url, { ...transports, ...ca, reconnection: false, forceNew: true, timeout: 5000 });
const done = (result, code) => { console.log(JSON.stringify(result)); socket.close(); process.exit(code); };
setTimeout(() => done({ error: "timed out" }, 2), 10000);
socket.on("connect_error", (e) => done({ error: e.message }, 1));
socket.on("connect", async () => {
  if (mode === "upgrade" && socket.io.engine.transport.name !== "websocket") {
    await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
  }
  try {
    const answer = await socket.timeout(5000).emitWithAck("echo", "over tls");
    done({ answer, transport: socket.io.engine.transport.name }, 0);
  } catch (e) {
    done({ error: String(e) }, 1);
  }
});
"#;

/// Runs the client: its exit status and its JSON line.
fn run_client(url: &str, mode: &str, env: &[(&str, &Path)]) -> (bool, serde_json::Value) {
    let node = std::env::var("FERRIO_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(node)
        .args(["-e", CLIENT, url, mode])
        .current_dir(interop_dir())
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("CA_FILE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{mode}: not a JSON line ({e}): {stdout:?}"));
    (out.status.success(), json)
}

#[test]
fn official_client_over_https_polling_wss_and_upgrade() {
    ensure_node_modules();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ferrio interop CA");
    let (cert, key) = ca.write_leaf(dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let server = Server::start(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let url = server.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    for trust in ["NODE_EXTRA_CA_CERTS", "CA_FILE"] {
        for (mode, transport) in [
            ("polling", "polling"),
            ("websocket", "websocket"),
            ("upgrade", "websocket"),
        ] {
            let (ok, json) = run_client(&url, mode, &[(trust, &ca_file)]);
            assert!(ok, "{trust} {mode}: {json}");
            assert_eq!(json["answer"], "over tls", "{trust} {mode}: {json}");
            assert_eq!(json["transport"], transport, "{trust} {mode}: {json}");
        }
    }
    // Without the CA, Node's TLS check refuses the certificate.
    for mode in ["polling", "websocket"] {
        let (ok, json) = run_client(&url, mode, &[]);
        assert!(!ok && json["error"].is_string(), "{mode}: {json}");
    }
}

/// Connects with the transports of `mode`, prints `connected`, then, once the server drops it, prints
/// `{"reason":…}` after the manager's first reconnection attempt (proof that it reconnects).
const DRAINED_CLIENT: &str = r#"
const { io } = require("socket.io-client");
const [url, mode] = process.argv.slice(1);
const transports = { polling: { transports: ["polling"] }, websocket: { transports: ["websocket"] } }[mode];
const socket = io(url, { ...transports, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
const done = (result, code) => { console.log(JSON.stringify(result)); socket.close(); process.exit(code); };
setTimeout(() => done({ error: "timed out" }, 2), 20000);
socket.once("connect", () => console.log("connected"));
socket.once("disconnect", (reason) => {
  socket.io.once("reconnect_attempt", () => done({ reason }, 0));
});
"#;

#[test]
fn drained_official_clients_reconnect() {
    use std::io::{BufRead, BufReader};
    ensure_node_modules();
    let mut server = Server::start(&["--drain-timeout", "5000"], &[]);
    let node = std::env::var("FERRIO_NODE").unwrap_or_else(|_| "node".into());
    let mut clients = Vec::new();
    for mode in ["polling", "websocket"] {
        let mut child = Command::new(&node)
            .args(["-e", DRAINED_CLIENT, &server.url, mode])
            .current_dir(interop_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run node");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        // Killed on the way out, whatever happens.
        let child = prod::Killed(child);
        assert_eq!(first, "connected", "{mode}");
        clients.push((mode, child, lines));
    }
    server.signal("TERM");
    for (mode, mut child, mut lines) in clients {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{mode}: not a JSON line ({e}): {line:?}"));
        // Not "io server disconnect", after which official clients stay away.
        assert_eq!(json["reason"], "transport close", "{mode}: {json}");
        assert!(child.0.wait().unwrap().success(), "{mode}");
    }
    let (status, _) = server.wait_exit(std::time::Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
