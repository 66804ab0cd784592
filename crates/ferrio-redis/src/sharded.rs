//! The sharded Redis adapter, byte-compatible with `createShardedAdapter` of `@socket.io/redis-adapter`
//! 8.3.x (Redis ≥ 7, sharded Pub/Sub: SSUBSCRIBE / SPUBLISH), for a Redis Cluster.
//!
//! Channels of namespace `nsp` with prefix `p`: `p#nsp#` (every message), `p#nsp#<uid>#` (responses to
//! this server) and, in the dynamic modes, `p#nsp#<room>#` for each room that has sockets here. Messages
//! are those of socket.io-adapter's `ClusterAdapter` (`{type, data, uid, nsp}`, types 1–13), in JSON, or
//! MessagePack when the data of a BROADCAST, BROADCAST_ACK, FETCH_SOCKETS_RESPONSE, SERVER_SIDE_EMIT or
//! SERVER_SIDE_EMIT_RESPONSE holds binary. Like the official adapter there are no heartbeats: the number
//! of servers is `PUBSUB SHARDNUMSUB p#nsp#` summed over the primaries.
//!
//! ```no_run
//! # async fn run() -> Result<(), ferrio_redis::RedisAdapterError> {
//! let redis = ferrio_redis::ShardedRedisAdapterHandle::connect(
//!     ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"],
//!     ferrio_redis::ShardedConfig::default(),
//! )
//! .await?;
//! let io = ferrio::Io::new(ferrio::IoConfig {
//!     adapter: redis.factory(),
//!     ..Default::default()
//! });
//! # let _ = io; Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::adapter::{
    AckEvent, AckSink, Adapter, AdapterError, AdapterFactory, BroadcastOptions, LocalNamespace,
    MemoryAdapter, Room, Sid, SocketInfo,
};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;
use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::conn::bump;
use crate::sharded_conn::ShardedDriver;
use crate::{Metrics, RedisAdapterError, wire};

/// ClusterAdapter message types (socket.io-adapter 2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum MessageType {
    InitialHeartbeat = 1,
    Heartbeat = 2,
    Broadcast = 3,
    SocketsJoin = 4,
    SocketsLeave = 5,
    DisconnectSockets = 6,
    FetchSockets = 7,
    FetchSocketsResponse = 8,
    ServerSideEmit = 9,
    ServerSideEmitResponse = 10,
    BroadcastClientCount = 11,
    BroadcastAck = 12,
    AdapterClose = 13,
}

impl MessageType {
    fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::InitialHeartbeat,
            2 => Self::Heartbeat,
            3 => Self::Broadcast,
            4 => Self::SocketsJoin,
            5 => Self::SocketsLeave,
            6 => Self::DisconnectSockets,
            7 => Self::FetchSockets,
            8 => Self::FetchSocketsResponse,
            9 => Self::ServerSideEmit,
            10 => Self::ServerSideEmitResponse,
            11 => Self::BroadcastClientCount,
            12 => Self::BroadcastAck,
            13 => Self::AdapterClose,
            _ => return None,
        })
    }

    /// The types whose data may hold binary (MessagePack then), as the official `encode` lists them.
    fn may_contain_binary(self) -> bool {
        matches!(
            self,
            Self::Broadcast
                | Self::BroadcastAck
                | Self::FetchSocketsResponse
                | Self::ServerSideEmit
                | Self::ServerSideEmitResponse
        )
    }
}

/// Which rooms get a channel of their own (`subscriptionMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionMode {
    /// Only the namespace channel (and the response channel): every server gets every broadcast.
    Static,
    /// A channel per public room (the default); a broadcast to one room whose name is not 20 characters
    /// long (a socket id of the official server) goes to the room's channel. ferrio's socket ids are 22
    /// characters long, so in this mode a ferrio server also listens to the channel of each of its
    /// sockets' own rooms (where any server, Node or ferrio, sends `to(socket_id)`).
    #[default]
    Dynamic,
    /// A channel per room, private rooms (socket ids) included.
    DynamicPrivate,
}

/// Options of the sharded adapter, named and defaulted as `createShardedAdapter` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedConfig {
    /// Channel prefix (`socket.io`).
    pub channel_prefix: String,
    /// Which rooms get a channel of their own (`dynamic`).
    pub subscription_mode: SubscriptionMode,
    /// How long `fetch_sockets` and `server_side_emit` with acks wait for other servers (5 s).
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

/// The cluster connection of one server; its [`factory`](Self::factory) makes the adapter of each
/// namespace. Call [`close`](Self::close) to stop it.
#[derive(Clone)]
pub struct ShardedRedisAdapterHandle {
    driver: Arc<ShardedDriver>,
    config: Arc<ShardedConfig>,
}

impl std::fmt::Debug for ShardedRedisAdapterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedRedisAdapterHandle")
            .field("config", &self.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl ShardedRedisAdapterHandle {
    /// Connects to the Redis Cluster reachable at `urls` (one seed node is enough), waiting up to 5 s.
    pub async fn connect(
        urls: impl NodeUrls,
        config: ShardedConfig,
    ) -> Result<ShardedRedisAdapterHandle, RedisAdapterError> {
        let driver = ShardedDriver::connect(urls.into_urls(), Duration::from_secs(5)).await?;
        Ok(ShardedRedisAdapterHandle {
            driver,
            config: Arc::new(config),
        })
    }

    /// The adapter factory for `IoConfig::adapter`.
    pub fn factory(&self) -> AdapterFactory {
        let driver = self.driver.clone();
        let config = self.config.clone();
        Arc::new(move |ns| {
            Arc::new(ShardedRedisAdapter::new(ns, driver.clone(), config.clone()))
                as Arc<dyn Adapter>
        })
    }

    /// Whether the last publishes went through.
    pub fn is_connected(&self) -> bool {
        self.driver.is_connected()
    }

    /// The counters (all namespaces).
    pub fn metrics(&self) -> Metrics {
        self.driver.counters.snapshot()
    }

    /// Stops publishing and routing messages.
    pub fn close(&self) {
        self.driver.shutdown();
    }
}

struct Names {
    /// `p#nsp#`.
    channel: String,
    /// `p#nsp#<uid>#`.
    response: String,
}

struct RoomState {
    sockets: usize,
    /// Whether the room has a channel of its own (subscribed).
    dynamic: bool,
}

enum Pending {
    Fetch {
        expected: usize,
        current: usize,
        sockets: Vec<SocketInfo>,
        done: Option<oneshot::Sender<()>>,
    },
    ServerSideEmit {
        expected: usize,
        current: usize,
        sink: AckSink,
    },
}

struct AckPending {
    sink: AckSink,
    expected: Option<usize>,
    counts: usize,
    complete: bool,
}

impl AckPending {
    fn maybe_complete(&mut self) {
        if !self.complete && self.expected.is_some_and(|e| self.counts >= e) {
            self.complete = true;
            let _ = self.sink.send(AckEvent::CountsComplete);
        }
    }
}

pub(crate) struct ShardedInner {
    ns: Weak<dyn LocalNamespace>,
    local: MemoryAdapter,
    driver: Arc<ShardedDriver>,
    config: Arc<ShardedConfig>,
    uid: String,
    names: OnceLock<Names>,
    rooms: Mutex<HashMap<Room, RoomState>>,
    requests: Mutex<HashMap<String, Pending>>,
    ack_requests: Mutex<HashMap<String, AckPending>>,
    me: Weak<ShardedInner>,
    closed: AtomicBool,
}

/// The sharded Redis adapter of one namespace.
pub struct ShardedRedisAdapter {
    inner: Arc<ShardedInner>,
}

impl std::fmt::Debug for ShardedRedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedRedisAdapter")
            .field("uid", &self.inner.uid)
            .field("local", &self.inner.local)
            .finish()
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<T> {
    Box::pin(async move { v })
}

/// What `looksLikeASocketId` checks: 20 UTF-16 code units.
fn looks_like_a_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == 20
}

fn strings(rooms: &HashSet<Room>) -> Value {
    Value::Array(rooms.iter().map(|r| Value::String(r.to_string())).collect())
}

impl ShardedRedisAdapter {
    pub(crate) fn new(
        ns: Weak<dyn LocalNamespace>,
        driver: Arc<ShardedDriver>,
        config: Arc<ShardedConfig>,
    ) -> Self {
        let inner = Arc::new_cyclic(|me| ShardedInner {
            local: MemoryAdapter::new(ns.clone()),
            ns,
            driver,
            config,
            uid: wire::hex_id(),
            names: OnceLock::new(),
            rooms: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
            me: me.clone(),
            closed: AtomicBool::new(false),
        });
        ShardedRedisAdapter { inner }
    }

    /// This namespace's server id on the wire (16 hex digits).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }
}

impl ShardedInner {
    fn ns(&self) -> Result<Arc<dyn LocalNamespace>, AdapterError> {
        self.ns.upgrade().ok_or(AdapterError::Closed)
    }

    fn ensure_init(&self) -> Option<&Names> {
        if let Some(n) = self.names.get() {
            return Some(n);
        }
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let ns = self.ns.upgrade()?;
        let me = self.me.upgrade()?;
        let channel = format!("{}#{}#", self.config.channel_prefix, ns.name());
        let names = Names {
            response: format!("{channel}{}#", self.uid),
            channel,
        };
        if self.names.set(names).is_ok() {
            let n = self.names.get()?;
            self.driver.subscribe(&me, n.channel.clone());
            self.driver.subscribe(&me, n.response.clone());
            // Rooms created before the name could be read.
            let dynamic: Vec<Room> = self
                .rooms
                .lock()
                .iter()
                .filter(|(_, s)| s.dynamic)
                .map(|(r, _)| r.clone())
                .collect();
            for r in dynamic {
                self.driver.subscribe(&me, format!("{}{r}#", n.channel));
            }
        }
        self.names.get()
    }

    fn dynamic_channel(&self, room: &str) -> Option<String> {
        self.names.get().map(|n| format!("{}{room}#", n.channel))
    }

    fn malformed(&self, what: &str) {
        tracing::debug!("sharded redis adapter: ignoring malformed message: {what}");
        bump(&self.driver.counters.malformed);
    }

    // ---- local rooms, tracking when a room appears and disappears ("create-room" / "delete-room")

    /// Whether a room gets a channel of its own (`shouldUseASeparateNamespace`).
    fn separate_channel(&self, room: &Room, sid: &Sid) -> bool {
        match self.config.subscription_mode {
            SubscriptionMode::Static => false,
            SubscriptionMode::DynamicPrivate => true,
            SubscriptionMode::Dynamic => {
                let is_socket_id = room == sid || !self.local.socket_rooms(room).is_empty();
                // Publishers pick the room's channel for any room that is not 20 characters long
                // (`looksLikeASocketId`): ferrio's socket ids (22 characters) must be listened to there.
                !is_socket_id || !looks_like_a_socket_id(room)
            }
        }
    }

    fn add_all(&self, sid: &Sid, rooms: &[Room]) {
        let _ = self.ensure_init();
        let mut created = Vec::new();
        {
            let mut map = self.rooms.lock();
            let before: HashSet<Room> = self.local.socket_rooms(sid).into_iter().collect();
            self.local.add_all(sid, rooms);
            let mut seen = HashSet::new();
            for r in rooms {
                if before.contains(r) || !seen.insert(r.clone()) {
                    continue;
                }
                match map.get_mut(r) {
                    Some(s) => s.sockets += 1,
                    None => {
                        let dynamic = self.separate_channel(r, sid);
                        map.insert(
                            r.clone(),
                            RoomState {
                                sockets: 1,
                                dynamic,
                            },
                        );
                        if dynamic {
                            created.push(r.clone());
                        }
                    }
                }
            }
        }
        if let Some(me) = self.me.upgrade() {
            for r in created {
                if let Some(c) = self.dynamic_channel(&r) {
                    self.driver.subscribe(&me, c);
                }
            }
        }
    }

    fn forget(&self, map: &mut HashMap<Room, RoomState>, room: &Room, deleted: &mut Vec<Room>) {
        if let Some(s) = map.get_mut(room) {
            s.sockets = s.sockets.saturating_sub(1);
            if s.sockets == 0 && map.remove(room).is_some_and(|s| s.dynamic) {
                deleted.push(room.clone());
            }
        }
    }

    fn unsubscribe_rooms(&self, deleted: Vec<Room>) {
        for r in deleted {
            if let Some(c) = self.dynamic_channel(&r) {
                self.driver.unsubscribe(c);
            }
        }
    }

    fn del(&self, sid: &Sid, room: &Room) {
        let mut deleted = Vec::new();
        {
            let mut map = self.rooms.lock();
            let member = self.local.socket_rooms(sid).contains(room);
            self.local.del(sid, room);
            if member {
                self.forget(&mut map, room, &mut deleted);
            }
        }
        self.unsubscribe_rooms(deleted);
    }

    fn del_all(&self, sid: &Sid) {
        let mut deleted = Vec::new();
        {
            let mut map = self.rooms.lock();
            let rooms = self.local.socket_rooms(sid);
            self.local.del_all(sid);
            for r in &rooms {
                self.forget(&mut map, r, &mut deleted);
            }
        }
        self.unsubscribe_rooms(deleted);
    }

    fn local_add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for sid in self.local.sockets(opts) {
            self.add_all(&sid, rooms);
        }
    }

    fn local_del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for sid in self.local.sockets(opts) {
            for r in rooms {
                self.del(&sid, r);
            }
        }
    }

    fn local_disconnect(&self, opts: &BroadcastOptions, close: bool) {
        let Ok(ns) = self.ns() else { return };
        for sid in self.local.sockets(opts) {
            ns.disconnect(&sid, close);
        }
    }

    // ---- publishing

    /// `{type, data, uid, nsp}`: MessagePack when the type may carry binary and does, JSON otherwise.
    fn encode(&self, ty: MessageType, data: Option<Value>) -> Option<Vec<u8>> {
        let ns = self.ns.upgrade()?;
        let has_binary = data.as_ref().is_some_and(wire::has_binary);
        let binary = ty.may_contain_binary() && has_binary;
        let mut pairs = vec![("type", Value::from(ty as u64))];
        if let Some(d) = data {
            pairs.push(("data", d));
        }
        pairs.push(("uid", Value::String(self.uid.clone())));
        pairs.push(("nsp", Value::String(ns.name().to_owned())));
        let msg = wire::object(pairs);
        Some(if binary {
            crate::msgpack::encode(&msg)
        } else if has_binary {
            // `JSON.stringify` of a Buffer.
            wire::to_node_json(&msg).to_string().into_bytes()
        } else {
            // Keys in insertion order, as `JSON.stringify` writes them.
            msg.to_json().0.into_bytes()
        })
    }

    fn publish_response(&self, requester: &str, ty: MessageType, data: Value) {
        let Some(names) = self.names.get() else {
            return;
        };
        if let Some(payload) = self.encode(ty, Some(data)) {
            self.driver
                .publish_nowait(format!("{}{requester}#", names.channel), payload);
        }
    }

    async fn server_count(&self) -> usize {
        let Some(names) = self.ensure_init() else {
            return 1;
        };
        self.driver.shard_numsub(&names.channel).await.unwrap_or(1)
    }

    fn local_broadcast_with_ack(
        &self,
        ns: &Arc<dyn LocalNamespace>,
        mut packet: Packet,
        opts: &BroadcastOptions,
        sink: &AckSink,
    ) -> usize {
        let ack_id = ns.next_ack_id();
        if let Packet::Event { id, .. } = &mut packet {
            *id = Some(ack_id);
        }
        let encoded = ns.encode(&packet);
        let mut count = 0;
        for sid in self.local.sockets(opts) {
            if ns.deliver_with_ack(&sid, &encoded, ack_id, sink) {
                count += 1;
            }
        }
        count
    }

    // ---- receiving

    /// A message on one of this namespace's channels.
    pub(crate) fn on_raw(&self, channel: &str, payload: &[u8]) {
        let Some(names) = self.names.get() else {
            return;
        };
        let msg = match wire::decode_request(payload) {
            Ok(m) => m,
            Err(e) => return self.malformed(&e),
        };
        if !matches!(msg, Value::Object(_)) {
            return self.malformed("message is not an object");
        }
        if channel == names.response {
            self.on_response(&msg);
        } else {
            self.on_message(&msg);
        }
    }

    fn on_message(&self, msg: &Value) {
        if msg.get("uid").and_then(Value::as_str) == Some(self.uid.as_str()) {
            return;
        }
        let Ok(ns) = self.ns() else { return };
        if msg.get("nsp").and_then(Value::as_str) != Some(ns.name()) {
            return;
        }
        let Some(ty) = msg
            .get("type")
            .and_then(Value::as_u64)
            .and_then(MessageType::from_u64)
        else {
            return self.malformed("unknown message type");
        };
        let from = msg.get("uid").and_then(Value::as_str).unwrap_or_default();
        let empty = Value::Null;
        let data = msg.get("data").unwrap_or(&empty);
        let opts = || data.get("opts").and_then(wire::opts_from_value);
        let request_id = data.get("requestId").and_then(Value::as_str);
        match ty {
            // The sharded adapter has no heartbeats (ClusterAdapter without them ignores these).
            MessageType::InitialHeartbeat | MessageType::Heartbeat | MessageType::AdapterClose => {}
            MessageType::Broadcast => {
                let Some(packet) = data.get("packet") else {
                    return self.malformed("BROADCAST without packet");
                };
                let mut packet = match wire::packet_from_value(packet) {
                    Ok(p) => p,
                    Err(e) => return self.malformed(e),
                };
                let Some(mut opts) = opts() else {
                    return self.malformed("BROADCAST options");
                };
                match request_id {
                    None => {
                        opts.flags.local = true;
                        let _ = self.local.broadcast(packet, opts).now_or_never();
                    }
                    Some(rid) => {
                        if let Packet::Event { nsp, .. } = &mut packet {
                            *nsp = ns.name().to_owned();
                        }
                        self.remote_broadcast_with_ack(&ns, packet, &opts, rid, from);
                    }
                }
            }
            MessageType::SocketsJoin | MessageType::SocketsLeave => {
                let Some(opts) = opts() else {
                    return self.malformed("options");
                };
                let rooms = wire::rooms_vec(data.get("rooms"));
                if ty == MessageType::SocketsJoin {
                    self.local_add_sockets(&opts, &rooms);
                } else {
                    self.local_del_sockets(&opts, &rooms);
                }
            }
            MessageType::DisconnectSockets => {
                let Some(opts) = opts() else {
                    return self.malformed("options");
                };
                let close = data.get("close").and_then(Value::as_bool).unwrap_or(false);
                self.local_disconnect(&opts, close);
            }
            MessageType::FetchSockets => {
                let (Some(opts), Some(rid)) = (opts(), request_id) else {
                    return self.malformed("FETCH_SOCKETS");
                };
                let sockets: Vec<Value> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .filter_map(|sid| ns.socket_info(sid))
                    .map(|info| wire::socket_info_to_value(&info))
                    .collect();
                self.publish_response(
                    from,
                    MessageType::FetchSocketsResponse,
                    wire::object(vec![
                        ("requestId", Value::String(rid.to_owned())),
                        ("sockets", Value::Array(sockets)),
                    ]),
                );
            }
            MessageType::ServerSideEmit => {
                let Some(mut packet) = data.get("packet").and_then(Value::as_array).cloned() else {
                    return self.malformed("SERVER_SIDE_EMIT without packet");
                };
                if packet.is_empty() {
                    return self.malformed("SERVER_SIDE_EMIT without event");
                }
                let event = match packet.remove(0) {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    _ => return self.malformed("SERVER_SIDE_EMIT event name"),
                };
                let Some(rid) = request_id.map(str::to_owned) else {
                    ns.on_server_side_emit(event, packet, None);
                    return;
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                ns.on_server_side_emit(event, packet, Some(tx));
                let Some(me) = self.me.upgrade() else { return };
                let from = from.to_owned();
                let timeout = self.config.requests_timeout;
                tokio::spawn(async move {
                    let first = tokio::time::timeout(timeout, async {
                        while let Some(ev) = rx.recv().await {
                            if let AckEvent::Response(args) = ev {
                                return Some(args);
                            }
                        }
                        None
                    })
                    .await;
                    // Only one argument is expected (the first).
                    if let Ok(Some(args)) = first {
                        let mut data = vec![("requestId", Value::String(rid))];
                        data.push(("packet", args.into_iter().next().unwrap_or(Value::Null)));
                        me.publish_response(
                            &from,
                            MessageType::ServerSideEmitResponse,
                            wire::object(data),
                        );
                    }
                });
            }
            MessageType::FetchSocketsResponse
            | MessageType::ServerSideEmitResponse
            | MessageType::BroadcastClientCount
            | MessageType::BroadcastAck => self.on_response(msg),
        }
    }

    /// A BROADCAST with a `requestId` from another server: deliver, report the client count, forward
    /// each ack.
    fn remote_broadcast_with_ack(
        &self,
        ns: &Arc<dyn LocalNamespace>,
        packet: Packet,
        opts: &BroadcastOptions,
        rid: &str,
        from: &str,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let count = self.local_broadcast_with_ack(ns, packet, opts, &tx);
        drop(tx);
        self.publish_response(
            from,
            MessageType::BroadcastClientCount,
            wire::object(vec![
                ("requestId", Value::String(rid.to_owned())),
                ("clientCount", Value::from(count as u64)),
            ]),
        );
        if count == 0 {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        let (rid, from) = (rid.to_owned(), from.to_owned());
        let deadline =
            opts.flags.timeout.unwrap_or(self.config.requests_timeout) + Duration::from_secs(1);
        tokio::spawn(async move {
            let forward = async {
                let mut got = 0;
                while let Some(ev) = rx.recv().await {
                    if let AckEvent::Response(args) = ev {
                        me.publish_response(
                            &from,
                            MessageType::BroadcastAck,
                            wire::object(vec![
                                ("requestId", Value::String(rid.clone())),
                                ("packet", args.into_iter().next().unwrap_or(Value::Null)),
                            ]),
                        );
                        got += 1;
                        if got >= count {
                            return;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(deadline, forward).await;
        });
    }

    fn on_response(&self, msg: &Value) {
        let Some(ty) = msg
            .get("type")
            .and_then(Value::as_u64)
            .and_then(MessageType::from_u64)
        else {
            return self.malformed("unknown response type");
        };
        let empty = Value::Null;
        let data = msg.get("data").unwrap_or(&empty);
        let Some(rid) = data.get("requestId").and_then(Value::as_str) else {
            return self.malformed("response without requestId");
        };
        match ty {
            MessageType::BroadcastClientCount | MessageType::BroadcastAck => {
                let mut acks = self.ack_requests.lock();
                let Some(pending) = acks.get_mut(rid) else {
                    return;
                };
                if ty == MessageType::BroadcastClientCount {
                    let n = data.get("clientCount").and_then(Value::as_u64).unwrap_or(0);
                    let _ = pending.sink.send(AckEvent::ClientCount(n as usize));
                    pending.counts += 1;
                    pending.maybe_complete();
                } else {
                    let packet = data.get("packet").cloned().unwrap_or(Value::Null);
                    let _ = pending.sink.send(AckEvent::Response(vec![packet]));
                }
            }
            MessageType::FetchSocketsResponse | MessageType::ServerSideEmitResponse => {
                let mut requests = self.requests.lock();
                let Some(pending) = requests.get_mut(rid) else {
                    return;
                };
                let finished = match pending {
                    Pending::Fetch {
                        expected,
                        current,
                        sockets,
                        done,
                    } => {
                        *current += 1;
                        if let Some(list) = data.get("sockets").and_then(Value::as_array) {
                            for s in list {
                                match wire::socket_info_from(s) {
                                    Some(info) => sockets.push(info),
                                    None => bump(&self.driver.counters.malformed),
                                }
                            }
                        }
                        if *current >= *expected
                            && let Some(d) = done.take()
                        {
                            let _ = d.send(());
                        }
                        false
                    }
                    Pending::ServerSideEmit {
                        expected,
                        current,
                        sink,
                    } => {
                        let packet = data.get("packet").cloned().unwrap_or(Value::Null);
                        let _ = sink.send(AckEvent::Response(vec![packet]));
                        *current += 1;
                        *current >= *expected
                    }
                };
                if finished {
                    requests.remove(rid);
                }
            }
            _ => self.malformed("request type on the response channel"),
        }
    }

    /// Publishes a SOCKETS_JOIN / SOCKETS_LEAVE / DISCONNECT_SOCKETS (waiting until Redis took it).
    async fn publish_op(&self, ty: MessageType, data: Value) {
        let (Some(names), Some(payload)) = (self.ensure_init(), self.encode(ty, Some(data))) else {
            return;
        };
        let _ = self.driver.publish(names.channel.clone(), payload).await;
    }
}

fn opts_without_flags(opts: &BroadcastOptions) -> Value {
    wire::object(vec![
        ("rooms", strings(&opts.rooms)),
        ("except", strings(&opts.except)),
        ("flags", wire::object(vec![])),
    ])
}

impl Adapter for ShardedRedisAdapter {
    fn init(&self) {
        let _ = self.inner.ensure_init();
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn add_all(&self, sid: &Sid, rooms: &[Room]) {
        self.inner.add_all(sid, rooms)
    }

    fn del(&self, sid: &Sid, room: &Room) {
        self.inner.del(sid, room)
    }

    fn del_all(&self, sid: &Sid) {
        self.inner.del_all(sid)
    }

    fn socket_rooms(&self, sid: &Sid) -> Vec<Room> {
        self.inner.local.socket_rooms(sid)
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.inner.local.sockets(opts)
    }

    /// Like the official ClusterAdapter: the rooms of this server only.
    fn all_rooms(&self, _local: bool) -> BoxFuture<Result<HashSet<Room>, AdapterError>> {
        self.inner.local.all_rooms(true)
    }

    fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let inner = &self.inner;
        if !opts.flags.local
            && let Some(names) = inner.ensure_init()
        {
            let data = wire::object(vec![
                ("packet", wire::packet_to_value(&packet)),
                ("opts", wire::opts_to_value(&opts)),
            ]);
            // `computeChannel`: one room, and the mode gives it a channel of its own.
            let single = (opts.rooms.len() == 1)
                .then(|| opts.rooms.iter().next())
                .flatten();
            let channel = match (single, inner.config.subscription_mode) {
                (Some(room), SubscriptionMode::Dynamic) if !looks_like_a_socket_id(room) => {
                    format!("{}{room}#", names.channel)
                }
                (Some(room), SubscriptionMode::DynamicPrivate) => {
                    format!("{}{room}#", names.channel)
                }
                _ => names.channel.clone(),
            };
            if let Some(payload) = inner.encode(MessageType::Broadcast, Some(data)) {
                inner.driver.publish_nowait(channel, payload);
            }
        }
        inner.local.broadcast(packet, opts)
    }

    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        sink: AckSink,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let inner = self.inner.clone();
        let ns = match inner.ns() {
            Ok(ns) => ns,
            Err(e) => return ready(Err(e)),
        };
        let channel = if opts.flags.local {
            None
        } else {
            inner.ensure_init().map(|n| n.channel.clone())
        };
        let Some(channel) = channel else {
            let count = inner.local_broadcast_with_ack(&ns, packet, &opts, &sink);
            let _ = sink.send(AckEvent::ClientCount(count));
            let _ = sink.send(AckEvent::CountsComplete);
            return ready(Ok(()));
        };
        let rid = wire::hex_id();
        inner.ack_requests.lock().insert(
            rid.clone(),
            AckPending {
                sink: sink.clone(),
                expected: None,
                counts: 0,
                complete: false,
            },
        );
        // Never a room channel: the number of servers counts them all.
        let data = wire::object(vec![
            ("packet", wire::packet_to_value(&packet)),
            ("requestId", Value::String(rid.clone())),
            ("opts", wire::opts_to_value(&opts)),
        ]);
        if let Some(payload) = inner.encode(MessageType::Broadcast, Some(data)) {
            inner.driver.publish_nowait(channel, payload);
        }
        let count = inner.local_broadcast_with_ack(&ns, packet, &opts, &sink);
        let _ = sink.send(AckEvent::ClientCount(count));
        let timeout = opts.flags.timeout.unwrap_or(inner.config.requests_timeout);
        tokio::spawn(async move {
            let others = inner.server_count().await.saturating_sub(1);
            if let Some(p) = inner.ack_requests.lock().get_mut(&rid) {
                p.expected = Some(others);
                p.maybe_complete();
            }
            tokio::time::sleep(timeout + Duration::from_secs(1)).await;
            inner.ack_requests.lock().remove(&rid);
        });
        ready(Ok(()))
    }

    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>> {
        let mine = match self.inner.local.fetch_sockets(opts.clone()).now_or_never() {
            Some(Ok(s)) => s,
            Some(Err(e)) => return ready(Err(e)),
            None => Vec::new(),
        };
        if opts.flags.local {
            return ready(Ok(mine));
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let expected = inner.server_count().await.saturating_sub(1);
            let Some(names) = inner.ensure_init() else {
                return Ok(mine);
            };
            if expected == 0 {
                return Ok(mine);
            }
            let rid = wire::hex_id();
            let (tx, rx) = oneshot::channel();
            inner.requests.lock().insert(
                rid.clone(),
                Pending::Fetch {
                    expected,
                    current: 0,
                    sockets: mine,
                    done: Some(tx),
                },
            );
            let data = wire::object(vec![
                ("opts", opts_without_flags(&opts)),
                ("requestId", Value::String(rid.clone())),
            ]);
            let published = match inner.encode(MessageType::FetchSockets, Some(data)) {
                Some(p) => inner.driver.publish(names.channel.clone(), p).await.is_ok(),
                None => false,
            };
            if published {
                let timeout = opts.flags.timeout.unwrap_or(inner.config.requests_timeout);
                let _ = tokio::time::timeout(timeout, rx).await;
            }
            // Complete or timed out: what arrived.
            match inner.requests.lock().remove(&rid) {
                Some(Pending::Fetch { sockets, .. }) => Ok(sockets),
                _ => Ok(Vec::new()),
            }
        })
    }

    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            if !opts.flags.local {
                let data = wire::object(vec![
                    ("opts", opts_without_flags(&opts)),
                    (
                        "rooms",
                        Value::Array(rooms.iter().map(|r| Value::String(r.to_string())).collect()),
                    ),
                ]);
                inner.publish_op(MessageType::SocketsJoin, data).await;
            }
            inner.local_add_sockets(&opts, &rooms);
            Ok(())
        })
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            if !opts.flags.local {
                let data = wire::object(vec![
                    ("opts", opts_without_flags(&opts)),
                    (
                        "rooms",
                        Value::Array(rooms.iter().map(|r| Value::String(r.to_string())).collect()),
                    ),
                ]);
                inner.publish_op(MessageType::SocketsLeave, data).await;
            }
            inner.local_del_sockets(&opts, &rooms);
            Ok(())
        })
    }

    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            if !opts.flags.local {
                let data = wire::object(vec![
                    ("opts", opts_without_flags(&opts)),
                    ("close", Value::Bool(close)),
                ]);
                inner.publish_op(MessageType::DisconnectSockets, data).await;
            }
            inner.local_disconnect(&opts, close);
            Ok(())
        })
    }

    fn server_side_emit(
        &self,
        event: String,
        args: Vec<Value>,
        sink: Option<AckSink>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let inner = self.inner.clone();
        let mut packet = vec![Value::String(event)];
        packet.extend(args);
        let Some(sink) = sink else {
            if let Some(names) = inner.ensure_init() {
                let data = wire::object(vec![("packet", Value::Array(packet))]);
                if let Some(p) = inner.encode(MessageType::ServerSideEmit, Some(data)) {
                    inner.driver.publish_nowait(names.channel.clone(), p);
                }
            }
            return ready(Ok(()));
        };
        Box::pin(async move {
            let expected = inner.server_count().await.saturating_sub(1);
            let names = inner.ensure_init();
            let (Some(names), true) = (names, expected > 0) else {
                let _ = sink.send(AckEvent::ClientCount(0));
                let _ = sink.send(AckEvent::CountsComplete);
                return Ok(());
            };
            let rid = wire::hex_id();
            inner.requests.lock().insert(
                rid.clone(),
                Pending::ServerSideEmit {
                    expected,
                    current: 0,
                    sink: sink.clone(),
                },
            );
            let data = wire::object(vec![
                ("requestId", Value::String(rid.clone())),
                ("packet", Value::Array(packet)),
            ]);
            let published = match inner.encode(MessageType::ServerSideEmit, Some(data)) {
                Some(p) => inner.driver.publish(names.channel.clone(), p).await.is_ok(),
                None => false,
            };
            if !published {
                inner.requests.lock().remove(&rid);
                let _ = sink.send(AckEvent::ClientCount(0));
                let _ = sink.send(AckEvent::CountsComplete);
                return Ok(());
            }
            let _ = sink.send(AckEvent::ClientCount(expected));
            let _ = sink.send(AckEvent::CountsComplete);
            drop(sink);
            let timeout = inner.config.requests_timeout;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                inner.requests.lock().remove(&rid);
            });
            Ok(())
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.server_count().await.max(1) })
    }

    fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Relaxed);
        if let Some(n) = inner.names.get() {
            inner.driver.unsubscribe(n.channel.clone());
            inner.driver.unsubscribe(n.response.clone());
            let dynamic: Vec<Room> = inner
                .rooms
                .lock()
                .iter()
                .filter(|(_, s)| s.dynamic)
                .map(|(r, _)| r.clone())
                .collect();
            inner.unsubscribe_rooms(dynamic);
        }
    }
}
