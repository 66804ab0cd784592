//! Counters and latency histograms shared by every connection of a run.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// The clock every timestamp of a run is measured from (sender and receiver share the process).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Latencies up to one minute, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// What a run counts. Message counters only move while measuring (connections and joins happen before).
#[derive(Debug)]
pub struct Stats {
    /// Connections established (after retries).
    pub connected: AtomicU64,
    /// Connections that failed every attempt.
    pub failed: AtomicU64,
    /// Connections currently up.
    pub up: AtomicI64,
    /// Connections connected and set up (joined their room).
    pub ready: AtomicU64,
    /// Connections that came up but closed before their set-up (room join) was done.
    pub setup_failed: AtomicU64,
    /// Socket.IO messages sent (events).
    pub sent: AtomicU64,
    /// Socket.IO messages received (events and acks).
    pub received: AtomicU64,
    /// Measured messages received: acks of `echo`, `chat` deliveries.
    pub deliveries: AtomicU64,
    /// Deliveries the sent messages call for.
    pub expected: AtomicU64,
    /// Errors: failed attempts, unexpected closes, bad packets, refused requests.
    pub errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    hists: Mutex<Hists>,
}

#[derive(Debug)]
struct Hists {
    /// Since the last progress line.
    interval: Histogram<u64>,
    /// Since the current step began.
    step: Histogram<u64>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            up: AtomicI64::new(0),
            ready: AtomicU64::new(0),
            setup_failed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            hists: Mutex::new(Hists {
                interval: histogram(),
                step: histogram(),
            }),
        }
    }

    /// Counts one error, keeping the first message for the summary.
    pub fn error(&self, what: impl Into<String>) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(what.into());
        }
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().clone()
    }

    /// Counts one measured delivery sent at `sent_us` (on the [`now_us`] clock).
    pub fn delivered(&self, sent_us: u64) {
        self.deliveries.fetch_add(1, Relaxed);
        let lat = now_us().saturating_sub(sent_us).max(1);
        let mut h = self.hists.lock();
        h.interval.saturating_record(lat);
        h.step.saturating_record(lat);
    }

    /// The latencies since the last call.
    pub fn take_interval(&self) -> Histogram<u64> {
        std::mem::replace(&mut self.hists.lock().interval, histogram())
    }

    /// The latencies of the step that ends.
    pub fn take_step(&self) -> Histogram<u64> {
        std::mem::replace(&mut self.hists.lock().step, histogram())
    }

    pub fn counters(&self) -> Counters {
        Counters {
            sent: self.sent.load(Relaxed),
            received: self.received.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            expected: self.expected.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

/// A snapshot of the message counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub sent: u64,
    pub received: u64,
    pub deliveries: u64,
    pub expected: u64,
    pub errors: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            sent: self.sent - o.sent,
            received: self.received - o.received,
            deliveries: self.deliveries - o.deliveries,
            expected: self.expected - o.expected,
            errors: self.errors - o.errors,
        }
    }
}

/// The quantiles of [`Latency::quantiles`]: enough points to draw the distribution (bench/report.mjs).
const QUANTILES: [f64; 11] = [
    0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0,
];

/// p50/p90/p99/max of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// `[quantile, µs]` pairs from the minimum to the maximum, the latency distribution.
    pub quantiles: [(f64, u64); QUANTILES.len()],
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            quantiles: QUANTILES.map(|q| (q, h.value_at_quantile(q))),
        }
    }
}

/// CPU time (user + system) and resident memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime, microseconds.
    pub cpu_us: u64,
    /// stime alone (the kernel's share: syscalls, and the TCP work they do on loopback), microseconds.
    pub sys_us: u64,
    /// VmRSS, kB.
    pub rss_kb: u64,
}

impl ProcSample {
    /// Reads `/proc/PID/stat` and `/proc/PID/status` (`pid` None: this process).
    pub fn read(pid: Option<u32>) -> Option<ProcSample> {
        let dir = match pid {
            Some(p) => format!("/proc/{p}"),
            None => "/proc/self".to_owned(),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let sys_ticks: u64 = f.get(12)?.parse().ok()?;
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + sys_ticks;
        // USER_HZ is 100 on every Linux configuration we run on.
        let cpu_us = ticks * 10_000;
        let sys_us = sys_ticks * 10_000;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Some(ProcSample {
            cpu_us,
            sys_us,
            rss_kb,
        })
    }
}
