//! `scripts/run.sh`: extra arguments override its defaults (`bash scripts/run.sh --port 4000`, the
//! example of its own comment, once failed with "the argument '--port' cannot be used multiple times").

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs the script with `args` on the debug binary; returns the URL it listens on.
fn run_script(args: &[&str], home: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/run.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("FERRIO_BIN", env!("CARGO_BIN_EXE_ferrio"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run scripts/run.sh");
    let stdout = child.stdout.take().expect("stdout");
    // The script `exec`s ferrio: this process is the server.
    let _server = common::Proc(child);
    common::listening_url(stdout)
}

#[test]
fn extra_arguments_override_the_defaults() {
    let home = tempfile::tempdir().unwrap();
    let url = run_script(&["--port", "0", "--log", "warn"], home.path());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":3000"), "--port 0 wins: {url}");

    // A configuration file given as an extra argument overrides them too.
    let file = home.path().join("ferrio.toml");
    std::fs::write(&file, "port = 0\nhost = \"127.0.0.1\"\nlog = \"warn\"\n").unwrap();
    let url = run_script(&["--config", file.to_str().unwrap()], home.path());
    assert!(!url.ends_with(":3000"), "the file's port wins: {url}");
}
