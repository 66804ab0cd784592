//! The client side of one Engine.IO session as a state machine of `(now, input)`.
//!
//! The shell owns the sockets and HTTP requests; this type owns every protocol rule of the client:
//! the handshake, the heartbeat watchdog (the server pings; no ping within `pingInterval + pingTimeout`
//! closes the session with "ping timeout"), the write buffer and how it is cut into POST bodies of at
//! most `maxPayload` bytes or websocket batches, the upgrade (probe, pause polling, `5`, switch), and the
//! close (the queued packets, then the close packet in a POST of its own).
//!
//! With [`Protocol::V3`] (`ClientConfig::protocol`, for engine.io 3.x / socket.io 2.x servers) the same
//! machine speaks Engine.IO v3, as engine.io-client 3.x does: the payloads and binary frames of v3, and
//! the heartbeat the other way round. The client pings `pingInterval` after the open packet and after
//! each pong, and gives the server `pingTimeout` to answer; any packet from the server proves it alive
//! for `pingInterval + pingTimeout`.
//!
//! The shell reports what happened through the `on_*` methods and [`ClientSession::handle_timeout`],
//! then drains [`ClientSession::poll_output`] until it returns `None` and does what each [`Output`] says.
//! It sleeps until [`ClientSession::poll_timeout`]; that one sleep covers every deadline of the session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;

use super::handshake::OpenPacket;
use super::packet::{Data, DecodeError, Frame, Packet, PacketType, decode_binary, decode_text};
use super::payload::{PayloadEncoder, decode_payload};
use super::session::{CloseReason, Protocol, TransportKind};
use super::v3;

/// The `maxPayload` of a v3 server, which does not announce one: engine.io 3's default
/// `maxHttpBufferSize` (100 MB).
pub const V3_MAX_PAYLOAD: u64 = 100_000_000;

/// Options of a client session that do not come from the server's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Probe a websocket and upgrade to it when the server offers one over polling (`upgrade`, true).
    pub upgrade: bool,
    /// Longest time a closing session spends sending its queued packets and the close packet.
    pub close_timeout: Duration,
    /// Most frames handed to the websocket in one [`Output::Write`] (one flush).
    pub max_write_batch: usize,
    /// The Engine.IO protocol revision spoken (v4; v3 for engine.io 3.x servers).
    pub protocol: Protocol,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            upgrade: true,
            close_timeout: Duration::from_secs(5),
            max_write_batch: 128,
            protocol: Protocol::V4,
        }
    }
}

/// Why the server's handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The first packet could not be decoded.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The first packet is not an open packet.
    #[error("expected an open packet, got {0:?}")]
    NotOpen(PacketType),
    /// The first websocket message is binary.
    #[error("binary message before the open packet")]
    Binary,
    /// The open packet's JSON is not a v4 handshake document.
    #[error("open packet: {0}")]
    InvalidOpen(String),
}

/// How a transport, a request or a write ended early, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEnd {
    /// The server ended it cleanly: a websocket close, or an HTTP 400 for a session it no longer knows.
    Closed,
    /// A network or protocol failure, described.
    Error(String),
}

/// Something the application must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The server sent a message.
    Message(Data),
    /// A heartbeat: v4, the server sent a ping (the pong is already queued); v3, the client sent its
    /// ping.
    Ping,
    /// The session now runs on this transport.
    Upgrade(TransportKind),
    /// The session is closed; nothing follows but [`Output::Shutdown`].
    Close {
        /// The official reason.
        reason: CloseReason,
        /// What failed, for "transport error".
        detail: Option<String>,
    },
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Tell the application.
    Event(Event),
    /// Start a long-polling GET; report it with [`ClientSession::on_poll`].
    Poll,
    /// Start a POST with this payload; report it with [`ClientSession::on_post`].
    Post(Bytes),
    /// Write these frames on the websocket, in order, and flush; report it with
    /// [`ClientSession::on_write`].
    Write(Vec<Frame>),
    /// Open the upgrade websocket (with the session id); report it with [`ClientSession::on_probe_open`]
    /// or [`ClientSession::on_probe_error`].
    OpenProbe,
    /// Write this frame on the probe websocket, then read the next packet on it and report it with
    /// [`ClientSession::on_probe_packet`].
    ProbeWrite(Frame),
    /// The upgrade failed: close the probe websocket; the session goes on over polling.
    DropProbe {
        /// What went wrong.
        error: String,
    },
    /// Polling is paused (no request in flight): the probe websocket becomes the session's transport
    /// and the polling connections can go. The frames that follow go on the websocket.
    SwitchToProbe,
    /// The session is over: close the transports and stop.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    Open,
    /// A close requested by the application: the buffer and the close packet are being sent.
    Closing {
        deadline: Instant,
    },
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    None,
    /// The probe websocket is being opened.
    Opening {
        deadline: Instant,
    },
    /// `2probe` was sent; `3probe` is awaited.
    Probing {
        deadline: Instant,
    },
    /// `3probe` came: polling is pausing, the switch happens once no request is in flight.
    Pausing {
        deadline: Instant,
    },
}

impl Probe {
    fn deadline(self) -> Option<Instant> {
        match self {
            Probe::None => None,
            Probe::Opening { deadline }
            | Probe::Probing { deadline }
            | Probe::Pausing { deadline } => Some(deadline),
        }
    }
}

/// One Engine.IO v4 session, client side.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: OpenPacket,
    /// `pingInterval + pingTimeout`: the longest silence allowed between two pings (v4), or from the
    /// server (v3).
    ping_window: Duration,
    ping_interval: Duration,
    ping_timeout: Duration,
    /// v3: when the client sends its next ping (`None` while a ping awaits its pong, and in v4).
    next_ping: Option<Instant>,
    max_payload: usize,
    ready: Ready,
    transport: TransportKind,
    ping_deadline: Instant,
    probe: Probe,
    /// Frames waiting for the writer, in order.
    buffer: VecDeque<Frame>,
    /// A polling GET is in flight.
    polling: bool,
    /// A POST (polling) or a websocket write is in flight.
    writing: bool,
    /// The write in flight carries the close packet of a closing session.
    final_write: bool,
    outputs: VecDeque<Output>,
}

impl ClientSession {
    /// A session opened at `now` on `transport` with the server's `handshake`.
    pub fn new(
        now: Instant,
        config: ClientConfig,
        transport: TransportKind,
        handshake: OpenPacket,
    ) -> Self {
        let mut session = Self::opened(now, config, transport, handshake);
        session.start_probe(now);
        session
    }

    fn opened(
        now: Instant,
        config: ClientConfig,
        transport: TransportKind,
        handshake: OpenPacket,
    ) -> Self {
        let ping_window = Duration::from_millis(
            handshake
                .ping_interval
                .saturating_add(handshake.ping_timeout),
        );
        let ping_interval = Duration::from_millis(handshake.ping_interval);
        let ping_timeout = Duration::from_millis(handshake.ping_timeout);
        let max_payload = usize::try_from(handshake.max_payload)
            .unwrap_or(usize::MAX)
            .max(1);
        ClientSession {
            config,
            handshake,
            ping_window,
            ping_interval,
            ping_timeout,
            next_ping: (config.protocol == Protocol::V3).then(|| now + ping_interval),
            max_payload,
            ready: Ready::Open,
            transport,
            ping_deadline: now + ping_window,
            probe: Probe::None,
            buffer: VecDeque::new(),
            polling: false,
            writing: false,
            final_write: false,
            outputs: VecDeque::new(),
        }
    }

    /// A session opened by a polling handshake: `body` is the answer to the first GET. The open packet
    /// comes first; the packets after it belong to the session (a bad one closes it with "parse error",
    /// as any later bad packet would).
    pub fn from_payload(
        now: Instant,
        config: ClientConfig,
        body: Bytes,
    ) -> Result<Self, HandshakeError> {
        let mut packets = decode_body(config.protocol, body)?;
        let first = packets.next().unwrap_or(Err(DecodeError::Empty))?;
        let open = parse_open(config.protocol, first)?;
        let mut session = Self::opened(now, config, TransportKind::Polling, open);
        for packet in packets {
            match packet {
                Ok(p) => session.on_packet(now, p),
                Err(_) => session.on_parse_error(),
            }
        }
        // The probe starts after what the handshake payload carried, and not at all once closed.
        if session.is_open() {
            session.start_probe(now);
        }
        Ok(session)
    }

    /// A session opened by a websocket handshake: `text` is the first text message.
    pub fn from_text(
        now: Instant,
        config: ClientConfig,
        text: ByteString,
    ) -> Result<Self, HandshakeError> {
        let open = parse_open(config.protocol, decode_text_as(config.protocol, text)?)?;
        Ok(Self::new(now, config, TransportKind::WebSocket, open))
    }

    /// The server's handshake document.
    pub fn handshake(&self) -> &OpenPacket {
        &self.handshake
    }

    /// The protocol revision spoken.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.handshake.sid
    }

    /// The transport the session runs on.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Whether the application may still send (not closing, not closed).
    pub fn is_open(&self) -> bool {
        self.ready == Ready::Open
    }

    /// Whether the session is over (the shell has been told to shut down).
    pub fn is_closed(&self) -> bool {
        self.ready == Ready::Closed
    }

    /// Whether the session takes more frames now. It takes them only when its buffer is empty and no
    /// write is in flight, so the frames the shell has not handed over yet wait in the shell's bounded
    /// queue, and a slow server fills that queue instead of this buffer.
    pub fn wants_frames(&self) -> bool {
        self.ready == Ready::Open && self.buffer.is_empty() && !self.writing
    }

    /// Queues a frame of the application. Ignored once closing.
    pub fn send(&mut self, frame: Frame) {
        if self.is_open() {
            self.buffer.push_back(frame);
        }
    }

    /// Closes the session at the application's request: "forced close" is reported at once; the queued
    /// frames go out, then the close packet (in a POST of its own over polling), then
    /// [`Output::Shutdown`], or at `close_timeout` whatever was left.
    pub fn close(&mut self, now: Instant) {
        if !self.is_open() {
            return;
        }
        self.outputs.push_back(Output::Event(Event::Close {
            reason: CloseReason::ForcedClose,
            detail: None,
        }));
        self.ready = Ready::Closing {
            deadline: now + self.config.close_timeout,
        };
        // An upgrade in progress is abandoned: the close goes out on the transport in use, and the
        // probe websocket goes with the rest at shutdown.
        self.probe = Probe::None;
        self.buffer.push_back(Frame::close());
    }

    /// When the shell must next call [`ClientSession::handle_timeout`], or `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.ready {
            Ready::Open => Some(
                [self.probe.deadline(), self.next_ping]
                    .into_iter()
                    .flatten()
                    .fold(self.ping_deadline, Instant::min),
            ),
            Ready::Closing { deadline } => Some(deadline),
            Ready::Closed => None,
        }
    }

    /// Handles every deadline that passed at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.ready {
            Ready::Closed => {}
            Ready::Closing { deadline } => {
                if now >= deadline {
                    self.shutdown();
                }
            }
            Ready::Open => {
                if now >= self.ping_deadline {
                    self.close_with(CloseReason::PingTimeout, None);
                    return;
                }
                if self.next_ping.is_some_and(|t| now >= t) {
                    // v3: the client pings; the server has `pingTimeout` to answer.
                    self.next_ping = None;
                    self.ping_deadline = now + self.ping_timeout;
                    self.buffer.push_back(Frame::ping());
                    self.outputs.push_back(Output::Event(Event::Ping));
                }
                if self.probe.deadline().is_some_and(|d| now >= d) {
                    self.drop_probe("probe timed out".into());
                }
            }
        }
    }

    /// The next thing the shell must do, `None` when there is nothing (until the next input).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        let paused = matches!(self.probe, Probe::Pausing { .. });
        match self.ready {
            Ready::Closed => return None,
            Ready::Open if self.transport == TransportKind::Polling && !self.polling && !paused => {
                self.polling = true;
                return Some(Output::Poll);
            }
            _ => {}
        }
        if self.writing || self.buffer.is_empty() || paused {
            return None;
        }
        self.writing = true;
        let out = match self.transport {
            TransportKind::Polling => Output::Post(self.payload()),
            TransportKind::WebSocket => {
                let n = self.buffer.len().min(self.config.max_write_batch.max(1));
                let frames = self.buffer.drain(..n);
                Output::Write(match self.config.protocol {
                    Protocol::V4 => frames.collect(),
                    // A v3 binary frame starts with its packet type.
                    Protocol::V3 => frames
                        .map(|f| match f {
                            Frame::Binary(b) => Frame::Binary(v3::binary_frame(&b)),
                            text => text,
                        })
                        .collect(),
                })
            }
        };
        // Nothing is queued behind the close packet of a closing session, so an empty buffer means that
        // this write carries it.
        self.final_write = matches!(self.ready, Ready::Closing { .. }) && self.buffer.is_empty();
        Some(out)
    }

    /// Cuts the next POST body off the front of the buffer: at most `maxPayload` bytes (a larger frame
    /// goes alone), and the close packet alone, since a server handles a payload's close packet before
    /// the packets beside it and would drop them.
    fn payload(&mut self) -> Bytes {
        match self.config.protocol {
            Protocol::V4 => {
                let mut enc = PayloadEncoder::new(self.max_payload);
                self.fill(&mut enc);
                enc.finish()
            }
            // Binary goes base64 in a string payload (`b4…`), which every v3 server reads whatever the
            // content type, as a `b64` client's POSTs do.
            Protocol::V3 => {
                let mut enc = v3::PayloadEncoder::new(self.max_payload, false);
                self.fill(&mut enc);
                enc.finish().body
            }
        }
    }

    /// Moves frames from the front of the buffer into `enc` while they fit.
    fn fill(&mut self, enc: &mut impl Records) {
        while let Some(f) = self.buffer.front() {
            let close = f.packet_type() == PacketType::Close;
            if close && !enc.is_empty() || !enc.push(f) {
                break;
            }
            self.buffer.pop_front();
            if close {
                break;
            }
        }
    }

    /// A packet arrived on the session's transport.
    pub fn on_packet(&mut self, now: Instant, packet: Packet) {
        if !self.is_open() {
            return;
        }
        let v3 = self.config.protocol == Protocol::V3;
        if v3 {
            // engine.io-client 3: any packet proves the server alive.
            self.ping_deadline = now + self.ping_window;
        }
        match packet {
            Packet::Message(data) => self.outputs.push_back(Output::Event(Event::Message(data))),
            Packet::Ping(None) if !v3 => {
                // Only the server's pings prove it alive; in v4 the client never pings.
                self.ping_deadline = now + self.ping_window;
                self.buffer
                    .push_back(Frame::text_packet(PacketType::Pong, ""));
                self.outputs.push_back(Output::Event(Event::Ping));
            }
            // The answer to the client's ping: the next one is due `pingInterval` later.
            Packet::Pong(None) if v3 => self.next_ping = Some(now + self.ping_interval),
            Packet::Close => self.close_with(CloseReason::TransportClose, None),
            // A second open packet, pongs (v4), pings (v3, where only the client pings), probe packets
            // on the main transport, upgrade and noop carry nothing for the client.
            Packet::Open(_)
            | Packet::Ping(_)
            | Packet::Pong(_)
            | Packet::Upgrade
            | Packet::Noop => {}
        }
    }

    /// A websocket text message arrived on the session's transport.
    pub fn on_text(&mut self, now: Instant, text: ByteString) {
        match decode_text_as(self.config.protocol, text) {
            Ok(p) => self.on_packet(now, p),
            Err(_) => self.on_parse_error(),
        }
    }

    /// A websocket binary message arrived on the session's transport.
    pub fn on_binary(&mut self, now: Instant, bytes: Bytes) {
        match self.config.protocol {
            Protocol::V4 => self.on_packet(now, decode_binary(bytes)),
            Protocol::V3 => match v3::decode_binary(bytes) {
                Ok(p) => self.on_packet(now, p),
                Err(_) => self.on_parse_error(),
            },
        }
    }

    /// Something the server sent could not be decoded.
    pub fn on_parse_error(&mut self) {
        if self.is_open() {
            self.close_with(CloseReason::ParseError, None);
        }
    }

    /// The polling GET ended: its body, or how it failed.
    pub fn on_poll(&mut self, now: Instant, result: Result<Bytes, TransportEnd>) {
        self.polling = false;
        if !self.is_open() {
            // A closing session no longer reads; the GET may well fail as the server closes.
            return;
        }
        match result {
            Ok(body) => match decode_body(self.config.protocol, body) {
                Ok(packets) => {
                    for packet in packets {
                        match packet {
                            Ok(p) => self.on_packet(now, p),
                            Err(_) => self.on_parse_error(),
                        }
                        if !self.is_open() {
                            return;
                        }
                    }
                }
                Err(_) => return self.on_parse_error(),
            },
            Err(end) => return self.on_transport_end(end),
        }
        self.finish_pause();
    }

    /// The POST in flight ended.
    pub fn on_post(&mut self, now: Instant, result: Result<(), TransportEnd>) {
        self.on_write(now, result);
        self.finish_pause();
    }

    /// The websocket write in flight ended (or the POST: the same rules apply).
    pub fn on_write(&mut self, _now: Instant, result: Result<(), TransportEnd>) {
        self.writing = false;
        match (self.ready, result) {
            (Ready::Closed, _) => {}
            (Ready::Closing { .. }, Ok(())) => {
                if std::mem::take(&mut self.final_write) {
                    self.shutdown();
                }
            }
            // Nothing more can be sent: the close is as done as it will be.
            (Ready::Closing { .. }, Err(_)) => self.shutdown(),
            (Ready::Open, Ok(())) => {}
            (Ready::Open, Err(end)) => self.on_transport_end(end),
        }
    }

    /// The session's transport ended (the websocket closed or failed).
    pub fn on_transport_end(&mut self, end: TransportEnd) {
        match self.ready {
            Ready::Closed => {}
            Ready::Closing { .. } => self.shutdown(),
            Ready::Open => match end {
                TransportEnd::Closed => self.close_with(CloseReason::TransportClose, None),
                TransportEnd::Error(e) => self.close_with(CloseReason::TransportError, Some(e)),
            },
        }
    }

    /// The probe websocket is open.
    pub fn on_probe_open(&mut self, _now: Instant) {
        if let Probe::Opening { deadline } = self.probe
            && self.is_open()
        {
            self.probe = Probe::Probing { deadline };
            self.outputs
                .push_back(Output::ProbeWrite(Frame::text_packet(
                    PacketType::Ping,
                    "probe",
                )));
        }
    }

    /// The packet that answered `2probe` on the probe websocket.
    pub fn on_probe_packet(&mut self, _now: Instant, packet: Packet) {
        let Probe::Probing { deadline } = self.probe else {
            return;
        };
        if !self.is_open() {
            return;
        }
        if matches!(&packet, Packet::Pong(Some(_)) if packet.is_probe()) {
            // No new request on polling from now on; the switch waits for those in flight.
            self.probe = Probe::Pausing { deadline };
            self.finish_pause();
        } else {
            self.drop_probe(format!(
                "probe error: unexpected {:?}",
                packet.packet_type()
            ));
        }
    }

    /// The probe websocket failed (could not open, closed, errored, or sent garbage).
    pub fn on_probe_error(&mut self, _now: Instant, error: String) {
        if self.probe != Probe::None && self.is_open() {
            self.drop_probe(error);
        }
    }

    fn start_probe(&mut self, now: Instant) {
        if self.config.upgrade
            && self.transport == TransportKind::Polling
            && self.handshake.upgrades.iter().any(|u| u == "websocket")
        {
            // The server gives up on a silent client within its heartbeat window, so a probe that takes
            // longer would be useless anyway.
            self.probe = Probe::Opening {
                deadline: now + self.ping_window,
            };
            self.outputs.push_back(Output::OpenProbe);
        }
    }

    fn drop_probe(&mut self, error: String) {
        self.probe = Probe::None;
        self.outputs.push_back(Output::DropProbe { error });
    }

    /// Switches to the probe websocket once polling is paused: no GET and no POST in flight.
    fn finish_pause(&mut self) {
        if !matches!(self.probe, Probe::Pausing { .. })
            || !self.is_open()
            || self.polling
            || self.writing
        {
            return;
        }
        self.probe = Probe::None;
        self.transport = TransportKind::WebSocket;
        // The upgrade packet goes first on the websocket, then whatever waited meanwhile, in order.
        self.buffer
            .push_front(Frame::text_packet(PacketType::Upgrade, ""));
        self.outputs.push_back(Output::SwitchToProbe);
        self.outputs
            .push_back(Output::Event(Event::Upgrade(TransportKind::WebSocket)));
    }

    fn close_with(&mut self, reason: CloseReason, detail: Option<String>) {
        if !self.is_open() {
            return;
        }
        self.outputs
            .push_back(Output::Event(Event::Close { reason, detail }));
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.ready = Ready::Closed;
        self.probe = Probe::None;
        self.buffer.clear();
        self.outputs.push_back(Output::Shutdown);
    }
}

/// A polling payload encoder of either revision.
trait Records {
    fn push(&mut self, frame: &Frame) -> bool;
    fn is_empty(&self) -> bool;
}

impl Records for PayloadEncoder {
    fn push(&mut self, frame: &Frame) -> bool {
        PayloadEncoder::push(self, frame)
    }
    fn is_empty(&self) -> bool {
        PayloadEncoder::is_empty(self)
    }
}

impl Records for v3::PayloadEncoder {
    fn push(&mut self, frame: &Frame) -> bool {
        v3::PayloadEncoder::push(self, frame)
    }
    fn is_empty(&self) -> bool {
        v3::PayloadEncoder::is_empty(self)
    }
}

type Packets = Box<dyn Iterator<Item = Result<Packet, DecodeError>>>;

/// Starts decoding a polling body. A v3 server answers with a binary payload (its first byte is the
/// `0`/`1` marker of a record) when a packet is binary and the client did not ask for base64, and with
/// a string payload (`<length>:<packet>`, its first byte a digit character) otherwise.
fn decode_body(protocol: Protocol, body: Bytes) -> Result<Packets, DecodeError> {
    Ok(match protocol {
        Protocol::V4 => Box::new(decode_payload(body)?),
        Protocol::V3 if matches!(body.first(), Some(0 | 1)) => {
            Box::new(v3::decode_binary_payload(body))
        }
        Protocol::V3 => {
            let text = ByteString::try_from(body).map_err(|_| DecodeError::InvalidUtf8)?;
            Box::new(v3::decode_string_payload(text))
        }
    })
}

fn decode_text_as(protocol: Protocol, text: ByteString) -> Result<Packet, DecodeError> {
    match protocol {
        Protocol::V4 => decode_text(text),
        Protocol::V3 => v3::decode_text(text),
    }
}

/// The v3 handshake document: no `maxPayload`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenV3 {
    sid: String,
    upgrades: Vec<String>,
    ping_interval: u64,
    ping_timeout: u64,
}

fn parse_open(protocol: Protocol, packet: Packet) -> Result<OpenPacket, HandshakeError> {
    let Packet::Open(json) = packet else {
        return Err(HandshakeError::NotOpen(packet.packet_type()));
    };
    let invalid = |e: serde_json::Error| HandshakeError::InvalidOpen(e.to_string());
    match protocol {
        Protocol::V4 => serde_json::from_str(&json).map_err(invalid),
        Protocol::V3 => {
            let open: OpenV3 = serde_json::from_str(&json).map_err(invalid)?;
            Ok(OpenPacket {
                sid: open.sid,
                upgrades: open.upgrades,
                ping_interval: open.ping_interval,
                ping_timeout: open.ping_timeout,
                max_payload: V3_MAX_PAYLOAD,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn open_json(upgrades: &[&str], max_payload: u64) -> String {
        let open = OpenPacket {
            sid: "s1".into(),
            upgrades: upgrades.iter().map(|u| u.to_string()).collect(),
            ping_interval: 300,
            ping_timeout: 200,
            max_payload,
        };
        let Frame::Text(t) = open.to_frame() else {
            unreachable!()
        };
        t.to_string()
    }

    fn polling(t0: Instant, upgrades: &[&str]) -> ClientSession {
        ClientSession::from_payload(
            t0,
            ClientConfig::default(),
            Bytes::from(open_json(upgrades, 1_000_000)),
        )
        .unwrap()
    }

    fn websocket(t0: Instant) -> ClientSession {
        ClientSession::from_text(
            t0,
            ClientConfig::default(),
            open_json(&[], 1_000_000).into(),
        )
        .unwrap()
    }

    fn drain(s: &mut ClientSession) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn text(s: &str) -> Frame {
        Frame::message(s)
    }

    fn close_event(reason: CloseReason, detail: Option<&str>) -> Output {
        Output::Event(Event::Close {
            reason,
            detail: detail.map(str::to_string),
        })
    }

    fn posted(outputs: &[Output]) -> Vec<Bytes> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Post(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn polling_handshake_polls_and_delivers_what_followed_the_open_packet() {
        let t0 = Instant::now();
        let body = format!("{}\x1e4hi\x1e2\x1ebAAE=", open_json(&[], 1_000_000));
        let mut s = ClientSession::from_payload(t0, ClientConfig::default(), body.into()).unwrap();
        assert_eq!(s.sid(), "s1");
        assert_eq!(s.transport(), TransportKind::Polling);
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("hi".into()))),
                Output::Event(Event::Ping),
                Output::Event(Event::Message(Data::Binary(Bytes::from_static(&[0, 1])))),
                Output::Poll,
                // The pong answering the ping of the handshake payload.
                Output::Post(Bytes::from_static(b"3")),
            ]
        );
        // One GET and one POST at a time.
        s.send(text("x"));
        assert_eq!(drain(&mut s), vec![]);
        s.on_post(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Post(Bytes::from_static(b"4x"))]);
    }

    #[test]
    fn bad_packet_after_the_open_packet_is_a_parse_error() {
        let t0 = Instant::now();
        let body = format!("{}\x1e4ok\x1e9bad", open_json(&["websocket"], 1_000_000));
        let mut s = ClientSession::from_payload(t0, ClientConfig::default(), body.into()).unwrap();
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("ok".into()))),
                close_event(CloseReason::ParseError, None),
                Output::Shutdown,
            ],
            "no poll and no probe once closed"
        );
        assert!(s.is_closed());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn handshake_errors() {
        let t0 = Instant::now();
        let cfg = ClientConfig::default();
        let payload = |b: &'static str| ClientSession::from_payload(t0, cfg, Bytes::from(b)).err();
        assert_eq!(
            payload("4not an open packet"),
            Some(HandshakeError::NotOpen(PacketType::Message))
        );
        assert_eq!(
            payload(""),
            Some(HandshakeError::Decode(DecodeError::Empty))
        );
        assert_eq!(
            payload("x{}"),
            Some(HandshakeError::Decode(DecodeError::UnknownType(b'x')))
        );
        assert!(matches!(
            payload("0{\"sid\":1}"),
            Some(HandshakeError::InvalidOpen(_))
        ));
        // A document without the timing fields is not a v4 handshake.
        assert!(matches!(
            payload("0{\"sid\":\"a\",\"upgrades\":[]}"),
            Some(HandshakeError::InvalidOpen(_))
        ));
        assert_eq!(
            ClientSession::from_payload(t0, cfg, Bytes::from_static(b"0\xff")).err(),
            Some(HandshakeError::Decode(DecodeError::InvalidUtf8))
        );
        assert_eq!(
            ClientSession::from_text(t0, cfg, "3probe".into()).err(),
            Some(HandshakeError::NotOpen(PacketType::Pong))
        );
        let s = ClientSession::from_text(t0, cfg, open_json(&[], 77).into()).unwrap();
        assert_eq!(s.handshake().max_payload, 77);
        assert_eq!(s.transport(), TransportKind::WebSocket);
    }

    #[test]
    fn ping_timeout_fires_after_interval_plus_timeout_without_a_ping() {
        let t0 = Instant::now();
        let mut s = websocket(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
        s.handle_timeout(t0 + 499 * MS);
        assert_eq!(drain(&mut s), vec![]);
        assert!(s.is_open());
        s.handle_timeout(t0 + 500 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::PingTimeout, None),
                Output::Shutdown
            ]
        );
        assert_eq!(s.poll_timeout(), None);
        // A late ping changes nothing.
        s.on_packet(t0 + 600 * MS, Packet::Ping(None));
        assert_eq!(drain(&mut s), vec![]);
    }

    #[test]
    fn a_ping_is_answered_and_resets_the_watchdog() {
        let t0 = Instant::now();
        let mut s = websocket(t0);
        let mut now = t0;
        for _ in 0..50 {
            now += 450 * MS;
            s.handle_timeout(now);
            s.on_text(now, "2".into());
            assert_eq!(s.poll_timeout(), Some(now + 500 * MS));
            assert_eq!(
                drain(&mut s),
                vec![
                    Output::Event(Event::Ping),
                    Output::Write(vec![Frame::text_packet(PacketType::Pong, "")]),
                ]
            );
            s.on_write(now, Ok(()));
        }
        assert!(s.is_open());
        // Pongs, noops and probe pings prove nothing: only the server's ping resets the watchdog.
        for p in ["3", "6", "2probe", "5"] {
            s.on_text(now + 100 * MS, p.into());
        }
        assert_eq!(drain(&mut s), vec![]);
        assert_eq!(s.poll_timeout(), Some(now + 500 * MS));
        s.handle_timeout(now + 500 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::PingTimeout, None),
                Output::Shutdown
            ]
        );
    }

    #[test]
    fn messages_close_and_parse_errors_on_websocket() {
        let t0 = Instant::now();
        let mut s = websocket(t0);
        s.on_text(t0, "4héllo".into());
        s.on_binary(t0, Bytes::from_static(b"\x00\xff"));
        s.on_text(t0, "1".into());
        s.on_text(t0, "4after".into());
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("héllo".into()))),
                Output::Event(Event::Message(Data::Binary(Bytes::from_static(
                    b"\x00\xff"
                )))),
                close_event(CloseReason::TransportClose, None),
                Output::Shutdown,
            ]
        );
        let mut s = websocket(t0);
        s.on_text(t0, "x".into());
        assert_eq!(
            drain(&mut s),
            vec![close_event(CloseReason::ParseError, None), Output::Shutdown]
        );
    }

    #[test]
    fn transport_failures_carry_their_detail_beside_the_reason() {
        let t0 = Instant::now();
        let mut s = polling(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        s.on_poll(t0, Err(TransportEnd::Error("connection reset".into())));
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::TransportError, Some("connection reset")),
                Output::Shutdown
            ]
        );
        let mut s = polling(t0, &[]);
        drain(&mut s);
        s.send(text("a"));
        assert_eq!(drain(&mut s), vec![Output::Post(Bytes::from_static(b"4a"))]);
        s.on_post(t0, Err(TransportEnd::Closed));
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::TransportClose, None),
                Output::Shutdown
            ]
        );
        let mut s = websocket(t0);
        s.on_transport_end(TransportEnd::Closed);
        s.on_transport_end(TransportEnd::Error("late".into()));
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::TransportClose, None),
                Output::Shutdown
            ],
            "closes once"
        );
        // An undecodable polling body.
        let mut s = polling(t0, &[]);
        drain(&mut s);
        s.on_poll(t0, Ok(Bytes::from_static(b"4ok\x1e\xff")));
        assert_eq!(
            drain(&mut s),
            vec![close_event(CloseReason::ParseError, None), Output::Shutdown]
        );
    }

    #[test]
    fn polls_again_after_each_answer() {
        let t0 = Instant::now();
        let mut s = polling(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        assert_eq!(drain(&mut s), vec![], "one GET at a time");
        s.on_poll(t0, Ok(Bytes::from_static(b"6")));
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        s.on_poll(t0, Ok(Bytes::from_static(b"4a\x1e4b")));
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("a".into()))),
                Output::Event(Event::Message(Data::Text("b".into()))),
                Output::Poll,
            ]
        );
    }

    #[test]
    fn post_bodies_respect_max_payload() {
        let t0 = Instant::now();
        let mut s = ClientSession::from_payload(
            t0,
            ClientConfig::default(),
            Bytes::from(open_json(&[], 10)),
        )
        .unwrap();
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        for f in ["abcd", "abc", "x", "this one is too long", "y"] {
            s.send(text(f));
        }
        s.send(Frame::binary(vec![1u8, 2, 3, 4]));
        let mut bodies = vec![];
        loop {
            let out = drain(&mut s);
            if out.is_empty() {
                break;
            }
            bodies.extend(posted(&out));
            assert_eq!(out.len(), 1, "one POST at a time: {out:?}");
            s.on_post(t0, Ok(()));
        }
        assert_eq!(
            bodies,
            vec![
                Bytes::from_static(b"4abcd\x1e4abc"),
                Bytes::from_static(b"4x"),
                // Larger than maxPayload on its own: it still goes, alone.
                Bytes::from_static(b"4this one is too long"),
                Bytes::from_static(b"4y"),
                Bytes::from_static(b"bAQIDBA=="),
            ]
        );
        assert!(bodies.iter().all(|b| b.len() <= 10 || !b.contains(&0x1e)));
    }

    #[test]
    fn takes_frames_only_when_the_writer_is_free() {
        let t0 = Instant::now();
        let mut s = websocket(t0);
        assert!(s.wants_frames());
        s.send(text("a"));
        assert!(!s.wants_frames(), "the buffer holds a frame");
        assert_eq!(drain(&mut s), vec![Output::Write(vec![text("a")])]);
        assert!(!s.wants_frames(), "a write is in flight");
        s.on_write(t0, Ok(()));
        assert!(s.wants_frames());
        // Batches are bounded.
        let cfg = ClientConfig {
            max_write_batch: 2,
            ..ClientConfig::default()
        };
        let mut s = ClientSession::from_text(t0, cfg, open_json(&[], 100).into()).unwrap();
        for f in ["a", "b", "c"] {
            s.send(text(f));
        }
        assert_eq!(
            drain(&mut s),
            vec![Output::Write(vec![text("a"), text("b")])]
        );
        s.on_write(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Write(vec![text("c")])]);
        s.on_write(t0, Err(TransportEnd::Error("broken pipe".into())));
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::TransportError, Some("broken pipe")),
                Output::Shutdown
            ]
        );
        assert!(!s.wants_frames());
    }

    #[test]
    fn close_sends_queued_packets_then_the_close_packet_in_its_own_post() {
        let t0 = Instant::now();
        let mut s = polling(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        s.send(text("first"));
        assert_eq!(
            drain(&mut s),
            vec![Output::Post(Bytes::from_static(b"4first"))]
        );
        // Queued while the first POST is in flight.
        s.send(text("a"));
        s.send(text("b"));
        s.close(t0);
        s.send(text("after close"));
        assert!(!s.is_open());
        assert!(!s.wants_frames());
        assert_eq!(
            drain(&mut s),
            vec![close_event(CloseReason::ForcedClose, None)],
            "the application hears of the close at once; the POST in flight is awaited"
        );
        s.on_post(t0, Ok(()));
        assert_eq!(
            drain(&mut s),
            vec![Output::Post(Bytes::from_static(b"4a\x1e4b"))]
        );
        // The GET in flight ends as the server closes; it is not read and no new GET starts.
        s.on_poll(t0, Ok(Bytes::from_static(b"4ignored")));
        assert_eq!(drain(&mut s), vec![]);
        s.on_post(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Post(Bytes::from_static(b"1"))]);
        assert!(!s.is_closed(), "the close packet is in flight");
        s.on_post(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Shutdown]);
        assert!(s.is_closed());
        s.close(t0);
        assert_eq!(drain(&mut s), vec![], "closes once");
    }

    #[test]
    fn close_on_websocket_and_its_timeout() {
        let t0 = Instant::now();
        let mut s = websocket(t0);
        s.send(text("a"));
        s.close(t0);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::ForcedClose, None),
                Output::Write(vec![text("a"), Frame::close()]),
            ]
        );
        s.on_write(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Shutdown]);

        // A server that never takes the close packet: the session gives up at close_timeout.
        let mut s = polling(t0, &[]);
        drain(&mut s);
        s.close(t0 + 10 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::ForcedClose, None),
                Output::Post(Bytes::from_static(b"1")),
            ]
        );
        let deadline = t0 + 10 * MS + ClientConfig::default().close_timeout;
        assert_eq!(
            s.poll_timeout(),
            Some(deadline),
            "no ping timeout while closing"
        );
        s.handle_timeout(deadline - MS);
        assert_eq!(drain(&mut s), vec![]);
        s.handle_timeout(deadline);
        assert_eq!(drain(&mut s), vec![Output::Shutdown]);
        // A failed POST ends the close at once.
        let mut s = polling(t0, &[]);
        drain(&mut s);
        s.close(t0);
        drain(&mut s);
        s.on_post(t0, Err(TransportEnd::Error("reset".into())));
        assert_eq!(drain(&mut s), vec![Output::Shutdown]);
    }

    /// Polling with an upgrade offered: the probe is opened and answered.
    fn probed(t0: Instant) -> ClientSession {
        let mut s = polling(t0, &["websocket"]);
        assert_eq!(drain(&mut s), vec![Output::OpenProbe, Output::Poll]);
        s.on_probe_open(t0);
        assert_eq!(
            drain(&mut s),
            vec![Output::ProbeWrite(Frame::text_packet(
                PacketType::Ping,
                "probe"
            ))]
        );
        s
    }

    #[test]
    fn upgrade_waits_for_the_get_and_post_in_flight_then_flushes_in_order() {
        let t0 = Instant::now();
        let mut s = probed(t0);
        s.send(text("m1"));
        assert_eq!(
            drain(&mut s),
            vec![Output::Post(Bytes::from_static(b"4m1"))]
        );
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        // Paused: GET and POST still in flight, nothing new starts; frames wait in the buffer.
        assert_eq!(drain(&mut s), vec![]);
        s.on_post(t0, Ok(()));
        s.send(text("m2"));
        assert_eq!(drain(&mut s), vec![], "no POST while pausing");
        assert_eq!(s.transport(), TransportKind::Polling);
        // The server ends the pending GET (with a noop and a message); no new GET starts.
        s.on_poll(t0, Ok(Bytes::from_static(b"4late\x1e6")));
        s.send(text("m3"));
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("late".into()))),
                Output::SwitchToProbe,
                Output::Event(Event::Upgrade(TransportKind::WebSocket)),
                Output::Write(vec![
                    Frame::text_packet(PacketType::Upgrade, ""),
                    text("m2"),
                    text("m3"),
                ]),
            ]
        );
        assert_eq!(s.transport(), TransportKind::WebSocket);
        s.on_write(t0, Ok(()));
        // From now on, everything goes over the websocket; no probe deadline is left.
        s.send(text("m4"));
        assert_eq!(drain(&mut s), vec![Output::Write(vec![text("m4")])]);
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
    }

    #[test]
    fn upgrade_with_nothing_in_flight_but_the_get() {
        let t0 = Instant::now();
        let mut s = probed(t0);
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        assert_eq!(drain(&mut s), vec![], "the GET is still in flight");
        s.on_poll(t0, Ok(Bytes::from_static(b"6")));
        assert_eq!(
            drain(&mut s),
            vec![
                Output::SwitchToProbe,
                Output::Event(Event::Upgrade(TransportKind::WebSocket)),
                Output::Write(vec![Frame::text_packet(PacketType::Upgrade, "")]),
            ]
        );
    }

    #[test]
    fn failed_probe_keeps_polling() {
        let t0 = Instant::now();
        // The probe websocket could not open.
        let mut s = polling(t0, &["websocket"]);
        assert_eq!(drain(&mut s), vec![Output::OpenProbe, Output::Poll]);
        s.on_probe_error(t0, "http status 400".into());
        assert_eq!(
            drain(&mut s),
            vec![Output::DropProbe {
                error: "http status 400".into()
            }]
        );
        s.send(text("still polling"));
        assert_eq!(
            drain(&mut s),
            vec![Output::Post(Bytes::from_static(b"4still polling"))]
        );
        // A wrong answer to the probe.
        let mut s = probed(t0);
        s.on_probe_packet(t0, Packet::Message(Data::Text("x".into())));
        assert!(matches!(&drain(&mut s)[..], [Output::DropProbe { .. }]));
        s.on_poll(t0, Ok(Bytes::from_static(b"6")));
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        assert_eq!(s.transport(), TransportKind::Polling);
        // Late probe reports are ignored.
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        s.on_probe_open(t0);
        s.on_probe_error(t0, "late".into());
        assert_eq!(drain(&mut s), vec![]);
    }

    #[test]
    fn timed_out_probe_keeps_polling_even_while_pausing() {
        let t0 = Instant::now();
        let mut s = probed(t0);
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        s.send(text("waiting"));
        assert_eq!(drain(&mut s), vec![]);
        // The server never ends the pending GET: the probe deadline (the heartbeat window) passes.
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
        s.on_poll(t0 + 100 * MS, Ok(Bytes::from_static(b"2")));
        // The ping moved the watchdog, not the probe deadline; and the GET ended, so the switch happens.
        assert!(matches!(
            &drain(&mut s)[..],
            [Output::Event(Event::Ping), Output::SwitchToProbe, ..]
        ));

        let mut s = probed(t0);
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        s.send(text("waiting"));
        s.handle_timeout(t0 + 499 * MS);
        assert_eq!(drain(&mut s), vec![]);
        // A ping keeps the session alive past the probe deadline.
        s.on_packet(t0 + 400 * MS, Packet::Ping(None));
        s.handle_timeout(t0 + 500 * MS);
        let out = drain(&mut s);
        assert_eq!(
            out,
            vec![
                Output::Event(Event::Ping),
                Output::DropProbe {
                    error: "probe timed out".into()
                },
                Output::Post(Bytes::from_static(b"4waiting\x1e3")),
            ],
            "polling resumes: the buffered frames and the pong go by POST"
        );
        assert!(s.is_open());
        assert_eq!(s.transport(), TransportKind::Polling);
        s.on_poll(t0 + 600 * MS, Ok(Bytes::from_static(b"6")));
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        assert_eq!(s.poll_timeout(), Some(t0 + 900 * MS));
    }

    #[test]
    fn no_probe_when_not_offered_or_disabled() {
        let t0 = Instant::now();
        let mut s = polling(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        let cfg = ClientConfig {
            upgrade: false,
            ..ClientConfig::default()
        };
        let mut s = ClientSession::from_payload(t0, cfg, Bytes::from(open_json(&["websocket"], 9)))
            .unwrap();
        assert_eq!(drain(&mut s), vec![Output::Poll]);
    }

    #[test]
    fn close_during_an_upgrade_abandons_it() {
        let t0 = Instant::now();
        let mut s = probed(t0);
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        s.send(text("last"));
        s.close(t0);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::ForcedClose, None),
                Output::Post(Bytes::from_static(b"4last")),
            ],
            "the close goes over polling, without waiting for the pause"
        );
        s.on_poll(t0, Ok(Bytes::from_static(b"6")));
        s.on_post(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Post(Bytes::from_static(b"1"))]);
        s.on_post(t0, Ok(()));
        assert_eq!(drain(&mut s), vec![Output::Shutdown]);
    }

    #[test]
    fn ping_timeout_during_the_pause() {
        let t0 = Instant::now();
        let mut s = probed(t0);
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        s.handle_timeout(t0 + 500 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::PingTimeout, None),
                Output::Shutdown
            ]
        );
    }

    // ---- Engine.IO v3 (engine.io 3.x / socket.io 2.x servers) ----

    fn v3_config() -> ClientConfig {
        ClientConfig {
            protocol: Protocol::V3,
            ..ClientConfig::default()
        }
    }

    /// A v3 open packet: no `maxPayload`.
    fn open_v3(upgrades: &[&str]) -> String {
        let upgrades: Vec<String> = upgrades.iter().map(|u| format!("\"{u}\"")).collect();
        format!(
            r#"0{{"sid":"s3","upgrades":[{}],"pingInterval":300,"pingTimeout":200}}"#,
            upgrades.join(",")
        )
    }

    /// `<length in UTF-16 units>:<packet>` for each packet.
    fn string_payload(packets: &[&str]) -> Bytes {
        packets
            .iter()
            .map(|p| format!("{}:{p}", p.encode_utf16().count()))
            .collect::<String>()
            .into()
    }

    fn polling_v3(t0: Instant, upgrades: &[&str]) -> ClientSession {
        ClientSession::from_payload(t0, v3_config(), string_payload(&[&open_v3(upgrades)])).unwrap()
    }

    #[test]
    fn v3_polling_handshake_reads_string_payloads() {
        let t0 = Instant::now();
        let body = string_payload(&[&open_v3(&[]), "40", "4héllo 😀", "b4AAE="]);
        let mut s = ClientSession::from_payload(t0, v3_config(), body).unwrap();
        assert_eq!(s.protocol(), Protocol::V3);
        assert_eq!(s.sid(), "s3");
        assert_eq!(s.handshake().max_payload, V3_MAX_PAYLOAD);
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("0".into()))),
                Output::Event(Event::Message(Data::Text("héllo 😀".into()))),
                Output::Event(Event::Message(Data::Binary(Bytes::from_static(&[0, 1])))),
                Output::Poll,
            ]
        );
        // A v4 open packet is not what a v3 session reads, nor the other way round.
        assert!(
            ClientSession::from_payload(
                t0,
                ClientConfig::default(),
                string_payload(&[&open_v3(&[])])
            )
            .is_err()
        );
        assert!(
            ClientSession::from_payload(t0, v3_config(), Bytes::from(open_json(&[], 10))).is_err()
        );
    }

    #[test]
    fn v3_reads_binary_payloads() {
        let t0 = Instant::now();
        let mut s = polling_v3(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        // `0` text record of 3 bytes `451`… then a `1` binary record: type byte 4 and the data.
        let mut body = vec![0u8, 3, 255];
        body.extend_from_slice(b"4hi");
        body.extend_from_slice(&[1, 4, 255, 4, 0xde, 0xad, 0xff]);
        s.on_poll(t0, Ok(Bytes::from(body)));
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Text("hi".into()))),
                Output::Event(Event::Message(Data::Binary(Bytes::from_static(&[
                    0xde, 0xad, 0xff
                ])))),
                Output::Poll,
            ]
        );
        // A truncated binary record is a parse error.
        s.on_poll(t0, Ok(Bytes::from_static(&[1, 9, 255, 4, 1])));
        assert_eq!(
            drain(&mut s),
            vec![close_event(CloseReason::ParseError, None), Output::Shutdown]
        );
    }

    #[test]
    fn v3_bad_payloads_close_with_parse_error() {
        let t0 = Instant::now();
        for bad in [
            &b"5:4abc"[..],     // shorter than announced
            b"x:4a",            // no length
            b"2:4a1:",          // a record cut short
            b"3:b7AAE",         // base64 binary of an unknown packet type
            b"\xff\xfe",        // not UTF-8, not a binary payload
            b"99999999999999:", // too many digits
        ] {
            let mut s = polling_v3(t0, &[]);
            drain(&mut s);
            s.on_poll(t0, Ok(Bytes::from_static(bad)));
            // The records before the bad one are delivered; the bad one closes the session.
            assert!(
                drain(&mut s)
                    .ends_with(&[close_event(CloseReason::ParseError, None), Output::Shutdown]),
                "{bad:?}"
            );
        }
        // A websocket binary frame must start with the message type.
        let mut s = ClientSession::from_text(t0, v3_config(), open_v3(&[]).into()).unwrap();
        s.on_binary(t0, Bytes::from_static(&[9, 1, 2]));
        assert_eq!(
            drain(&mut s),
            vec![close_event(CloseReason::ParseError, None), Output::Shutdown]
        );
    }

    #[test]
    fn v3_posts_string_payloads_with_utf16_lengths() {
        let t0 = Instant::now();
        let mut s = polling_v3(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        s.send(text("2[\"é😀\"]"));
        s.send(Frame::binary(vec![1u8, 2, 3, 4]));
        assert_eq!(
            drain(&mut s),
            vec![Output::Post(Bytes::from(
                "9:42[\"é😀\"]10:b4AQIDBA==".to_string()
            ))]
        );
    }

    #[test]
    fn v3_client_pings_and_times_out_without_pong() {
        let t0 = Instant::now();
        let mut s = polling_v3(t0, &[]);
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        // The first ping is due pingInterval after the open packet.
        assert_eq!(s.poll_timeout(), Some(t0 + 300 * MS));
        s.handle_timeout(t0 + 299 * MS);
        assert_eq!(drain(&mut s), vec![]);
        s.handle_timeout(t0 + 300 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Ping),
                Output::Post(Bytes::from_static(b"1:2"))
            ]
        );
        s.on_post(t0 + 300 * MS, Ok(()));
        // The server has pingTimeout to answer.
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
        s.on_poll(t0 + 350 * MS, Ok(string_payload(&["3"])));
        assert_eq!(drain(&mut s), vec![Output::Poll]);
        // The pong sets the next ping pingInterval later; the server is alive for the whole window.
        assert_eq!(s.poll_timeout(), Some(t0 + 650 * MS));
        s.handle_timeout(t0 + 650 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Ping),
                Output::Post(Bytes::from_static(b"1:2"))
            ]
        );
        // No pong, but a message: any packet proves the server alive for pingInterval + pingTimeout.
        s.on_poll(t0 + 800 * MS, Ok(string_payload(&["4x"])));
        drain(&mut s);
        assert_eq!(s.poll_timeout(), Some(t0 + 1300 * MS));
        s.handle_timeout(t0 + 1299 * MS);
        assert_eq!(drain(&mut s), vec![], "no second ping before the pong");
        s.handle_timeout(t0 + 1300 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::PingTimeout, None),
                Output::Shutdown
            ]
        );
    }

    #[test]
    fn v3_server_pings_are_not_answered() {
        let t0 = Instant::now();
        let mut s = ClientSession::from_text(t0, v3_config(), open_v3(&[]).into()).unwrap();
        s.on_text(t0 + 10 * MS, "2".into());
        assert_eq!(drain(&mut s), vec![], "in v3 only the client pings");
        s.handle_timeout(t0 + 300 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Ping),
                Output::Write(vec![Frame::ping()])
            ]
        );
        s.on_write(t0 + 300 * MS, Ok(()));
        s.handle_timeout(t0 + 499 * MS);
        assert_eq!(drain(&mut s), vec![]);
        s.handle_timeout(t0 + 500 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                close_event(CloseReason::PingTimeout, None),
                Output::Shutdown
            ]
        );
    }

    #[test]
    fn v3_websocket_frames() {
        let t0 = Instant::now();
        let mut s = ClientSession::from_text(t0, v3_config(), open_v3(&[]).into()).unwrap();
        s.on_binary(t0, Bytes::from_static(&[4, 7, 8]));
        s.on_text(t0, "b4AQI=".into());
        s.on_text(t0, "4text".into());
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Message(Data::Binary(Bytes::from_static(&[7, 8])))),
                Output::Event(Event::Message(Data::Binary(Bytes::from_static(&[1, 2])))),
                Output::Event(Event::Message(Data::Text("text".into()))),
            ]
        );
        s.send(text("a"));
        s.send(Frame::binary(vec![9u8]));
        assert_eq!(
            drain(&mut s),
            vec![Output::Write(vec![
                text("a"),
                Frame::Binary(Bytes::from_static(&[4, 9]))
            ])]
        );
    }

    #[test]
    fn v3_upgrade() {
        let t0 = Instant::now();
        let mut s = polling_v3(t0, &["websocket"]);
        assert_eq!(drain(&mut s), vec![Output::OpenProbe, Output::Poll]);
        s.on_probe_open(t0);
        assert_eq!(
            drain(&mut s),
            vec![Output::ProbeWrite(Frame::text_packet(
                PacketType::Ping,
                "probe"
            ))]
        );
        s.on_probe_packet(t0, Packet::Pong(Some("probe".into())));
        s.send(Frame::binary(vec![5u8]));
        assert_eq!(drain(&mut s), vec![], "paused while the GET is in flight");
        s.on_poll(t0, Ok(string_payload(&["6"])));
        assert_eq!(
            drain(&mut s),
            vec![
                Output::SwitchToProbe,
                Output::Event(Event::Upgrade(TransportKind::WebSocket)),
                Output::Write(vec![
                    Frame::text_packet(PacketType::Upgrade, ""),
                    Frame::Binary(Bytes::from_static(&[4, 5])),
                ]),
            ]
        );
        // The heartbeat goes on over the websocket.
        s.on_write(t0, Ok(()));
        s.handle_timeout(t0 + 300 * MS);
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Event(Event::Ping),
                Output::Write(vec![Frame::ping()])
            ]
        );
    }
}
