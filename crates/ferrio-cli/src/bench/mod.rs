//! `ferrio bench`: a load generator for any Socket.IO server.
//!
//! Each simulated client is one small task speaking Engine.IO / Socket.IO through `ferrio-proto`
//! directly (no full client): a websocket, or a long-polling pair of HTTP/1 connections, executing the
//! same Engine.IO session state machine as the client. All clients run
//! on one thread by default, so one core drives thousands of connections.
//!
//! A run: connections are opened at `--ramp` per second (with retries) and set up (rooms joined); then
//! the measurement runs in steps (one per `--rate` value), then sending stops and the run waits for the
//! last deliveries (`lost` is what never came), then every connection closes.

mod link;
mod soak;
mod stats;
mod storm;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ferrio_proto::engine::{self, Frame};
use ferrio_proto::socket::{self, PacketDecoder, Parser};
use ferrio_proto::value::{Map, Value};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::ParserKind;
use link::{Link, Target};
use stats::{Counters, Latency, ProcSample, Stats, now_us};

/// Options of `ferrio bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchOptions {
    /// Scenario: idle, echo, fanout, rooms, polling, soak, storm.
    pub scenario: String,
    /// Server URL (`http://host:port`).
    pub url: String,
    /// More URLs of the same (clustered) server, comma-separated: the clients are spread round-robin
    /// over URL and these (client i on URL number i mod n); the fan-out publisher always uses URL.
    #[arg(long, value_delimiter = ',')]
    pub urls: Vec<String>,
    /// Number of clients (fanout: receivers, plus one publisher).
    #[arg(long, short = 'c', default_value_t = 100)]
    pub clients: usize,
    /// Seconds of measurement (split evenly between the rate steps).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Rates, comma-separated for steps. echo: total messages/s, open loop (closed loop when absent);
    /// fanout: broadcasts/s (default 10,20,40,80); rooms: messages/s per client (default 2);
    /// polling: messages/s per client (default 1).
    #[arg(long)]
    pub rate: Option<String>,
    /// Transport (the polling scenario always uses polling).
    #[arg(long, value_enum, default_value_t = TransportOpt::Websocket)]
    pub transport: TransportOpt,
    /// Engine.IO path on the server.
    #[arg(long, default_value = "/socket.io/")]
    pub path: String,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 500.0)]
    pub ramp: f64,
    /// Retries of a connection that failed.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Clients per room (rooms scenario).
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Seconds to wait for the last deliveries after sending stops.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Sample this server process (CPU time, RSS) from /proc during the measurement; comma-separated
    /// for several processes (a cluster): CPU and RSS are summed, and CPU is also reported per process.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Worker threads of the generator (1: everything on one thread).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Exit with an error on any error, failed connection, lost message or zero throughput.
    #[arg(long)]
    pub check: bool,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Clients connecting at the same time (storm: each connects, does one ack and leaves, then the
    /// next one takes its place until `--clients` are done).
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Packet parser: the server's (`json` or `msgpack`).
    #[arg(long, value_enum, default_value_t = ParserKind::Json)]
    pub parser: ParserKind,
    /// soak: clients sharing one TCP proxy, whose connections are cut together.
    #[arg(long, default_value_t = 25)]
    pub group_size: usize,
    /// soak: seconds between two cuts (each drops the connections of one random group).
    #[arg(long, default_value_t = 2.0)]
    pub cut_every: f64,
    /// soak: seconds between two progress lines.
    #[arg(long, default_value_t = 10.0)]
    pub report_every: f64,
    /// soak: a file of `down <unix ms>` / `up <unix ms>` lines marking Redis outages; messages sent
    /// around them are counted apart.
    #[arg(long)]
    pub redis_marks: Option<std::path::PathBuf>,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportOpt {
    Websocket,
    Polling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    Idle,
    Echo,
    Fanout,
    Rooms,
    Polling,
    Storm,
}

/// Everything a client task needs to know, shared.
struct Plan {
    scenario: Scenario,
    parser: Arc<dyn Parser>,
    /// One per server URL (`URL`, then `--urls`).
    targets: Vec<Target>,
    /// Receiving/chatting clients (fanout adds a publisher after them).
    clients: usize,
    retries: u32,
    room_size: usize,
    /// Rate of each step (meaning per scenario, see `--rate`); empty: closed loop / no sending.
    rates: Vec<f64>,
    /// Members of each room that joined (rooms scenario), for the expected deliveries.
    room_members: Vec<AtomicU64>,
}

const FANOUT_ROOM: &str = "fanout";
/// Phase values: 0 while ramping, step k+1 during step k, then these two.
const DRAIN: u32 = u32::MAX - 1;
const CLOSE: u32 = u32::MAX;

impl Plan {
    fn publisher(&self, idx: usize) -> bool {
        self.scenario == Scenario::Fanout && idx == self.clients
    }

    /// The server client `idx` connects to: round-robin, the publisher on the first.
    fn target(&self, idx: usize) -> &Target {
        if self.publisher(idx) {
            &self.targets[0]
        } else {
            &self.targets[idx % self.targets.len()]
        }
    }

    fn room_of(&self, idx: usize) -> Option<String> {
        match self.scenario {
            Scenario::Fanout if idx < self.clients => Some(FANOUT_ROOM.to_owned()),
            Scenario::Rooms => Some(format!("room{}", idx / self.room_size)),
            _ => None,
        }
    }

    /// Seconds between two messages of client `idx` during `phase`, if it sends on a timer.
    fn period(&self, idx: usize, phase: u32) -> Option<f64> {
        if phase == 0 || phase >= DRAIN {
            return None;
        }
        let rate = *self.rates.get(phase as usize - 1)?;
        let per_client = match self.scenario {
            Scenario::Echo => rate / self.clients as f64,
            Scenario::Fanout if self.publisher(idx) => rate,
            Scenario::Rooms | Scenario::Polling => rate,
            _ => return None,
        };
        (per_client > 0.0).then(|| 1.0 / per_client)
    }

    fn closed_loop(&self) -> bool {
        self.scenario == Scenario::Echo && self.rates.is_empty()
    }
}

/// The soak scenario (`soak.rs`): full clients churning, with a lost/duplicated count at the end.
async fn run_soak(opts: BenchOptions) -> Result<(), String> {
    if opts.clients == 0
        || opts.duration <= 0.0
        || opts.cut_every <= 0.0
        || opts.report_every <= 0.0
    {
        return Err(
            "--clients, --duration, --cut-every and --report-every must be positive".into(),
        );
    }
    let mut urls = vec![opts.url.clone()];
    urls.extend(opts.urls.iter().cloned());
    let summary = soak::run(soak::SoakOptions {
        urls,
        clients: opts.clients,
        duration: Duration::from_secs_f64(opts.duration),
        group_size: opts.group_size.max(1),
        room_size: opts.room_size.max(1),
        cut_every: Duration::from_secs_f64(opts.cut_every),
        report_every: Duration::from_secs_f64(opts.report_every),
        redis_marks: opts.redis_marks.clone(),
        quiet: opts.quiet,
    })
    .await?;
    soak::print(&summary, opts.json);
    if opts.check && (summary.lost > 0 || summary.duplicated > 0) {
        return Err(format!(
            "check failed: {} lost, {} duplicated",
            summary.lost, summary.duplicated
        ));
    }
    Ok(())
}

/// Runs a benchmark scenario.
pub async fn run(opts: BenchOptions) -> Result<(), String> {
    if opts.scenario == "soak" {
        return run_soak(opts).await;
    }
    let scenario = match opts.scenario.as_str() {
        "idle" => Scenario::Idle,
        "echo" => Scenario::Echo,
        "fanout" => Scenario::Fanout,
        "rooms" => Scenario::Rooms,
        "polling" => Scenario::Polling,
        "storm" => Scenario::Storm,
        s => {
            return Err(format!(
                "unknown scenario {s:?} (idle, echo, fanout, rooms, polling, soak, storm)"
            ));
        }
    };
    if opts.clients == 0
        || opts.duration <= 0.0
        || opts.ramp <= 0.0
        || opts.room_size == 0
        || opts.concurrency == 0
    {
        return Err(
            "--clients, --duration, --ramp, --room-size and --concurrency must be positive".into(),
        );
    }
    let rates: Vec<f64> = match (&opts.rate, scenario) {
        (Some(r), _) => r
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("bad rate {x:?}"))
            })
            .collect::<Result<_, _>>()?,
        (None, Scenario::Fanout) => vec![10.0, 20.0, 40.0, 80.0],
        (None, Scenario::Rooms) => vec![2.0],
        (None, Scenario::Polling) => vec![1.0],
        (None, _) => vec![],
    };
    if rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
        return Err("rates must be positive".into());
    }
    let websocket = scenario != Scenario::Polling && opts.transport == TransportOpt::Websocket;
    let targets = std::iter::once(&opts.url)
        .chain(&opts.urls)
        .map(|u| Target::parse(u, &opts.path, websocket, opts.parser))
        .collect::<Result<Vec<_>, _>>()?;
    let rooms = opts.clients.div_ceil(opts.room_size);
    let plan = Arc::new(Plan {
        scenario,
        parser: opts.parser.parser(),
        targets,
        clients: opts.clients,
        retries: opts.retries,
        room_size: opts.room_size,
        rates,
        room_members: (0..if scenario == Scenario::Rooms {
            rooms
        } else {
            0
        })
            .map(|_| AtomicU64::new(0))
            .collect(),
    });

    // The generator gets its own runtime: one thread by default.
    let threads = opts.threads.max(1);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench".into())
        .spawn(move || {
            let rt = if threads == 1 {
                crate::one_thread_runtime()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            let result = match rt {
                Ok(rt) => rt.block_on(drive(plan, opts)),
                Err(e) => Err(format!("runtime: {e}")),
            };
            let _ = done_tx.send(result);
        })
        .map_err(|e| format!("thread: {e}"))?;
    done_rx
        .await
        .map_err(|_| "the generator thread panicked".to_owned())?
}

/// Runs the fan-out publisher on a thread of its own. Among the receivers' tasks it would wait behind
/// every reception its last broadcast caused: a generator busy receiving would skip ticks, and a
/// server that delivers promptly would be offered fewer broadcasts than the step's rate (a server
/// that lets frames pile up would not). On its own thread the kernel wakes it on time.
fn publish_on_own_thread(publisher: impl Future<Output = ()> + Send + 'static, stats: &Arc<Stats>) {
    // A publisher that cannot start is a client that failed, with its cause as the run's error: the
    // ramp-up then settles at once instead of waiting for it until its time limit.
    let failed = |stats: &Stats, what: String| {
        stats.error(what);
        stats.failed.fetch_add(1, Relaxed);
    };
    let on_thread = stats.clone();
    let spawned = std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn(move || match crate::one_thread_runtime() {
            Ok(rt) => rt.block_on(publisher),
            Err(e) => failed(&on_thread, format!("publisher runtime: {e}")),
        });
    if let Err(e) = spawned {
        failed(stats, format!("publisher thread: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// One client.

async fn client(plan: Arc<Plan>, stats: Arc<Stats>, idx: usize, mut phase: watch::Receiver<u32>) {
    let mut link = None;
    for attempt in 0..=plan.retries {
        if *phase.borrow() == CLOSE {
            break;
        }
        match Link::connect(plan.target(idx)).await {
            Ok(l) => {
                link = Some(l);
                break;
            }
            Err(e) => {
                if attempt == plan.retries {
                    stats.error(e);
                } else {
                    stats.errors.fetch_add(1, Relaxed);
                    // Spread the retries out.
                    let ms = 500 * (attempt as u64 + 1) + (idx as u64 * 37) % 500;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
    }
    let Some(mut link) = link else {
        stats.failed.fetch_add(1, Relaxed);
        return;
    };
    stats.connected.fetch_add(1, Relaxed);
    stats.up.fetch_add(1, Relaxed);
    let mut c = Client {
        plan: plan.clone(),
        stats: stats.clone(),
        idx,
        decoder: plan.parser.decoder(),
        next_id: 1,
        room: plan.room_of(idx),
        phase: 0,
    };
    let mut ready = false;
    let closed_by_us = match c.run(&mut link, &mut phase, &mut ready).await {
        Ok(by_us) => by_us,
        Err(e) => {
            stats.error(e);
            false
        }
    };
    if !ready {
        stats.setup_failed.fetch_add(1, Relaxed);
    }
    stats.up.fetch_sub(1, Relaxed);
    if closed_by_us {
        link.close().await;
    }
}

struct Client {
    plan: Arc<Plan>,
    stats: Arc<Stats>,
    idx: usize,
    decoder: Box<dyn PacketDecoder>,
    next_id: u64,
    room: Option<String>,
    phase: u32,
}

/// Ack id of the `join` sent during set-up.
const JOIN_ID: u64 = 0;

impl Client {
    /// Returns Ok(true) when the run ended (phase CLOSE), Ok(false) when the server closed.
    async fn run(
        &mut self,
        link: &mut Link,
        phase: &mut watch::Receiver<u32>,
        ready: &mut bool,
    ) -> Result<bool, String> {
        // Set-up: join the room, answering pings meanwhile.
        if let Some(room) = &self.room {
            let join = self.plan.parser.encode(&socket::Packet::Event {
                nsp: "/".into(),
                event: "join".into(),
                args: vec![Value::String(room.clone())],
                id: Some(JOIN_ID),
            });
            link.send(&join);
            loop {
                match link.recv().await {
                    Some(Ok(data)) => {
                        if let Ok(Some(socket::Packet::Ack {
                            id: JOIN_ID, args, ..
                        })) = self.decoder.decode(data)
                        {
                            if args.first().and_then(Value::as_bool) != Some(true) {
                                return Err(format!("join refused: {args:?}"));
                            }
                            break;
                        }
                    }
                    None => return Err("closed by the server".into()),
                    Some(Err(e)) => return Err(e),
                }
            }
            if self.plan.scenario == Scenario::Rooms {
                self.plan.room_members[self.idx / self.plan.room_size].fetch_add(1, Relaxed);
            }
        }
        self.stats.ready.fetch_add(1, Relaxed);
        *ready = true;

        let mut ticker: Option<Interval> = None;
        self.phase = *phase.borrow_and_update();
        loop {
            tokio::select! {
                r = link.recv() => match r {
                    Some(Ok(data)) => {
                        if let Some(reply) = self.on_data(data)? {
                            link.send_frame(reply);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return if self.phase == CLOSE { Ok(true) } else { Err("closed by the server".into()) },
                },
                _ = tick(&mut ticker) => {
                    let f = self.message();
                    link.send_frame(f);
                }
                r = phase.changed() => {
                    if r.is_err() {
                        return Ok(true);
                    }
                    let prev = self.phase;
                    self.phase = *phase.borrow_and_update();
                    if self.phase == CLOSE {
                        return Ok(true);
                    }
                    ticker = self.plan.period(self.idx, self.phase).map(|p| {
                        // Spread the clients over the period (golden-ratio sequence).
                        let offset = (self.idx as f64 * 0.618_033_988_75).fract() * p;
                        let start = Instant::now() + Duration::from_secs_f64(offset);
                        let mut t = tokio::time::interval_at(start, Duration::from_secs_f64(p));
                        t.set_missed_tick_behavior(MissedTickBehavior::Skip);
                        t
                    });
                    if prev == 0 && self.phase == 1 && self.plan.closed_loop() {
                        let f = self.message();
                        link.send_frame(f);
                    }
                }
            }
        }
    }

    /// The message this client sends on its timer (or after each ack in the closed loop).
    fn message(&mut self) -> Frame {
        let stats = &self.stats;
        stats.sent.fetch_add(1, Relaxed);
        let ts = now_us();
        let packet = match self.plan.scenario {
            // (A storm's clients run in `storm.rs`, not here.)
            Scenario::Echo | Scenario::Polling | Scenario::Storm => {
                stats.expected.fetch_add(1, Relaxed);
                let id = self.next_id;
                self.next_id += 1;
                socket::Packet::Event {
                    nsp: "/".into(),
                    event: "echo".into(),
                    args: vec![Value::Number(ts.into())],
                    id: Some(id),
                }
            }
            Scenario::Fanout | Scenario::Rooms | Scenario::Idle => {
                let (room, expected) = if self.plan.scenario == Scenario::Rooms {
                    let r = self.idx / self.plan.room_size;
                    (format!("room{r}"), self.plan.room_members[r].load(Relaxed))
                } else {
                    // The publisher's own copy is not counted; every ready receiver gets one.
                    let receivers = stats.ready.load(Relaxed).saturating_sub(1);
                    (FANOUT_ROOM.to_owned(), receivers)
                };
                stats.expected.fetch_add(expected, Relaxed);
                let mut m = Map::new();
                m.insert("room".into(), Value::String(room));
                m.insert("text".into(), Value::String(ts.to_string()));
                socket::Packet::Event {
                    nsp: "/".into(),
                    event: "chat".into(),
                    args: vec![Value::Object(m)],
                    id: None,
                }
            }
        };
        self.plan.parser.encode(&packet).head
    }

    /// Handles one message of the server; returns a frame to send back, if any.
    fn on_data(&mut self, data: engine::Data) -> Result<Option<Frame>, String> {
        let measuring = self.phase != 0;
        // Fast path of JSON for the hot message of fan-out: a chat event carrying its send time.
        // Chats are sent only while measuring, so every one counts, even when this client has not
        // yet seen the phase change (the first broadcast of a run reaches clients whose task has not
        // run since: counted by phase, part of it read as lost).
        if let engine::Data::Text(t) = &data
            && let Some(rest) = t.strip_prefix("2[\"chat\",")
        {
            self.stats.received.fetch_add(1, Relaxed);
            if self.plan.publisher(self.idx) {
                return Ok(None);
            }
            match chat_timestamp(rest) {
                Some(ts) => self.stats.delivered(ts),
                None => return Err(format!("unexpected chat message: {t}")),
            }
            return Ok(None);
        }
        match self.decoder.decode(data) {
            Ok(Some(socket::Packet::Ack { args, .. })) => {
                if measuring {
                    self.stats.received.fetch_add(1, Relaxed);
                }
                let ts = args
                    .first()
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("unexpected ack: {args:?}"))?;
                if measuring {
                    self.stats.delivered(ts);
                }
                if self.plan.closed_loop() && self.phase != 0 && self.phase < DRAIN {
                    return Ok(Some(self.message()));
                }
                Ok(None)
            }
            Ok(Some(socket::Packet::Disconnect { .. })) => Err("disconnected by the server".into()),
            Ok(Some(socket::Packet::Event { event, args, .. })) => {
                // A chat counts whatever this client's phase (see the fast path above).
                let chat = event == "chat";
                if measuring || chat {
                    self.stats.received.fetch_add(1, Relaxed);
                }
                // A chat that did not take the fast path (msgpack): its send time from the value.
                if chat && !self.plan.publisher(self.idx) {
                    let ts = args
                        .first()
                        .and_then(|a| a.get("text"))
                        .and_then(Value::as_str)
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or_else(|| format!("unexpected chat message: {args:?}"))?;
                    self.stats.delivered(ts);
                }
                Ok(None)
            }
            Ok(_) => Ok(None),
            Err(e) => Err(format!("bad packet: {e}")),
        }
    }
}

/// The send time in a delivered chat's `"text":"<µs>"`.
fn chat_timestamp(rest: &str) -> Option<u64> {
    let i = rest.find("\"text\":\"")? + 8;
    let digits = &rest[i..];
    let end = digits.find('"')?;
    digits[..end].parse().ok()
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

#[derive(Debug, Serialize)]
struct Step {
    /// The step's rate (see `--rate`), absent for closed loop / idle.
    rate: Option<f64>,
    seconds: f64,
    sent_per_s: f64,
    received_per_s: f64,
    deliveries_per_s: f64,
    latency_us: Latency,
    /// Server CPU time during the step, µs (with --server-pid).
    server_cpu_us: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Connections {
    ok: u64,
    failed: u64,
    up_at_end: i64,
}

#[derive(Debug, Serialize)]
struct Server {
    /// The first `--server-pid`.
    pid: u32,
    /// Every `--server-pid` (the figures below are sums over them).
    pids: Vec<u32>,
    /// CPU time over the measurement (steps), µs.
    cpu_us: u64,
    /// CPU time over the measurement of each process, in `pids` order, µs.
    cpu_us_by_pid: Vec<u64>,
    /// Server CPU µs per measured delivery (echo: per ack).
    cpu_us_per_message: Option<f64>,
    /// The kernel's part of `cpu_us` (system time), µs: the floor no user-space work removes.
    sys_us: u64,
    /// System time per measured delivery, µs.
    sys_us_per_message: Option<f64>,
    /// VmRSS before the first connection, kB.
    rss_base_kb: u64,
    /// VmRSS at the end of the measurement, kB.
    rss_kb: u64,
    /// (rss - rss_base) / connections, bytes.
    rss_per_connection_bytes: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    scenario: Scenario,
    url: String,
    transport: &'static str,
    clients: usize,
    seconds: f64,
    connections: Connections,
    sent: u64,
    received: u64,
    deliveries: u64,
    expected: u64,
    lost: u64,
    errors: u64,
    first_error: Option<String>,
    sent_per_s: f64,
    received_per_s: f64,
    deliveries_per_s: f64,
    latency_us: Latency,
    steps: Vec<Step>,
    server: Option<Server>,
    /// The generator's own CPU use over the measurement, % of one core.
    generator_cpu_percent: f64,
}

struct Progress {
    quiet: bool,
    start: std::time::Instant,
    last: Counters,
    last_at: std::time::Instant,
}

impl Progress {
    fn line(&mut self, stats: &Stats, what: &str) {
        let now = std::time::Instant::now();
        let c = stats.counters();
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-6);
        let d = c - self.last;
        let lat = Latency::of(&stats.take_interval());
        self.last = c;
        self.last_at = now;
        if self.quiet {
            return;
        }
        eprintln!(
            "[{:>5.1}s] {what:<10} up {:>6} ok {:>6} failed {:>4} | sent {:>8.0}/s recv {:>8.0}/s deliv {:>8.0}/s | p50 {:>7} p99 {:>7} max {:>7} | errors {}",
            now.duration_since(self.start).as_secs_f64(),
            stats.up.load(Relaxed),
            stats.connected.load(Relaxed),
            stats.failed.load(Relaxed),
            d.sent as f64 / dt,
            d.received as f64 / dt,
            d.deliveries as f64 / dt,
            fmt_us(lat.p50),
            fmt_us(lat.p99),
            fmt_us(lat.max),
            c.errors,
        );
    }
}

async fn drive(plan: Arc<Plan>, opts: BenchOptions) -> Result<(), String> {
    if plan.scenario == Scenario::Storm {
        let summary = storm::drive(plan.clone(), &opts).await?;
        return report(&summary, &opts, plan.clients as u64);
    }
    let stats = Arc::new(Stats::new());
    now_us();
    let pids = opts.server_pid.clone();
    // All the server processes, or None (no --server-pid, or one is gone).
    let sample = || -> Option<Vec<ProcSample>> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|&p| ProcSample::read(Some(p))).collect()
    };
    let sum = |v: &[ProcSample]| ProcSample {
        cpu_us: v.iter().map(|s| s.cpu_us).sum(),
        sys_us: v.iter().map(|s| s.sys_us).sum(),
        rss_kb: v.iter().map(|s| s.rss_kb).sum(),
    };
    for &pid in &opts.server_pid {
        ProcSample::read(Some(pid)).ok_or_else(|| format!("cannot read /proc/{pid}"))?;
    }
    let server_base = sample().map(|v| sum(&v));
    let (phase_tx, phase_rx) = watch::channel(0u32);
    let total = plan.clients + usize::from(plan.scenario == Scenario::Fanout);
    let mut progress = Progress {
        quiet: opts.quiet,
        start: std::time::Instant::now(),
        last: Counters::default(),
        last_at: std::time::Instant::now(),
    };

    // Ramp-up.
    {
        let (plan, stats, phase_rx) = (plan.clone(), stats.clone(), phase_rx.clone());
        let every = Duration::from_secs_f64(1.0 / opts.ramp);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            // Fan-out: the receivers first, the publisher last.
            for idx in 0..total {
                t.tick().await;
                let c = client(plan.clone(), stats.clone(), idx, phase_rx.clone());
                if plan.publisher(idx) {
                    publish_on_own_thread(c, &stats);
                } else {
                    tokio::spawn(c);
                }
            }
        });
    }
    let ramp_limit = Duration::from_secs_f64(total as f64 / opts.ramp + 30.0);
    let ramp_start = std::time::Instant::now();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.tick().await;
    loop {
        // Connections that came up but died during set-up count as settled too.
        let settled = stats.ready.load(Relaxed)
            + stats.failed.load(Relaxed)
            + stats.setup_failed.load(Relaxed);
        if settled >= total as u64 {
            break;
        }
        if ramp_start.elapsed() > ramp_limit {
            stats.error("ramp-up timed out");
            break;
        }
        tokio::select! {
            _ = second.tick() => progress.line(&stats, "ramp-up"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if stats.ready.load(Relaxed) == 0 {
        let _ = phase_tx.send(CLOSE);
        return Err(format!(
            "no connection to {}: {}",
            opts.url,
            stats.first_error().unwrap_or_default()
        ));
    }
    // Let the last set-up packets settle before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Measurement, step by step.
    let steps_n = plan.rates.len().max(1);
    let step_len = Duration::from_secs_f64(opts.duration / steps_n as f64);
    let gen_cpu0 = ProcSample::read(None).unwrap_or_default().cpu_us;
    let measure_start = std::time::Instant::now();
    let counters0 = stats.counters();
    let server_first = sample();
    let mut server_prev = server_first.as_deref().map(sum);
    let server_cpu0 = server_prev.map(|s| (s.cpu_us, s.sys_us));
    let mut total_hist = stats::histogram();
    let mut steps = Vec::new();
    stats.take_interval();
    for k in 0..steps_n {
        let begin = std::time::Instant::now();
        let c0 = stats.counters();
        stats.take_step();
        let _ = phase_tx.send(k as u32 + 1);
        let label = match plan.rates.get(k) {
            Some(r) => format!("step {r}/s"),
            None => "measure".to_owned(),
        };
        let end = tokio::time::Instant::now() + step_len;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break,
                _ = second.tick() => progress.line(&stats, &label),
            }
        }
        let secs = begin.elapsed().as_secs_f64();
        let d = stats.counters() - c0;
        let h = stats.take_step();
        let _ = total_hist.add(&h);
        let now_server = sample().map(|v| sum(&v));
        let server_cpu_us = match (server_prev, now_server) {
            (Some(a), Some(b)) => Some(b.cpu_us.saturating_sub(a.cpu_us)),
            _ => None,
        };
        server_prev = now_server;
        steps.push(Step {
            rate: plan.rates.get(k).copied(),
            seconds: secs,
            sent_per_s: d.sent as f64 / secs,
            received_per_s: d.received as f64 / secs,
            deliveries_per_s: d.deliveries as f64 / secs,
            latency_us: Latency::of(&h),
            server_cpu_us,
        });
    }
    let measured = measure_start.elapsed().as_secs_f64();
    let gen_cpu = ProcSample::read(None).unwrap_or_default().cpu_us - gen_cpu0;
    let server_last = sample();
    let server_end = server_last.as_deref().map(sum);
    let in_steps = stats.counters() - counters0;
    let up_at_end = stats.up.load(Relaxed);

    // Drain: no more sending, wait for what is still in flight.
    let _ = phase_tx.send(DRAIN);
    let drain_end = tokio::time::Instant::now() + Duration::from_secs_f64(opts.drain);
    loop {
        let c = stats.counters();
        if c.deliveries >= c.expected || tokio::time::Instant::now() >= drain_end {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = second.tick() => progress.line(&stats, "drain"),
        }
    }
    let _ = total_hist.add(stats.take_step());
    let all = stats.counters() - counters0;

    // Close every connection, give them a moment to say goodbye.
    let _ = phase_tx.send(CLOSE);
    let close_end = tokio::time::Instant::now() + Duration::from_secs(3);
    while stats.up.load(Relaxed) > 0 && tokio::time::Instant::now() < close_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ok = stats.connected.load(Relaxed);
    let server = match (
        opts.server_pid.first(),
        server_base,
        server_end,
        server_cpu0,
    ) {
        (Some(&pid), Some(base), Some(end), Some((cpu0, sys0))) => {
            let cpu_us = end.cpu_us.saturating_sub(cpu0);
            let sys_us = end.sys_us.saturating_sub(sys0);
            let cpu_us_by_pid = match (&server_first, &server_last) {
                (Some(a), Some(b)) => a
                    .iter()
                    .zip(b)
                    .map(|(a, b)| b.cpu_us.saturating_sub(a.cpu_us))
                    .collect(),
                _ => Vec::new(),
            };
            Some(Server {
                pid,
                pids: opts.server_pid.clone(),
                cpu_us,
                cpu_us_by_pid,
                cpu_us_per_message: (in_steps.deliveries > 0)
                    .then(|| cpu_us as f64 / in_steps.deliveries as f64),
                sys_us,
                sys_us_per_message: (in_steps.deliveries > 0)
                    .then(|| sys_us as f64 / in_steps.deliveries as f64),
                rss_base_kb: base.rss_kb,
                rss_kb: end.rss_kb,
                rss_per_connection_bytes: (ok > 0)
                    .then(|| (end.rss_kb as f64 - base.rss_kb as f64) * 1024.0 / ok as f64),
            })
        }
        _ => None,
    };
    let summary = Summary {
        scenario: plan.scenario,
        url: std::iter::once(&opts.url)
            .chain(&opts.urls)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(","),
        transport: if plan.targets[0].websocket {
            "websocket"
        } else {
            "polling"
        },
        clients: plan.clients,
        seconds: measured,
        connections: Connections {
            ok,
            failed: stats.failed.load(Relaxed),
            up_at_end,
        },
        sent: all.sent,
        received: all.received,
        deliveries: all.deliveries,
        expected: all.expected,
        lost: all.expected.saturating_sub(all.deliveries),
        errors: stats.errors.load(Relaxed),
        first_error: stats.first_error(),
        sent_per_s: in_steps.sent as f64 / measured,
        received_per_s: in_steps.received as f64 / measured,
        deliveries_per_s: in_steps.deliveries as f64 / measured,
        latency_us: Latency::of(&total_hist),
        steps,
        server,
        generator_cpu_percent: gen_cpu as f64 / 1e4 / measured,
    };
    report(&summary, &opts, total as u64)
}

/// Prints the summary (table or JSON) and applies `--check`.
fn report(summary: &Summary, opts: &BenchOptions, total: u64) -> Result<(), String> {
    if opts.json {
        println!(
            "{}",
            serde_json::to_string(summary).map_err(|e| e.to_string())?
        );
    } else {
        print_table(summary);
    }
    if opts.check {
        check(summary, total)?;
    }
    Ok(())
}

fn check(s: &Summary, total: u64) -> Result<(), String> {
    let mut problems = Vec::new();
    if s.errors > 0 {
        problems.push(format!(
            "{} errors (first: {})",
            s.errors,
            s.first_error.as_deref().unwrap_or("?")
        ));
    }
    if s.connections.failed > 0 || s.connections.ok < total {
        problems.push(format!(
            "{} of {total} connections failed",
            total - s.connections.ok
        ));
    }
    // A storm's clients leave on purpose.
    if s.scenario != Scenario::Storm && s.connections.up_at_end < s.connections.ok as i64 {
        problems.push(format!(
            "{} connections dropped",
            s.connections.ok as i64 - s.connections.up_at_end
        ));
    }
    if s.scenario != Scenario::Idle && s.deliveries == 0 {
        problems.push("zero throughput".into());
    }
    if s.lost > 0 {
        problems.push(format!("{} messages lost", s.lost));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("check failed: {}", problems.join("; ")))
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

fn print_table(s: &Summary) {
    println!(
        "ferrio bench {} {} ({}, {} clients, {:.1}s measured)",
        serde_json::to_value(s.scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.url,
        s.transport,
        s.clients,
        s.seconds
    );
    println!(
        "  connections   ok {}  failed {}  up at end {}",
        s.connections.ok, s.connections.failed, s.connections.up_at_end
    );
    println!(
        "  messages      sent {} ({:.1}/s)  received {} ({:.1}/s)",
        s.sent, s.sent_per_s, s.received, s.received_per_s
    );
    println!(
        "  deliveries    {} ({:.1}/s)  expected {}  lost {}",
        s.deliveries, s.deliveries_per_s, s.expected, s.lost
    );
    println!(
        "  latency       p50 {}  p90 {}  p99 {}  max {}",
        fmt_us(s.latency_us.p50),
        fmt_us(s.latency_us.p90),
        fmt_us(s.latency_us.p99),
        fmt_us(s.latency_us.max)
    );
    println!(
        "  errors        {}{}",
        s.errors,
        s.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    if s.steps.len() > 1 || s.steps.first().is_some_and(|st| st.rate.is_some()) {
        println!(
            "  {:>10} {:>8} {:>12} {:>14} {:>9} {:>9} {:>9} {:>9} {:>12}",
            "rate", "secs", "sent/s", "deliveries/s", "p50", "p90", "p99", "max", "server cpu"
        );
        for st in &s.steps {
            println!(
                "  {:>10} {:>8.1} {:>12.1} {:>14.1} {:>9} {:>9} {:>9} {:>9} {:>12}",
                st.rate.map(|r| format!("{r}/s")).unwrap_or("-".into()),
                st.seconds,
                st.sent_per_s,
                st.deliveries_per_s,
                fmt_us(st.latency_us.p50),
                fmt_us(st.latency_us.p90),
                fmt_us(st.latency_us.p99),
                fmt_us(st.latency_us.max),
                st.server_cpu_us
                    .map(|c| format!("{:.0}%", c as f64 / 1e4 / st.seconds))
                    .unwrap_or("-".into()),
            );
        }
    }
    if let Some(sv) = &s.server {
        println!(
            "  server        pid {}  cpu {:.2}s (kernel {:.2}s)  cpu/msg {} (kernel {})  rss {} kB (base {} kB)  rss/conn {}",
            sv.pid,
            sv.cpu_us as f64 / 1e6,
            sv.sys_us as f64 / 1e6,
            sv.cpu_us_per_message
                .map(|c| format!("{c:.1}µs"))
                .unwrap_or("-".into()),
            sv.sys_us_per_message
                .map(|c| format!("{c:.1}µs"))
                .unwrap_or("-".into()),
            sv.rss_kb,
            sv.rss_base_kb,
            sv.rss_per_connection_bytes
                .map(|b| format!("{b:.0} B"))
                .unwrap_or("-".into()),
        );
        if sv.pids.len() > 1 {
            let each: Vec<String> = sv
                .pids
                .iter()
                .zip(&sv.cpu_us_by_pid)
                .map(|(p, c)| format!("pid {p} {:.2}s", *c as f64 / 1e6))
                .collect();
            println!("  server cpu    {}", each.join("  "));
        }
    }
    println!(
        "  generator     {:.0}% of one core",
        s.generator_cpu_percent
    );
}
