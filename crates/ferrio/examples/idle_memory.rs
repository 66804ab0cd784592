//! The heap an idle connection costs the server: `bench/memory.sh` runs it (under valgrind's DHAT for
//! the per-call-site breakdown) while `ferrio bench idle` holds the connections from another process, so
//! only the server's own allocations are counted.
//!
//! `cargo run --release -p ferrio --example idle_memory -- --clients N [--settle SECS]` serves Socket.IO at
//! `/socket.io/` with the demo's listeners (`join`, `leave`, `echo`) on every socket, prints
//! `listening on http://127.0.0.1:PORT` once bound, waits until N sockets joined `/`, waits SECS more
//! (default 3) for the connections to go idle, then prints one line of figures and exits at once
//! (without dropping anything, so that DHAT's "at t-end" figures are the live heap of N idle
//! connections):
//!
//! `idle clients=N heap_bytes_per_client=B heap_blocks_per_client=K rss_bytes_per_client=R`
//!
//! The heap figures come from a counting global allocator (live bytes and blocks, after minus before the
//! clients connected, divided by N); RSS from `/proc/self/statm`, which depends on the allocator's
//! habits and on the machine, while the heap figures do not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;

use ferrio::{Event, Io, IoConfig, Socket};

/// The system allocator, counting what is live.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the counters only observe sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: idle_memory --clients N [--settle SECS]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut clients = 0usize;
    let mut settle = 3.0f64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--clients" => clients = value.parse().unwrap_or_else(|_| usage("--clients")),
            "--settle" => settle = value.parse().unwrap_or_else(|_| usage("--settle")),
            other => usage(&format!("unknown flag {other:?}")),
        }
    }
    if clients == 0 {
        usage("--clients N is required");
    }

    let io = Io::new(IoConfig::builder().serve_client(false).build());
    let joined = Arc::new(AtomicUsize::new(0));
    let count = joined.clone();
    // The listeners of `ferrio serve`'s demo, so that each socket carries what a small application's does.
    io.on_connection(move |socket: Socket| {
        count.fetch_add(1, Ordering::Relaxed);
        async move {
            socket.on("join", |socket: Socket, mut ev: Event| async move {
                let ok = ev
                    .parse::<String>()
                    .is_ok_and(|room| socket.join([room]).is_ok());
                let _ = ev.ack(&ok);
            });
            socket.on("leave", |socket: Socket, mut ev: Event| async move {
                let ok = ev.parse::<String>().map(|room| socket.leave(room)).is_ok();
                let _ = ev.ack(&ok);
            });
            socket.on("echo", |_socket, mut ev: Event| async move {
                let args = ev.take_args();
                if let Some(ack) = ev.take_ack() {
                    let _ = ack.send_args(args);
                }
            });
        }
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let serving = io.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    // Let the runtime's and the server's one-time allocations happen before the baseline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (bytes0, blocks0, rss0) = (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
        rss_bytes(),
    );
    println!("listening on http://{addr}");

    while joined.load(Ordering::Relaxed) < clients {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let n = clients as f64;
    let bytes = (LIVE_BYTES.load(Ordering::Relaxed) - bytes0) as f64 / n;
    let blocks = (LIVE_BLOCKS.load(Ordering::Relaxed) - blocks0) as f64 / n;
    let rss = (rss_bytes() as f64 - rss0 as f64) / n;
    println!(
        "idle clients={clients} sessions={} heap_bytes_per_client={bytes:.0} heap_blocks_per_client={blocks:.1} rss_bytes_per_client={rss:.0}",
        io.engine().clients_count()
    );
    // No destructor runs: what is live now is what DHAT reports "at t-end".
    std::process::exit(0);
}
