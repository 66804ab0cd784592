//! Memory an idle websocket connection costs the server, measured in one process (bench/deflate.md):
//! `ws_idle_rss [N] [--per-message-deflate]` serves Socket.IO on 127.0.0.1, opens N raw websocket
//! connections that join `/` and then stay silent, and prints (VmRSS after − VmRSS before) / N. The
//! client side of each connection is a bare TcpStream, counted in the figure (a few hundred bytes).

use std::time::Duration;

use ferrio::{Io, IoConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reads until `pred` holds for what arrived.
async fn read_until(tcp: &mut TcpStream, pred: impl Fn(&[u8]) -> bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !pred(&buf) {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let deflate = args.next().as_deref() == Some("--per-message-deflate");
    let io = Io::new(
        IoConfig::builder()
            .ping_interval(Duration::from_secs(300))
            .ping_timeout(Duration::from_secs(300))
            .per_message_deflate(deflate.then(Default::default))
            .build(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = io.clone();
    tokio::spawn(async move { served.serve(listener).await });
    // Warm-up: one connection through every code path, so that lazily built statics are not counted.
    let mut conns = Vec::with_capacity(n + 1);
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    // "40" masked with a zero key.
    let connect = [0x81u8, 0x82, 0, 0, 0, 0, b'4', b'0'];
    let mut before = 0;
    for i in 0..=n {
        if i == 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            before = rss_kb();
        }
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(req.as_bytes()).await.unwrap();
        read_until(&mut tcp, |b| b.windows(3).any(|w| w == b"0{\"")).await;
        tcp.write_all(&connect).await.unwrap();
        read_until(&mut tcp, |b| b.windows(3).any(|w| w == b"40{")).await;
        conns.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kb();
    println!(
        "{n} idle websocket connections (deflate {}): {:.2} KB each (VmRSS {} KB -> {} KB)",
        if deflate { "negotiated" } else { "off" },
        (after - before) as f64 / n as f64,
        before,
        after
    );
}
