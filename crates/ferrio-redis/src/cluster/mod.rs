//! The cluster-adapter core, shared by every Redis flavour (like socket.io-adapter's `ClusterAdapter`).
//!
//! It owns what does not depend on how messages travel: the local rooms (a [`MemoryAdapter`]), this
//! node's id, request ids, pending requests and their timeouts, the fan-in of acks from other nodes, and
//! the local fallback when other nodes cannot be reached. A [`Transport`] only moves typed messages;
//! what arrives is decoded by the transport and handed to the core's [`Inbox`], one handler per
//! [`Message`] kind.
//!
//! Operations apply locally first and publish for the other nodes (a node ignores its own messages), so
//! the result does not depend on Redis: without it, each operation is what one node alone would do.

mod inbox;
mod message;
pub(crate) mod transport;
pub(crate) mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ferrio_core::BoxFuture;
use ferrio_core::adapter::{
    AckEvent, AckSink, Adapter, AdapterError, AdapterFactory, BroadcastOptions, JoinError,
    LocalNamespace, MemoryAdapter, RecoveryOptions, RestoredSession, Room, Session, SessionLog,
    Sid, SocketInfo,
};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;
use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;

pub(crate) use message::{Decoded, Incoming, Message, RequestId, Response, SocketOp};
use transport::{Inbox, Rejoin, Transport};

/// How long an ack entry outlives the caller's timeout: the caller times out with what arrived rather
/// than seeing the acks' sources vanish first.
const ACK_GRACE: Duration = Duration::from_secs(1);

/// Options of the core, set by each flavour from its own configuration.
#[derive(Debug, Clone)]
pub(crate) struct CoreOptions {
    /// How long a request to other nodes waits for their answers.
    pub(crate) requests_timeout: Duration,
    /// Whether the transport wants to hear when a local room appears or disappears.
    pub(crate) track_rooms: bool,
}

/// Makes the transport of a namespace once its name is known: `(namespace, server uid)`.
pub(crate) type Bind<T> = Arc<dyn Fn(&str, &str) -> T + Send + Sync>;

/// The factory of a server's adapters: one [`ClusterAdapter`] per namespace, each with the transport
/// `bind` makes for it.
pub(crate) fn factory<T: Transport>(
    options: CoreOptions,
    bind: impl Fn(&str, &str) -> T + Send + Sync + 'static,
) -> AdapterFactory {
    let bind: Bind<T> = Arc::new(bind);
    Arc::new(move |ns| {
        Arc::new(ClusterAdapter::new(ns, options.clone(), bind.clone())) as Arc<dyn Adapter>
    })
}

/// The adapter of one namespace on a cluster of nodes, over the transport `T`.
pub struct ClusterAdapter<T> {
    core: Arc<Core<T>>,
}

impl<T> std::fmt::Debug for ClusterAdapter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAdapter")
            .field("uid", &self.core.uid)
            .field("local", &self.core.local)
            .finish()
    }
}

impl<T> ClusterAdapter<T> {
    /// This namespace's server id on the wire.
    pub fn uid(&self) -> &str {
        &self.core.uid
    }
}

impl<T> ClusterAdapter<T> {
    pub(crate) fn new(ns: Weak<dyn LocalNamespace>, options: CoreOptions, bind: Bind<T>) -> Self
    where
        T: Transport,
    {
        let core = Arc::new_cyclic(|me| Core {
            local: MemoryAdapter::new(ns.clone()),
            ns,
            uid: T::new_id(),
            rooms: options.track_rooms.then(Mutex::default),
            options,
            bind,
            transport: OnceLock::new(),
            requests: Mutex::new(HashMap::new()),
            acks: Mutex::new(HashMap::new()),
            me: me.clone(),
            closed: AtomicBool::new(false),
            recovery: OnceLock::new(),
        });
        ClusterAdapter { core }
    }
}

/// What a request to other nodes collects.
enum Collected {
    Sockets(Vec<SocketInfo>),
    Rooms(HashSet<Room>),
}

impl Collected {
    fn rooms(self) -> HashSet<Room> {
        match self {
            Collected::Rooms(rooms) => rooms,
            Collected::Sockets(_) => HashSet::new(),
        }
    }

    fn sockets(self) -> Vec<SocketInfo> {
        match self {
            Collected::Sockets(sockets) => sockets,
            Collected::Rooms(_) => Vec::new(),
        }
    }
}

enum Pending {
    /// Answers merged into one result, handed over when every node answered or at the timeout.
    Gather {
        expected: usize,
        received: usize,
        collected: Collected,
        done: Option<oneshot::Sender<()>>,
    },
    /// Server-side acks, forwarded one by one.
    ServerSideEmit {
        expected: usize,
        received: usize,
        sink: AckSink,
    },
}

/// A broadcast with acks: each node reports its client count, then each client's ack.
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

struct Core<T> {
    ns: Weak<dyn LocalNamespace>,
    local: MemoryAdapter,
    uid: String,
    options: CoreOptions,
    bind: Bind<T>,
    /// Made on first use, once the namespace's name can be read.
    transport: OnceLock<T>,
    requests: Mutex<HashMap<RequestId, Pending>>,
    acks: Mutex<HashMap<RequestId, AckPending>>,
    /// Local sockets per room, when the transport tracks rooms.
    rooms: Option<Mutex<HashMap<Room, usize>>>,
    me: Weak<Core<T>>,
    closed: AtomicBool,
    /// Set once connection state recovery is on (and the transport keeps a log).
    recovery: OnceLock<RecoveryOptions>,
}

fn unreachable_error() -> AdapterError {
    AdapterError::Transport("redis unreachable".into())
}

/// Whether a broadcast to `opts` reached a socket in `rooms` (`shouldIncludePacket`).
pub(crate) fn reached(rooms: &[Room], opts: &BroadcastOptions) -> bool {
    (opts.rooms.is_empty() || rooms.iter().any(|r| opts.rooms.contains(r)))
        && !rooms.iter().any(|r| opts.except.contains(r))
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<T> {
    Box::pin(async move { v })
}

fn one_room(room: &str) -> BroadcastOptions {
    BroadcastOptions {
        rooms: std::iter::once(Room::from(room)).collect(),
        ..Default::default()
    }
}

impl<T: Transport> Core<T> {
    fn ns(&self) -> Result<Arc<dyn LocalNamespace>, AdapterError> {
        self.ns.upgrade().ok_or(AdapterError::Closed)
    }

    /// The transport, made and subscribed on first call once the namespace can be reached; `None`
    /// once closed.
    fn transport(&self) -> Option<&T> {
        if let Some(t) = self.transport.get() {
            return Some(t);
        }
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let ns = self.ns.upgrade()?;
        let me = self.me.upgrade()?;
        let mut made = false;
        let t = self.transport.get_or_init(|| {
            made = true;
            (self.bind)(ns.name(), &self.uid)
        });
        if made {
            let inbox: Weak<dyn Inbox> = Arc::downgrade(&(me as Arc<dyn Inbox>));
            t.subscribe(inbox);
            // Rooms that appeared before the transport existed.
            if let Some(rooms) = &self.rooms {
                let known: Vec<Room> = rooms.lock().keys().cloned().collect();
                for r in known {
                    t.room_created(&r, self.is_socket(&r));
                }
            }
        }
        Some(t)
    }

    /// Whether `room` is a local socket's own room.
    fn is_socket(&self, room: &Room) -> bool {
        !self.local.socket_rooms(room).is_empty()
    }

    async fn server_count(&self) -> usize {
        match self.transport() {
            Some(t) => t.server_count().await.unwrap_or(1).max(1),
            None => 1,
        }
    }

    // ---- local rooms

    fn add_all(&self, sid: &Sid, rooms: &[Room]) {
        // Refusals are logged by the local adapter.
        let _ = self.try_add_all(sid, rooms);
    }

    fn try_add_all(&self, sid: &Sid, rooms: &[Room]) -> Result<(), JoinError> {
        let Some(counts) = &self.rooms else {
            return self.local.try_add_all(sid, rooms);
        };
        let mut created = Vec::new();
        {
            let mut counts = counts.lock();
            let before: HashSet<Room> = self.local.socket_rooms(sid).into_iter().collect();
            // A refused join added nothing: no count changes.
            self.local.try_add_all(sid, rooms)?;
            let mut seen = HashSet::new();
            for r in rooms {
                if before.contains(r) || !seen.insert(r) {
                    continue;
                }
                let n = counts.entry(r.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    created.push(r.clone());
                }
            }
        }
        if let Some(t) = self.transport()
            && !created.is_empty()
        {
            for r in created {
                t.room_created(&r, &r == sid || self.is_socket(&r));
            }
        }
        Ok(())
    }

    fn forget(counts: &mut HashMap<Room, usize>, room: &Room, deleted: &mut Vec<Room>) {
        if let Some(n) = counts.get_mut(room) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(room);
                deleted.push(room.clone());
            }
        }
    }

    fn rooms_deleted(&self, deleted: Vec<Room>) {
        if let Some(t) = self.transport.get() {
            for r in deleted {
                t.room_deleted(&r);
            }
        }
    }

    fn del(&self, sid: &Sid, room: &Room) {
        let Some(counts) = &self.rooms else {
            return self.local.del(sid, room);
        };
        let mut deleted = Vec::new();
        {
            let mut counts = counts.lock();
            let member = self.local.socket_rooms(sid).contains(room);
            self.local.del(sid, room);
            if member {
                Self::forget(&mut counts, room, &mut deleted);
            }
        }
        self.rooms_deleted(deleted);
    }

    fn del_all(&self, sid: &Sid) {
        let Some(counts) = &self.rooms else {
            return self.local.del_all(sid);
        };
        let mut deleted = Vec::new();
        {
            let mut counts = counts.lock();
            let rooms = self.local.socket_rooms(sid);
            self.local.del_all(sid);
            for r in &rooms {
                Self::forget(&mut counts, r, &mut deleted);
            }
        }
        self.rooms_deleted(deleted);
    }

    /// Applies a join, leave or disconnect to the matching local sockets (other messages are not
    /// operations on them).
    fn apply_here(&self, message: &Message) {
        match message {
            Message::SocketsJoin { opts, rooms } => {
                for sid in self.local.sockets(opts) {
                    self.add_all(&sid, rooms);
                }
            }
            Message::SocketsLeave { opts, rooms } => {
                for sid in self.local.sockets(opts) {
                    for r in rooms {
                        self.del(&sid, r);
                    }
                }
            }
            Message::DisconnectSockets { opts, close } => {
                let Ok(ns) = self.ns() else { return };
                for sid in self.local.sockets(opts) {
                    ns.disconnect(&sid, *close);
                }
            }
            _ => {}
        }
    }

    /// Delivers a broadcast expecting acks to the local sockets; returns how many got it.
    fn deliver_with_ack(
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
        self.local
            .sockets(opts)
            .iter()
            .filter(|sid| ns.deliver_with_ack(sid, &encoded, ack_id, sink))
            .count()
    }

    fn respond(&self, to: Option<&str>, response: Response) {
        if let Some(t) = self.transport.get() {
            t.publish_response(to, &response);
        }
    }

    /// Asks every other node (`ask` makes the request from its id) and waits, up to `timeout`, for
    /// their answers, merged into `collected`; what arrived when the time is up is the result. Alone,
    /// or without a link, `collected` is the answer.
    async fn gather(
        &self,
        collected: Collected,
        timeout: Duration,
        ask: impl FnOnce(RequestId) -> Message,
    ) -> Collected {
        let expected = self.server_count().await - 1;
        let Some(t) = self.transport().filter(|_| expected > 0) else {
            return collected;
        };
        let request_id = T::new_id();
        let message = ask(request_id.clone());
        let (done, rx) = oneshot::channel();
        self.requests.lock().insert(
            request_id.clone(),
            Pending::Gather {
                expected,
                received: 0,
                collected,
                done: Some(done),
            },
        );
        if t.publish(&message).await.is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
        match self.requests.lock().remove(&request_id) {
            Some(Pending::Gather { collected, .. }) => collected,
            // Only this function removes a Gather entry.
            _ => Collected::Rooms(HashSet::new()),
        }
    }
}

impl<T: Transport> Adapter for ClusterAdapter<T> {
    fn init(&self) {
        // The namespace exists now (the factory ran while it was being built): subscribe at once.
        let _ = self.core.transport();
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn add_all(&self, sid: &Sid, rooms: &[Room]) {
        // Refusals are logged by the local adapter.
        let _ = self.core.try_add_all(sid, rooms);
    }

    fn try_add_all(&self, sid: &Sid, rooms: &[Room]) -> Result<(), JoinError> {
        self.core.try_add_all(sid, rooms)
    }

    fn del(&self, sid: &Sid, room: &Room) {
        self.core.del(sid, room)
    }

    fn del_all(&self, sid: &Sid) {
        self.core.del_all(sid)
    }

    fn on_room_change(&self, listener: ferrio_core::adapter::RoomListener) {
        self.core.local.on_room_change(listener)
    }

    fn socket_rooms(&self, sid: &Sid) -> Vec<Room> {
        self.core.local.socket_rooms(sid)
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.core.local.sockets(opts)
    }

    fn all_rooms(&self, local: bool) -> BoxFuture<Result<HashSet<Room>, AdapterError>> {
        let mine = match self.core.local.all_rooms(true).now_or_never() {
            Some(Ok(r)) => r,
            Some(Err(e)) => return ready(Err(e)),
            None => HashSet::new(),
        };
        let asks = self.core.transport().is_some_and(T::answers_all_rooms);
        if local || !asks {
            return ready(Ok(mine));
        }
        let core = self.core.clone();
        Box::pin(async move {
            let timeout = core.options.requests_timeout;
            let all = core
                .gather(Collected::Rooms(mine), timeout, |request_id| {
                    Message::AllRooms { request_id }
                })
                .await;
            Ok(all.rooms())
        })
    }

    fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<(), AdapterError>> {
        if !opts.flags.local
            && self.core.recovery.get().is_some()
            && SessionLog::is_eligible(&packet, &opts)
            && let Some(t) = self.core.transport()
        {
            // The log's order is the delivery order: this node's sockets get the packet when the
            // transport reads it back, with its offset, as every other node's do. A restore then
            // sees each packet either among the missed ones or delivered live, never both.
            let sent = t.publish(&Message::Broadcast {
                packet: packet.clone(),
                opts: opts.clone(),
            });
            let core = self.core.clone();
            return Box::pin(async move {
                match sent.await {
                    Ok(Some(_)) => Ok(()),
                    // Not stored: the sockets here still get it, without an offset to resume from.
                    _ => core.local.broadcast(packet, opts).await,
                }
            });
        }
        if !opts.flags.local
            && let Some(t) = self.core.transport()
        {
            t.publish_nowait(&Message::Broadcast {
                packet: packet.clone(),
                opts: opts.clone(),
            });
        }
        // Local delivery never waits for other nodes.
        self.core.local.broadcast(packet, opts)
    }

    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        sink: AckSink,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let core = self.core.clone();
        let ns = match core.ns() {
            Ok(ns) => ns,
            Err(e) => return ready(Err(e)),
        };
        let transport = if opts.flags.local {
            None
        } else {
            core.transport()
        };
        let Some(t) = transport else {
            let count = core.deliver_with_ack(&ns, packet, &opts, &sink);
            let _ = sink.send(AckEvent::ClientCount(count));
            let _ = sink.send(AckEvent::CountsComplete);
            return ready(Ok(()));
        };
        let request_id = T::new_id();
        core.acks.lock().insert(
            request_id.clone(),
            AckPending {
                sink: sink.clone(),
                expected: None,
                counts: 0,
                complete: false,
            },
        );
        t.publish_nowait(&Message::BroadcastWithAck {
            request_id: request_id.clone(),
            packet: packet.clone(),
            opts: opts.clone(),
        });
        let count = core.deliver_with_ack(&ns, packet, &opts, &sink);
        let _ = sink.send(AckEvent::ClientCount(count));
        let timeout = opts.flags.timeout.unwrap_or(core.options.requests_timeout);
        tokio::spawn(async move {
            let others = core.server_count().await - 1;
            if let Some(p) = core.acks.lock().get_mut(&request_id) {
                p.expected = Some(others);
                p.maybe_complete();
            }
            tokio::time::sleep(timeout + ACK_GRACE).await;
            core.acks.lock().remove(&request_id);
        });
        ready(Ok(()))
    }

    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>> {
        let mine = match self.core.local.fetch_sockets(opts.clone()).now_or_never() {
            Some(Ok(s)) => s,
            Some(Err(e)) => return ready(Err(e)),
            None => Vec::new(),
        };
        if opts.flags.local {
            return ready(Ok(mine));
        }
        let core = self.core.clone();
        Box::pin(async move {
            let timeout = opts.flags.timeout.unwrap_or(core.options.requests_timeout);
            let all = core
                .gather(Collected::Sockets(mine), timeout, |request_id| {
                    Message::FetchSockets { request_id, opts }
                })
                .await;
            Ok(all.sockets())
        })
    }

    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        self.everywhere(Message::SocketsJoin { opts, rooms })
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        self.everywhere(Message::SocketsLeave { opts, rooms })
    }

    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<Result<(), AdapterError>> {
        self.everywhere(Message::DisconnectSockets { opts, close })
    }

    fn server_side_emit(
        &self,
        event: String,
        args: Vec<Value>,
        sink: Option<AckSink>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let core = self.core.clone();
        let Some(sink) = sink else {
            if let Some(t) = core.transport() {
                t.publish_nowait(&Message::ServerSideEmit {
                    request_id: None,
                    event,
                    args,
                });
            }
            return ready(Ok(()));
        };
        Box::pin(async move {
            let expected = core.server_count().await - 1;
            let transport = core.transport().filter(|_| expected > 0);
            let Some(t) = transport else {
                let _ = sink.send(AckEvent::ClientCount(0));
                let _ = sink.send(AckEvent::CountsComplete);
                return Ok(());
            };
            let request_id = T::new_id();
            core.requests.lock().insert(
                request_id.clone(),
                Pending::ServerSideEmit {
                    expected,
                    received: 0,
                    sink: sink.clone(),
                },
            );
            let message = Message::ServerSideEmit {
                request_id: Some(request_id.clone()),
                event,
                args,
            };
            if t.publish(&message).await.is_err() {
                core.requests.lock().remove(&request_id);
                let _ = sink.send(AckEvent::ClientCount(0));
                let _ = sink.send(AckEvent::CountsComplete);
                return Ok(());
            }
            let _ = sink.send(AckEvent::ClientCount(expected));
            let _ = sink.send(AckEvent::CountsComplete);
            drop(sink);
            let timeout = core.options.requests_timeout;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                let timed_out = core.requests.lock().remove(&request_id);
                // Still pending: some node never answered. Said as a timeout, so the caller does not
                // mistake the end of the wait for a disconnection.
                if let Some(Pending::ServerSideEmit { sink, .. }) = timed_out {
                    let _ = sink.send(AckEvent::TimedOut);
                }
            });
            Ok(())
        })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        let core = self.core.clone();
        Box::pin(async move { core.server_count().await })
    }

    fn enable_recovery(&self, opts: RecoveryOptions) -> bool {
        // Called while the namespace is being built: the transport may not exist yet.
        let supported = T::supports_recovery();
        if supported {
            let _ = self.core.recovery.set(opts);
        }
        supported
    }

    fn persist_session(&self, session: Session) -> BoxFuture<Result<(), AdapterError>> {
        let (Some(opts), Some(t)) = (self.core.recovery.get(), self.core.transport()) else {
            return ready(Ok(()));
        };
        let stored = t.persist_session(&session, opts.max_disconnection_duration);
        Box::pin(async move { stored.await.map_err(|_| unreachable_error()) })
    }

    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<Result<Option<RestoredSession>, AdapterError>> {
        let (Some(_), Some(t)) = (self.core.recovery.get(), self.core.transport()) else {
            return ready(Ok(None));
        };
        let core = self.core.clone();
        let rejoin: Rejoin = Box::new(move |session: &Session| {
            core.add_all(&session.sid, &session.rooms);
            if let Ok(ns) = core.ns() {
                ns.hold(&session.sid);
            }
        });
        let restored = t.restore_session(pid, offset, rejoin);
        let nsp = self.core.ns().map(|ns| ns.name().to_owned());
        Box::pin(async move {
            let nsp = nsp?;
            let Some(restored) = restored.await.map_err(|_| unreachable_error())? else {
                return Ok(None);
            };
            let rooms = &restored.session.rooms;
            let missed = restored
                .entries
                .into_iter()
                .filter(|(_, packet, opts)| {
                    SessionLog::is_eligible(packet, opts) && reached(rooms, opts)
                })
                .map(|(id, mut packet, _)| {
                    if let Packet::Event { args, nsp: p, .. } = &mut packet {
                        args.push(Value::String(id));
                        p.clone_from(&nsp);
                    }
                    packet
                })
                .collect();
            Ok(Some(RestoredSession {
                session: restored.session,
                missed,
            }))
        })
    }

    fn close(&self) {
        self.core.closed.store(true, Ordering::Relaxed);
        if let Some(t) = self.core.transport.get() {
            t.unsubscribe();
        }
    }
}

impl<T> ClusterAdapter<T> {
    /// A join, leave or disconnect: applied here at once, then published for the other nodes unless
    /// it is `local`; resolves once the link took it (or failed: this node has done its part).
    fn everywhere(&self, message: Message) -> BoxFuture<Result<(), AdapterError>>
    where
        T: Transport,
    {
        let core = self.core.clone();
        Box::pin(async move {
            core.apply_here(&message);
            let local = match &message {
                Message::SocketsJoin { opts, .. }
                | Message::SocketsLeave { opts, .. }
                | Message::DisconnectSockets { opts, .. } => opts.flags.local,
                _ => true,
            };
            if !local && let Some(t) = core.transport() {
                let _ = t.publish(&message).await;
            }
            Ok(())
        })
    }
}
