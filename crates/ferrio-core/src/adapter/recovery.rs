//! Connection state recovery in one process: the sessions of sockets that dropped, and the log of the
//! broadcasts they may have missed.
//!
//! [`SessionLog`] is a pure state machine of `now`: the memory adapter drives it with the clock, tests
//! with made-up instants. Its memory is bounded twice: a packet or a session older than
//! `max_disconnection_duration` is dropped, and the log keeps at most `max_packets` packets. A client
//! whose last offset fell off the log is not recovered (rather than recovered with a gap).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;

use super::{BroadcastOptions, Room, Sid};

/// What an adapter needs to know to keep sessions and missed packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// How long a dropped session (and a broadcast packet) is kept.
    pub max_disconnection_duration: Duration,
    /// The most packets kept for replay; older ones are dropped first.
    pub max_packets: usize,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        RecoveryOptions {
            max_disconnection_duration: Duration::from_secs(120),
            max_packets: 10_000,
        }
    }
}

/// The state of a socket kept while its client is away.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The socket id, kept across the recovery.
    pub sid: Sid,
    /// The private id the client presents to recover.
    pub pid: Arc<str>,
    /// Its rooms (its own room included).
    pub rooms: Vec<Room>,
    /// Its `data`, serialized.
    pub data: Value,
}

/// A session given back to its client, with the packets it missed, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredSession {
    /// The session as it was persisted.
    pub session: Session,
    /// The broadcast packets sent to its rooms after the client's offset, offsets included.
    pub missed: Vec<Packet>,
}

struct Entry {
    emitted_at: Instant,
    rooms: HashSet<Room>,
    except: HashSet<Room>,
    packet: Packet,
}

struct Stored {
    session: Session,
    disconnected_at: Instant,
}

/// Sessions and the missed-packet log of one namespace.
pub struct SessionLog {
    opts: RecoveryOptions,
    /// Offsets are consecutive integers: the entry of offset `o` is at `o - first`.
    first: u64,
    packets: VecDeque<Entry>,
    sessions: HashMap<Arc<str>, Stored>,
    /// Persisted sessions in the order they were persisted, so that expiry pops from the front.
    expiry: VecDeque<(Instant, Arc<str>)>,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog")
            .field("packets", &self.packets.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

/// Whether a broadcast to `rooms` minus `except` reached a socket in `session_rooms`.
fn reached(session_rooms: &[Room], rooms: &HashSet<Room>, except: &HashSet<Room>) -> bool {
    (rooms.is_empty() || session_rooms.iter().any(|r| rooms.contains(r)))
        && !session_rooms.iter().any(|r| except.contains(r))
}

impl SessionLog {
    /// An empty log.
    pub fn new(opts: RecoveryOptions) -> Self {
        SessionLog {
            opts,
            first: 0,
            packets: VecDeque::new(),
            sessions: HashMap::new(),
            expiry: VecDeque::new(),
        }
    }

    /// Packets held (for tests and metrics).
    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }

    /// Sessions held (for tests and metrics).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether a broadcast gets an offset and a place in the log: events without ack, not volatile. A
    /// volatile packet may be dropped anyway; an ack cannot be answered to a socket restored later.
    pub fn is_eligible(packet: &Packet, opts: &BroadcastOptions) -> bool {
        matches!(packet, Packet::Event { id: None, .. }) && Self::keeps(opts)
    }

    /// Whether an event without an ack broadcast to `opts` is kept (volatile ones are not: a client
    /// could have missed them anyway).
    pub fn keeps(opts: &BroadcastOptions) -> bool {
        !opts.flags.volatile
    }

    /// Appends the offset to an eligible packet's arguments (where the official client reads it) and
    /// returns it.
    pub fn stamp(&mut self, now: Instant, packet: &mut Packet) -> String {
        self.trim(now);
        let offset = (self.first + self.packets.len() as u64).to_string();
        if let Packet::Event { args, .. } = packet {
            args.push(Value::String(offset.clone()));
        }
        offset
    }

    /// Keeps a stamped packet (the last one [`stamp`](Self::stamp) saw) for replay.
    pub fn push(&mut self, now: Instant, packet: Packet, opts: BroadcastOptions) {
        self.packets.push_back(Entry {
            emitted_at: now,
            rooms: opts.rooms,
            except: opts.except,
            packet,
        });
        while self.packets.len() > self.opts.max_packets {
            self.packets.pop_front();
            self.first += 1;
        }
    }

    /// Drops what is older than the window.
    fn trim(&mut self, now: Instant) {
        let window = self.opts.max_disconnection_duration;
        while self
            .packets
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.emitted_at) > window)
        {
            self.packets.pop_front();
            self.first += 1;
        }
        while let Some((at, pid)) = self.expiry.front() {
            if now.saturating_duration_since(*at) <= window {
                break;
            }
            // The entry may be a newer persist of the same pid, or gone (restored): only drop it when
            // it is this very one.
            if self
                .sessions
                .get(pid)
                .is_some_and(|s| s.disconnected_at == *at)
            {
                self.sessions.remove(pid);
            }
            self.expiry.pop_front();
        }
    }

    /// Keeps the session of a socket that dropped for a recoverable reason.
    pub fn persist(&mut self, now: Instant, session: Session) {
        self.trim(now);
        let pid = session.pid.clone();
        self.expiry.push_back((now, pid.clone()));
        self.sessions.insert(
            pid,
            Stored {
                session,
                disconnected_at: now,
            },
        );
    }

    /// Takes the session `pid` back with every packet it missed after `offset`: `None` when the pid is
    /// unknown, used already or expired, or when `offset` is not in the log (never received, made up,
    /// or dropped by age or size), as a partial replay would pass for a complete one.
    pub fn restore(&mut self, now: Instant, pid: &str, offset: &str) -> Option<RestoredSession> {
        self.trim(now);
        // Taken even when the offset is refused: a pid is used once.
        let stored = self.sessions.remove(pid)?;
        let offset: u64 = offset.parse().ok()?;
        let index = usize::try_from(offset.checked_sub(self.first)?).ok()?;
        if index >= self.packets.len() {
            return None;
        }
        let rooms = &stored.session.rooms;
        let missed = self
            .packets
            .iter()
            .skip(index + 1)
            .filter(|e| reached(rooms, &e.rooms, &e.except))
            .map(|e| e.packet.clone())
            .collect();
        Some(RestoredSession {
            session: stored.session,
            missed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(window_ms: u64, max: usize) -> RecoveryOptions {
        RecoveryOptions {
            max_disconnection_duration: Duration::from_millis(window_ms),
            max_packets: max,
        }
    }

    fn event(text: &str) -> Packet {
        Packet::Event {
            nsp: "/".into(),
            event: "e".into(),
            args: vec![Value::String(text.into())],
            id: None,
        }
    }

    fn to(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            except: except.iter().map(|r| Room::from(*r)).collect(),
            ..Default::default()
        }
    }

    fn session(pid: &str, rooms: &[&str]) -> Session {
        Session {
            sid: Sid::from("s1"),
            pid: Arc::from(pid),
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            data: Value::Null,
        }
    }

    /// Broadcasts `text` at `now` and returns its offset.
    fn send(log: &mut SessionLog, now: Instant, text: &str, o: BroadcastOptions) -> String {
        let mut p = event(text);
        let off = log.stamp(now, &mut p);
        log.push(now, p, o);
        off
    }

    fn texts(r: &RestoredSession) -> Vec<String> {
        r.missed
            .iter()
            .map(|p| match p {
                Packet::Event { args, .. } => args[0].as_str().unwrap_or_default().to_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn offsets_are_appended_and_consecutive() {
        let mut log = SessionLog::new(opts(1000, 10));
        let t = Instant::now();
        let mut p = event("a");
        let off = log.stamp(t, &mut p);
        assert_eq!(off, "0");
        match &p {
            Packet::Event { args, .. } => assert_eq!(args.last(), Some(&Value::String("0".into()))),
            _ => unreachable!(),
        }
        log.push(t, p, to(&[], &[]));
        assert_eq!(send(&mut log, t, "b", to(&[], &[])), "1");
    }

    #[test]
    fn restores_what_the_rooms_missed_in_order_once() {
        let mut log = SessionLog::new(opts(1000, 100));
        let t = Instant::now();
        let seen = send(&mut log, t, "seen", to(&[], &[]));
        log.persist(t, session("p", &["s1", "r"]));
        send(&mut log, t, "one", to(&["r"], &[]));
        send(&mut log, t, "other room", to(&["q"], &[]));
        send(&mut log, t, "excluded", to(&[], &["s1"]));
        send(&mut log, t, "two", to(&[], &[]));
        let r = log.restore(t, "p", &seen).expect("restored");
        assert_eq!(r.session.sid.as_ref(), "s1");
        assert_eq!(texts(&r), ["one", "two"]);
        assert!(log.restore(t, "p", &seen).is_none(), "a pid is used once");
    }

    #[test]
    fn unknown_pid_and_bad_offsets_are_refused() {
        let mut log = SessionLog::new(opts(1000, 100));
        let t = Instant::now();
        let off = send(&mut log, t, "a", to(&[], &[]));
        assert!(log.restore(t, "nope", &off).is_none());
        for bad in ["", "x", "-1", "5", "18446744073709551616"] {
            log.persist(t, session("p", &["s1"]));
            assert!(log.restore(t, "p", bad).is_none(), "offset {bad:?}");
        }
    }

    #[test]
    fn sessions_and_packets_expire_with_the_window() {
        let mut log = SessionLog::new(opts(1000, 100));
        let t = Instant::now();
        let off = send(&mut log, t, "a", to(&[], &[]));
        log.persist(t, session("p", &["s1"]));
        let later = t + Duration::from_millis(1001);
        assert!(log.restore(later, "p", &off).is_none(), "expired session");
        assert_eq!(log.session_count(), 0);
        assert_eq!(
            log.packet_count(),
            0,
            "packets older than the window go too"
        );

        // Inside the window, even at its very end.
        let off = send(&mut log, later, "b", to(&[], &[]));
        log.persist(later, session("p", &["s1"]));
        let r = log.restore(later + Duration::from_millis(1000), "p", &off);
        assert!(r.is_some_and(|r| r.missed.is_empty()));
    }

    #[test]
    fn a_newer_persist_of_a_pid_outlives_the_older_expiry() {
        let mut log = SessionLog::new(opts(1000, 100));
        let t = Instant::now();
        log.persist(t, session("p", &["s1"]));
        let t2 = t + Duration::from_millis(800);
        log.persist(t2, session("p", &["s1"]));
        let off = send(&mut log, t2, "a", to(&[], &[]));
        assert!(
            log.restore(t + Duration::from_millis(1500), "p", &off)
                .is_some()
        );
    }

    #[test]
    fn an_offset_that_fell_off_the_capped_log_is_not_recovered() {
        let mut log = SessionLog::new(opts(60_000, 3));
        let t = Instant::now();
        let first = send(&mut log, t, "0", to(&[], &[]));
        log.persist(t, session("p", &["s1"]));
        for i in 1..=3 {
            send(&mut log, t, &i.to_string(), to(&[], &[]));
        }
        assert_eq!(log.packet_count(), 3);
        assert!(log.restore(t, "p", &first).is_none(), "no partial replay");

        // The oldest offset still held works, and gets the rest.
        log.persist(t, session("p", &["s1"]));
        let r = log.restore(t, "p", "1").expect("restored");
        assert_eq!(texts(&r), ["2", "3"]);
    }
}
