//! Closed-loop echo load generator (same client for both servers).
//!   loadgen PORT text|binary CONNS SECS  -> one result line
//!   loadgen PORT idle CONNS SECS         -> opens CONNS, prints READY, holds SECS
//! Each connection keeps exactly one message in flight: send, wait for the
//! echo, record the round-trip, repeat. Throughput is therefore bounded by
//! latency x concurrency, which is what a Socket.IO server sees from many
//! mostly-idle clients better than a pipelined firehose would.
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{client_async, tungstenite::Message};

async fn connect(port: u16) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    client_async(format!("ws://127.0.0.1:{port}/"), tcp).await.expect("handshake").0
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let port: u16 = a[1].parse().unwrap();
    let mode = a[2].clone();
    let conns: usize = a.get(3).map_or(100, |s| s.parse().unwrap());
    let secs: f64 = a.get(4).map_or(10.0, |s| s.parse().unwrap());
    // Current-thread: run.sh pins us to one core, same as the server.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        // Connect sequentially-ish in batches so the listen backlog never overflows.
        let mut sockets = Vec::with_capacity(conns);
        for chunk in (0..conns).collect::<Vec<_>>().chunks(100) {
            let hs: Vec<_> = chunk.iter().map(|_| tokio::spawn(connect(port))).collect();
            for h in hs { sockets.push(h.await.unwrap()); }
        }
        if mode == "idle" {
            println!("READY {}", sockets.len());
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            return;
        }
        let msg = match mode.as_str() {
            "text" => Message::text("4hello world"), // Socket.IO "message" packet, 12 bytes
            _ => Message::binary(vec![0xA5u8; 1024]),
        };
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = sockets.into_iter().map(|mut ws| {
            let msg = msg.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16); // round-trips in µs
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    ws.send(msg.clone()).await.expect("send");
                    match ws.next().await {
                        Some(Ok(m)) if m.len() == msg.len() => {}
                        other => panic!("bad echo: {other:?}"),
                    }
                    lat.push(t0.elapsed().as_micros() as u32);
                }
                let _ = ws.close(None).await;
                lat
            })
        }).collect();
        let mut all = Vec::new();
        for t in tasks { all.extend(t.await.unwrap()); }
        let elapsed = start.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
        // key=value so run.sh can parse it with plain shell.
        println!("msgs={} rate={:.0} p50_us={} p99_us={}", all.len(), all.len() as f64 / elapsed, pct(0.50), pct(0.99));
    });
}
