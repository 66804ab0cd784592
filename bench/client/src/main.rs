//! Closed-loop `echo` acks with a Rust Socket.IO client, for the client side-by-side (`bench/client.sh`).
//!
//! `bench-client LIB URL CLIENTS SECONDS IDLE` with LIB `ferrio` or `rust_socketio`: CLIENTS sockets over
//! websocket, each keeping one `echo` with ack in flight, on a current-thread runtime (so the process's
//! CPU time is the client's); then IDLE more sockets connected and held, for the memory an idle client
//! costs. Prints one JSON object: acks, acks/s, the process's CPU µs per ack, latency percentiles (µs)
//! and the RSS per idle client (bytes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

struct Shared {
    start: Instant,
    measuring: AtomicBool,
    acks: AtomicU64,
    /// Every ack, warm-up included: the denominator for whole-run counts (callgrind instructions,
    /// strace syscalls), taken as a difference between a short and a long run.
    acks_total: AtomicU64,
    errors: AtomicU64,
    hist: std::sync::Mutex<Histogram<u64>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    fn acked(&self, sent: u64, back: Option<u64>) {
        if back != Some(sent) {
            self.errors.fetch_add(1, Relaxed);
            return;
        }
        self.acks_total.fetch_add(1, Relaxed);
        if self.measuring.load(Relaxed) {
            self.acks.fetch_add(1, Relaxed);
            let _ = self.hist.lock().unwrap().record(self.now_us().saturating_sub(sent).max(1));
        }
    }
}

/// utime + stime of this process, µs.
fn cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    ticks * 10_000 // CLK_TCK is 100 on Linux
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---- ferrio-client ------------------------------------------------------------------------------

fn ferrio_opts() -> ferrio_client::ClientOptions {
    let mut o = ferrio_client::ClientOptions::default();
    o.engine.transports = vec![ferrio_client::engine::TransportKind::WebSocket];
    o.force_new = true;
    o.reconnection = false;
    o
}

async fn ferrio_connect(url: &str) -> ferrio_client::Socket {
    let s = ferrio_client::connect(url, ferrio_opts());
    while !s.connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s
}

async fn ferrio_loop(url: String, sh: Arc<Shared>, stop: Arc<AtomicBool>) {
    let s = ferrio_connect(&url).await;
    while !stop.load(Relaxed) {
        let t = sh.now_us();
        match s.emit_with_ack("echo", &t).await {
            Ok(args) => sh.acked(t, args.0.first().and_then(|v| v.as_u64())),
            Err(_) => {
                sh.errors.fetch_add(1, Relaxed);
            }
        }
    }
    s.disconnect();
}

// ---- rust_socketio ------------------------------------------------------------------------------

mod rsio {
    use super::*;
    use futures_util::FutureExt;
    use futures_util::future::BoxFuture;
    use rust_socketio::asynchronous::{Client, ClientBuilder};
    use rust_socketio::{Payload, TransportType};

    pub async fn connect(url: &str) -> Client {
        ClientBuilder::new(url)
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .connect()
            .await
            .expect("rust_socketio connect")
    }

    /// Emits one echo whose ack callback emits the next one (the library has no awaitable ack).
    pub fn fire(c: Client, sh: Arc<Shared>, stop: Arc<AtomicBool>) -> BoxFuture<'static, ()> {
        async move {
            if stop.load(Relaxed) {
                return;
            }
            let t = sh.now_us();
            let (sh2, stop2) = (sh.clone(), stop.clone());
            let r = c
                .emit_with_ack(
                    "echo",
                    serde_json::json!(t),
                    Duration::from_secs(5),
                    move |p: Payload, c: Client| {
                        let back = match &p {
                            // rust_socketio hands the ack's arguments over as one array.
                            Payload::Text(v) => match v.first() {
                                Some(serde_json::Value::Array(args)) => {
                                    args.first().and_then(|x| x.as_u64())
                                }
                                other => other.and_then(|x| x.as_u64()),
                            },
                            _ => None,
                        };
                        if back.is_none() && std::env::var_os("BENCH_DEBUG").is_some() {
                            eprintln!("unexpected ack payload: {p:?}");
                        }
                        sh2.acked(t, back);
                        let (sh, stop) = (sh2.clone(), stop2.clone());
                        tokio::spawn(fire(c, sh, stop));
                        async {}.boxed()
                    },
                )
                .await;
            if r.is_err() {
                sh.errors.fetch_add(1, Relaxed);
            }
        }
        .boxed()
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        eprintln!("usage: bench-client ferrio|rust_socketio URL CLIENTS SECONDS IDLE");
        std::process::exit(2);
    }
    let (lib, url) = (a[1].clone(), a[2].clone());
    let clients: usize = a[3].parse().expect("CLIENTS");
    let seconds: f64 = a[4].parse().expect("SECONDS");
    let idle: usize = a[5].parse().expect("IDLE");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sh = Arc::new(Shared {
        start: Instant::now(),
        measuring: AtomicBool::new(false),
        acks: AtomicU64::new(0),
        acks_total: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        hist: std::sync::Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()),
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let stop = Arc::new(AtomicBool::new(false));
        let mut keep = Vec::new();
        match lib.as_str() {
            "ferrio" => {
                for _ in 0..clients {
                    tokio::spawn(ferrio_loop(url.clone(), sh.clone(), stop.clone()));
                }
            }
            "rust_socketio" => {
                for _ in 0..clients {
                    let c = rsio::connect(&url).await;
                    tokio::spawn(rsio::fire(c.clone(), sh.clone(), stop.clone()));
                    keep.push(c);
                }
            }
            other => panic!("unknown LIB {other}"),
        }
        // Warm-up, then the measurement.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu0 = cpu_us();
        let t0 = Instant::now();
        sh.measuring.store(true, Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        sh.measuring.store(false, Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_us() - cpu0;
        stop.store(true, Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Idle clients: RSS before and after connecting them.
        let rss0 = rss_kb();
        let mut idle_ferrio = Vec::new();
        let mut idle_rsio = Vec::new();
        for _ in 0..idle {
            match lib.as_str() {
                "ferrio" => idle_ferrio.push(ferrio_connect(&url).await),
                _ => idle_rsio.push(rsio::connect(&url).await),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss1 = rss_kb();
        let acks = sh.acks.load(Relaxed);
        let h = sh.hist.lock().unwrap().clone();
        println!(
            "{}",
            serde_json::json!({
                "lib": lib,
                "clients": clients,
                "seconds": secs,
                "acks": acks,
                "acks_total": sh.acks_total.load(Relaxed),
                "acks_per_s": acks as f64 / secs,
                "cpu_us_per_ack": if acks > 0 { cpu as f64 / acks as f64 } else { f64::NAN },
                "latency_us": {"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "max": h.max()},
                "errors": sh.errors.load(Relaxed),
                "idle_clients": idle,
                "rss_per_idle_client_bytes": if idle > 0 { (rss1 as f64 - rss0 as f64) * 1024.0 / idle as f64 } else { f64::NAN },
            })
        );
        for s in idle_ferrio {
            s.disconnect();
        }
        for c in idle_rsio.into_iter().chain(keep) {
            let _ = c.disconnect().await;
        }
    });
}
