//! Metrics, through the `metrics` crate facade: nothing is recorded until the application installs a
//! recorder (a Prometheus exporter, …), and then each call is a lookup and an atomic add. The call
//! sites are one line each, where the event happens; the names and labels live here.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `ferrio_connections_total` | counter | `transport` of the handshake |
//! | `ferrio_connections` | gauge | open Engine.IO sessions |
//! | `ferrio_disconnections_total` | counter | `reason` (Engine.IO close reason) |
//! | `ferrio_upgrades_total` | counter | |
//! | `ferrio_handshake_errors_total` | counter | `code` (the Engine.IO error code of a refused request) |
//! | `ferrio_sockets_connected_total` | counter | `namespace` |
//! | `ferrio_sockets` | gauge | `namespace` |
//! | `ferrio_packets_in_total`, `ferrio_bytes_in_total` | counter | messages received |
//! | `ferrio_packets_out_total`, `ferrio_bytes_out_total` | counter | frames taken by a session's writer |
//! | `ferrio_volatile_drops_total` | counter | volatile packets dropped on a full queue |
//! | `ferrio_slow_consumer_disconnects_total` | counter | sessions closed on a full queue |
//! | `ferrio_ack_timeouts_total` | counter | acks of `emit_with_ack` past their deadline |
//! | `ferrio_recoveries_total` | counter | `result`: `hit` (a CONNECT with `pid` and `offset` got its session back) or `miss` |
//!
//! Beside the metrics, [`AggregatedEvents`] counts the Engine.IO traffic per second for instrumentation
//! that reports it itself (the admin UI's dashboard): off until someone asks for it, then an atomic add
//! per event on a per-second slot.

use std::cell::{Cell, RefCell};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use ferrio_proto::engine::{CloseReason, Data, TransportKind};
use metrics::{Counter, Gauge, counter, gauge};
use parking_lot::Mutex;

pub(crate) fn connection(transport: TransportKind) {
    counter!("ferrio_connections_total", "transport" => transport.as_str()).increment(1);
    gauge!("ferrio_connections").increment(1.0);
    tally(Kind::Connection as usize, 1);
}

pub(crate) fn disconnection(reason: CloseReason) {
    counter!("ferrio_disconnections_total", "reason" => reason.as_str()).increment(1);
    gauge!("ferrio_connections").decrement(1.0);
    if let Some(i) = REASONS.iter().position(|r| *r == reason) {
        tally(Kind::Disconnection as usize + i, 1);
    }
}

/// Counts a polling session's move onto its websocket.
pub(crate) fn upgraded() {
    counter!("ferrio_upgrades_total").increment(1);
}

pub(crate) fn request_error(code: u8) {
    // The Engine.IO error codes are 0 to 5: a static label each, no string made per refused request.
    const CODES: [&str; 6] = ["0", "1", "2", "3", "4", "5"];
    match CODES.get(usize::from(code)) {
        Some(c) => counter!("ferrio_handshake_errors_total", "code" => *c).increment(1),
        None => counter!("ferrio_handshake_errors_total", "code" => code.to_string()).increment(1),
    }
}

/// The handles of one namespace's metrics, registered at its first socket.
struct NamespaceMetrics {
    connected: Counter,
    sockets: Gauge,
}

/// Per namespace name: a socket connecting or leaving looks its handles up instead of building a label
/// and a key (two allocations) each time. Keyed by name rather than held by the namespace, so that a
/// dynamic namespace removed and made again keeps its series; the exporter keeps one series per name
/// anyway, so this grows no faster than the exporter does.
static NAMESPACES: LazyLock<DashMap<Box<str>, NamespaceMetrics>> = LazyLock::new(DashMap::new);

fn with_namespace(namespace: &str, f: impl FnOnce(&NamespaceMetrics)) {
    if let Some(m) = NAMESPACES.get(namespace) {
        return f(&m);
    }
    let label = namespace.to_owned();
    let m = NAMESPACES
        .entry(namespace.into())
        .or_insert_with(|| NamespaceMetrics {
            connected: counter!("ferrio_sockets_connected_total", "namespace" => label.clone()),
            sockets: gauge!("ferrio_sockets", "namespace" => label),
        });
    f(&m);
}

pub(crate) fn socket_connected(namespace: &str) {
    with_namespace(namespace, |m| {
        m.connected.increment(1);
        m.sockets.increment(1.0);
    });
}

pub(crate) fn socket_disconnected(namespace: &str) {
    with_namespace(namespace, |m| m.sockets.decrement(1.0));
}

/// Counts a CONNECT that asked for its session back (`pid` and `offset`): a hit when the adapter restored
/// it, a miss otherwise (unknown or expired session, offset no longer in the log, adapter error).
pub(crate) async fn recovery<T, E>(
    restore: impl std::future::Future<Output = Result<Option<T>, E>>,
) -> Result<Option<T>, E> {
    let restored = restore.await;
    let result = if matches!(restored, Ok(Some(_))) {
        "hit"
    } else {
        "miss"
    };
    counter!("ferrio_recoveries_total", "result" => result).increment(1);
    restored
}

/// The in counters of one session, registered once when it opens (every message goes through them).
#[derive(Debug)]
pub(crate) struct MessagesIn {
    packets: Counter,
    bytes: Counter,
}

impl MessagesIn {
    pub(crate) fn new() -> Self {
        MessagesIn {
            packets: counter!("ferrio_packets_in_total"),
            bytes: counter!("ferrio_bytes_in_total"),
        }
    }

    #[inline]
    pub(crate) fn record(&self, data: &Data) {
        self.packets.increment(1);
        self.bytes.increment(data.len() as u64);
        if TALLY.enabled.load(Ordering::Relaxed) {
            TALLY.add(Kind::PacketsIn as usize, 1);
            TALLY.add(Kind::BytesIn as usize, data.len() as u64);
        }
    }
}

/// The out counters of one session, registered once when it opens: frames leave a session one by one
/// (every recipient of every broadcast), so each is an atomic add on a held handle, not a registry
/// lookup by name.
#[derive(Debug)]
pub(crate) struct FramesOut {
    packets: Counter,
    bytes: Counter,
}

impl FramesOut {
    pub(crate) fn new() -> Self {
        FramesOut {
            packets: counter!("ferrio_packets_out_total"),
            bytes: counter!("ferrio_bytes_out_total"),
        }
    }

    /// A frame of `bytes` encoded bytes left the queue for the transport.
    #[inline]
    pub(crate) fn record(&self, bytes: usize) {
        let batched = BATCH.with(|b| {
            if !b.open.get() {
                return false;
            }
            if b.packets.get() == 0 {
                // Every session's handles are the same two series: the first recipient's do for all.
                *b.to.borrow_mut() = Some((self.packets.clone(), self.bytes.clone()));
            }
            b.packets.set(b.packets.get() + 1);
            b.bytes.set(b.bytes.get() + bytes as u64);
            true
        });
        if !batched {
            add_out(&self.packets, &self.bytes, 1, bytes as u64);
        }
    }
}

/// Adds frames that left to the out counters and, when someone reads it, to the per-second tally.
fn add_out(packets: &Counter, bytes: &Counter, frames: u64, len: u64) {
    packets.increment(frames);
    bytes.increment(len);
    if TALLY.enabled.load(Ordering::Relaxed) {
        TALLY.add(Kind::PacketsOut as usize, frames);
        TALLY.add(Kind::BytesOut as usize, len);
    }
}

/// The frames a broadcast wrote through on this thread, counted here and added to the counters once
/// when it is done (see [`batched`]).
struct Batch {
    open: Cell<bool>,
    packets: Cell<u64>,
    bytes: Cell<u64>,
    /// The handles of the first session counted.
    to: RefCell<Option<(Counter, Counter)>>,
}

thread_local! {
    static BATCH: Batch = const {
        Batch {
            open: Cell::new(false),
            packets: Cell::new(0),
            bytes: Cell::new(0),
            to: RefCell::new(None),
        }
    };
}

/// Runs `f` (a broadcast's delivery loop) with the frames it sends counted once at its end, not with two
/// atomic adds for every recipient. Nested, the outer call adds them.
pub(crate) fn batched<R>(f: impl FnOnce() -> R) -> R {
    /// Adds what was counted even when `f` panics (a handler's panic is caught further up, and the
    /// thread goes on serving).
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            BATCH.with(|b| {
                b.open.set(false);
                let packets = b.packets.replace(0);
                let bytes = b.bytes.replace(0);
                // Set by the first frame counted: none, nothing to add.
                if let Some((p, n)) = b.to.borrow_mut().take() {
                    add_out(&p, &n, packets, bytes);
                }
            });
        }
    }
    if BATCH.with(|b| b.open.replace(true)) {
        return f();
    }
    let _flush = Flush;
    f()
}

/// Counts a volatile frame that was not queued; returns `queued`.
pub(crate) fn volatile(queued: bool) -> bool {
    if !queued {
        counter!("ferrio_volatile_drops_total").increment(1);
    }
    queued
}

pub(crate) fn slow_consumer() {
    counter!("ferrio_slow_consumer_disconnects_total").increment(1);
}

pub(crate) fn ack_timeout() {
    counter!("ferrio_ack_timeouts_total").increment(1);
}

// ---- aggregated events ----

/// What is counted per second, as the admin UI names it (`type`); disconnections also by reason.
#[derive(Clone, Copy)]
enum Kind {
    Connection,
    PacketsIn,
    BytesIn,
    PacketsOut,
    BytesOut,
    /// The first of one slot per reason of [`REASONS`].
    Disconnection,
}

const TYPES: [&str; 5] = [
    "rawConnection",
    "packetsIn",
    "bytesIn",
    "packetsOut",
    "bytesOut",
];

/// The close reasons counted, each its own `subType` of `rawDisconnection`.
const REASONS: [CloseReason; 5] = [
    CloseReason::TransportClose,
    CloseReason::TransportError,
    CloseReason::PingTimeout,
    CloseReason::ParseError,
    CloseReason::ForcedClose,
];

const KINDS: usize = Kind::Disconnection as usize + REASONS.len();

/// Seconds counted at once: a count lands in the slot of its second, reused `SLOTS` seconds later (its
/// counts then set aside first if no one took them).
const SLOTS: usize = 4;

/// At most this many counts set aside between two takes (only reached if counting was asked for and
/// nothing takes them): older ones are dropped rather than kept without bound.
const SPILL_MAX: usize = 64 * KINDS;

struct Slot {
    second: AtomicU64,
    counts: [AtomicU64; KINDS],
}

struct Tally {
    enabled: AtomicBool,
    /// Live [`AggregatedEvents`] handles: counting stops with the last.
    handles: AtomicUsize,
    slots: [Slot; SLOTS],
    /// (second, kind, count) of slots reused before their counts were taken; also the lock of a slot's
    /// reuse and of a take.
    spill: Mutex<Vec<(u64, usize, u64)>>,
}

static TALLY: Tally = Tally {
    enabled: AtomicBool::new(false),
    handles: AtomicUsize::new(0),
    slots: [const {
        Slot {
            second: AtomicU64::new(0),
            counts: [const { AtomicU64::new(0) }; KINDS],
        }
    }; SLOTS],
    spill: Mutex::new(Vec::new()),
};

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[inline]
fn tally(kind: usize, n: u64) {
    if TALLY.enabled.load(Ordering::Relaxed) {
        TALLY.add(kind, n);
    }
}

impl Tally {
    fn add(&self, kind: usize, n: u64) {
        let now = unix_seconds();
        let slot = &self.slots[(now % SLOTS as u64) as usize];
        if slot.second.load(Ordering::Acquire) != now {
            // Once a second per slot: set the old second's counts aside and take the slot.
            let mut spill = self.spill.lock();
            let old = slot.second.load(Ordering::Acquire);
            if old != now {
                for (k, c) in slot.counts.iter().enumerate() {
                    let c = c.swap(0, Ordering::AcqRel);
                    if c > 0 && spill.len() < SPILL_MAX {
                        spill.push((old, k, c));
                    }
                }
                slot.second.store(now, Ordering::Release);
            }
        }
        slot.counts[kind].fetch_add(n, Ordering::Relaxed);
    }

    fn take(&self) -> Vec<AggregatedEvent> {
        let mut spill = self.spill.lock();
        let mut out: Vec<AggregatedEvent> = spill
            .drain(..)
            .map(|(s, k, c)| AggregatedEvent::new(s, k, c))
            .collect();
        for slot in &self.slots {
            let second = slot.second.load(Ordering::Acquire);
            for (k, c) in slot.counts.iter().enumerate() {
                // A count added while this runs goes to this take or the next one, never lost.
                let c = c.swap(0, Ordering::AcqRel);
                if c > 0 {
                    out.push(AggregatedEvent::new(second, k, c));
                }
            }
        }
        out.sort_by_key(|e| e.timestamp);
        out
    }
}

/// Engine.IO events of one second, as the admin UI's `aggregatedEvents` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatedEvent {
    /// The second, in milliseconds since the Unix epoch (a multiple of 1000).
    pub timestamp: u64,
    /// `rawConnection` (sessions opened), `rawDisconnection` (closed), `packetsIn` / `packetsOut`
    /// (messages received, frames sent), `bytesIn` / `bytesOut` (their sizes).
    pub kind: &'static str,
    /// The close reason of a `rawDisconnection` (`transport close`, `ping timeout`, …).
    pub sub_type: Option<&'static str>,
    /// How many in that second (bytes for `bytesIn` / `bytesOut`).
    pub count: u64,
}

impl AggregatedEvent {
    fn new(second: u64, kind: usize, count: u64) -> Self {
        let (kind, sub_type) = match TYPES.get(kind) {
            Some(t) => (*t, None),
            None => (
                "rawDisconnection",
                Some(REASONS[kind - Kind::Disconnection as usize].as_str()),
            ),
        };
        AggregatedEvent {
            timestamp: second * 1000,
            kind,
            sub_type,
            count,
        }
    }
}

/// Counts the Engine.IO traffic of this process per second, from its creation to its drop (nothing is
/// counted while no handle exists): sessions opened and closed (by reason), messages in, frames out and
/// their bytes, as the official admin instrumentation reports them in `server_stats`.
///
/// The counts are the process's (every server in it: a process usually runs one), and each count is
/// handed to one [`take`](Self::take) only, so several handles split the counts rather than repeat
/// them; the admin UI adds up what every server reports.
#[derive(Debug)]
pub struct AggregatedEvents(());

impl AggregatedEvents {
    /// Starts counting (if not already).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        TALLY.handles.fetch_add(1, Ordering::AcqRel);
        TALLY.enabled.store(true, Ordering::Release);
        AggregatedEvents(())
    }

    /// The counts since the last take, oldest second first.
    pub fn take(&self) -> Vec<AggregatedEvent> {
        TALLY.take()
    }
}

impl Drop for AggregatedEvents {
    fn drop(&mut self) {
        if TALLY.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            TALLY.enabled.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The per-second tally is the process's: tests that count frames run one at a time.
    static TALLIED: Mutex<()> = Mutex::new(());

    #[test]
    fn counts_per_second_and_reason_are_taken_once() {
        let _one_at_a_time = TALLIED.lock();
        let events = AggregatedEvents::new();
        let _ = events.take();
        connection(TransportKind::Polling);
        connection(TransportKind::WebSocket);
        disconnection(CloseReason::PingTimeout);
        MessagesIn::new().record(&Data::Text("hello".into()));
        FramesOut::new().record(7);
        let got = events.take();
        let count = |kind: &str, sub: Option<&str>| -> u64 {
            got.iter()
                .filter(|e| e.kind == kind && e.sub_type == sub)
                .map(|e| e.count)
                .sum()
        };
        assert_eq!(count("rawConnection", None), 2, "{got:?}");
        assert_eq!(count("rawDisconnection", Some("ping timeout")), 1);
        assert_eq!(count("packetsIn", None), 1);
        assert_eq!(count("bytesIn", None), 5);
        assert_eq!(count("packetsOut", None), 1);
        assert_eq!(count("bytesOut", None), 7);
        assert!(
            got.iter()
                .all(|e| e.timestamp % 1000 == 0 && e.timestamp > 0)
        );
        assert!(events.take().is_empty(), "each count is taken once");
    }

    /// A recorder of counters only, each an atomic the test reads back.
    #[derive(Default)]
    struct Counters(Mutex<std::collections::HashMap<String, Arc<AtomicU64>>>);

    impl Counters {
        fn get(&self, name: &str) -> u64 {
            self.0
                .lock()
                .get(name)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        }
    }

    impl metrics::Recorder for Counters {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> Counter {
            let c = self
                .0
                .lock()
                .entry(key.name().to_owned())
                .or_default()
                .clone();
            Counter::from_arc(c)
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn a_broadcast_adds_its_frames_once_at_its_end_even_when_it_panics() {
        let _one_at_a_time = TALLIED.lock();
        let recorder = Counters::default();
        let sessions: Vec<FramesOut> =
            metrics::with_local_recorder(&recorder, || (0..3).map(|_| FramesOut::new()).collect());
        let packets = || recorder.get("ferrio_packets_out_total");
        let bytes = || recorder.get("ferrio_bytes_out_total");
        sessions[0].record(4);
        assert_eq!((packets(), bytes()), (1, 4), "outside a broadcast, at once");
        batched(|| {
            for s in &sessions {
                s.record(10);
            }
            // A broadcast inside a broadcast (an emit from a delivery): the outer one adds.
            batched(|| sessions[1].record(5));
            assert_eq!((packets(), bytes()), (1, 4), "nothing added while it runs");
        });
        assert_eq!(
            (packets(), bytes()),
            (5, 39),
            "four frames, 35 bytes, added at its end"
        );
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batched(|| {
                sessions[2].record(6);
                panic!("a handler's panic");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(
            (packets(), bytes()),
            (6, 45),
            "added on the way out of a panic"
        );
        sessions[0].record(1);
        assert_eq!(
            (packets(), bytes()),
            (7, 46),
            "the batch closed: at once again"
        );
    }
}
