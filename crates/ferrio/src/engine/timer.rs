//! Every session's deadlines (next ping, ping timeout, upgrade and close timeouts) on one task.
//!
//! A task per session costs its cell and future (about 500 bytes) for as long as the session lives,
//! to sleep 25 seconds at a time. Here a session costs an entry in one ordered map: its next deadline,
//! as its state machine reports it (`poll_timeout`). When a deadline passes, the task runs the session's
//! `handle_timeout` and files its next one. A deadline that moved later fires early and finds nothing
//! to do; one that moved earlier is filed again by the session (`Socket::reschedule`).
//!
//! A process that serves from several single-threaded runtimes (`crate::serving`) has one such map and
//! task per serving thread, started on that thread by its first session: a session's pings and
//! timeouts then run where its connections are served, and waking a polling session's GET, or writing
//! a ping through to an idle websocket, involves no other thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::socket::Socket;

/// A session's place in the map: its deadline, then its serial number (unique per engine).
pub(crate) type Key = (Instant, u64);

/// Serving threads past this many share maps (thread `n` uses map `n % SLOTS`): still correct, only
/// less local.
const SLOTS: usize = 64;

/// The engine's timers: a [`Timers`] per serving thread (0: every thread not named one), each made
/// when its first session files a deadline.
pub(crate) struct TimerSet {
    slots: [OnceLock<Arc<Timers>>; SLOTS],
    serials: AtomicU64,
}

impl Default for TimerSet {
    fn default() -> Self {
        TimerSet {
            slots: std::array::from_fn(|_| OnceLock::new()),
            serials: AtomicU64::new(0),
        }
    }
}

impl TimerSet {
    /// A serial number for a new session (unique per engine, so per map too).
    pub(crate) fn serial(&self) -> u64 {
        self.serials.fetch_add(1, Ordering::Relaxed)
    }

    /// The timers of the sessions of serving thread `home`.
    pub(crate) fn of(&self, home: u16) -> &Arc<Timers> {
        self.slots[usize::from(home) % SLOTS].get_or_init(Arc::default)
    }
}

#[derive(Default)]
pub(crate) struct Timers {
    due: Mutex<BTreeMap<Key, Weak<Socket>>>,
    /// Signalled when a deadline earlier than all others was filed.
    wake: Notify,
    started: AtomicBool,
}

impl Timers {
    /// Files `session`'s deadline `at` in place of its previous one (`filed`).
    pub(crate) fn file(
        self: &Arc<Self>,
        session: Weak<Socket>,
        serial: u64,
        filed: Option<Instant>,
        at: Instant,
    ) {
        if !self.started.swap(true, Ordering::AcqRel) {
            // On the runtime of the first session's thread: its home (see the module's documentation).
            tokio::spawn(run(Arc::downgrade(self)));
        }
        let first = {
            let mut due = self.due.lock();
            if let Some(old) = filed {
                due.remove(&(old, serial));
            }
            due.insert((at, serial), session);
            due.first_key_value()
                .is_some_and(|(k, _)| *k == (at, serial))
        };
        if first {
            self.wake.notify_one();
        }
    }

    /// Takes `session`'s deadline out (the session closed).
    pub(crate) fn cancel(&self, serial: u64, filed: Instant) {
        self.due.lock().remove(&(filed, serial));
    }

    /// The earliest deadline, taken out of the map if it passed.
    fn next(&self, now: Instant) -> Next {
        let mut due = self.due.lock();
        match due.first_key_value() {
            None => Next::Idle,
            Some((&(at, _), _)) if at > now => Next::Sleep(at),
            Some(_) => match due.pop_first() {
                Some(((at, _), session)) => Next::Fire(at, session),
                None => Next::Idle,
            },
        }
    }
}

enum Next {
    Idle,
    Sleep(Instant),
    Fire(Instant, Weak<Socket>),
}

/// The task behind [`Timers`]; it ends at most a minute after the engine and its sessions are gone (it
/// holds the timers during one wait).
async fn run(timers: Weak<Timers>) {
    loop {
        let Some(t) = timers.upgrade() else { return };
        let wake = t.wake.notified();
        let mut wake = std::pin::pin!(wake);
        // Registered before looking, so a deadline filed meanwhile is not missed.
        wake.as_mut().enable();
        match t.next(Instant::now()) {
            Next::Fire(at, session) => {
                if let Some(session) = session.upgrade() {
                    session.on_deadline(at);
                }
            }
            Next::Sleep(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = wake => {}
                }
            }
            Next::Idle => {
                let _ = tokio::time::timeout(Duration::from_secs(60), wake).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(next: Next) -> Option<Instant> {
        match next {
            Next::Fire(at, _) => Some(at),
            _ => None,
        }
    }

    /// Each serving thread's sessions file their deadlines with timers whose task runs on that
    /// thread's runtime; threads past [`SLOTS`] share.
    #[test]
    fn each_serving_thread_gets_its_own_timers_on_its_own_runtime() {
        let set = Arc::new(TimerSet::default());
        assert!(Arc::ptr_eq(set.of(1), set.of(1 + SLOTS as u16)));
        assert!(!Arc::ptr_eq(set.of(1), set.of(2)));
        assert!(!Arc::ptr_eq(set.of(0), set.of(1)));
        let started: Vec<usize> = (1..=2u16)
            .map(|home| {
                let set = set.clone();
                std::thread::spawn(move || {
                    crate::serving::set_serving_thread(home);
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let tasks = || {
                            tokio::runtime::Handle::current()
                                .metrics()
                                .num_alive_tasks()
                        };
                        let before = tasks();
                        let later = Instant::now() + Duration::from_secs(600);
                        for _ in 0..2 {
                            let timers = set.of(crate::serving::serving_thread());
                            timers.file(Weak::new(), set.serial(), None, later);
                        }
                        tokio::task::yield_now().await;
                        tasks() - before
                    })
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        // One task each: the second thread's sessions did not go to the first thread's timers.
        assert_eq!(started, [1, 1]);
    }

    #[tokio::test]
    async fn deadlines_fire_in_order_and_a_refiled_one_replaces_the_old() {
        let timers = Arc::new(Timers::default());
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (a, b, c) = (0, 1, 2);
        timers.file(Weak::new(), a, None, at(30));
        timers.file(Weak::new(), b, None, at(10));
        timers.file(Weak::new(), c, None, at(20));
        // `a` moves earlier: its old deadline goes.
        timers.file(Weak::new(), a, Some(at(30)), at(5));
        // `c` closes.
        timers.cancel(c, at(20));
        assert!(matches!(timers.next(t0), Next::Sleep(d) if d == at(5)));
        let now = at(100);
        assert_eq!(fired(timers.next(now)), Some(at(5)));
        assert_eq!(fired(timers.next(now)), Some(at(10)));
        assert!(matches!(timers.next(now), Next::Idle));
    }
}
