//! Connection state recovery end to end with the ferrio client: the transport is cut under a burst of
//! room broadcasts (a TCP proxy drops every connection at once, as a network failure would), the client
//! reconnects on its own, and gets its socket back with every broadcast exactly once and in order, the
//! missed ones before the live ones; over polling, websocket, and polling upgraded to websocket; and
//! 100 cuts under load across the three.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ferrio::{ConnectionStateRecovery, DisconnectReason, Io, IoConfig, Socket as ServerSocket};
use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, Value};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WITHIN: Duration = Duration::from_secs(10);

/// A TCP proxy between the client and the server, standing for the network: `cut` drops every live
/// connection (both ends see them die, without a close frame or a close packet) and refuses new ones
/// until `restore`, as a network outage would.
///
/// The outage lasts until the server noticed the drop. Were new connections let through at once, a
/// polling client cut between two polls would just send its next GET on a fresh connection and never
/// notice the cut; and a client back before the server noticed would find its session still in use
/// (so not recoverable): both are timing luck, not what these tests are about.
struct Proxy {
    addr: std::net::SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    down: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (list, is_down) = (conns.clone(), down.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_down.load(Ordering::Acquire) {
                    // Refused: the client sees its connection close at once.
                    drop(inbound);
                    continue;
                }
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
            down,
            accept,
        }
    }

    /// Drops every connection going through and refuses new ones until `restore`.
    fn cut(&self) {
        self.down.store(true, Ordering::Release);
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// What the server saw, per socket id.
#[derive(Default)]
struct Seen {
    /// Connection handler calls: (socket id, recovered).
    connections: Mutex<Vec<(String, bool)>>,
    /// Disconnections: (socket id, reason).
    disconnections: Mutex<Vec<(String, DisconnectReason)>>,
}

impl Seen {
    fn connections_of(&self, id: &str) -> Vec<bool> {
        let c = self.connections.lock();
        c.iter()
            .filter(|(sid, _)| sid == id)
            .map(|(_, r)| *r)
            .collect()
    }

    fn disconnections_of(&self, id: &str) -> Vec<DisconnectReason> {
        let d = self.disconnections.lock();
        d.iter()
            .filter(|(sid, _)| sid == id)
            .map(|(_, r)| *r)
            .collect()
    }
}

async fn server() -> (Io, JoinHandle<()>, std::net::SocketAddr, Arc<Seen>) {
    // Short heartbeats: a polling session whose client vanished between two polls is noticed (ping
    // timeout) quickly, which ends the outage. Not shorter: a client that misses a ping under load
    // drops its connection on its own and may be back before the server noticed (so without its
    // session), which is not what these tests are about.
    let config = IoConfig::builder()
        .ping_interval(Duration::from_millis(150))
        .ping_timeout(Duration::from_millis(300))
        .connection_state_recovery(ConnectionStateRecovery::default())
        .build();
    let io = Io::new(config);
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    io.on_connection(move |socket: ServerSocket| {
        let record = record.clone();
        async move {
            if !socket.recovered() {
                socket.join(["r"]).unwrap();
            }
            let on_gone = record.clone();
            socket.on_disconnect(move |s: ServerSocket, reason| {
                let on_gone = on_gone.clone();
                async move {
                    on_gone
                        .disconnections
                        .lock()
                        .push((s.id().to_owned(), reason));
                }
            });
            record
                .connections
                .lock()
                .push((socket.id().to_owned(), socket.recovered()));
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = io.clone();
    let task = tokio::spawn(async move {
        let _ = served.serve(listener).await;
    });
    (io, task, addr, seen)
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

/// A ferrio client behind its own proxy, recording the numbers it receives.
struct Client {
    mode: Vec<TransportKind>,
    socket: ferrio_client::Socket,
    received: Arc<Mutex<Vec<u64>>>,
    id: String,
    proxy: Proxy,
}

impl Client {
    /// Connects over `mode` through a new proxy; back once the socket joined room `r` (waits for the
    /// upgrade too when `mode` has both transports).
    async fn connect(
        io: &Io,
        addr: std::net::SocketAddr,
        seen: &Seen,
        mode: &[TransportKind],
        reconnection_delay: Duration,
    ) -> Client {
        let proxy = Proxy::start(addr).await;
        let mut opts = ClientOptions::default();
        opts.engine.transports = mode.to_vec();
        opts.reconnection_delay = reconnection_delay;
        opts.reconnection_delay_max = reconnection_delay;
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
        let id = socket.id().unwrap();
        wait_until("joined", || seen.connections_of(&id).len() == 1).await;
        if mode.len() > 1 {
            wait_until("upgraded", || {
                io.of("/")
                    .socket(&id)
                    .is_some_and(|s| s.transport() == ferrio::TransportKind::WebSocket)
            })
            .await;
        }
        Client {
            mode: mode.to_vec(),
            socket,
            received,
            id,
            proxy,
        }
    }

    /// Cuts the network `cuts` times, each once `traffic` more numbers arrived; after each cut, waits
    /// for the server to notice, ends the outage, and waits for the socket to be back (recovered, same
    /// id) and for `traffic` more numbers.
    async fn cut_repeatedly(&self, seen: &Seen, cuts: usize, traffic: usize) {
        let mode = &self.mode;
        for cut in 1..=cuts {
            let before = self.received.lock().len();
            wait_until("traffic before the cut", || {
                self.received.lock().len() >= before + traffic
            })
            .await;
            let connected_before = seen.connections_of(&self.id).len();
            let gone_before = seen.disconnections_of(&self.id).len();
            self.proxy.cut();
            wait_until("the server noticed the cut", || {
                seen.disconnections_of(&self.id).len() > gone_before
            })
            .await;
            self.proxy.restore();
            // Back with the same id (recovered), then live traffic again.
            wait_until("reconnected", || {
                seen.connections_of(&self.id).len() > connected_before
            })
            .await;
            let after = self.received.lock().len();
            wait_until("traffic after the cut", || {
                self.received.lock().len() >= after + traffic
            })
            .await;
            assert!(self.socket.recovered(), "cut {cut} in {mode:?}");
            assert_eq!(self.socket.id().as_deref(), Some(self.id.as_str()));
        }
    }

    /// Every number of `0..total` once and in order; every reconnection recovered, and every
    /// disconnection the server saw for a reason that allows it.
    async fn check(&self, seen: &Seen, total: u64, cuts: usize) {
        let mode = &self.mode;
        wait_until("every broadcast", || {
            self.received.lock().len() as u64 >= total
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = self.received.lock().clone();
        if got.iter().copied().ne(0..total) {
            let dup = got.len() as u64 > total;
            let first_bad = got.iter().zip(0..total).position(|(a, b)| *a != b);
            panic!(
                "{mode:?}: {} received for {total} sent (duplicates: {dup}), first out of place at {first_bad:?}",
                got.len()
            );
        }
        // A slow consumer's "transport error" is recoverable too, so there may be more reconnections
        // than cuts; every one of them must have recovered.
        let connections = seen.connections_of(&self.id);
        assert!(connections.len() > cuts, "{mode:?}: {connections:?}");
        assert!(
            connections[1..].iter().all(|recovered| *recovered),
            "{mode:?}: {connections:?}"
        );
        let reasons = seen.disconnections_of(&self.id);
        assert!(
            reasons.iter().all(|r| r.is_recoverable()),
            "{mode:?}: {reasons:?}"
        );
    }
}

async fn cut_under_load(mode: &[TransportKind], cuts: usize) {
    let (io, server_task, addr, seen) = server().await;
    let client = Client::connect(&io, addr, &seen, mode, Duration::from_millis(500)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producing = producer(io.clone(), stop.clone(), sent.clone());
    client.cut_repeatedly(&seen, cuts, 50).await;
    stop.store(true, Ordering::Release);
    producing.await.unwrap();
    client
        .check(&seen, sent.load(Ordering::Acquire), cuts)
        .await;

    client.socket.disconnect();
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

/// 100 cuts under load: three clients (polling, websocket, polling upgraded to websocket) receive the
/// same stream of room broadcasts, one every millisecond, while each one's network is cut again and
/// again (34 + 33 + 33 times, at the same time); each gets every broadcast once and in order.
/// Reconnection delays are short (200 ms) to keep the test short; a client back during the outage is
/// refused and tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_cuts_under_load() {
    const CUTS: [usize; 3] = [34, 33, 33];
    let (io, server_task, addr, seen) = server().await;
    let delay = Duration::from_millis(200);
    let polling = Client::connect(&io, addr, &seen, &[TransportKind::Polling], delay).await;
    let websocket = Client::connect(&io, addr, &seen, &[TransportKind::WebSocket], delay).await;
    let upgraded = Client::connect(
        &io,
        addr,
        &seen,
        &[TransportKind::Polling, TransportKind::WebSocket],
        delay,
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producing = producer(io.clone(), stop.clone(), sent.clone());
    let started = std::time::Instant::now();
    tokio::join!(
        polling.cut_repeatedly(&seen, CUTS[0], 20),
        websocket.cut_repeatedly(&seen, CUTS[1], 20),
        upgraded.cut_repeatedly(&seen, CUTS[2], 20),
    );
    stop.store(true, Ordering::Release);
    producing.await.unwrap();
    let total = sent.load(Ordering::Acquire);
    for (client, cuts) in [&polling, &websocket, &upgraded].into_iter().zip(CUTS) {
        client.check(&seen, total, cuts).await;
    }
    eprintln!(
        "{} cuts, {total} broadcasts to 3 clients in {:?}",
        CUTS.iter().sum::<usize>(),
        started.elapsed()
    );

    for c in [&polling, &websocket, &upgraded] {
        c.socket.disconnect();
    }
    server_task.abort();
}
