//! The Redis Cluster connection of the sharded adapter, shared by every namespace of one server.
//!
//! One `redis` cluster connection (RESP3) carries everything: SSUBSCRIBE / SUNSUBSCRIBE (the connection
//! subscribes again by itself after a reconnection or a topology change), SPUBLISH (queued, sent in
//! order: one pipeline per hash slot and batch, so that messages of one channel never overtake each
//! other) and `PUBSUB SHARDNUMSUB` (asked of every primary, summed, as the official adapter does). Sharded
//! messages arrive as RESP3 pushes and are routed to the adapter that subscribed to their channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{PushInfo, PushKind};
use tokio::sync::{mpsc, watch};

use crate::RedisAdapterError;
use crate::link::{Control, Link, Publish, PublishQueue, Subscriber, Unavailable, bump, try_queue};

const QUEUE: usize = 16_384;
const BATCH: usize = 512;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster connection of one server.
pub(crate) struct ShardedDriver {
    conn: ClusterConnection,
    tx: mpsc::Sender<Publish>,
    routes: Mutex<HashMap<String, Weak<dyn Subscriber>>>,
    control: Control,
    up: AtomicBool,
}

impl Link for ShardedDriver {
    fn is_connected(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn control(&self) -> &Control {
        &self.control
    }
}

impl PublishQueue for ShardedDriver {
    fn try_queue(&self, publish: Publish) -> Result<(), Publish> {
        if self.control.stopped() {
            return Err(publish);
        }
        try_queue(&self.tx, publish, std::convert::identity)
    }
}

/// The hash slot of a key (CRC16/XMODEM of the key or of its `{hash tag}`, modulo 16384).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let key = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    let mut crc: u16 = 0;
    for &b in key {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

impl ShardedDriver {
    /// Connects to the cluster (seed nodes `urls`), waiting up to `wait`.
    pub(crate) async fn connect(
        urls: Vec<String>,
        wait: Duration,
    ) -> Result<Arc<ShardedDriver>, RedisAdapterError> {
        tokio::runtime::Handle::try_current().map_err(|_| RedisAdapterError::NoRuntime)?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let client = ClusterClientBuilder::new(urls.clone())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push_tx)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(RedisAdapterError::Url)?;
        let deadline = tokio::time::Instant::now() + wait;
        let conn = loop {
            match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection()).await {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) => tracing::debug!("sharded redis adapter: cannot connect: {e}"),
                Err(_) => tracing::debug!("sharded redis adapter: connection timed out"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RedisAdapterError::Unreachable(urls.join(",")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let driver = Arc::new(ShardedDriver {
            conn,
            tx,
            routes: Mutex::new(HashMap::new()),
            control: Control::new("redis-sharded"),
            up: AtomicBool::new(true),
        });
        tokio::spawn(publisher(
            driver.conn.clone(),
            Arc::downgrade(&driver),
            rx,
            driver.control.stop_signal(),
        ));
        tokio::spawn(receiver(
            Arc::downgrade(&driver),
            push_rx,
            driver.control.stop_signal(),
        ));
        Ok(driver)
    }

    /// `PUBSUB SHARDNUMSUB channel` on every primary, summed.
    pub(crate) async fn shard_numsub(&self, channel: &str) -> Result<usize, Unavailable> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("SHARDNUMSUB").arg(channel);
        let mut conn = self.conn.clone();
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        match tokio::time::timeout(RESPONSE_TIMEOUT, conn.route_command(&cmd, routing)).await {
            Ok(Ok(v)) => Ok(usize::try_from(sum_ints(&v)).unwrap_or(0)),
            _ => Err(Unavailable),
        }
    }

    /// Routes `channels` to `subscriber` and subscribes to them.
    pub(crate) fn subscribe(&self, subscriber: &Weak<dyn Subscriber>, channels: Vec<String>) {
        {
            let mut routes = self.routes.lock();
            for c in &channels {
                routes.insert(c.clone(), subscriber.clone());
            }
        }
        let mut conn = self.conn.clone();
        // In the order given, one after the other.
        tokio::spawn(async move {
            for channel in channels {
                if let Err(e) = conn.ssubscribe(&channel).await {
                    tracing::warn!("sharded redis adapter: SSUBSCRIBE {channel} failed: {e}");
                }
            }
        });
    }

    /// Stops routing `channel` and unsubscribes from it.
    pub(crate) fn unsubscribe(&self, channel: String) {
        self.routes.lock().remove(&channel);
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let _ = conn.sunsubscribe(&channel).await;
        });
    }

    fn dispatch(&self, push: PushInfo) {
        if push.kind != PushKind::SMessage {
            return;
        }
        let mut data = push.data.into_iter();
        let (Some(redis::Value::BulkString(channel)), Some(redis::Value::BulkString(payload))) =
            (data.next(), data.next())
        else {
            bump(&self.control.counters.malformed);
            return;
        };
        bump(&self.control.counters.received);
        let Ok(channel) = String::from_utf8(channel) else {
            return;
        };
        let target = self.routes.lock().get(&channel).and_then(Weak::upgrade);
        if let Some(subscriber) = target {
            subscriber.on_payload(&channel, false, &payload);
        }
    }
}

/// Every integer in a reply, summed (a per-node map of `channel → count`, as RESP3 or RESP2 gives it).
fn sum_ints(v: &redis::Value) -> i64 {
    match v {
        redis::Value::Int(n) => *n,
        redis::Value::Array(a) | redis::Value::Set(a) => a.iter().map(sum_ints).sum(),
        redis::Value::Map(m) => m.iter().map(|(_, v)| sum_ints(v)).sum(),
        _ => 0,
    }
}

async fn receiver(
    driver: Weak<ShardedDriver>,
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            push = rx.recv() => match (push, driver.upgrade()) {
                (Some(p), Some(d)) => d.dispatch(p),
                _ => return,
            },
            _ = stop.changed() => return,
        }
    }
}

async fn publisher(
    conn: ClusterConnection,
    driver: Weak<ShardedDriver>,
    mut rx: mpsc::Receiver<Publish>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            _ = stop.changed() => return,
        }
        // Group by slot, keeping the order within each slot; slots go in parallel.
        let mut groups: Vec<(u16, Vec<Publish>)> = Vec::new();
        for p in batch.drain(..) {
            let s = slot(p.channel.as_bytes());
            match groups.iter_mut().find(|(gs, _)| *gs == s) {
                Some((_, g)) => g.push(p),
                None => groups.push((s, vec![p])),
            }
        }
        let sends = groups.into_iter().map(|(_, group)| {
            let mut conn = conn.clone();
            async move {
                let mut pipe = redis::pipe();
                for p in &group {
                    pipe.cmd("SPUBLISH")
                        .arg(&p.channel)
                        .arg(&p.payload[..])
                        .ignore();
                }
                let ok = tokio::time::timeout(RESPONSE_TIMEOUT, pipe.exec_async(&mut conn))
                    .await
                    .is_ok_and(|r| r.is_ok());
                (group, ok)
            }
        });
        let results = futures_util::future::join_all(sends).await;
        let Some(d) = driver.upgrade() else { return };
        let mut all_ok = true;
        for (group, ok) in results {
            all_ok &= ok;
            if !ok {
                bump(&d.counters().publish_errors);
            }
            for p in group {
                p.finish(d.counters(), ok);
            }
        }
        // The cluster connection reconnects by itself: what this side sees of it is publishes failing,
        // then going through again, which counts as one reconnection.
        if !d.up.swap(all_ok, Ordering::Relaxed) && all_ok {
            bump(&d.counters().reconnects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn key_slots_as_redis_computes_them() {
        // CLUSTER KEYSLOT values.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(slot(b""), 0);
    }
}
