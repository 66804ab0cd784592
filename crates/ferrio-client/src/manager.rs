//! The Manager: one Engine.IO connection shared by the sockets of several namespaces, reconnecting with
//! exponential backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use ferrio_proto::backoff::Backoff;
use ferrio_proto::engine::{Frame, TransportKind};
use ferrio_proto::socket::{Decoder, Packet, encode};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::engine::{self, CloseReason, EngineEvent, EngineSender};
use crate::options::ClientOptions;
use crate::socket::{DisconnectReason, Socket, SocketInner};

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
    /// The server pinged.
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

#[derive(Default)]
struct State {
    sender: Option<EngineSender>,
    sockets: HashMap<String, Weak<SocketInner>>,
    running: bool,
}

pub(crate) struct ManagerInner {
    url: String,
    pub(crate) opts: ClientOptions,
    state: Mutex<State>,
    listeners: RwLock<Vec<Listener>>,
    decoder: Mutex<Decoder>,
    /// Set by `close()`: stop, and do not reconnect.
    closed: AtomicBool,
    close_signal: Notify,
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
        Manager {
            inner: Arc::new(ManagerInner {
                url: url.trim_end_matches('/').to_owned(),
                opts,
                state: Mutex::new(State::default()),
                listeners: RwLock::new(Vec::new()),
                decoder: Mutex::new(Decoder::default()),
                closed: AtomicBool::new(false),
                close_signal: Notify::new(),
            }),
        }
    }

    /// The socket of namespace `nsp` on this connection (connected at once when `auto_connect`).
    pub fn socket(&self, nsp: &str) -> Socket {
        let nsp = if nsp.starts_with('/') {
            nsp.to_owned()
        } else {
            format!("/{nsp}")
        };
        let socket = Socket::new(nsp, self.inner.clone());
        if self.inner.opts.auto_connect {
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
        self.inner.start();
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

impl ManagerInner {
    fn emit(&self, ev: ManagerEvent) {
        let listeners = self.listeners.read().clone();
        for l in &listeners {
            l(&ev);
        }
    }

    fn sockets(&self) -> Vec<Socket> {
        self.state
            .lock()
            .sockets
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
            self.closed.store(false, Ordering::Release);
            self.start();
        }
    }

    /// A socket left for good; the connection closes when no socket wants it any more.
    pub(crate) fn detach(&self, _socket: &Socket) {
        if !self.sockets().iter().any(Socket::is_active) {
            self.close();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.close_signal.notify_waiters();
        let sender = self.state.lock().sender.clone();
        if let Some(s) = sender {
            s.close();
        }
    }

    fn start(self: &Arc<Self>) {
        {
            let mut st = self.state.lock();
            if st.running {
                return;
            }
            st.running = true;
        }
        tokio::spawn(self.clone().drive());
    }

    /// Encodes and writes a packet on the current connection (dropped when there is none; a volatile
    /// packet is only written while connected, which the socket checked).
    pub(crate) fn write_packet(&self, packet: &Packet, _volatile: bool) {
        let sender = self.state.lock().sender.clone();
        let Some(sender) = sender else { return };
        let encoded = encode(packet);
        if sender.send(encoded.head).is_err() {
            return;
        }
        for a in encoded.attachments {
            if sender.send(Frame::Binary(a)).is_err() {
                return;
            }
        }
    }

    /// Connects, pumps the connection's events, reconnects with backoff until closed or out of attempts.
    async fn drive(self: Arc<Self>) {
        let opts = &self.opts;
        let mut backoff = Backoff::new(
            opts.reconnection_delay,
            opts.reconnection_delay_max,
            opts.randomization_factor,
        );
        let mut reconnecting = false;
        loop {
            if self.closed.load(Ordering::Acquire) {
                break;
            }
            if reconnecting {
                if opts
                    .reconnection_attempts
                    .is_some_and(|max| backoff.attempts() >= max)
                {
                    self.emit(ManagerEvent::ReconnectFailed);
                    for s in self.sockets() {
                        s.on_gave_up();
                    }
                    break;
                }
                let delay = backoff.next_delay(rand::random::<f64>());
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.close_signal.notified() => break,
                }
                self.emit(ManagerEvent::ReconnectAttempt(backoff.attempts()));
            }
            let attempt =
                tokio::time::timeout(opts.timeout, engine::connect(&self.url, &opts.engine)).await;
            let mut conn = match attempt {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    self.on_connect_failed(e.to_string(), reconnecting);
                    if !opts.reconnection {
                        break;
                    }
                    reconnecting = true;
                    continue;
                }
                Err(_) => {
                    self.on_connect_failed("timeout".into(), reconnecting);
                    if !opts.reconnection {
                        break;
                    }
                    reconnecting = true;
                    continue;
                }
            };
            if self.closed.load(Ordering::Acquire) {
                conn.sender.close();
                break;
            }
            self.state.lock().sender = Some(conn.sender.clone());
            self.decoder.lock().reset();
            self.emit(ManagerEvent::Open);
            if reconnecting {
                self.emit(ManagerEvent::Reconnect(backoff.attempts()));
            }
            backoff.reset();
            for s in self.sockets() {
                s.on_open().await;
            }

            let reason = loop {
                match conn.events.recv().await {
                    Some(EngineEvent::Message(data)) => {
                        let decoded = self.decoder.lock().decode_data(data);
                        match decoded {
                            Ok(Some(packet)) => {
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
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::debug!(error = %e, "invalid packet from the server");
                                conn.sender.close();
                                break DisconnectReason::ParseError;
                            }
                        }
                    }
                    Some(EngineEvent::Ping) => self.emit(ManagerEvent::Ping),
                    Some(EngineEvent::Upgrade(_)) => {}
                    Some(EngineEvent::Close { reason, .. }) => break map_reason(reason),
                    None => break DisconnectReason::TransportClose,
                }
            };
            self.state.lock().sender = None;
            self.decoder.lock().reset();
            self.emit(ManagerEvent::Close(reason.as_str().to_owned()));
            for s in self.sockets() {
                s.on_close(reason.clone());
            }
            if self.closed.load(Ordering::Acquire) || !opts.reconnection {
                break;
            }
            reconnecting = true;
        }
        self.state.lock().running = false;
    }

    fn on_connect_failed(&self, message: String, reconnecting: bool) {
        self.emit(ManagerEvent::Error(message.clone()));
        if reconnecting {
            self.emit(ManagerEvent::ReconnectError(message.clone()));
        }
        for s in self.sockets() {
            s.on_manager_error(&message);
        }
    }
}

fn map_reason(r: CloseReason) -> DisconnectReason {
    match r {
        CloseReason::PingTimeout => DisconnectReason::PingTimeout,
        CloseReason::ParseError => DisconnectReason::ParseError,
        CloseReason::TransportError => DisconnectReason::TransportError,
        _ => DisconnectReason::TransportClose,
    }
}

trait DecodeData {
    fn decode_data(
        &mut self,
        data: ferrio_proto::engine::Data,
    ) -> Result<Option<Packet>, ferrio_proto::socket::ParseError>;
}

impl DecodeData for Decoder {
    fn decode_data(
        &mut self,
        data: ferrio_proto::engine::Data,
    ) -> Result<Option<Packet>, ferrio_proto::socket::ParseError> {
        match data {
            ferrio_proto::engine::Data::Text(t) => self.decode_text(&t),
            ferrio_proto::engine::Data::Binary(b) => self.decode_binary(b),
        }
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
    let key = format!("{origin}{}", opts.engine.path);
    let existing = if opts.multiplex && !opts.force_new {
        cache().lock().get(&key).and_then(Weak::upgrade)
    } else {
        None
    };
    let manager = match existing {
        Some(inner) if !inner.state.lock().sockets.contains_key(&nsp) => Manager { inner },
        _ => {
            let m = Manager::new(&origin, opts.clone());
            if opts.multiplex && !opts.force_new {
                cache().lock().insert(key, Arc::downgrade(&m.inner));
            }
            m
        }
    };
    manager.socket(&nsp)
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
