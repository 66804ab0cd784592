//! The socket's job queue: what its task runs, in arrival order.

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::DisconnectReason;
use super::event::Event;

/// One thing for the socket's task to do.
pub(crate) enum Job {
    Event(Event),
    Disconnect(DisconnectReason),
}

/// The sending end, in the socket. Bounded: when it is full, the connection's reader waits (see
/// `EngineHandler::backpressure`) instead of buffering without limit.
pub(crate) struct Queue {
    tx: mpsc::Sender<Job>,
    /// A job that did not fit; the connection's reader waits for it to go in before reading more.
    overflow: Mutex<Option<Job>>,
}

/// The receiving end, owned by the socket's task.
pub(crate) type Jobs = mpsc::Receiver<Job>;

impl Queue {
    pub(crate) fn new(capacity: usize) -> (Queue, Jobs) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Queue {
                tx,
                overflow: Mutex::new(None),
            },
            rx,
        )
    }

    /// Queues an incoming event; returns false when the queue is full (the job waits in `overflow`).
    pub(crate) fn push(&self, job: Job) -> bool {
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(job)) => {
                *self.overflow.lock() = Some(job);
                false
            }
            // The task is gone: the socket is disconnected, the event has nowhere to go.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// Waits until the overflowing job is queued.
    pub(crate) async fn flush_overflow(&self) {
        let job = self.overflow.lock().take();
        if let Some(job) = job {
            let _ = self.tx.send(job).await;
        }
    }

    /// Queues the disconnect now if there is room; otherwise returns a sender to wait for room with.
    pub(crate) fn disconnect(&self, reason: DisconnectReason) -> Option<mpsc::Sender<Job>> {
        match self.tx.try_send(Job::Disconnect(reason)) {
            Ok(()) => None,
            Err(_) => Some(self.tx.clone()),
        }
    }
}
