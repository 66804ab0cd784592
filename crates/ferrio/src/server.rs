//! The Socket.IO server (`io`): namespaces over one Engine.IO server.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use ferrio_proto::engine::{CloseReason, Data};
use ferrio_proto::socket::{JsonParser, Parser};
use ferrio_proto::value::Value;
use parking_lot::RwLock;

use crate::adapter::{AdapterFactory, Room, memory_adapter};
use crate::client::Client;
use crate::engine::{BoxFuture, Engine, EngineConfig, EngineHandler, Socket as Conn};
use crate::namespace::{ConnectError, Namespace, NamespaceInner};
use crate::operators::{BroadcastOperator, RemoteSocket};
use crate::serve_client::ClientFiles;
use crate::service::{EngineLayer, EngineService, NotFound};
use crate::socket::{AckArgs, AckError, DisconnectReason, EmitError, Socket};

/// Socket.IO server options; `engine` holds the Engine.IO ones (path `/socket.io/` here).
#[derive(Clone)]
pub struct IoConfig {
    /// Engine.IO options.
    pub engine: EngineConfig,
    /// Time a client has to join a namespace after connecting (45 s).
    pub connect_timeout: Duration,
    /// Remove a child of a dynamic namespace when its last socket leaves (off).
    pub cleanup_empty_child_namespaces: bool,
    /// Events queued per socket while its handlers run; past it, the connection's reader waits (256).
    pub max_pending_events: usize,
    /// Adapter of each namespace (in-memory).
    pub adapter: AdapterFactory,
    /// Packet parser (JSON, at most 10 attachments per packet).
    pub parser: Arc<dyn Parser>,
    /// Serve the official browser bundle under the path (on).
    pub serve_client: bool,
    /// Where the bundle is: the `dist/` folder of the npm package `socket.io-client`
    /// (`node_modules/socket.io-client/dist`, as Node would resolve it from the working directory).
    pub client_dist: std::path::PathBuf,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            engine: EngineConfig {
                path: "/socket.io/".into(),
                ..EngineConfig::default()
            },
            connect_timeout: Duration::from_millis(45_000),
            cleanup_empty_child_namespaces: false,
            max_pending_events: 256,
            adapter: memory_adapter(),
            parser: Arc::new(JsonParser::default()),
            serve_client: true,
            client_dist: "node_modules/socket.io-client/dist".into(),
        }
    }
}

impl std::fmt::Debug for IoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoConfig")
            .field("engine", &self.engine)
            .field("connect_timeout", &self.connect_timeout)
            .field(
                "cleanup_empty_child_namespaces",
                &self.cleanup_empty_child_namespaces,
            )
            .field("max_pending_events", &self.max_pending_events)
            .finish_non_exhaustive()
    }
}

type NamespaceMatcher = Arc<dyn Fn(&str, Option<&Value>) -> bool + Send + Sync>;

pub(crate) struct IoInner {
    pub(crate) config: IoConfig,
    pub(crate) parser: Arc<dyn Parser>,
    nsps: DashMap<String, Arc<NamespaceInner>>,
    parents: RwLock<Vec<(NamespaceMatcher, Arc<NamespaceInner>)>>,
    clients: DashMap<Arc<str>, Arc<Client>>,
    connect_timeouts: Arc<ConnectTimeouts>,
    me: Weak<IoInner>,
}

/// Clients that must join a namespace within `connect_timeout`. Every deadline is "now + the same
/// duration", so a FIFO queue is in deadline order and one task serves every client: no timer or task per
/// connection.
struct ConnectTimeouts {
    timeout: Duration,
    queue: parking_lot::Mutex<std::collections::VecDeque<(tokio::time::Instant, Weak<Client>)>>,
    wake: tokio::sync::Notify,
    started: std::sync::atomic::AtomicBool,
}

impl ConnectTimeouts {
    fn new(timeout: Duration) -> Self {
        ConnectTimeouts {
            timeout,
            queue: parking_lot::Mutex::new(std::collections::VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn push(self: &Arc<ConnectTimeouts>, client: &Arc<Client>) {
        if !self.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tokio::spawn(sweep_connect_timeouts(Arc::downgrade(self)));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let was_empty = {
            let mut q = self.queue.lock();
            q.push_back((deadline, Arc::downgrade(client)));
            q.len() == 1
        };
        if was_empty {
            self.wake.notify_one();
        }
    }
}

/// The task behind [`ConnectTimeouts`]; it ends within a minute of the server being dropped.
async fn sweep_connect_timeouts(timeouts: Weak<ConnectTimeouts>) {
    loop {
        let Some(t) = timeouts.upgrade() else { return };
        let front = t.queue.lock().front().map(|(d, _)| *d);
        match front {
            Some(deadline) if deadline <= tokio::time::Instant::now() => {
                let expired = t.queue.lock().pop_front();
                if let Some((_, client)) = expired
                    && let Some(client) = client.upgrade()
                    && !client.has_joined()
                {
                    client.conn.close();
                }
            }
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(60), t.wake.notified()).await;
            }
        }
    }
}

impl IoInner {
    pub(crate) fn is_parent(&self, ns: &NamespaceInner) -> bool {
        self.parents
            .read()
            .iter()
            .any(|(_, p)| std::ptr::eq(p.as_ref(), ns))
    }

    /// The namespace a client asks for: an existing one, or a new child of a dynamic namespace.
    pub(crate) fn namespace_for(
        &self,
        name: &str,
        auth: Option<&Value>,
    ) -> Option<Arc<NamespaceInner>> {
        if let Some(ns) = self.nsps.get(name) {
            return Some(ns.clone());
        }
        let parents = self.parents.read().clone();
        for (matches, parent) in parents {
            if matches(name, auth) {
                let mut children = parent.children.lock();
                let child = children
                    .entry(name.to_owned())
                    .or_insert_with(|| {
                        NamespaceInner::new(
                            name.to_owned(),
                            self.me.clone(),
                            &self.config.adapter,
                            Some(parent.clone()),
                        )
                    })
                    .clone();
                drop(children);
                self.nsps.insert(name.to_owned(), child.clone());
                return Some(child);
            }
        }
        None
    }

    pub(crate) fn remove_child(&self, parent: &Arc<NamespaceInner>, name: &str) {
        if let Some(child) = parent.children.lock().remove(name) {
            child.adapter().close();
        }
        self.nsps.remove(name);
    }
}

struct Handler(Arc<IoInner>);

impl Handler {
    /// The client of a connection, kept in the connection itself by `on_open` (a `Weak`: the client
    /// holds the connection, and `clients` owns the client until the connection closes).
    /// A closed connection has no client any more, as when this was a lookup in `clients`.
    fn client(conn: &Conn) -> Option<Arc<Client>> {
        if conn.closed.is_cancelled() {
            return None;
        }
        conn.handler_state
            .get()?
            .downcast_ref::<Weak<Client>>()?
            .upgrade()
    }
}

impl EngineHandler for Handler {
    fn on_open(&self, conn: &Arc<Conn>) {
        let client = Client::new(conn.clone(), self.0.clone());
        let _ = conn.handler_state.set(Box::new(Arc::downgrade(&client)));
        self.0.clients.insert(Arc::from(conn.id()), client.clone());
        self.0.connect_timeouts.push(&client);
    }

    fn on_message(&self, conn: &Arc<Conn>, data: Data) {
        if let Some(client) = Handler::client(conn) {
            client.on_data(data);
        }
    }

    fn on_close(&self, conn: &Arc<Conn>, reason: CloseReason) {
        if let Some((_, client)) = self.0.clients.remove(conn.id()) {
            client.on_close(reason);
        }
    }

    fn backpressure(&self, conn: &Arc<Conn>) -> Option<BoxFuture<()>> {
        let socket = Handler::client(conn)?.pending_overflow()?;
        Some(Box::pin(async move { socket.flush_overflow().await }))
    }
}

/// A Socket.IO server. Cloning shares it.
#[derive(Clone)]
pub struct Io {
    inner: Arc<IoInner>,
    engine: Engine,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("config", &self.inner.config)
            .field("clients", &self.inner.clients.len())
            .finish()
    }
}

impl Default for Io {
    fn default() -> Self {
        Io::new(IoConfig::default())
    }
}

impl Io {
    /// A server with these options; the main namespace `/` exists from the start.
    pub fn new(config: IoConfig) -> Io {
        let parser = config.parser.clone();
        let engine_config = config.engine.clone();
        let connect_timeout = config.connect_timeout;
        let inner = Arc::new_cyclic(|me| IoInner {
            config,
            parser,
            nsps: DashMap::new(),
            parents: RwLock::new(Vec::new()),
            clients: DashMap::new(),
            connect_timeouts: Arc::new(ConnectTimeouts::new(connect_timeout)),
            me: me.clone(),
        });
        let engine = Engine::new(engine_config, Handler(inner.clone()));

        let io = Io { inner, engine };
        io.of("/");
        io
    }

    /// The Engine.IO server underneath.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The namespace `name`, created if needed (`io.of("/chat")`).
    pub fn of(&self, name: &str) -> Namespace {
        let name = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        let inner = self
            .inner
            .nsps
            .entry(name.clone())
            .or_insert_with(|| {
                NamespaceInner::new(
                    name,
                    self.inner.me.clone(),
                    &self.inner.config.adapter,
                    None,
                )
            })
            .clone();
        Namespace { inner }
    }

    /// A dynamic namespace: every name the function accepts (given the client's auth) becomes a child
    /// that shares this namespace's middlewares and handlers. Broadcasting on it reaches every child.
    pub fn of_fn(
        &self,
        accept: impl Fn(&str, Option<&Value>) -> bool + Send + Sync + 'static,
    ) -> Namespace {
        let parent = NamespaceInner::new(
            format!("/_{}", self.inner.parents.read().len()),
            self.inner.me.clone(),
            &self.inner.config.adapter,
            None,
        );
        self.inner
            .parents
            .write()
            .push((Arc::new(accept), parent.clone()));
        Namespace { inner: parent }
    }

    /// A dynamic namespace for every name matching `regex`.
    pub fn of_regex(&self, regex: regex::Regex) -> Namespace {
        self.of_fn(move |name, _| regex.is_match(name))
    }

    fn main(&self) -> Namespace {
        self.of("/")
    }

    /// Connection handler of the main namespace.
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.main().on_connection(handler)
    }

    /// Middleware of the main namespace (`io.use`).
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.main().use_middleware(middleware)
    }

    /// Targets a room of the main namespace.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.main().to(room)
    }

    /// Same as `to`.
    pub fn within(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.main().to(room)
    }

    /// Everyone in the main namespace but a room.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.main().except(room)
    }

    /// Only this node.
    pub fn local(&self) -> BroadcastOperator {
        self.main().local()
    }

    /// Droppable packets.
    pub fn volatile(&self) -> BroadcastOperator {
        self.main().volatile()
    }

    /// Ack timeout.
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.main().timeout(timeout)
    }

    /// Emits to everyone in the main namespace.
    pub fn emit<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.main().emit(event, data)
    }

    /// Emits to everyone in the main namespace and collects the acks.
    pub async fn emit_with_ack<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, (AckError, Vec<AckArgs>)> {
        self.main().emit_with_ack(event, data).await
    }

    /// Describes the sockets of the main namespace.
    pub async fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        self.main().fetch_sockets().await
    }

    /// Disconnects the sockets of the main namespace.
    pub async fn disconnect_sockets(&self, close: bool) {
        self.main().disconnect_sockets(close).await
    }

    /// Server-side emit on the main namespace.
    pub async fn server_side_emit<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.main().server_side_emit(event, data).await
    }

    /// Number of connected clients (Engine.IO connections).
    pub fn clients_count(&self) -> usize {
        self.inner.clients.len()
    }

    /// Number of namespaces (dynamic children included).
    pub fn namespaces_count(&self) -> usize {
        self.inner.nsps.len()
    }

    /// Disconnects every socket with reason "server shutting down" and closes every connection.
    pub async fn close(&self) {
        let nsps: Vec<_> = self.inner.nsps.iter().map(|n| n.value().clone()).collect();
        for ns in nsps {
            Namespace { inner: ns }.close_all(DisconnectReason::ServerShuttingDown);
        }
        self.engine.close();
    }

    /// A tower layer answering under the path, for axum or hyper.
    pub fn layer(&self) -> EngineLayer {
        let layer = EngineLayer::new(self.engine.clone());
        match self.client_files() {
            Some(files) => layer.with_client_files(files),
            None => layer,
        }
    }

    /// A tower service answering under the path (404 elsewhere).
    pub fn service(&self) -> EngineService<NotFound> {
        let service = EngineService::new(self.engine.clone(), NotFound);
        match self.client_files() {
            Some(files) => service.with_client_files(files),
            None => service,
        }
    }

    fn client_files(&self) -> Option<ClientFiles> {
        let c = &self.inner.config;
        c.serve_client
            .then(|| ClientFiles::new(c.client_dist.clone(), &c.engine.path))
    }

    /// Serves on `listener` until the process ends.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        crate::service::serve(listener, self.service()).await
    }
}
