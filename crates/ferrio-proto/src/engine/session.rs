//! The server side of one Engine.IO session as a state machine of `(now, input)`.
//!
//! The shell feeds it packets and asks `poll_timeout()` when it next needs attention; at that instant it
//! calls `handle_timeout(now)` until it returns `None`. Heartbeats, the upgrade window and the graceful
//! close window are states here, not timers: one sleep per session in the shell covers all of them.

use std::time::{Duration, Instant};

use super::packet::{Data, Packet};

/// Timing of a session, from the server options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Time between the server's pings (`ping_interval`, 25 s by default).
    pub ping_interval: Duration,
    /// Time the client has to answer a ping (`ping_timeout`, 20 s by default).
    pub ping_timeout: Duration,
    /// Time the client has to finish an upgrade once the probe websocket is open (`upgrade_timeout`, 10 s).
    pub upgrade_timeout: Duration,
    /// Time a graceful close waits for the queued packets to be fetched by a poll.
    pub close_timeout: Duration,
    /// The Engine.IO protocol revision the client speaks (its `EIO` query parameter).
    pub protocol: Protocol,
}

/// The Engine.IO protocol revision of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// v3 (engine.io 3.x, socket.io 2.x clients): the client pings, the server answers; the server
    /// closes the session when no ping came within `ping_interval + ping_timeout`.
    V3,
    /// v4 (engine.io 4+, socket.io 3+ clients): the server pings, the client answers.
    #[default]
    V4,
}

impl Protocol {
    /// Reads the `EIO` query parameter: `4` or `3`. engine.io takes anything but `4` (even nothing) for
    /// v3; only the explicit `3` is v3 here, so a missing or malformed version is refused (code 5) on
    /// every server, as the v4 test suite expects.
    pub fn from_query(eio: Option<&str>) -> Option<Protocol> {
        match eio {
            Some("4") => Some(Protocol::V4),
            Some("3") => Some(Protocol::V3),
            _ => None,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            close_timeout: Duration::from_millis(30_000),
            protocol: Protocol::V4,
        }
    }
}

/// The transport a session currently uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }

    /// Parses the `transport` query parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }
}

/// Why a session closed, with the official Engine.IO reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the session (close packet, or its connection ended cleanly).
    TransportClose,
    /// The transport failed or the client broke a protocol rule (overlapping polls, a slow consumer, …).
    TransportError,
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client sent a packet that could not be decoded.
    ParseError,
    /// The server closed the session.
    ForcedClose,
}

impl CloseReason {
    /// The official reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a packet on the session's transport means for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Application data to hand to the user.
    Message(Data),
    /// Nothing to do (a pong, a noop).
    Nothing,
    /// A v3 client pinged: answer with a pong.
    SendPong,
    /// The session is now closed for this reason.
    Close(CloseReason),
}

/// A deadline that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Send a ping now; a pong is expected within `ping_timeout`.
    SendPing,
    /// No pong came: the session is closed with "ping timeout".
    PingTimedOut,
    /// The upgrade did not complete in time: drop the probe transport, keep polling.
    UpgradeTimedOut,
    /// A graceful close waited too long for its last packets to be fetched: the session is closed.
    CloseTimedOut,
}

/// What a packet on the probe transport (the websocket being upgraded to) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Answer `3probe` on the probe transport and end the pending poll with a noop.
    SendProbePong,
    /// The session now runs on the probe transport.
    Upgraded,
    /// Anything else: drop the probe transport.
    Abort,
}

/// Why an upgrade cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The session is not open.
    #[error("session is not open")]
    NotOpen,
    /// Another probe is already under way.
    #[error("an upgrade is already in progress")]
    AlreadyUpgrading,
    /// The session already runs on websocket.
    #[error("the session was already upgraded")]
    AlreadyUpgraded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    Waiting {
        ping_at: Instant,
    },
    AwaitingPong {
        deadline: Instant,
    },
    /// v3: the client pings; without a ping by `deadline` the session times out.
    AwaitingPing {
        deadline: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    Open,
    Closing { deadline: Instant },
    Closed(CloseReason),
}

/// One Engine.IO session, server side (v4, or v3 with its reversed heartbeat).
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    ready: Ready,
    transport: TransportKind,
    heartbeat: Heartbeat,
    upgrade_deadline: Option<Instant>,
    /// The probe ping was answered: polls must not wait any more, so the client can pause polling.
    probed: bool,
    /// The shell stopped reading from the client (its handlers are behind): a pong may be waiting unread,
    /// so the ping timeout must not count this time against the client.
    reader_paused: bool,
}

impl Session {
    /// A session opened at `now` on `transport`; its first ping is due `ping_interval` later (v4), or
    /// the client's first ping within `ping_interval + ping_timeout` (v3).
    pub fn new(now: Instant, config: SessionConfig, transport: TransportKind) -> Self {
        let heartbeat = match config.protocol {
            Protocol::V4 => Heartbeat::Waiting {
                ping_at: now + config.ping_interval,
            },
            Protocol::V3 => Heartbeat::AwaitingPing {
                deadline: now + config.ping_interval + config.ping_timeout,
            },
        };
        Session {
            config,
            ready: Ready::Open,
            transport,
            heartbeat,
            upgrade_deadline: None,
            probed: false,
            reader_paused: false,
        }
    }

    /// The session's timing.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The protocol revision.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    /// The current transport.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Whether packets may still be sent (open, not closing or closed).
    pub fn is_open(&self) -> bool {
        matches!(self.ready, Ready::Open)
    }

    /// Whether the session has closed, and why.
    pub fn closed(&self) -> Option<CloseReason> {
        match self.ready {
            Ready::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// Whether a probe transport is being upgraded to.
    pub fn is_upgrading(&self) -> bool {
        self.upgrade_deadline.is_some()
    }

    /// Whether the probe of an upgrade was answered and the upgrade packet is awaited: pending and new
    /// polls are answered at once (with a noop when nothing is queued).
    pub fn is_probed(&self) -> bool {
        self.upgrade_deadline.is_some() && self.probed
    }

    /// When the shell must next call `handle_timeout`, or `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let beat = match self.heartbeat {
            Heartbeat::Waiting { ping_at } => Some(ping_at),
            Heartbeat::AwaitingPong { .. } | Heartbeat::AwaitingPing { .. }
                if self.reader_paused =>
            {
                None
            }
            Heartbeat::AwaitingPong { deadline } | Heartbeat::AwaitingPing { deadline } => {
                Some(deadline)
            }
        };
        let ready = match self.ready {
            Ready::Open => None,
            Ready::Closing { deadline } => Some(deadline),
            Ready::Closed(_) => return None,
        };
        [beat, ready, self.upgrade_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handles the first deadline that passed at `now`, if any. Call until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        if let Ready::Closing { deadline } = self.ready
            && now >= deadline
        {
            self.ready = Ready::Closed(CloseReason::ForcedClose);
            return Some(Timeout::CloseTimedOut);
        }
        if self.closed().is_some() {
            return None;
        }
        if let Some(deadline) = self.upgrade_deadline
            && now >= deadline
        {
            self.upgrade_deadline = None;
            return Some(Timeout::UpgradeTimedOut);
        }
        match self.heartbeat {
            Heartbeat::Waiting { ping_at } if now >= ping_at => {
                self.heartbeat = Heartbeat::AwaitingPong {
                    deadline: now + self.config.ping_timeout,
                };
                Some(Timeout::SendPing)
            }
            Heartbeat::AwaitingPong { deadline } | Heartbeat::AwaitingPing { deadline }
                if now >= deadline && !self.reader_paused =>
            {
                self.ready = Ready::Closed(CloseReason::PingTimeout);
                self.upgrade_deadline = None;
                Some(Timeout::PingTimedOut)
            }
            _ => None,
        }
    }

    /// Handles a packet that arrived on the session's transport.
    pub fn on_packet(&mut self, now: Instant, packet: Packet) -> Received {
        if self.closed().is_some() {
            return Received::Nothing;
        }
        match (self.config.protocol, packet) {
            (Protocol::V3, Packet::Ping(_)) => {
                // Each ping gives the client a new full window; a probe ping is answered by the probe
                // transport, never here, so its payload needs no echo.
                self.heartbeat = Heartbeat::AwaitingPing {
                    deadline: now + self.config.ping_interval + self.config.ping_timeout,
                };
                Received::SendPong
            }
            // In v3 only the client pings: a pong from it breaks the protocol.
            (Protocol::V3, Packet::Pong(_)) => self.close(CloseReason::TransportError),
            (_, Packet::Pong(_)) => {
                // An unsolicited pong changes nothing: it must not postpone the next ping.
                if let Heartbeat::AwaitingPong { .. } = self.heartbeat {
                    self.heartbeat = Heartbeat::Waiting {
                        ping_at: now + self.config.ping_interval,
                    };
                }
                Received::Nothing
            }
            // In v4 only the server pings; a client ping breaks the protocol.
            (_, Packet::Ping(_)) => self.close(CloseReason::TransportError),
            // As engine.io: once the server started closing, what the client still sends is ignored
            // (a handler that closed the session must not see the messages queued behind).
            (_, Packet::Message(data)) if self.is_open() => Received::Message(data),
            (_, Packet::Message(_)) => Received::Nothing,
            (_, Packet::Close) => self.close(CloseReason::TransportClose),
            (_, Packet::Open(_) | Packet::Upgrade | Packet::Noop) => Received::Nothing,
        }
    }

    /// Records that the session closed for `reason`; returns `Received::Close` the first time only.
    pub fn close(&mut self, reason: CloseReason) -> Received {
        if self.closed().is_some() {
            return Received::Nothing;
        }
        self.ready = Ready::Closed(reason);
        self.upgrade_deadline = None;
        Received::Close(reason)
    }

    /// The shell stops reading from the client for a while (backpressure from busy handlers): no ping
    /// timeout fires until `resume_reader`.
    pub fn pause_reader(&mut self) {
        self.reader_paused = true;
    }

    /// The shell reads again: a pong still expected gets a fresh `ping_timeout` from `now`, since it may
    /// have been sitting unread behind the backlog.
    pub fn resume_reader(&mut self, now: Instant) {
        self.reader_paused = false;
        if let Heartbeat::AwaitingPong { deadline } | Heartbeat::AwaitingPing { deadline } =
            &mut self.heartbeat
        {
            *deadline = (*deadline).max(now + self.config.ping_timeout);
        }
    }

    /// Starts a graceful server close: no new packets; the queued ones may still be fetched until
    /// `close_timeout`. Returns false when the session was not open.
    pub fn start_closing(&mut self, now: Instant) -> bool {
        if !self.is_open() {
            return false;
        }
        self.ready = Ready::Closing {
            deadline: now + self.config.close_timeout,
        };
        true
    }

    /// A websocket asks to take over this polling session.
    pub fn begin_upgrade(&mut self, now: Instant) -> Result<(), UpgradeError> {
        if !self.is_open() {
            return Err(UpgradeError::NotOpen);
        }
        if self.transport == TransportKind::WebSocket {
            return Err(UpgradeError::AlreadyUpgraded);
        }
        if self.upgrade_deadline.is_some() {
            return Err(UpgradeError::AlreadyUpgrading);
        }
        self.upgrade_deadline = Some(now + self.config.upgrade_timeout);
        self.probed = false;
        Ok(())
    }

    /// Handles a packet that arrived on the probe transport.
    pub fn on_probe_packet(&mut self, packet: &Packet) -> ProbeOutcome {
        if self.upgrade_deadline.is_none() || self.closed().is_some() {
            return ProbeOutcome::Abort;
        }
        match packet {
            Packet::Ping(_) if packet.is_probe() => {
                self.probed = true;
                ProbeOutcome::SendProbePong
            }
            Packet::Upgrade => {
                self.upgrade_deadline = None;
                self.transport = TransportKind::WebSocket;
                ProbeOutcome::Upgraded
            }
            _ => {
                self.upgrade_deadline = None;
                ProbeOutcome::Abort
            }
        }
    }

    /// The probe transport went away before the upgrade completed.
    pub fn abort_upgrade(&mut self) {
        self.upgrade_deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> SessionConfig {
        SessionConfig {
            ping_interval: 300 * MS,
            ping_timeout: 200 * MS,
            upgrade_timeout: 1000 * MS,
            close_timeout: 500 * MS,
            protocol: Protocol::V4,
        }
    }

    fn config_v3() -> SessionConfig {
        SessionConfig {
            protocol: Protocol::V3,
            ..config()
        }
    }

    #[test]
    fn v3_client_pings_and_server_answers() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config_v3(), TransportKind::Polling);
        assert_eq!(s.protocol(), Protocol::V3);
        // No server ping ever: the only deadline is the client's, interval + timeout away.
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
        assert!(advance(&mut s, t0 + 499 * MS).is_empty());
        let mut now = t0 + 400 * MS;
        for _ in 0..50 {
            assert_eq!(s.on_packet(now, Packet::Ping(None)), Received::SendPong);
            assert_eq!(s.poll_timeout(), Some(now + 500 * MS));
            now += 450 * MS;
            assert!(advance(&mut s, now).is_empty());
        }
        assert!(s.is_open());
        // Messages do not count as pings.
        s.on_packet(now, Packet::Message(Data::Text("x".into())));
        assert_eq!(advance(&mut s, now + 50 * MS), vec![Timeout::PingTimedOut]);
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn v3_silent_client_times_out_and_pong_is_refused() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config_v3(), TransportKind::WebSocket);
        assert_eq!(advance(&mut s, t0 + 500 * MS), vec![Timeout::PingTimedOut]);
        let mut s = Session::new(t0, config_v3(), TransportKind::WebSocket);
        assert_eq!(
            s.on_packet(t0, Packet::Pong(None)),
            Received::Close(CloseReason::TransportError)
        );
    }

    #[test]
    fn v3_paused_reader_suspends_the_timeout() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config_v3(), TransportKind::WebSocket);
        s.pause_reader();
        assert_eq!(s.poll_timeout(), None);
        assert!(advance(&mut s, t0 + 5_000 * MS).is_empty());
        s.resume_reader(t0 + 5_000 * MS);
        assert_eq!(s.poll_timeout(), Some(t0 + 5_200 * MS));
    }

    #[test]
    fn protocol_from_query() {
        assert_eq!(Protocol::from_query(Some("4")), Some(Protocol::V4));
        assert_eq!(Protocol::from_query(Some("3")), Some(Protocol::V3));
        assert_eq!(Protocol::from_query(Some("abc")), None);
        assert_eq!(Protocol::from_query(Some("")), None);
        assert_eq!(Protocol::from_query(None), None);
    }

    /// Drives every deadline up to `now`, as the shell does, and returns what fired.
    fn advance(s: &mut Session, now: Instant) -> Vec<Timeout> {
        let mut fired = vec![];
        while let Some(t) = s.handle_timeout(now) {
            fired.push(t);
        }
        fired
    }

    #[test]
    fn pings_every_interval_while_pongs_come() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        assert_eq!(s.poll_timeout(), Some(t0 + 300 * MS));
        assert!(advance(&mut s, t0 + 299 * MS).is_empty());
        let mut now = t0 + 300 * MS;
        for _ in 0..100 {
            assert_eq!(advance(&mut s, now), vec![Timeout::SendPing]);
            assert_eq!(s.poll_timeout(), Some(now + 200 * MS));
            now += 150 * MS;
            assert_eq!(s.on_packet(now, Packet::Pong(None)), Received::Nothing);
            assert_eq!(s.poll_timeout(), Some(now + 300 * MS));
            now += 300 * MS;
        }
        assert!(s.is_open());
    }

    #[test]
    fn closes_on_ping_timeout() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::WebSocket);
        assert_eq!(advance(&mut s, t0 + 300 * MS), vec![Timeout::SendPing]);
        assert!(advance(&mut s, t0 + 499 * MS).is_empty());
        assert_eq!(advance(&mut s, t0 + 500 * MS), vec![Timeout::PingTimedOut]);
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
        assert_eq!(s.poll_timeout(), None);
        // A late pong does not revive it.
        assert_eq!(
            s.on_packet(t0 + 600 * MS, Packet::Pong(None)),
            Received::Nothing
        );
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn silent_client_times_out_after_interval_plus_timeout() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        // Jumping straight past both deadlines fires both, in order.
        assert_eq!(advance(&mut s, t0 + 10_000 * MS), vec![Timeout::SendPing]);
        assert_eq!(
            advance(&mut s, t0 + 10_200 * MS),
            vec![Timeout::PingTimedOut]
        );
    }

    #[test]
    fn unsolicited_pongs_do_not_postpone_pings() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        for i in 0..1000u32 {
            s.on_packet(t0 + i * 250 * MS / 1000, Packet::Pong(None));
        }
        assert_eq!(s.poll_timeout(), Some(t0 + 300 * MS));
    }

    #[test]
    fn client_ping_and_close() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        assert_eq!(
            s.on_packet(t0, Packet::Ping(None)),
            Received::Close(CloseReason::TransportError)
        );
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        assert_eq!(s.on_packet(t0, Packet::Noop), Received::Nothing);
        assert_eq!(s.on_packet(t0, Packet::Upgrade), Received::Nothing);
        assert_eq!(
            s.on_packet(t0, Packet::Message(Data::Text("x".into()))),
            Received::Message(Data::Text("x".into()))
        );
        assert_eq!(
            s.on_packet(t0, Packet::Close),
            Received::Close(CloseReason::TransportClose)
        );
        assert_eq!(
            s.close(CloseReason::ForcedClose),
            Received::Nothing,
            "closes once"
        );
    }

    #[test]
    fn upgrade_probe_then_upgrade() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        s.begin_upgrade(t0).unwrap();
        assert_eq!(s.begin_upgrade(t0), Err(UpgradeError::AlreadyUpgrading));
        assert_eq!(s.poll_timeout(), Some(t0 + 300 * MS));
        let probe = Packet::Ping(Some("probe".into()));
        assert!(!s.is_probed());
        assert_eq!(s.on_probe_packet(&probe), ProbeOutcome::SendProbePong);
        assert!(s.is_probed());
        assert_eq!(s.transport(), TransportKind::Polling);
        assert_eq!(s.on_probe_packet(&Packet::Upgrade), ProbeOutcome::Upgraded);
        assert!(!s.is_probed());
        assert_eq!(s.transport(), TransportKind::WebSocket);
        assert!(!s.is_upgrading());
        assert_eq!(s.begin_upgrade(t0), Err(UpgradeError::AlreadyUpgraded));
    }

    #[test]
    fn upgrade_times_out_and_polling_goes_on() {
        let t0 = Instant::now();
        let mut cfg = config();
        cfg.upgrade_timeout = 100 * MS;
        let mut s = Session::new(t0, cfg, TransportKind::Polling);
        s.begin_upgrade(t0).unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + 100 * MS));
        assert_eq!(
            advance(&mut s, t0 + 100 * MS),
            vec![Timeout::UpgradeTimedOut]
        );
        assert!(s.is_open());
        assert_eq!(s.on_probe_packet(&Packet::Upgrade), ProbeOutcome::Abort);
        assert_eq!(s.transport(), TransportKind::Polling);
        // A new attempt is allowed after the failed one.
        s.begin_upgrade(t0 + 150 * MS).unwrap();
    }

    #[test]
    fn probe_garbage_aborts() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        s.begin_upgrade(t0).unwrap();
        assert_eq!(
            s.on_probe_packet(&Packet::Message(Data::Text("x".into()))),
            ProbeOutcome::Abort
        );
        assert!(!s.is_upgrading());
        let mut s = Session::new(t0, config(), TransportKind::WebSocket);
        assert_eq!(s.begin_upgrade(t0), Err(UpgradeError::AlreadyUpgraded));
    }

    #[test]
    fn paused_reader_suspends_the_ping_timeout() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::WebSocket);
        assert_eq!(advance(&mut s, t0 + 300 * MS), vec![Timeout::SendPing]);
        s.pause_reader();
        assert_eq!(s.poll_timeout(), None, "no heartbeat deadline while paused");
        assert!(advance(&mut s, t0 + 5_000 * MS).is_empty());
        assert!(s.is_open());
        s.resume_reader(t0 + 5_000 * MS);
        assert_eq!(s.poll_timeout(), Some(t0 + 5_200 * MS));
        assert_eq!(
            s.on_packet(t0 + 5_010 * MS, Packet::Pong(None)),
            Received::Nothing
        );
        assert!(s.is_open());
        // Without a pong after resuming, the timeout applies again.
        assert_eq!(advance(&mut s, t0 + 5_310 * MS), vec![Timeout::SendPing]);
        s.pause_reader();
        s.resume_reader(t0 + 5_320 * MS);
        assert_eq!(
            advance(&mut s, t0 + 5_520 * MS),
            vec![Timeout::PingTimedOut]
        );
    }

    #[test]
    fn graceful_close_times_out() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::Polling);
        assert!(s.start_closing(t0 + 10 * MS));
        assert!(!s.start_closing(t0 + 10 * MS));
        assert!(!s.is_open());
        assert_eq!(s.begin_upgrade(t0), Err(UpgradeError::NotOpen));
        assert_eq!(advance(&mut s, t0 + 300 * MS), vec![Timeout::SendPing]);
        assert_eq!(advance(&mut s, t0 + 510 * MS), vec![Timeout::CloseTimedOut]);
        assert_eq!(s.closed(), Some(CloseReason::ForcedClose));
    }

    #[test]
    fn messages_while_closing_are_ignored() {
        let t0 = Instant::now();
        let mut s = Session::new(t0, config(), TransportKind::WebSocket);
        let msg = || Packet::Message(Data::Text("40".into()));
        assert!(matches!(s.on_packet(t0, msg()), Received::Message(_)));
        assert!(s.start_closing(t0));
        assert!(matches!(s.on_packet(t0, msg()), Received::Nothing));
        // A close from the client still ends it.
        assert!(matches!(
            s.on_packet(t0, Packet::Close),
            Received::Close(CloseReason::TransportClose)
        ));
    }
}
