//! Namespaces: a name, its sockets, its middlewares and connection handlers, and its adapter.
//!
//! A namespace sits under the server and over its sockets: what it needs from the server goes through
//! [`Registry`]; its sockets reach it through `NamespaceLink`, and operators through `Scope`.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use ferrio_proto::engine::Protocol;
use ferrio_proto::socket::{Encoded, Packet, Parser, connect_ok, connect_ok_v4};
use ferrio_proto::value::Value;
use parking_lot::{Mutex, RwLock};

use crate::ack::{AckArgs, BroadcastAckError, EmitError};
use crate::adapter::{
    AckSink, Adapter, AdapterError, AdapterFactory, BroadcastFlags, BroadcastOptions,
    LocalNamespace, Recipient, RestoredSession, Room, Sid, SocketInfo,
};
use crate::conn::Conn;
use crate::engine::BoxFuture;
use crate::operators::{BroadcastOperator, RemoteSocket, Scope};
use crate::server::ConnectionStateRecovery;
use crate::socket::{ClientLink, DisconnectReason, NamespaceLink, Socket, SocketParts, SocketTask};
use ferrio_proto::fxhash::FxBuild;

/// Why a middleware refused a connection: the client gets CONNECT_ERROR with its message and data.
pub use ferrio_proto::socket::ConnectError;

/// What a namespace asks of the server that holds it (implemented by the server, which sits above).
pub(crate) trait Registry: Send + Sync + 'static {
    /// A child of a dynamic namespace was removed: stop resolving `name` to it.
    fn forget_namespace(&self, name: &str);
}

/// The server options a namespace uses, shared by every namespace of a server.
pub(crate) struct NamespaceConfig {
    pub(crate) parser: Arc<dyn Parser>,
    pub(crate) adapter: AdapterFactory,
    pub(crate) cleanup_empty_child_namespaces: bool,
    pub(crate) max_pending_events: usize,
    pub(crate) ack_timeout: Option<Duration>,
    pub(crate) recovery: Option<ConnectionStateRecovery>,
    pub(crate) max_rooms_per_socket: Option<usize>,
}

/// What a restored socket's namespace kept for it between the adapter's snapshot and its takeover.
struct Held {
    frames: Vec<(Encoded, bool)>,
    /// More came than the log may hold: the socket cannot be given a complete replay.
    overflowed: bool,
}

/// Recovery state of a new socket: its private id, and the session it takes over, if any.
pub(crate) struct Recovery {
    pub(crate) pid: Arc<str>,
    pub(crate) restored: Option<RestoredSession>,
}

type ConnectionHandler = Arc<dyn Fn(Socket) -> BoxFuture<()> + Send + Sync>;
type Middleware = Arc<dyn Fn(Socket) -> BoxFuture<Result<(), ConnectError>> + Send + Sync>;
type ServerSideHandler = Arc<dyn Fn(Vec<Value>, Option<AckSink>) + Send + Sync>;

pub(crate) struct NamespaceInner {
    name: String,
    registry: Weak<dyn Registry>,
    config: Arc<NamespaceConfig>,
    adapter: Arc<dyn Adapter>,
    /// Looked up once per recipient of every broadcast: keyed by server-chosen random ids, so a fast hasher.
    sockets: DashMap<Sid, Socket, FxBuild>,
    connection_handlers: RwLock<Vec<ConnectionHandler>>,
    middlewares: RwLock<Vec<Middleware>>,
    server_side_handlers: RwLock<HashMap<String, ServerSideHandler>>,
    ack_ids: AtomicU64,
    /// For a child of a dynamic namespace: the parent, whose middlewares and handlers apply too.
    parent: Option<Arc<NamespaceInner>>,
    /// Whether this is a dynamic (parent) namespace: a broadcast on it reaches its children.
    is_parent: bool,
    /// For a dynamic (parent) namespace: its children by name.
    children: Mutex<HashMap<String, Arc<NamespaceInner>>>,
    /// Connection state recovery is on and the adapter supports it.
    recovery: bool,
    /// Restored sockets not yet in `sockets`: what was delivered to them meanwhile (see
    /// `LocalNamespace::hold`).
    held: Mutex<HashMap<Sid, Held>>,
}

impl NamespaceInner {
    pub(crate) fn new(
        name: String,
        registry: Weak<dyn Registry>,
        config: Arc<NamespaceConfig>,
        parent: Option<Arc<NamespaceInner>>,
        is_parent: bool,
    ) -> Arc<Self> {
        let ns = Arc::new_cyclic(|weak: &Weak<NamespaceInner>| {
            let local: Weak<dyn LocalNamespace> = weak.clone();
            let adapter = (config.adapter)(local);
            // Before any socket joins: from now on every broadcast carries an offset.
            let recovery = config
                .recovery
                .as_ref()
                .is_some_and(|r| adapter.enable_recovery(r.adapter_options()));
            NamespaceInner {
                name,
                registry,
                adapter,
                config,
                recovery,
                held: Mutex::new(HashMap::new()),
                sockets: DashMap::with_hasher(FxBuild::default()),
                connection_handlers: RwLock::new(Vec::new()),
                middlewares: RwLock::new(Vec::new()),
                server_side_handlers: RwLock::new(HashMap::new()),
                ack_ids: AtomicU64::new(0),
                parent,
                is_parent,
                children: Mutex::new(HashMap::new()),
            }
        });
        ns.adapter.init();
        ns
    }

    /// The child `name` of this dynamic namespace, made on first use.
    pub(crate) fn child(self: &Arc<Self>, name: &str) -> Arc<NamespaceInner> {
        self.children
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                NamespaceInner::new(
                    name.to_owned(),
                    self.registry.clone(),
                    self.config.clone(),
                    Some(self.clone()),
                    false,
                )
            })
            .clone()
    }

    pub(crate) fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    /// Whether this is a child of a dynamic namespace.
    pub(crate) fn is_child(&self) -> bool {
        self.parent.is_some()
    }

    fn socket(&self, sid: &str) -> Option<Socket> {
        self.sockets.get(sid).map(|s| s.clone())
    }

    fn chain(&self) -> impl Iterator<Item = &NamespaceInner> {
        self.parent
            .as_deref()
            .into_iter()
            .chain(std::iter::once(self))
    }

    /// With recovery on, asks the adapter for the session a CONNECT names (`pid` and `offset` both
    /// given, as the official server requires); `None` when there is nothing to ask.
    pub(crate) fn restore(
        &self,
        pid: Option<&str>,
        offset: Option<&str>,
    ) -> Option<BoxFuture<Result<Option<RestoredSession>, AdapterError>>> {
        match (self.recovery, pid, offset) {
            (true, Some(pid), Some(offset)) => Some(Box::pin(crate::telemetry::recovery(
                self.adapter.restore_session(pid, offset),
            ))),
            _ => None,
        }
    }

    /// The recovery state of a new socket: `None` when recovery is off.
    pub(crate) fn recovery_for(&self, restored: Option<RestoredSession>) -> Option<Recovery> {
        if !self.recovery {
            return None;
        }
        let pid = match &restored {
            Some(r) => r.session.pid.clone(),
            None => Arc::from(crate::client::new_id()),
        };
        Some(Recovery { pid, restored })
    }

    /// A restored session will not be taken over after all: stop holding for it, leave its rooms.
    pub(crate) fn abandon(&self, restored: &RestoredSession) {
        let sid = &restored.session.sid;
        self.held.lock().remove(sid);
        self.adapter.del_all(sid);
    }

    /// A new socket of a client in this namespace; the returned future runs it (middlewares, then events
    /// until it disconnects). The client registers the socket before running it.
    pub(crate) fn add_socket(
        self: &Arc<Self>,
        id: Sid,
        client: Weak<dyn ClientLink>,
        conn: Conn,
        auth: Value,
        recovery: Option<Recovery>,
    ) -> (Socket, BoxFuture<()>) {
        let (pid, restored) = match recovery {
            Some(r) => (Some(r.pid), r.restored),
            None => (None, None),
        };
        let (socket, task) = Socket::new(SocketParts {
            id,
            nsp: self.clone(),
            scope: self.clone(),
            client,
            conn,
            auth,
            queue_capacity: self.config.max_pending_events,
            ack_timeout: self.config.ack_timeout,
            pid,
            recovered: restored.is_some(),
        });
        // Joining runs once, while the socket's future lives as long as the socket: boxed apart, its
        // state (middlewares, a restored session and its replay) is freed once done instead of sizing
        // that future for good.
        let joining = {
            let (ns, socket) = (self.clone(), socket.clone());
            Box::pin(async move { ns.join(&socket, restored).await })
        };
        let run = Box::pin(self.clone().run_socket(socket.clone(), task, joining));
        (socket, run)
    }

    /// Runs a socket from its joining (`joining`: middlewares, CONNECT answer) to its disconnection.
    ///
    /// Not an async fn, whose arguments would take room twice in this future (which lives as long as
    /// the socket).
    #[allow(clippy::manual_async_fn)]
    fn run_socket(
        self: Arc<Self>,
        socket: Socket,
        task: SocketTask,
        joining: BoxFuture<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            if !joining.await {
                return;
            }
            let handlers: Vec<ConnectionHandler> = self
                .chain()
                .flat_map(|n| n.connection_handlers.read().clone())
                .collect();
            let s = socket.clone();
            let on_connect = Box::pin(async move {
                for h in handlers {
                    h(s.clone()).await;
                }
            });
            task.run(socket, on_connect).await;
            crate::telemetry::socket_disconnected(&self.name);
            self.after_socket_left();
        }
    }

    /// Runs the middlewares, answers the CONNECT and makes the socket reachable (or takes over a restored
    /// session). False when the socket did not join: refused, gone meanwhile, or its replay overflowed.
    async fn join(self: &Arc<Self>, socket: &Socket, restored: Option<RestoredSession>) -> bool {
        if let Some(r) = &restored {
            // Middlewares that run see the restored data.
            socket.set_data(r.session.data.clone());
        }
        let skip_middlewares = restored.is_some()
            && self
                .config
                .recovery
                .as_ref()
                .is_some_and(|r| r.skip_middlewares);
        let middlewares: Vec<Middleware> = if skip_middlewares {
            Vec::new()
        } else {
            self.chain()
                .flat_map(|n| n.middlewares.read().clone())
                .collect()
        };
        for mw in middlewares {
            if let Err(e) = mw(socket.clone()).await {
                if let Some(r) = &restored {
                    self.abandon(r);
                }
                let refusal = match socket.protocol() {
                    Protocol::V4 => e.packet(&self.name),
                    Protocol::V3 => e.packet_v4(&self.name),
                };
                // Out of the client's sockets before the refusal can be read: a client that answers it at
                // once (an event for the namespace it was refused) must find no socket there.
                socket.on_close(DisconnectReason::ServerNamespaceDisconnect);
                let _ = socket.write_packet(&refusal, false);
                self.after_socket_left();
                return false;
            }
        }
        if !socket.is_current() {
            // The client left while the middlewares ran.
            if let Some(r) = &restored {
                self.abandon(r);
            }
            self.after_socket_left();
            return false;
        }
        socket.set_connected();
        crate::telemetry::socket_connected(&self.name);
        {
            // In a block of its own: a packet alive across the awaits below would stay in the socket's
            // future for the socket's whole life.
            let connected = match socket.protocol() {
                Protocol::V4 => connect_ok(&self.name, socket.id(), socket.pid()),
                Protocol::V3 => connect_ok_v4(&self.name),
            };
            // Queued, not written through: the client hears it once this task yields, after the
            // socket is reachable and its connection handlers ran as far as they do without waiting.
            let _ = crate::engine::queued(true, || socket.write_packet(&connected, false));
        }
        match restored {
            None => {
                self.publish(socket);
                self.adapter
                    .add_all(socket.sid(), std::slice::from_ref(socket.sid()));
            }
            Some(r) => {
                if !self.take_over(socket, r).await {
                    // Some packets could not be kept for it: better no socket than a gap. The
                    // client reconnects and asks again with its offset.
                    socket.on_close(DisconnectReason::TransportError);
                    socket.close_connection();
                    self.after_socket_left();
                    return false;
                }
                // Reachable now: its own room again (it is in it already) hands the socket to the
                // adapter, whose restored rooms knew it by sid only.
                self.adapter
                    .add_all(socket.sid(), std::slice::from_ref(socket.sid()));
            }
        }
        socket.mark_joined();
        true
    }

    /// A restored socket takes over: the packets it missed, then what was held for it since the
    /// adapter's snapshot, then it is reachable directly. Returns false when what was held overflowed.
    ///
    /// A replay may be longer than the connection's queue: it waits for room (the client reads it as
    /// fast as it can) instead of closing the connection as a slow consumer.
    async fn take_over(&self, socket: &Socket, restored: RestoredSession) -> bool {
        let sid = socket.sid().clone();
        for packet in &restored.missed {
            if !socket.replay_packet(packet).await {
                // Gone again: its socket is closing, as any socket whose connection closed.
                break;
            }
        }
        loop {
            // Written without the lock (a full queue closes the connection synchronously); whatever
            // arrives meanwhile is held and written on the next turn.
            let frames = {
                let mut held = self.held.lock();
                let Some(h) = held.get_mut(&sid) else {
                    // Not held (an adapter that restores without `hold`): reachable from now on.
                    self.publish(socket);
                    return true;
                };
                if h.overflowed {
                    held.remove(&sid);
                    drop(held);
                    self.adapter.del_all(&sid);
                    return false;
                }
                if h.frames.is_empty() {
                    // Under the lock: a delivery that missed the map now finds the socket in it.
                    self.publish(socket);
                    held.remove(&sid);
                    return true;
                }
                std::mem::take(&mut h.frames)
            };
            for (encoded, volatile) in &frames {
                socket.replay_encoded(encoded, *volatile).await;
            }
        }
    }

    /// Makes a connected socket reachable by id. Its connection may close meanwhile (a full queue
    /// closes it synchronously) and `on_close` forgets it before it is in the map: checked after the
    /// insert, so that a closed socket never stays in the map.
    fn publish(&self, socket: &Socket) {
        self.sockets.insert(socket.sid().clone(), socket.clone());
        if !socket.connected() {
            self.sockets.remove_if(socket.sid(), |_, s| s == socket);
        }
    }

    /// Removes an empty child of a dynamic namespace when `cleanup_empty_child_namespaces` is on.
    fn after_socket_left(&self) {
        if let Some(parent) = &self.parent
            && self.config.cleanup_empty_child_namespaces
            && self.sockets.is_empty()
        {
            if let Some(child) = parent.children.lock().remove(&self.name) {
                child.adapter().close();
            }
            if let Some(registry) = self.registry.upgrade() {
                registry.forget_namespace(&self.name);
            }
        }
    }
}

impl Scope for NamespaceInner {
    fn name(&self) -> &str {
        &self.name
    }

    fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    fn targets(self: Arc<Self>) -> Vec<Arc<dyn Scope>> {
        let children = self.children.lock();
        if children.is_empty() && !self.is_parent {
            drop(children);
            vec![self]
        } else {
            children
                .values()
                .map(|c| c.clone() as Arc<dyn Scope>)
                .collect()
        }
    }

    fn ack_timeout(&self) -> Option<Duration> {
        self.config.ack_timeout
    }
    fn writes_json_text(&self) -> bool {
        self.config.parser.writes_json_text()
    }
}

impl NamespaceLink for NamespaceInner {
    fn next_ack_id(&self) -> u64 {
        self.ack_ids.fetch_add(1, Ordering::Relaxed)
    }

    fn forget(&self, sid: &Sid) {
        self.sockets.remove(sid);
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl NamespaceInner {
    /// A delivery to a socket not in the map: held for a socket being restored, else dropped.
    fn deliver_held(&self, sid: &str, encoded: &Encoded, flags: &BroadcastFlags) -> bool {
        {
            let mut held = self.held.lock();
            if let Some(h) = held.get_mut(sid) {
                let cap = self
                    .config
                    .recovery
                    .as_ref()
                    .map_or(0, |r| r.max_stored_packets);
                if h.frames.len() >= cap {
                    h.overflowed = true;
                    h.frames.clear();
                } else if !h.overflowed {
                    h.frames.push((encoded.clone(), flags.volatile));
                }
                return true;
            }
        }
        // The restored socket may have taken over between the two looks.
        self.socket(sid)
            .is_some_and(|s| s.write_broadcast(encoded, flags))
    }
}

impl LocalNamespace for NamespaceInner {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_rooms_per_socket(&self) -> Option<usize> {
        self.config.max_rooms_per_socket
    }

    fn encode(&self, packet: &Packet) -> Encoded {
        self.config.parser.encode(packet)
    }

    fn deliver(&self, sid: &str, encoded: &Encoded, flags: &BroadcastFlags) -> bool {
        // `socket()` clones the socket out of the map: no map guard may be held while writing, since a
        // full queue closes the connection, which removes the socket from this very map.
        match self.socket(sid) {
            Some(s) => s.write_broadcast(encoded, flags),
            None if self.recovery => self.deliver_held(sid, encoded, flags),
            None => false,
        }
    }

    fn recipient(&self, sid: &str) -> Option<std::sync::Weak<dyn Recipient>> {
        self.sockets.get(sid).map(|s| s.recipient())
    }

    fn hold(&self, sid: &str) {
        self.held.lock().insert(
            Sid::from(sid),
            Held {
                frames: Vec::new(),
                overflowed: false,
            },
        );
    }

    fn deliver_with_ack(&self, sid: &str, encoded: &Encoded, ack_id: u64, sink: &AckSink) -> bool {
        match self.socket(sid) {
            Some(s) => {
                s.register_broadcast_ack(ack_id, sink.clone());
                s.write_encoded(encoded, false)
            }
            None => false,
        }
    }

    fn next_ack_id(&self) -> u64 {
        NamespaceLink::next_ack_id(self)
    }

    fn socket_info(&self, sid: &str) -> Option<SocketInfo> {
        let s = self.socket(sid)?;
        let data = s.data_value().unwrap_or_else(|e| {
            // Other nodes get `{}` rather than no answer at all; the cause is the application's type.
            tracing::warn!(sid, error = %e, "socket data does not serialize");
            Value::Object(Default::default())
        });
        Some(SocketInfo {
            id: s.id().to_owned(),
            handshake: s.handshake().clone(),
            rooms: s.rooms().iter().map(|r| r.to_string()).collect(),
            data,
        })
    }

    fn disconnect(&self, sid: &str, close: bool) {
        if let Some(s) = self.socket(sid) {
            s.disconnect(close);
        }
    }

    fn on_server_side_emit(&self, event: String, args: Vec<Value>, sink: Option<AckSink>) {
        let handler = self.server_side_handlers.read().get(&event).cloned();
        if let Some(h) = handler {
            h(args, sink);
        }
    }
}

impl Socket {
    /// The namespace of this socket (`socket.nsp`), as a handle.
    pub fn namespace(&self) -> Namespace {
        match self.namespace_link().clone().into_any().downcast() {
            Ok(inner) => Namespace { inner },
            // Namespaces are the only `NamespaceLink`: the socket layer names them through the trait so
            // that it does not import this module.
            Err(_) => unreachable!("a socket's namespace is a NamespaceInner"),
        }
    }
}

/// A namespace (`io.of("/chat")`). Cloning shares it.
#[derive(Clone)]
pub struct Namespace {
    pub(crate) inner: Arc<NamespaceInner>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .field("sockets", &self.inner.sockets.len())
            .finish()
    }
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Namespace {
    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs for every socket that joins, after the middlewares accepted it and its CONNECT was sent.
    ///
    /// As in socket.io, the socket's events are dispatched while the handler awaits: listeners it adds
    /// before its first `.await` see every event, while one added after an `.await` misses the events
    /// that came meanwhile. Add listeners first, then await:
    ///
    /// ```no_run
    /// # let io = ferrio::Io::default();
    /// io.on_connection(|socket: ferrio::Socket| async move {
    ///     socket.on("join", |socket: ferrio::Socket, ev: ferrio::Event| async move {
    ///         if let Ok(room) = ev.parse::<String>() {
    ///             let _ = socket.join([room]);
    ///         }
    ///     });
    ///     // Events reach "join" while this waits for the client's answer.
    ///     let _ = socket.emit_with_ack("hello", &()).await;
    /// });
    /// ```
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .connection_handlers
            .write()
            .push(Arc::new(move |s| Box::pin(handler(s))));
    }

    /// Adds a middleware (`namespace.use`): an `Err` refuses the connection with CONNECT_ERROR.
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.inner
            .middlewares
            .write()
            .push(Arc::new(move |s| Box::pin(middleware(s))));
    }

    /// Handles `server_side_emit` events sent by other nodes; `ack` answers when the sender waits.
    pub fn on_server_side<F>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Vec<Value>, Option<AckSink>) + Send + Sync + 'static,
    {
        self.inner
            .server_side_handlers
            .write()
            .insert(event.into(), Arc::new(handler));
    }

    /// The sockets connected on this node.
    pub fn sockets(&self) -> Vec<Socket> {
        self.inner
            .sockets
            .iter()
            .map(|s| s.value().clone())
            .collect()
    }

    /// A connected socket of this node by id.
    pub fn socket(&self, id: &str) -> Option<Socket> {
        self.inner.socket(id)
    }

    /// The adapter.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        self.inner.adapter()
    }

    fn operator(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.inner.clone(), BroadcastOptions::default())
    }

    /// Targets a room.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.operator().to(room)
    }

    /// Same as `to` (`in` is a Rust keyword).
    pub fn within(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// Everyone but the sockets in `room`.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.operator().except(room)
    }

    /// Only this node.
    pub fn local(&self) -> BroadcastOperator {
        self.operator().local()
    }

    /// Droppable packets.
    pub fn volatile(&self) -> BroadcastOperator {
        self.operator().volatile()
    }

    /// Compression wish.
    pub fn compress(&self, compress: bool) -> BroadcastOperator {
        self.operator().compress(compress)
    }

    /// Ack timeout for `emit_with_ack` and `server_side_emit_with_ack`.
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.operator().timeout(timeout)
    }

    /// Emits to every socket of the namespace.
    pub fn emit<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.operator().emit(event, data)
    }

    /// Emits to every socket and collects their acks (see [`BroadcastOperator::emit_with_ack`]).
    pub async fn emit_with_ack<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, BroadcastAckError> {
        self.operator().emit_with_ack(event, data).await
    }

    /// Describes every socket (all nodes).
    pub async fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        self.operator().fetch_sockets().await
    }

    /// Makes every socket join rooms.
    pub async fn sockets_join<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        self.operator().sockets_join(rooms).await
    }

    /// Makes every socket leave rooms.
    pub async fn sockets_leave<I: IntoIterator<Item = R>, R: Into<Room>>(&self, rooms: I) {
        self.operator().sockets_leave(rooms).await
    }

    /// Disconnects every socket.
    pub async fn disconnect_sockets(&self, close: bool) {
        self.operator().disconnect_sockets(close).await
    }

    /// Emits to the other nodes' server-side handlers (`serverSideEmit`), without acks.
    pub async fn server_side_emit<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        let args = ferrio_proto::value::to_args(data)?;
        self.inner
            .adapter()
            .server_side_emit(event.to_owned(), args, None)
            .await
            .map_err(|_| EmitError::Disconnected)
    }

    /// Emits to the other nodes and collects their acks (none on one node); `timeout(d)` sets how long
    /// to wait (see [`BroadcastOperator::server_side_emit_with_ack`]).
    pub async fn server_side_emit_with_ack<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, BroadcastAckError> {
        self.operator().server_side_emit_with_ack(event, data).await
    }

    /// Every room with a socket in it.
    pub async fn all_rooms(&self) -> Vec<Room> {
        self.inner
            .adapter()
            .all_rooms(false)
            .await
            .map(|r| r.into_iter().collect())
            .unwrap_or_default()
    }

    /// Disconnects everyone for a reason (server shutdown).
    pub(crate) fn close_all(&self, reason: DisconnectReason) {
        for s in self.sockets() {
            s.on_close(reason);
        }
    }
}
