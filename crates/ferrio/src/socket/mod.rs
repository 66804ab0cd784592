//! A Socket.IO socket: one client in one namespace.
//!
//! Each socket handles its events in arrival order on its own task: an async handler that awaits holds
//! back the socket's later events (not other sockets', and not the connection's heartbeats). The
//! connection handlers are the exception, as in socket.io: events flow while they await.
//!
//! This module sits under the namespace and the client: what it needs from them goes through
//! [`NamespaceLink`] and [`ClientLink`], which they implement, so that it imports neither.

mod event;
mod listeners;
mod queue;
mod send;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ferrio_proto::engine::TransportKind;
use ferrio_proto::socket::{AckTable, Packet};
use ferrio_proto::value::{Value, ValueError, to_args, to_value};
use futures_util::FutureExt;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::oneshot;

pub use event::{AckSender, Event};
pub use ferrio_proto::socket::DisconnectReason;
pub use listeners::ListenerId;
pub(crate) use listeners::Listeners;
use listeners::Matched;
pub(crate) use queue::Job;
use queue::Queue;

use crate::ack::{AckArgs, AckError, EmitError};
use crate::adapter::{
    AckEvent, AckSink, Adapter, BroadcastOptions, Handshake, JoinError, Recipient, Room, Session,
    Sid,
};
use crate::conn::Conn;
use crate::operators::{BroadcastOperator, Scope};

/// What a socket asks of its namespace (implemented by the namespace, which sits above).
pub(crate) trait NamespaceLink: Send + Sync + 'static {
    /// A fresh ack id, unique in the namespace (broadcast acks use the same sequence).
    fn next_ack_id(&self) -> u64;
    /// The socket disconnected: stop routing to it.
    fn forget(&self, sid: &Sid);
    /// The namespace itself, for `Socket::namespace`, which the namespace module implements.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What a socket asks of its client, the connection's multiplexer (implemented by the client).
pub(crate) trait ClientLink: Send + Sync + 'static {
    /// The socket `sid` left namespace `nsp`.
    fn remove(&self, nsp: &str, sid: &Sid);
    /// Whether `sid` is still the client's socket in `nsp` (it may have left while its middlewares ran).
    fn has(&self, nsp: &str, sid: &Sid) -> bool;
    /// A socket of the client joined its namespace (the connect timeout no longer applies).
    fn joined(&self);
    /// Disconnects every socket of the connection, then closes it.
    fn close_all(&self, reason: DisconnectReason);
}

/// `data` of a socket, stored as the user's type and serialized only when another node asks.
trait SocketData: Send + Sync + 'static {
    fn to_value(&self) -> Result<Value, ValueError>;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Serialize + Send + Sync + 'static> SocketData for T {
    fn to_value(&self) -> Result<Value, ValueError> {
        to_value(self)
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Who waits for an ack: one `emit_with_ack` of this socket, or a broadcast's fan-in.
enum AckSlot {
    Single(oneshot::Sender<Result<Vec<Value>, AckError>>),
    Broadcast(AckSink),
}

pub(crate) struct SocketInner {
    id: Sid,
    nsp: Arc<dyn NamespaceLink>,
    scope: Arc<dyn Scope>,
    client: Weak<dyn ClientLink>,
    conn: Conn,
    /// Built on first use from what the session kept of its request (see `Conn::handshake`): most
    /// applications never read it, and the maps cost more than the rest of an idle socket. Boxed, so
    /// that an unread one takes a pointer's room.
    handshake: OnceLock<Box<Handshake>>,
    /// The `auth` payload of the CONNECT packet, for the handshake.
    auth: Value,
    connected: AtomicBool,
    /// Owned by the socket's task (see `listeners`).
    listeners: Weak<Listeners>,
    /// Ids come from the namespace's sequence, which broadcasts share: one socket's ids never collide.
    acks: Mutex<AckTable<AckSlot>>,
    data: Mutex<Option<Arc<dyn SocketData>>>,
    extensions: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    queue: Queue,
    ack_timeout: Option<Duration>,
    /// The private id of its session, with connection state recovery on.
    pid: Option<Arc<str>>,
    recovered: bool,
}

impl SocketInner {
    fn write_broadcast(
        &self,
        encoded: &ferrio_proto::socket::Encoded,
        flags: &crate::adapter::BroadcastFlags,
    ) -> bool {
        self.conn.write_with(
            encoded.head.clone(),
            &encoded.attachments,
            flags.volatile,
            flags.compress.unwrap_or(true),
        )
    }
}

impl Recipient for SocketInner {
    fn sid(&self) -> &str {
        &self.id
    }

    /// Only while connected: a socket is handed to the adapter once it is in the namespace's map,
    /// and it leaves the map after it stops being connected. A disconnected socket leaves its
    /// deliveries to the namespace, which may hold them for a session restored under its sid.
    fn deliver(
        &self,
        encoded: &ferrio_proto::socket::Encoded,
        flags: &crate::adapter::BroadcastFlags,
    ) -> Option<bool> {
        self.connected
            .load(Ordering::Acquire)
            .then(|| self.write_broadcast(encoded, flags))
    }
}

/// A client connected to a namespace (`socket` in JavaScript). Cloning shares it, as `Io` and
/// `Namespace`: handlers get their own copy.
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("nsp", &self.nsp())
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Socket {}

/// What a new socket is made of; the namespace fills it in.
pub(crate) struct SocketParts {
    pub(crate) id: Sid,
    pub(crate) nsp: Arc<dyn NamespaceLink>,
    pub(crate) scope: Arc<dyn Scope>,
    pub(crate) client: Weak<dyn ClientLink>,
    pub(crate) conn: Conn,
    pub(crate) auth: Value,
    pub(crate) queue_capacity: usize,
    pub(crate) ack_timeout: Option<Duration>,
    pub(crate) pid: Option<Arc<str>>,
    pub(crate) recovered: bool,
}

/// What the socket's task owns: the reading end of its job queue and its listeners.
pub(crate) struct SocketTask {
    listeners: Arc<Listeners>,
    /// Whose queue this task reads: closed when the task ends, however it ends (middlewares refused,
    /// the client left meanwhile, or the disconnect ran).
    socket: Socket,
}

impl Drop for SocketTask {
    fn drop(&mut self) {
        self.socket.inner.queue.close();
    }
}

impl Socket {
    pub(crate) fn new(parts: SocketParts) -> (Socket, SocketTask) {
        let queue = Queue::new(parts.queue_capacity);
        let listeners = Arc::new(Listeners::default());
        let socket = Socket {
            inner: Arc::new(SocketInner {
                id: parts.id,
                nsp: parts.nsp,
                scope: parts.scope,
                client: parts.client,
                conn: parts.conn,
                handshake: OnceLock::new(),
                auth: parts.auth,
                connected: AtomicBool::new(false),
                listeners: Arc::downgrade(&listeners),
                acks: Mutex::new(AckTable::new()),
                data: Mutex::new(None),
                extensions: Mutex::new(HashMap::new()),
                queue,
                ack_timeout: parts.ack_timeout,
                pid: parts.pid,
                recovered: parts.recovered,
            }),
        };
        let task = SocketTask {
            listeners,
            socket: socket.clone(),
        };
        (socket, task)
    }

    /// The socket id (also the name of its own room).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn sid(&self) -> &Sid {
        &self.inner.id
    }

    /// The namespace name.
    pub fn nsp(&self) -> &str {
        self.inner.scope.name()
    }

    pub(crate) fn namespace_link(&self) -> &Arc<dyn NamespaceLink> {
        &self.inner.nsp
    }

    fn adapter(&self) -> &Arc<dyn Adapter> {
        self.inner.scope.adapter()
    }

    /// The handshake: headers, query, auth, address, time.
    pub fn handshake(&self) -> &Handshake {
        self.inner
            .handshake
            .get_or_init(|| Box::new(self.inner.conn.handshake(self.inner.auth.clone())))
    }

    /// Whether this socket took over a session that dropped (connection state recovery): same id,
    /// rooms and `data`, and the broadcasts it missed were sent before anything else.
    ///
    /// Its `data` is then the serialized value the session kept: read it with
    /// [`data_value`](Self::data_value) (or `data::<Value>()`), not as the type first stored.
    pub fn recovered(&self) -> bool {
        self.inner.recovered
    }

    pub(crate) fn pid(&self) -> Option<&str> {
        self.inner.pid.as_deref()
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    pub(crate) fn set_connected(&self) {
        self.inner.connected.store(true, Ordering::Release);
    }

    /// The Engine.IO revision of the socket's connection (v3: a socket.io-client 2.x client, which
    /// speaks Socket.IO protocol v4).
    pub fn protocol(&self) -> ferrio_proto::engine::Protocol {
        self.inner.conn.protocol()
    }

    /// The id of the underlying Engine.IO connection (shared by the namespaces of one client).
    pub fn conn_id(&self) -> &str {
        self.inner.conn.id()
    }

    /// The transport in use (`polling` until an upgrade to `websocket`).
    pub fn transport(&self) -> TransportKind {
        self.inner.conn.transport()
    }

    // ---- user data ----

    /// Stores `data` as it is: [`data`](Self::data) reads it back without copying or parsing. Other nodes
    /// see it (`fetch_sockets`) serialized, which is why it must be `Serialize`.
    pub fn set_data<T: Serialize + Send + Sync + 'static>(&self, data: T) {
        *self.inner.data.lock() = Some(Arc::new(data));
    }

    /// The `data` stored with `set_data`, if it is a `T`.
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let data = self.inner.data.lock().clone()?;
        data.into_any().downcast().ok()
    }

    /// `data` as other nodes see it: serialized (`{}` when unset, as in JavaScript).
    pub fn data_value(&self) -> Result<Value, ValueError> {
        match self.inner.data.lock().clone() {
            Some(d) => d.to_value(),
            None => Ok(Value::Object(Default::default())),
        }
    }

    /// Stores a local, typed value (not shared with other nodes), one per type.
    pub fn insert_extension<T: Any + Send + Sync>(&self, value: T) {
        self.inner
            .extensions
            .lock()
            .insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// A local, typed value stored with `insert_extension`.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.inner
            .extensions
            .lock()
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast().ok())
    }

    // ---- listeners ----

    /// Runs `f` on the listeners; does nothing once the socket's task has ended (disconnected).
    fn with_listeners<R>(&self, f: impl FnOnce(&Listeners) -> R) -> Option<R> {
        self.inner.listeners.upgrade().map(|l| f(&l))
    }

    /// Adds a listener of `event` (after those already there, as `EventEmitter.on`); it gets the socket
    /// and the event (arguments, ack). Every listener of an event runs, in order, each awaited.
    ///
    /// A socket's events run one at a time. When the socket has nothing else running, a listener starts
    /// on the task that read its event, and leaves it at its first `await` that waits: one that computes
    /// for long without awaiting holds its connection's reading meanwhile (as it would hold the whole
    /// process in JavaScript); move such work to `tokio::task::spawn_blocking`.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F) -> ListenerId
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener(event.into(), handler, false)
    }

    /// Adds a listener that runs for the next `event` only.
    pub fn once<F, Fut>(&self, event: impl Into<String>, handler: F) -> ListenerId
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener(event.into(), handler, true)
    }

    fn add_listener<F, Fut>(&self, event: String, handler: F, once: bool) -> ListenerId
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: listeners::EventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        // A disconnected socket takes no listener; its id is then one no listener has.
        self.with_listeners(|l| l.add(event, h, once))
            .unwrap_or(ListenerId::NONE)
    }

    /// Removes every listener of `event` (`removeAllListeners(event)`).
    pub fn off(&self, event: &str) {
        self.with_listeners(|l| l.off(event));
    }

    /// Removes one listener added with `on` or `once`; returns whether it was there.
    pub fn off_listener(&self, id: ListenerId) -> bool {
        self.with_listeners(|l| l.off_listener(id)).unwrap_or(false)
    }

    /// Sees every incoming event before its listeners (`onAny`).
    pub fn on_any(&self, f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static) {
        self.with_listeners(|l| l.write().hooks_mut().any.push(Arc::new(f)));
    }

    /// Like `on_any`, but runs before the listeners already added (`prependAny`).
    pub fn prepend_any(&self, f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static) {
        self.with_listeners(|l| l.write().hooks_mut().any.insert(0, Arc::new(f)));
    }

    /// Removes every catch-all listener (`offAny()`).
    pub fn off_any(&self) {
        self.with_listeners(|l| l.write().hooks_mut().any.clear());
    }

    /// Sees every outgoing event (`onAnyOutgoing`).
    pub fn on_any_outgoing(&self, f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static) {
        self.with_listeners(|l| l.write().hooks_mut().any_outgoing.push(Arc::new(f)));
    }

    /// Removes every outgoing catch-all listener.
    pub fn off_any_outgoing(&self) {
        self.with_listeners(|l| l.write().hooks_mut().any_outgoing.clear());
    }

    /// Runs before each incoming event (`socket.use`); an `Err` drops the event and goes to `on_error`.
    pub fn use_middleware(
        &self,
        f: impl Fn(&Socket, &Event) -> Result<(), Value> + Send + Sync + 'static,
    ) {
        self.with_listeners(|l| l.write().hooks_mut().middlewares.push(Arc::new(f)));
    }

    /// Receives the errors of `socket.use` middlewares (the `error` event).
    pub fn on_error(&self, f: impl Fn(&Socket, &Value) + Send + Sync + 'static) {
        self.with_listeners(|l| l.write().hooks_mut().errors.push(Arc::new(f)));
    }

    /// Runs when the socket is about to leave its rooms (`disconnecting`): `rooms()` still lists them.
    pub fn on_disconnecting<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.with_listeners(|l| {
            l.write()
                .hooks_mut()
                .disconnecting
                .push(Arc::new(move |s, r| Box::pin(f(s, r))))
        });
    }

    /// Runs once the socket has disconnected (`disconnect`).
    pub fn on_disconnect<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.with_listeners(|l| {
            l.write()
                .hooks_mut()
                .disconnect
                .push(Arc::new(move |s, r| Box::pin(f(s, r))))
        });
    }

    // ---- emitting ----

    /// Emits `event`: a tuple is several arguments, `()` none, anything else one.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.emit_data(event, data, None, false, true)
    }

    /// Emits `event` with raw arguments.
    pub fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.emit_inner(event, args, None, false, true)
    }

    /// Emits `event`, dropping it if the client cannot take it now.
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.emit_data(event, data, None, true, true)
    }

    /// Emits `event` and waits for the client's ack: until the server's `ack_timeout` if one is set,
    /// else until the socket disconnects (as socket.io). `socket.timeout(d).emit_with_ack(..)` sets a
    /// timeout for one emit.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<AckArgs, AckError> {
        self.emitter().emit_with_ack(event, data).await
    }

    fn emitter(&self) -> SocketEmitter {
        SocketEmitter {
            socket: self.clone(),
            timeout: self.inner.ack_timeout,
            volatile: false,
            compress: true,
        }
    }

    /// Emits to this socket with an ack timeout (`socket.timeout(ms).emit(..)`): the returned emitter
    /// targets this socket only. To broadcast with a timeout, use `socket.broadcast().timeout(d)`.
    pub fn timeout(&self, timeout: Duration) -> SocketEmitter {
        self.emitter().timeout(timeout)
    }

    /// Emits to this socket, dropping the packet if the client cannot take it now (`socket.volatile`).
    pub fn volatile(&self) -> SocketEmitter {
        self.emitter().volatile()
    }

    /// Emits to this socket with per-message deflate on or off for its packets (`socket.compress(false)`):
    /// with `false`, a websocket that negotiated deflate sends them uncompressed.
    pub fn compress(&self, compress: bool) -> SocketEmitter {
        self.emitter().compress(compress)
    }

    /// Emits the arguments `data` stands for. With the default parser, and no `on_any_outgoing`
    /// listener to show them to, they are written straight to the packet's text: building them as
    /// values first, only to write and drop them, was most of an emit's own work.
    fn emit_data<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        id: Option<u64>,
        volatile: bool,
        compress: bool,
    ) -> Result<(), EmitError> {
        if self.parser_writes_json_text() && !self.has_outgoing_listeners() {
            if ferrio_proto::socket::is_reserved_event(event) {
                return Err(EmitError::Reserved(event.to_owned()));
            }
            if let Some(encoded) =
                ferrio_proto::socket::encode_event_from(self.nsp(), event, data, id)?
            {
                return self.write_own_connected(encoded, volatile, compress);
            }
        }
        self.emit_inner(event, to_args(data)?, id, volatile, compress)
    }

    pub(crate) fn parser_writes_json_text(&self) -> bool {
        self.inner.conn.parser().writes_json_text()
    }

    fn has_outgoing_listeners(&self) -> bool {
        self.with_listeners(|l| !l.read().hooks().any_outgoing.is_empty())
            .unwrap_or(false)
    }

    fn emit_inner(
        &self,
        event: &str,
        args: Vec<Value>,
        id: Option<u64>,
        volatile: bool,
        compress: bool,
    ) -> Result<(), EmitError> {
        if ferrio_proto::socket::is_reserved_event(event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        let outgoing = self
            .with_listeners(|l| l.read().hooks().any_outgoing.clone())
            .unwrap_or_default();
        for f in &outgoing {
            f(self, event, &args);
        }
        // Written from its parts: no copy of the two names into a packet.
        self.write_connected(volatile, compress, |parser| {
            parser.encode_event(self.nsp(), event, args, id).0
        })
    }

    /// Encodes and writes one packet to this socket's connection.
    pub(crate) fn write_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        self.write_packet_with(packet, volatile, true)
    }

    fn write_packet_with(
        &self,
        packet: &Packet,
        volatile: bool,
        compress: bool,
    ) -> Result<(), EmitError> {
        if !self.connected()
            && !matches!(packet, Packet::ConnectError { .. } | Packet::Connect { .. })
        {
            return Err(EmitError::Disconnected);
        }
        self.write_own(self.inner.conn.encode(packet), volatile, compress)
    }

    /// Encodes with the connection's parser and writes one packet of this socket's, while it is
    /// connected: an event or an ack written from its parts.
    fn write_connected(
        &self,
        volatile: bool,
        compress: bool,
        encode: impl FnOnce(&dyn ferrio_proto::socket::Parser) -> ferrio_proto::socket::Encoded,
    ) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        self.write_own(encode(self.inner.conn.parser()), volatile, compress)
    }

    /// [`Socket::write_own`] of an event or ack of this socket's, while it is connected.
    pub(crate) fn write_own_connected(
        &self,
        encoded: ferrio_proto::socket::Encoded,
        volatile: bool,
        compress: bool,
    ) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        self.write_own(encoded, volatile, compress)
    }

    /// Writes one packet encoded for this socket's connection alone.
    fn write_own(
        &self,
        encoded: ferrio_proto::socket::Encoded,
        volatile: bool,
        compress: bool,
    ) -> Result<(), EmitError> {
        if self
            .inner
            .conn
            .write_with(encoded.head, &encoded.attachments, volatile, compress)
        {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }

    /// Encodes and writes a replayed broadcast, waiting for room in the connection's queue.
    pub(crate) async fn replay_packet(&self, packet: &Packet) -> bool {
        let conn = &self.inner.conn;
        conn.write_waiting(&conn.encode(packet)).await
    }

    /// Writes a held broadcast, waiting for room in the connection's queue (volatile ones are dropped
    /// when there is none, as they would have been).
    pub(crate) async fn replay_encoded(
        &self,
        encoded: &ferrio_proto::socket::Encoded,
        volatile: bool,
    ) -> bool {
        if volatile {
            self.inner.conn.write(encoded, true)
        } else {
            self.inner.conn.write_waiting(encoded).await
        }
    }

    /// Closes the socket's whole connection.
    pub(crate) fn close_connection(&self) {
        self.inner.conn.close();
    }

    /// The session to keep when the socket drops for `reason`: with recovery on and a reason that
    /// allows it.
    fn session_to_persist(&self, reason: DisconnectReason) -> Option<Session> {
        let pid = self.inner.pid.clone()?;
        if !reason.is_recoverable() {
            return None;
        }
        let data = self.data_value().unwrap_or_else(|e| {
            // Restored as `{}` rather than not at all; the cause is the application's type.
            tracing::warn!(sid = %self.inner.id, error = %e, "socket data does not serialize");
            Value::Object(Default::default())
        });
        Some(Session {
            sid: self.inner.id.clone(),
            pid,
            rooms: self.rooms(),
            data,
        })
    }

    /// Writes frames encoded once for many recipients (a broadcast).
    pub(crate) fn write_encoded(
        &self,
        encoded: &ferrio_proto::socket::Encoded,
        volatile: bool,
    ) -> bool {
        self.inner.conn.write(encoded, volatile)
    }

    /// Writes a broadcast's frames with its flags: `compress(false)` reaches the websocket writer.
    pub(crate) fn write_broadcast(
        &self,
        encoded: &ferrio_proto::socket::Encoded,
        flags: &crate::adapter::BroadcastFlags,
    ) -> bool {
        self.inner.write_broadcast(encoded, flags)
    }

    /// The socket as the adapter keeps it in its rooms, to write broadcasts to it directly.
    pub(crate) fn recipient(&self) -> Weak<dyn Recipient> {
        // Weak: the room index must not keep a socket alive, whatever happens to its entries.
        Arc::downgrade(&self.inner) as Weak<dyn Recipient>
    }

    /// Registers a broadcast ack (same id for every recipient, encoded once).
    pub(crate) fn register_broadcast_ack(&self, id: u64, sink: AckSink) {
        // The broadcast's fan-in owns the timeout: the entry waits until an answer or the disconnect.
        self.inner
            .acks
            .lock()
            .insert(id, None, AckSlot::Broadcast(sink));
    }

    pub(crate) fn on_ack(&self, id: u64, args: Vec<Value>) {
        // An unknown id (late, duplicated or made up) is ignored.
        let slot = self.inner.acks.lock().take(id);
        match slot {
            Some(AckSlot::Single(tx)) => {
                let _ = tx.send(Ok(args));
            }
            Some(AckSlot::Broadcast(sink)) => {
                let _ = sink.send(AckEvent::Response(args));
            }
            None => {}
        }
    }

    // ---- rooms and broadcasting ----

    /// Joins rooms: all of them, or none when the socket would then be in more than
    /// `max_rooms_per_socket` rooms ([`JoinError::TooManyRooms`], also logged as a warning).
    pub fn join<I, R>(&self, rooms: I) -> Result<(), JoinError>
    where
        I: IntoIterator<Item = R>,
        R: Into<Room>,
    {
        let rooms: Vec<Room> = rooms.into_iter().map(Into::into).collect();
        self.adapter().try_add_all(&self.inner.id, &rooms)
    }

    /// Leaves a room.
    pub fn leave(&self, room: impl Into<Room>) {
        self.adapter().del(&self.inner.id, &room.into());
    }

    /// The rooms the socket is in (its own id included).
    pub fn rooms(&self) -> Vec<Room> {
        self.adapter().socket_rooms(&self.inner.id)
    }

    fn operator(&self) -> BroadcastOperator {
        let mut opts = BroadcastOptions::default();
        opts.except.insert(self.inner.id.clone());
        BroadcastOperator::new(self.inner.scope.clone(), opts)
    }

    /// Targets a room, without this socket.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.operator().to(room)
    }

    /// Same as `to`.
    pub fn within(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// Everyone but the rooms given, and but this socket.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.operator().except(room)
    }

    /// Everyone in the namespace but this socket (`socket.broadcast`); `socket.broadcast().timeout(d)`
    /// is a broadcast with acks.
    pub fn broadcast(&self) -> BroadcastOperator {
        self.operator()
    }

    // ---- disconnecting ----

    /// Disconnects from the namespace; with `close`, closes the whole connection.
    pub fn disconnect(&self, close: bool) {
        if !self.connected() {
            return;
        }
        if close {
            if let Some(client) = self.inner.client.upgrade() {
                client.close_all(DisconnectReason::ServerNamespaceDisconnect);
                return;
            }
        }
        let _ = self.write_packet(
            &Packet::Disconnect {
                nsp: self.nsp().to_owned(),
            },
            false,
        );
        self.on_close(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Marks the socket disconnected, frees what it holds and schedules its disconnect handlers.
    pub(crate) fn on_close(&self, reason: DisconnectReason) {
        if let Some(client) = self.inner.client.upgrade() {
            client.remove(self.nsp(), &self.inner.id);
        }
        if !self.inner.connected.swap(false, Ordering::AcqRel) {
            // A socket still in its middlewares just goes away.
            let _ = self.inner.queue.disconnect(reason);
            return;
        }
        self.inner.nsp.forget(&self.inner.id);
        // Pending acks will never be answered: dropping their senders fails them with `Disconnected`.
        let pending = self.inner.acks.lock().drain();
        drop(pending);
        if !self.inner.queue.disconnect(reason) {
            // The queue is full or gone: the disconnect still has to run, right after the queued events.
            let socket = self.clone();
            tokio::spawn(async move {
                if socket
                    .inner
                    .queue
                    .send(Job::Disconnect(reason))
                    .await
                    .is_err()
                {
                    socket.adapter().del_all(socket.sid());
                }
            });
        }
    }

    /// Fails every ack past its deadline with `Timeout`.
    fn expire_acks(&self) {
        let now = tokio::time::Instant::now().into_std();
        let expired = self.inner.acks.lock().handle_timeout(now);
        for (_, slot) in expired {
            if let AckSlot::Single(tx) = slot {
                crate::telemetry::ack_timeout();
                let _ = tx.send(Err(AckError::Timeout));
            }
        }
    }

    /// Queues an incoming event, or runs it here when the socket's task is idle; returns false when
    /// the queue is full (the job waits in overflow).
    pub(crate) fn enqueue(&self, job: Job) -> bool {
        if let Job::Event(event) = job {
            return match self.inner.queue.claim() {
                Some(waker) => {
                    self.run_inline(event, &waker);
                    true
                }
                None => self.inner.queue.push(Job::Event(event)),
            };
        }
        self.inner.queue.push(job)
    }

    /// Runs an event's listeners on the caller's task, up to their first wait (most finish there: an
    /// ack answered, an emit); the rest is the socket task's, polled with its waker from the start.
    fn run_inline(&self, event: Event, waker: &std::task::Waker) {
        let running = self.inner.listeners.upgrade().and_then(|listeners| {
            // A panicking listener must not take the connection's task down with it; on the socket's
            // own task it would have ended only that task.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut run = dispatch(self, &listeners, event)?;
                let mut cx = std::task::Context::from_waker(waker);
                run.as_mut().poll(&mut cx).is_pending().then_some(run)
            }))
            .unwrap_or_else(|_| {
                tracing::error!(sid = %self.inner.id, "an event listener panicked");
                None
            })
        });
        self.inner.queue.release(running);
    }

    /// Waits until the overflowing job is queued.
    pub(crate) async fn flush_overflow(&self) {
        self.inner.queue.flush_overflow().await
    }

    pub(crate) fn new_event(&self, name: String, args: Vec<Value>, id: Option<u64>) -> Event {
        Event::new(self, name, args, id)
    }

    /// The event `plain` read from the text message `text`, its arguments left in the text.
    pub(crate) fn new_plain_event(
        &self,
        plain: &ferrio_proto::socket::PlainEvent<'_>,
        text: &bytestring::ByteString,
    ) -> Event {
        Event::from_plain(self, plain, text)
    }

    /// Whether this socket is still its client's socket in its namespace.
    pub(crate) fn is_current(&self) -> bool {
        self.inner
            .client
            .upgrade()
            .is_some_and(|c| c.has(self.nsp(), &self.inner.id))
    }

    /// Tells the client that one of its sockets joined.
    pub(crate) fn mark_joined(&self) {
        if let Some(c) = self.inner.client.upgrade() {
            c.joined();
        }
    }
}

impl SocketTask {
    /// Runs the connected socket: its events one after the other, until its disconnect sequence ran.
    ///
    /// `on_connect` (the connection handlers) runs alongside: it is polled first, so listeners it adds
    /// before its first `await` see the first event, and events keep flowing while it awaits, as in
    /// socket.io. Events still run one at a time, in order.
    ///
    /// Not an async fn, whose arguments would take room twice in the socket's future.
    pub(crate) fn run(
        self,
        socket: Socket,
        on_connect: crate::engine::BoxFuture<()>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let task = self;
        async move {
            let mut on_connect = on_connect.fuse();
            let mut connecting = true;
            loop {
                let job = tokio::select! {
                    biased;
                    () = &mut on_connect, if connecting => {
                        connecting = false;
                        continue;
                    }
                    job = socket.inner.queue.recv(!connecting) => job,
                };
                match job {
                    Job::Event(e) => {
                        // The connection handlers go first, as when they are polled beside a listener:
                        // what they add before their next await sees this event.
                        if connecting && poll_once(&mut on_connect).await {
                            connecting = false;
                        }
                        if let Some(mut listeners) = dispatch(&socket, &task.listeners, e) {
                            alongside(listeners.as_mut(), &mut on_connect, &mut connecting).await;
                        }
                    }
                    Job::Running(mut listeners) => {
                        alongside(listeners.as_mut(), &mut on_connect, &mut connecting).await;
                    }
                    Job::Disconnect(reason) => {
                        // Boxed: it runs once, and held inline it would take most of the socket's future
                        // (which lives as long as the socket) for the adapter's `persist_session`.
                        let mut disconnect =
                            Box::pin(run_disconnect(&socket, &task.listeners, reason));
                        alongside(disconnect.as_mut(), &mut on_connect, &mut connecting).await;
                        break;
                    }
                }
            }
            // A connection handler still awaiting (an ack that now fails, a sleep) finishes its course.
            if connecting {
                on_connect.await;
            }
        }
    }
}

/// Polls `f` once (with the task's waker); whether it is done.
async fn poll_once(f: &mut futures_util::future::Fuse<crate::engine::BoxFuture<()>>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(f.poll_unpin(cx).is_ready())).await
}

/// Runs `main` to completion while also driving `side` (until it ends).
async fn alongside<F: Future<Output = ()> + ?Sized>(
    mut main: std::pin::Pin<&mut F>,
    side: &mut futures_util::future::Fuse<crate::engine::BoxFuture<()>>,
    side_running: &mut bool,
) {
    loop {
        tokio::select! {
            biased;
            () = &mut *side, if *side_running => *side_running = false,
            () = main.as_mut() => return,
        }
    }
}

/// One incoming event: runs its catch-alls and middlewares, and returns the run of its listeners.
///
/// Not an async fn: the listeners' futures are boxed already (one listener, the usual case, is run
/// as it is), while an async fn's state, with the event in it, would take room in the socket's future
/// for the socket's whole life.
fn dispatch(
    socket: &Socket,
    listeners: &Listeners,
    event: Event,
) -> Option<crate::engine::BoxFuture<()>> {
    if !admit(socket, listeners, &event) {
        return None;
    }
    match listeners.take(event.name()) {
        Matched::None => None,
        Matched::One(h) => Some(h(socket.clone(), event)),
        Matched::Many(hs) => {
            let socket = socket.clone();
            Some(Box::pin(async move {
                let mut event = event;
                let last = hs.len() - 1;
                for h in &hs[..last] {
                    h(socket.clone(), event.fork()).await;
                }
                hs[last](socket.clone(), event).await;
            }))
        }
    }
}

/// Catch-alls and middlewares: whether the event goes on to its listeners.
fn admit(socket: &Socket, listeners: &Listeners, event: &Event) -> bool {
    let (any, middlewares) = {
        let r = listeners.read();
        let h = r.hooks();
        (h.any.clone(), h.middlewares.clone())
    };
    // Catch-all listeners see every event, including those a middleware then refuses.
    for f in &any {
        f(socket, event.name(), event.args());
    }
    for f in &middlewares {
        if let Err(err) = f(socket, event) {
            let errors = listeners.read().hooks().errors.clone();
            for e in &errors {
                e(socket, &err);
            }
            return false;
        }
    }
    true
}

/// Runs the disconnect sequence: `disconnecting` (rooms still known), leave rooms, `disconnect`.
async fn run_disconnect(socket: &Socket, listeners: &Listeners, reason: DisconnectReason) {
    let disconnecting = listeners.read().hooks().disconnecting.clone();
    for h in &disconnecting {
        h(socket.clone(), reason).await;
    }
    // The session is read before the socket leaves its rooms, and kept once it left them: a restore
    // cannot find it while the old socket still holds its id.
    let session = socket.session_to_persist(reason);
    socket.adapter().del_all(socket.sid());
    if let Some(session) = session
        && let Err(e) = socket.adapter().persist_session(session).await
    {
        tracing::warn!(sid = %socket.sid(), error = %e, "session not persisted");
    }
    let disconnect = listeners.read().hooks().disconnect.clone();
    for h in &disconnect {
        h(socket.clone(), reason).await;
    }
}

/// Emits to one socket with options (`socket.timeout(d)`, `socket.volatile()`, `socket.compress(b)`).
#[derive(Debug, Clone)]
pub struct SocketEmitter {
    socket: Socket,
    timeout: Option<Duration>,
    volatile: bool,
    compress: bool,
}

impl SocketEmitter {
    /// How long `emit_with_ack` waits for the ack.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The packet may be dropped if the client cannot take it now.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Per-message deflate on (the default) or off for this emit's packets.
    pub fn compress(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }

    /// Emits `event` to the socket.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.socket
            .emit_data(event, data, None, self.volatile, self.compress)
    }

    /// Emits `event` to the socket and waits for its ack, until the timeout or the disconnection.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<AckArgs, AckError> {
        let socket = &self.socket;
        let id = socket.inner.nsp.next_ack_id();
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let (tx, mut rx) = oneshot::channel();
        socket
            .inner
            .acks
            .lock()
            .insert(id, deadline.map(|d| d.into_std()), AckSlot::Single(tx));
        if let Err(e) = socket.emit_data(event, data, Some(id), self.volatile, self.compress) {
            socket.inner.acks.lock().take(id);
            return Err(e.into());
        }
        let answer = match deadline {
            None => rx.await,
            Some(deadline) => tokio::select! {
                answer = &mut rx => answer,
                () = tokio::time::sleep_until(deadline) => {
                    // Expires this ack and any other overdue one; a late answer then finds nothing.
                    socket.expire_acks();
                    rx.await
                }
            },
        };
        match answer {
            Ok(r) => r.map(AckArgs),
            // The sender was dropped: the socket disconnected.
            Err(_) => Err(AckError::Disconnected),
        }
    }
}
