//! The Manager: one Engine.IO connection shared by the sockets of several namespaces.
//!
//! When to connect, how long an attempt may take, when to try again and what to report are decided by
//! `ferrio_proto::reconnect::Reconnect`; the manager's task only executes its outputs: it runs the
//! connection attempt, pumps the connection's events to the sockets, and sleeps until the machine's next
//! deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use ferrio_proto::engine::{Data, Protocol, TransportKind};
use ferrio_proto::fxhash::FxBuild;
use ferrio_proto::reconnect::{Event, Output, Reconnect};
use ferrio_proto::socket::{Encoded, Packet, PacketDecoder, normalize_namespace};
use ferrio_proto::value::Value;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::engine::{self, EngineConnection, EngineError, EngineEvent, EngineSender, MessageHook};
use crate::options::{BoxFuture, ClientOptions, SocketOptions};
use crate::socket::{Socket, SocketInner};
use ferrio_proto::socket::ClientDisconnectReason as DisconnectReason;

/// What a manager reports (`open`, `error`, `close`, `ping`, `reconnect_attempt`, `reconnect`,
/// `reconnect_error`, `reconnect_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagerEvent {
    /// The connection opened.
    Open,
    /// A connection attempt failed.
    Error(String),
    /// The connection closed, with the reason.
    Close(String),
    /// A heartbeat: the server pinged (Engine.IO v4), or the client sent its ping (v3).
    Ping,
    /// A reconnection attempt starts (its number).
    ReconnectAttempt(u32),
    /// Reconnected after this many attempts.
    Reconnect(u32),
    /// A reconnection attempt failed.
    ReconnectError(String),
    /// Every allowed attempt failed.
    ReconnectFailed,
}

type Listener = Arc<dyn Fn(&ManagerEvent) + Send + Sync>;

struct State {
    /// The open connection, once its sockets have been told.
    sender: Option<EngineSender>,
    /// Namespace names are the application's: the Fx hash (one lookup per message from the server).
    sockets: HashMap<String, Weak<SocketInner>, FxBuild>,
    /// Whether the manager's task runs; it ends when the machine has nothing left to do.
    running: bool,
    machine: Reconnect,
    /// Engine.IO v3 (socket.io 2.x): where the server's implicit connection to `/` stands.
    root: Root,
}

/// A socket.io 2.x server connects every new connection to `/` by itself and says so with a CONNECT
/// packet for `/`; this is where that connection stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// Not yet announced: a `/` socket waits for the server's CONNECT.
    Awaiting,
    /// Announced while no `/` socket wanted it: the next `/` socket to connect takes it.
    Available,
    /// Taken by the `/` socket, or left by it: joining `/` again takes a CONNECT of its own.
    Claimed,
}

/// What a `/` socket does to join on a v3 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootJoin {
    /// Wait for the server's implicit CONNECT.
    Wait,
    /// The server already connected it: the socket is connected now.
    Take,
    /// Send a CONNECT, as for any namespace.
    Send,
}

pub(crate) struct ManagerInner {
    url: String,
    pub(crate) opts: ClientOptions,
    state: Mutex<State>,
    listeners: RwLock<Vec<Listener>>,
    /// Wakes the task after `open()` or `close()` changed the machine.
    wake: Notify,
}

/// One connection to a server, shared by sockets (`io.Manager`). Cloning shares it.
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<ManagerInner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("url", &self.inner.url)
            .finish()
    }
}

impl Manager {
    /// A manager for the server at `url` (`http(s)://host:port`; the path comes from the options).
    pub fn new(url: &str, opts: ClientOptions) -> Manager {
        let machine = Reconnect::new(opts.reconnect_config(), rand::random());
        Manager {
            inner: Arc::new(ManagerInner {
                url: url.trim_end_matches('/').to_owned(),
                opts,
                state: Mutex::new(State {
                    sender: None,
                    sockets: HashMap::default(),
                    running: false,
                    machine,
                    root: Root::Awaiting,
                }),
                listeners: RwLock::new(Vec::new()),
                wake: Notify::new(),
            }),
        }
    }

    /// The socket of namespace `nsp` on this connection: the one already there, or a new one with the
    /// manager's `auth`, `ack_timeout` and `retries` (connected at once when `auto_connect`).
    pub fn socket(&self, nsp: &str) -> Socket {
        self.socket_with(nsp, SocketOptions::from(&self.inner.opts))
    }

    /// The socket of namespace `nsp` on this connection: the one already there (`opts` are then
    /// ignored), or a new one with `opts` (connected at once when `auto_connect`).
    pub fn socket_with(&self, nsp: &str, opts: SocketOptions) -> Socket {
        let nsp = normalize_namespace(nsp).into_owned();
        let socket = {
            let mut st = self.inner.state.lock();
            match st.sockets.get(&nsp).and_then(Weak::upgrade) {
                Some(inner) => Socket { inner },
                None => {
                    let socket = Socket::new(nsp.clone(), self.inner.clone(), opts);
                    st.sockets.insert(nsp, Arc::downgrade(&socket.inner));
                    socket
                }
            }
        };
        if self.inner.opts.auto_connect && !socket.active() {
            socket.connect();
        }
        socket
    }

    /// Listens to the manager's events.
    pub fn on_event(&self, f: impl Fn(&ManagerEvent) + Send + Sync + 'static) {
        self.inner.listeners.write().push(Arc::new(f));
    }

    /// Opens the connection (done by the sockets when they connect).
    pub fn open(&self) {
        self.inner.open();
    }

    /// Closes the connection for good: no reconnection.
    pub fn close(&self) {
        self.inner.close();
    }

    /// The Engine.IO session id, when connected.
    pub fn engine_id(&self) -> Option<String> {
        self.inner
            .state
            .lock()
            .sender
            .as_ref()
            .map(|s| s.id().to_owned())
    }

    /// The transport in use, when connected.
    pub fn transport(&self) -> Option<TransportKind> {
        self.inner
            .state
            .lock()
            .sender
            .as_ref()
            .map(|s| s.transport())
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl ManagerInner {
    /// The Engine.IO protocol revision, which also decides the Socket.IO one (v3 goes with Socket.IO
    /// protocol v4, that of socket.io 2.x).
    pub(crate) fn protocol(&self) -> Protocol {
        self.opts.engine.protocol
    }

    /// The Engine.IO session id, when connected.
    pub(crate) fn engine_id(&self) -> Option<String> {
        self.state.lock().sender.as_ref().map(|s| s.id().to_owned())
    }

    /// How a `/` socket joins on a v3 connection (see [`Root`]).
    pub(crate) fn join_root(&self) -> RootJoin {
        let mut st = self.state.lock();
        match std::mem::replace(&mut st.root, Root::Claimed) {
            Root::Awaiting => {
                st.root = Root::Awaiting;
                RootJoin::Wait
            }
            Root::Available => RootJoin::Take,
            Root::Claimed => RootJoin::Send,
        }
    }

    /// A v3 packet the manager routes itself; `None` when it did, the packet back otherwise.
    async fn route_v3(&self, packet: Packet) -> Option<Packet> {
        match &packet {
            Packet::Connect { nsp, .. } if nsp == "/" => {
                let root = {
                    let mut st = self.state.lock();
                    let socket = st
                        .sockets
                        .get("/")
                        .and_then(Weak::upgrade)
                        .map(|inner| Socket { inner })
                        .filter(|s| s.is_active() && !s.connected());
                    st.root = if socket.is_some() {
                        Root::Claimed
                    } else {
                        Root::Available
                    };
                    socket
                };
                if let Some(s) = root {
                    s.on_packet(packet).await;
                }
                None
            }
            // socket.io 2.x clients hand an error of `/` to every socket: the server connects the
            // other namespaces only once `/` is joined, so they are refused with it.
            Packet::ConnectError { nsp, .. } if nsp == "/" => {
                for s in self.sockets() {
                    if s.nsp() == "/" || (s.is_active() && !s.connected()) {
                        s.on_packet(packet.clone()).await;
                    }
                }
                None
            }
            _ => Some(packet),
        }
    }

    fn emit(&self, ev: ManagerEvent) {
        let listeners = self.listeners.read().clone();
        for l in &listeners {
            l(&ev);
        }
    }

    fn sockets(&self) -> Vec<Socket> {
        Self::live(&self.state.lock())
    }

    fn live(st: &State) -> Vec<Socket> {
        st.sockets
            .values()
            .filter_map(|w| w.upgrade())
            .map(|inner| Socket { inner })
            .collect()
    }

    /// A socket wants to connect.
    pub(crate) fn attach(self: &Arc<Self>, socket: &Socket) {
        let open = {
            let mut st = self.state.lock();
            st.sockets
                .insert(socket.nsp().to_owned(), Arc::downgrade(&socket.inner));
            st.sender.is_some()
        };
        if open {
            let socket = socket.clone();
            tokio::spawn(async move { socket.on_open().await });
        } else {
            self.open();
        }
    }

    /// A socket left for good; the connection closes when no socket wants it any more.
    pub(crate) fn detach(&self, _socket: &Socket) {
        if !self.sockets().iter().any(Socket::is_active) {
            self.close();
        }
    }

    fn open(self: &Arc<Self>) {
        let mut st = self.state.lock();
        st.machine.open(now());
        if st.running {
            self.wake.notify_one();
        } else {
            st.running = true;
            tokio::spawn(self.clone().drive());
        }
    }

    fn close(&self) {
        self.state.lock().machine.close();
        self.wake.notify_one();
    }

    /// Encodes and writes a packet on the current connection (dropped when there is none; a volatile
    /// packet is only written while connected, which the socket checked). Whether it was queued, for
    /// the callers that report a lost write (an ack answered after the connection closed).
    pub(crate) fn write_packet(&self, packet: &Packet) -> bool {
        self.write_encoded(self.opts.parser.encode(packet))
    }

    /// [`ManagerInner::write_packet`] of an event given by its parts (no packet built); hands the
    /// arguments back.
    pub(crate) fn write_event(
        &self,
        nsp: &str,
        event: &str,
        args: Vec<Value>,
        id: Option<u64>,
    ) -> Vec<Value> {
        let (encoded, args) = self.opts.parser.encode_event(nsp, event, args, id);
        self.write_encoded(encoded);
        args
    }

    /// [`ManagerInner::write_packet`] of an event whose `["event",args…]` text was written
    /// straight from its data (with the default parser only: see [`ManagerInner::writes_json_text`]).
    pub(crate) fn write_event_text(&self, nsp: &str, text: &str, id: Option<u64>) -> bool {
        self.write_encoded(ferrio_proto::socket::encode_event_text(nsp, text, id))
    }

    /// Whether the parser writes the default JSON text, so that events and acks can be written
    /// straight from their data.
    pub(crate) fn writes_json_text(&self) -> bool {
        self.opts.parser.writes_json_text()
    }

    /// [`ManagerInner::write_packet`] of an ack given by its parts (no packet built).
    pub(crate) fn write_ack(&self, nsp: &str, args: Vec<Value>, id: u64) -> bool {
        let (encoded, _) = self.opts.parser.encode_ack(nsp, args, id);
        self.write_encoded(encoded)
    }

    pub(crate) fn write_encoded(&self, encoded: Encoded) -> bool {
        // Queued under the lock (it never waits) rather than with a clone of the sender per packet.
        let st = self.state.lock();
        let Some(sender) = &st.sender else {
            return false;
        };
        for frame in encoded.into_frames() {
            if sender.send(frame).is_err() {
                return false;
            }
        }
        true
    }

    /// Executes the reconnection machine until it has nothing left to do.
    async fn drive(self: Arc<Self>) {
        let mut task = Task {
            attempt: None,
            conn: None,
            inline: None,
            decoder: self.opts.parser.decoder(),
            last_error: String::new(),
        };
        // The waiter and the sleep live across turns of the loop: a turn per message from the server
        // must not register and unregister a waiter, nor re-arm a timer.
        let wake = self.wake.notified();
        tokio::pin!(wake);
        let sleep = tokio::time::sleep(std::time::Duration::ZERO);
        tokio::pin!(sleep);
        let mut sleep_at = None;
        // Whether the machine may have something to say (a message from the server leaves it as it was).
        let mut changed = true;
        loop {
            if changed {
                self.execute(&mut task).await;
                let deadline = {
                    let mut st = self.state.lock();
                    if !st.machine.is_active() && task.attempt.is_none() && task.conn.is_none() {
                        st.running = false;
                        return;
                    }
                    st.machine.poll_timeout()
                };
                if deadline != sleep_at {
                    sleep_at = deadline;
                    if let Some(d) = deadline {
                        sleep.as_mut().reset(tokio::time::Instant::from_std(d));
                    }
                }
            }
            tokio::select! {
                biased;
                _ = &mut wake => {
                    wake.set(self.wake.notified());
                    changed = true;
                }
                Some(r) = async {
                    match task.attempt.as_mut() {
                        Some(attempt) => Some(attempt.await),
                        None => None,
                    }
                } => {
                    changed = true;
                    task.attempt = None;
                    match r {
                        Ok((conn, inline)) => {
                            task.decoder.reset();
                            task.conn = Some(conn);
                            task.inline = Some(inline);
                            self.state.lock().machine.on_open(now());
                        }
                        Err(e) => {
                            task.last_error = e.to_string();
                            self.state.lock().machine.on_error(now());
                        }
                    }
                }
                Some(ev) = async {
                    match task.conn.as_mut() {
                        Some(conn) => Some(conn.events.recv().await),
                        None => None,
                    }
                } => {
                    let message = matches!(ev, Some(EngineEvent::Message(_)));
                    changed = self.on_engine_event(&mut task, ev).await;
                    if message && let Some(inline) = &task.inline {
                        inline.queued.fetch_sub(1, Ordering::Release);
                    }
                }
                _ = &mut sleep, if sleep_at.is_some() => {
                    // Fires once per deadline: a new one re-arms it above.
                    sleep_at = None;
                    changed = true;
                    self.state.lock().machine.handle_timeout(now());
                }
            }
        }
    }

    /// Handles what the connection reported; whether the machine changed (a closed connection).
    async fn on_engine_event(&self, task: &mut Task, ev: Option<EngineEvent>) -> bool {
        let reason = match ev {
            Some(EngineEvent::Message(data)) => match task.decoder.decode(data).inspect(|p| {
                if let Some(inline) = &task.inline {
                    // Read by the hook once `queued` says this message is handled.
                    inline.partial.store(p.is_none(), Ordering::Relaxed);
                }
            }) {
                Ok(Some(packet)) => {
                    let packet = match self.protocol() {
                        Protocol::V3 => match self.route_v3(packet).await {
                            Some(p) => p,
                            None => return false,
                        },
                        Protocol::V4 => packet,
                    };
                    let socket = self
                        .state
                        .lock()
                        .sockets
                        .get(packet.nsp())
                        .and_then(Weak::upgrade)
                        .map(|inner| Socket { inner });
                    if let Some(s) = socket {
                        s.on_packet(packet).await;
                    }
                    return false;
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::debug!(error = %e, "invalid packet from the server");
                    DisconnectReason::ParseError
                }
            },
            Some(EngineEvent::Ping) => {
                self.emit(ManagerEvent::Ping);
                return false;
            }
            Some(EngineEvent::Upgrade(_)) => return false,
            // The engine's close reason, as the sockets see it (one mapping, in proto).
            Some(EngineEvent::Close { reason, .. }) => reason.into(),
            None => DisconnectReason::TransportClose,
        };
        if let Some(conn) = task.conn.take() {
            conn.sender.close();
        }
        let mut st = self.state.lock();
        st.sender = None;
        st.machine.on_close(now(), reason);
        true
    }

    /// Runs what the machine asks for, in order.
    async fn execute(self: &Arc<Self>, task: &mut Task) {
        loop {
            let out = self.state.lock().machine.poll_output();
            let Some(out) = out else { return };
            match out {
                Output::Connect => {
                    let url = self.url.clone();
                    let engine = self.opts.engine.clone();
                    let inline = Arc::new(InlineAcks {
                        manager: Arc::downgrade(self),
                        queued: AtomicUsize::new(0),
                        partial: AtomicBool::new(false),
                        decoder: Mutex::new(None),
                    });
                    task.attempt = Some(Box::pin(async move {
                        let hook: Arc<dyn MessageHook> = inline.clone();
                        let conn = engine::connect_with_hook(&url, &engine, Some(hook)).await?;
                        Ok((conn, inline))
                    }));
                }
                Output::Abort => {
                    task.attempt = None;
                    task.last_error = "timeout".into();
                }
                Output::Disconnect => {
                    if let Some(conn) = task.conn.take() {
                        conn.sender.close();
                    }
                    self.state.lock().sender = None;
                }
                Output::Event(ev) => self.report(task, ev).await,
            }
        }
    }

    async fn report(&self, task: &mut Task, ev: Event) {
        match ev {
            Event::Open => {
                let sockets = {
                    let mut st = self.state.lock();
                    // The sender and the list of sockets to tell change together: a socket attached
                    // from now on sends its own CONNECT, one attached before is in this list.
                    st.sender = task.conn.as_ref().map(|c| c.sender.clone());
                    st.root = Root::Awaiting;
                    Self::live(&st)
                };
                self.emit(ManagerEvent::Open);
                for s in sockets {
                    s.on_open().await;
                }
            }
            Event::Error => {
                self.emit(ManagerEvent::Error(task.last_error.clone()));
                for s in self.sockets() {
                    s.on_manager_error(&task.last_error);
                }
            }
            Event::Close(reason) => {
                task.decoder.reset();
                self.emit(ManagerEvent::Close(close_string(&reason).to_owned()));
                for s in self.sockets() {
                    s.on_close(reason);
                }
            }
            Event::ReconnectAttempt(n) => self.emit(ManagerEvent::ReconnectAttempt(n)),
            Event::Reconnect(n) => self.emit(ManagerEvent::Reconnect(n)),
            Event::ReconnectError => {
                self.emit(ManagerEvent::ReconnectError(task.last_error.clone()))
            }
            Event::ReconnectFailed => {
                self.emit(ManagerEvent::ReconnectFailed);
                for s in self.sockets() {
                    s.on_gave_up();
                }
            }
        }
    }
}

/// Resolves the server's acks in the connection's own task, without the hop to the manager's task:
/// an ACK needs nothing of that task but the socket it goes to, and the hop (a channel, a wake-up, a
/// turn of the task) was a good part of what an ack cost.
struct InlineAcks {
    manager: Weak<ManagerInner>,
    /// Messages handed to the manager's task and not handled yet: an ack is resolved here only when
    /// there are none, so the server's packets are handled in the order they came.
    queued: AtomicUsize,
    /// The manager's decoder holds part of a packet (attachments to come): the next message is not an
    /// ack of its own.
    partial: AtomicBool,
    /// A decoder of the connection's parser, idle between two messages; made for the first ack, so
    /// that an idle connection does not hold one.
    decoder: Mutex<Option<Box<dyn PacketDecoder>>>,
}

impl MessageHook for InlineAcks {
    fn on_message(&self, data: Data) -> Option<Data> {
        // `3` is the ACK packet of the default parser; whatever else decodes to an ack goes the long way.
        if matches!(&data, Data::Text(t) if t.starts_with('3'))
            && self.queued.load(Ordering::Acquire) == 0
            && !self.partial.load(Ordering::Relaxed)
            && let Some(manager) = self.manager.upgrade()
            && manager.ack_inline(
                &mut **self
                    .decoder
                    .lock()
                    .get_or_insert_with(|| manager.opts.parser.decoder()),
                &data,
            )
        {
            return None;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        Some(data)
    }
}

impl ManagerInner {
    /// Resolves the ack in `data`; false (the decoder left idle) when it is not a whole ACK packet.
    fn ack_inline(&self, decoder: &mut dyn PacketDecoder, data: &Data) -> bool {
        match decoder.decode(data.clone()) {
            Ok(Some(Packet::Ack { nsp, id, args })) => {
                let socket = self.state.lock().sockets.get(&nsp).and_then(Weak::upgrade);
                if let Some(inner) = socket {
                    Socket { inner }.on_ack(id, args);
                }
                true
            }
            _ => {
                decoder.reset();
                false
            }
        }
    }
}

/// A connection attempt: the connection and its hook.
type Attempt = BoxFuture<Result<(EngineConnection, Arc<InlineAcks>), EngineError>>;

/// What the manager's task holds between two steps of the machine.
struct Task {
    attempt: Option<Attempt>,
    conn: Option<EngineConnection>,
    /// The hook of `conn`.
    inline: Option<Arc<InlineAcks>>,
    decoder: Box<dyn PacketDecoder>,
    /// The error of the last failed attempt, for the `error` and `reconnect_error` events.
    last_error: String,
}

/// The manager's own reason for a close the user asked for is the official "forced close".
fn close_string(reason: &DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::IoClientDisconnect => "forced close",
        r => r.as_str(),
    }
}

/// Managers shared by `connect` when `multiplex` is on, by server origin.
fn cache() -> &'static Mutex<HashMap<String, Weak<ManagerInner>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Weak<ManagerInner>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Connects to a namespace like JavaScript's `io(url, opts)`: `http://host:port/chat` is namespace
/// `/chat` of the server at `http://host:port`. With `multiplex` (the default), sockets of one server
/// share one connection, unless the namespace is already in use on it or `force_new` is set.
pub fn connect(url: &str, opts: ClientOptions) -> Socket {
    let (origin, nsp) = split_url(url);
    let nsp = normalize_namespace(&nsp).into_owned();
    let key = format!("{origin}{}", opts.engine.path);
    let existing = if opts.multiplex && !opts.force_new {
        cache().lock().get(&key).and_then(Weak::upgrade)
    } else {
        None
    };
    let manager = match existing {
        Some(inner)
            if inner
                .state
                .lock()
                .sockets
                .get(&nsp)
                .is_none_or(|w| w.strong_count() == 0) =>
        {
            Manager { inner }
        }
        _ => {
            let m = Manager::new(&origin, opts.clone());
            if opts.multiplex && !opts.force_new {
                cache().lock().insert(key, Arc::downgrade(&m.inner));
            }
            m
        }
    };
    // On a shared manager, this call's auth, ack timeout and retries still apply to its socket.
    manager.socket_with(&nsp, SocketOptions::from(&opts))
}

/// `http://host:port/chat?x=1` → (`http://host:port`, `/chat`).
fn split_url(url: &str) -> (String, String) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..].find('/').map(|i| i + after_scheme);
    match path_start {
        Some(i) => {
            let path = url[i..].split(['?', '#']).next().unwrap_or("/");
            let nsp = if path.is_empty() { "/" } else { path };
            (url[..i].to_owned(), nsp.to_owned())
        }
        None => (
            url.split(['?', '#']).next().unwrap_or(url).to_owned(),
            "/".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls() {
        assert_eq!(split_url("http://h:1"), ("http://h:1".into(), "/".into()));
        assert_eq!(split_url("http://h:1/"), ("http://h:1".into(), "/".into()));
        assert_eq!(
            split_url("https://h/chat?x=1"),
            ("https://h".into(), "/chat".into())
        );
        assert_eq!(
            split_url("ws://h:1/a/b"),
            ("ws://h:1".into(), "/a/b".into())
        );
    }
}
