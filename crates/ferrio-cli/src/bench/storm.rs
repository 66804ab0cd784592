//! The `storm` scenario: `--clients` connections come and go as fast as the server takes them.
//!
//! `--concurrency` workers each loop over: open a connection (Engine.IO handshake and namespace `/`),
//! send one `echo` with an ack, wait for the ack, close, take the next client. This is what a server
//! sees after a deploy or a network blip, when every client reconnects at once: the cost of a
//! connection's whole life, not of its messages. A delivery is a client that got its ack; its latency
//! is the time from the start of its TCP connect to its ack (time to first ack); the server's CPU per
//! delivery is its CPU per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ferrio_proto::socket;
use ferrio_proto::value::Value;

use super::link::Link;
use super::stats::{Latency, ProcSample, Stats, now_us};
use super::{BenchOptions, Connections, Plan, Progress, Server, Step, Summary};

/// How long one client may take from its connect to its ack.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// One client's life: connect, one acked echo, close. Returns the time to the ack.
async fn one(plan: &Plan, idx: usize) -> Result<(), String> {
    let started = now_us();
    let mut link = Link::connect(plan.target(idx)).await?;
    link.send(&plan.parser.encode(&socket::Packet::Event {
        nsp: "/".into(),
        event: "echo".into(),
        args: vec![Value::Number(started.into())],
        id: Some(1),
    }));
    let mut decoder = plan.parser.decoder();
    loop {
        match link.recv().await {
            Some(Ok(data)) => {
                if let Ok(Some(socket::Packet::Ack { id: 1, args, .. })) = decoder.decode(data) {
                    if args.first().and_then(Value::as_u64) != Some(started) {
                        return Err(format!("unexpected ack: {args:?}"));
                    }
                    break;
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Err("closed by the server before the ack".into()),
        }
    }
    link.close().await;
    Ok(())
}

/// Runs the storm and builds the summary (see the module docs).
pub(super) async fn drive(plan: Arc<Plan>, opts: &BenchOptions) -> Result<Summary, String> {
    let stats = Arc::new(Stats::new());
    now_us();
    let pids = opts.server_pid.clone();
    let sample = || -> Option<ProcSample> {
        let mut sum = ProcSample::default();
        if pids.is_empty() {
            return None;
        }
        for &p in &pids {
            let s = ProcSample::read(Some(p))?;
            sum.cpu_us += s.cpu_us;
            sum.sys_us += s.sys_us;
            sum.rss_kb += s.rss_kb;
        }
        Some(sum)
    };
    for &pid in &opts.server_pid {
        ProcSample::read(Some(pid)).ok_or_else(|| format!("cannot read /proc/{pid}"))?;
    }
    let mut progress = Progress {
        quiet: opts.quiet,
        start: std::time::Instant::now(),
        last: Default::default(),
        last_at: std::time::Instant::now(),
    };

    let total = plan.clients;
    let next = Arc::new(AtomicU64::new(0));
    let server0 = sample();
    let gen_cpu0 = ProcSample::read(None).unwrap_or_default().cpu_us;
    let begin = std::time::Instant::now();
    let workers: Vec<_> = (0..opts.concurrency.clamp(1, total))
        .map(|_| {
            let (plan, stats, next) = (plan.clone(), stats.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let idx = next.fetch_add(1, Relaxed) as usize;
                    if idx >= plan.clients {
                        break;
                    }
                    let started = now_us();
                    stats.sent.fetch_add(1, Relaxed);
                    stats.expected.fetch_add(1, Relaxed);
                    match tokio::time::timeout(CLIENT_TIMEOUT, one(&plan, idx)).await {
                        Ok(Ok(())) => {
                            stats.connected.fetch_add(1, Relaxed);
                            stats.received.fetch_add(1, Relaxed);
                            stats.delivered(started);
                        }
                        Ok(Err(e)) => {
                            stats.failed.fetch_add(1, Relaxed);
                            stats.error(e);
                        }
                        Err(_) => {
                            stats.failed.fetch_add(1, Relaxed);
                            stats.error("no ack within 20 s of the connect");
                        }
                    }
                }
            })
        })
        .collect();
    let all_done = futures_util::future::join_all(workers);
    tokio::pin!(all_done);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.tick().await;
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            _ = second.tick() => progress.line(&stats, "storm"),
        }
    }
    let seconds = begin.elapsed().as_secs_f64().max(1e-6);
    let gen_cpu = ProcSample::read(None).unwrap_or_default().cpu_us - gen_cpu0;
    let server1 = sample();
    let c = stats.counters();
    let hist = stats.take_step();
    let latency = Latency::of(&hist);
    let ok = stats.connected.load(Relaxed);
    let server_cpu = match (server0, server1) {
        (Some(a), Some(b)) => Some(b.cpu_us.saturating_sub(a.cpu_us)),
        _ => None,
    };
    let server = match (opts.server_pid.first(), server0, server1, server_cpu) {
        (Some(&pid), Some(base), Some(end), Some(cpu_us)) => Some(Server {
            pid,
            pids: opts.server_pid.clone(),
            cpu_us,
            cpu_us_by_pid: Vec::new(),
            cpu_us_per_message: (c.deliveries > 0).then(|| cpu_us as f64 / c.deliveries as f64),
            sys_us: end.sys_us.saturating_sub(base.sys_us),
            sys_us_per_message: (c.deliveries > 0)
                .then(|| end.sys_us.saturating_sub(base.sys_us) as f64 / c.deliveries as f64),
            rss_base_kb: base.rss_kb,
            rss_kb: end.rss_kb,
            // What the storm left behind in the server, per connection it served.
            rss_per_connection_bytes: (ok > 0)
                .then(|| (end.rss_kb as f64 - base.rss_kb as f64) * 1024.0 / ok as f64),
        }),
        _ => None,
    };
    let per_s = |n: u64| n as f64 / seconds;
    Ok(Summary {
        scenario: super::Scenario::Storm,
        url: opts.url.clone(),
        transport: if plan.targets[0].websocket {
            "websocket"
        } else {
            "polling"
        },
        clients: total,
        seconds,
        connections: Connections {
            ok,
            failed: stats.failed.load(Relaxed),
            up_at_end: 0,
        },
        sent: c.sent,
        received: c.received,
        deliveries: c.deliveries,
        expected: c.expected,
        lost: c.expected.saturating_sub(c.deliveries),
        errors: c.errors,
        first_error: stats.first_error(),
        sent_per_s: per_s(c.sent),
        received_per_s: per_s(c.received),
        deliveries_per_s: per_s(c.deliveries),
        latency_us: latency,
        steps: vec![Step {
            rate: None,
            seconds,
            sent_per_s: per_s(c.sent),
            received_per_s: per_s(c.received),
            deliveries_per_s: per_s(c.deliveries),
            latency_us: latency,
            server_cpu_us: server_cpu,
        }],
        server,
        generator_cpu_percent: gen_cpu as f64 / 1e4 / seconds,
    })
}
