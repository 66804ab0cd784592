//! What every connection driver shares: its counters, its one error, and the narrow trait it delivers
//! received messages to. A driver knows channels and bytes only; whoever subscribes decodes.

use std::sync::atomic::{AtomicU64, Ordering};

use ferrio_core::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

/// One count of a server's Redis link: read by [`Metrics`] snapshots and, through the `metrics` crate
/// facade, by the application's exporter (the handle registered once, with the link, so that counting a
/// message is two atomic adds and no registry lookup).
#[derive(Debug)]
pub(crate) struct Count {
    n: AtomicU64,
    exported: metrics::Counter,
}

impl Count {
    fn new(exported: metrics::Counter) -> Self {
        Count {
            n: AtomicU64::new(0),
            exported,
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.n.fetch_add(n, Ordering::Relaxed);
        self.exported.increment(n);
    }

    fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

/// Counters of one server's Redis link (all namespaces), exported as
///
/// | name | labels |
/// |---|---|
/// | `ferrio_redis_publishes_total` | `adapter`, `result`: `ok`, or `dropped` (Redis unreachable, queue full) |
/// | `ferrio_redis_publish_errors_total` | `adapter`: failed publish pipelines |
/// | `ferrio_redis_receives_total` | `adapter`: messages (stream entries) received |
/// | `ferrio_redis_reconnects_total` | `adapter`: connections made again after a loss |
/// | `ferrio_redis_malformed_total` | `adapter`: messages ignored as malformed |
///
/// with `adapter` one of `redis`, `redis-sharded`, `redis-streams`.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) malformed: Count,
    pub(crate) published: Count,
    pub(crate) dropped: Count,
    pub(crate) publish_errors: Count,
    pub(crate) received: Count,
    pub(crate) reconnects: Count,
}

/// A snapshot of the adapter's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Messages on the adapter's channels that were ignored as malformed (not MessagePack or JSON, wrong
    /// shape, unknown request type).
    pub malformed: u64,
    /// Messages published.
    pub published: u64,
    /// Messages not published because Redis was unreachable or the queue was full.
    pub dropped: u64,
    /// Publish pipelines that failed.
    pub publish_errors: u64,
    /// Messages received on the adapter's channels.
    pub received: u64,
    /// Successful reconnections (the first connection not counted).
    pub reconnects: u64,
}

impl Counters {
    /// The counters of a link of `adapter` (`redis`, `redis-sharded`, `redis-streams`).
    pub(crate) fn new(adapter: &'static str) -> Self {
        use metrics::counter;
        Counters {
            malformed: Count::new(counter!("ferrio_redis_malformed_total", "adapter" => adapter)),
            published: Count::new(
                counter!("ferrio_redis_publishes_total", "adapter" => adapter, "result" => "ok"),
            ),
            dropped: Count::new(
                counter!("ferrio_redis_publishes_total", "adapter" => adapter, "result" => "dropped"),
            ),
            publish_errors: Count::new(
                counter!("ferrio_redis_publish_errors_total", "adapter" => adapter),
            ),
            received: Count::new(counter!("ferrio_redis_receives_total", "adapter" => adapter)),
            reconnects: Count::new(counter!("ferrio_redis_reconnects_total", "adapter" => adapter)),
        }
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        Metrics {
            malformed: self.malformed.get(),
            published: self.published.get(),
            dropped: self.dropped.get(),
            publish_errors: self.publish_errors.get(),
            received: self.received.get(),
            reconnects: self.reconnects.get(),
        }
    }
}

/// Counters of no particular link (unit tests, fuzzing): exported as `adapter="none"`.
impl Default for Counters {
    fn default() -> Self {
        Counters::new("none")
    }
}

pub(crate) fn bump(c: &Count) {
    c.add(1);
}

/// Why a command did not run: Redis is unreachable, or the queue to it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// What every driver keeps, whatever its connections: its counters and its stop signal.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) counters: Counters,
    stop: watch::Sender<bool>,
}

impl Control {
    /// The control of a driver of `adapter` (its metrics label).
    pub(crate) fn new(adapter: &'static str) -> Control {
        Control {
            counters: Counters::new(adapter),
            stop: watch::channel(false).0,
        }
    }

    /// Whether the driver was stopped.
    pub(crate) fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// What a connection task watches to stop.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// A server's connections to Redis, as its handle sees them.
pub(crate) trait Link: Send + Sync + 'static {
    /// The driver's counters and stop signal.
    fn control(&self) -> &Control;

    /// Whether the connections are up.
    fn is_connected(&self) -> bool;

    /// The counters (all namespaces).
    fn counters(&self) -> &Counters {
        &self.control().counters
    }

    /// Stops the connections.
    fn shutdown(&self) {
        let _ = self.control().stop.send(true);
    }
}

/// Hands `publish` to a connection's queue without waiting for room (`wrap`: the queue's item), or
/// gives it back.
pub(crate) fn try_queue<C>(
    tx: &mpsc::Sender<C>,
    publish: Publish,
    wrap: fn(Publish) -> C,
) -> Result<(), Publish> {
    match tx.try_reserve() {
        Ok(permit) => {
            permit.send(wrap(publish));
            Ok(())
        }
        Err(_) => Err(publish),
    }
}

/// Where a driver delivers what arrives on the channels someone subscribed to.
pub(crate) trait Subscriber: Send + Sync {
    /// A message on `channel` (`pattern`: received through a pattern subscription).
    fn on_payload(&self, channel: &str, pattern: bool, payload: &[u8]);
}

/// One PUBLISH (or SPUBLISH) on its way to a connection; `done` hears whether Redis took it.
pub(crate) struct Publish {
    pub(crate) channel: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) done: Option<oneshot::Sender<Result<(), Unavailable>>>,
}

impl Publish {
    /// Redis took it (`ok`) or not; counted either way, and the waiter told.
    pub(crate) fn finish(self, counters: &Counters, ok: bool) {
        bump(if ok {
            &counters.published
        } else {
            &counters.dropped
        });
        if let Some(done) = self.done {
            let _ = done.send(if ok { Ok(()) } else { Err(Unavailable) });
        }
    }
}

/// The queue of a driver's publishing connection. Publishing never waits for room: a full queue (or a
/// stopped driver) drops the message at once and counts it.
pub(crate) trait PublishQueue: Link {
    /// Hands `publish` to the connection, or gives it back when it cannot take it now.
    fn try_queue(&self, publish: Publish) -> Result<(), Publish>;

    /// Queues a publish without waiting for Redis (broadcasts).
    fn publish_nowait(&self, channel: String, payload: Vec<u8>) {
        let publish = Publish {
            channel,
            payload,
            done: None,
        };
        if let Err(p) = self.try_queue(publish) {
            p.finish(self.counters(), false);
        }
    }

    /// Queues a publish now; the future reports whether Redis took it.
    fn publish(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let publish = Publish {
            channel,
            payload,
            done: Some(done),
        };
        if let Err(p) = self.try_queue(publish) {
            p.finish(self.counters(), false);
        }
        async move { rx.await.unwrap_or(Err(Unavailable)) }
    }

    /// Queues an encoded message (`None`: the format could not say it) without waiting.
    fn send_nowait(&self, encoded: Option<(String, Vec<u8>)>) {
        if let Some((channel, payload)) = encoded {
            self.publish_nowait(channel, payload);
        }
    }

    /// Queues an encoded message now; Pub/Sub keeps no log, so the future gives no offset.
    fn send(
        &self,
        encoded: Option<(String, Vec<u8>)>,
    ) -> BoxFuture<Result<Option<String>, Unavailable>> {
        let sent = encoded.map(|(channel, payload)| self.publish(channel, payload));
        Box::pin(async move {
            sent.ok_or(Unavailable)?.await?;
            Ok(None)
        })
    }
}
