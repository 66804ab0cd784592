//! `ferrio connect` with its commands piped in: stdout carries JSON lines only (the prompt help and the
//! complaints about bad commands go to stderr), so a script can parse every line.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

#[test]
fn piped_stdin_gives_json_lines_only() {
    let home = tempfile::tempdir().unwrap();
    let env = [("HOME", home.path().to_str().unwrap())];
    let (server, url, stderr) = common::serve(
        &["--serve-client", "false", "--log", "warn"],
        &env,
        home.path(),
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["connect", &url, "--wait", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferrio connect");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"ack echo [1,\"a\"]\nemit chat {\"text\":\"hi\"}\nbogus\nanswer 7 []\nemit x {nope\n",
        )
        .unwrap();
    // stdin closed: the session answers what was sent, then ends.
    let out = child.wait_with_output().expect("ferrio connect ends");
    drop(server.stop(stderr));
    assert!(out.status.success(), "{out:?}");

    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line {l:?}: {e}")))
        .collect();
    assert!(lines.iter().all(|l| l["type"].is_string()), "{stdout}");
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert!(kinds.contains(&"connect"), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "ack" && l["args"] == serde_json::json!([1, "a"])),
        "{stdout}"
    );
    // The demo's chat comes back to its sender.
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "event" && l["event"] == "chat" && l["args"][0]["text"] == "hi"),
        "{stdout}"
    );

    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("commands: emit EVENT"),
        "help on stderr: {stderr}"
    );
    assert!(stderr.contains("no pending ack 7"), "{stderr}");
    assert!(stderr.contains("invalid JSON arguments"), "{stderr}");
}
