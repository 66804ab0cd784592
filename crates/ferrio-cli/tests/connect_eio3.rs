//! `ferrio connect --eio 3` against the official socket.io 2.x server (Node, from `interop/node_modules`,
//! interop/node-servers/socketio-v2-server.mjs): the CLI joins a namespace of an Engine.IO v3 server and
//! gets its ack.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// The Node server, killed on drop.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_v2_server() -> (Node, String) {
    let dir = interop_dir();
    if !dir.join("node_modules/socket.io-v2/package.json").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("cannot run npm (is Node.js installed?)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    let node = std::env::var("FERRIO_NODE").unwrap_or_else(|_| "node".into());
    let mut child = Command::new(node)
        .arg(dir.join("node-servers/socketio-v2-server.mjs"))
        .args(["--port", "0"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot spawn node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the node server's first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Node(child), url)
}

#[test]
fn connects_to_a_socket_io_2_server() {
    let (_node, url) = start_v2_server();
    for transport in ["polling", "websocket"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrio"))
            .args(["connect", &format!("{url}/custom"), "--eio", "3"])
            .args([
                "--transport",
                transport,
                "--emit",
                "echo",
                "[1,\"a\"]",
                "--ack",
            ])
            .args(["--wait", "0.5"])
            .stdin(Stdio::null())
            .output()
            .expect("run ferrio connect");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        let connect = lines
            .iter()
            .find(|l| l["type"] == "connect")
            .unwrap_or_else(|| panic!("no connect line: {stdout}"));
        // A socket.io 2.x id outside `/`: `<nsp>#<engine id>`.
        assert!(
            connect.to_string().contains("/custom#"),
            "{transport}: {connect}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["type"] == "ack" && l["args"] == serde_json::json!([1, "a"])),
            "{transport}: {stdout}"
        );
    }
    // Only 3 and 4 exist.
    let out = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["connect", &url, "--eio", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // v3 has no CONNECT payload: `--auth` is refused rather than dropped.
    let out = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["connect", &url, "--eio", "3", "--auth", "{\"token\":\"x\"}"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auth needs Engine.IO v4"),
        "{out:?}"
    );
}
