//! Helpers shared by the tests that run the `ferrio` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Kills the process and returns what it wrote on stderr.
    pub fn stop(mut self, stderr: ChildStderr) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut err = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut err);
        err
    }
}

/// `ferrio serve --port 0 ARGS` in `cwd` with only the variables `env` (so that nothing of the
/// caller's environment, such as a `FERRIO_CLIENT_DIST` or a registry, leaks in); returns the process,
/// its URL, and its stderr (logs).
pub fn serve(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (Proc, String, ChildStderr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrio"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferrio serve");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let proc = Proc(child);
    let url = listening_url(stdout);
    (proc, url, stderr)
}

/// The URL of the first stdout line, `listening on URL`.
pub fn listening_url(stdout: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}

/// GET `path` from `url` (`http://host:port`): status and body.
pub fn get(url: &str, path: &str) -> (u16, Vec<u8>) {
    let addr = url.strip_prefix("http://").expect("an http URL");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "the helper reads whole bodies only: {head}"
    );
    (status, raw[end + 4..].to_vec())
}
