//! The adapter of one namespace: local rooms in a [`MemoryAdapter`], everything that concerns other
//! nodes over Redis in the format of `@socket.io/redis-adapter` 8.x.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::adapter::{
    AckEvent, AckSink, Adapter, AdapterError, BroadcastOptions, LocalNamespace, MemoryAdapter,
    Room, Sid, SocketInfo,
};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;
use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::RedisAdapterConfig;
use crate::conn::{Driver, bump};
use crate::wire::{self, RequestType};

/// Channel names of one namespace.
pub(crate) struct Names {
    /// `key#nsp#`: broadcasts (and `key#nsp#room#`).
    pub(crate) channel: String,
    /// `key#nsp#*`.
    pattern: String,
    /// `key-request#nsp#`.
    pub(crate) request: String,
    /// `key-response#nsp#`.
    response: String,
    /// `key-response#nsp#uid#`.
    specific: String,
}

enum Pending {
    Fetch {
        num_sub: usize,
        msg_count: usize,
        sockets: Vec<SocketInfo>,
        done: Option<oneshot::Sender<()>>,
    },
    AllRooms {
        num_sub: usize,
        msg_count: usize,
        rooms: HashSet<Room>,
        done: Option<oneshot::Sender<()>>,
    },
    ServerSideEmit {
        num_sub: usize,
        received: usize,
        sink: AckSink,
    },
}

struct AckPending {
    sink: AckSink,
    /// Number of other nodes, once known.
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

pub(crate) struct Inner {
    ns: Weak<dyn LocalNamespace>,
    local: MemoryAdapter,
    driver: Arc<Driver>,
    config: Arc<RedisAdapterConfig>,
    pub(crate) uid: String,
    names: OnceLock<Names>,
    requests: Mutex<HashMap<String, Pending>>,
    ack_requests: Mutex<HashMap<String, AckPending>>,
    /// Our own join/leave/disconnect requests, resolved when they come back from Redis.
    echoes: Mutex<HashMap<String, oneshot::Sender<()>>>,
    me: Weak<Inner>,
    closed: AtomicBool,
}

/// The Redis adapter of one namespace.
pub struct RedisAdapter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.inner.uid)
            .field("local", &self.inner.local)
            .finish()
    }
}

impl RedisAdapter {
    pub(crate) fn new(
        ns: Weak<dyn LocalNamespace>,
        driver: Arc<Driver>,
        config: Arc<RedisAdapterConfig>,
    ) -> Self {
        let inner = Arc::new_cyclic(|me| Inner {
            local: MemoryAdapter::new(ns.clone()),
            ns,
            driver,
            config,
            uid: wire::uid(),
            names: OnceLock::new(),
            requests: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
            echoes: Mutex::new(HashMap::new()),
            me: me.clone(),
            closed: AtomicBool::new(false),
        });
        RedisAdapter { inner }
    }

    /// This namespace's server id on the wire (6 alphanumerics).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<T> {
    Box::pin(async move { v })
}

impl Inner {
    fn ns(&self) -> Result<Arc<dyn LocalNamespace>, AdapterError> {
        self.ns.upgrade().ok_or(AdapterError::Closed)
    }

    /// The channel names, subscribing on first call once the namespace's name can be read.
    pub(crate) fn ensure_init(&self) -> Option<&Names> {
        if let Some(n) = self.names.get() {
            return Some(n);
        }
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let ns = self.ns.upgrade()?;
        let me = self.me.upgrade()?;
        let name = ns.name();
        let key = &self.config.key;
        let response = format!("{key}-response#{name}#");
        let names = Names {
            channel: format!("{key}#{name}#"),
            pattern: format!("{key}#{name}#*"),
            request: format!("{key}-request#{name}#"),
            specific: format!("{response}{}#", self.uid),
            response,
        };
        if self.names.set(names).is_ok() {
            let n = self.names.get()?;
            self.driver.register(
                &me,
                &[n.request.clone(), n.response.clone(), n.specific.clone()],
                std::slice::from_ref(&n.pattern),
            );
        }
        self.names.get()
    }

    fn has_room(&self, room: &str) -> bool {
        let opts = BroadcastOptions {
            rooms: std::iter::once(Room::from(room)).collect(),
            ..Default::default()
        };
        !self.local.sockets(&opts).is_empty()
    }

    fn malformed(&self, what: &str) {
        tracing::debug!("redis adapter: ignoring malformed message: {what}");
        bump(&self.driver.counters.malformed);
    }

    async fn server_count(&self) -> usize {
        let Some(names) = self.ensure_init() else {
            return 1;
        };
        self.driver.numsub(names.request.clone()).await.unwrap_or(1)
    }

    fn publish_response(&self, requester_uid: Option<&str>, payload: Vec<u8>) {
        let Some(names) = self.names.get() else {
            return;
        };
        let channel = match requester_uid {
            Some(uid) if self.config.publish_on_specific_response_channel => {
                format!("{}{uid}#", names.response)
            }
            _ => names.response.clone(),
        };
        self.driver.publish_nowait(channel, payload);
    }

    /// Local delivery of a broadcast expecting acks; returns how many sockets got it.
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

    /// A message on `key#nsp#*`: a broadcast from another node.
    pub(crate) fn on_broadcast(&self, channel: &str, payload: &[u8]) {
        let Some(names) = self.names.get() else {
            return;
        };
        let Some(rest) = channel.strip_prefix(names.channel.as_str()) else {
            return;
        };
        let room = rest.strip_suffix('#').unwrap_or(rest);
        if !room.is_empty() && !self.has_room(room) {
            return;
        }
        let msg = match crate::msgpack::decode(payload) {
            Ok(m) => m,
            Err(e) => return self.malformed(&e.to_string()),
        };
        let Some([uid, packet, opts]) = msg.as_array().and_then(|a| a.get(..3)) else {
            return self.malformed("broadcast is not [uid, packet, opts]");
        };
        if uid.as_str() == Some(self.uid.as_str()) {
            return;
        }
        let Ok(ns) = self.ns() else { return };
        let packet = match wire::packet_from_value(packet) {
            Ok(p) => p,
            Err(e) => return self.malformed(e),
        };
        if packet.nsp() != ns.name() {
            return;
        }
        let Some(mut opts) = wire::opts_from_value(opts) else {
            return self.malformed("broadcast options");
        };
        opts.flags.local = true;
        let _ = self.local.broadcast(packet, opts).now_or_never();
    }

    /// A message on the request or response channels.
    pub(crate) fn on_request_channel(&self, channel: &str, payload: &[u8]) {
        let Some(names) = self.names.get() else {
            return;
        };
        let is_response = channel.starts_with(names.response.as_str());
        if !is_response && channel != names.request {
            return;
        }
        let msg = match wire::decode_request(payload) {
            Ok(m) => m,
            Err(e) => return self.malformed(&e),
        };
        if !matches!(msg, Value::Object(_)) {
            return self.malformed("request is not an object");
        }
        if is_response {
            self.on_response(msg);
        } else {
            self.on_request(msg);
        }
    }

    fn on_request(&self, req: Value) {
        let Some(ty) = req
            .get("type")
            .and_then(Value::as_u64)
            .and_then(RequestType::from_u64)
        else {
            return self.malformed("unknown request type");
        };
        let Ok(ns) = self.ns() else { return };
        let request_id = req.get("requestId").and_then(Value::as_str);
        let from = req.get("uid").and_then(Value::as_str);
        let own = from == Some(self.uid.as_str());
        match ty {
            RequestType::Sockets => {
                let Some(rid) = request_id else {
                    return self.malformed("SOCKETS without requestId");
                };
                if self.requests.lock().contains_key(rid) || own {
                    return;
                }
                let opts = BroadcastOptions {
                    rooms: wire::rooms_from(req.get("rooms")),
                    ..Default::default()
                };
                let ids: Vec<serde_json::Value> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .map(|s| serde_json::Value::String(s.to_string()))
                    .collect();
                let resp = serde_json::json!({ "requestId": rid, "sockets": ids });
                self.publish_response(from, resp.to_string().into_bytes());
            }
            RequestType::AllRooms => {
                let Some(rid) = request_id else {
                    return self.malformed("ALL_ROOMS without requestId");
                };
                if self.requests.lock().contains_key(rid) || own {
                    return;
                }
                let rooms: Vec<String> = self
                    .local
                    .all_rooms(true)
                    .now_or_never()
                    .and_then(Result::ok)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.to_string())
                    .collect();
                let resp = serde_json::json!({ "requestId": rid, "rooms": rooms });
                self.publish_response(from, resp.to_string().into_bytes());
            }
            RequestType::RemoteJoin | RequestType::RemoteLeave | RequestType::RemoteDisconnect => {
                if let Some(opts) = req.get("opts") {
                    let Some(opts) = wire::opts_from_value(opts) else {
                        return self.malformed("options");
                    };
                    match ty {
                        RequestType::RemoteJoin => {
                            let rooms = wire::rooms_vec(req.get("rooms"));
                            for sid in self.local.sockets(&opts) {
                                self.local.add_all(&sid, &rooms);
                            }
                        }
                        RequestType::RemoteLeave => {
                            let rooms = wire::rooms_vec(req.get("rooms"));
                            for sid in self.local.sockets(&opts) {
                                for r in &rooms {
                                    self.local.del(&sid, r);
                                }
                            }
                        }
                        _ => {
                            let close = req.get("close").and_then(Value::as_bool).unwrap_or(false);
                            for sid in self.local.sockets(&opts) {
                                ns.disconnect(&sid, close);
                            }
                        }
                    }
                    if own
                        && let Some(rid) = request_id
                        && let Some(tx) = self.echoes.lock().remove(rid)
                    {
                        let _ = tx.send(());
                    }
                    return;
                }
                // The 7.x form: one socket by id.
                let Some(sid) = req.get("sid").and_then(Value::as_str) else {
                    return self.malformed("join/leave/disconnect without opts nor sid");
                };
                if ns.socket_info(sid).is_none() {
                    return;
                }
                let sid: Sid = Sid::from(sid);
                match ty {
                    RequestType::RemoteJoin | RequestType::RemoteLeave => {
                        let Some(room) = wire::room_from(req.get("room")) else {
                            return self.malformed("room");
                        };
                        if ty == RequestType::RemoteJoin {
                            self.local.add_all(&sid, &[room]);
                        } else {
                            self.local.del(&sid, &room);
                        }
                    }
                    _ => {
                        let close = req.get("close").and_then(Value::as_bool).unwrap_or(false);
                        ns.disconnect(&sid, close);
                    }
                }
                let resp = serde_json::json!({ "requestId": request_id });
                self.publish_response(from, resp.to_string().into_bytes());
            }
            RequestType::RemoteFetch => {
                let Some(rid) = request_id else {
                    return self.malformed("REMOTE_FETCH without requestId");
                };
                if self.requests.lock().contains_key(rid) || own {
                    return;
                }
                let Some(opts) = req.get("opts").and_then(wire::opts_from_value) else {
                    return self.malformed("REMOTE_FETCH options");
                };
                let sockets: Vec<serde_json::Value> = self
                    .local
                    .sockets(&opts)
                    .iter()
                    .filter_map(|sid| ns.socket_info(sid))
                    .map(|info| wire::socket_info_to_json(&info))
                    .collect();
                let resp = serde_json::json!({ "requestId": rid, "sockets": sockets });
                self.publish_response(from, resp.to_string().into_bytes());
            }
            RequestType::ServerSideEmit => {
                if own {
                    return;
                }
                let Some(mut data) = req.get("data").and_then(Value::as_array).cloned() else {
                    return self.malformed("SERVER_SIDE_EMIT without data");
                };
                if data.is_empty() {
                    return self.malformed("SERVER_SIDE_EMIT without event");
                }
                let event = match data.remove(0) {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    _ => return self.malformed("SERVER_SIDE_EMIT event name"),
                };
                let Some(rid) = request_id.map(str::to_owned) else {
                    ns.on_server_side_emit(event, data, None);
                    return;
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                ns.on_server_side_emit(event, data, Some(tx));
                let (Some(me), Some(names)) = (self.me.upgrade(), self.names.get()) else {
                    return;
                };
                let channel = names.response.clone();
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
                    if let Ok(Some(args)) = first {
                        let data = args
                            .first()
                            .map(wire::to_node_json)
                            .unwrap_or(serde_json::Value::Null);
                        let resp = serde_json::json!({
                            "type": RequestType::ServerSideEmit as u8,
                            "requestId": rid,
                            "data": data,
                        });
                        // Like the official adapter: always the common response channel.
                        me.driver
                            .publish_nowait(channel, resp.to_string().into_bytes());
                    }
                });
            }
            RequestType::Broadcast => {
                let Some(rid) = request_id.map(str::to_owned) else {
                    return self.malformed("BROADCAST without requestId");
                };
                if own || self.ack_requests.lock().contains_key(&rid) {
                    return;
                }
                let Some(packet) = req.get("packet") else {
                    return self.malformed("BROADCAST without packet");
                };
                let mut packet = match wire::packet_from_value(packet) {
                    Ok(p) => p,
                    Err(e) => return self.malformed(e),
                };
                if let Packet::Event { nsp, .. } = &mut packet {
                    nsp.clone_from(&ns.name().to_owned());
                }
                let Some(raw_opts) = req.get("opts") else {
                    return self.malformed("BROADCAST without opts");
                };
                let Some(opts) = wire::opts_from_value(raw_opts) else {
                    return self.malformed("BROADCAST options");
                };
                let (tx, mut rx) = mpsc::unbounded_channel();
                let count = self.local_broadcast_with_ack(&ns, packet, &opts, &tx);
                drop(tx);
                let resp = serde_json::json!({
                    "type": RequestType::BroadcastClientCount as u8,
                    "requestId": rid,
                    "clientCount": count,
                });
                self.publish_response(from, resp.to_string().into_bytes());
                if count == 0 {
                    return;
                }
                let Some(me) = self.me.upgrade() else { return };
                let from = from.map(str::to_owned);
                let deadline = opts.flags.timeout.unwrap_or(self.config.requests_timeout)
                    + Duration::from_secs(1);
                tokio::spawn(async move {
                    let forward = async {
                        let mut got = 0;
                        while let Some(ev) = rx.recv().await {
                            if let AckEvent::Response(args) = ev {
                                let msg = wire::object(vec![
                                    ("type", Value::from(RequestType::BroadcastAck as u64)),
                                    ("requestId", Value::String(rid.clone())),
                                    ("packet", args.into_iter().next().unwrap_or(Value::Null)),
                                ]);
                                me.publish_response(from.as_deref(), crate::msgpack::encode(&msg));
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
            RequestType::BroadcastClientCount | RequestType::BroadcastAck => {
                self.malformed("response type on the request channel");
            }
        }
    }

    fn on_response(&self, resp: Value) {
        let Some(rid) = resp.get("requestId").and_then(Value::as_str) else {
            return;
        };
        {
            let mut acks = self.ack_requests.lock();
            if let Some(pending) = acks.get_mut(rid) {
                match resp
                    .get("type")
                    .and_then(Value::as_u64)
                    .and_then(RequestType::from_u64)
                {
                    Some(RequestType::BroadcastClientCount) => {
                        let n = resp.get("clientCount").and_then(Value::as_u64).unwrap_or(0);
                        let _ = pending.sink.send(AckEvent::ClientCount(n as usize));
                        pending.counts += 1;
                        pending.maybe_complete();
                    }
                    Some(RequestType::BroadcastAck) => {
                        let packet = resp.get("packet").cloned().unwrap_or(Value::Null);
                        let _ = pending.sink.send(AckEvent::Response(vec![packet]));
                    }
                    _ => self.malformed("response to a broadcast with acks"),
                }
                return;
            }
        }
        let mut requests = self.requests.lock();
        let Some(pending) = requests.get_mut(rid) else {
            return;
        };
        let finished = match pending {
            Pending::Fetch {
                num_sub,
                msg_count,
                sockets,
                done,
            } => {
                *msg_count += 1;
                if let Some(list) = resp.get("sockets").and_then(Value::as_array) {
                    for s in list {
                        match wire::socket_info_from(s) {
                            Some(info) => sockets.push(info),
                            None => bump(&self.driver.counters.malformed),
                        }
                    }
                }
                if *msg_count >= *num_sub {
                    if let Some(d) = done.take() {
                        let _ = d.send(());
                    }
                }
                false
            }
            Pending::AllRooms {
                num_sub,
                msg_count,
                rooms,
                done,
            } => {
                *msg_count += 1;
                rooms.extend(wire::rooms_from(resp.get("rooms")));
                if *msg_count >= *num_sub {
                    if let Some(d) = done.take() {
                        let _ = d.send(());
                    }
                }
                false
            }
            Pending::ServerSideEmit {
                num_sub,
                received,
                sink,
            } => {
                let data = resp.get("data").cloned().unwrap_or(Value::Null);
                let _ = sink.send(AckEvent::Response(vec![data]));
                *received += 1;
                *received >= *num_sub
            }
        };
        if finished {
            requests.remove(rid);
        }
    }

    /// Publishes a join/leave/disconnect request; it is applied here when it comes back from Redis
    /// (so that every node applies it in the same order). Without Redis, it is applied at once locally.
    async fn remote_op(&self, ty: RequestType, opts: BroadcastOptions, extra: serde_json::Value) {
        let Some(names) = self.ensure_init() else {
            return;
        };
        let rid = wire::uid();
        let mut req = serde_json::json!({
            "uid": self.uid,
            "type": ty as u8,
            "opts": {
                "rooms": opts.rooms.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "except": opts.except.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            },
            "requestId": rid,
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (req.as_object_mut(), extra) {
            obj.extend(extra);
        }
        let (tx, rx) = oneshot::channel();
        self.echoes.lock().insert(rid.clone(), tx);
        let published = self
            .driver
            .publish(names.request.clone(), req.to_string().into_bytes())
            .await;
        if published.is_ok() {
            let _ = tokio::time::timeout(self.config.requests_timeout, rx).await;
            self.echoes.lock().remove(&rid);
            return;
        }
        self.echoes.lock().remove(&rid);
        // Redis is down: this node applies it alone.
        let req = match wire::json_to_value(&req) {
            Some(v) => v,
            None => return,
        };
        let mut req = req;
        if let Some(m) = req.as_object_mut() {
            m.shift_remove("uid");
        }
        self.on_request(req);
    }
}

impl Adapter for RedisAdapter {
    fn init(&self) {
        // The namespace exists now (the factory ran while it was being built): subscribe at once; uses
        // before this point subscribe lazily through `ensure_init`.
        let _ = self.inner.ensure_init();
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn add_all(&self, sid: &Sid, rooms: &[Room]) {
        self.inner.local.add_all(sid, rooms)
    }

    fn del(&self, sid: &Sid, room: &Room) {
        self.inner.local.del(sid, room)
    }

    fn del_all(&self, sid: &Sid) {
        self.inner.local.del_all(sid)
    }

    fn socket_rooms(&self, sid: &Sid) -> Vec<Room> {
        self.inner.local.socket_rooms(sid)
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.inner.local.sockets(opts)
    }

    fn all_rooms(&self, local: bool) -> BoxFuture<Result<HashSet<Room>, AdapterError>> {
        let mine = self.inner.local.all_rooms(true).now_or_never();
        let mine = match mine {
            Some(Ok(r)) => r,
            Some(Err(e)) => return ready(Err(e)),
            None => HashSet::new(),
        };
        if local {
            return ready(Ok(mine));
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let num_sub = inner.server_count().await;
            let Some(names) = inner.ensure_init() else {
                return Ok(mine);
            };
            if num_sub <= 1 {
                return Ok(mine);
            }
            let rid = wire::uid();
            let (tx, rx) = oneshot::channel();
            inner.requests.lock().insert(
                rid.clone(),
                Pending::AllRooms {
                    num_sub,
                    msg_count: 1,
                    rooms: mine,
                    done: Some(tx),
                },
            );
            let req = serde_json::json!({
                "uid": inner.uid, "requestId": rid, "type": RequestType::AllRooms as u8,
            });
            if inner
                .driver
                .publish(names.request.clone(), req.to_string().into_bytes())
                .await
                .is_ok()
            {
                let _ = tokio::time::timeout(inner.config.requests_timeout, rx).await;
            }
            // Complete or timed out: what arrived.
            match inner.requests.lock().remove(&rid) {
                Some(Pending::AllRooms { rooms, .. }) => Ok(rooms),
                _ => Ok(HashSet::new()),
            }
        })
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
            let msg = wire::object_array(vec![
                Value::String(inner.uid.clone()),
                wire::packet_to_value(&packet),
                wire::opts_to_value(&opts),
            ]);
            let mut channel = names.channel.clone();
            if opts.rooms.len() == 1
                && let Some(room) = opts.rooms.iter().next()
            {
                channel.push_str(room);
                channel.push('#');
            }
            inner
                .driver
                .publish_nowait(channel, crate::msgpack::encode(&msg));
        }
        // Local delivery never waits for Redis.
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
        let remote = if opts.flags.local {
            None
        } else {
            inner.ensure_init().map(|n| n.request.clone())
        };
        let Some(request_channel) = remote else {
            let count = inner.local_broadcast_with_ack(&ns, packet, &opts, &sink);
            let _ = sink.send(AckEvent::ClientCount(count));
            let _ = sink.send(AckEvent::CountsComplete);
            return ready(Ok(()));
        };
        let rid = wire::uid();
        inner.ack_requests.lock().insert(
            rid.clone(),
            AckPending {
                sink: sink.clone(),
                expected: None,
                counts: 0,
                complete: false,
            },
        );
        let msg = wire::object(vec![
            ("uid", Value::String(inner.uid.clone())),
            ("requestId", Value::String(rid.clone())),
            ("type", Value::from(RequestType::Broadcast as u64)),
            ("packet", wire::packet_to_value(&packet)),
            ("opts", wire::opts_to_value(&opts)),
        ]);
        inner
            .driver
            .publish_nowait(request_channel, crate::msgpack::encode(&msg));
        let count = inner.local_broadcast_with_ack(&ns, packet, &opts, &sink);
        let _ = sink.send(AckEvent::ClientCount(count));
        let timeout = opts.flags.timeout.unwrap_or(inner.config.requests_timeout);
        tokio::spawn(async move {
            let others = inner.server_count().await.saturating_sub(1);
            if let Some(p) = inner.ack_requests.lock().get_mut(&rid) {
                p.expected = Some(others);
                p.maybe_complete();
            }
            // Kept a little past the caller's timeout, so that the caller times out (with what
            // arrived) rather than seeing its acks' sources vanish first.
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
            let num_sub = inner.server_count().await;
            let Some(names) = inner.ensure_init() else {
                return Ok(mine);
            };
            if num_sub <= 1 {
                return Ok(mine);
            }
            let rid = wire::uid();
            let (tx, rx) = oneshot::channel();
            inner.requests.lock().insert(
                rid.clone(),
                Pending::Fetch {
                    num_sub,
                    msg_count: 1,
                    sockets: mine,
                    done: Some(tx),
                },
            );
            let req = serde_json::json!({
                "uid": inner.uid,
                "requestId": rid,
                "type": RequestType::RemoteFetch as u8,
                "opts": {
                    "rooms": opts.rooms.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                    "except": opts.except.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                },
            });
            if inner
                .driver
                .publish(names.request.clone(), req.to_string().into_bytes())
                .await
                .is_ok()
            {
                let _ = tokio::time::timeout(inner.config.requests_timeout, rx).await;
            }
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
        if opts.flags.local {
            return self.inner.local.add_sockets(opts, rooms);
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
            inner
                .remote_op(
                    RequestType::RemoteJoin,
                    opts,
                    serde_json::json!({ "rooms": rooms }),
                )
                .await;
            Ok(())
        })
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        if opts.flags.local {
            return self.inner.local.del_sockets(opts, rooms);
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let rooms: Vec<String> = rooms.iter().map(|r| r.to_string()).collect();
            inner
                .remote_op(
                    RequestType::RemoteLeave,
                    opts,
                    serde_json::json!({ "rooms": rooms }),
                )
                .await;
            Ok(())
        })
    }

    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<Result<(), AdapterError>> {
        if opts.flags.local {
            return self.inner.local.disconnect_sockets(opts, close);
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            inner
                .remote_op(
                    RequestType::RemoteDisconnect,
                    opts,
                    serde_json::json!({ "close": close }),
                )
                .await;
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
        let mut data = vec![serde_json::Value::String(event)];
        data.extend(args.iter().map(wire::to_node_json));
        let Some(sink) = sink else {
            if let Some(names) = inner.ensure_init() {
                let req = serde_json::json!({
                    "uid": inner.uid, "type": RequestType::ServerSideEmit as u8, "data": data,
                });
                inner
                    .driver
                    .publish_nowait(names.request.clone(), req.to_string().into_bytes());
            }
            return ready(Ok(()));
        };
        Box::pin(async move {
            let num_sub = inner.server_count().await.saturating_sub(1);
            let names = inner.ensure_init();
            let (Some(names), true) = (names, num_sub > 0) else {
                let _ = sink.send(AckEvent::ClientCount(0));
                let _ = sink.send(AckEvent::CountsComplete);
                return Ok(());
            };
            let rid = wire::uid();
            inner.requests.lock().insert(
                rid.clone(),
                Pending::ServerSideEmit {
                    num_sub,
                    received: 0,
                    sink: sink.clone(),
                },
            );
            let req = serde_json::json!({
                "uid": inner.uid,
                "requestId": rid,
                "type": RequestType::ServerSideEmit as u8,
                "data": data,
            });
            let published = inner
                .driver
                .publish(names.request.clone(), req.to_string().into_bytes())
                .await;
            if published.is_err() {
                inner.requests.lock().remove(&rid);
                let _ = sink.send(AckEvent::ClientCount(0));
                let _ = sink.send(AckEvent::CountsComplete);
                return Ok(());
            }
            let _ = sink.send(AckEvent::ClientCount(num_sub));
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
            inner.driver.unregister(
                &[n.request.clone(), n.response.clone(), n.specific.clone()],
                std::slice::from_ref(&n.pattern),
            );
        }
    }
}
