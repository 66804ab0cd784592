//! A client socket: one namespace over a manager's connection.
//!
//! The acks a socket waits for sit in proto's `AckTable` with their deadlines, watched by one timer task
//! per socket; emits under `retries` go through proto's `RetryQueue`. The socket's own task
//! (`listeners::dispatch_loop`) runs the user's listeners, one event after the other.

mod legacy;
mod listeners;
mod send;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrio_proto::engine::Protocol;
use ferrio_proto::fxhash::FxBuild;
use ferrio_proto::socket::{
    AckArgs, AckError, AckTable, ClientDisconnectReason, ConnectAck, ConnectError, EmitError,
    Packet, RetryOutcome, RetryQueue, connect_request, is_reserved_event,
};
use ferrio_proto::value::{Value, to_args};
use parking_lot::{Mutex, MutexGuard, RwLock};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::manager::{ManagerInner, RootJoin};
use crate::options::SocketOptions;
pub use listeners::{AckSender, Event, ListenerId};
use listeners::{Handlers, Incoming, dispatch_loop};

type AckResult = Result<AckArgs, AckError>;

/// Who waits for an ack id.
enum AckSlot {
    /// An `emit_with_ack`.
    Once(oneshot::Sender<AckResult>),
    /// The try in flight of the retry queue's packet `seq`.
    Queue(u64),
}

/// An emit in the retry queue.
struct Queued {
    event: String,
    args: Vec<Value>,
    timeout: Option<Duration>,
    done: Option<oneshot::Sender<AckResult>>,
}

struct State {
    id: Option<String>,
    connected: bool,
    /// Wants to be connected: false after `disconnect()`, a server DISCONNECT or a CONNECT_ERROR.
    active: bool,
    /// Packets emitted while disconnected, sent in order on connect.
    send_buffer: Vec<Packet>,
    acks: AckTable<AckSlot>,
    /// Ack ids whose packet went out on the current connection: nobody answers them after a disconnect.
    sent_acks: HashSet<u64, FxBuild>,
    queue: RetryQueue<Queued>,
    pid: Option<String>,
    last_offset: Option<String>,
    recovered: bool,
    /// The deadline the ack timer sleeps until (`None`: it waits for a wake-up): only an earlier one
    /// wakes it, so an emit whose deadline is later (or absent) costs the timer nothing.
    timer_at: Option<Instant>,
}

pub(crate) struct SocketInner {
    pub(crate) nsp: String,
    pub(crate) manager: Arc<ManagerInner>,
    opts: SocketOptions,
    state: Mutex<State>,
    handlers: RwLock<Handlers>,
    incoming: mpsc::UnboundedSender<Incoming>,
    /// Places in the event queue (`max_pending_events`): a full queue makes the connection's reader wait.
    room: Arc<Semaphore>,
    /// Wakes the ack timer when an earlier deadline was added.
    rearm: mpsc::Sender<()>,
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

/// Flags for one emit (`socket.volatile()`, `socket.timeout(d)`), chainable.
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

    /// Ack timeout of this emit (instead of the `ack_timeout` option).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Emits: a tuple is several arguments, `()` none, anything else one.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        check_name(event)?;
        let out = self.socket.outgoing(event, data, self.volatile)?;
        self.socket
            .emit_packet(event, out, self.volatile, self.ack_timeout())
    }

    /// Emits with raw arguments.
    pub fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        check_name(event)?;
        self.socket.emit_packet(
            event,
            Outgoing::Args(args),
            self.volatile,
            self.ack_timeout(),
        )
    }

    fn ack_timeout(&self) -> Option<Duration> {
        self.timeout.or(self.socket.inner.opts.ack_timeout)
    }

    /// Emits and waits for the ack, until the timeout of this emit or the `ack_timeout` option (forever
    /// when neither is set, or until disconnected).
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<AckArgs, AckError> {
        check_name(event)?;
        let out = self.socket.outgoing(event, data, self.volatile)?;
        self.socket
            .emit_ack(event, out, self.volatile, self.ack_timeout())
            .await
    }

    /// Emits raw arguments and waits for the ack.
    pub async fn emit_args_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
    ) -> Result<AckArgs, AckError> {
        check_name(event)?;
        self.socket
            .emit_ack(
                event,
                Outgoing::Args(args),
                self.volatile,
                self.ack_timeout(),
            )
            .await
    }
}

/// Drops the ack entry (and the buffered packet) of an `emit_with_ack` whose future was dropped before
/// its answer came: nobody waits for it any more, and a long-lived socket must not collect them.
struct Forget {
    socket: std::sync::Weak<SocketInner>,
    id: u64,
    armed: bool,
}

impl Drop for Forget {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(inner) = self.socket.upgrade() else {
            return;
        };
        let mut st = inner.state.lock();
        st.acks.take(self.id);
        st.sent_acks.remove(&self.id);
        let id = self.id;
        st.send_buffer
            .retain(|p| !matches!(p, Packet::Event { id: Some(i), .. } if *i == id));
    }
}

/// An emit's arguments on their way out: as values, or already written as the event's text.
enum Outgoing {
    Args(Vec<Value>),
    /// `["event",args…]`, written straight from the emit's data (see [`Socket::outgoing`]).
    Text(String),
}

impl Outgoing {
    /// The arguments as values, for a packet that waits (offline buffer) or is retried.
    fn into_args(self) -> Vec<Value> {
        match self {
            Outgoing::Args(args) => args,
            // Read back from the text this socket wrote: the values `to_args` would have made.
            Outgoing::Text(text) => match Value::from_json(&text) {
                Ok(Value::Array(mut all)) if !all.is_empty() => {
                    all.remove(0);
                    all
                }
                other => {
                    debug_assert!(false, "an event's own text read back as {other:?}");
                    Vec::new()
                }
            },
        }
    }
}

/// The event name and arguments of an EVENT packet.
fn event_parts(packet: &Packet) -> Option<(&str, &[Value])> {
    match packet {
        Packet::Event { event, args, .. } => Some((event, args)),
        _ => None,
    }
}

fn check_name(event: &str) -> Result<(), EmitError> {
    if is_reserved_event(event) {
        return Err(EmitError::Reserved(event.to_owned()));
    }
    Ok(())
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Socket {
    pub(crate) fn new(nsp: String, manager: Arc<ManagerInner>, opts: SocketOptions) -> Socket {
        let (tx, rx) = mpsc::unbounded_channel();
        let (rearm, rearm_rx) = mpsc::channel(1);
        let room = Arc::new(Semaphore::new(manager.opts.max_pending_events.max(1)));
        let retries = opts.retries;
        let socket = Socket {
            inner: Arc::new(SocketInner {
                nsp,
                manager,
                opts,
                state: Mutex::new(State {
                    id: None,
                    connected: false,
                    active: false,
                    send_buffer: Vec::new(),
                    acks: AckTable::new(),
                    sent_acks: HashSet::default(),
                    queue: RetryQueue::new(retries),
                    pid: None,
                    last_offset: None,
                    recovered: false,
                    timer_at: None,
                }),
                handlers: RwLock::new(Handlers::default()),
                incoming: tx,
                room,
                rearm,
            }),
        };
        tokio::spawn(dispatch_loop(Arc::downgrade(&socket.inner), rx));
        tokio::spawn(ack_timer(Arc::downgrade(&socket.inner), rearm_rx));
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

    /// Whether the socket wants to be connected (it reconnects with the manager): false after
    /// `disconnect()`, a server DISCONNECT or a refused CONNECT.
    pub fn active(&self) -> bool {
        self.inner.state.lock().active
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

    /// Adds a listener of `event` (after those already there, as `EventEmitter.on`).
    ///
    /// The events of one socket are handled in arrival order on the socket's task: a listener that
    /// awaits (an `emit_with_ack`, a database call) holds back the socket's next event until it returns,
    /// while acks keep arriving. Spawn a task from the listener for work that must not delay the next
    /// event.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F) -> ListenerId
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.handlers.write().add_event(
            event.into(),
            Arc::new(move |s, e| Box::pin(handler(s, e))),
            false,
        )
    }

    /// Adds a listener of `event` that runs once, then leaves.
    pub fn once<F, Fut>(&self, event: impl Into<String>, handler: F) -> ListenerId
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.handlers.write().add_event(
            event.into(),
            Arc::new(move |s, e| Box::pin(handler(s, e))),
            true,
        )
    }

    /// Removes every listener of `event`.
    pub fn off(&self, event: &str) {
        self.inner.handlers.write().remove_event(event);
    }

    /// Removes one listener (of an event, `on_any`, `on_any_outgoing`, `on_connect`, `on_connect_error`
    /// or `on_disconnect`); whether it was there.
    pub fn off_listener(&self, id: ListenerId) -> bool {
        self.inner.handlers.write().remove(id)
    }

    /// Listeners of `event`.
    pub fn listener_count(&self, event: &str) -> usize {
        self.inner.handlers.read().listener_count(event)
    }

    /// Handles every event that has no listener of its own (with its ack sender): what a generic tool
    /// such as `ferrio connect` needs. Replaces the previous one.
    pub fn on_unhandled<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.handlers.write().fallback = Some(Arc::new(move |s, e| Box::pin(handler(s, e))));
    }

    /// Sees every incoming event, before its listeners.
    pub fn on_any(
        &self,
        f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener::<listeners::AnyHandler>(|h| &mut h.any, Arc::new(f), false)
    }

    /// Sees every incoming event, before the catch-all listeners already there.
    pub fn prepend_any(
        &self,
        f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener::<listeners::AnyHandler>(|h| &mut h.any, Arc::new(f), true)
    }

    /// Removes the catch-all listeners.
    pub fn off_any(&self) {
        self.inner.handlers.write().any.clear();
    }

    /// Sees every outgoing event, as it goes out.
    pub fn on_any_outgoing(
        &self,
        f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener::<listeners::AnyHandler>(|h| &mut h.any_outgoing, Arc::new(f), false)
    }

    /// Sees every outgoing event, before the outgoing catch-all listeners already there.
    pub fn prepend_any_outgoing(
        &self,
        f: impl Fn(&Socket, &str, &[Value]) + Send + Sync + 'static,
    ) -> ListenerId {
        self.add_listener::<listeners::AnyHandler>(|h| &mut h.any_outgoing, Arc::new(f), true)
    }

    /// Removes the outgoing catch-all listeners.
    pub fn off_any_outgoing(&self) {
        self.inner.handlers.write().any_outgoing.clear();
    }

    /// Runs on each connection to the namespace (`connect`).
    pub fn on_connect<F, Fut>(&self, f: F) -> ListenerId
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener::<listeners::ConnectHandler>(
            |h| &mut h.connect,
            Arc::new(move |s| Box::pin(f(s))),
            false,
        )
    }

    /// Runs when joining fails (`connect_error`): refused by the server (its message and data), or the
    /// connection could not be opened.
    pub fn on_connect_error<F, Fut>(&self, f: F) -> ListenerId
    where
        F: Fn(Socket, ConnectError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener::<listeners::ErrorHandler>(
            |h| &mut h.connect_error,
            Arc::new(move |s, e| Box::pin(f(s, e))),
            false,
        )
    }

    /// Runs on each disconnection (`disconnect`).
    pub fn on_disconnect<F, Fut>(&self, f: F) -> ListenerId
    where
        F: Fn(Socket, ClientDisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_listener::<listeners::DisconnectHandler>(
            |h| &mut h.disconnect,
            Arc::new(move |s, r| Box::pin(f(s, r))),
            false,
        )
    }

    /// Adds `handler` to one of the listener lists, at the end or (`front`) at the start.
    fn add_listener<T>(
        &self,
        list: fn(&mut Handlers) -> &mut Vec<(ListenerId, T)>,
        handler: T,
        front: bool,
    ) -> ListenerId {
        let mut h = self.inner.handlers.write();
        let id = h.next_id();
        let list = list(&mut h);
        if front {
            list.insert(0, (id, handler));
        } else {
            list.push((id, handler));
        }
        id
    }

    // ---- emitting ----

    fn emitter(&self) -> Emitter {
        Emitter {
            socket: self.clone(),
            volatile: false,
            timeout: None,
        }
    }

    /// Emits `event`: a tuple is several arguments, `()` none, anything else one. While disconnected,
    /// the packet waits in the offline buffer and goes out, in order, once connected.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.emitter().emit(event, data)
    }

    /// Emits with raw arguments.
    pub fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.emitter().emit_args(event, args)
    }

    /// Emits a `message` event (`socket.send(..)`).
    pub fn send<T: Serialize + ?Sized>(&self, data: &T) -> Result<(), EmitError> {
        self.emit("message", data)
    }

    /// Emits and waits for the server's ack, until the `ack_timeout` option (forever when unset, or
    /// until disconnected); `socket.timeout(d).emit_with_ack(..)` sets it for one emit. With `retries`,
    /// the emit is sent again after each timeout.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<AckArgs, AckError> {
        self.emitter().emit_with_ack(event, data).await
    }

    /// Flags for the next emit: drop instead of buffering when disconnected.
    pub fn volatile(&self) -> Emitter {
        self.emitter().volatile()
    }

    /// Flags for the next emit: ack timeout.
    pub fn timeout(&self, timeout: Duration) -> Emitter {
        self.emitter().timeout(timeout)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    /// The arguments `data` stands for, on their way out. With the default parser, they are written
    /// straight to the event's text (building them as values, only to write and drop them, was most of
    /// an emit's own work), unless something needs them as values: the retry queue, which resends
    /// them, or an `on_any_outgoing` listener.
    fn outgoing<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        volatile: bool,
    ) -> Result<Outgoing, EmitError> {
        let queued = self.inner.opts.retries > 0 && !volatile;
        if !queued
            && self.inner.manager.writes_json_text()
            && self.inner.handlers.read().any_outgoing.is_empty()
            && let Some(text) = ferrio_proto::socket::event_text_from(event, data)?
        {
            return Ok(Outgoing::Text(text));
        }
        Ok(Outgoing::Args(to_args(data)?))
    }

    /// `timeout` is the ack timeout of each try when the emit goes through the retry queue.
    fn emit_packet(
        &self,
        event: &str,
        out: Outgoing,
        volatile: bool,
        timeout: Option<Duration>,
    ) -> Result<(), EmitError> {
        if self.inner.opts.retries > 0 && !volatile {
            // At-least-once: fire-and-forget emits go through the retry queue too.
            self.enqueue(event.to_owned(), out.into_args(), timeout, None);
            return Ok(());
        }
        let sent = {
            let mut st = self.state();
            self.send_event(&mut st, event, out, None, volatile)
        };
        self.notify_outgoing(sent.iter().map(|args| (event, &args[..])));
        Ok(())
    }

    async fn emit_ack(
        &self,
        event: &str,
        out: Outgoing,
        volatile: bool,
        timeout: Option<Duration>,
    ) -> AckResult {
        let (tx, rx) = oneshot::channel();
        if self.inner.opts.retries > 0 && !volatile {
            self.enqueue(event.to_owned(), out.into_args(), timeout, Some(tx));
            return rx.await.unwrap_or(Err(AckError::Disconnected));
        }
        let (id, sent) = {
            let mut st = self.state();
            let deadline = timeout.map(|t| now() + t);
            let id = st.acks.register(deadline, AckSlot::Once(tx));
            self.rearm(&mut st, deadline);
            (id, self.send_event(&mut st, event, out, Some(id), volatile))
        };
        let mut guard = Forget {
            socket: Arc::downgrade(&self.inner),
            id,
            armed: true,
        };
        self.notify_outgoing(sent.iter().map(|args| (event, &args[..])));
        let result = rx.await.unwrap_or(Err(AckError::Disconnected));
        guard.armed = false;
        result
    }

    /// Writes the packet when connected (returning it, for the outgoing listeners), buffers it when not,
    /// or drops it when volatile. Under the state lock, so that emits keep their order with the flush of
    /// the offline buffer.
    fn send_or_buffer(&self, st: &mut State, packet: Packet, volatile: bool) -> Option<Packet> {
        if st.connected {
            self.write_state(st, &packet);
            Some(packet)
        } else {
            if volatile {
                // Nobody will answer a packet that never left.
                if let Packet::Event { id: Some(id), .. } = packet
                    && let Some(AckSlot::Once(tx)) = st.acks.take(id)
                {
                    let _ = tx.send(Err(AckError::Disconnected));
                }
            } else {
                st.send_buffer.push(packet);
            }
            None
        }
    }

    /// [`Socket::send_or_buffer`] of an event given by its parts: when connected it is encoded from them
    /// (no copy of the namespace and the event name into a packet, two allocations per emit), and the
    /// arguments come back for the outgoing listeners.
    fn send_event(
        &self,
        st: &mut State,
        event: &str,
        out: Outgoing,
        id: Option<u64>,
        volatile: bool,
    ) -> Option<Vec<Value>> {
        if !st.connected {
            let packet = Packet::Event {
                nsp: self.inner.nsp.clone(),
                event: event.to_owned(),
                args: out.into_args(),
                id,
            };
            // Not connected: buffered or dropped, never written.
            let written = self.send_or_buffer(st, packet, volatile);
            debug_assert!(written.is_none());
            return None;
        }
        if let Some(id) = id {
            st.sent_acks.insert(id);
        }
        let manager = &self.inner.manager;
        match out {
            Outgoing::Args(args) => Some(manager.write_event(&self.inner.nsp, event, args, id)),
            // Written as text only when no outgoing listener wants the arguments.
            Outgoing::Text(text) => {
                manager.write_event_text(&self.inner.nsp, &text, id);
                None
            }
        }
    }

    fn write_state(&self, st: &mut State, packet: &Packet) {
        if let Packet::Event { id: Some(id), .. } = packet {
            st.sent_acks.insert(*id);
        }
        self.inner.manager.write_packet(packet);
    }

    /// Calls the outgoing listeners with each `(event, args)`.
    fn notify_outgoing<'a>(&self, events: impl Iterator<Item = (&'a str, &'a [Value])>) {
        let listeners: Vec<_> = self
            .inner
            .handlers
            .read()
            .any_outgoing
            .iter()
            .map(|(_, h)| h.clone())
            .collect();
        if listeners.is_empty() {
            return;
        }
        for (event, args) in events {
            for f in &listeners {
                f(self, event, args);
            }
        }
    }

    /// Wakes the ack timer when `deadline` comes before the one it sleeps until.
    fn rearm(&self, st: &mut State, deadline: Option<Instant>) {
        let Some(d) = deadline else { return };
        if st.timer_at.is_some_and(|t| t <= d) {
            return;
        }
        st.timer_at = Some(d);
        // A full channel already holds a wake-up.
        let _ = self.inner.rearm.try_send(());
    }

    fn enqueue(
        &self,
        event: String,
        args: Vec<Value>,
        timeout: Option<Duration>,
        done: Option<oneshot::Sender<AckResult>>,
    ) {
        let sent = {
            let mut st = self.state();
            st.queue.push(Queued {
                event,
                args,
                timeout,
                done,
            });
            self.drain_queue(&mut st, false)
        };
        self.notify_outgoing(sent.iter().filter_map(event_parts));
    }

    /// Sends the head of the retry queue unless it is already in flight (or `force`, after a reconnect).
    fn drain_queue(&self, st: &mut State, force: bool) -> Option<Packet> {
        if !st.connected {
            return None;
        }
        let (seq, event, args, timeout) = {
            let (seq, q) = st.queue.next(force)?;
            (seq, q.event.clone(), q.args.clone(), q.timeout)
        };
        let deadline = timeout.map(|t| now() + t);
        let id = st.acks.register(deadline, AckSlot::Queue(seq));
        self.rearm(st, deadline);
        let packet = Packet::Event {
            nsp: self.inner.nsp.clone(),
            event,
            args,
            id: Some(id),
        };
        self.write_state(st, &packet);
        Some(packet)
    }

    /// Settles a try of the retry queue's packet `seq`, then sends what comes next.
    fn on_queue_result(&self, st: &mut State, seq: u64, result: AckResult) -> Option<Packet> {
        let outcome = st.queue.on_result(seq, result.is_ok());
        match outcome {
            RetryOutcome::Acked(q) | RetryOutcome::GaveUp(q) => {
                if let Some(done) = q.done {
                    let _ = done.send(result);
                }
            }
            RetryOutcome::Retry | RetryOutcome::Stale => {}
        }
        self.drain_queue(st, false)
    }

    /// The ack timer fired: every ack past its deadline fails (a queued emit may be tried again).
    fn on_ack_timeouts(&self, now: Instant) {
        let mut sent = Vec::new();
        {
            let mut st = self.state();
            for (id, slot) in st.acks.handle_timeout(now) {
                st.sent_acks.remove(&id);
                match slot {
                    AckSlot::Once(tx) => {
                        // A timed-out emit still in the offline buffer must not go out later.
                        st.send_buffer.retain(
                            |p| !matches!(p, Packet::Event { id: Some(i), .. } if *i == id),
                        );
                        let _ = tx.send(Err(AckError::Timeout));
                    }
                    AckSlot::Queue(seq) => {
                        sent.extend(self.on_queue_result(&mut st, seq, Err(AckError::Timeout)));
                    }
                }
            }
        }
        self.notify_outgoing(sent.iter().filter_map(event_parts));
    }

    pub(crate) fn on_ack(&self, id: u64, args: Vec<Value>) {
        let sent = {
            let mut st = self.state();
            st.sent_acks.remove(&id);
            match st.acks.take(id) {
                Some(AckSlot::Once(tx)) => {
                    let _ = tx.send(Ok(AckArgs(args)));
                    None
                }
                Some(AckSlot::Queue(seq)) => self.on_queue_result(&mut st, seq, Ok(AckArgs(args))),
                // Late, after a timeout: ignored.
                None => None,
            }
        };
        self.notify_outgoing(sent.iter().filter_map(event_parts));
    }

    // ---- lifecycle ----

    /// Connects (or reconnects) the socket: opens the manager's connection if needed.
    pub fn connect(&self) {
        {
            let mut st = self.state();
            if st.connected {
                return;
            }
            st.active = true;
        }
        self.inner.manager.attach(self);
    }

    /// Disconnects for good: no reconnection until `connect()` is called again.
    pub fn disconnect(&self) {
        let was_connected = {
            let mut st = self.state();
            st.active = false;
            st.connected
        };
        if was_connected {
            self.inner.manager.write_packet(&Packet::Disconnect {
                nsp: self.inner.nsp.clone(),
            });
            self.on_close(ClientDisconnectReason::IoClientDisconnect);
        }
        self.inner.manager.detach(self);
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active()
    }

    /// The manager's connection is open: send CONNECT (with auth, and the recovery pid/offset).
    pub(crate) async fn on_open(&self) {
        if !self.is_active() {
            return;
        }
        if self.inner.manager.protocol() == Protocol::V3 {
            return self.on_open_v3();
        }
        let auth = self.inner.opts.auth.resolve().await;
        let packet = {
            let st = self.state();
            connect_request(
                &self.inner.nsp,
                auth,
                st.pid
                    .as_deref()
                    .map(|pid| (pid, st.last_offset.as_deref())),
            )
        };
        self.inner.manager.write_packet(&packet);
    }

    /// Joins on a socket.io 2.x connection: `/` is joined by the server itself; other namespaces send
    /// their CONNECT with the query and no auth (protocol v4 has none).
    fn on_open_v3(&self) {
        let manager = &self.inner.manager;
        let packet = if self.inner.nsp == "/" {
            match manager.join_root() {
                RootJoin::Wait => return,
                RootJoin::Take => {
                    if let Some(id) = manager.engine_id() {
                        self.handle_connect(legacy::connect_ack("/", &id));
                    }
                    return;
                }
                RootJoin::Send => Packet::Connect {
                    nsp: "/".into(),
                    data: None,
                },
            }
        } else {
            legacy::connect_packet(&self.inner.nsp, &manager.opts.engine.query)
        };
        manager.write_packet(&packet);
    }

    /// A packet for this namespace.
    pub(crate) async fn on_packet(&self, packet: Packet) {
        let v3 = self.inner.manager.protocol() == Protocol::V3;
        match packet {
            Packet::Connect { .. } if v3 => {
                // A CONNECT nobody waits for any more (the socket left meanwhile) joins nothing.
                if !self.is_active() {
                    return;
                }
                if let Some(id) = self.inner.manager.engine_id() {
                    self.handle_connect(legacy::connect_ack(&self.inner.nsp, &id));
                }
            }
            // socket.io 2.x servers also send an ERROR to a connected socket (`socket.error(..)`): it
            // is reported and the socket stays.
            Packet::ConnectError { data, .. } if v3 && self.connected() => {
                self.lifecycle(Incoming::ConnectError(legacy::connect_error(data)));
            }
            Packet::ConnectError { data, .. } if v3 => {
                self.state().active = false;
                self.lifecycle(Incoming::ConnectError(legacy::connect_error(data)));
                self.inner.manager.detach(self);
            }
            Packet::Connect { data, .. } => match ConnectAck::parse(&data) {
                Some(ack) => self.handle_connect(ack),
                None => {
                    let err = ConnectError::new(
                        "invalid CONNECT packet from the server (not a Socket.IO v4 server?)",
                    );
                    self.lifecycle(Incoming::ConnectError(err));
                }
            },
            Packet::ConnectError { data, .. } => {
                self.state().active = false;
                self.lifecycle(Incoming::ConnectError(ConnectError::from_value(data)));
                // Refused: the connection closes unless another socket still wants it.
                self.inner.manager.detach(self);
            }
            Packet::Event {
                event, args, id, ..
            } => {
                // Bounded: a server flooding events makes the manager's reader wait here.
                let Ok(permit) = self.inner.room.clone().acquire_owned().await else {
                    return;
                };
                let _ = self
                    .inner
                    .incoming
                    .send(Incoming::Event(Event::new(self, event, args, id), permit));
            }
            Packet::Ack { id, args, .. } => self.on_ack(id, args),
            Packet::Disconnect { .. } => {
                self.state().active = false;
                self.on_close(ClientDisconnectReason::IoServerDisconnect);
                self.inner.manager.detach(self);
            }
        }
    }

    fn handle_connect(&self, ack: ConnectAck) {
        let sent = {
            let mut st = self.state();
            st.recovered = ack.pid.is_some() && st.pid == ack.pid;
            st.pid = ack.pid;
            st.id = Some(ack.sid);
            st.connected = true;
            let buffered = std::mem::take(&mut st.send_buffer);
            for p in &buffered {
                self.write_state(&mut st, p);
            }
            let mut sent = buffered;
            sent.extend(self.drain_queue(&mut st, true));
            sent
        };
        self.notify_outgoing(sent.iter().filter_map(event_parts));
        self.lifecycle(Incoming::Connect);
    }

    fn lifecycle(&self, incoming: Incoming) {
        let _ = self.inner.incoming.send(incoming);
    }

    /// The socket lost its connection (or was disconnected).
    pub(crate) fn on_close(&self, reason: ClientDisconnectReason) {
        let lost = {
            let mut st = self.state();
            if !st.connected {
                return;
            }
            st.connected = false;
            st.id = None;
            // Nobody answers what went out on the lost connection: an emit_with_ack fails, the try of
            // the retry queue's head is sent again once reconnected. What is still buffered waits.
            let ids: Vec<u64> = st.sent_acks.drain().collect();
            ids.into_iter()
                .filter_map(|id| st.acks.take(id))
                .filter_map(|slot| match slot {
                    AckSlot::Once(tx) => Some(tx),
                    AckSlot::Queue(_) => None,
                })
                .collect::<Vec<_>>()
        };
        for tx in lost {
            let _ = tx.send(Err(AckError::Disconnected));
        }
        self.lifecycle(Incoming::Disconnect(reason));
    }

    /// The manager could not connect.
    pub(crate) fn on_manager_error(&self, message: &str) {
        if !self.connected() {
            self.lifecycle(Incoming::ConnectError(ConnectError::new(message)));
        }
    }

    /// The manager gave up reconnecting: waiting acks and queued emits fail.
    pub(crate) fn on_gave_up(&self) {
        let (acks, queued) = {
            let mut st = self.state();
            st.sent_acks.clear();
            let acks = st.acks.drain();
            // Their emits must not go out after a later connect(): nobody waits for them.
            st.send_buffer
                .retain(|p| !matches!(p, Packet::Event { id: Some(_), .. }));
            (acks, st.queue.drain())
        };
        for (_, slot) in acks {
            if let AckSlot::Once(tx) = slot {
                let _ = tx.send(Err(AckError::Disconnected));
            }
        }
        for q in queued {
            if let Some(tx) = q.done {
                let _ = tx.send(Err(AckError::Disconnected));
            }
        }
    }

    /// With recovery on, the server appends each event's offset as a last string argument.
    pub(crate) fn record_offset(&self, args: &[Value]) {
        let mut st = self.state();
        if st.pid.is_some()
            && let Some(Value::String(off)) = args.last()
        {
            st.last_offset = Some(off.clone());
        }
    }
}

/// One timer per socket for every ack deadline: sleeps until the earliest, fails what expired.
async fn ack_timer(socket: std::sync::Weak<SocketInner>, mut rearm: mpsc::Receiver<()>) {
    loop {
        let deadline = {
            let Some(inner) = socket.upgrade() else {
                return;
            };
            let mut st = inner.state.lock();
            // Acks answered meanwhile may leave a later deadline (or none): sleeping until the old one
            // only costs an early wake-up, once per deadline rather than once per emit.
            st.timer_at = st.acks.poll_timeout();
            st.timer_at
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                let Some(inner) = socket.upgrade() else {
                    return;
                };
                Socket { inner }.on_ack_timeouts(now());
            }
            woken = rearm.recv() => {
                if woken.is_none() {
                    return;
                }
            }
        }
    }
}
