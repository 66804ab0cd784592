//! At low load, `ferrio bench echo` agrees with a script driving the official socket.io-client
//! (`bench/official-echo.mjs`) against the same `ferrio serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start_server() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferrio serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, url)
}

fn json_of(out: std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what} printed {text:?}: {e}"))
}

fn node_ready(root: &Path) -> bool {
    if Command::new("node").arg("--version").output().is_err() {
        return false;
    }
    let interop = root.join("interop");
    if !interop.join("node_modules/socket.io-client").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&interop)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "npm ci in interop/ failed");
    }
    true
}

#[test]
fn echo_figures_agree_with_the_official_client() {
    let root = repo_root();
    if !node_ready(&root) {
        eprintln!("skipped: node is not installed");
        return;
    }
    let (_server, url) = start_server();

    let ours = json_of(
        Command::new(env!("CARGO_BIN_EXE_ferrio"))
            .args([
                "bench",
                "echo",
                &url,
                "--clients",
                "10",
                "--duration",
                "3",
                "--json",
                "--quiet",
                "--check",
            ])
            .output()
            .expect("run ferrio bench"),
        "ferrio bench echo",
    );
    let official = json_of(
        Command::new("node")
            .arg(root.join("bench/official-echo.mjs"))
            .args([&url, "10", "3"])
            .output()
            .expect("run node"),
        "official-echo.mjs",
    );
    eprintln!("ferrio bench: {ours}\nofficial client: {official}");

    let our_rate = ours["deliveries_per_s"].as_f64().unwrap();
    let their_rate = official["acks_per_s"].as_f64().unwrap();
    assert!(our_rate > 0.0 && their_rate > 0.0, "both must measure acks");
    assert_eq!(ours["errors"].as_u64(), Some(0));
    assert_eq!(official["errors"].as_u64(), Some(0));
    assert_eq!(ours["lost"].as_u64(), Some(0));
    assert_eq!(ours["connections"]["ok"].as_u64(), Some(10));

    // Both drive the same server with 10 closed loops: the rates agree within a generous factor
    // (the official client spends more CPU per message, so ours may be faster, not slower).
    let ratio = our_rate / their_rate;
    assert!(
        (1.0 / 3.0..=10.0).contains(&ratio),
        "acks/s differ too much: ferrio bench {our_rate:.0}, official {their_rate:.0}"
    );
    // Median latencies within 5 ms or 3x of each other.
    let a = ours["latency_us"]["p50"].as_f64().unwrap();
    let b = official["latency_us"]["p50"].as_f64().unwrap();
    assert!(
        (a - b).abs() <= 5_000.0 || (a.max(b) / a.min(b).max(1.0)) <= 3.0,
        "p50 latencies differ: ferrio bench {a} µs, official {b} µs"
    );
}
