//! The task that executes one session's [`ClientSession`]: it owns the polling requests, the websockets
//! and one sleep until the session's next deadline, and does what the session's outputs say. Every
//! protocol rule (heartbeat watchdog, write buffer, upgrade order, close ordering) lives in
//! `ferrio_proto::engine::client`. The requests in flight are futures this task owns and polls, so
//! nothing is shared but the sender's flags.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use ferrio_proto::engine::client::{Event, Output, TransportEnd};
use ferrio_proto::engine::{ClientSession, Frame, Packet, Protocol, TransportKind};
use ferrio_proto::ws::{CLOSE_NORMAL, Message};
use http::{Method, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::endpoint::Endpoint;
use super::polling::{HttpConn, RequestError};
use super::websocket::{self, Ws, WsError, WsReader, WsWriter};
use super::{
    EngineError, EngineEvent, MIN_INCOMING_LIMIT, MessageHook, Shared, remember_websocket,
};

/// Longest time spent closing the websocket (its close frame) once the session is over.
const WS_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The transport the handshake ran on, ready for the task.
pub(crate) enum Transport {
    Polling(HttpConn),
    WebSocket(Box<Ws>),
}

/// The result of a handshake: the session (with what the handshake payload carried already fed to it)
/// and its transport.
pub(crate) struct Opened {
    pub(crate) session: ClientSession,
    pub(crate) transport: Transport,
}

pub(crate) struct Start {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) opened: Opened,
    pub(crate) rx: mpsc::Receiver<Frame>,
    pub(crate) events: mpsc::Sender<EngineEvent>,
    pub(crate) hook: Option<Arc<dyn MessageHook>>,
}

/// A connection that is either free or lent to the request in flight, which gives it back when done.
enum Slot<C, T> {
    Idle(C),
    Busy(BoxFut<(C, T)>),
    Gone,
}

impl<C, T> Slot<C, T> {
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

enum Active {
    Polling {
        get: Slot<HttpConn, Result<Bytes, RequestError>>,
        post: Slot<HttpConn, Result<Bytes, RequestError>>,
    },
    /// The task owns the reader; the writer is in [`Shared::direct`], where the senders may write
    /// through it while the task waits. A write is the writer's buffer being flushed (no future), and a
    /// ping is answered by queueing the pong on the writer.
    WebSocket {
        read: WsReader,
        /// The session waits for the flush in progress ([`Output::Write`]); a flush that only carries a
        /// pong is nobody's write.
        in_flight: bool,
    },
}

impl Active {
    fn websocket(ws: Ws, shared: &Shared) -> Active {
        shared.direct.lock().writer = Some(ws.writer);
        Active::WebSocket {
            read: ws.reader,
            in_flight: false,
        }
    }
}

/// Runs `f` on the websocket's writer, under the lock the senders write under.
fn with_writer<R>(shared: &Shared, f: impl FnOnce(&mut WsWriter) -> R) -> Option<R> {
    shared.direct.lock().writer.as_mut().map(f)
}

/// What the transport produced.
enum TransportEvent {
    Polled(Result<Bytes, RequestError>),
    Posted(Result<Bytes, RequestError>),
    Read(Result<Message, WsError>),
    Flushed(Result<(), WsError>),
}

/// `flush`: the writer holds bytes to write.
async fn next_transport_event(active: &mut Active, shared: &Shared, flush: bool) -> TransportEvent {
    match active {
        Active::Polling { get, post } => tokio::select! {
            biased;
            r = get.wait() => TransportEvent::Polled(r),
            r = post.wait() => TransportEvent::Posted(r),
        },
        Active::WebSocket { read, .. } => tokio::select! {
            biased;
            r = std::future::poll_fn(|cx| {
                with_writer(shared, |w| w.poll_flush(cx)).unwrap_or(Poll::Ready(Ok(())))
            }), if flush => TransportEvent::Flushed(r),
            m = read.next() => TransportEvent::Read(m),
        },
    }
}

/// The upgrade websocket, through the steps the session asks for.
enum Probe {
    None,
    /// Being opened.
    Opening(BoxFut<Result<Ws, EngineError>>),
    /// Open; the session has not said what to write yet.
    Open(Box<Ws>),
    /// The probe frame is being written and its answer read.
    Answering(BoxFut<Result<(Ws, Packet), EngineError>>),
    /// Answered; held until polling is paused and the session switches to it.
    Ready(Box<Ws>),
}

enum ProbeEvent {
    Opened(Result<Ws, EngineError>),
    Answered(Result<(Ws, Packet), EngineError>),
}

impl Probe {
    /// Waits for the step in flight; pending forever when there is none. Cancel-safe.
    async fn wait(&mut self) -> ProbeEvent {
        let event = match self {
            Probe::Opening(f) => ProbeEvent::Opened(f.await),
            Probe::Answering(f) => ProbeEvent::Answered(f.await),
            _ => return std::future::pending().await,
        };
        *self = Probe::None;
        event
    }
}

struct Driver {
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    sid: Arc<str>,
    session: ClientSession,
    /// Largest websocket message or polling body accepted from the server.
    incoming_limit: usize,
    rx: mpsc::Receiver<Frame>,
    senders_gone: bool,
    events: mpsc::Sender<EngineEvent>,
    hook: Option<Arc<dyn MessageHook>>,
    active: Active,
    probe: Probe,
    /// The code of the websocket's close frame: the server's own code when it closed, the code of the
    /// rule it broke when it broke one (RFC 6455 sections 5.5.1 and 7.4.1).
    close_code: Option<u16>,
}

pub(crate) fn spawn(start: Start) {
    let Start {
        endpoint,
        shared,
        opened,
        rx,
        events,
        hook,
    } = start;
    let session = opened.session;
    let incoming_limit = usize::try_from(session.handshake().max_payload)
        .unwrap_or(usize::MAX)
        .max(MIN_INCOMING_LIMIT);
    let sid: Arc<str> = Arc::from(session.sid());
    let active = match opened.transport {
        Transport::Polling(conn) => Active::Polling {
            get: Slot::Idle(conn),
            post: Slot::Idle(HttpConn::default()),
        },
        Transport::WebSocket(ws) => Active::websocket(*ws, &shared),
    };
    let driver = Driver {
        endpoint,
        shared,
        sid,
        session,
        incoming_limit,
        rx,
        senders_gone: false,
        events,
        hook,
        active,
        probe: Probe::None,
        close_code: Some(CLOSE_NORMAL),
    };
    tokio::spawn(driver.run());
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Driver {
    async fn run(mut self) {
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut timer_at = None;
        // Whether the timer was polled since it was last reset, so that its waker is registered: it
        // needs polling again only once its deadline is reached (polling it on every turn cost a few
        // percent of an ack).
        let mut timer_polled = false;
        let shared = self.shared.clone();
        loop {
            // From here until it waits, the task writes: the senders queue behind it.
            let failed = {
                let mut direct = shared.direct.lock();
                direct.open = false;
                direct.failed.take()
            };
            if let Some(e) = failed {
                self.session.on_transport_end(ws_end(e));
            }
            if self.shared.closed.load(Ordering::Acquire) && self.session.is_open() {
                self.close();
            }
            if self.session.wants_frames() && !self.senders_gone {
                self.take_frames(0);
            }
            if !self.execute().await {
                break;
            }
            let deadline = self.session.poll_timeout();
            if deadline != timer_at {
                timer_at = deadline;
                if let Some(d) = deadline {
                    timer.as_mut().reset(Instant::from_std(d));
                    timer_polled = false;
                }
            }
            let wants_frames = self.session.wants_frames() && !self.senders_gone;
            let flush = self.open_direct(wants_frames);
            tokio::select! {
                biased;
                _ = std::future::poll_fn(|cx| {
                    // Registered and not due: the timer's wake-up is what makes it elapsed.
                    if timer_polled && !timer.is_elapsed() {
                        return Poll::Pending;
                    }
                    timer_polled = true;
                    // Unconstrained: out of the task's budget a Sleep answers Pending without
                    // registering the waker, and it would not be polled again.
                    std::pin::pin!(tokio::task::unconstrained(timer.as_mut())).poll(cx)
                }), if timer_at.is_some() => {
                    self.session.handle_timeout(now());
                    // Fire once per deadline: a new deadline re-arms it above.
                    timer_at = None;
                }
                close = std::future::poll_fn(|cx| shared.poll_attention(cx)) => {
                    // A kick needs nothing more than this turn: it takes back the writer's bytes and
                    // the error at the top of the loop.
                    if close {
                        self.close();
                    }
                }
                ev = next_transport_event(&mut self.active, &shared, flush) => {
                    self.on_transport_event(ev)
                }
                frame = self.rx.recv(), if wants_frames => match frame {
                    Some(f) => {
                        self.session.send(f);
                        self.take_frames(1);
                    }
                    None => {
                        self.senders_gone = true;
                        if self.events.is_closed() {
                            self.session.close(now());
                        }
                    }
                },
                ev = self.probe.wait() => self.on_probe_event(ev),
                // Nobody sends and nobody listens: close as the application would have.
                _ = self.events.closed(), if self.senders_gone && self.session.is_open() => {
                    self.session.close(now());
                }
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        let writer = {
            let mut direct = self.shared.direct.lock();
            direct.open = false;
            direct.writer.take()
        };
        if let Some(mut write) = writer {
            let code = self.close_code;
            let _ = tokio::time::timeout(WS_CLOSE_TIMEOUT, write.close(code)).await;
        }
    }

    /// Lets the senders write their frames themselves while the task waits, when it has nothing of its
    /// own to write: the session is open on the websocket (v4; a v3 binary frame is rewritten by the
    /// session), nothing is buffered or in flight, and no frame waits in the channel (`wants_frames`:
    /// the session takes frames and there are senders). Returns whether the writer holds bytes to flush.
    fn open_direct(&self, wants_frames: bool) -> bool {
        let mut direct = self.shared.direct.lock();
        let pending = direct.writer.as_ref().is_some_and(|w| w.has_pending());
        direct.open = wants_frames
            && !pending
            && direct.queued == 0
            && direct.writer.is_some()
            && matches!(self.probe, Probe::None)
            && self.session.protocol() == Protocol::V4
            && !self.shared.closed.load(Ordering::Acquire);
        pending
    }

    /// Hands the session every frame already queued: they go out together in the next write. `taken`:
    /// frames the caller already took from the channel and handed over.
    fn take_frames(&mut self, mut taken: usize) {
        while let Ok(f) = self.rx.try_recv() {
            self.session.send(f);
            taken += 1;
        }
        if taken > 0 {
            self.shared.direct.lock().queued -= taken;
        }
    }

    /// The application closed: what it queued goes first, then the close packet.
    fn close(&mut self) {
        self.take_frames(0);
        self.session.close(now());
    }

    /// Does what the session asks; false once it says the session is over.
    async fn execute(&mut self) -> bool {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Event(event) => self.emit(event).await,
                Output::Poll => self.start_request(Method::GET, Bytes::new()),
                Output::Post(body) => self.start_request(Method::POST, body),
                Output::Write(frames) => self.start_write(frames).await,
                Output::OpenProbe => {
                    let endpoint = self.endpoint.clone();
                    let sid = self.sid.clone();
                    let limit = self.incoming_limit;
                    self.probe = Probe::Opening(Box::pin(async move {
                        websocket::open(&endpoint, Some(&sid), limit).await
                    }));
                }
                Output::ProbeWrite(frame) => {
                    if let Probe::Open(ws) = std::mem::replace(&mut self.probe, Probe::None) {
                        self.probe =
                            Probe::Answering(Box::pin(websocket::answer_probe(*ws, frame)));
                    }
                }
                Output::DropProbe { error } => {
                    tracing::debug!(sid = %self.sid, %error, "upgrade probe failed");
                    self.probe = Probe::None;
                    remember_websocket(self.endpoint.host_key(), false);
                }
                Output::SwitchToProbe => {
                    match std::mem::replace(&mut self.probe, Probe::None) {
                        Probe::Ready(ws) => {
                            // Polling is paused: nothing is in flight on it, so dropping it loses nothing.
                            self.active = Active::websocket(*ws, &self.shared);
                            self.shared.set_transport(TransportKind::WebSocket);
                            remember_websocket(self.endpoint.host_key(), true);
                            tracing::debug!(sid = %self.sid, "upgraded to websocket");
                        }
                        _ => self
                            .session
                            .on_transport_end(TransportEnd::Error("upgrade websocket lost".into())),
                    }
                }
                Output::Shutdown => return false,
            }
        }
        true
    }

    async fn emit(&mut self, event: Event) {
        let event = match event {
            Event::Message(data) => match &self.hook {
                Some(hook) => match hook.on_message(data) {
                    Some(data) => EngineEvent::Message(data),
                    None => return,
                },
                None => EngineEvent::Message(data),
            },
            Event::Ping => EngineEvent::Ping,
            Event::Upgrade(kind) => EngineEvent::Upgrade(kind),
            Event::Close { reason, detail } => {
                // Senders fail from now on, before the application even reads the event.
                self.shared.closed.store(true, Ordering::Release);
                tracing::debug!(sid = %self.sid, %reason, ?detail, "engine.io session closed");
                EngineEvent::Close { reason, detail }
            }
        };
        // A dropped receiver only means nobody listens any more.
        let _ = self.events.send(event).await;
    }

    fn start_request(&mut self, method: Method, body: Bytes) {
        let Active::Polling { get, post } = &mut self.active else {
            return;
        };
        let (slot, limit) = if method == Method::GET {
            (get, self.incoming_limit)
        } else {
            // The answer to a POST is `ok`.
            (post, 1024)
        };
        if let Some(mut conn) = slot.take_idle() {
            let endpoint = self.endpoint.clone();
            let sid = self.sid.clone();
            *slot = Slot::Busy(Box::pin(async move {
                let r = conn
                    .request(&endpoint, method, Some(&sid), body, limit)
                    .await;
                (conn, r)
            }));
        }
    }

    /// Encodes the frames and writes them at once: in the common case the socket takes them and the
    /// session hears of it before this task waits again, without a turn of the loop. What the socket
    /// does not take yet is flushed from `next_transport_event`.
    async fn start_write(&mut self, frames: Vec<Frame>) {
        let Active::WebSocket { in_flight, .. } = &mut self.active else {
            return;
        };
        let shared = &self.shared;
        // One poll, never a wait: `Pending` leaves the waker registered for the loop's flush.
        let polled = std::future::poll_fn(|cx| {
            Poll::Ready(with_writer(shared, |w| match w.encode(&frames) {
                Ok(()) => w.poll_flush(cx),
                Err(e) => Poll::Ready(Err(e)),
            }))
        })
        .await;
        let result = match polled {
            Some(Poll::Ready(r)) => r,
            Some(Poll::Pending) => {
                *in_flight = true;
                return;
            }
            None => Err(WsError::Closed),
        };
        self.session.on_write(now(), result.map_err(ws_end));
    }

    fn on_transport_event(&mut self, ev: TransportEvent) {
        let now = now();
        let s = &mut self.session;
        match ev {
            TransportEvent::Polled(r) => s.on_poll(now, r.map_err(request_end)),
            TransportEvent::Posted(r) => s.on_post(now, r.map(drop).map_err(request_end)),
            TransportEvent::Flushed(r) => {
                if let Active::WebSocket { in_flight, .. } = &mut self.active
                    && std::mem::take(in_flight)
                {
                    s.on_write(now, r.map_err(ws_end));
                } else if let Err(e) = r {
                    // A pong that did not go out.
                    s.on_transport_end(ws_end(e));
                }
            }
            TransportEvent::Read(Ok(message)) => {
                if websocket::message_len(&message) > self.incoming_limit {
                    return s.on_transport_end(TransportEnd::Error("message too large".into()));
                }
                match message {
                    Message::Text(t) => s.on_text(now, t),
                    Message::Binary(b) => s.on_binary(now, b),
                    Message::Close(c) => {
                        self.close_code = c.map(|c| c.code);
                        s.on_transport_end(TransportEnd::Closed)
                    }
                    Message::Ping(p) => {
                        with_writer(&self.shared, |w| w.pong(&p));
                    }
                    Message::Pong(_) => {}
                }
            }
            TransportEvent::Read(Err(e)) => {
                if let WsError::Protocol(e) = &e {
                    self.close_code = Some(e.close_code());
                }
                s.on_transport_end(ws_end(e))
            }
        }
    }

    fn on_probe_event(&mut self, ev: ProbeEvent) {
        let now = now();
        match ev {
            ProbeEvent::Opened(Ok(ws)) => {
                self.probe = Probe::Open(Box::new(ws));
                self.session.on_probe_open(now);
            }
            ProbeEvent::Answered(Ok((ws, packet))) => {
                self.probe = Probe::Ready(Box::new(ws));
                self.session.on_probe_packet(now, packet);
            }
            ProbeEvent::Opened(Err(e)) | ProbeEvent::Answered(Err(e)) => {
                self.session.on_probe_error(now, e.to_string());
            }
        }
    }
}

fn request_end(e: RequestError) -> TransportEnd {
    match e {
        // The server no longer knows the session: it closed it.
        RequestError::Status(StatusCode::BAD_REQUEST, _) => TransportEnd::Closed,
        other => TransportEnd::Error(other.to_string()),
    }
}

fn ws_end(e: WsError) -> TransportEnd {
    match e {
        WsError::Closed => TransportEnd::Closed,
        WsError::Protocol(ferrio_proto::ws::Error::TooBig) => {
            TransportEnd::Error("message too large".into())
        }
        other => TransportEnd::Error(other.to_string()),
    }
}
