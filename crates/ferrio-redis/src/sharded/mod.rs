//! The sharded Redis adapter, byte-compatible with `createShardedAdapter` of `@socket.io/redis-adapter`
//! 8.3.x (Redis ≥ 7, sharded Pub/Sub: SSUBSCRIBE / SPUBLISH), for a Redis Cluster.
//!
//! Channels of namespace `nsp` with prefix `p`: `p#nsp#` (every message), `p#nsp#<uid>#` (responses to
//! this server) and, in the dynamic modes, `p#nsp#<room>#` for each room that has sockets here. Messages
//! are those of socket.io-adapter's `ClusterAdapter` ([`crate::cluster::wire`]). Like the official
//! adapter there are no heartbeats: the number of servers is `PUBSUB SHARDNUMSUB p#nsp#` summed over the
//! primaries.
//!
//! ```no_run
//! # async fn run() -> Result<(), ferrio_redis::RedisAdapterError> {
//! let redis = ferrio_redis::ShardedRedisAdapterHandle::connect(
//!     ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"],
//!     ferrio_redis::ShardedConfig::default(),
//! )
//! .await?;
//! let io = ferrio::Io::new(ferrio::IoConfig::builder().adapter(redis.factory()).build());
//! # let _ = io; Ok(()) }
//! ```

pub(crate) mod conn;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::adapter::Room;
use parking_lot::Mutex;

use crate::cluster::transport::{Inbox, Offset, Transport};
use crate::cluster::{
    self, ClusterAdapter, CoreOptions, Decoded, Message, Response, wire as cluster_wire,
};
use crate::handle::AdapterHandle;
use crate::link::{Link, PublishQueue, Subscriber, Unavailable, bump};
use crate::{RedisAdapterError, wire};
use conn::ShardedDriver;

/// Which rooms get a channel of their own (`subscriptionMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionMode {
    /// Only the namespace channel (and the response channel): every server gets every broadcast.
    Static,
    /// A channel per public room (the default). A broadcast to one room whose name is not 20 characters
    /// long (what a socket id looks like) goes to the room's channel, so a server also listens to the
    /// channel of each of its sockets' own rooms that is not 20 characters long.
    #[default]
    Dynamic,
    /// A channel per room, private rooms (socket ids) included.
    DynamicPrivate,
}

/// Options of the sharded adapter, named and defaulted as `createShardedAdapter` names them. Build one
/// with [`ShardedConfig::builder`] (or take the [`Default`] and set fields).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardedConfig {
    /// Channel prefix, `channelPrefix` (`socket.io`).
    pub channel_prefix: String,
    /// Which rooms get a channel of their own, `subscriptionMode` (`dynamic`).
    pub subscription_mode: SubscriptionMode,
    /// How long `fetch_sockets` and `server_side_emit` with acks wait for other servers (5 s, the
    /// `ClusterAdapter` default).
    pub requests_timeout: Duration,
}

impl Default for ShardedConfig {
    fn default() -> Self {
        ShardedConfig {
            channel_prefix: "socket.io".into(),
            subscription_mode: SubscriptionMode::Dynamic,
            requests_timeout: Duration::from_millis(5000),
        }
    }
}

config_builder! {
    /// Builds a [`ShardedConfig`]; unset options keep their official defaults.
    ShardedConfigBuilder builds ShardedConfig {
        /// Channel prefix (`socket.io`).
        channel_prefix: String,
        /// Which rooms get a channel of their own (`dynamic`).
        subscription_mode: SubscriptionMode,
        /// How long requests to other servers wait for their answers (5 s).
        requests_timeout: Duration,
    }
}

/// One URL or several (seed nodes of the cluster).
pub trait NodeUrls {
    /// The URLs.
    fn into_urls(self) -> Vec<String>;
}

impl NodeUrls for &str {
    fn into_urls(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl NodeUrls for String {
    fn into_urls(self) -> Vec<String> {
        vec![self]
    }
}
impl NodeUrls for &String {
    fn into_urls(self) -> Vec<String> {
        vec![self.clone()]
    }
}
impl<S: AsRef<str>> NodeUrls for Vec<S> {
    fn into_urls(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<S: AsRef<str>> NodeUrls for &[S] {
    fn into_urls(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}
impl<S: AsRef<str>, const N: usize> NodeUrls for [S; N] {
    fn into_urls(self) -> Vec<String> {
        self.iter().map(|s| s.as_ref().to_owned()).collect()
    }
}

/// The adapter of one namespace on the sharded Redis adapter.
pub type ShardedRedisAdapter = ClusterAdapter<ShardedTransport>;

/// The connection of one server to a Redis Cluster (the sharded adapter).
pub type ShardedRedisAdapterHandle = AdapterHandle<ShardedTransport>;

impl AdapterHandle<ShardedTransport> {
    /// Connects to the Redis Cluster reachable at `urls` (one seed node is enough), waiting up to 5 s.
    pub async fn connect(
        urls: impl NodeUrls,
        config: ShardedConfig,
    ) -> Result<ShardedRedisAdapterHandle, RedisAdapterError> {
        let driver = ShardedDriver::connect(urls.into_urls(), Duration::from_secs(5)).await?;
        let config = Arc::new(config);
        let options = CoreOptions {
            requests_timeout: config.requests_timeout,
            track_rooms: config.subscription_mode != SubscriptionMode::Static,
        };
        let (d, c) = (driver.clone(), config.clone());
        let factory = cluster::factory(options, move |nsp, uid| ShardedTransport {
            ns: Arc::new(ShardedNamespace::new(d.clone(), &c, nsp, uid)),
        });
        Ok(AdapterHandle::new(driver, factory, config))
    }
}

/// What `looksLikeASocketId` checks: 20 UTF-16 code units.
fn looks_like_a_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == 20
}

/// The sharded Pub/Sub transport of one namespace.
pub struct ShardedTransport {
    ns: Arc<ShardedNamespace>,
}

struct ShardedNamespace {
    driver: Arc<ShardedDriver>,
    mode: SubscriptionMode,
    uid: String,
    nsp: String,
    /// `p#nsp#`.
    channel: String,
    /// `p#nsp#<uid>#`.
    response: String,
    /// Rooms whose channel this namespace subscribed to.
    dynamic: Mutex<HashSet<Room>>,
    inbox: OnceLock<Weak<dyn Inbox>>,
}

impl ShardedNamespace {
    fn new(driver: Arc<ShardedDriver>, config: &ShardedConfig, nsp: &str, uid: &str) -> Self {
        let channel = format!("{}#{nsp}#", config.channel_prefix);
        ShardedNamespace {
            driver,
            mode: config.subscription_mode,
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            response: format!("{channel}{uid}#"),
            channel,
            dynamic: Mutex::new(HashSet::new()),
            inbox: OnceLock::new(),
        }
    }

    fn subscriber(self: &Arc<Self>) -> Weak<dyn Subscriber> {
        let me: Arc<dyn Subscriber> = self.clone();
        Arc::downgrade(&me)
    }

    fn dynamic_channel(&self, room: &str) -> String {
        format!("{}{room}#", self.channel)
    }

    /// `computeChannel`: a broadcast without acks to one room whose mode gives it a channel of its own
    /// goes there; a broadcast with acks never does, as the server count counts every server.
    fn channel_of(&self, msg: &Message) -> String {
        if let Message::Broadcast { opts, .. } = msg
            && opts.rooms.len() == 1
            && let Some(room) = opts.rooms.iter().next()
        {
            let own = match self.mode {
                SubscriptionMode::Dynamic => !looks_like_a_socket_id(room),
                SubscriptionMode::DynamicPrivate => true,
                SubscriptionMode::Static => false,
            };
            if own {
                return self.dynamic_channel(room);
            }
        }
        self.channel.clone()
    }

    fn encode(&self, msg: &Message) -> Option<(String, Vec<u8>)> {
        let payload = cluster_wire::encode_message(msg, &self.uid, &self.nsp)?;
        Some((self.channel_of(msg), payload))
    }
}

impl Subscriber for ShardedNamespace {
    fn on_payload(&self, channel: &str, _pattern: bool, payload: &[u8]) {
        let Some(inbox) = self.inbox.get().and_then(Weak::upgrade) else {
            return;
        };
        let response_channel = channel == self.response;
        match cluster_wire::decode(payload, &self.nsp, response_channel, self.driver.counters()) {
            Ok(Some(Decoded::Message(m))) => inbox.on_message(m),
            Ok(Some(Decoded::Response(r))) => inbox.on_response(r),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("sharded redis adapter: ignoring malformed message: {e}");
                bump(&self.driver.counters().malformed);
            }
        }
    }
}

impl Transport for ShardedTransport {
    fn new_id() -> String {
        wire::hex_id()
    }

    fn subscribe(&self, inbox: Weak<dyn Inbox>) {
        let _ = self.ns.inbox.set(inbox);
        let me = self.ns.subscriber();
        // The response channel first: once the namespace channel counts this node (SHARDNUMSUB),
        // answers to its requests reach it.
        let channels = vec![self.ns.response.clone(), self.ns.channel.clone()];
        self.ns.driver.subscribe(&me, channels);
    }

    fn unsubscribe(&self) {
        self.ns.driver.unsubscribe(self.ns.channel.clone());
        self.ns.driver.unsubscribe(self.ns.response.clone());
        let rooms: Vec<Room> = self.ns.dynamic.lock().drain().collect();
        for r in rooms {
            self.ns.driver.unsubscribe(self.ns.dynamic_channel(&r));
        }
    }

    fn publish_nowait(&self, msg: &Message) {
        self.ns.driver.send_nowait(self.ns.encode(msg));
    }

    fn publish(&self, msg: &Message) -> BoxFuture<Result<Offset, Unavailable>> {
        self.ns.driver.send(self.ns.encode(msg))
    }

    fn publish_response(&self, requester: Option<&str>, response: &Response) {
        // A sender without id cannot be answered.
        let Some(requester) = requester else { return };
        if let Some(payload) = cluster_wire::encode_response(response, &self.ns.uid, &self.ns.nsp) {
            self.ns
                .driver
                .publish_nowait(format!("{}{requester}#", self.ns.channel), payload);
        }
    }

    fn server_count(&self) -> BoxFuture<Result<usize, Unavailable>> {
        let (driver, channel) = (self.ns.driver.clone(), self.ns.channel.clone());
        Box::pin(async move { driver.shard_numsub(&channel).await })
    }

    /// `shouldUseASeparateNamespace`, for the rooms whose broadcasts publishers send to their channel.
    fn room_created(&self, room: &Room, private: bool) {
        let own = match self.ns.mode {
            SubscriptionMode::Static => false,
            SubscriptionMode::DynamicPrivate => true,
            // Publishers pick the room's channel for any room that is not 20 characters long.
            SubscriptionMode::Dynamic => !private || !looks_like_a_socket_id(room),
        };
        if own && self.ns.dynamic.lock().insert(room.clone()) {
            let me = self.ns.subscriber();
            self.ns
                .driver
                .subscribe(&me, vec![self.ns.dynamic_channel(room)]);
        }
    }

    fn room_deleted(&self, room: &Room) {
        if self.ns.dynamic.lock().remove(room) {
            self.ns.driver.unsubscribe(self.ns.dynamic_channel(room));
        }
    }
}
