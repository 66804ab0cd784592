//! `--parser msgpack` on `ferrio serve`, `ferrio connect` and `ferrio bench`: they talk to each other, and
//! a JSON client is refused by a msgpack server.

mod common;

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(args)
        .output()
        .expect("run ferrio")
}

#[test]
fn serve_connect_and_bench_in_msgpack() {
    let home = tempfile::tempdir().unwrap();
    let env = [("HOME", home.path().to_str().unwrap())];
    let (server, url, stderr) = common::serve(
        &[
            "--parser",
            "msgpack",
            "--serve-client",
            "false",
            "--log",
            "warn",
        ],
        &env,
        home.path(),
    );

    let out = run(&[
        "connect",
        &url,
        "--parser",
        "msgpack",
        "--emit",
        "echo",
        r#"[1,"a",{"b":2.5}]"#,
        "--ack",
        "--wait",
        "0.3",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ack = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["type"] == "ack")
        .unwrap_or_else(|| panic!("no ack in {stdout}"));
    assert_eq!(ack["args"], serde_json::json!([1, "a", {"b": 2.5}]));

    for scenario in [&["echo"][..], &["fanout", "--rate", "20"]] {
        let mut args = vec!["bench"];
        args.extend_from_slice(scenario);
        args.extend_from_slice(&[
            &url, "--parser", "msgpack", "-c", "4", "-d", "1", "--drain", "1", "--check", "--json",
            "-q",
        ]);
        let out = run(&args);
        assert!(
            out.status.success(),
            "bench {scenario:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let summary: serde_json::Value =
            serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap();
        assert_eq!(summary["lost"].as_u64(), Some(0), "{text}");
        assert!(summary["deliveries"].as_u64() > Some(0), "{text}");
    }

    // A JSON client never joins: its text CONNECT is a parse error for the msgpack server.
    let out = run(&[
        "bench",
        "echo",
        &url,
        "-c",
        "1",
        "-d",
        "0.5",
        "--retries",
        "0",
        "--check",
        "-q",
    ]);
    assert!(
        !out.status.success(),
        "a JSON bench against a msgpack server"
    );

    drop(server.stop(stderr));
}
