//! Connection state recovery across nodes on the Redis Streams adapter: a ferrio client connected to
//! node A loses its connection, comes back on node B with its pid and offset, and gets its socket id
//! back with every broadcast it missed, once and in order, before the live ones.

#[path = "common/servers.rs"]
mod servers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrio::{ConnectionStateRecovery, Io, IoConfig, Socket as ServerSocket};
use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, Value};
use ferrio_redis::{RedisStreamsAdapterHandle, RedisStreamsConfig};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use servers::Redis;

const WITHIN: Duration = Duration::from_secs(10);

/// A TCP proxy to a switchable upstream; its live connections can all be cut at once.
struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (list, to) = (conns.clone(), upstream.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = *to.lock();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
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
            upstream,
            conns,
            accept,
        }
    }

    /// New connections go to `to`; live ones are dropped (both ends see them closed).
    fn move_to(&self, to: SocketAddr) {
        *self.upstream.lock() = to;
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }
}

/// (socket id, recovered) for each connection handler call of one node.
type Connections = Arc<Mutex<Vec<(String, bool)>>>;

struct Node {
    io: Io,
    redis: RedisStreamsAdapterHandle,
    task: JoinHandle<()>,
    addr: SocketAddr,
    connections: Connections,
}

impl Node {
    async fn start(url: &str, stream: &str) -> Node {
        let config = RedisStreamsConfig::builder()
            .stream_name(stream)
            .session_key_prefix(format!("{stream}:session:"))
            .build();
        let redis = RedisStreamsAdapterHandle::connect(url, config)
            .await
            .unwrap();
        let config = IoConfig::builder()
            .ping_interval(Duration::from_millis(100))
            .ping_timeout(Duration::from_millis(100))
            .connection_state_recovery(ConnectionStateRecovery::default())
            .adapter(redis.factory())
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
        Node {
            io,
            redis,
            task,
            addr,
            connections,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
        self.redis.close();
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + WITHIN;
    while !cond() {
        assert!(tokio::time::Instant::now() < end, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client of `proxy` reconnecting `after` a loss, and the numbers of the `n` broadcasts it got.
fn numbers_client(
    proxy: &Proxy,
    transports: &[TransportKind],
    after: Duration,
) -> (ferrio_client::Socket, Arc<Mutex<Vec<u64>>>) {
    let mut opts = ClientOptions::default();
    opts.engine.transports = transports.to_vec();
    opts.reconnection_delay = after;
    opts.reconnection_delay_max = after;
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
    (socket, received)
}

async fn from_a_to_b(transports: &[TransportKind]) {
    let redis = Redis::start();
    let url = redis.url();
    let a = Node::start(&url, "recovery").await;
    let b = Node::start(&url, "recovery").await;
    let proxy = Proxy::start(a.addr).await;

    let (socket, received) = numbers_client(&proxy, transports, Duration::from_millis(500));
    // The server knows the socket before the client has read its CONNECT answer: wait for both.
    wait_until("connected to A", || {
        a.connections.lock().len() == 1 && socket.connected()
    })
    .await;
    let id = socket.id().unwrap();

    // Live on A, from both nodes.
    for n in 0..10u64 {
        let from = if n % 2 == 0 { &a.io } else { &b.io };
        from.to("r").emit("n", &n).unwrap();
    }
    wait_until("live broadcasts", || received.lock().len() == 10).await;

    // The client drops; while it is away, both nodes broadcast to its room.
    proxy.move_to(b.addr);
    wait_until("A noticed", || {
        a.io.of("/").socket(&id).is_none() && !socket.connected()
    })
    .await;
    for n in 10..40u64 {
        let from = if n % 3 == 0 { &a.io } else { &b.io };
        from.to("r").emit("n", &n).unwrap();
    }

    // Back on B: same id, recovered, the missed ones first.
    wait_until("reconnected to B", || !b.connections.lock().is_empty()).await;
    assert_eq!(*b.connections.lock(), vec![(id.clone(), true)]);
    wait_until("client recovered", || socket.connected()).await;
    assert!(socket.recovered());
    assert_eq!(socket.id().as_deref(), Some(id.as_str()));
    for n in 40..50u64 {
        a.io.to("r").emit("n", &n).unwrap();
    }
    wait_until("every broadcast", || received.lock().len() >= 50).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = received.lock().clone();
    // Two nodes append to the stream concurrently: the stream's order, which every client sees, is
    // each node's own order interleaved.
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<u64>>(), "once each: {got:?}");
    let mut missed = got[..40].to_vec();
    missed.sort_unstable();
    assert_eq!(
        missed,
        (0..40).collect::<Vec<u64>>(),
        "missed before live: {got:?}"
    );
    let from_a =
        |n: &u64| (*n < 10 && n % 2 == 0) || (10..40).contains(n) && n % 3 == 0 || *n >= 40;
    for origin in [true, false] {
        let of: Vec<u64> = got
            .iter()
            .copied()
            .filter(|n| from_a(n) == origin)
            .collect();
        assert!(of.is_sorted(), "one node's order kept: {got:?}");
    }
    // The socket now lives on B, and in its room there.
    assert!(b.io.of("/").socket(&id).is_some());
    assert_eq!(a.connections.lock().len(), 1);

    socket.disconnect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_session_moves_to_another_node() {
    from_a_to_b(&[TransportKind::WebSocket]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_session_moves_to_another_node() {
    from_a_to_b(&[TransportKind::Polling]).await;
}

/// Redis restarts while a client is away: the session its node stores meanwhile and the broadcasts
/// sent meanwhile wait for Redis to come back (as node-redis's offline queue makes them wait for the
/// official adapter) instead of being lost, so the client comes back on the other node recovered,
/// with every broadcast once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarts_while_the_client_is_away() {
    let mut redis = Redis::start_persistent();
    let url = redis.url();
    let a = Node::start(&url, "restart").await;
    let b = Node::start(&url, "restart").await;
    let proxy = Proxy::start(a.addr).await;

    // Back after Redis is: the session is stored by then.
    let (socket, received) = numbers_client(
        &proxy,
        &[TransportKind::WebSocket],
        Duration::from_millis(2_000),
    );
    wait_until("connected to A", || {
        a.connections.lock().len() == 1 && socket.connected()
    })
    .await;
    let id = socket.id().unwrap();
    for n in 0..6u64 {
        let from = if n % 2 == 0 { &a.io } else { &b.io };
        from.to("r").emit("n", &n).unwrap();
    }
    wait_until("live broadcasts", || received.lock().len() == 6).await;

    redis.stop();
    proxy.move_to(b.addr);
    wait_until("A noticed", || {
        a.io.of("/").socket(&id).is_none() && !socket.connected()
    })
    .await;
    for n in 6..12u64 {
        let from = if n % 2 == 0 { &a.io } else { &b.io };
        from.to("r").emit("n", &n).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();

    wait_until("reconnected to B", || !b.connections.lock().is_empty()).await;
    assert_eq!(*b.connections.lock(), vec![(id.clone(), true)]);
    wait_until("client recovered", || socket.connected()).await;
    assert!(socket.recovered());
    wait_until("every broadcast", || received.lock().len() >= 12).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = received.lock().clone();
    got.sort_unstable();
    assert_eq!(got, (0..12).collect::<Vec<u64>>(), "once each");
    socket.disconnect();
}
