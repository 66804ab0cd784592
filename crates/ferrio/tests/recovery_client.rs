//! Connection state recovery end to end with the ferrio client: the transport is cut under a burst of
//! room broadcasts (a TCP proxy drops every connection at once, as a network failure would), the client
//! reconnects on its own, and gets its socket back with every broadcast exactly once and in order, the
//! missed ones before the live ones; over polling, websocket, and polling upgraded to websocket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ferrio::{ConnectionStateRecovery, Io, IoConfig, Socket as ServerSocket};
use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, Value};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WITHIN: Duration = Duration::from_secs(10);

/// A TCP proxy whose live connections can all be cut at once; it keeps accepting new ones.
struct Proxy {
    addr: std::net::SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut l = list.lock();
                l.retain(|t| !t.is_finished());
                l.push(task);
            }
        });
        Proxy {
            addr,
            conns,
            accept,
        }
    }

    /// Drops every connection going through (both ends see them closed).
    fn cut(&self) {
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// (socket id, recovered) for each connection handler call.
type Connections = Arc<Mutex<Vec<(String, bool)>>>;

async fn server() -> (Io, JoinHandle<()>, std::net::SocketAddr, Connections) {
    // Short heartbeats: a polling session whose client vanished is noticed (ping timeout) well
    // before the client's reconnection delay is over, so that its session is kept by then.
    let config = IoConfig::builder()
        .ping_interval(Duration::from_millis(100))
        .ping_timeout(Duration::from_millis(100))
        .connection_state_recovery(ConnectionStateRecovery::default())
        .build();
    let io = Io::new(config);
    let connections = Connections::default();
    let seen = connections.clone();
    io.on_connection(move |socket: ServerSocket| {
        let seen = seen.clone();
        async move {
            if !socket.recovered() {
                socket.join(["r"]).unwrap();
            }
            seen.lock()
                .push((socket.id().to_owned(), socket.recovered()));
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = io.clone();
    let task = tokio::spawn(async move {
        let _ = served.serve(listener).await;
    });
    (io, task, addr, connections)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + WITHIN;
    while !cond() {
        assert!(tokio::time::Instant::now() < end, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Broadcasts `0, 1, 2, …` to room `r` every millisecond until stopped; returns how many it sent.
fn producer(io: Io, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Acquire) {
            io.to("r").emit("n", &n).unwrap();
            n += 1;
            sent.store(n, Ordering::Release);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

async fn cut_under_load(mode: &[TransportKind], cuts: usize) {
    let (io, server_task, addr, connections) = server().await;
    let proxy = Proxy::start(addr).await;
    let mut opts = ClientOptions::default();
    opts.engine.transports = mode.to_vec();
    opts.reconnection_delay = Duration::from_millis(500);
    opts.reconnection_delay_max = Duration::from_millis(500);
    opts.randomization_factor = 0.0;
    opts.force_new = true;
    let socket = ferrio_client::connect(&format!("http://{}", proxy.addr), opts);
    let received: Arc<Mutex<Vec<u64>>> = Arc::default();
    let got = received.clone();
    socket.on("n", move |_s, ev| {
        let got = got.clone();
        async move {
            // The offset rides as a last argument: the number is the first.
            if let Some(Value::Number(n)) = ev.args().first() {
                got.lock().push(n.as_u64().unwrap());
            }
        }
    });
    wait_until("connected", || socket.connected()).await;
    wait_until("joined", || connections.lock().len() == 1).await;
    let id = socket.id().unwrap();
    if mode.len() > 1 {
        wait_until("upgraded", || {
            io.of("/")
                .socket(&id)
                .is_some_and(|s| s.transport() == ferrio::TransportKind::WebSocket)
        })
        .await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producing = producer(io.clone(), stop.clone(), sent.clone());
    for cut in 1..=cuts {
        let before = received.lock().len();
        let connected_before = connections.lock().len();
        wait_until("traffic before the cut", || {
            received.lock().len() >= before + 50
        })
        .await;
        proxy.cut();
        // Back with the same id (recovered), then live traffic again.
        wait_until("reconnected", || {
            connections.lock().len() > connected_before
        })
        .await;
        let after = received.lock().len();
        wait_until("traffic after the cut", || {
            received.lock().len() >= after + 50
        })
        .await;
        assert!(socket.recovered(), "cut {cut} in {mode:?}");
        assert_eq!(socket.id().as_deref(), Some(id.as_str()));
    }
    stop.store(true, Ordering::Release);
    producing.await.unwrap();
    let total = sent.load(Ordering::Acquire);
    wait_until("every broadcast", || received.lock().len() as u64 >= total).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let got = received.lock().clone();
    let want: Vec<u64> = (0..total).collect();
    if got != want {
        let dup = got.len() as u64 > total;
        let first_bad = got.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "{mode:?}: {} received for {total} sent (duplicates: {dup}), first out of place at {first_bad:?}",
            got.len()
        );
    }
    // A slow consumer's "transport error" is recoverable too, so there may be more reconnections than
    // cuts; every one of them must have recovered.
    let seen = connections.lock().clone();
    assert!(seen.len() > cuts, "{seen:?}");
    assert!(seen.iter().all(|(sid, _)| *sid == id), "{seen:?}");
    assert!(
        seen[1..].iter().all(|(_, recovered)| *recovered),
        "{seen:?}"
    );

    socket.disconnect();
    drop(proxy);
    server_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_cut_mid_burst() {
    cut_under_load(&[TransportKind::WebSocket], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_cut_mid_burst() {
    cut_under_load(&[TransportKind::Polling], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_cut_mid_burst() {
    cut_under_load(&[TransportKind::Polling, TransportKind::WebSocket], 3).await;
}
