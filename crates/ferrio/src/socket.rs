//! A Socket.IO socket: one client in one namespace.
//!
//! Each socket handles its events in arrival order on its own task: an async handler that awaits holds
//! back the socket's later events (not other sockets', and not the connection's heartbeats).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrio_proto::socket::Packet;
use ferrio_proto::value::{Value, ValueError, from_args, from_value, to_args, to_value};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::adapter::{AckEvent, AckSink, BroadcastOptions, Handshake, Room, Sid};
use crate::client::Client;
use crate::engine::BoxFuture;
use crate::fxhash::FxBuild;
use crate::namespace::NamespaceInner;
use crate::operators::BroadcastOperator;

/// Why a socket disconnected, with the official reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server called `socket.disconnect()`.
    ServerNamespaceDisconnect,
    /// The client called `socket.disconnect()`.
    ClientNamespaceDisconnect,
    /// The connection was closed (the user left the page, the network went down).
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent a packet that could not be decoded.
    ParseError,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The connection was closed by the server.
    ForcedClose,
    /// The server closed the connection (no namespace joined in time, or a protocol violation).
    ForcedServerClose,
}

impl DisconnectReason {
    /// The official reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ForcedServerClose => "forced server close",
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The arguments could not be serialized.
    #[error("cannot serialize arguments: {0}")]
    Serialize(#[from] ValueError),
    /// The socket is disconnected.
    #[error("socket disconnected")]
    Disconnected,
    /// The event name is reserved.
    #[error("\"{0}\" is a reserved event name")]
    Reserved(String),
}

/// Why an ack did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("socket disconnected")]
    Disconnected,
}

/// The arguments of an ack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AckArgs(pub Vec<Value>);

impl AckArgs {
    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(self) -> Result<T, ValueError> {
        from_args(self.0)
    }

    /// The raw arguments.
    pub fn into_inner(self) -> Vec<Value> {
        self.0
    }
}

/// Answers the ack of one event. Dropping it without sending sends nothing, as in JavaScript.
#[derive(Debug)]
pub struct AckSender {
    socket: Arc<Socket>,
    id: u64,
}

impl AckSender {
    /// Sends the ack: a tuple is several arguments, `()` none, anything else one.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let args = to_args(data)?;
        self.send_args(args)
    }

    /// Sends the ack with raw arguments.
    pub fn send_args(self, args: Vec<Value>) -> Result<(), EmitError> {
        let packet = Packet::Ack {
            nsp: self.socket.ns.name.clone(),
            args,
            id: self.id,
        };
        self.socket.write(&packet, false)
    }
}

/// An incoming event.
#[derive(Debug)]
pub struct Event {
    name: String,
    args: Vec<Value>,
    ack: Option<AckSender>,
}

impl Event {
    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.args)
    }

    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_args(self.args.clone())
    }

    /// Whether the client waits for an ack.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the ack sender (to answer later or from another task).
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Answers the ack, if the client asked for one (otherwise does nothing).
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(a) => a.send(data),
            None => Ok(()),
        }
    }
}

type EventHandler = Arc<dyn Fn(Arc<Socket>, Event) -> BoxFuture<()> + Send + Sync>;
type AnyHandler = Arc<dyn Fn(&Arc<Socket>, &str, &[Value]) + Send + Sync>;
type EventMiddleware = Arc<dyn Fn(&Arc<Socket>, &Event) -> Result<(), Value> + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&Arc<Socket>, &Value) + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Arc<Socket>, DisconnectReason) -> BoxFuture<()> + Send + Sync>;

enum AckSlot {
    Single(oneshot::Sender<Vec<Value>>),
    Broadcast(AckSink),
}

pub(crate) enum Job {
    Event(Event),
    Disconnect(DisconnectReason),
}

#[derive(Default)]
struct Handlers {
    /// Looked up for every incoming event. Only the application adds names, so a client cannot fill it
    /// with colliding keys: the fast hasher is safe here.
    events: HashMap<String, EventHandler, FxBuild>,
    any: Vec<AnyHandler>,
    any_outgoing: Vec<AnyHandler>,
    middlewares: Vec<EventMiddleware>,
    errors: Vec<ErrorHandler>,
    disconnecting: Vec<DisconnectHandler>,
    disconnect: Vec<DisconnectHandler>,
}

/// A client connected to a namespace (`socket` in JavaScript).
pub struct Socket {
    id: Sid,
    pub(crate) ns: Arc<NamespaceInner>,
    pub(crate) client: Arc<Client>,
    handshake: Handshake,
    connected: AtomicBool,
    handlers: RwLock<Handlers>,
    acks: Mutex<HashMap<u64, AckSlot>>,
    data: Mutex<Value>,
    extensions: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    queue: mpsc::Sender<Job>,
    /// A job that did not fit in the queue; the connection's reader waits for it to go in.
    pub(crate) overflow: Mutex<Option<Job>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("nsp", &self.ns.name)
            .finish()
    }
}

impl Socket {
    pub(crate) fn new(
        id: Sid,
        ns: Arc<NamespaceInner>,
        client: Arc<Client>,
        handshake: Handshake,
        queue_capacity: usize,
    ) -> (Arc<Socket>, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let socket = Arc::new(Socket {
            id,
            ns,
            client,
            handshake,
            connected: AtomicBool::new(false),
            handlers: RwLock::new(Handlers::default()),
            acks: Mutex::new(HashMap::new()),
            // `{}` as in JavaScript, so that other nodes reading `data.x` find an object.
            data: Mutex::new(Value::Object(Default::default())),
            extensions: Mutex::new(HashMap::new()),
            queue: tx,
            overflow: Mutex::new(None),
        });
        (socket, rx)
    }

    /// The socket id (also the name of its own room).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn sid(&self) -> &Sid {
        &self.id
    }

    /// The namespace name.
    pub fn nsp(&self) -> &str {
        &self.ns.name
    }

    /// The handshake: headers, query, auth, address, time.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(crate) fn set_connected(&self) {
        self.connected.store(true, Ordering::Release);
    }

    /// The id of the underlying Engine.IO connection (shared by the namespaces of one client).
    pub fn conn_id(&self) -> &str {
        self.client.conn.id()
    }

    /// The transport in use: "polling" or "websocket".
    pub fn transport(&self) -> &'static str {
        self.client.conn.transport().as_str()
    }

    // ---- user data ----

    /// Stores `data` (serializable, so other nodes can see it through `fetch_sockets`).
    pub fn set_data<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), ValueError> {
        *self.data.lock() = to_value(data)?;
        Ok(())
    }

    /// Reads `data` as `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_value(self.data.lock().clone())
    }

    /// The raw `data`.
    pub fn data_value(&self) -> Value {
        self.data.lock().clone()
    }

    /// Stores a local, typed value (not shared with other nodes).
    pub fn insert_extension<T: Any + Send + Sync>(&self, value: T) {
        self.extensions
            .lock()
            .insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// A local, typed value stored with `insert_extension`.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.extensions
            .lock()
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast().ok())
    }

    // ---- listeners ----

    /// Handles event `event`; the handler gets the socket and the event (arguments, ack).
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Arc<Socket>, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: EventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        self.handlers.write().events.insert(event.into(), h);
    }

    /// Removes the handler of `event`.
    pub fn off(&self, event: &str) {
        self.handlers.write().events.remove(event);
    }

    /// Sees every incoming event before its handler (`onAny`).
    pub fn on_any(&self, f: impl Fn(&Arc<Socket>, &str, &[Value]) + Send + Sync + 'static) {
        self.handlers.write().any.push(Arc::new(f));
    }

    /// Like `on_any`, but runs before the listeners already added (`prependAny`).
    pub fn prepend_any(&self, f: impl Fn(&Arc<Socket>, &str, &[Value]) + Send + Sync + 'static) {
        self.handlers.write().any.insert(0, Arc::new(f));
    }

    /// Removes every catch-all listener (`offAny()`).
    pub fn off_any(&self) {
        self.handlers.write().any.clear();
    }

    /// Sees every outgoing event (`onAnyOutgoing`).
    pub fn on_any_outgoing(
        &self,
        f: impl Fn(&Arc<Socket>, &str, &[Value]) + Send + Sync + 'static,
    ) {
        self.handlers.write().any_outgoing.push(Arc::new(f));
    }

    /// Removes every outgoing catch-all listener.
    pub fn off_any_outgoing(&self) {
        self.handlers.write().any_outgoing.clear();
    }

    /// Runs before each incoming event (`socket.use`); an `Err` drops the event and goes to `on_error`.
    pub fn use_middleware(
        &self,
        f: impl Fn(&Arc<Socket>, &Event) -> Result<(), Value> + Send + Sync + 'static,
    ) {
        self.handlers.write().middlewares.push(Arc::new(f));
    }

    /// Receives the errors of `socket.use` middlewares (the `error` event).
    pub fn on_error(&self, f: impl Fn(&Arc<Socket>, &Value) + Send + Sync + 'static) {
        self.handlers.write().errors.push(Arc::new(f));
    }

    /// Runs when the socket is about to leave its rooms (`disconnecting`): `rooms()` still lists them.
    pub fn on_disconnecting<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Socket>, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers
            .write()
            .disconnecting
            .push(Arc::new(move |s, r| Box::pin(f(s, r))));
    }

    /// Runs once the socket has disconnected (`disconnect`).
    pub fn on_disconnect<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Socket>, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers
            .write()
            .disconnect
            .push(Arc::new(move |s, r| Box::pin(f(s, r))));
    }

    // ---- emitting ----

    /// Emits `event`: a tuple is several arguments, `()` none, anything else one.
    pub fn emit<T: Serialize + ?Sized>(
        self: &Arc<Self>,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.emit_args(event, to_args(data)?)
    }

    /// Emits `event` with raw arguments.
    pub fn emit_args(self: &Arc<Self>, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.emit_inner(event, args, None, false)
    }

    /// Emits `event`, dropping it if the client cannot take it now.
    pub fn emit_volatile<T: Serialize + ?Sized>(
        self: &Arc<Self>,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.emit_inner(event, to_args(data)?, None, true)
    }

    /// Emits `event` and waits for the client's ack (until `timeout`, or until the socket disconnects).
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        self: &Arc<Self>,
        event: &str,
        data: &T,
        timeout: Option<Duration>,
    ) -> Result<AckArgs, AckError> {
        let args = to_args(data).map_err(EmitError::from)?;
        let id = self.ns.next_ack_id();
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, AckSlot::Single(tx));
        if let Err(e) = self.emit_inner(event, args, Some(id), false) {
            self.acks.lock().remove(&id);
            return Err(e.into());
        }
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r.map_err(|_| AckError::Disconnected),
                Err(_) => Err(AckError::Timeout),
            },
            None => rx.await.map_err(|_| AckError::Disconnected),
        };
        if result.is_err() {
            // An expired ack must not stay registered: a silent peer would grow the map forever.
            self.acks.lock().remove(&id);
        }
        result.map(AckArgs)
    }

    fn emit_inner(
        self: &Arc<Self>,
        event: &str,
        args: Vec<Value>,
        id: Option<u64>,
        volatile: bool,
    ) -> Result<(), EmitError> {
        if ferrio_proto::socket::RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        let outgoing = self.handlers.read().any_outgoing.clone();
        for f in &outgoing {
            f(self, event, &args);
        }
        let packet = Packet::Event {
            nsp: self.ns.name.clone(),
            event: event.to_owned(),
            args,
            id,
        };
        self.write(&packet, volatile)
    }

    /// Encodes and writes one packet to this socket's connection.
    pub(crate) fn write(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        if !self.connected()
            && !matches!(packet, Packet::ConnectError { .. } | Packet::Connect { .. })
        {
            return Err(EmitError::Disconnected);
        }
        let encoded = self.client.encode(packet);
        if self.client.write(&encoded, volatile) {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }

    /// Registers a broadcast ack (same id for every recipient, encoded once).
    pub(crate) fn register_broadcast_ack(&self, id: u64, sink: AckSink) {
        self.acks.lock().insert(id, AckSlot::Broadcast(sink));
    }

    pub(crate) fn on_ack(&self, id: u64, args: Vec<Value>) {
        // An unknown id (late, duplicated or made up) is ignored.
        match self.acks.lock().remove(&id) {
            Some(AckSlot::Single(tx)) => {
                let _ = tx.send(args);
            }
            Some(AckSlot::Broadcast(sink)) => {
                let _ = sink.send(AckEvent::Response(args));
            }
            None => {}
        }
    }

    // ---- rooms and broadcasting ----

    /// Joins rooms.
    pub fn join<I, R>(&self, rooms: I)
    where
        I: IntoIterator<Item = R>,
        R: Into<Room>,
    {
        let rooms: Vec<Room> = rooms.into_iter().map(Into::into).collect();
        self.ns.adapter().add_all(&self.id, &rooms);
    }

    /// Leaves a room.
    pub fn leave(&self, room: impl Into<Room>) {
        self.ns.adapter().del(&self.id, &room.into());
    }

    /// The rooms the socket is in (its own id included).
    pub fn rooms(&self) -> Vec<Room> {
        self.ns.adapter().socket_rooms(&self.id)
    }

    fn operator(&self) -> BroadcastOperator {
        let mut opts = BroadcastOptions::default();
        opts.except.insert(self.id.clone());
        BroadcastOperator::new(self.ns.clone(), opts)
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

    /// Everyone in the namespace but this socket.
    pub fn broadcast(&self) -> BroadcastOperator {
        self.operator()
    }

    /// Ack timeout for the next `emit_with_ack` of a broadcast from this socket.
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.operator().timeout(timeout)
    }

    // ---- disconnecting ----

    /// Disconnects from the namespace; with `close`, closes the whole connection.
    pub fn disconnect(self: &Arc<Self>, close: bool) {
        if !self.connected() {
            return;
        }
        if close {
            self.client
                .close_all(DisconnectReason::ServerNamespaceDisconnect);
            return;
        }
        let _ = self.write(
            &Packet::Disconnect {
                nsp: self.ns.name.clone(),
            },
            false,
        );
        self.on_close(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Marks the socket disconnected, frees what it holds and schedules its disconnect handlers.
    pub(crate) fn on_close(self: &Arc<Self>, reason: DisconnectReason) {
        self.client.remove(&self.ns.name, self);
        if !self.connected.swap(false, Ordering::AcqRel) {
            // A socket still in its middlewares just goes away.
            let _ = self.queue.try_send(Job::Disconnect(reason));
            return;
        }
        self.ns.remove(&self.id);
        // Pending acks will never be answered.
        self.acks.lock().clear();
        if self.queue.try_send(Job::Disconnect(reason)).is_err() {
            // The queue is full or gone: the disconnect still has to run, right after the queued events.
            let socket = self.clone();
            let queue = self.queue.clone();
            tokio::spawn(async move {
                if queue.send(Job::Disconnect(reason)).await.is_err() {
                    socket.ns.adapter().del_all(socket.sid());
                }
            });
        }
    }

    /// Queues an incoming event; returns false when the queue is full (the job waits in `overflow`).
    pub(crate) fn enqueue(&self, job: Job) -> bool {
        match self.queue.try_send(job) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(job)) => {
                *self.overflow.lock() = Some(job);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// Waits until the overflowing job is queued.
    pub(crate) async fn flush_overflow(&self) {
        let job = self.overflow.lock().take();
        if let Some(job) = job {
            let _ = self.queue.send(job).await;
        }
    }

    /// Runs one incoming event: catch-alls, middlewares, then its handler.
    pub(crate) async fn dispatch(self: &Arc<Self>, event: Event) {
        let (any, middlewares, handler) = {
            let h = self.handlers.read();
            (
                h.any.clone(),
                h.middlewares.clone(),
                h.events.get(&event.name).cloned(),
            )
        };
        // Catch-all listeners see every event, including those a middleware then refuses.
        for f in &any {
            f(self, &event.name, &event.args);
        }
        for f in &middlewares {
            if let Err(err) = f(self, &event) {
                let errors = self.handlers.read().errors.clone();
                for e in &errors {
                    e(self, &err);
                }
                return;
            }
        }
        if let Some(h) = handler {
            h(self.clone(), event).await;
        }
    }

    /// Runs the disconnect sequence: `disconnecting` (rooms still known), leave rooms, `disconnect`.
    pub(crate) async fn run_disconnect(self: &Arc<Self>, reason: DisconnectReason) {
        let disconnecting = self.handlers.read().disconnecting.clone();
        for h in &disconnecting {
            h(self.clone(), reason).await;
        }
        self.ns.adapter().del_all(&self.id);
        let disconnect = self.handlers.read().disconnect.clone();
        for h in &disconnect {
            h(self.clone(), reason).await;
        }
        // Handlers hold the socket through closures that capture it; drop them to break the cycle.
        *self.handlers.write() = Handlers::default();
        self.ns.after_socket_left();
    }

    pub(crate) fn new_event(
        self: &Arc<Self>,
        name: String,
        args: Vec<Value>,
        id: Option<u64>,
    ) -> Event {
        Event {
            name,
            args,
            ack: id.map(|id| AckSender {
                socket: self.clone(),
                id,
            }),
        }
    }
}
