//! Raw-TCP robustness probe: `probe PORT [SERVER_PID]`.
//! Does the handshake by hand, sends one hostile frame per fresh connection and
//! reports what came back on the wire. "yes" = the close code RFC 6455 asks for.
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Encodes one frame. `b0` = FIN/RSV/opcode byte. `len` overrides the
/// declared payload length (for the 2^40 case, where we send no payload).
fn frame(b0: u8, payload: &[u8], masked: bool, len: Option<u64>) -> Vec<u8> {
    let n = len.unwrap_or(payload.len() as u64);
    let m = if masked { 0x80 } else { 0 };
    let mut v = vec![b0];
    match n {
        0..=125 => v.push(m | n as u8),
        126..=0xffff => { v.push(m | 126); v.extend((n as u16).to_be_bytes()) }
        _ => { v.push(m | 127); v.extend(n.to_be_bytes()) }
    }
    if masked { v.extend(MASK); }
    v.extend(payload.iter().enumerate().map(|(i, b)| if masked { b ^ MASK[i % 4] } else { *b }));
    v
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")?;
    // Read byte-wise up to the blank line so no frame bytes are swallowed.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 { return Err(ErrorKind::UnexpectedEof.into()) }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") { return Err(ErrorKind::InvalidData.into()) }
    Ok(s)
}

/// What the server did after our frame: "close NNNN", "dropped (no close frame)",
/// "replied opcode N" (i.e. accepted it), or "no reaction in 2s".
fn outcome(s: &mut TcpStream) -> String {
    let mut h = [0u8; 2];
    match s.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return "no reaction in 2s".into(),
        Err(_) => return "dropped (no close frame)".into(),
    }
    let op = h[0] & 0x0f;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 { let mut x = [0u8; 2]; let _ = s.read_exact(&mut x); len = u16::from_be_bytes(x) as u64 }
    if len == 127 { let mut x = [0u8; 8]; let _ = s.read_exact(&mut x); len = u64::from_be_bytes(x) }
    let mut p = vec![0u8; len.min(1 << 20) as usize];
    let _ = s.read_exact(&mut p);
    match op {
        8 if p.len() >= 2 => format!("close {}", u16::from_be_bytes([p[0], p[1]])),
        8 => "close (no code)".into(),
        _ => format!("replied opcode {op} (accepted)"),
    }
}

fn rss_kb(pid: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?
        .lines().find(|l| l.starts_with(key))?
        .split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let port: u16 = a[1].parse().unwrap();
    let pid = a.get(2).cloned().unwrap_or_default();
    let big = vec![b'x'; 400_000];
    // (name, expected, bytes to send)
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        ("unmasked client frame", 1002, frame(0x81, b"hi", false, None)),
        ("RSV1 set (no extension)", 1002, frame(0x80 | 0x40 | 0x1, b"hi", true, None)),
        ("200-byte ping", 1002, frame(0x89, &[0u8; 200], true, None)),
        ("invalid UTF-8 text", 1007, frame(0x81, &[0xce, 0xba, 0xff, 0xfe], true, None)),
        ("64-bit len = 2^40", 1009, frame(0x82, &[], true, Some(1 << 40))),
        // Extra: each fragment is under the limit but the message (1.2 MB) is not.
        ("3x400KB fragments > 1MB msg", 1009,
            [frame(0x02, &big, true, None), frame(0x00, &big, true, None), frame(0x80, &big, true, None)].concat()),
    ];
    let hwm0 = rss_kb(&pid, "VmHWM:");
    for (name, want, bytes) in cases {
        let got = match connect(port) {
            Err(e) => format!("handshake failed: {e} (server dead?)"),
            Ok(mut s) => { let _ = s.write_all(&bytes); outcome(&mut s) }
        };
        let ok = if got == format!("close {want}") { "yes" } else { "no" };
        println!("{name:<30} want {want}  {ok:<3}  got: {got}");
    }
    let alive = connect(port).is_ok();
    println!("{:<30}           {:<3}  peak RSS {:?} -> {:?} kB",
        "server alive afterwards", if alive { "yes" } else { "no" }, hwm0, rss_kb(&pid, "VmHWM:"));
}
