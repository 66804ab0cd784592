//! The Socket.IO server (`io`): namespaces over one Engine.IO server.
//!
//! The top of the server core: it holds the namespaces and gives each Engine.IO session a `Client`.
//! Namespaces and clients reach back to it only through the `Registry` and `Namespaces` traits.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use ferrio_proto::engine::{CloseReason, Data, TransportKind};
use ferrio_proto::socket::{JsonParser, Parser};
use ferrio_proto::value::Value;
use parking_lot::RwLock;

use crate::ack::{AckArgs, BroadcastAckError, EmitError};
use crate::adapter::{AdapterFactory, RecoveryOptions, Room, memory_adapter};
use crate::client::{Client, Namespaces};
use crate::conn::Conn;
use crate::engine::{
    BoxFuture, Cookie, Cors, Engine, EngineConfig, EngineConfigBuilder, EngineHandler,
    HttpCompression, PerMessageDeflate, Socket as Session, setters,
};
use crate::namespace::{ConnectError, Namespace, NamespaceConfig, NamespaceInner, Registry};
use crate::operators::{BroadcastOperator, RemoteSocket};
use crate::serve_client::ClientFiles;
use crate::service::{EngineLayer, EngineService, NotFound};
use crate::socket::{DisconnectReason, Socket};

/// Socket.IO server options; `engine` holds the Engine.IO ones (path `/socket.io/` here). Built with
/// [`IoConfig::builder`] (or changed field by field on a default), so that a new option is not a
/// breaking change.
#[derive(Clone)]
#[non_exhaustive]
pub struct IoConfig {
    /// Engine.IO options.
    pub engine: EngineConfig,
    /// Time a client has to join a namespace after connecting (45 s).
    pub connect_timeout: Duration,
    /// Remove a child of a dynamic namespace when its last socket leaves (off).
    pub cleanup_empty_child_namespaces: bool,
    /// Events queued per socket while its handlers run; past it, the connection's reader waits (256).
    pub max_pending_events: usize,
    /// How long `emit_with_ack` waits when no `timeout(d)` was given (none, as socket.io: until the
    /// recipients answer or disconnect).
    pub ack_timeout: Option<Duration>,
    /// Adapter of each namespace (in-memory).
    pub adapter: AdapterFactory,
    /// Packet parser (JSON, at most 10 attachments per packet: socket.io-parser's `maxAttachments`,
    /// set with `JsonParser { max_attachments: n }`). A packet announcing more closes the connection
    /// ("parse error").
    pub parser: Arc<dyn Parser>,
    /// Serve the official browser bundle under the path (on).
    pub serve_client: bool,
    /// Where the bundle is: the `dist/` folder of the npm package `socket.io-client`
    /// (`node_modules/socket.io-client/dist`, as Node would resolve it from the working directory).
    pub client_dist: std::path::PathBuf,
    /// Connection state recovery (off): a client whose connection dropped comes back with its id,
    /// rooms, `data` and the broadcasts it missed.
    pub connection_state_recovery: Option<ConnectionStateRecovery>,
    /// Children of dynamic namespaces (`of_fn`, `of_regex`) alive at once, over the whole server
    /// (10 000). Past it, a CONNECT to a new matching name is answered CONNECT_ERROR "Invalid
    /// namespace", as if it did not match; names already created keep working. Without
    /// `cleanup_empty_child_namespaces` a child lives as long as the server, so a pattern such as
    /// `^/room-\d+$` would let clients create namespaces (an adapter each, a few KB) without bound.
    /// `None`: no limit.
    pub max_dynamic_namespaces: Option<usize>,
    /// Rooms one socket may be in at once, its own room included (10 000). A join that would go past
    /// it adds none of its rooms: [`Socket::join`] returns [`JoinError::TooManyRooms`] and a warning is
    /// logged (bulk joins such as `sockets_join` skip that socket, with the same warning). Each
    /// membership costs about 150 bytes, so the default bounds one socket's rooms to about 1.5 MB while
    /// leaving room for an application that follows thousands of topics. `None`: no limit.
    ///
    /// [`JoinError::TooManyRooms`]: crate::JoinError::TooManyRooms
    pub max_rooms_per_socket: Option<usize>,
}

/// Connection state recovery options (`connectionStateRecovery`).
///
/// A socket that drops for a reason that allows it (transport close or error, ping timeout: never a
/// voluntary disconnect or a server-side one) is kept as a session; a client that presents its
/// session's private id and the offset of the last broadcast it got within
/// `max_disconnection_duration` gets the same socket id, rooms and `data` back, then every broadcast
/// it missed, in order, before any new packet ([`Socket::recovered`] is then true).
///
/// Only broadcasts (`io.emit`, `to(..).emit`, …) are kept and carry an offset, not `socket.emit`,
/// volatile packets or packets expecting acks, as in socket.io. The adapter keeps them: the in-memory
/// one does; one that does not support recovery never restores a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStateRecovery {
    /// How long a dropped session and the broadcasts it may miss are kept (2 min).
    pub max_disconnection_duration: Duration,
    /// Whether a restored socket skips the namespace's middlewares (true).
    pub skip_middlewares: bool,
    /// The most broadcasts kept for replay (10 000): a client whose last offset is older gets a new
    /// socket rather than a replay with a gap.
    pub max_stored_packets: usize,
}

impl Default for ConnectionStateRecovery {
    fn default() -> Self {
        let defaults = RecoveryOptions::default();
        ConnectionStateRecovery {
            max_disconnection_duration: defaults.max_disconnection_duration,
            skip_middlewares: true,
            max_stored_packets: defaults.max_packets,
        }
    }
}

impl ConnectionStateRecovery {
    /// Sets `max_disconnection_duration`.
    pub fn max_disconnection_duration(mut self, d: Duration) -> Self {
        self.max_disconnection_duration = d;
        self
    }

    /// Sets `skip_middlewares`.
    pub fn skip_middlewares(mut self, skip: bool) -> Self {
        self.skip_middlewares = skip;
        self
    }

    /// Sets `max_stored_packets`.
    pub fn max_stored_packets(mut self, n: usize) -> Self {
        self.max_stored_packets = n;
        self
    }

    pub(crate) fn adapter_options(&self) -> RecoveryOptions {
        RecoveryOptions {
            max_disconnection_duration: self.max_disconnection_duration,
            max_packets: self.max_stored_packets,
        }
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            engine: EngineConfig {
                path: "/socket.io/".into(),
                // Generous enough for a reconnection storm behind a reverse proxy (every client then
                // shares the proxy's address, and a handshake lasts until the CONNECT, one or two round
                // trips), small enough that one address cannot hold sessions without bound until
                // `connect_timeout`.
                max_pending_handshakes_per_address: Some(1_000),
                ..EngineConfig::default()
            },
            connect_timeout: Duration::from_millis(45_000),
            cleanup_empty_child_namespaces: false,
            max_pending_events: 256,
            ack_timeout: None,
            adapter: memory_adapter(),
            parser: Arc::new(JsonParser::default()),
            serve_client: true,
            client_dist: "node_modules/socket.io-client/dist".into(),
            connection_state_recovery: None,
            max_dynamic_namespaces: Some(10_000),
            max_rooms_per_socket: Some(10_000),
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
            .field("ack_timeout", &self.ack_timeout)
            .field("connection_state_recovery", &self.connection_state_recovery)
            .field("max_dynamic_namespaces", &self.max_dynamic_namespaces)
            .field("max_rooms_per_socket", &self.max_rooms_per_socket)
            .finish_non_exhaustive()
    }
}

impl IoConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> IoConfigBuilder {
        IoConfigBuilder {
            config: IoConfig::default(),
        }
    }
}

/// Builds an [`IoConfig`]: every method is an option, named as the official one in snake_case. The
/// Engine.IO options are here too, applied to the engine under `/socket.io/`.
#[derive(Debug, Clone)]
pub struct IoConfigBuilder {
    config: IoConfig,
}

/// Setters of Engine.IO options, forwarded to `config.engine`.
macro_rules! engine_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.engine.$name = value.into();
                self
            }
        )*
    };
}

impl IoConfigBuilder {
    setters! {
        /// Time a client has to join a namespace after connecting.
        connect_timeout: Duration,
        /// Remove a child of a dynamic namespace when its last socket leaves.
        cleanup_empty_child_namespaces: bool,
        /// Events queued per socket while its handlers run.
        max_pending_events: usize,
        /// How long `emit_with_ack` waits when no `timeout(d)` was given.
        ack_timeout: Option<Duration>,
        /// Adapter of each namespace.
        adapter: AdapterFactory,
        /// Packet parser.
        parser: Arc<dyn Parser>,
        /// Serve the official browser bundle under the path.
        serve_client: bool,
        /// Where the browser bundle is.
        client_dist: impl Into<std::path::PathBuf>,
        /// Connection state recovery (`Some(ConnectionStateRecovery::default())` turns it on).
        connection_state_recovery: impl Into<Option<ConnectionStateRecovery>>,
        /// Children of dynamic namespaces alive at once (`None`: no limit).
        max_dynamic_namespaces: Option<usize>,
        /// Rooms one socket may be in at once (`None`: no limit).
        max_rooms_per_socket: Option<usize>,
    }

    engine_setters! {
        /// Path the server answers on.
        path: impl Into<String>,
        /// Also answer on the path without its trailing slash.
        add_trailing_slash: bool,
        /// Allowed transports, in order of preference.
        transports: Vec<TransportKind>,
        /// Whether polling sessions may upgrade to websocket.
        allow_upgrades: bool,
        /// Time between the server's pings.
        ping_interval: Duration,
        /// Time the client has to answer a ping.
        ping_timeout: Duration,
        /// Time the client has to complete an upgrade.
        upgrade_timeout: Duration,
        /// Largest POST body or websocket message, in bytes.
        max_http_buffer_size: usize,
        /// Cross-origin policy.
        cors: impl Into<Option<Cors>>,
        /// The sid cookie.
        cookie: impl Into<Option<Cookie>>,
        /// Compression of polling responses (`None`: off).
        http_compression: Option<HttpCompression>,
        #[doc = "Bytes queued for one session before it counts as a slow consumer."] max_buffered_bytes: usize,
        /// Frames queued for one session before it counts as a slow consumer.
        max_buffered_packets: usize,
        /// Time a graceful close waits for a poll to fetch the last packets.
        close_timeout: Duration,
        /// Time allowed between two chunks of a request body.
        body_read_timeout: Duration,
        /// Also accept Engine.IO v3 / Socket.IO v4 clients (socket.io-client 2.x) and JSONP polling.
        allow_eio3: bool,
        /// Handshakes in progress from one remote address at most (`None`: no limit).
        max_pending_handshakes_per_address: Option<usize>,
        /// permessage-deflate on websocket connections (`None`: off, the default).
        per_message_deflate: Option<PerMessageDeflate>,
    }

    /// Applies Engine.IO options that take a closure (`allow_request`, `initial_headers`, `headers`,
    /// `generate_id`) through the engine's own builder.
    pub fn engine_with(
        mut self,
        f: impl FnOnce(EngineConfigBuilder) -> EngineConfigBuilder,
    ) -> Self {
        self.config.engine = f(EngineConfigBuilder::from(self.config.engine)).build();
        self
    }

    /// Every Engine.IO option at once (its `path` included: set it to `/socket.io/` to keep the default).
    pub fn engine(mut self, engine: impl Into<EngineConfig>) -> Self {
        self.config.engine = engine.into();
        self
    }

    /// The options.
    pub fn build(self) -> IoConfig {
        self.config
    }
}

impl From<IoConfig> for IoConfigBuilder {
    /// A builder starting from these options.
    fn from(config: IoConfig) -> Self {
        IoConfigBuilder { config }
    }
}

impl From<IoConfigBuilder> for IoConfig {
    fn from(b: IoConfigBuilder) -> Self {
        b.build()
    }
}

type NamespaceMatcher = Arc<dyn Fn(&str, Option<&Value>) -> bool + Send + Sync>;

pub(crate) struct IoInner {
    config: IoConfig,
    ns_config: Arc<NamespaceConfig>,
    pub(crate) nsps: DashMap<String, Arc<NamespaceInner>>,
    parents: RwLock<Vec<(NamespaceMatcher, Arc<NamespaceInner>)>>,
    connect_timeouts: Arc<ConnectTimeouts>,
    /// Children of dynamic namespaces in `nsps` (`max_dynamic_namespaces`).
    dynamic_children: std::sync::atomic::AtomicUsize,
    me: Weak<IoInner>,
    pub(crate) namespace_hooks: crate::introspect::NamespaceHooks,
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
                    client.close();
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
    fn registry(&self) -> Weak<dyn Registry> {
        self.me.clone()
    }

    fn new_namespace(&self, name: String, is_parent: bool) -> Arc<NamespaceInner> {
        NamespaceInner::new(
            name,
            self.registry(),
            self.ns_config.clone(),
            None,
            is_parent,
        )
    }
}

impl Namespaces for IoInner {
    fn namespace_for(&self, name: &str, auth: Option<&Value>) -> Option<Arc<NamespaceInner>> {
        if let Some(ns) = self.nsps.get(name) {
            return Some(ns.clone());
        }
        let parents = self.parents.read().clone();
        for (matches, parent) in parents {
            if matches(name, auth) {
                use std::sync::atomic::Ordering;
                if let Some(max) = self.config.max_dynamic_namespaces
                    && self.dynamic_children.load(Ordering::Acquire) >= max
                {
                    // Answered as a name that matches nothing: the client learns no more than that.
                    tracing::warn!(
                        namespace = name,
                        max,
                        "namespace refused: max_dynamic_namespaces reached"
                    );
                    return None;
                }
                let child = parent.child(name);
                // Two CONNECTs racing for one new name get the same child; it is counted once.
                if self.nsps.insert(name.to_owned(), child.clone()).is_none() {
                    self.dynamic_children.fetch_add(1, Ordering::AcqRel);
                    self.namespace_hooks.created(&child);
                }
                return Some(child);
            }
        }
        None
    }
}

impl Registry for IoInner {
    fn forget_namespace(&self, name: &str) {
        if let Some((_, ns)) = self.nsps.remove(name)
            && ns.is_child()
        {
            self.dynamic_children
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// The Engine.IO handler of the Socket.IO server: each session's state is its `Client`.
struct Handler(Arc<IoInner>);

impl EngineHandler for Handler {
    type State = Arc<Client>;

    fn on_open(&self, session: &Arc<Session>) -> Arc<Client> {
        let conn = Conn::new(session.clone(), self.0.config.parser.clone());
        let client = Client::new(conn, self.0.clone(), self.0.config.parser.decoder());
        self.0.connect_timeouts.push(&client);
        if session.protocol() == ferrio_proto::engine::Protocol::V3 {
            client.connect_main();
        }
        client
    }

    fn on_message(&self, _: &Arc<Session>, client: &Arc<Client>, data: Data) {
        client.on_data(data);
    }

    fn on_close(&self, _: &Arc<Session>, client: &Arc<Client>, reason: CloseReason) {
        client.on_close(reason);
    }

    fn backpressure(&self, _: &Arc<Session>, client: &Arc<Client>) -> Option<BoxFuture<()>> {
        let socket = client.pending_overflow()?;
        Some(Box::pin(async move { socket.flush_overflow().await }))
    }
}

/// A Socket.IO server. Cloning shares it.
#[derive(Clone)]
pub struct Io {
    pub(crate) inner: Arc<IoInner>,
    engine: Engine,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("config", &self.inner.config)
            .field("clients", &self.engine.clients_count())
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
        let engine_config = config.engine.clone();
        let connect_timeout = config.connect_timeout;
        let ns_config = Arc::new(NamespaceConfig {
            parser: config.parser.clone(),
            adapter: config.adapter.clone(),
            cleanup_empty_child_namespaces: config.cleanup_empty_child_namespaces,
            max_pending_events: config.max_pending_events,
            ack_timeout: config.ack_timeout,
            recovery: config.connection_state_recovery.clone(),
            max_rooms_per_socket: config.max_rooms_per_socket,
        });
        let inner = Arc::new_cyclic(|me| IoInner {
            config,
            ns_config,
            nsps: DashMap::new(),
            parents: RwLock::new(Vec::new()),
            connect_timeouts: Arc::new(ConnectTimeouts::new(connect_timeout)),
            dynamic_children: Default::default(),
            me: me.clone(),
            namespace_hooks: Default::default(),
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
        let name = ferrio_proto::socket::normalize_namespace(name);
        // An existing one is found without copying its name (`io.to(room)` comes through here for
        // every broadcast on the main namespace).
        if let Some(inner) = self.inner.nsps.get(&*name) {
            return Namespace {
                inner: inner.clone(),
            };
        }
        let name = name.into_owned();
        let mut created = false;
        let inner = self
            .inner
            .nsps
            .entry(name.clone())
            .or_insert_with(|| {
                created = true;
                self.inner.new_namespace(name, false)
            })
            .clone();
        if created {
            self.inner.namespace_hooks.created(&inner);
        }
        Namespace { inner }
    }

    /// A dynamic namespace: every name the function accepts (given the client's auth) becomes a child
    /// that shares this namespace's middlewares and handlers. Broadcasting on it reaches every child.
    pub fn of_fn(
        &self,
        accept: impl Fn(&str, Option<&Value>) -> bool + Send + Sync + 'static,
    ) -> Namespace {
        let parent = self
            .inner
            .new_namespace(format!("/_{}", self.inner.parents.read().len()), true);
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

    /// Connection handler of the main namespace (see [`Namespace::on_connection`]).
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.main().on_connection(handler)
    }

    /// Middleware of the main namespace (`io.use`).
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
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

    /// Ack timeout for `emit_with_ack` and `server_side_emit_with_ack`.
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
    ) -> Result<Vec<AckArgs>, BroadcastAckError> {
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

    /// Server-side emit on the main namespace, collecting the other nodes' acks (see
    /// [`BroadcastOperator::server_side_emit_with_ack`]).
    pub async fn server_side_emit_with_ack<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<Vec<AckArgs>, BroadcastAckError> {
        self.main().server_side_emit_with_ack(event, data).await
    }

    /// Number of connected clients (Engine.IO connections).
    pub fn clients_count(&self) -> usize {
        self.engine.clients_count()
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

    /// Serves on `listener` until `shutdown` completes, then stops accepting connections and closes the
    /// server ([`close`](Self::close): every socket disconnects with "server shutting down").
    pub async fn serve_until(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let served = crate::service::serve_until(listener, self.service(), shutdown).await;
        self.close().await;
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_official() {
        let c = IoConfig::default();
        assert_eq!(c.engine.path, "/socket.io/");
        assert_eq!(c.connect_timeout, Duration::from_millis(45_000));
        assert!(!c.cleanup_empty_child_namespaces && c.serve_client);
        assert_eq!(c.ack_timeout, None);
    }

    #[test]
    fn builder_sets_socket_io_and_engine_io_options() {
        let c = IoConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .ack_timeout(Some(Duration::from_secs(2)))
            .ping_interval(Duration::from_secs(3))
            .cors(Cors::any())
            .build();
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.ack_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.engine.ping_interval, Duration::from_secs(3));
        assert!(c.engine.cors.is_some());
        // Engine options set one by one keep the Socket.IO path.
        assert_eq!(c.engine.path, "/socket.io/");
        let c = IoConfigBuilder::from(c)
            .cors(None)
            .path("/io/")
            .engine_with(|e| e.generate_id(|_| "fixed".into()))
            .build();
        assert!(c.engine.generate_id.is_some());
        assert!(c.engine.cors.is_none());
        assert_eq!(c.engine.path, "/io/");
        assert_eq!(c.engine.ping_interval, Duration::from_secs(3));
    }
}
