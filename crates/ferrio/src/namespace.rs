//! Namespaces: a name, its sockets, its middlewares and connection handlers, and its adapter.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use ferrio_proto::socket::{Encoded, Packet};
use ferrio_proto::value::Value;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use crate::adapter::{
    AckSink, Adapter, AdapterFactory, BroadcastFlags, BroadcastOptions, LocalNamespace, Room, Sid,
    SocketInfo,
};
use crate::engine::BoxFuture;
use crate::fxhash::FxBuild;
use crate::operators::{BroadcastOperator, RemoteSocket};
use crate::server::IoInner;
use crate::socket::{AckArgs, AckError, DisconnectReason, EmitError, Job, Socket};

/// Why a middleware refused a connection: the client gets CONNECT_ERROR with this message and data.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// `err.message` on the client.
    pub message: String,
    /// `err.data` on the client.
    pub data: Option<Value>,
}

impl ConnectError {
    /// An error with a message and no data.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data` (anything serializable).
    pub fn with_data<T: serde::Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.data = ferrio_proto::value::to_value(data).ok();
        self
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut map = ferrio_proto::value::Map::new();
        map.insert("message".into(), Value::String(self.message.clone()));
        if let Some(d) = &self.data {
            map.insert("data".into(), d.clone());
        }
        Value::Object(map)
    }
}

type ConnectionHandler = Arc<dyn Fn(Arc<Socket>) -> BoxFuture<()> + Send + Sync>;
type Middleware = Arc<dyn Fn(Arc<Socket>) -> BoxFuture<Result<(), ConnectError>> + Send + Sync>;
type ServerSideHandler = Arc<dyn Fn(Vec<Value>, Option<AckSink>) + Send + Sync>;

pub(crate) struct NamespaceInner {
    pub(crate) name: String,
    io: Weak<IoInner>,
    adapter: Arc<dyn Adapter>,
    /// Looked up once per recipient of every broadcast: keyed by server-chosen random ids, so a fast hasher.
    sockets: DashMap<Sid, Arc<Socket>, FxBuild>,
    connection_handlers: RwLock<Vec<ConnectionHandler>>,
    middlewares: RwLock<Vec<Middleware>>,
    server_side_handlers: RwLock<HashMap<String, ServerSideHandler>>,
    ack_ids: AtomicU64,
    /// For a child of a dynamic namespace: the parent, whose middlewares and handlers apply too.
    pub(crate) parent: Option<Arc<NamespaceInner>>,
    /// For a dynamic (parent) namespace: its children by name.
    pub(crate) children: Mutex<HashMap<String, Arc<NamespaceInner>>>,
}

impl NamespaceInner {
    pub(crate) fn new(
        name: String,
        io: Weak<IoInner>,
        factory: &AdapterFactory,
        parent: Option<Arc<NamespaceInner>>,
    ) -> Arc<Self> {
        let ns = Arc::new_cyclic(|weak: &Weak<NamespaceInner>| {
            let local: Weak<dyn LocalNamespace> = weak.clone();
            NamespaceInner {
                name,
                io,
                adapter: factory(local),
                sockets: DashMap::with_hasher(FxBuild::default()),
                connection_handlers: RwLock::new(Vec::new()),
                middlewares: RwLock::new(Vec::new()),
                server_side_handlers: RwLock::new(HashMap::new()),
                ack_ids: AtomicU64::new(0),
                parent,
                children: Mutex::new(HashMap::new()),
            }
        });
        ns.adapter.init();
        ns
    }

    pub(crate) fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    pub(crate) fn next_ack_id(&self) -> u64 {
        self.ack_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn remove(&self, sid: &Sid) {
        self.sockets.remove(sid);
    }

    pub(crate) fn socket(&self, sid: &str) -> Option<Arc<Socket>> {
        self.sockets.get(sid).map(|s| s.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// The namespaces a broadcast on this one reaches: itself, or all its children for a parent.
    pub(crate) fn broadcast_targets(self: &Arc<Self>) -> Vec<Arc<NamespaceInner>> {
        let children = self.children.lock();
        if children.is_empty() && !self.is_parent() {
            vec![self.clone()]
        } else {
            children.values().cloned().collect()
        }
    }

    fn is_parent(&self) -> bool {
        self.io.upgrade().is_some_and(|io| io.is_parent(self))
    }

    fn chain(&self) -> impl Iterator<Item = &NamespaceInner> {
        self.parent
            .as_deref()
            .into_iter()
            .chain(std::iter::once(self))
    }

    /// Runs a socket from its middlewares to its disconnection; the socket's events are handled here,
    /// one after the other.
    pub(crate) async fn run_socket(
        self: Arc<Self>,
        socket: Arc<Socket>,
        mut jobs: mpsc::Receiver<Job>,
    ) {
        let middlewares: Vec<Middleware> = self
            .chain()
            .flat_map(|n| n.middlewares.read().clone())
            .collect();
        for mw in middlewares {
            if let Err(e) = mw(socket.clone()).await {
                let _ = socket.write(
                    &Packet::ConnectError {
                        nsp: self.name.clone(),
                        data: e.to_value(),
                    },
                    false,
                );
                socket.client.remove(&self.name, &socket);
                self.after_socket_left();
                return;
            }
        }
        if !socket.client.has(&self.name, &socket) {
            // The client left while the middlewares ran.
            self.after_socket_left();
            return;
        }
        self.sockets.insert(socket.sid().clone(), socket.clone());
        self.adapter
            .add_all(socket.sid(), std::slice::from_ref(socket.sid()));
        socket.set_connected();
        let mut data = ferrio_proto::value::Map::new();
        data.insert("sid".into(), Value::String(socket.id().to_owned()));
        let _ = socket.write(
            &Packet::Connect {
                nsp: self.name.clone(),
                data: Some(Value::Object(data)),
            },
            false,
        );
        socket.client.on_connected();

        let handlers: Vec<ConnectionHandler> = self
            .chain()
            .flat_map(|n| n.connection_handlers.read().clone())
            .collect();
        for h in handlers {
            h(socket.clone()).await;
        }
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Event(e) => socket.dispatch(e).await,
                Job::Disconnect(reason) => {
                    socket.run_disconnect(reason).await;
                    return;
                }
            }
        }
    }

    /// Removes an empty child of a dynamic namespace when `cleanup_empty_child_namespaces` is on.
    pub(crate) fn after_socket_left(&self) {
        if let (Some(parent), Some(io)) = (&self.parent, self.io.upgrade())
            && io.config.cleanup_empty_child_namespaces
            && self.sockets.is_empty()
        {
            io.remove_child(parent, &self.name);
        }
    }
}

impl LocalNamespace for NamespaceInner {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(&self, packet: &Packet) -> Encoded {
        match self.io.upgrade() {
            Some(io) => io.parser.encode(packet),
            None => ferrio_proto::socket::encode(packet),
        }
    }

    fn deliver(&self, sid: &str, encoded: &Encoded, flags: &BroadcastFlags) -> bool {
        // `socket()` clones the socket out of the map: no map guard may be held while writing, since a
        // full queue closes the connection, which removes the socket from this very map.
        match self.socket(sid) {
            Some(s) => s.client.write(encoded, flags.volatile),
            None => false,
        }
    }

    fn deliver_with_ack(&self, sid: &str, encoded: &Encoded, ack_id: u64, sink: &AckSink) -> bool {
        match self.socket(sid) {
            Some(s) => {
                s.register_broadcast_ack(ack_id, sink.clone());
                s.client.write(encoded, false)
            }
            None => false,
        }
    }

    fn next_ack_id(&self) -> u64 {
        NamespaceInner::next_ack_id(self)
    }

    fn socket_info(&self, sid: &str) -> Option<SocketInfo> {
        let s = self.socket(sid)?;
        Some(SocketInfo {
            id: s.id().to_owned(),
            handshake: s.handshake().clone(),
            rooms: s.rooms().iter().map(|r| r.to_string()).collect(),
            data: s.data_value(),
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

/// A namespace (`io.of("/chat")`). Cloning shares it.
#[derive(Clone)]
pub struct Namespace {
    pub(crate) inner: Arc<NamespaceInner>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .field("sockets", &self.inner.len())
            .finish()
    }
}

impl Namespace {
    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs for every socket that joins, after the middlewares accepted it and its CONNECT was sent.
    /// The socket's events wait until the handler returns, so listeners added here see every event.
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
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
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
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
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        self.inner
            .sockets
            .iter()
            .map(|s| s.value().clone())
            .collect()
    }

    /// A connected socket of this node by id.
    pub fn socket(&self, id: &str) -> Option<Arc<Socket>> {
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

    /// Ack timeout for `emit_with_ack`.
    pub fn timeout(&self, timeout: std::time::Duration) -> BroadcastOperator {
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

    /// Emits to every socket and collects their acks.
    pub async fn emit_with_ack<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, (AckError, Vec<AckArgs>)> {
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

    /// Emits to the other nodes and collects their acks until `timeout` (zero responses on one node).
    pub async fn server_side_emit_with_ack<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        timeout: std::time::Duration,
    ) -> Result<Vec<AckArgs>, (AckError, Vec<AckArgs>)> {
        let args =
            ferrio_proto::value::to_args(data).map_err(|e| (AckError::Emit(e.into()), vec![]))?;
        let (tx, rx) = mpsc::unbounded_channel();
        if self
            .inner
            .adapter()
            .server_side_emit(event.to_owned(), args, Some(tx))
            .await
            .is_err()
        {
            return Err((AckError::Disconnected, vec![]));
        }
        crate::operators::collect_acks(rx, Some(timeout)).await
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
