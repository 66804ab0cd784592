//! `ferrio bench soak`: many clients churning for a long time against one or more nodes of a
//! cluster, counting every chat message that a client with connection state recovery should have
//! received and did not (lost), or received twice (duplicated).
//!
//! Unlike the other scenarios, each client is a full `ferrio_client` socket (reconnection, recovery,
//! offline buffer), since what is soaked is the whole life of a connection. A client slot runs lives one
//! after the other: connect, `join` its room (ack), chat in it every few seconds, and after a random
//! lifetime `leave` (ack) and disconnect for good. Meanwhile the transport is cut abruptly: the clients
//! of a slot group reach the servers through one TCP proxy of this process, and every `--cut-every`
//! seconds the proxy of a random group drops every connection going through it (both ends see them
//! closed, as in a network failure); the clients reconnect on their own. Groups alternate between
//! websocket-only clients, whose proxy sends each new connection to the next node (so a session is
//! often restored on the other node, through the adapter), and clients starting on polling and
//! upgrading, whose proxy sticks to one node (polling needs it).
//!
//! The demo app of `ferrio serve` broadcasts `chat` to the room, sender included, so each message is
//! expected by every member of its room while it is a member: from one second after its `join` was
//! acknowledged to one second before the life ends (it then stays in the room five seconds more, for
//! what is still on its way, before it leaves; a life ending while disconnected ends at the
//! disconnection). A reconnection that restored the session keeps the member in the room: what was
//! broadcast meanwhile is expected (that is what recovery promises: every packet broadcast while the
//! session was kept, provided its offset is still in the log). A reconnection that did not restore it
//! (the session expired, was unknown, or not stored yet) makes a new socket that joins again: from
//! one second before the disconnection to one second after the new join nothing is expected, and what
//! the old session had not received when it dropped, sent within the run's slowest delivery time
//! before, is counted apart (it was on its way; a new session starts empty). Messages sent around a
//! Redis restart (`--redis-marks`: a file of `down <unix ms>` and
//! `up <unix ms>` lines written by the soak script) are counted apart, since a broadcast the adapter
//! could not publish is lost for other nodes by design.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrio_client::engine::TransportKind;
use ferrio_client::{ClientOptions, Value};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Margin around a join, a leave and an unrestored reconnection within which a message is not
/// expected (the broadcast and the membership change race across nodes).
const MARGIN_MS: u64 = 1_000;
/// Margin around a Redis outage.
const REDIS_MARGIN_MS: u64 = 3_000;
/// How long a life still listens, in its room, after it stopped expecting messages: a broadcast sent
/// just before reaches the other node's members later (the time for the stream to be read there).
const DRAIN: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A small xorshift generator: the soak needs spread, not quality, and no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A value in `lo..hi` (milliseconds).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Options of the soak scenario.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub urls: Vec<String>,
    pub clients: usize,
    pub duration: Duration,
    pub group_size: usize,
    pub room_size: usize,
    pub cut_every: Duration,
    pub report_every: Duration,
    pub redis_marks: Option<std::path::PathBuf>,
    pub quiet: bool,
}

/// A TCP proxy whose live connections can all be cut at once; it keeps accepting new ones. With
/// several upstreams it sends each new connection to the next one.
struct Proxy {
    addr: std::net::SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstreams: Vec<std::net::SocketAddr>) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = conns.clone();
        let accept = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstreams[next % upstreams.len()];
                next += 1;
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
        Ok(Proxy {
            addr,
            conns,
            accept,
        })
    }

    /// Drops every connection going through; returns how many.
    fn cut(&self) -> usize {
        let all: Vec<_> = self.conns.lock().drain(..).collect();
        let n = all.iter().filter(|t| !t.is_finished()).count();
        for t in all {
            t.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[derive(Default)]
struct Counters {
    lives: AtomicU64,
    active: AtomicU64,
    connect_failures: AtomicU64,
    join_failures: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    cuts: AtomicU64,
    cut_connections: AtomicU64,
    reconnections: AtomicU64,
    restored: AtomicU64,
    not_restored: AtomicU64,
    not_restored_without_offset: AtomicU64,
}

/// What happened to the connection of a life, and when (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// The socket saw its connection go.
    Down,
    /// A reconnection noticed by the life's loop, and whether it restored the session.
    Up { restored: bool },
}

/// What one life of a client saw, for the final count.
struct LifeRecord {
    slot: usize,
    room: usize,
    /// Websocket-only (its proxy alternates nodes), or polling then upgrade (its proxy sticks to one).
    websocket_only: bool,
    joined: u64,
    end: u64,
    /// Reconnections that did not restore the session: (disconnected at, joined again at).
    gaps: Vec<(u64, u64)>,
    /// The connection's history: disconnections and reconnections.
    events: Vec<(u64, Ev)>,
    /// Message id -> when it arrived (unix ms).
    got: HashMap<u64, u64>,
    duplicates: u64,
}

/// One chat message as its sender recorded it.
#[derive(Clone, Copy)]
struct Sent {
    at: u64,
    id: u64,
    slot: usize,
}

#[derive(Default)]
struct Ledger {
    /// Per room, in send order.
    sent: HashMap<usize, Vec<Sent>>,
    lives: Vec<LifeRecord>,
}

/// Shared by every client task.
struct Shared {
    opts: SoakOptions,
    proxies: Vec<Proxy>,
    counters: Counters,
    ledger: Mutex<Ledger>,
    next_id: AtomicU64,
    stop: AtomicBool,
}

/// Live state of one life, written by the socket's listeners.
#[derive(Default)]
struct LiveState {
    got: HashMap<u64, u64>,
    duplicates: u64,
    /// When the current outage started (first disconnection not yet followed by a connection).
    down_since: Option<u64>,
    events: Vec<(u64, Ev)>,
    /// When the current connection was noticed, and when the last chat message arrived.
    connected_at: u64,
    last_got: u64,
}

/// The summary printed at the end.
#[derive(Debug, Serialize)]
pub struct SoakSummary {
    pub seconds: f64,
    pub clients: usize,
    pub lives: u64,
    pub connect_failures: u64,
    pub join_failures: u64,
    pub cuts: u64,
    pub cut_connections: u64,
    pub reconnections: u64,
    pub restored: u64,
    pub not_restored: u64,
    /// Of those, connections that had received no broadcast, so had no offset to resume from.
    pub not_restored_without_offset: u64,
    pub sent: u64,
    pub received: u64,
    /// Deliveries expected by members (recovery included).
    pub expected: u64,
    /// Expected deliveries that never came, outside Redis outages.
    pub lost: u64,
    /// Deliveries not received before a disconnection whose session was then not restored, sent
    /// within the slowest delivery time of the run before it: on their way when the session was lost,
    /// which recovery does not promise (a new session starts empty). Not counted in `expected`.
    pub in_flight_when_a_session_was_lost: u64,
    /// Delivery times (received minus sent, milliseconds): median, 99th percentile, slowest.
    pub latency_ms: [u64; 3],
    /// Messages that no client received at all: their sender's transport was cut while the packet was
    /// on its way, so the server never had it (an emit without ack is at most once). Not deliveries
    /// a member missed, so not counted in `expected`.
    pub never_reached_the_server: u64,
    /// Deliveries that came twice or more (counted once per extra copy).
    pub duplicated: u64,
    /// Expected deliveries of messages sent around a Redis restart.
    pub expected_during_redis_outages: u64,
    /// Of those, the ones that never came.
    pub lost_during_redis_outages: u64,
    /// A few of the lost deliveries, `message id -> life`, for debugging.
    pub lost_examples: Vec<String>,
}

fn node_addrs(urls: &[String]) -> Result<Vec<std::net::SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    urls.iter()
        .map(|u| {
            let hostport = u
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .split('/')
                .next()
                .unwrap_or_default();
            hostport
                .to_socket_addrs()
                .map_err(|e| format!("{u}: {e}"))?
                .next()
                .ok_or_else(|| format!("{u}: no address"))
        })
        .collect()
}

/// Runs the soak.
pub async fn run(opts: SoakOptions) -> Result<SoakSummary, String> {
    let nodes = node_addrs(&opts.urls)?;
    let groups = opts.clients.div_ceil(opts.group_size.max(1));
    let mut proxies = Vec::with_capacity(groups);
    for g in 0..groups {
        let upstreams = if g % 2 == 0 {
            nodes.clone()
        } else {
            vec![nodes[(g / 2) % nodes.len()]]
        };
        proxies.push(Proxy::start(upstreams).await.map_err(|e| e.to_string())?);
    }
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        proxies,
        counters: Counters::default(),
        ledger: Mutex::new(Ledger::default()),
        next_id: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let start = std::time::Instant::now();
    let mut slots = Vec::with_capacity(opts.clients);
    for slot in 0..opts.clients {
        let s = shared.clone();
        slots.push(tokio::spawn(async move { run_slot(s, slot).await }));
        // Ramp at about 200 connections a second.
        if slot % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let chaos = tokio::spawn(chaos(shared.clone()));
    let reporter = tokio::spawn(report(shared.clone(), start));
    let remaining = opts.duration.saturating_sub(start.elapsed());
    tokio::time::sleep(remaining).await;
    shared.stop.store(true, Relaxed);
    chaos.abort();
    for s in slots {
        let _ = s.await;
    }
    reporter.abort();
    let seconds = start.elapsed().as_secs_f64();
    let marks = match &opts.redis_marks {
        Some(p) => read_marks(p),
        None => Vec::new(),
    };
    Ok(summarize(&shared, seconds, &marks))
}

/// Every `cut_every`, drops the connections of one random group.
async fn chaos(shared: Arc<Shared>) {
    let mut rng = Rng::new(now_ms() ^ 0xC4A05);
    let mut tick = tokio::time::interval(shared.opts.cut_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let g = (rng.next() % shared.proxies.len() as u64) as usize;
        let n = shared.proxies[g].cut();
        shared.counters.cuts.fetch_add(1, Relaxed);
        shared.counters.cut_connections.fetch_add(n as u64, Relaxed);
    }
}

async fn report(shared: Arc<Shared>, start: std::time::Instant) {
    if shared.opts.quiet {
        return;
    }
    let mut tick = tokio::time::interval(shared.opts.report_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let c = &shared.counters;
        eprintln!(
            "soak t={:>5.0}s active={} lives={} sent={} received={} cuts={} reconnections={} restored={} not_restored={} connect_failures={} join_failures={}",
            start.elapsed().as_secs_f64(),
            c.active.load(Relaxed),
            c.lives.load(Relaxed),
            c.sent.load(Relaxed),
            c.received.load(Relaxed),
            c.cuts.load(Relaxed),
            c.reconnections.load(Relaxed),
            c.restored.load(Relaxed),
            c.not_restored.load(Relaxed),
            c.connect_failures.load(Relaxed),
            c.join_failures.load(Relaxed),
        );
    }
}

async fn run_slot(shared: Arc<Shared>, slot: usize) {
    let mut rng = Rng::new(now_ms() ^ (slot as u64).wrapping_mul(7919));
    let mut life = 0u64;
    while !shared.stop.load(Relaxed) {
        run_life(&shared, slot, life, &mut rng).await;
        life += 1;
        if !shared.stop.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(rng.between(200, 2_000))).await;
        }
    }
}

async fn join(socket: &ferrio_client::Socket, room: &str) -> bool {
    matches!(
        socket
            .timeout(Duration::from_secs(10))
            .emit_with_ack("join", &room)
            .await,
        Ok(ack) if ack.0.first() == Some(&Value::Bool(true))
    )
}

async fn run_life(shared: &Arc<Shared>, slot: usize, _life: u64, rng: &mut Rng) {
    let opts = &shared.opts;
    let group = slot / opts.group_size.max(1);
    let room = slot / opts.room_size.max(1);
    let room_name = format!("soak-{room}");
    let mut client = ClientOptions::default();
    client.force_new = true;
    client.reconnection_delay = Duration::from_millis(300);
    client.reconnection_delay_max = Duration::from_millis(2_000);
    client.timeout = Some(Duration::from_secs(10));
    if group % 2 == 0 {
        client.engine.transports = vec![TransportKind::WebSocket];
    }
    let url = format!("http://{}", shared.proxies[group].addr);
    let socket = ferrio_client::connect(&url, client);
    let state: Arc<Mutex<LiveState>> = Arc::default();
    {
        let st = state.clone();
        let sh = shared.clone();
        socket.on("chat", move |_s, ev| {
            let st = st.clone();
            let sh = sh.clone();
            async move {
                let id = ev
                    .args()
                    .first()
                    .and_then(|v| v.get("text"))
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse::<u64>().ok());
                if let Some(id) = id {
                    sh.counters.received.fetch_add(1, Relaxed);
                    let mut st = st.lock();
                    let now = now_ms();
                    st.last_got = now;
                    if st.got.insert(id, now).is_some() {
                        st.duplicates += 1;
                    }
                }
            }
        });
        let st = state.clone();
        socket.on_disconnect(move |_s, _reason| {
            let st = st.clone();
            async move {
                let mut st = st.lock();
                let now = now_ms();
                st.events.push((now, Ev::Down));
                if st.down_since.is_none() {
                    st.down_since = Some(now);
                }
            }
        });
    }
    let connect_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !socket.connected() {
        if tokio::time::Instant::now() > connect_deadline || shared.stop.load(Relaxed) {
            shared.counters.connect_failures.fetch_add(1, Relaxed);
            socket.io().close();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let mut st = state.lock();
        st.down_since = None;
        st.events.clear();
        st.connected_at = now_ms();
    }
    if !join(&socket, &room_name).await {
        shared.counters.join_failures.fetch_add(1, Relaxed);
        socket.disconnect();
        socket.io().close();
        return;
    }
    shared.counters.lives.fetch_add(1, Relaxed);
    shared.counters.active.fetch_add(1, Relaxed);
    let joined = now_ms();
    let ends_at = tokio::time::Instant::now() + Duration::from_millis(rng.between(30_000, 150_000));
    let mut next_send =
        tokio::time::Instant::now() + Duration::from_millis(rng.between(500, 4_000));
    let mut gaps = Vec::new();
    while tokio::time::Instant::now() < ends_at && !shared.stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let down_since = state.lock().down_since;
        if let Some(down) = down_since {
            if !socket.connected() {
                continue;
            }
            shared.counters.reconnections.fetch_add(1, Relaxed);
            let restored = socket.recovered();
            let (previous, last_got) = {
                let mut st = state.lock();
                st.events.push((now_ms(), Ev::Up { restored }));
                let previous = std::mem::replace(&mut st.connected_at, now_ms());
                (previous, st.last_got)
            };
            if restored {
                shared.counters.restored.fetch_add(1, Relaxed);
            } else {
                // A new socket, in no room: join again; nothing was promised meanwhile.
                shared.counters.not_restored.fetch_add(1, Relaxed);
                // socket.io restores from the offset of the last broadcast received: a connection
                // that received none has nothing to resume from.
                let offset = last_got >= previous;
                if !offset {
                    shared
                        .counters
                        .not_restored_without_offset
                        .fetch_add(1, Relaxed);
                }
                if !shared.opts.quiet {
                    eprintln!(
                        "not restored: slot {slot}, back {} ms after the disconnection, {}",
                        now_ms().saturating_sub(down),
                        if offset {
                            "with an offset"
                        } else {
                            "no broadcast received on that connection (no offset)"
                        }
                    );
                }
                if !join(&socket, &room_name).await {
                    shared.counters.join_failures.fetch_add(1, Relaxed);
                    // Try again on the next turn, from the same outage.
                    continue;
                }
                gaps.push((down, now_ms()));
            }
            let mut st = state.lock();
            // A disconnection after this connection starts a new outage.
            if st.down_since == Some(down) {
                st.down_since = None;
            }
            continue;
        }
        if tokio::time::Instant::now() >= next_send && socket.connected() {
            let id = shared.next_id.fetch_add(1, Relaxed);
            // Recorded before it leaves, so the recorded time is never after the broadcast.
            shared
                .ledger
                .lock()
                .sent
                .entry(room)
                .or_default()
                .push(Sent {
                    at: now_ms(),
                    id,
                    slot,
                });
            let _ = socket.emit(
                "chat",
                &serde_json::json!({ "room": room_name, "text": id.to_string() }),
            );
            shared.counters.sent.fetch_add(1, Relaxed);
            next_send =
                tokio::time::Instant::now() + Duration::from_millis(rng.between(1_000, 5_000));
        }
    }
    // Leave for good: what is broadcast from now on is not expected. A life that ends while its
    // connection is down gives up its session: what was broadcast since the disconnection would only
    // have come with a reconnection that never happened.
    let end = state.lock().down_since.unwrap_or_else(now_ms);
    // Still in the room while what was sent before `end` is on its way.
    tokio::time::sleep(DRAIN).await;
    let _ = socket
        .timeout(Duration::from_secs(5))
        .emit_with_ack("leave", &room_name)
        .await;
    socket.disconnect();
    socket.io().close();
    shared.counters.active.fetch_sub(1, Relaxed);
    let (got, duplicates, events) = {
        let mut st = state.lock();
        (
            std::mem::take(&mut st.got),
            st.duplicates,
            std::mem::take(&mut st.events),
        )
    };
    shared.ledger.lock().lives.push(LifeRecord {
        slot,
        room,
        websocket_only: group % 2 == 0,
        joined,
        end,
        gaps,
        events,
        got,
        duplicates,
    });
}

/// `(down, up)` windows of Redis, from the marks file.
fn read_marks(path: &std::path::Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut windows = Vec::new();
    let mut down = None;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        match (
            parts.next(),
            parts.next().and_then(|t| t.parse::<u64>().ok()),
        ) {
            (Some("down"), Some(t)) => down = Some(t),
            (Some("up"), Some(t)) => {
                if let Some(d) = down.take() {
                    windows.push((d, t));
                }
            }
            _ => {}
        }
    }
    if let Some(d) = down {
        windows.push((d, u64::MAX));
    }
    windows
}

fn summarize(shared: &Shared, seconds: f64, redis: &[(u64, u64)]) -> SoakSummary {
    let ledger = shared.ledger.lock();
    let c = &shared.counters;
    let mut expected = 0u64;
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    let mut expected_outage = 0u64;
    let mut lost_outage = 0u64;
    let mut examples = Vec::new();
    // A message that reached the server reached at least one member (its sender is one).
    let mut reached: HashMap<u64, u64> = HashMap::new();
    for life in &ledger.lives {
        for id in life.got.keys() {
            *reached.entry(*id).or_default() += 1;
        }
    }
    let never_reached = ledger
        .sent
        .values()
        .flatten()
        .filter(|m| !reached.contains_key(&m.id))
        .count() as u64;
    // Delivery times: how long a broadcast may still be on its way.
    let sent_at: HashMap<u64, u64> = ledger
        .sent
        .values()
        .flatten()
        .map(|m| (m.id, m.at))
        .collect();
    let mut latencies: Vec<u64> = ledger
        .lives
        .iter()
        .flat_map(|l| l.got.iter())
        .filter_map(|(id, at)| sent_at.get(id).map(|s| at.saturating_sub(*s)))
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let latency_ms = [pct(0.5), pct(0.99), latencies.last().copied().unwrap_or(0)];
    let in_flight_ms = latency_ms[2].max(MARGIN_MS);
    let mut in_flight = 0u64;
    let in_outage = |t: u64| {
        redis
            .iter()
            .any(|&(d, u)| t + REDIS_MARGIN_MS >= d && t <= u.saturating_add(REDIS_MARGIN_MS))
    };
    for (i, life) in ledger.lives.iter().enumerate() {
        duplicated += life.duplicates;
        let Some(sent) = ledger.sent.get(&life.room) else {
            continue;
        };
        let from = life.joined + MARGIN_MS;
        let to = life.end.saturating_sub(MARGIN_MS);
        for m in sent {
            let t = m.at;
            if t < from
                || t > to
                || !reached.contains_key(&m.id)
                || life
                    .gaps
                    .iter()
                    .any(|&(a, b)| t + MARGIN_MS >= a && t <= b + MARGIN_MS)
            {
                continue;
            }
            let got = life.got.contains_key(&m.id);
            if !got
                && life
                    .gaps
                    .iter()
                    .any(|&(a, _)| t < a && t + in_flight_ms >= a)
            {
                in_flight += 1;
                continue;
            }
            if in_outage(t) {
                expected_outage += 1;
                lost_outage += u64::from(!got);
            } else {
                expected += 1;
                if !got {
                    lost += 1;
                    let line = describe_lost(life, i, m, reached[&m.id], t);
                    if !shared.opts.quiet {
                        eprintln!("lost: {line}");
                    }
                    if examples.len() < 10 {
                        examples.push(line);
                    }
                }
            }
        }
    }
    SoakSummary {
        seconds,
        clients: shared.opts.clients,
        lives: c.lives.load(Relaxed),
        connect_failures: c.connect_failures.load(Relaxed),
        join_failures: c.join_failures.load(Relaxed),
        cuts: c.cuts.load(Relaxed),
        cut_connections: c.cut_connections.load(Relaxed),
        reconnections: c.reconnections.load(Relaxed),
        restored: c.restored.load(Relaxed),
        not_restored: c.not_restored.load(Relaxed),
        not_restored_without_offset: c.not_restored_without_offset.load(Relaxed),
        sent: c.sent.load(Relaxed),
        received: c.received.load(Relaxed),
        expected,
        lost,
        in_flight_when_a_session_was_lost: in_flight,
        latency_ms,
        never_reached_the_server: never_reached,
        duplicated,
        expected_during_redis_outages: expected_outage,
        lost_during_redis_outages: lost_outage,
        lost_examples: examples,
    }
}

/// One lost delivery, with what the receiver's connection did around it (times relative to the send).
fn describe_lost(life: &LifeRecord, i: usize, m: &Sent, members_got: u64, t: u64) -> String {
    let rel = |x: u64| x as i64 - t as i64;
    let around: Vec<String> = life
        .events
        .iter()
        .filter(|(at, _)| rel(*at).abs() <= 30_000)
        .map(|(at, ev)| match ev {
            Ev::Down => format!("down {:+}", rel(*at)),
            Ev::Up { restored: true } => format!("restored {:+}", rel(*at)),
            Ev::Up { restored: false } => format!("new session {:+}", rel(*at)),
        })
        .collect();
    // What the receiver got just before and just after: a hole in a stream or a stop.
    let before = life
        .got
        .values()
        .filter(|&&r| r <= t)
        .max()
        .map(|&r| rel(r));
    let after = life.got.values().filter(|&&r| r > t).min().map(|&r| rel(r));
    format!(
        "message {} (room {}, from slot {}) -> slot {} life {i} ({}), {} ms after its join, {members_got} members got it; receiver's last delivery before {before:?}, next after {after:?} ms; connection: [{}]",
        m.id,
        life.room,
        m.slot,
        life.slot,
        if life.websocket_only {
            "websocket"
        } else {
            "polling+upgrade"
        },
        t.saturating_sub(life.joined),
        around.join(", ")
    )
}

/// Prints the summary: a table, or one JSON object.
pub fn print(summary: &SoakSummary, json: bool) {
    if json {
        println!("{}", serde_json::to_string(summary).unwrap_or_default());
        return;
    }
    let s = summary;
    println!(
        "soak: {:.0} s, {} client slots, {} lives",
        s.seconds, s.clients, s.lives
    );
    println!(
        "  connect failures {}, join failures {}",
        s.connect_failures, s.join_failures
    );
    println!(
        "  cuts {} ({} connections dropped), reconnections {}: restored {}, not restored {} ({} without an offset: no broadcast received on that connection)",
        s.cuts,
        s.cut_connections,
        s.reconnections,
        s.restored,
        s.not_restored,
        s.not_restored_without_offset
    );
    println!(
        "  chat messages sent {}, deliveries received {}",
        s.sent, s.received
    );
    println!(
        "  deliveries expected {}: lost {}, duplicated {}",
        s.expected, s.lost, s.duplicated
    );
    println!(
        "  not received before a disconnection whose session was not restored (on their way, not promised): {}",
        s.in_flight_when_a_session_was_lost
    );
    println!(
        "  delivery time: median {} ms, 99th percentile {} ms, slowest {} ms",
        s.latency_ms[0], s.latency_ms[1], s.latency_ms[2]
    );
    println!(
        "  messages no client received (sender cut while sending; not expected of anyone): {}",
        s.never_reached_the_server
    );
    println!(
        "  around Redis restarts: expected {}, lost {}",
        s.expected_during_redis_outages, s.lost_during_redis_outages
    );
    for e in &s.lost_examples {
        println!("  lost: {e}");
    }
}
