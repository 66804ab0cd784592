//! The Engine.IO v4 client: a session over HTTP long-polling and/or WebSocket, with the upgrade from the
//! first to the second, heartbeats and close.
//!
//! [`connect`] performs the handshake and spawns one task that drives the session. The task is fed
//! through an [`EngineSender`] (frames already encoded with [`Frame`]) and reports what happens through
//! the [`EngineEvent`] receiver of the returned [`EngineConnection`]. The protocol rules (heartbeat
//! watchdog, write buffer and `maxPayload`, upgrade order, close ordering) are those of
//! `ferrio_proto::engine::ClientSession`; the task only executes what it asks, with the same packet
//! codecs the server uses.

mod driver;
pub(crate) mod endpoint;
mod polling;
mod tls;
mod websocket;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ferrio_proto::engine::ClientConfig;
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use ferrio_proto::engine::{CloseReason, Data, Frame, OpenPacket, Protocol, TransportKind};
pub use ferrio_proto::ws::DeflateConfig;
pub use tls::{ClientCertificate, TlsOptions};
pub use websocket::{RawError, RawWebSocket};

use endpoint::Endpoint;

/// Frames an [`EngineSender`] may queue before [`EngineSender::send`] fails with
/// [`EngineError::QueueFull`].
pub const SEND_QUEUE_CAPACITY: usize = 1024;

/// Events buffered for the [`EngineConnection::events`] receiver. When it is full the connection stops
/// reading from the network until the application catches up.
pub const EVENT_QUEUE_CAPACITY: usize = 1024;

/// The smallest limit applied to what the server sends (one websocket message or one polling body),
/// whatever `maxPayload` the server announced.
pub const MIN_INCOMING_LIMIT: usize = 1024 * 1024;

/// Options of [`connect`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The path of the Engine.IO endpoint (`/engine.io/`; the Socket.IO manager uses `/socket.io/`).
    pub path: String,
    /// Extra query parameters, appended to every request.
    pub query: Vec<(String, String)>,
    /// The transports to use; the first one opens the session.
    pub transports: Vec<TransportKind>,
    /// Whether to upgrade from polling to websocket when the server offers it.
    pub upgrade: bool,
    /// Start with websocket when a previous websocket connection to the same host worked (in this process).
    pub remember_upgrade: bool,
    /// Headers added to every HTTP request and to the websocket handshake.
    pub extra_headers: http::HeaderMap,
    /// Add a random cache-busting parameter to polling requests.
    pub timestamp_requests: bool,
    /// The name of that parameter.
    pub timestamp_param: String,
    /// Ask the server for base64-encoded binary (`b64=1`); binary is base64 over polling in v4 anyway.
    pub force_base64: bool,
    /// TLS settings for `https://` and `wss://`.
    pub tls: TlsOptions,
    /// Time allowed for the whole handshake (connection, TLS, open packet); `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// The Engine.IO protocol revision (`EIO` query parameter): v4, or v3 to talk to engine.io 3.x
    /// servers (socket.io 2.x). With v3 the client sends the heartbeat pings, as engine.io-client 3.x.
    pub protocol: Protocol,
    /// permessage-deflate (RFC 7692) offered in the websocket handshake (engine.io-client's
    /// `perMessageDeflate`, offered by default with a `threshold` of 1024: smaller messages are sent
    /// uncompressed); `None` does not offer it.
    pub per_message_deflate: Option<DeflateConfig>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            path: "/engine.io/".to_string(),
            query: Vec::new(),
            transports: vec![TransportKind::Polling, TransportKind::WebSocket],
            upgrade: true,
            remember_upgrade: false,
            extra_headers: http::HeaderMap::new(),
            timestamp_requests: true,
            timestamp_param: "t".to_string(),
            force_base64: false,
            tls: TlsOptions::default(),
            connect_timeout: Some(Duration::from_secs(20)),
            protocol: Protocol::V4,
            per_message_deflate: Some(DeflateConfig::default()),
        }
    }
}

/// An open Engine.IO session.
#[derive(Debug)]
pub struct EngineConnection {
    /// The server's handshake document.
    pub handshake: OpenPacket,
    /// Queues frames and closes the session; cloneable.
    pub sender: EngineSender,
    /// What happens on the session. [`EngineEvent::Close`] is the last event.
    pub events: mpsc::Receiver<EngineEvent>,
}

/// Something that happened on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// The server sent a message.
    Message(Data),
    /// A heartbeat: the server pinged and the pong is queued (v4), or the client sent its ping (v3).
    Ping,
    /// The session moved to this transport.
    Upgrade(TransportKind),
    /// The session is closed; nothing follows.
    Close {
        /// The official reason: "forced close" ([`EngineSender::close`]), "transport close" (the server
        /// closed), "transport error", "ping timeout" (no ping within `pingInterval + pingTimeout`) or
        /// "parse error".
        reason: CloseReason,
        /// What failed, for "transport error".
        detail: Option<String>,
    },
}

/// Why [`connect`] or [`EngineSender::send`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The URL is not `http(s)://` or `ws(s)://` with a host, or the options make an invalid request.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// A network error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// TLS failed (certificate verification, handshake) or the TLS options are invalid.
    #[error("tls error: {0}")]
    Tls(String),
    /// The server answered with an error status (`body` is the JSON `{"code","message"}` of Engine.IO).
    #[error("http status {status}: {body}")]
    Http {
        /// The status.
        status: http::StatusCode,
        /// The response body, lossily decoded as UTF-8.
        body: String,
    },
    /// An HTTP protocol error.
    #[error("http error: {0}")]
    Hyper(String),
    /// A websocket protocol error.
    #[error("websocket error: {0}")]
    WebSocket(String),
    /// The server's answer to the handshake is not an Engine.IO v4 open packet.
    #[error("invalid handshake: {0}")]
    Handshake(String),
    /// `transports` is empty.
    #[error("no transport to connect with")]
    NoTransport,
    /// The handshake took longer than `connect_timeout`.
    #[error("handshake timed out")]
    Timeout,
    /// The session is closed.
    #[error("connection closed")]
    Closed,
    /// [`SEND_QUEUE_CAPACITY`] frames are already waiting.
    #[error("send queue full")]
    QueueFull,
}

/// State shared by the senders and the task.
#[derive(Debug)]
struct Shared {
    id: String,
    transport: AtomicU8,
    closed: AtomicBool,
    /// [`EngineSender::close`] was called and the task has not seen it yet.
    close_requested: AtomicBool,
    /// A sender's direct write needs the task: it left bytes to flush, or it failed.
    kicked: AtomicBool,
    /// The task's waker, for `close_requested` and `kicked`. The task looks at it on every turn, so a
    /// flag and a waker it rarely replaces cost less than joining and leaving a `Notify`'s waiter list
    /// each time.
    close_waker: Mutex<Option<Waker>>,
    /// The websocket's writer and whether a sender may use it.
    direct: Mutex<Direct>,
}

/// The writer of the websocket in use, shared by the task and the senders.
///
/// While the task waits with everything written and nothing of its own to write, a frame is written
/// by its sender at once ([`EngineSender::send`]): no channel, no wake-up and no turn of the task per
/// frame, which was a third of the client's own work per ack. Otherwise, or when the socket does not
/// take all of it, the task writes as before and the senders queue behind it. Every write of either
/// side happens under this lock, so the frames keep the order of their sends.
pub(crate) struct Direct {
    /// The websocket's writer; `None` over polling and once the session is over.
    pub(crate) writer: Option<websocket::WsWriter>,
    /// Set by the task just before it waits, when the session is open on the websocket with nothing
    /// buffered, nothing in flight and no frame left in the channel; cleared on each of its turns.
    pub(crate) open: bool,
    /// Frames in the channel that the task has not taken: the next frames go behind them.
    pub(crate) queued: usize,
    /// A sender's write failed: the task ends the transport with it.
    pub(crate) failed: Option<websocket::WsError>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("writer", &self.writer.is_some())
            .field("open", &self.open)
            .field("queued", &self.queued)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Shared {
    /// Ready once [`EngineSender::close`] was called (true, once per call) or a direct write needs the
    /// task (false).
    fn poll_attention(&self, cx: &mut Context<'_>) -> Poll<bool> {
        if !self.close_requested.load(Ordering::Acquire) && !self.kicked.load(Ordering::Acquire) {
            {
                let mut w = self.close_waker.lock();
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
            }
            // Asked between the first look and the registration: not missed.
            if !self.close_requested.load(Ordering::Acquire) && !self.kicked.load(Ordering::Acquire)
            {
                return Poll::Pending;
            }
        }
        self.kicked.store(false, Ordering::Release);
        Poll::Ready(self.close_requested.swap(false, Ordering::AcqRel))
    }

    /// Wakes the task for `close_requested` or `kicked`.
    fn wake_task(&self) {
        if let Some(w) = self.close_waker.lock().take() {
            w.wake();
        }
    }

    fn set_transport(&self, kind: TransportKind) {
        self.transport
            .store(transport_code(kind), Ordering::Release);
    }
}

fn transport_code(kind: TransportKind) -> u8 {
    match kind {
        TransportKind::Polling => 0,
        TransportKind::WebSocket => 1,
    }
}

/// Queues frames on a session and closes it. Cloning shares the session.
#[derive(Debug, Clone)]
pub struct EngineSender {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Frame>,
}

impl EngineSender {
    /// Queues a frame (a message packet built with [`Frame::message`] or [`Frame::binary`], or any other
    /// encoded packet). Never waits.
    pub fn send(&self, frame: Frame) -> Result<(), EngineError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(EngineError::Closed);
        }
        {
            let mut direct = self.shared.direct.lock();
            if direct.open
                && let Some(writer) = direct.writer.as_mut()
            {
                match writer.write_now(&frame) {
                    Ok(true) => return Ok(()),
                    // The socket took part of it (the rest waits in the writer) or failed: the task
                    // takes over, and the frames after this one queue behind it.
                    result => {
                        direct.open = false;
                        if let Err(e) = result {
                            direct.failed = Some(e);
                        }
                        drop(direct);
                        self.shared.kicked.store(true, Ordering::Release);
                        self.shared.wake_task();
                        return Ok(());
                    }
                }
            }
            direct.queued += 1;
        }
        self.tx.try_send(frame).map_err(|e| {
            self.shared.direct.lock().queued -= 1;
            match e {
                mpsc::error::TrySendError::Full(_) => EngineError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => EngineError::Closed,
            }
        })
    }

    /// Closes the session: what is already queued is flushed, then the close packet is sent, and the
    /// events end with [`CloseReason::ForcedClose`]. Calling it again does nothing.
    pub fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            self.shared.close_requested.store(true, Ordering::Release);
            self.shared.wake_task();
        }
    }

    /// Whether the session is closed (by either side) or closing.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// The transport the session currently uses.
    pub fn transport(&self) -> TransportKind {
        match self.shared.transport.load(Ordering::Acquire) {
            0 => TransportKind::Polling,
            _ => TransportKind::WebSocket,
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }
}

/// Sees each message of the server in the session's task before it goes to the events receiver: the
/// Socket.IO manager resolves acks there, one task hop fewer per ack. `None` means handled; the message
/// back means it goes to the receiver, in order.
pub(crate) trait MessageHook: Send + Sync {
    fn on_message(&self, data: Data) -> Option<Data>;
}

/// Hosts (`host:port`) a websocket connection worked with, for `remember_upgrade`.
static PRIOR_WEBSOCKET: LazyLock<Mutex<HashSet<String>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

fn remember_websocket(host: &str, worked: bool) {
    let mut set = PRIOR_WEBSOCKET.lock();
    if worked {
        set.insert(host.to_string());
    } else {
        set.remove(host);
    }
}

fn websocket_worked_before(host: &str) -> bool {
    PRIOR_WEBSOCKET.lock().contains(host)
}

/// Opens an Engine.IO session with the server at `url` (`http://`, `https://`, `ws://` or `wss://`; its
/// path is ignored, `opts.path` is used; its query parameters are kept, before `opts.query`).
pub async fn connect(url: &str, opts: &EngineOptions) -> Result<EngineConnection, EngineError> {
    connect_with_hook(url, opts, None).await
}

/// [`connect`], with a hook that sees the server's messages first.
pub(crate) async fn connect_with_hook(
    url: &str,
    opts: &EngineOptions,
    hook: Option<Arc<dyn MessageHook>>,
) -> Result<EngineConnection, EngineError> {
    let endpoint = Arc::new(Endpoint::new(url, opts)?);
    let first = *opts.transports.first().ok_or(EngineError::NoTransport)?;
    let first = if opts.remember_upgrade
        && opts.transports.contains(&TransportKind::WebSocket)
        && websocket_worked_before(endpoint.host_key())
    {
        TransportKind::WebSocket
    } else {
        first
    };
    let config = ClientConfig {
        upgrade: opts.upgrade && opts.transports.contains(&TransportKind::WebSocket),
        protocol: opts.protocol,
        ..ClientConfig::default()
    };
    let handshake = async {
        match first {
            TransportKind::Polling => polling::handshake(&endpoint, config).await,
            TransportKind::WebSocket => websocket::handshake(&endpoint, config).await,
        }
    };
    let opened = match opts.connect_timeout {
        Some(t) => tokio::time::timeout(t, handshake)
            .await
            .map_err(|_| EngineError::Timeout)?,
        None => handshake.await,
    };
    let opened = match opened {
        Ok(o) => o,
        Err(e) => {
            if first == TransportKind::WebSocket {
                remember_websocket(endpoint.host_key(), false);
            }
            return Err(e);
        }
    };
    if first == TransportKind::WebSocket {
        remember_websocket(endpoint.host_key(), true);
    }
    let handshake = opened.session.handshake().clone();
    let shared = Arc::new(Shared {
        id: handshake.sid.clone(),
        transport: AtomicU8::new(transport_code(first)),
        closed: AtomicBool::new(false),
        close_requested: AtomicBool::new(false),
        kicked: AtomicBool::new(false),
        close_waker: Mutex::new(None),
        direct: Mutex::new(Direct {
            writer: None,
            open: false,
            queued: 0,
            failed: None,
        }),
    });
    let (tx, rx) = mpsc::channel(SEND_QUEUE_CAPACITY);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE_CAPACITY);
    driver::spawn(driver::Start {
        endpoint,
        shared: shared.clone(),
        opened,
        rx,
        events: events_tx,
        hook,
    });
    Ok(EngineConnection {
        handshake,
        sender: EngineSender { shared, tx },
        events,
    })
}
