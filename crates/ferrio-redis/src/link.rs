//! What every connection driver shares: its counters, its one error, and the narrow trait it delivers
//! received messages to. A driver knows channels and bytes only; whoever subscribes decodes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one server's Redis link (all namespaces).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) malformed: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) reconnects: AtomicU64,
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
    pub(crate) fn snapshot(&self) -> Metrics {
        Metrics {
            malformed: self.malformed.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            publish_errors: self.publish_errors.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why a command did not run: Redis is unreachable, or the queue to it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// Where a driver delivers what arrives on the channels someone subscribed to.
pub(crate) trait Subscriber: Send + Sync {
    /// A message on `channel` (`pattern`: received through a pattern subscription).
    fn on_payload(&self, channel: &str, pattern: bool, payload: &[u8]);
}
