//! The client's connection lifecycle as a state machine of `(now, input)`: connection attempts with a
//! time limit, reconnection with exponential backoff, and what the official client's Manager reports
//! along the way (`open`, `error`, `close`, `reconnect_attempt`, `reconnect`, `reconnect_error`,
//! `reconnect_failed`).
//!
//! The shell calls [`Reconnect::open`] / [`Reconnect::close`] for the user, reports what its transport
//! did ([`Reconnect::on_open`], [`Reconnect::on_error`], [`Reconnect::on_close`]), sleeps until
//! [`Reconnect::poll_timeout`] and then calls [`Reconnect::handle_timeout`]. After each call it executes
//! what [`Reconnect::poll_output`] returns, in order. The errors of failed attempts stay with the shell,
//! which knows them; the machine only decides what happens next.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::socket::ClientDisconnectReason;

/// Reconnection settings, with the official client's names and defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// Reconnect after the connection is lost or the first attempt fails (on).
    pub reconnection: bool,
    /// Attempts after a loss before giving up (`None`: infinite, the default).
    pub reconnection_attempts: Option<u32>,
    /// First delay before an attempt (1 s), doubled on each failure.
    pub reconnection_delay: Duration,
    /// Largest delay before an attempt (5 s).
    pub reconnection_delay_max: Duration,
    /// Jitter of the delays, 0 to 1 (0.5).
    pub randomization_factor: f64,
    /// Time allowed for each connection attempt (20 s; `None`: no limit).
    pub timeout: Option<Duration>,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            reconnection: true,
            reconnection_attempts: None,
            reconnection_delay: Duration::from_millis(1000),
            reconnection_delay_max: Duration::from_millis(5000),
            randomization_factor: 0.5,
            timeout: Some(Duration::from_millis(20_000)),
        }
    }
}

impl ReconnectConfig {
    /// Sets `reconnection`.
    pub fn reconnection(mut self, on: bool) -> Self {
        self.reconnection = on;
        self
    }

    /// Sets `reconnection_attempts` (`None`: infinite).
    pub fn reconnection_attempts(mut self, attempts: Option<u32>) -> Self {
        self.reconnection_attempts = attempts;
        self
    }

    /// Sets `reconnection_delay`.
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.reconnection_delay = delay;
        self
    }

    /// Sets `reconnection_delay_max`.
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.reconnection_delay_max = delay;
        self
    }

    /// Sets `randomization_factor`.
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.randomization_factor = factor;
        self
    }

    /// Sets `timeout` (`None`: no limit).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What the manager reports; the shell adds the error or the close reason it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The connection opened (`open`).
    Open,
    /// A connection attempt failed (`error`): the shell's error, or "timeout" after [`Output::Abort`].
    Error,
    /// The open connection was lost or closed (`close`), with the reason the sockets see.
    Close(ClientDisconnectReason),
    /// A reconnection attempt starts, with its number (`reconnect_attempt`).
    ReconnectAttempt(u32),
    /// Reconnected after this many attempts (`reconnect`).
    Reconnect(u32),
    /// A reconnection attempt failed (`reconnect_error`).
    ReconnectError,
    /// Every allowed attempt failed; nothing more is tried (`reconnect_failed`).
    ReconnectFailed,
}

/// What the shell does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Start a connection attempt now.
    Connect,
    /// Drop the attempt in progress: it ran out of time (an [`Event::Error`] follows) or the user closed.
    Abort,
    /// Close the open connection: the user closed it.
    Disconnect,
    /// Report this event.
    Event(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not connected, nothing planned.
    Idle,
    /// An attempt is in progress.
    Connecting {
        deadline: Option<Instant>,
        reconnecting: bool,
    },
    /// Connected.
    Open,
    /// Waiting before the next reconnection attempt.
    Waiting { until: Instant },
}

/// The connection lifecycle of one manager.
#[derive(Debug, Clone)]
pub struct Reconnect {
    config: ReconnectConfig,
    backoff: Backoff,
    state: State,
    /// Set by `close()`: the official client's `skipReconnect`.
    closed_by_user: bool,
    rng: SplitMix64,
    out: VecDeque<Output>,
}

impl Reconnect {
    /// A machine with nothing started. `seed` feeds the jitter of the delays.
    pub fn new(config: ReconnectConfig, seed: u64) -> Self {
        let backoff = Backoff::new(
            config.reconnection_delay,
            config.reconnection_delay_max,
            config.randomization_factor,
        );
        Reconnect {
            config,
            backoff,
            state: State::Idle,
            closed_by_user: false,
            rng: SplitMix64(seed),
            out: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ReconnectConfig {
        &self.config
    }

    /// Whether the connection is open.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether an attempt is in progress or planned, or the connection is open: the machine will report
    /// something more without being asked.
    pub fn is_active(&self) -> bool {
        self.state != State::Idle
    }

    /// Whether the machine is between a loss and the next successful connection.
    pub fn is_reconnecting(&self) -> bool {
        matches!(
            self.state,
            State::Waiting { .. }
                | State::Connecting {
                    reconnecting: true,
                    ..
                }
        )
    }

    /// Attempts made since the last successful connection (or the last loss).
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }

    /// The user wants the connection: start an attempt unless one is in progress, planned, or open.
    pub fn open(&mut self, now: Instant) {
        self.closed_by_user = false;
        if self.state == State::Idle {
            self.start_attempt(now, false);
        }
    }

    /// The user closes the connection for good: no reconnection until [`Reconnect::open`].
    pub fn close(&mut self) {
        self.closed_by_user = true;
        match self.state {
            State::Idle | State::Waiting { .. } => {}
            State::Connecting { .. } => self.out.push_back(Output::Abort),
            State::Open => {
                self.out.push_back(Output::Disconnect);
                self.out.push_back(Output::Event(Event::Close(
                    ClientDisconnectReason::IoClientDisconnect,
                )));
            }
        }
        self.backoff.reset();
        self.state = State::Idle;
    }

    /// The attempt in progress succeeded.
    pub fn on_open(&mut self, _now: Instant) {
        let State::Connecting { reconnecting, .. } = self.state else {
            return;
        };
        self.state = State::Open;
        self.out.push_back(Output::Event(Event::Open));
        if reconnecting {
            self.out
                .push_back(Output::Event(Event::Reconnect(self.backoff.attempts())));
        }
        self.backoff.reset();
    }

    /// The attempt in progress failed.
    pub fn on_error(&mut self, now: Instant) {
        if matches!(self.state, State::Connecting { .. }) {
            self.attempt_failed(now);
        }
    }

    /// The open connection ended: lost (transport closed or failed, ping timeout, parse error), after
    /// which the machine reconnects, or closed on purpose (`io client disconnect`, `io server
    /// disconnect`), after which it does not.
    pub fn on_close(&mut self, now: Instant, reason: ClientDisconnectReason) {
        if self.state != State::Open {
            return;
        }
        self.out.push_back(Output::Event(Event::Close(reason)));
        self.backoff.reset();
        self.state = State::Idle;
        if !reason.will_reconnect() {
            self.closed_by_user = true;
        }
        if self.config.reconnection && !self.closed_by_user {
            self.schedule(now);
        }
    }

    /// When the machine next needs [`Reconnect::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Connecting { deadline, .. } => deadline,
            State::Idle | State::Open => None,
        }
    }

    /// Advances to `now`: starts the planned attempt, or gives up on the one that took too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting { until } if now >= until => {
                self.out.push_back(Output::Event(Event::ReconnectAttempt(
                    self.backoff.attempts(),
                )));
                self.start_attempt(now, true);
            }
            State::Connecting {
                deadline: Some(deadline),
                ..
            } if now >= deadline => {
                self.out.push_back(Output::Abort);
                self.attempt_failed(now);
            }
            _ => {}
        }
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn start_attempt(&mut self, now: Instant, reconnecting: bool) {
        self.state = State::Connecting {
            deadline: self.config.timeout.map(|t| now + t),
            reconnecting,
        };
        self.out.push_back(Output::Connect);
    }

    fn attempt_failed(&mut self, now: Instant) {
        let State::Connecting { reconnecting, .. } = self.state else {
            return;
        };
        self.state = State::Idle;
        self.out.push_back(Output::Event(Event::Error));
        if reconnecting {
            self.out.push_back(Output::Event(Event::ReconnectError));
            self.schedule(now);
        } else if self.config.reconnection && self.backoff.attempts() == 0 {
            // A first connection that fails is retried like a lost one.
            self.schedule(now);
        }
    }

    fn schedule(&mut self, now: Instant) {
        if self
            .config
            .reconnection_attempts
            .is_some_and(|max| self.backoff.attempts() >= max)
        {
            self.backoff.reset();
            self.state = State::Idle;
            self.out.push_back(Output::Event(Event::ReconnectFailed));
            return;
        }
        let delay = self.backoff.next_delay(self.rng.next_f64());
        self.state = State::Waiting { until: now + delay };
    }
}

/// A small deterministic generator for the jitter: the machine stays pure and a test can fix the seed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const LOST: ClientDisconnectReason = ClientDisconnectReason::TransportClose;

    fn config() -> ReconnectConfig {
        ReconnectConfig::default()
            .reconnection_delay(100 * MS)
            .reconnection_delay_max(500 * MS)
            .randomization_factor(0.0)
            .timeout(Some(1000 * MS))
    }

    fn drain(r: &mut Reconnect) -> Vec<Output> {
        std::iter::from_fn(|| r.poll_output()).collect()
    }

    fn ev(e: Event) -> Output {
        Output::Event(e)
    }

    /// Runs the planned attempt at its deadline, checks the delay it waited, and fails it.
    fn fail_next_attempt(r: &mut Reconnect, now: &mut Instant, expected_delay: Duration) -> u32 {
        let at = r.poll_timeout().expect("an attempt is planned");
        assert_eq!(at - *now, expected_delay);
        *now = at;
        r.handle_timeout(*now);
        let out = drain(r);
        let Some(Output::Event(Event::ReconnectAttempt(n))) = out.first().copied() else {
            panic!("no attempt: {out:?}");
        };
        assert_eq!(out[1..], [Output::Connect]);
        *now += 10 * MS;
        r.on_error(*now);
        n
    }

    #[test]
    fn open_connects_once_and_reports_open() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config(), 1);
        assert!(!r.is_active());
        r.open(t0);
        r.open(t0);
        assert_eq!(drain(&mut r), [Output::Connect]);
        assert_eq!(r.poll_timeout(), Some(t0 + 1000 * MS));
        r.on_open(t0 + 5 * MS);
        assert_eq!(drain(&mut r), [ev(Event::Open)]);
        assert!(r.is_open());
        assert_eq!(r.poll_timeout(), None);
        r.open(t0 + 6 * MS);
        assert!(drain(&mut r).is_empty(), "already open");
    }

    #[test]
    fn delays_grow_and_cap_and_attempts_count() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config(), 1);
        r.open(t0);
        r.on_open(t0);
        drain(&mut r);
        let mut now = t0 + 1000 * MS;
        r.on_close(now, LOST);
        assert_eq!(drain(&mut r), [ev(Event::Close(LOST))]);
        assert!(r.is_reconnecting());
        let mut attempts = vec![];
        for delay in [100, 200, 400, 500, 500] {
            attempts.push(fail_next_attempt(&mut r, &mut now, delay * MS));
            assert_eq!(drain(&mut r), [ev(Event::Error), ev(Event::ReconnectError)]);
        }
        assert_eq!(attempts, [1, 2, 3, 4, 5]);
        assert_eq!(r.attempts(), 6, "the sixth is planned");
    }

    #[test]
    fn a_successful_reconnection_resets_the_delays() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config(), 1);
        r.open(t0);
        r.on_open(t0);
        let mut now = t0;
        r.on_close(now, LOST);
        drain(&mut r);
        fail_next_attempt(&mut r, &mut now, 100 * MS);
        drain(&mut r);
        fail_next_attempt(&mut r, &mut now, 200 * MS);
        drain(&mut r);
        // The third attempt succeeds.
        now = r.poll_timeout().unwrap();
        r.handle_timeout(now);
        assert_eq!(
            drain(&mut r),
            [ev(Event::ReconnectAttempt(3)), Output::Connect]
        );
        r.on_open(now);
        assert_eq!(drain(&mut r), [ev(Event::Open), ev(Event::Reconnect(3))]);
        assert!(!r.is_reconnecting());
        assert_eq!(r.attempts(), 0);
        // The next loss starts again from the first delay.
        r.on_close(now, LOST);
        drain(&mut r);
        assert_eq!(r.poll_timeout(), Some(now + 100 * MS));
    }

    #[test]
    fn gives_up_after_the_last_attempt() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config().reconnection_attempts(Some(2)), 1);
        r.open(t0);
        r.on_open(t0);
        let mut now = t0;
        r.on_close(now, LOST);
        drain(&mut r);
        fail_next_attempt(&mut r, &mut now, 100 * MS);
        assert_eq!(drain(&mut r), [ev(Event::Error), ev(Event::ReconnectError)]);
        fail_next_attempt(&mut r, &mut now, 200 * MS);
        assert_eq!(
            drain(&mut r),
            [
                ev(Event::Error),
                ev(Event::ReconnectError),
                ev(Event::ReconnectFailed)
            ]
        );
        assert!(!r.is_active());
        assert_eq!(r.poll_timeout(), None);
        // A later open() starts over.
        r.open(now);
        assert_eq!(drain(&mut r), [Output::Connect]);
    }

    #[test]
    fn zero_attempts_gives_up_at_once() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config().reconnection_attempts(Some(0)), 1);
        r.open(t0);
        r.on_open(t0);
        r.on_close(t0, LOST);
        assert_eq!(
            drain(&mut r),
            [
                Output::Connect,
                ev(Event::Open),
                ev(Event::Close(LOST)),
                ev(Event::ReconnectFailed)
            ]
        );
    }

    #[test]
    fn a_failed_first_connection_is_retried() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config(), 1);
        r.open(t0);
        drain(&mut r);
        r.on_error(t0 + 10 * MS);
        assert_eq!(drain(&mut r), [ev(Event::Error)]);
        assert_eq!(r.poll_timeout(), Some(t0 + 110 * MS));
        r.handle_timeout(t0 + 110 * MS);
        assert_eq!(
            drain(&mut r),
            [ev(Event::ReconnectAttempt(1)), Output::Connect]
        );
        r.on_open(t0 + 120 * MS);
        assert_eq!(drain(&mut r), [ev(Event::Open), ev(Event::Reconnect(1))]);
    }

    #[test]
    fn an_attempt_that_takes_too_long_is_aborted() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config(), 1);
        r.open(t0);
        drain(&mut r);
        r.handle_timeout(t0 + 999 * MS);
        assert!(drain(&mut r).is_empty());
        r.handle_timeout(t0 + 1000 * MS);
        assert_eq!(drain(&mut r), [Output::Abort, ev(Event::Error)]);
        assert_eq!(r.poll_timeout(), Some(t0 + 1100 * MS));
        // A late success of the aborted attempt changes nothing.
        r.on_open(t0 + 1050 * MS);
        assert!(drain(&mut r).is_empty());
        assert!(!r.is_open());
    }

    #[test]
    fn without_reconnection_nothing_is_retried() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(config().reconnection(false), 1);
        r.open(t0);
        r.on_error(t0);
        assert_eq!(drain(&mut r), [Output::Connect, ev(Event::Error)]);
        assert!(!r.is_active());
        r.open(t0);
        r.on_open(t0);
        r.on_close(t0, LOST);
        assert_eq!(
            drain(&mut r),
            [Output::Connect, ev(Event::Open), ev(Event::Close(LOST))]
        );
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn a_user_close_stops_reconnection() {
        // The manager closes once no socket wants the connection (`io client disconnect`, or an
        // `io server disconnect` of the last socket): no attempt follows, in any state.
        let t0 = Instant::now();
        let mut r = Reconnect::new(config(), 1);
        r.open(t0);
        r.on_open(t0);
        drain(&mut r);
        r.close();
        assert_eq!(
            drain(&mut r),
            [
                Output::Disconnect,
                ev(Event::Close(ClientDisconnectReason::IoClientDisconnect))
            ]
        );
        // The transport reports its end afterwards: ignored.
        r.on_close(t0 + 10 * MS, LOST);
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.poll_timeout(), None);

        // While waiting for the next attempt.
        r.open(t0);
        r.on_open(t0);
        r.on_close(t0, LOST);
        drain(&mut r);
        assert!(r.poll_timeout().is_some());
        r.close();
        assert!(drain(&mut r).is_empty());
        assert_eq!(r.poll_timeout(), None);
        r.handle_timeout(t0 + 10_000 * MS);
        assert!(drain(&mut r).is_empty());

        // During an attempt.
        r.open(t0);
        drain(&mut r);
        r.close();
        assert_eq!(drain(&mut r), [Output::Abort]);
        r.on_error(t0);
        assert!(drain(&mut r).is_empty());
        assert!(!r.is_active());
    }

    #[test]
    fn no_reconnection_after_a_disconnect_on_purpose() {
        let t0 = Instant::now();
        for reason in [
            ClientDisconnectReason::IoServerDisconnect,
            ClientDisconnectReason::IoClientDisconnect,
        ] {
            let mut r = Reconnect::new(config(), 1);
            r.open(t0);
            r.on_open(t0);
            drain(&mut r);
            r.on_close(t0, reason);
            assert_eq!(drain(&mut r), [ev(Event::Close(reason))]);
            assert_eq!(r.poll_timeout(), None, "{reason}");
            assert!(!r.is_active());
            // connect() again works.
            r.open(t0);
            assert_eq!(drain(&mut r), [Output::Connect]);
        }
        for reason in [
            ClientDisconnectReason::PingTimeout,
            ClientDisconnectReason::TransportError,
            ClientDisconnectReason::ParseError,
        ] {
            let mut r = Reconnect::new(config(), 1);
            r.open(t0);
            r.on_open(t0);
            r.on_close(t0, reason);
            assert_eq!(r.poll_timeout(), Some(t0 + 100 * MS), "{reason}");
        }
    }

    #[test]
    fn jitter_stays_within_the_randomization_factor() {
        let t0 = Instant::now();
        for seed in 0..200 {
            let mut r = Reconnect::new(config().randomization_factor(0.5), seed);
            r.open(t0);
            r.on_open(t0);
            r.on_close(t0, LOST);
            let delay = r.poll_timeout().unwrap() - t0;
            assert!(delay >= 50 * MS && delay <= 150 * MS, "{delay:?}");
        }
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|seed| {
                let mut r = Reconnect::new(config().randomization_factor(0.5), seed);
                r.open(t0);
                r.on_open(t0);
                r.on_close(t0, LOST);
                r.poll_timeout().unwrap()
            })
            .collect();
        assert!(delays.len() > 1, "the seed varies the delays");
    }
}
