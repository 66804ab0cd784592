//! The two Redis connections shared by every namespace of one server: one publishes (pipelined, in
//! order), one holds the (P)SUBSCRIBE subscriptions. Each reconnects by itself with backoff and the
//! subscriber subscribes again to everything registered. Nothing here blocks a caller: while Redis is
//! unreachable, commands fail at once and broadcasts are dropped (and counted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{MultiplexedConnection, PubSubSink};
use tokio::sync::{mpsc, oneshot, watch};

use ferrio_proto::backoff::Backoff;

use crate::link::{
    Control, Counters, Link, Publish, PublishQueue, Subscriber, Unavailable, bump, try_queue,
};

/// How many publishes may wait for the publishing connection; past it, broadcasts are dropped.
const QUEUE: usize = 16_384;
/// Commands sent in one pipeline at most.
const BATCH: usize = 512;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(crate) enum Cmd {
    Publish(Publish),
    NumSub {
        channel: String,
        done: oneshot::Sender<Result<usize, Unavailable>>,
    },
}

impl Cmd {
    fn fail(self, counters: &Counters) {
        match self {
            Cmd::Publish(p) => p.finish(counters, false),
            Cmd::NumSub { done, .. } => {
                let _ = done.send(Err(Unavailable));
            }
        }
    }
}

/// What the subscriber is subscribed to, and who gets what arrives there.
#[derive(Default)]
struct Subs {
    channels: HashMap<String, Weak<dyn Subscriber>>,
    patterns: HashMap<String, Weak<dyn Subscriber>>,
    sink: Option<PubSubSink>,
}

impl Link for Driver {
    fn is_connected(&self) -> bool {
        self.pub_up.load(Ordering::Relaxed) && self.sub_up.load(Ordering::Relaxed)
    }

    fn control(&self) -> &Control {
        &self.control
    }
}

impl PublishQueue for Driver {
    fn try_queue(&self, publish: Publish) -> Result<(), Publish> {
        try_queue(&self.tx, publish, Cmd::Publish)
    }
}

/// The connections of one server, shared by the adapters of all its namespaces.
pub(crate) struct Driver {
    tx: mpsc::Sender<Cmd>,
    subs: Mutex<Subs>,
    control: Control,
    pub_up: AtomicBool,
    sub_up: AtomicBool,
}

impl Driver {
    /// Starts both connection tasks on the current tokio runtime.
    pub(crate) fn start(client: redis::Client) -> Arc<Driver> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let driver = Arc::new(Driver {
            tx,
            subs: Mutex::new(Subs::default()),
            control: Control::new("redis"),
            pub_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
        });
        tokio::spawn(publisher(
            client.clone(),
            Arc::downgrade(&driver),
            rx,
            driver.control.stop_signal(),
        ));
        tokio::spawn(subscriber(
            client,
            Arc::downgrade(&driver),
            driver.control.stop_signal(),
        ));
        driver
    }

    /// `PUBSUB NUMSUB channel`.
    pub(crate) async fn numsub(&self, channel: String) -> Result<usize, Unavailable> {
        let (done, rx) = oneshot::channel();
        if self.tx.try_send(Cmd::NumSub { channel, done }).is_err() {
            return Err(Unavailable);
        }
        rx.await.unwrap_or(Err(Unavailable))
    }

    /// Routes `channels` and `patterns` to `subscriber` and subscribes to them.
    pub(crate) fn register(
        &self,
        subscriber: &Weak<dyn Subscriber>,
        channels: &[String],
        patterns: &[String],
    ) {
        let sink = {
            let mut s = self.subs.lock();
            for c in channels {
                s.channels.insert(c.clone(), subscriber.clone());
            }
            for p in patterns {
                s.patterns.insert(p.clone(), subscriber.clone());
            }
            s.sink.clone()
        };
        if let Some(mut sink) = sink {
            let (channels, patterns) = (channels.to_vec(), patterns.to_vec());
            tokio::spawn(async move {
                // A failure here means the connection is going down: the reconnection subscribes again.
                // Patterns first: once the request channel counts this node (NUMSUB), its broadcasts
                // reach it too.
                if !patterns.is_empty() {
                    let _ = sink.psubscribe(patterns).await;
                }
                if !channels.is_empty() {
                    let _ = sink.subscribe(channels).await;
                }
            });
        }
    }

    /// Stops routing to an adapter and unsubscribes.
    pub(crate) fn unregister(&self, channels: &[String], patterns: &[String]) {
        let sink = {
            let mut s = self.subs.lock();
            for c in channels {
                s.channels.remove(c);
            }
            for p in patterns {
                s.patterns.remove(p);
            }
            s.sink.clone()
        };
        if let (Some(mut sink), Ok(_)) = (sink, tokio::runtime::Handle::try_current()) {
            let (channels, patterns) = (channels.to_vec(), patterns.to_vec());
            tokio::spawn(async move {
                if !channels.is_empty() {
                    let _ = sink.unsubscribe(channels).await;
                }
                if !patterns.is_empty() {
                    let _ = sink.punsubscribe(patterns).await;
                }
            });
        }
    }

    fn dispatch(&self, msg: redis::Msg) {
        let pattern: Option<String> = msg.get_pattern().ok().flatten();
        let target = {
            let s = self.subs.lock();
            match &pattern {
                Some(p) => s.patterns.get(p).and_then(Weak::upgrade),
                None => s
                    .channels
                    .get(msg.get_channel_name())
                    .and_then(Weak::upgrade),
            }
        };
        let Some(subscriber) = target else { return };
        bump(&self.control.counters.received);
        let channel = msg.get_channel_name();
        if channel == "?" {
            bump(&self.control.counters.malformed);
            return;
        }
        subscriber.on_payload(channel, pattern.is_some(), msg.get_payload_bytes());
    }
}

/// Reconnection delays of either connection; ±20 % jitter, so that many nodes do not reconnect in
/// lockstep.
fn reconnect_backoff() -> Backoff {
    Backoff::new(BACKOFF_MIN, BACKOFF_MAX, 0.2)
}

fn next_delay(backoff: &mut Backoff) -> Duration {
    backoff.next_delay(rand::random())
}

/// Waits `delay` while failing every command that arrives (nothing waits on a dead Redis). Returns
/// false when the driver stops.
async fn wait_failing(
    delay: Duration,
    rx: &mut mpsc::Receiver<Cmd>,
    driver: &Weak<Driver>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            _ = stop.changed() => return false,
            cmd = rx.recv() => match (cmd, driver.upgrade()) {
                (Some(cmd), Some(d)) => cmd.fail(d.counters()),
                _ => return false,
            },
        }
    }
}

async fn publisher(
    client: redis::Client,
    driver: Weak<Driver>,
    mut rx: mpsc::Receiver<Cmd>,
    mut stop: watch::Receiver<bool>,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = reconnect_backoff();
    let mut connected_once = false;
    let mut batch = Vec::with_capacity(BATCH);
    let mut ping = tokio::time::interval(Duration::from_millis(500));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(c) = conn.as_mut() else {
            match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => {
                    conn = Some(c);
                    backoff.reset();
                    let Some(d) = driver.upgrade() else { return };
                    d.pub_up.store(true, Ordering::Relaxed);
                    if connected_once {
                        bump(&d.counters().reconnects);
                        tracing::info!("redis adapter: publisher reconnected");
                    }
                    connected_once = true;
                }
                Err(e) => {
                    tracing::debug!("redis adapter: publisher cannot connect: {e}");
                    if !wait_failing(next_delay(&mut backoff), &mut rx, &driver, &mut stop).await {
                        return;
                    }
                }
            }
            continue;
        };
        let first = tokio::select! {
            cmd = rx.recv() => match cmd { Some(c) => c, None => return },
            _ = stop.changed() => return,
            _ = ping.tick() => {
                // Idle: check the connection, so that a dead one is replaced before it drops a message.
                let alive: redis::RedisResult<redis::Value> = redis::cmd("PING").query_async(c).await;
                if alive.is_err() {
                    conn = None;
                    if let Some(d) = driver.upgrade() {
                        d.pub_up.store(false, Ordering::Relaxed);
                    }
                }
                continue;
            }
        };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for cmd in &batch {
            match cmd {
                Cmd::Publish(p) => {
                    pipe.cmd("PUBLISH")
                        .arg(&p.channel)
                        .arg(p.payload.as_slice());
                }
                Cmd::NumSub { channel, .. } => {
                    pipe.cmd("PUBSUB").arg("NUMSUB").arg(channel);
                }
            }
        }
        let result: redis::RedisResult<Vec<redis::Value>> = pipe.query_async(c).await;
        let Some(d) = driver.upgrade() else { return };
        match result {
            Ok(values) if values.len() == batch.len() => {
                for (cmd, v) in batch.drain(..).zip(values) {
                    match cmd {
                        Cmd::Publish(p) => p.finish(d.counters(), true),
                        Cmd::NumSub { done, .. } => {
                            let _ = done.send(parse_numsub(&v).ok_or(Unavailable));
                        }
                    }
                }
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!("redis adapter: publish failed: {e}");
                }
                bump(&d.counters().publish_errors);
                for cmd in batch.drain(..) {
                    cmd.fail(d.counters());
                }
                conn = None;
                d.pub_up.store(false, Ordering::Relaxed);
            }
        }
    }
}

fn parse_numsub(v: &redis::Value) -> Option<usize> {
    let redis::Value::Array(items) = v else {
        return None;
    };
    match items.get(1)? {
        redis::Value::Int(n) => usize::try_from(*n).ok(),
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

async fn subscriber(client: redis::Client, driver: Weak<Driver>, mut stop: watch::Receiver<bool>) {
    let mut backoff = reconnect_backoff();
    let mut connected_once = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await;
        let pubsub = match connected {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::debug!("redis adapter: subscriber cannot connect: {e}");
                if !sleep_or_stop(next_delay(&mut backoff), &mut stop).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                if !sleep_or_stop(next_delay(&mut backoff), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let Some(d) = driver.upgrade() else { return };
        let (channels, patterns) = {
            let mut s = d.subs.lock();
            s.sink = Some(sink.clone());
            (
                s.channels.keys().cloned().collect::<Vec<_>>(),
                s.patterns.keys().cloned().collect::<Vec<_>>(),
            )
        };
        let mut ok = true;
        if !patterns.is_empty() {
            ok &= sink.psubscribe(patterns).await.is_ok();
        }
        if ok && !channels.is_empty() {
            ok &= sink.subscribe(channels).await.is_ok();
        }
        if !ok {
            d.subs.lock().sink = None;
            drop(d);
            if !sleep_or_stop(next_delay(&mut backoff), &mut stop).await {
                return;
            }
            continue;
        }
        backoff.reset();
        d.sub_up.store(true, Ordering::Relaxed);
        if connected_once {
            bump(&d.counters().reconnects);
            tracing::info!("redis adapter: subscriber reconnected and resubscribed");
        }
        connected_once = true;
        drop(d);
        // Liveness: a PING through the subscription connection every second, so that a half-open
        // connection is noticed even when no message comes.
        let mut ping = tokio::time::interval(Duration::from_millis(500));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => match driver.upgrade() {
                        Some(d) => d.dispatch(m),
                        None => return,
                    },
                    None => break,
                },
                _ = ping.tick() => {
                    let mut s = sink.clone();
                    let alive = tokio::time::timeout(RESPONSE_TIMEOUT, s.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
                _ = stop.changed() => return,
            }
        }
        tracing::warn!("redis adapter: subscriber connection lost");
        let Some(d) = driver.upgrade() else { return };
        d.sub_up.store(false, Ordering::Relaxed);
        d.subs.lock().sink = None;
    }
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}
