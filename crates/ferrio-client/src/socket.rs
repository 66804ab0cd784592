//! A client socket: one namespace over a manager's connection.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrio_proto::socket::{Packet, RESERVED_EVENTS};
use ferrio_proto::value::{Map, Value, ValueError, from_args, to_args};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::manager::ManagerInner;
use crate::options::BoxFuture;

/// Why a client socket disconnected, with the official reason strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server disconnected the socket (no reconnection).
    IoServerDisconnect,
    /// `socket.disconnect()` was called (no reconnection).
    IoClientDisconnect,
    /// The server stopped pinging.
    PingTimeout,
    /// The connection was closed.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The server sent a packet that could not be decoded.
    ParseError,
}

impl DisconnectReason {
    /// The official reason string.
    pub fn as_str(&self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
        }
    }

    /// Whether the manager reconnects after this reason.
    pub fn will_reconnect(&self) -> bool {
        !matches!(
            self,
            DisconnectReason::IoServerDisconnect | DisconnectReason::IoClientDisconnect
        )
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
    /// No answer within the timeout (after every retry).
    #[error("operation has timed out")]
    Timeout,
    /// The socket was disconnected for good before the answer came.
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
}

/// Answers a server's ack request, once.
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
}

impl AckSender {
    /// Sends the ack: a tuple is several arguments, `()` none, anything else one.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let args = to_args(data)?;
        self.send_args(args);
        Ok(())
    }

    /// Sends the ack with raw arguments.
    pub fn send_args(self, args: Vec<Value>) {
        let packet = Packet::Ack {
            nsp: self.socket.inner.nsp.clone(),
            args,
            id: self.id,
        };
        self.socket.inner.manager.write_packet(&packet, false);
    }
}

/// An event from the server.
#[derive(Debug)]
pub struct Event {
    name: String,
    args: Vec<Value>,
    ack: Option<AckSender>,
}

impl Event {
    /// Event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Arguments.
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

    /// Takes the sender that answers the server's ack request, if it asked for one.
    pub fn take_ack(&mut self) -> Option<AckSender> {
        self.ack.take()
    }

    /// Answers the server's ack request, if any.
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(a) => a.send(data),
            None => Ok(()),
        }
    }
}

type EventHandler = Arc<dyn Fn(Socket, Event) -> BoxFuture<()> + Send + Sync>;
type AnyHandler = Arc<dyn Fn(&Socket, &str, &[Value]) + Send + Sync>;
type ConnectHandler = Arc<dyn Fn(Socket) -> BoxFuture<()> + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(Socket, Value) -> BoxFuture<()> + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Socket, DisconnectReason) -> BoxFuture<()> + Send + Sync>;

struct Listener {
    handler: EventHandler,
    once: bool,
}

#[derive(Default)]
struct Handlers {
    events: HashMap<String, Vec<Listener>>,
    fallback: Option<EventHandler>,
    any: Vec<AnyHandler>,
    any_outgoing: Vec<AnyHandler>,
    connect: Vec<ConnectHandler>,
    connect_error: Vec<ErrorHandler>,
    disconnect: Vec<DisconnectHandler>,
}

enum AckSlot {
    Once(oneshot::Sender<AckArgs>),
    Queue(u64),
}

/// An emit waiting in the retry queue (`retries`): one in flight at a time, order kept.
struct Queued {
    seq: u64,
    event: String,
    args: Vec<Value>,
    tries: u32,
    pending: bool,
    done: Option<oneshot::Sender<Result<AckArgs, AckError>>>,
}

#[derive(Default)]
struct State {
    id: Option<String>,
    connected: bool,
    /// Wants to be connected: false after `disconnect()`, a server DISCONNECT or a CONNECT_ERROR.
    active: bool,
    send_buffer: Vec<Packet>,
    queue: VecDeque<Queued>,
    queue_seq: u64,
    pid: Option<String>,
    last_offset: Option<String>,
    recovered: bool,
}

pub(crate) enum Incoming {
    Connect,
    ConnectError(Value),
    Event(Event),
    Disconnect(DisconnectReason),
}

pub(crate) struct SocketInner {
    pub(crate) nsp: String,
    pub(crate) manager: Arc<ManagerInner>,
    state: Mutex<State>,
    handlers: RwLock<Handlers>,
    acks: Mutex<HashMap<u64, AckSlot>>,
    ids: AtomicU64,
    incoming: mpsc::Sender<Incoming>,
}

/// A Socket.IO client socket. Cloning shares it.
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("nsp", &self.inner.nsp)
            .field("id", &self.id())
            .finish()
    }
}

/// Flags for one emit (`socket.volatile()`, `socket.timeout(d)`, `socket.compress(false)`).
#[derive(Debug, Clone)]
pub struct Emitter {
    socket: Socket,
    volatile: bool,
    timeout: Option<Duration>,
}

impl Emitter {
    /// Drop the packet when not connected instead of buffering it.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Ack timeout of this emit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Compression wish (compression is negotiated by the transport; kept for API parity).
    pub fn compress(self, _compress: bool) -> Self {
        self
    }

    /// Emits.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.socket
            .emit_with_flags(event, to_args(data)?, self.volatile)
    }

    /// Emits and waits for the ack.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<AckArgs, AckError> {
        let args = to_args(data).map_err(EmitError::from)?;
        self.socket
            .emit_ack_inner(
                event,
                args,
                self.timeout.or(self.socket.inner.manager.opts.ack_timeout),
            )
            .await
    }
}

impl Socket {
    pub(crate) fn new(nsp: String, manager: Arc<ManagerInner>) -> Socket {
        let (tx, rx) = mpsc::channel(manager.opts.max_pending_events.max(1));
        let socket = Socket {
            inner: Arc::new(SocketInner {
                nsp,
                manager,
                state: Mutex::new(State::default()),
                handlers: RwLock::new(Handlers::default()),
                acks: Mutex::new(HashMap::new()),
                ids: AtomicU64::new(0),
                incoming: tx,
            }),
        };
        tokio::spawn(dispatch_loop(Arc::downgrade(&socket.inner), rx));
        socket
    }

    /// The socket id given by the server (none until connected).
    pub fn id(&self) -> Option<String> {
        self.inner.state.lock().id.clone()
    }

    /// The namespace.
    pub fn nsp(&self) -> &str {
        &self.inner.nsp
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.inner.state.lock().connected
    }

    /// Whether the last connection restored the previous session (connection state recovery).
    pub fn recovered(&self) -> bool {
        self.inner.state.lock().recovered
    }

    /// The manager (the connection) this socket uses.
    pub fn io(&self) -> crate::Manager {
        crate::Manager {
            inner: self.inner.manager.clone(),
        }
    }

    // ---- listeners ----

    /// Handles event `event`.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener(event.into(), handler, false);
    }

    /// Handles event `event` once.
    pub fn once<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener(event.into(), handler, true);
    }

    fn add_listener<F, Fut>(&self, event: String, handler: F, once: bool)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        self.inner
            .handlers
            .write()
            .events
            .entry(event)
            .or_default()
            .push(Listener { handler, once });
    }

    /// Handles every event that has no listener of its own (with its ack sender): what a generic tool
    /// such as `ferrio connect` needs.
    pub fn on_unhandled<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.handlers.write().fallback = Some(Arc::new(move |s, e| Box::pin(handler(s, e))));
    }

    /// Removes every listener of `event`.
    pub fn off(&self, event: &str) {
        self.inner.handlers.write().events.remove(event);
    }

    /// Sees every incoming event.
    pub fn on_any(&self, f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static) {
        self.inner.handlers.write().any.push(Arc::new(f));
    }

    /// Removes the catch-all listeners.
    pub fn off_any(&self) {
        self.inner.handlers.write().any.clear();
    }

    /// Sees every outgoing event.
    pub fn on_any_outgoing(&self, f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static) {
        self.inner.handlers.write().any_outgoing.push(Arc::new(f));
    }

    /// Runs on each connection to the namespace (`connect`).
    pub fn on_connect<F, Fut>(&self, f: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .handlers
            .write()
            .connect
            .push(Arc::new(move |s| Box::pin(f(s))));
    }

    /// Runs when joining fails (`connect_error`): the value is `{"message":…, "data":…}`.
    pub fn on_connect_error<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .handlers
            .write()
            .connect_error
            .push(Arc::new(move |s, v| Box::pin(f(s, v))));
    }

    /// Runs on each disconnection (`disconnect`).
    pub fn on_disconnect<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .handlers
            .write()
            .disconnect
            .push(Arc::new(move |s, r| Box::pin(f(s, r))));
    }

    // ---- emitting ----

    /// Emits `event`: a tuple is several arguments, `()` none, anything else one. While disconnected,
    /// the packet waits in the offline buffer and goes out, in order, once connected.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.emit_with_flags(event, to_args(data)?, false)
    }

    /// Emits with raw arguments.
    pub fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.emit_with_flags(event, args, false)
    }

    /// Emits and waits for the server's ack (`ack_timeout` from the options, retried `retries` times).
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<AckArgs, AckError> {
        let args = to_args(data).map_err(EmitError::from)?;
        self.emit_ack_inner(event, args, self.inner.manager.opts.ack_timeout)
            .await
    }

    /// Flags for the next emit: drop instead of buffering when disconnected.
    pub fn volatile(&self) -> Emitter {
        Emitter {
            socket: self.clone(),
            volatile: true,
            timeout: None,
        }
    }

    /// Flags for the next emit: ack timeout.
    pub fn timeout(&self, timeout: Duration) -> Emitter {
        Emitter {
            socket: self.clone(),
            volatile: false,
            timeout: Some(timeout),
        }
    }

    /// Flags for the next emit: compression wish.
    pub fn compress(&self, compress: bool) -> Emitter {
        Emitter {
            socket: self.clone(),
            volatile: false,
            timeout: None,
        }
        .compress(compress)
    }

    fn check_name(event: &str) -> Result<(), EmitError> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        Ok(())
    }

    fn emit_with_flags(
        &self,
        event: &str,
        args: Vec<Value>,
        volatile: bool,
    ) -> Result<(), EmitError> {
        Self::check_name(event)?;
        if self.inner.manager.opts.retries > 0 && !volatile {
            // At-least-once: fire-and-forget emits go through the retry queue too.
            self.enqueue(event.to_owned(), args, None);
            return Ok(());
        }
        let packet = Packet::Event {
            nsp: self.inner.nsp.clone(),
            event: event.to_owned(),
            args,
            id: None,
        };
        self.send_or_buffer(packet, volatile);
        Ok(())
    }

    async fn emit_ack_inner(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Option<Duration>,
    ) -> Result<AckArgs, AckError> {
        Self::check_name(event)?;
        if self.inner.manager.opts.retries > 0 {
            let (tx, rx) = oneshot::channel();
            self.enqueue(event.to_owned(), args, Some(tx));
            return rx.await.unwrap_or(Err(AckError::Disconnected));
        }
        let id = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.acks.lock().insert(id, AckSlot::Once(tx));
        let packet = Packet::Event {
            nsp: self.inner.nsp.clone(),
            event: event.to_owned(),
            args,
            id: Some(id),
        };
        self.send_or_buffer(packet, false);
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r.map_err(|_| AckError::Disconnected),
                Err(_) => Err(AckError::Timeout),
            },
            None => rx.await.map_err(|_| AckError::Disconnected),
        };
        if result.is_err() {
            self.inner.acks.lock().remove(&id);
            // A timed-out emit still sitting in the offline buffer must not go out later.
            self.inner
                .state
                .lock()
                .send_buffer
                .retain(|p| !matches!(p, Packet::Event { id: Some(i), .. } if *i == id));
        }
        result
    }

    fn send_or_buffer(&self, packet: Packet, volatile: bool) {
        let connected = self.inner.state.lock().connected;
        if connected {
            self.notify_outgoing(&packet);
            self.inner.manager.write_packet(&packet, volatile);
        } else if !volatile {
            self.inner.state.lock().send_buffer.push(packet);
        }
    }

    fn notify_outgoing(&self, packet: &Packet) {
        if let Packet::Event { event, args, .. } = packet {
            let listeners = self.inner.handlers.read().any_outgoing.clone();
            for f in &listeners {
                f(self, event, args);
            }
        }
    }

    fn enqueue(
        &self,
        event: String,
        args: Vec<Value>,
        done: Option<oneshot::Sender<Result<AckArgs, AckError>>>,
    ) {
        {
            let mut st = self.inner.state.lock();
            let seq = st.queue_seq;
            st.queue_seq += 1;
            st.queue.push_back(Queued {
                seq,
                event,
                args,
                tries: 0,
                pending: false,
                done,
            });
        }
        self.drain_queue(false);
    }

    /// Sends the head of the retry queue unless it is already in flight (or `force`, after a reconnect).
    fn drain_queue(&self, force: bool) {
        let (event, args, seq) = {
            let mut st = self.inner.state.lock();
            if !st.connected {
                return;
            }
            let Some(head) = st.queue.front_mut() else {
                return;
            };
            if head.pending && !force {
                return;
            }
            head.pending = true;
            head.tries += 1;
            (head.event.clone(), head.args.clone(), head.seq)
        };
        let id = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        self.inner.acks.lock().insert(id, AckSlot::Queue(seq));
        let packet = Packet::Event {
            nsp: self.inner.nsp.clone(),
            event,
            args,
            id: Some(id),
        };
        self.notify_outgoing(&packet);
        self.inner.manager.write_packet(&packet, false);
        if let Some(timeout) = self.inner.manager.opts.ack_timeout {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Some(inner) = weak.upgrade() {
                    let socket = Socket { inner };
                    if socket.inner.acks.lock().remove(&id).is_some() {
                        socket.on_queue_result(seq, Err(AckError::Timeout));
                    }
                }
            });
        }
    }

    fn on_queue_result(&self, seq: u64, result: Result<AckArgs, AckError>) {
        let done = {
            let mut st = self.inner.state.lock();
            let retries = self.inner.manager.opts.retries;
            let Some(head) = st.queue.front_mut() else {
                return;
            };
            if head.seq != seq {
                return;
            }
            match result {
                Ok(args) => st
                    .queue
                    .pop_front()
                    .and_then(|q| q.done)
                    .map(|d| (d, Ok(args))),
                Err(e) if head.tries > retries => st
                    .queue
                    .pop_front()
                    .and_then(|q| q.done)
                    .map(|d| (d, Err(e))),
                Err(_) => {
                    head.pending = false;
                    None
                }
            }
        };
        if let Some((tx, r)) = done {
            let _ = tx.send(r);
        }
        self.drain_queue(false);
    }

    // ---- lifecycle ----

    /// Connects (or reconnects) the socket: opens the manager's connection if needed.
    pub fn connect(&self) {
        self.inner.state.lock().active = true;
        self.inner.manager.attach(self);
    }

    /// Disconnects for good: no reconnection until `connect()` is called again.
    pub fn disconnect(&self) {
        let was_connected = {
            let mut st = self.inner.state.lock();
            st.active = false;
            st.connected
        };
        if was_connected {
            self.inner.manager.write_packet(
                &Packet::Disconnect {
                    nsp: self.inner.nsp.clone(),
                },
                false,
            );
            self.on_close(DisconnectReason::IoClientDisconnect);
        }
        self.inner.manager.detach(self);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.inner.state.lock().active
    }

    /// The manager's connection is open: send CONNECT (with auth, and the recovery pid/offset).
    pub(crate) async fn on_open(&self) {
        if !self.is_active() {
            return;
        }
        let auth = self.inner.manager.opts.auth.resolve().await;
        let (pid, offset) = {
            let st = self.inner.state.lock();
            (st.pid.clone(), st.last_offset.clone())
        };
        let data = match (pid, auth) {
            (Some(pid), auth) => {
                let mut map = match auth {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                map.insert("pid".into(), Value::String(pid));
                map.insert(
                    "offset".into(),
                    offset.map(Value::String).unwrap_or(Value::Null),
                );
                Some(Value::Object(map))
            }
            (None, auth) => auth,
        };
        self.inner.manager.write_packet(
            &Packet::Connect {
                nsp: self.inner.nsp.clone(),
                data,
            },
            false,
        );
    }

    /// A packet for this namespace.
    pub(crate) async fn on_packet(&self, packet: Packet) {
        match packet {
            Packet::Connect { data, .. } => {
                let sid = data
                    .as_ref()
                    .and_then(|d| d.get("sid"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let pid = data
                    .as_ref()
                    .and_then(|d| d.get("pid"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                match sid {
                    Some(sid) => self.handle_connect(sid, pid),
                    None => {
                        let err = error_value(
                            "invalid CONNECT packet from the server (not a Socket.IO v4 server?)",
                        );
                        self.deliver(Incoming::ConnectError(err)).await;
                    }
                }
            }
            Packet::ConnectError { data, .. } => {
                self.inner.state.lock().active = false;
                let err = match data {
                    Value::String(s) => error_value(&s),
                    v => v,
                };
                self.deliver(Incoming::ConnectError(err)).await;
            }
            Packet::Event {
                event, args, id, ..
            } => {
                let ack = id.map(|id| AckSender {
                    socket: self.clone(),
                    id,
                });
                self.deliver(Incoming::Event(Event {
                    name: event,
                    args,
                    ack,
                }))
                .await;
            }
            Packet::Ack { id, args, .. } => {
                let slot = self.inner.acks.lock().remove(&id);
                match slot {
                    Some(AckSlot::Once(tx)) => {
                        let _ = tx.send(AckArgs(args));
                    }
                    Some(AckSlot::Queue(seq)) => self.on_queue_result(seq, Ok(AckArgs(args))),
                    // An unknown id (late, after a timeout) is ignored.
                    None => {}
                }
            }
            Packet::Disconnect { .. } => {
                self.inner.state.lock().active = false;
                self.on_close(DisconnectReason::IoServerDisconnect);
                self.inner.manager.detach(self);
            }
        }
    }

    fn handle_connect(&self, sid: String, pid: Option<String>) {
        let buffered = {
            let mut st = self.inner.state.lock();
            st.recovered = pid.is_some() && st.pid == pid;
            st.pid = pid;
            st.id = Some(sid);
            st.connected = true;
            std::mem::take(&mut st.send_buffer)
        };
        for p in buffered {
            self.notify_outgoing(&p);
            self.inner.manager.write_packet(&p, false);
        }
        self.drain_queue(true);
        let _ = self.inner.incoming.try_send(Incoming::Connect);
    }

    /// The socket lost its connection (or was disconnected).
    pub(crate) fn on_close(&self, reason: DisconnectReason) {
        {
            let mut st = self.inner.state.lock();
            if !st.connected {
                return;
            }
            st.connected = false;
            st.id = None;
            if let Some(head) = st.queue.front_mut() {
                // Sent again after the reconnection.
                head.pending = false;
            }
        }
        if !reason.will_reconnect() {
            // Nobody will answer these any more.
            self.inner
                .acks
                .lock()
                .retain(|_, slot| matches!(slot, AckSlot::Queue(_)));
        }
        let _ = self.inner.incoming.try_send(Incoming::Disconnect(reason));
    }

    /// The manager could not connect.
    pub(crate) fn on_manager_error(&self, message: &str) {
        if !self.connected() {
            let _ = self
                .inner
                .incoming
                .try_send(Incoming::ConnectError(error_value(message)));
        }
    }

    /// The manager gave up reconnecting: waiting acks and queued emits fail.
    pub(crate) fn on_gave_up(&self) {
        self.inner.acks.lock().clear();
        let queued: Vec<_> = self
            .inner
            .state
            .lock()
            .queue
            .drain(..)
            .filter_map(|q| q.done)
            .collect();
        for tx in queued {
            let _ = tx.send(Err(AckError::Disconnected));
        }
    }

    async fn deliver(&self, incoming: Incoming) {
        // Bounded: a server flooding events makes the manager's reader wait here.
        let _ = self.inner.incoming.send(incoming).await;
    }
}

fn error_value(message: &str) -> Value {
    let mut map = Map::new();
    map.insert("message".into(), Value::String(message.to_owned()));
    Value::Object(map)
}

/// Runs the socket's listeners, one event after the other.
async fn dispatch_loop(socket: std::sync::Weak<SocketInner>, mut rx: mpsc::Receiver<Incoming>) {
    while let Some(incoming) = rx.recv().await {
        let Some(inner) = socket.upgrade() else {
            return;
        };
        let socket = Socket { inner };
        match incoming {
            Incoming::Connect => {
                let handlers = socket.inner.handlers.read().connect.clone();
                for h in handlers {
                    h(socket.clone()).await;
                }
            }
            Incoming::ConnectError(err) => {
                let handlers = socket.inner.handlers.read().connect_error.clone();
                for h in handlers {
                    h(socket.clone(), err.clone()).await;
                }
            }
            Incoming::Disconnect(reason) => {
                let handlers = socket.inner.handlers.read().disconnect.clone();
                for h in handlers {
                    h(socket.clone(), reason.clone()).await;
                }
            }
            Incoming::Event(event) => {
                {
                    let mut st = socket.inner.state.lock();
                    // With recovery on, the server appends each event's offset as a last string argument.
                    if st.pid.is_some()
                        && let Some(Value::String(off)) = event.args.last()
                    {
                        st.last_offset = Some(off.clone());
                    }
                }
                let (any, listeners) = {
                    let mut h = socket.inner.handlers.write();
                    let any = h.any.clone();
                    let listeners: Vec<EventHandler> = match h.events.get_mut(&event.name) {
                        Some(list) if !list.is_empty() => {
                            let all = list.iter().map(|l| l.handler.clone()).collect();
                            list.retain(|l| !l.once);
                            all
                        }
                        _ => h.fallback.iter().cloned().collect(),
                    };
                    (any, listeners)
                };
                for f in &any {
                    f(&socket, &event.name, &event.args);
                }
                match listeners.len() {
                    0 => {}
                    1 => listeners[0](socket.clone(), event).await,
                    _ => {
                        // Several listeners share the arguments; the ack goes to the first one.
                        let Event {
                            name,
                            args,
                            mut ack,
                        } = event;
                        for h in listeners {
                            let ev = Event {
                                name: name.clone(),
                                args: args.clone(),
                                ack: ack.take(),
                            };
                            h(socket.clone(), ev).await;
                        }
                    }
                }
            }
        }
    }
}
