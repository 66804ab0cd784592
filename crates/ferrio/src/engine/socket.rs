//! One Engine.IO session in the server shell: its state machine, its outgoing queue and its timer task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::Instant;

use bytes::Bytes;
use ferrio_proto::engine::{
    CloseReason, Data, Frame, Packet, Protocol, Received, Session, Timeout, TransportKind,
};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::handshake::HandshakeInfo;
use super::wire::Wire;
use super::{BoxFuture, EngineInner, SessionHandler};

/// Why a packet could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed or closing.
    #[error("the session is closed")]
    Closed,
    /// The client does not read fast enough: its queue is over its budget (`max_buffered_bytes`), so
    /// the session was closed.
    #[error("slow consumer: the queue is over its budget, the session was closed")]
    SlowConsumer,
}

/// What a queued frame costs against `max_buffered_bytes` beyond its encoded bytes: about the size of
/// its slot in the queue (the `Frame` and the channel's bookkeeping), so that a flood of empty frames is
/// bounded as well as a flood of large ones.
const FRAME_COST: usize = 64;

/// The budget cost of `frame`. Frames of a broadcast share their bytes, so this overestimates the memory
/// one recipient adds; it is what the session would hold alone, which is the bound that matters.
#[inline]
fn cost(frame: &Frame) -> usize {
    FRAME_COST
        + match frame {
            Frame::Text(s) => s.len(),
            Frame::Binary(b) => b.len(),
        }
}

/// A session's outgoing frames, bounded in frames (`max_buffered_packets`) and in bytes
/// (`max_buffered_bytes`, see [`cost`]).
///
/// A deque under a lock rather than a channel: a tokio channel allocates its shared state and a first
/// block of 32 slots up front (about 1.8 KB a session), while an idle session has nothing queued. This
/// one holds a lone frame inline and allocates only while more wait (see [`Frames`]).
#[derive(Debug)]
struct FrameQueue {
    state: Mutex<QueueState>,
    max_frames: usize,
    /// `max_buffered_bytes`.
    budget: usize,
    /// Signalled when frames leave the queue while a replay waits for room, and when the queue closes.
    room: Notify,
    /// `ferrio_packets_out_total` / `ferrio_bytes_out_total`, counted as frames leave the queue (or go
    /// through it, see [`QueueState::through`]): on the writer's side, so a broadcast's loop over its
    /// recipients does no metrics work for the frames it queues, and adds those it writes through once
    /// at its end (`telemetry::batched`).
    out: crate::telemetry::FramesOut,
}

#[derive(Debug, Default)]
struct QueueState {
    frames: Frames,
    /// Bytes in the queue (see [`cost`]): the slow-consumer rule counts bytes, not frames, so that a
    /// polling client can take a burst of small messages between two polls.
    bytes: usize,
    /// The writer, while it waits for a frame.
    waker: Option<Waker>,
    /// A replay waits for room (`send_frame_waiting`).
    waiting_room: bool,
    /// No writer will take frames any more (the outbox was dropped): sending fails.
    closed: bool,
    /// The session is gone: the writer takes what is left, then `None`.
    ended: bool,
    /// The websocket's TCP stream, which `push` may write to itself while `through` is set.
    stream: Option<Arc<tokio::net::TcpStream>>,
    /// The writer waits with nothing taken and nothing unwritten: a frame pushed now is written to
    /// `stream` by the pushing thread, under this lock, without waking the writer's task (a broadcast
    /// then costs each recipient a lock and a `send`, and wakes no other serving thread). Whoever takes
    /// a frame or writes otherwise clears it first; the writer sets it again once idle.
    through: bool,
    /// Binary frames go out on the websocket as they are (not on Engine.IO v3, which reframes them).
    through_binary: bool,
    /// The front frame is the unwritten end of a frame that `push` wrote in part: websocket bytes, which
    /// the writer sends as they are.
    raw_front: bool,
}

/// What [`FrameQueue::poll_pop`] took.
struct Popped {
    frame: Frame,
    /// The queue is empty now (and the writer registered for the next frame).
    emptied: bool,
    /// `frame` holds websocket bytes to send as they are (see [`QueueState::raw_front`]).
    raw: bool,
}

/// How a frame fared on its way through (see [`QueueState::through`]).
enum Through {
    /// Written whole.
    Written,
    /// Written in part: the rest, as websocket bytes.
    Partial(Bytes),
    /// Not written (not a frame that may go through, or the stream takes nothing now): it is queued.
    Queued,
}

/// A peer gone away answers the write-through's `send` with an error, not with a SIGPIPE that would end
/// a process which did not ignore it (std's `write` passes the same flag).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: std::ffi::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: std::ffi::c_int = 0;

/// The largest frame written through: a larger one goes to the writer, which writes it without
/// copying it first.
const MAX_THROUGH: usize = 16 * 1024;

thread_local! {
    /// Where a frame written through is framed: one buffer per thread, not one per connection.
    static THROUGH_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// What this thread sends is queued, not written through (see [`queued`]).
    static QUEUE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the frames it sends queued rather than written through, when `queue` says so; the
/// session's writer then writes them once the sending task yields. For:
/// - a packet with more read behind it: a sender whose packets pile up (a server behind its load) then
///   leaves each recipient's frames to its writer, which writes all that piled up in one write, where
///   writing each frame through would cost a write apiece;
/// - an answer the client must not see before what follows it in the same task is done (the CONNECT
///   answer, before the socket is reachable and its connection handlers ran), as no client of a
///   Node server can.
pub(crate) fn queued<R>(queue: bool, f: impl FnOnce() -> R) -> R {
    /// Puts the flag back even when `f` panics (a handler's panic is caught further up, and the
    /// thread goes on serving).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUEUE_ONLY.set(self.0);
        }
    }
    if !queue {
        return f();
    }
    let _restore = Restore(QUEUE_ONLY.replace(true));
    f()
}

impl QueueState {
    /// Takes the end of a frame written in part, when it is at the front.
    fn take_raw_front(&mut self) -> Option<Bytes> {
        if !std::mem::take(&mut self.raw_front) {
            return None;
        }
        // The rest was queued into an empty queue, so it is the inline first frame; frames queued after
        // it wait in the deque, which `pop_front` reaches once the inline slot is empty.
        match self.frames.first.take() {
            Some(Frame::Binary(b)) => {
                self.bytes -= FRAME_COST + b.len();
                Some(b)
            }
            other => {
                self.frames.first = other;
                None
            }
        }
    }

    /// Writes `frame` to the websocket's stream, as the writer would have framed it (no compression:
    /// `through` is never set on a connection that compresses). Clears `through` unless the whole frame
    /// was written.
    fn write_through(&mut self, frame: &Frame) -> Through {
        use ferrio_proto::ws::frame::{OP_BINARY, OP_TEXT, write_header};
        self.through = false;
        let (opcode, payload): (u8, &[u8]) = match frame {
            // Not the close packet (the writer ends the connection after it), nor the empty marker of an
            // uncompressed frame (the outbox consumes it).
            Frame::Text(t)
                if !t.is_empty()
                    && frame.packet_type() != ferrio_proto::engine::PacketType::Close =>
            {
                (OP_TEXT, t.as_bytes())
            }
            Frame::Binary(b) if self.through_binary => (OP_BINARY, b.as_ref()),
            _ => return Through::Queued,
        };
        let Some(stream) = self
            .stream
            .as_ref()
            .filter(|_| payload.len() <= MAX_THROUGH)
        else {
            return Through::Queued;
        };
        let through = THROUGH_BUF.with_borrow_mut(|buf| {
            buf.clear();
            write_header(buf, true, 0, opcode, None, payload.len());
            buf.extend_from_slice(payload);
            // A `send` on the socket itself, not `try_write`: tokio's readiness check first reads the
            // stream's registration, one more cache line per recipient of a broadcast. Its readiness is
            // left as it was; on a full buffer the frame is queued, and the writer's own write then
            // meets the full buffer and waits for room as usual.
            match socket2::SockRef::from(&**stream).send_with_flags(buf, SEND_FLAGS) {
                Ok(n) if n == buf.len() => Through::Written,
                Ok(n) => Through::Partial(Bytes::copy_from_slice(&buf[n..])),
                // Full (the writer waits for room) or failed (the writer meets the error itself).
                Err(_) => Through::Queued,
            }
        });
        self.through = matches!(through, Through::Written);
        through
    }
}

/// Frames in order: the oldest inline, the others in a deque that is given back once drained. A session
/// mostly has one frame waiting at a time (a ping, an answer), which then takes no allocation, and an
/// idle one keeps no slots for frames that may not come for a long time.
#[derive(Debug, Default)]
struct Frames {
    first: Option<Frame>,
    rest: VecDeque<Frame>,
}

impl Frames {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn push_back(&mut self, frame: Frame) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(frame);
        } else {
            self.rest.push_back(frame);
        }
    }

    fn pop_front(&mut self) -> Option<Frame> {
        if let Some(f) = self.first.take() {
            return Some(f);
        }
        let f = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
        f
    }
}

/// Keeps `cx`'s waker in `slot`, unless the one there wakes the same task.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

/// Why a frame was not queued.
enum Refused {
    Full,
    Closed,
}

impl FrameQueue {
    /// Queues `frame` and wakes the writer. With `budgeted`, refuses it when it would take the queue
    /// past `max_buffered_bytes`; without, only the frame bound applies (the close marker, a replay).
    #[inline]
    fn push(&self, frame: Frame, budgeted: bool) -> Result<(), Refused> {
        let c = cost(&frame);
        let mut st = self.state.lock();
        if st.closed {
            return Err(Refused::Closed);
        }
        if st.through && !QUEUE_ONLY.get() {
            match st.write_through(&frame) {
                Through::Written => {
                    drop(st);
                    self.out.record(c - FRAME_COST);
                    return Ok(());
                }
                Through::Partial(rest) => {
                    self.out.record(c - FRAME_COST);
                    // The queue is empty (`through` was set): the rest goes first, before any frame
                    // queued from now on. Past any budget: it is part of a frame already sent.
                    let rest = Frame::Binary(rest);
                    let c = cost(&rest);
                    st.raw_front = true;
                    return self.queue_and_wake(st, rest, c);
                }
                Through::Queued => {}
            }
        }
        if st.frames.len() >= self.max_frames || (budgeted && st.bytes + c > self.budget) {
            return Err(Refused::Full);
        }
        // Not written through: nothing may be from now on, until the writer took this.
        st.through = false;
        self.queue_and_wake(st, frame, c)
    }

    #[inline]
    fn queue_and_wake(
        &self,
        mut st: parking_lot::MutexGuard<'_, QueueState>,
        frame: Frame,
        c: usize,
    ) -> Result<(), Refused> {
        st.bytes += c;
        st.frames.push_back(frame);
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Takes the next frame, and whether that emptied the queue; `Pending` registers the writer's
    /// waker. A frame that empties the queue registers the waker too: the writer then knows it has
    /// everything without asking again (one lock per frame, not one more per batch).
    ///
    /// With `idle` (the writer has nothing taken and unwritten), an empty queue lets frames go through
    /// (see [`QueueState::through`]) until the next is taken.
    fn poll_pop(&self, cx: Option<&mut Context<'_>>, idle: bool) -> Poll<Option<Popped>> {
        let mut st = self.state.lock();
        if let Some(frame) = st.frames.pop_front() {
            st.through = false;
            st.bytes -= cost(&frame);
            let raw = std::mem::take(&mut st.raw_front);
            let emptied = st.frames.len() == 0 && !st.ended;
            if emptied && let Some(cx) = cx {
                register(&mut st.waker, cx);
            }
            let room = std::mem::take(&mut st.waiting_room);
            drop(st);
            if room {
                self.room.notify_waiters();
            }
            return Poll::Ready(Some(Popped {
                frame,
                emptied,
                raw,
            }));
        }
        if st.ended {
            return Poll::Ready(None);
        }
        if let Some(cx) = cx {
            register(&mut st.waker, cx);
        }
        st.through = idle && st.stream.is_some();
        Poll::Pending
    }

    /// The writer wrote everything it took and found the queue empty at its last take: frames may go
    /// through unless some were queued since.
    fn idle(&self) {
        let mut st = self.state.lock();
        st.through = st.frames.len() == 0 && st.stream.is_some() && !st.ended;
    }

    /// Frames stop going through until the writer is idle again: it is about to write bytes of its own.
    ///
    /// Returns the end of a frame written in part, if one waits: those bytes must go first.
    fn hold(&self) -> Option<Bytes> {
        let mut st = self.state.lock();
        st.through = false;
        st.take_raw_front()
    }

    /// Frames may go through `stream` whenever the writer is idle.
    fn attach(&self, stream: Arc<tokio::net::TcpStream>, binary: bool) {
        let mut st = self.state.lock();
        st.stream = Some(stream);
        st.through_binary = binary;
    }

    /// No frame goes through any more, and the stream is let go: the writer is closing it.
    ///
    /// Returns the end of a frame written in part, if one waits: it goes before the close frame.
    fn detach(&self) -> Option<Bytes> {
        let (stream, rest) = {
            let mut st = self.state.lock();
            st.through = false;
            (st.stream.take(), st.take_raw_front())
        };
        drop(stream);
        rest
    }

    fn close(&self) {
        let (frames, stream) = {
            let mut st = self.state.lock();
            st.closed = true;
            st.through = false;
            st.bytes = 0;
            (std::mem::take(&mut st.frames), st.stream.take())
        };
        self.room.notify_waiters();
        drop((frames, stream));
    }

    /// Wakes the writer waiting for frames: the session closed, or a pending poll must answer now (an
    /// upgrade under way). The writer looks at the session's state at its next wake.
    fn wake_writer(&self) {
        let waker = {
            let mut st = self.state.lock();
            // The writer looks at the session first: nothing goes past it meanwhile.
            st.through = false;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Forgets the writer's waker, and lets nothing through: the writer is running and will write
    /// what is queued meanwhile in one batch.
    fn unregister(&self) {
        let waker = {
            let mut st = self.state.lock();
            st.through = false;
            st.waker.take()
        };
        drop(waker);
    }

    /// Registers the writer's waker without taking a frame.
    fn register(&self, cx: &mut Context<'_>) {
        register(&mut self.state.lock().waker, cx);
    }

    fn end(&self) {
        let waker = {
            let mut st = self.state.lock();
            st.ended = true;
            st.through = false;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The receiving end of a session's queue. Whoever holds it is the session's only writer: the pending
/// poll, or the websocket's writer task. It moves from one to the other on upgrade.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Arc<FrameQueue>,
    /// A frame taken from the queue that did not fit in the last poll response; it goes first next time.
    carry: Option<Frame>,
    /// The frame last returned followed an [`uncompressed_marker`].
    uncompressed: bool,
    /// The frame last returned is websocket bytes to send as they are.
    raw: bool,
}

/// Queued right before a frame that must not be compressed (`compress(false)`): an empty text frame,
/// which no packet encodes to (every packet carries its type digit), so the flag costs the queue's item
/// nothing for the frames that do not use it. The outbox consumes it.
pub(crate) fn uncompressed_marker() -> Frame {
    Frame::Text(bytestring::ByteString::new())
}

fn is_uncompressed_marker(f: &Frame) -> bool {
    matches!(f, Frame::Text(s) if s.is_empty())
}

impl Outbox {
    /// The next frame, and whether the queue is empty after it (the writer's waker is then registered
    /// for the next one); or `Pending` with the writer's waker registered.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Frame, bool)>> {
        self.poll_next(cx, false)
    }

    /// [`poll_recv`](Self::poll_recv) for a websocket writer; `idle` says that it has nothing taken
    /// and unwritten, so that an empty queue lets frames go through to the stream given to
    /// [`attach`](Self::attach).
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        idle: bool,
    ) -> Poll<Option<(Frame, bool)>> {
        self.uncompressed = false;
        self.raw = false;
        if let Some(f) = self.carry.take() {
            return Poll::Ready(Some((f, false)));
        }
        loop {
            let Some(p) = ready!(self.queue.poll_pop(Some(&mut *cx), idle)) else {
                return Poll::Ready(None);
            };
            if p.raw {
                // Counted when it went through.
                self.raw = true;
                return Poll::Ready(Some((p.frame, p.emptied)));
            }
            if self.taken(&p.frame) {
                return Poll::Ready(Some((p.frame, p.emptied)));
            }
        }
    }

    /// Makes the next frame (or the session's end) wake the writer, without taking a frame: for a writer
    /// that cannot write now but must still hear that the session closed.
    pub(crate) fn register(&self, cx: &mut Context<'_>) {
        self.queue.register(cx);
    }

    /// Frames queued from now on wake nobody until the writer registers again (with `poll_recv` or
    /// `register`): for a writer that is running and will look at the queue before it waits.
    pub(crate) fn unregister(&self) {
        self.queue.unregister();
    }

    pub(crate) fn try_recv(&mut self) -> Option<Frame> {
        self.uncompressed = false;
        if let Some(f) = self.carry.take() {
            return Some(f);
        }
        loop {
            let Poll::Ready(p) = self.queue.poll_pop(None, false) else {
                return None;
            };
            let f = p?.frame;
            if self.taken(&f) {
                return Some(f);
            }
        }
    }

    /// Whether the frame last returned must be sent uncompressed.
    pub(crate) fn last_uncompressed(&self) -> bool {
        self.uncompressed
    }

    /// Whether the frame last returned is websocket bytes, to send as they are.
    pub(crate) fn last_raw(&self) -> bool {
        self.raw
    }

    /// Lets frames pushed while this writer is idle go straight to `stream` (see
    /// [`QueueState::through`]); `binary`: binary frames go out as they are.
    pub(crate) fn attach(&self, stream: Arc<tokio::net::TcpStream>, binary: bool) {
        self.queue.attach(stream, binary);
    }

    /// Ends [`attach`](Self::attach): the writer is closing the stream.
    ///
    /// Returns the end of a frame written in part, if one waits: it goes before the close frame.
    pub(crate) fn detach(&self) -> Option<Bytes> {
        self.queue.detach()
    }

    /// The writer wrote all it took and emptied the queue at its last take.
    pub(crate) fn idle(&self) {
        self.queue.idle();
    }

    /// The writer is about to write bytes of its own (a pong): nothing goes through meanwhile.
    ///
    /// Returns the end of a frame written in part, if one waits: those bytes must go first.
    pub(crate) fn hold(&self) -> Option<Bytes> {
        self.queue.hold()
    }

    /// A frame left the queue: it counts as sent. False for the uncompressed marker, which only flags
    /// the frame after it.
    #[inline]
    fn taken(&mut self, f: &Frame) -> bool {
        if is_uncompressed_marker(f) {
            self.uncompressed = true;
            return false;
        }
        self.queue.out.record(cost(f) - FRAME_COST);
        true
    }

    pub(crate) fn put_back(&mut self, frame: Frame) {
        debug_assert!(self.carry.is_none());
        self.carry = Some(frame);
    }
}

impl Drop for Outbox {
    /// No writer any more: later frames would never leave, so sending fails from now on.
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// An Engine.IO session (`engine.io` `Socket`).
pub struct Socket {
    id: Arc<str>,
    pub(crate) engine: Arc<EngineInner>,
    state: Mutex<Session>,
    queue: Arc<FrameQueue>,
    outbox: Mutex<Option<Outbox>>,
    /// Signalled each time a poll hands the outbox back.
    outbox_returned: Notify,
    /// This session, for the engine's timers (which hold it weakly).
    me: Weak<Socket>,
    /// Its place among the engine's timers: a serial number, and the deadline filed there, if any.
    serial: u64,
    filed: Mutex<Option<Instant>>,
    /// Set once the session is closed: what the websocket driver checks at every wake.
    finished: AtomicBool,
    /// Wakes what waits for the session's end (`closed`). A `Notify` inline rather than a
    /// cancellation token: the token is a second allocation per session, and its state a second copy
    /// of `finished`.
    ended: Notify,
    /// Cancelled to drop the probe websocket of an upgrade that timed out.
    upgrade_cancel: Mutex<Option<CancellationToken>>,
    pub(crate) posting: AtomicBool,
    /// `ferrio_packets_in_total` / `ferrio_bytes_in_total` of this session.
    messages_in: crate::telemetry::MessagesIn,
    handshake: HandshakeInfo,
    /// The handler with this session's state (for Socket.IO, the `Client`), so that each message reaches
    /// it without a lookup in a shared map. Taken out when the session closes: the state usually holds
    /// this session, and the cycle must not outlive it.
    handler: Mutex<Option<Arc<dyn SessionHandler>>>,
    /// False once the session stopped being open (closing or closed): what `send_frame` checks, so that
    /// queueing a frame (once per recipient of every broadcast) does not lock the state machine. Cleared
    /// wherever the state leaves `Open`: `close` (start closing), a full queue, and `finish`, which every
    /// other way to close goes through.
    open: AtomicBool,
    /// The protocol revision and encodings of this session.
    wire: Wire,
    /// The serving thread that answered the handshake (0: none named), where the connections of a
    /// polling session's requests go (see `crate::serving`).
    home: u16,
    /// Counts this session against `max_pending_handshakes_per_address` until it is established.
    handshake_slot: Mutex<Option<super::limits::HandshakeSlot>>,
}

impl Drop for Socket {
    /// The writer, if any, takes what is left and ends.
    fn drop(&mut self) {
        self.queue.end();
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("transport", &self.transport())
            .finish()
    }
}

impl Socket {
    pub(crate) fn new(
        id: Arc<str>,
        engine: Arc<EngineInner>,
        transport: TransportKind,
        handshake: HandshakeInfo,
        wire: Wire,
    ) -> Arc<Socket> {
        let queue = Arc::new(FrameQueue {
            state: Mutex::new(QueueState::default()),
            max_frames: engine.config.max_buffered_packets.max(2),
            budget: engine.config.max_buffered_bytes,
            room: Notify::new(),
            out: crate::telemetry::FramesOut::new(),
        });
        let session = Session::new(
            Instant::now(),
            engine.config.session_config(wire.protocol),
            transport,
        );
        crate::telemetry::connection(transport);
        let serial = engine.timers.serial();
        Arc::new_cyclic(|me| Socket {
            id,
            engine,
            state: Mutex::new(session),
            queue: queue.clone(),
            outbox: Mutex::new(Some(Outbox {
                queue,
                carry: None,
                uncompressed: false,
                raw: false,
            })),
            outbox_returned: Notify::new(),
            me: me.clone(),
            serial,
            filed: Mutex::new(None),
            finished: AtomicBool::new(false),
            ended: Notify::new(),
            upgrade_cancel: Mutex::new(None),
            posting: AtomicBool::new(false),
            messages_in: crate::telemetry::MessagesIn::new(),
            handshake,
            handler: Mutex::new(None),
            open: AtomicBool::new(true),
            wire,
            home: crate::serving::serving_thread(),
            handshake_slot: Mutex::new(None),
        })
    }

    /// The serving thread this session belongs to, when it is not the calling one.
    pub(crate) fn home_elsewhere(&self) -> Option<u16> {
        (self.home != 0 && self.home != crate::serving::serving_thread()).then_some(self.home)
    }

    pub(crate) fn hold_handshake_slot(&self, slot: Option<super::limits::HandshakeSlot>) {
        *self.handshake_slot.lock() = slot;
    }

    /// The session finished its handshake at the application's level (the Socket.IO server calls it
    /// when the client joins its first namespace): it stops counting against
    /// `max_pending_handshakes_per_address`. Closing the session does the same.
    pub fn established(&self) {
        self.handshake_slot.lock().take();
    }

    pub(crate) fn set_handler(&self, handler: Arc<dyn SessionHandler>) {
        *self.handler.lock() = Some(handler);
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Engine.IO protocol revision the client speaks.
    pub fn protocol(&self) -> Protocol {
        self.wire.protocol
    }

    pub(crate) fn wire(&self) -> &Wire {
        &self.wire
    }

    /// The transport in use.
    pub fn transport(&self) -> TransportKind {
        self.state.lock().transport()
    }

    /// The handshake request.
    pub fn handshake(&self) -> &HandshakeInfo {
        &self.handshake
    }

    /// Whether the session is open (not closing, not closed).
    pub fn is_open(&self) -> bool {
        self.state.lock().is_open()
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send_frame(Frame::message(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.send_frame(Frame::binary(data))
    }

    /// Sends a message.
    pub fn send(&self, data: Data) -> Result<(), SendError> {
        self.send_frame(Packet::Message(data).encode())
    }

    /// Queues an encoded frame. Share one frame between many sessions to encode a broadcast once.
    /// A full queue means the client does not keep up: the session closes with "transport error".
    pub fn send_frame(&self, frame: Frame) -> Result<(), SendError> {
        if !self.open.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        self.push(frame)
    }

    /// Queues a frame, waiting for room in the queue rather than closing the session: for a writer whose
    /// packets may be many at once and must all arrive (a recovery replay). The frame is counted in the
    /// byte budget like any other but not refused by it: the replay is already bounded by the session
    /// log's own cap, and closing here would lose exactly what recovery restores.
    pub(crate) async fn send_frame_waiting(&self, frame: Frame) -> Result<(), SendError> {
        if !self.open.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        loop {
            let room = self.queue.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before the check: room made after it wakes this wait.
            room.as_mut().enable();
            // Set before trying, so that a frame taken right after a refusal still signals `room`.
            self.queue.state.lock().waiting_room = true;
            match self.queue.push(frame.clone(), false) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(SendError::Closed),
                Err(Refused::Full) => {}
            }
            tokio::select! {
                () = room => {}
                () = self.closed() => return Err(SendError::Closed),
            }
        }
    }

    /// Queues a frame unless the queue is over its budget, in which case the frame is dropped (volatile
    /// packets). Returns whether it was queued.
    pub fn send_frame_volatile(&self, frame: Frame) -> bool {
        crate::telemetry::volatile(
            self.open.load(Ordering::Acquire) && self.enqueue(frame, true).is_ok(),
        )
    }

    /// Bytes queued for this session and not yet taken by its writer (each frame counted as its encoded
    /// size plus a fixed slot cost); the slow-consumer rule closes the session past `max_buffered_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.queue.state.lock().bytes
    }

    /// Puts `frame` in the queue. With `budgeted`, refuses it when it would take the queue past
    /// `max_buffered_bytes`; without, only the frame bound applies (the close marker).
    #[inline]
    fn enqueue(&self, frame: Frame, budgeted: bool) -> Result<(), Refused> {
        self.queue.push(frame, budgeted)
    }

    fn push(&self, frame: Frame) -> Result<(), SendError> {
        match self.enqueue(frame, true) {
            Ok(()) => Ok(()),
            Err(Refused::Full) => {
                tracing::debug!(sid = %self.id, queued = self.buffered_bytes(), "slow consumer, closing");
                crate::telemetry::slow_consumer();
                // The session is closed at once (later sends fail), but its close handlers run on a task
                // of their own: the sender may be deep in a broadcast, holding locks they would take.
                if matches!(
                    self.state.lock().close(CloseReason::TransportError),
                    Received::Close(_)
                ) {
                    self.open.store(false, Ordering::Release);
                    let me = self.engine.sessions.get(&self.id).map(|s| s.clone());
                    match (me, tokio::runtime::Handle::try_current()) {
                        (Some(me), Ok(rt)) => {
                            rt.spawn(async move { me.finish(CloseReason::TransportError) });
                        }
                        _ => self.finish(CloseReason::TransportError),
                    }
                }
                Err(SendError::SlowConsumer)
            }
            Err(Refused::Closed) => Err(SendError::Closed),
        }
    }

    /// Closes the session gracefully: what is queued is still delivered (within `close_timeout` for
    /// polling), then the transport closes with reason "forced close".
    pub fn close(&self) {
        if self.state.lock().start_closing(Instant::now()) {
            self.open.store(false, Ordering::Release);
            // The close marker is outside the byte budget (it is tiny and must follow what is queued).
            if self.enqueue(Frame::close(), false).is_err() {
                // No room for the close marker: nothing more can be delivered in order, so end now.
                self.close_with(CloseReason::ForcedClose);
            }
            self.reschedule();
        }
    }

    /// Ends the session now, for `reason`. Runs the close handler once.
    pub(crate) fn close_with(&self, reason: CloseReason) {
        if !matches!(self.state.lock().close(reason), Received::Close(_)) {
            return;
        }
        self.finish(reason);
    }

    fn finish(&self, reason: CloseReason) {
        self.open.store(false, Ordering::Release);
        tracing::debug!(sid = %self.id, %reason, "session closed");
        self.finished.store(true, Ordering::Release);
        self.ended.notify_waiters();
        // The websocket driver waits on the queue, not on `ended`.
        self.queue.wake_writer();
        if let Some(at) = self.filed.lock().take() {
            self.engine.timers.of(self.home).cancel(self.serial, at);
        }
        if let Some(c) = self.upgrade_cancel.lock().take() {
            c.cancel();
        }
        self.established();
        if let Some((_, socket)) = self.engine.sessions.remove(&self.id) {
            crate::telemetry::disconnection(reason);
            let handler = self.handler.lock().take();
            if let Some(h) = handler {
                h.on_close(&socket, reason);
            }
        }
    }

    /// The reason the session closed, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().closed()
    }

    /// Whether the session is closed.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Completes once the session is closed.
    pub(crate) async fn closed(&self) {
        let ended = self.ended.notified();
        let mut ended = std::pin::pin!(ended);
        // Registered before the check: a close right after it still wakes this wait.
        ended.as_mut().enable();
        if self.is_finished() {
            return;
        }
        ended.await;
    }

    /// Handles a packet from the session's transport; delivers messages to the handler in arrival order.
    pub(crate) async fn on_packet(self: &Arc<Self>, packet: Packet) {
        if let Some(wait) = self.receive(packet) {
            wait.await;
        }
    }

    /// Handles a packet from the session's transport. A future returned is the handler's backpressure:
    /// the transport reads nothing more from this session until it is done.
    pub(crate) fn receive(self: &Arc<Self>, packet: Packet) -> Option<BoxFuture<()>> {
        let is_pong = matches!(packet, Packet::Pong(_));
        let received = {
            let mut state = self.state.lock();
            let before = state.poll_timeout();
            let received = state.on_packet(Instant::now(), packet);
            // A pong can move the next deadline earlier (the next ping, when ping_interval is shorter than
            // ping_timeout): the timers keep the old one unless told.
            let earlier = is_pong && state.poll_timeout() < before;
            drop(state);
            if earlier {
                self.reschedule();
            }
            received
        };
        match received {
            Received::Message(data) => {
                self.messages_in.record(&data);
                // Cloned out: the handler may close this session, which takes it out of the slot.
                let handler = self.handler.lock().clone()?;
                handler.on_message(self, data);
                let wait = handler.backpressure(self)?;
                // Not reading is the server's doing: the client's pong may be waiting behind.
                self.state.lock().pause_reader();
                let me = self.clone();
                return Some(Box::pin(async move {
                    wait.await;
                    me.state.lock().resume_reader(Instant::now());
                    me.reschedule();
                }));
            }
            Received::SendPong => {
                let _ = self.push(ferrio_proto::engine::v3::pong());
            }
            Received::Nothing => {}
            Received::Close(reason) => self.finish(reason),
        }
        None
    }

    /// Whether a poll must answer without waiting: the probe was answered or the upgrade is done.
    pub(crate) fn poll_must_not_wait(&self) -> bool {
        let st = self.state.lock();
        st.is_probed() || st.transport() != TransportKind::Polling
    }

    pub(crate) fn take_outbox(&self) -> Option<Outbox> {
        self.outbox.lock().take()
    }

    pub(crate) fn return_outbox(&self, outbox: Outbox) {
        *self.outbox.lock() = Some(outbox);
        self.outbox_returned.notify_one();
    }

    /// Waits until the outbox is free (a pending poll ends after the noop it was sent).
    pub(crate) async fn acquire_outbox(&self) -> Option<Outbox> {
        loop {
            if let Some(o) = self.take_outbox() {
                return Some(o);
            }
            // The poll holding it answers at once once released; it checks the state first, so a poll
            // arriving after this notification does not wait either.
            let returned = self.outbox_returned.notified();
            self.queue.wake_writer();
            tokio::select! {
                _ = returned => {}
                () = self.closed() => return None,
            }
        }
    }

    /// A websocket asks to take over this polling session. Returns the token that cancels the probe.
    pub(crate) fn begin_upgrade(&self) -> Option<CancellationToken> {
        self.state.lock().begin_upgrade(Instant::now()).ok()?;
        let token = CancellationToken::new();
        *self.upgrade_cancel.lock() = Some(token.clone());
        // `finish` cancels the token it finds; one closing meanwhile may have looked before it was there.
        if self.is_finished() {
            token.cancel();
        }
        self.reschedule();
        Some(token)
    }

    /// Runs a probe packet through the state machine.
    pub(crate) fn on_probe_packet(&self, packet: &Packet) -> ferrio_proto::engine::ProbeOutcome {
        let outcome = self.state.lock().on_probe_packet(packet);
        if outcome == ferrio_proto::engine::ProbeOutcome::SendProbePong {
            // End the pending poll so the client can pause polling and send the upgrade packet.
            self.queue.wake_writer();
        }
        if outcome != ferrio_proto::engine::ProbeOutcome::SendProbePong {
            self.upgrade_cancel.lock().take();
        }
        outcome
    }

    /// The probe websocket went away before the upgrade completed.
    pub(crate) fn abort_upgrade(&self) {
        self.state.lock().abort_upgrade();
        self.upgrade_cancel.lock().take();
    }

    /// A graceful close finished delivering its frames.
    pub(crate) fn close_delivered(&self) {
        self.close_with(CloseReason::ForcedClose);
    }

    /// Files the state machine's next deadline with the engine's timers, unless an earlier or equal one
    /// is filed already (a later one fires early and finds nothing to do).
    pub(crate) fn reschedule(&self) {
        let Some(at) = self.state.lock().poll_timeout() else {
            return;
        };
        let mut filed = self.filed.lock();
        if filed.is_some_and(|f| f <= at) {
            return;
        }
        self.engine
            .timers
            .of(self.home)
            .file(self.me.clone(), self.serial, *filed, at);
        *filed = Some(at);
    }

    /// The deadline filed for `at` passed: runs what is due, then files the next one.
    pub(crate) fn on_deadline(&self, at: Instant) {
        {
            let mut filed = self.filed.lock();
            if *filed != Some(at) {
                // Replaced by an earlier one meanwhile, which fires on its own.
                return;
            }
            *filed = None;
        }
        if self.is_finished() {
            return;
        }
        loop {
            let fired = self.state.lock().handle_timeout(Instant::now());
            match fired {
                None => break,
                Some(Timeout::SendPing) => {
                    let _ = self.push(Frame::ping());
                }
                Some(Timeout::PingTimedOut) => self.finish(CloseReason::PingTimeout),
                Some(Timeout::CloseTimedOut) => self.finish(CloseReason::ForcedClose),
                Some(Timeout::UpgradeTimedOut) => {
                    if let Some(c) = self.upgrade_cancel.lock().take() {
                        c.cancel();
                    }
                }
            }
        }
        if !self.is_finished() {
            self.reschedule();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Frame {
        Frame::text_packet(ferrio_proto::engine::PacketType::Message, s)
    }

    #[test]
    fn frames_leave_in_order_and_a_drained_queue_holds_no_slots() {
        let mut q = Frames::default();
        q.push_back(msg("a"));
        assert!(q.rest.capacity() == 0, "a lone frame is kept inline");
        q.push_back(msg("b"));
        assert_eq!(q.pop_front(), Some(msg("a")));
        // The inline slot is free again, but "b" waits in the deque: "c" must go after it.
        q.push_back(msg("c"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_front(), Some(msg("b")));
        assert_eq!(q.pop_front(), Some(msg("c")));
        assert_eq!(q.pop_front(), None);
        assert_eq!(q.len(), 0);
        assert_eq!(q.rest.capacity(), 0, "a drained deque is given back");
    }

    fn queue() -> FrameQueue {
        FrameQueue {
            state: Mutex::new(QueueState::default()),
            max_frames: 100_000,
            budget: usize::MAX,
            room: Notify::new(),
            out: crate::telemetry::FramesOut::new(),
        }
    }

    /// Counts its wakes.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A connected pair: the server's end shared as a websocket writer shares it, and the client's.
    async fn pair() -> (Arc<tokio::net::TcpStream>, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (Arc::new(accepted.unwrap().0), client.unwrap())
    }

    fn ws_text(payload: &str) -> Vec<u8> {
        let mut out = Vec::new();
        ferrio_proto::ws::frame::write_header(
            &mut out,
            true,
            0,
            ferrio_proto::ws::frame::OP_TEXT,
            None,
            payload.len(),
        );
        out.extend_from_slice(payload.as_bytes());
        out
    }

    #[tokio::test]
    async fn an_idle_writers_frames_go_through_without_waking_it() {
        use tokio::io::AsyncReadExt;
        let (server, mut client) = pair().await;
        let q = queue();
        q.attach(server, true);
        let wakes = Arc::new(Wakes(0.into()));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        // A writer with something taken and unwritten lets nothing through.
        assert!(q.poll_pop(Some(&mut cx), false).is_pending());
        assert!(q.push(msg("queued"), true).is_ok());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        let p = match q.poll_pop(Some(&mut cx), false) {
            Poll::Ready(Some(p)) => p,
            _ => panic!("the frame was queued"),
        };
        assert_eq!((p.frame, p.emptied, p.raw), (msg("queued"), true, false));
        // Idle: written by the push itself, framed as the writer frames it, with no wake.
        q.idle();
        assert!(q.push(msg("hello"), true).is_ok());
        assert!(q.push(Frame::binary(vec![1u8, 2]), true).is_ok());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(q.state.lock().frames.len(), 0);
        let mut want = ws_text("4hello");
        want.extend_from_slice(&[0x82, 2, 1, 2]);
        let mut got = vec![0; want.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
        // The close packet goes to the writer (it ends the connection after it), and what follows waits
        // behind it.
        assert!(q.push(Frame::close(), false).is_ok());
        assert!(q.push(msg("after"), true).is_ok());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert_eq!(q.state.lock().frames.len(), 2);
        // Detached (the writer closes the stream): nothing goes through, even from an idle writer.
        while let Poll::Ready(Some(_)) = q.poll_pop(Some(&mut cx), true) {}
        q.detach();
        q.idle();
        assert!(q.push(msg("late"), true).is_ok());
        assert_eq!(q.state.lock().frames.len(), 1);
    }

    #[tokio::test]
    async fn a_running_writer_or_a_burst_gets_the_frames_queued() {
        let (server, _client) = pair().await;
        let q = queue();
        q.attach(server, false);
        let waker = Waker::from(Arc::new(Wakes(0.into())));
        let mut cx = Context::from_waker(&waker);
        assert!(q.poll_pop(Some(&mut cx), true).is_pending());
        // Handling a packet with more behind it: queued, for the writer to batch.
        queued(true, || assert!(q.push(msg("a"), true).is_ok()));
        assert_eq!(q.state.lock().frames.len(), 1);
        assert!(q.poll_pop(Some(&mut cx), true).is_ready());
        assert!(q.poll_pop(Some(&mut cx), true).is_pending());
        // The writer runs (reads a packet): it writes what is queued meanwhile itself.
        q.unregister();
        assert!(q.push(msg("b"), true).is_ok());
        assert_eq!(q.state.lock().frames.len(), 1);
        // Binary frames stay with the writer on Engine.IO v3 (`attach(_, false)`), which reframes them.
        assert!(q.poll_pop(Some(&mut cx), true).is_ready());
        assert!(q.poll_pop(Some(&mut cx), true).is_pending());
        assert!(q.push(Frame::binary(vec![1u8]), true).is_ok());
        assert_eq!(q.state.lock().frames.len(), 1);
    }

    #[tokio::test]
    async fn a_frame_written_in_part_sends_its_end_before_anything_queued_after_it() {
        fill_then_drain(false).await;
    }

    #[tokio::test]
    async fn the_end_of_a_frame_written_in_part_goes_before_the_writers_own_bytes() {
        fill_then_drain(true).await;
    }

    /// Writes frames through until the peer, which reads nothing, has the stream full; then writes what
    /// the writer would (with `own_bytes`, as before a pong or the close frame: what `hold` gives back
    /// first) and checks that the peer gets every message whole and in order.
    async fn fill_then_drain(own_bytes: bool) {
        use tokio::io::AsyncReadExt;
        let (server, mut client) = pair().await;
        let q = queue();
        q.attach(server.clone(), true);
        let waker = Waker::from(Arc::new(Wakes(0.into())));
        let mut cx = Context::from_waker(&waker);
        assert!(q.poll_pop(Some(&mut cx), true).is_pending());
        let payload = |i: usize| format!("4{i:05}{}", "x".repeat(MAX_THROUGH - 6));
        let mut sent = 0;
        while q.state.lock().frames.len() == 0 {
            assert!(q.push(Frame::Text(payload(sent).into()), true).is_ok());
            sent += 1;
            assert!(sent < 100_000, "the stream never filled");
        }
        assert!(q.push(Frame::Text(payload(sent).into()), true).is_ok());
        sent += 1;
        // The peer reads everything while the test writes what the writer would.
        let reader = tokio::spawn(async move {
            let mut d =
                ferrio_proto::ws::Decoder::new(ferrio_proto::ws::Role::Client, 1 << 20, None);
            let mut texts = Vec::new();
            let mut buf = vec![0; 64 * 1024];
            while texts.len() < sent {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after {} messages", texts.len());
                d.feed(&buf[..n]);
                while let Some(m) = d.next_message().unwrap() {
                    match m {
                        ferrio_proto::ws::Message::Text(t) => texts.push(t.to_string()),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            texts
        });
        let mut out: Vec<u8> = Vec::new();
        if own_bytes {
            let partial = q.state.lock().raw_front;
            let rest = q.hold();
            assert_eq!(rest.is_some(), partial);
            out.extend_from_slice(&rest.unwrap_or_default());
            assert!(q.hold().is_none(), "the rest is given once");
        }
        while let Poll::Ready(Some(p)) = q.poll_pop(Some(&mut cx), false) {
            match p.frame {
                Frame::Binary(b) if p.raw => {
                    assert!(
                        out.is_empty(),
                        "the end of a frame written in part goes first"
                    );
                    out.extend_from_slice(&b);
                }
                Frame::Text(t) => out.extend_from_slice(&ws_text(&t)),
                Frame::Binary(_) => panic!("no binary frame was sent"),
            }
        }
        assert_eq!(q.state.lock().bytes, 0);
        let mut written = 0;
        while written < out.len() {
            server.writable().await.unwrap();
            match server.try_write(&out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        // Whether the stream took the last frame through in part or refused it whole, every message
        // arrives whole and in order.
        let texts = reader.await.unwrap();
        let want: Vec<String> = (0..sent).map(payload).collect();
        assert_eq!(texts, want);
    }
}
