//! The task that drives one session: the polling GET loop and POST writer, or the websocket reader and
//! writer, the heartbeat timer, the upgrade probe and the close. Everything runs in this one task: the
//! requests in flight are futures it owns and polls, so no state is shared but the sender's flags.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use ferrio_proto::engine::{
    Frame, OpenPacket, Packet, PacketType, PayloadEncoder, TransportKind, decode_payload,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::endpoint::Endpoint;
use super::polling::{HttpConn, RequestError};
use super::websocket::{self, Ws};
use super::{ClientCloseReason, EngineEvent, MIN_INCOMING_LIMIT, Shared, remember_websocket};

/// Longest time a closing session spends flushing its last frames and the close packet.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Most frames written to a websocket in one batch (one flush).
const WS_BATCH: usize = 128;

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The transport the handshake ran on, ready for the task.
pub(crate) enum Transport {
    Polling(HttpConn),
    WebSocket(Box<Ws>),
}

/// The result of a handshake.
pub(crate) struct Opened {
    pub(crate) open: OpenPacket,
    pub(crate) transport: Transport,
    /// Packets that came after the open packet in the same payload.
    pub(crate) pending: Vec<Packet>,
    /// A packet after those could not be decoded.
    pub(crate) pending_error: bool,
}

pub(crate) struct Start {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) opened: Opened,
    pub(crate) rx: mpsc::Receiver<Frame>,
    pub(crate) events: mpsc::Sender<EngineEvent>,
    pub(crate) upgrade_to_websocket: bool,
}

/// A connection that is either free or lent to the request in flight, which gives it back when done.
enum Slot<C, T> {
    Idle(C),
    Busy(BoxFut<(C, T)>),
    Gone,
}

impl<C, T> Slot<C, T> {
    fn is_busy(&self) -> bool {
        matches!(self, Slot::Busy(_))
    }

    fn take_idle(&mut self) -> Option<C> {
        match std::mem::replace(self, Slot::Gone) {
            Slot::Idle(c) => Some(c),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Waits for the request in flight; pending forever when there is none. Cancel-safe.
    async fn wait(&mut self) -> T {
        match self {
            Slot::Busy(f) => {
                let (c, t) = f.await;
                *self = Slot::Idle(c);
                t
            }
            _ => std::future::pending().await,
        }
    }
}

type WsSink = SplitSink<Ws, Message>;

enum Active {
    Polling {
        get: Slot<HttpConn, Result<Bytes, RequestError>>,
        post: Slot<HttpConn, Result<Bytes, RequestError>>,
    },
    WebSocket {
        read: SplitStream<Ws>,
        write: Slot<WsSink, Result<(), WsError>>,
    },
}

impl Active {
    fn websocket(ws: Ws) -> Active {
        let (sink, stream) = ws.split();
        Active::WebSocket {
            read: stream,
            write: Slot::Idle(sink),
        }
    }

    fn writer_busy(&self) -> bool {
        match self {
            Active::Polling { post, .. } => post.is_busy(),
            Active::WebSocket { write, .. } => write.is_busy(),
        }
    }
}

/// What the transport produced.
enum TransportEvent {
    Polled(Result<Bytes, RequestError>),
    Posted(Result<Bytes, RequestError>),
    Read(Option<Result<Message, WsError>>),
    Written(Result<(), WsError>),
}

async fn next_transport_event(active: &mut Active) -> TransportEvent {
    match active {
        Active::Polling { get, post } => tokio::select! {
            r = get.wait() => TransportEvent::Polled(r),
            r = post.wait() => TransportEvent::Posted(r),
        },
        Active::WebSocket { read, write } => tokio::select! {
            m = read.next() => TransportEvent::Read(m),
            r = write.wait() => TransportEvent::Written(r),
        },
    }
}

async fn poll_opt<T>(f: &mut Option<BoxFut<T>>) -> T {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// How the loop ended.
enum Ending {
    /// The session closed for this reason (reported to the application).
    Closed(ClientCloseReason),
    /// `close()` was called.
    Forced,
    /// Every sender and the events receiver were dropped.
    Dropped,
}

struct Driver {
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    sid: Arc<str>,
    /// Largest payload the server accepts (the POST batch bound).
    max_payload: usize,
    /// Largest websocket message or polling body accepted from the server.
    incoming_limit: usize,
    /// `pingInterval + pingTimeout`.
    ping_window: Duration,
    ping_reset: bool,
    rx: mpsc::Receiver<Frame>,
    senders_gone: bool,
    events: mpsc::Sender<EngineEvent>,
    /// Frames taken from `rx` (or made here, like pongs) that wait for the writer.
    outbox: VecDeque<Frame>,
    active: Active,
    probe: Option<BoxFut<Result<Ws, super::EngineError>>>,
    /// The probe succeeded: polling is pausing (no new request) before the switch.
    upgrade_ready: Option<Ws>,
}

pub(crate) fn spawn(start: Start) {
    let Start {
        endpoint,
        shared,
        opened,
        rx,
        events,
        upgrade_to_websocket,
    } = start;
    let open = opened.open;
    let max_payload = usize::try_from(open.max_payload)
        .unwrap_or(usize::MAX)
        .max(1);
    let incoming_limit = max_payload.max(MIN_INCOMING_LIMIT);
    let ping_window = Duration::from_millis(open.ping_interval.saturating_add(open.ping_timeout));
    let sid: Arc<str> = Arc::from(open.sid.as_str());
    let active = match opened.transport {
        Transport::Polling(conn) => Active::Polling {
            get: Slot::Idle(conn),
            post: Slot::Idle(HttpConn::default()),
        },
        Transport::WebSocket(ws) => Active::websocket(*ws),
    };
    let probe: Option<BoxFut<_>> = if upgrade_to_websocket {
        let endpoint = endpoint.clone();
        let sid = sid.clone();
        Some(Box::pin(async move {
            tokio::time::timeout(
                ping_window,
                websocket::probe(&endpoint, &sid, incoming_limit),
            )
            .await
            .unwrap_or_else(|_| Err(super::EngineError::Timeout))
        }))
    } else {
        None
    };
    let driver = Driver {
        endpoint,
        shared,
        sid,
        max_payload,
        incoming_limit,
        ping_window,
        ping_reset: false,
        rx,
        senders_gone: false,
        events,
        outbox: VecDeque::new(),
        active,
        probe,
        upgrade_ready: None,
    };
    tokio::spawn(driver.run(opened.pending, opened.pending_error));
}

impl Driver {
    async fn emit(&mut self, event: EngineEvent) {
        // A dropped receiver only means nobody listens any more.
        let _ = self.events.send(event).await;
    }

    async fn run(mut self, pending: Vec<Packet>, pending_error: bool) {
        let ping_timer = tokio::time::sleep(self.ping_window);
        tokio::pin!(ping_timer);
        let mut ending = None;
        for packet in pending {
            if let Some(reason) = self.on_packet(packet).await {
                ending = Some(Ending::Closed(reason));
                break;
            }
        }
        if pending_error && ending.is_none() {
            ending = Some(Ending::Closed(ClientCloseReason::ParseError));
        }
        let ending = match ending {
            Some(e) => e,
            None => loop {
                if self.shared.closed.load(Ordering::Acquire) {
                    break Ending::Forced;
                }
                if std::mem::take(&mut self.ping_reset) {
                    ping_timer.as_mut().reset(Instant::now() + self.ping_window);
                }
                self.schedule().await;
                let wants_frames =
                    !self.active.writer_busy() && self.outbox.is_empty() && !self.senders_gone;
                tokio::select! {
                    biased;
                    _ = self.shared.close_requested.notified() => break Ending::Forced,
                    _ = &mut ping_timer => break Ending::Closed(ClientCloseReason::PingTimeout),
                    ev = next_transport_event(&mut self.active) => {
                        if let Some(reason) = self.on_transport_event(ev).await {
                            break Ending::Closed(reason);
                        }
                    }
                    frame = self.rx.recv(), if wants_frames => match frame {
                        Some(f) => self.outbox.push_back(f),
                        None => {
                            self.senders_gone = true;
                            if self.events.is_closed() {
                                break Ending::Dropped;
                            }
                        }
                    },
                    r = poll_opt(&mut self.probe) => {
                        self.probe = None;
                        match r {
                            Ok(ws) => self.upgrade_ready = Some(ws),
                            Err(e) => {
                                tracing::debug!(sid = %self.sid, error = %e, "upgrade probe failed");
                                remember_websocket(self.endpoint.host_key(), false);
                            }
                        }
                    }
                    _ = self.events.closed(), if self.senders_gone => break Ending::Dropped,
                }
            },
        };
        self.shared.closed.store(true, Ordering::Release);
        match ending {
            Ending::Closed(reason) => {
                tracing::debug!(sid = %self.sid, %reason, "engine.io session closed");
                self.emit(EngineEvent::Close(reason)).await;
            }
            Ending::Forced => {
                self.emit(EngineEvent::Close(ClientCloseReason::ForcedClose))
                    .await;
                self.flush_and_close().await;
            }
            Ending::Dropped => self.flush_and_close().await,
        }
    }

    /// Starts what can start: the next poll, the next write, or the switch to the probed websocket.
    async fn schedule(&mut self) {
        let paused_and_idle = matches!(
            &self.active,
            Active::Polling { get, post } if !get.is_busy() && !post.is_busy()
        );
        if paused_and_idle && let Some(ws) = self.upgrade_ready.take() {
            self.finish_upgrade(ws).await;
        }
        let paused = self.upgrade_ready.is_some();
        let endpoint = &self.endpoint;
        let sid = &self.sid;
        match &mut self.active {
            Active::Polling { get, post } => {
                if paused {
                    return;
                }
                if let Some(mut conn) = get.take_idle() {
                    let endpoint = endpoint.clone();
                    let sid = sid.clone();
                    let limit = self.incoming_limit;
                    *get = Slot::Busy(Box::pin(async move {
                        let r = conn
                            .request(&endpoint, Method::GET, Some(&sid), Bytes::new(), limit)
                            .await;
                        (conn, r)
                    }));
                }
                if !post.is_busy() {
                    let mut enc = PayloadEncoder::new(self.max_payload);
                    fill(&mut self.outbox, &mut self.rx, self.senders_gone, |f| {
                        enc.push(f)
                    });
                    if enc.is_empty() {
                        return;
                    }
                    let body = enc.finish();
                    if let Some(mut conn) = post.take_idle() {
                        let endpoint = endpoint.clone();
                        let sid = sid.clone();
                        *post = Slot::Busy(Box::pin(async move {
                            let r = conn
                                .request(&endpoint, Method::POST, Some(&sid), body, 1024)
                                .await;
                            (conn, r)
                        }));
                    }
                }
            }
            Active::WebSocket { write, .. } => {
                if write.is_busy() {
                    return;
                }
                let mut batch = Vec::new();
                fill(&mut self.outbox, &mut self.rx, self.senders_gone, |f| {
                    if batch.len() >= WS_BATCH {
                        return false;
                    }
                    batch.push(websocket::to_message(f.clone()));
                    true
                });
                if batch.is_empty() {
                    return;
                }
                if let Some(mut sink) = write.take_idle() {
                    *write = Slot::Busy(Box::pin(async move {
                        let r = write_all(&mut sink, batch).await;
                        (sink, r)
                    }));
                }
            }
        }
    }

    async fn finish_upgrade(&mut self, ws: Ws) {
        // Polling is paused: nothing in flight. The upgrade packet goes first on the websocket, then
        // whatever was queued meanwhile.
        self.active = Active::websocket(ws);
        self.outbox
            .push_front(Frame::text_packet(PacketType::Upgrade, ""));
        self.shared.set_transport(TransportKind::WebSocket);
        remember_websocket(self.endpoint.host_key(), true);
        tracing::debug!(sid = %self.sid, "upgraded to websocket");
        self.emit(EngineEvent::Upgrade(TransportKind::WebSocket))
            .await;
    }

    async fn on_transport_event(&mut self, ev: TransportEvent) -> Option<ClientCloseReason> {
        match ev {
            TransportEvent::Polled(Ok(body)) => {
                let packets = match decode_payload(body) {
                    Ok(p) => p,
                    Err(_) => return Some(ClientCloseReason::ParseError),
                };
                for packet in packets {
                    let Ok(packet) = packet else {
                        return Some(ClientCloseReason::ParseError);
                    };
                    if let Some(reason) = self.on_packet(packet).await {
                        return Some(reason);
                    }
                }
                None
            }
            TransportEvent::Posted(Ok(_)) => None,
            TransportEvent::Polled(Err(e)) | TransportEvent::Posted(Err(e)) => {
                Some(request_close_reason(e))
            }
            TransportEvent::Read(Some(Ok(Message::Close(_)))) => {
                Some(ClientCloseReason::TransportClose)
            }
            TransportEvent::Read(Some(Ok(message))) => {
                if message.len() > self.incoming_limit {
                    return Some(ClientCloseReason::TransportError(
                        "message too large".into(),
                    ));
                }
                match websocket::packet_of(message)? {
                    Ok(packet) => self.on_packet(packet).await,
                    Err(_) => Some(ClientCloseReason::ParseError),
                }
            }
            TransportEvent::Read(Some(Err(e))) => Some(ws_close_reason(e)),
            TransportEvent::Read(None) => Some(ClientCloseReason::TransportClose),
            TransportEvent::Written(Ok(())) => None,
            TransportEvent::Written(Err(e)) => Some(ws_close_reason(e)),
        }
    }

    async fn on_packet(&mut self, packet: Packet) -> Option<ClientCloseReason> {
        match packet {
            Packet::Message(data) => self.emit(EngineEvent::Message(data)).await,
            Packet::Ping(None) => {
                self.outbox
                    .push_back(Frame::text_packet(PacketType::Pong, ""));
                self.ping_reset = true;
                self.emit(EngineEvent::Ping).await;
            }
            Packet::Close => return Some(ClientCloseReason::TransportClose),
            // A second open packet, pongs, probe packets on the main transport, upgrade and noop carry
            // nothing for the client.
            Packet::Open(_)
            | Packet::Ping(Some(_))
            | Packet::Pong(_)
            | Packet::Upgrade
            | Packet::Noop => {}
        }
        None
    }

    /// Sends what is queued and the close packet (within [`CLOSE_FLUSH_TIMEOUT`]), then ends the
    /// connections by dropping them.
    async fn flush_and_close(mut self) {
        let flush = async {
            let mut frames: Vec<Frame> = self.outbox.drain(..).collect();
            while let Ok(f) = self.rx.try_recv() {
                frames.push(f);
            }
            frames.push(Frame::close());
            match &mut self.active {
                Active::Polling { post, .. } => {
                    if post.is_busy() {
                        let _ = post.wait().await;
                    }
                    let Some(mut conn) = post.take_idle() else {
                        return;
                    };
                    let mut frames = frames.into_iter().peekable();
                    while frames.peek().is_some() {
                        let mut enc = PayloadEncoder::new(self.max_payload);
                        while let Some(f) = frames.peek() {
                            // The close packet goes in a POST of its own, after the rest: a server
                            // handles a payload's close before the packets next to it, and would lose,
                            // say, the DISCONNECT just sent.
                            if f.packet_type() == PacketType::Close && !enc.is_empty() {
                                break;
                            }
                            if !enc.push(f) {
                                break;
                            }
                            frames.next();
                        }
                        let r = conn
                            .request(
                                &self.endpoint,
                                Method::POST,
                                Some(&self.sid),
                                enc.finish(),
                                1024,
                            )
                            .await;
                        if r.is_err() {
                            return;
                        }
                    }
                }
                Active::WebSocket { write, .. } => {
                    if write.is_busy() && write.wait().await.is_err() {
                        return;
                    }
                    let Some(mut sink) = write.take_idle() else {
                        return;
                    };
                    let messages = frames.into_iter().map(websocket::to_message).collect();
                    if write_all(&mut sink, messages).await.is_ok() {
                        let _ = sink.close().await;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush).await;
    }
}

/// Moves frames from `outbox`, then from `rx`, into `push` until it refuses one (kept first in
/// `outbox`, so order is preserved).
fn fill(
    outbox: &mut VecDeque<Frame>,
    rx: &mut mpsc::Receiver<Frame>,
    senders_gone: bool,
    mut push: impl FnMut(&Frame) -> bool,
) {
    while let Some(f) = outbox.pop_front() {
        if !push(&f) {
            outbox.push_front(f);
            return;
        }
    }
    if senders_gone {
        return;
    }
    while let Ok(f) = rx.try_recv() {
        if !push(&f) {
            outbox.push_back(f);
            return;
        }
    }
}

async fn write_all(sink: &mut WsSink, messages: Vec<Message>) -> Result<(), WsError> {
    for m in messages {
        sink.feed(m).await?;
    }
    sink.flush().await
}

fn request_close_reason(e: RequestError) -> ClientCloseReason {
    match e {
        // The server no longer knows the session: it closed it.
        RequestError::Status(StatusCode::BAD_REQUEST, _) => ClientCloseReason::TransportClose,
        other => ClientCloseReason::TransportError(other.to_string()),
    }
}

fn ws_close_reason(e: WsError) -> ClientCloseReason {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => ClientCloseReason::TransportClose,
        WsError::Capacity(_) => ClientCloseReason::TransportError("message too large".into()),
        other => ClientCloseReason::TransportError(other.to_string()),
    }
}
