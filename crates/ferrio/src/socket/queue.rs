//! The socket's job queue: what its task runs, in arrival order.
//!
//! A deque under a lock rather than a channel: a tokio channel allocates its first block of 32 slots
//! (about 2.3 KB for jobs this size) and its shared state up front, for every socket, while most sockets
//! are idle most of the time. This queue lives inside the socket and allocates only while jobs wait.

use std::collections::VecDeque;
use std::task::{Poll, Waker};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::DisconnectReason;
use super::event::Event;

/// One thing for the socket's task to do.
pub(crate) enum Job {
    Event(Event),
    Disconnect(DisconnectReason),
    /// An event's listeners, started on the connection's task (see [`Queue::claim`]), that had to wait:
    /// the socket's task finishes them before anything queued after.
    Running(crate::engine::BoxFuture<()>),
}

/// Why a job was not queued.
enum Refused {
    Full(Job),
    Closed,
}

/// Slots a drained queue keeps: a socket that gets a message now and then does not allocate for each,
/// and a burst's larger buffer is given back once the burst is over.
const KEPT_SLOTS: usize = 8;

/// Bounded: when it is full, the connection's reader waits (see `EngineHandler::backpressure`) instead
/// of buffering without limit. Written by the connection's reader, read by the socket's task.
pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    /// Signalled when a full queue gets room, or when the task ended.
    room: Notify,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// The task, while it waits for a job.
    waker: Option<Waker>,
    /// The task ended: jobs have nowhere to go.
    closed: bool,
    /// A job that did not fit; the connection's reader waits for it to go in before reading more.
    overflow: Option<Job>,
    /// The task waits for a job with nothing else to run (its connection handlers are done).
    parked: bool,
    /// An event runs on the connection's task (see [`Queue::claim`]): the task takes no job meanwhile.
    inline: bool,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            room: Notify::new(),
        }
    }

    /// Puts `job` in the queue and wakes the task, unless the queue is full (the job comes back) or the
    /// task ended.
    fn try_push(&self, job: Job) -> Result<(), Refused> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Refused::Closed);
        }
        if st.jobs.len() >= self.capacity {
            return Err(Refused::Full(job));
        }
        st.jobs.push_back(job);
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues an incoming event; returns false when the queue is full (the job waits in `overflow`).
    pub(crate) fn push(&self, job: Job) -> bool {
        match self.try_push(job) {
            // The task is gone: the socket is disconnected, the event has nowhere to go.
            Ok(()) | Err(Refused::Closed) => true,
            Err(Refused::Full(job)) => {
                self.state.lock().overflow = Some(job);
                false
            }
        }
    }

    /// Waits until the overflowing job is queued.
    pub(crate) async fn flush_overflow(&self) {
        let job = self.state.lock().overflow.take();
        if let Some(job) = job {
            let _ = self.send(job).await;
        }
    }

    /// Waits for room, then queues `job`; `Err` when the task ended.
    pub(crate) async fn send(&self, mut job: Job) -> Result<(), ()> {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before the check: room made after it wakes this wait.
            room.as_mut().enable();
            match self.try_push(job) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(()),
                Err(Refused::Full(j)) => job = j,
            }
            room.await;
        }
    }

    /// Queues the disconnect now if there is room; false when the caller must wait for room with
    /// [`send`](Self::send).
    pub(crate) fn disconnect(&self, reason: DisconnectReason) -> bool {
        self.try_push(Job::Disconnect(reason)).is_ok()
    }

    /// Lets the connection's task run an event's listeners right away instead of queueing it for the
    /// socket's task: only when that task waits with nothing to do and nothing is queued, so events
    /// still run one at a time and in order. This saves a wake and a poll of a second task per event.
    /// Returns the socket task's waker, which the listeners' future is polled with (should it wait, it
    /// goes to that task: [`release`](Self::release)).
    pub(crate) fn claim(&self) -> Option<Waker> {
        let mut st = self.state.lock();
        if !st.parked || st.inline || st.closed || !st.jobs.is_empty() || st.overflow.is_some() {
            return None;
        }
        let waker = st.waker.clone()?;
        st.inline = true;
        Some(waker)
    }

    /// Ends a [`claim`](Self::claim): listeners still running go first in the queue, for the task.
    pub(crate) fn release(&self, running: Option<crate::engine::BoxFuture<()>>) {
        let mut st = self.state.lock();
        st.inline = false;
        let mut dropped = None;
        if let Some(f) = running {
            if st.closed {
                dropped = Some(f);
            } else {
                st.jobs.push_front(Job::Running(f));
            }
        }
        // Jobs queued meanwhile (a disconnect) waited for the claim to end.
        let waker = if st.jobs.is_empty() {
            None
        } else {
            st.waker.take()
        };
        drop(st);
        drop(dropped);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next job, for the socket's task. `idle`: the task has nothing else to run meanwhile, so an
    /// event may run on the connection's task instead ([`claim`](Self::claim)).
    pub(crate) async fn recv(&self, idle: bool) -> Job {
        std::future::poll_fn(|cx| {
            let mut st = self.state.lock();
            if st.inline {
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    st.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if let Some(job) = st.jobs.pop_front() {
                st.parked = false;
                let was_full = st.jobs.len() + 1 >= self.capacity;
                if st.jobs.is_empty() && st.jobs.capacity() > KEPT_SLOTS {
                    st.jobs = VecDeque::new();
                }
                drop(st);
                if was_full {
                    self.room.notify_waiters();
                }
                return Poll::Ready(job);
            }
            st.parked = idle;
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// The task ended: what is queued is dropped, and whoever waits for room is told.
    pub(crate) fn close(&self) {
        let (jobs, overflow) = {
            let mut st = self.state.lock();
            st.closed = true;
            st.waker = None;
            (std::mem::take(&mut st.jobs), st.overflow.take())
        };
        self.room.notify_waiters();
        // Dropped outside the lock: an event's ack sender may write to the connection as it goes.
        drop((jobs, overflow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reason(job: Job) -> DisconnectReason {
        match job {
            Job::Disconnect(r) => r,
            Job::Event(_) | Job::Running(_) => panic!("not a disconnect"),
        }
    }

    #[tokio::test]
    async fn bounded_in_order_and_the_overflow_waits_for_room() {
        let q = Queue::new(2);
        assert!(q.push(Job::Disconnect(DisconnectReason::PingTimeout)));
        assert!(q.push(Job::Disconnect(DisconnectReason::TransportClose)));
        // Full: the third waits in `overflow` until the task takes one.
        assert!(!q.push(Job::Disconnect(DisconnectReason::TransportError)));
        let flush = q.flush_overflow();
        let mut flush = std::pin::pin!(flush);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), flush.as_mut())
                .await
                .is_err()
        );
        assert_eq!(reason(q.recv(false).await), DisconnectReason::PingTimeout);
        flush.await;
        assert_eq!(
            reason(q.recv(false).await),
            DisconnectReason::TransportClose
        );
        assert_eq!(
            reason(q.recv(false).await),
            DisconnectReason::TransportError
        );
    }

    #[tokio::test]
    async fn a_closed_queue_drops_jobs_and_fails_waiting_senders() {
        let q = Queue::new(1);
        assert!(q.disconnect(DisconnectReason::PingTimeout));
        // Full: a disconnect must wait for room.
        assert!(!q.disconnect(DisconnectReason::TransportClose));
        let send = q.send(Job::Disconnect(DisconnectReason::TransportClose));
        let mut send = std::pin::pin!(send);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), send.as_mut())
                .await
                .is_err()
        );
        q.close();
        assert_eq!(send.await, Err(()));
        // The task is gone: an event is dropped (not an overflow), a disconnect is refused.
        assert!(q.push(Job::Disconnect(DisconnectReason::TransportError)));
        assert!(!q.disconnect(DisconnectReason::TransportError));
        assert!(q.state.lock().jobs.is_empty());
    }

    #[tokio::test]
    async fn a_drained_queue_gives_back_a_large_buffer() {
        let q = Queue::new(64);
        for _ in 0..32 {
            assert!(q.push(Job::Disconnect(DisconnectReason::PingTimeout)));
        }
        for _ in 0..32 {
            q.recv(false).await;
        }
        assert_eq!(q.state.lock().jobs.capacity(), 0);
    }
}
