//! The client's retry queue (`retries` option): packets that must be acknowledged go out one at a time,
//! in order; a packet whose ack timed out is sent again until it was tried `retries + 1` times.
//!
//! The queue only decides; the socket sends, registers each try's ack (with a fresh ack id and the ack
//! timeout) in its `AckTable`, and reports the outcome here.

use std::collections::VecDeque;

#[derive(Debug)]
struct Entry<T> {
    seq: u64,
    tries: u32,
    in_flight: bool,
    item: T,
}

/// What the outcome of a try means.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryOutcome<T> {
    /// The outcome is for a packet no longer at the head (already settled): ignore it.
    Stale,
    /// Acknowledged: the packet leaves the queue; answer its sender.
    Acked(T),
    /// Timed out with tries left: `next` gives it again.
    Retry,
    /// Timed out after its last try: the packet leaves the queue; fail its sender.
    GaveUp(T),
}

/// Packets waiting for their acks, one in flight at a time.
#[derive(Debug)]
pub struct RetryQueue<T> {
    queue: VecDeque<Entry<T>>,
    retries: u32,
    next_seq: u64,
}

impl<T> RetryQueue<T> {
    /// A queue whose packets are tried `retries + 1` times in all.
    pub fn new(retries: u32) -> Self {
        RetryQueue {
            queue: VecDeque::new(),
            retries,
            next_seq: 0,
        }
    }

    /// Queues a packet; returns its sequence number (for `on_result`).
    pub fn push(&mut self, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Entry {
            seq,
            tries: 0,
            in_flight: false,
            item,
        });
        seq
    }

    /// The packet to send now, if any: the head, unless it is already in flight. `force` sends the head
    /// again even if in flight (after a reconnection, the try in flight was lost with the connection).
    /// The call counts a try.
    pub fn next(&mut self, force: bool) -> Option<(u64, &T)> {
        let head = self.queue.front_mut()?;
        if head.in_flight && !force {
            return None;
        }
        head.in_flight = true;
        head.tries += 1;
        Some((head.seq, &head.item))
    }

    /// Tries made of the head packet.
    pub fn head_tries(&self) -> Option<u32> {
        self.queue.front().map(|e| e.tries)
    }

    /// The try of packet `seq` ended: acknowledged (`acked`) or timed out.
    pub fn on_result(&mut self, seq: u64, acked: bool) -> RetryOutcome<T> {
        let Some(head) = self.queue.front_mut() else {
            return RetryOutcome::Stale;
        };
        if head.seq != seq {
            return RetryOutcome::Stale;
        }
        head.in_flight = false;
        if acked {
            let e = self.queue.pop_front().expect("head exists");
            return RetryOutcome::Acked(e.item);
        }
        if head.tries > self.retries {
            let e = self.queue.pop_front().expect("head exists");
            return RetryOutcome::GaveUp(e.item);
        }
        RetryOutcome::Retry
    }

    /// Packets queued, the one in flight included.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Empties the queue (the socket was closed for good), in order.
    pub fn drain(&mut self) -> Vec<T> {
        self.queue.drain(..).map(|e| e.item).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::socket::AckTable;

    /// A socket's ack side as the client drives it: each try registers an ack with a deadline.
    struct Harness {
        queue: RetryQueue<&'static str>,
        acks: AckTable<u64>,
        timeout: Duration,
        sent: Vec<(&'static str, u64)>,
        done: Vec<Result<&'static str, &'static str>>,
    }

    impl Harness {
        fn new(retries: u32) -> Self {
            Harness {
                queue: RetryQueue::new(retries),
                acks: AckTable::new(),
                timeout: Duration::from_secs(1),
                sent: Vec::new(),
                done: Vec::new(),
            }
        }

        fn drain(&mut self, now: Instant, force: bool) {
            if let Some((seq, item)) = self.queue.next(force) {
                let id = self.acks.register(Some(now + self.timeout), seq);
                self.sent.push((*item, id));
            }
        }

        fn settle(&mut self, now: Instant, seq: u64, acked: bool) {
            match self.queue.on_result(seq, acked) {
                RetryOutcome::Acked(i) => self.done.push(Ok(i)),
                RetryOutcome::GaveUp(i) => self.done.push(Err(i)),
                RetryOutcome::Retry | RetryOutcome::Stale => {}
            }
            self.drain(now, false);
        }

        fn emit(&mut self, now: Instant, item: &'static str) {
            self.queue.push(item);
            self.drain(now, false);
        }

        fn ack(&mut self, now: Instant, id: u64) {
            if let Some(seq) = self.acks.take(id) {
                self.settle(now, seq, true);
            }
        }

        fn tick(&mut self, now: Instant) {
            for (_, seq) in self.acks.handle_timeout(now) {
                self.settle(now, seq, false);
            }
        }
    }

    #[test]
    fn one_in_flight_in_order() {
        let t0 = Instant::now();
        let mut h = Harness::new(3);
        h.emit(t0, "a");
        h.emit(t0, "b");
        assert_eq!(h.sent, vec![("a", 0)], "b waits for a's ack");
        h.ack(t0, 0);
        assert_eq!(h.done, vec![Ok("a")]);
        assert_eq!(h.sent, vec![("a", 0), ("b", 1)]);
        h.ack(t0, 1);
        assert_eq!(h.done, vec![Ok("a"), Ok("b")]);
        assert!(h.queue.is_empty());
    }

    #[test]
    fn retried_with_a_fresh_id_then_given_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut h = Harness::new(2);
        h.emit(t0, "a");
        h.emit(t0, "b");
        h.tick(t0 + s);
        h.tick(t0 + 2 * s);
        assert_eq!(h.sent, vec![("a", 0), ("a", 1), ("a", 2)]);
        assert!(h.done.is_empty(), "three tries in all with retries = 2");
        h.tick(t0 + 3 * s);
        assert_eq!(h.done, vec![Err("a")]);
        assert_eq!(
            h.sent.last(),
            Some(&("b", 3)),
            "the next packet goes once a gives up"
        );
        // A late answer to an earlier try of a changes nothing.
        h.ack(t0 + 3 * s, 1);
        assert_eq!(h.done, vec![Err("a")]);
    }

    #[test]
    fn an_answer_to_a_retry_settles_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut h = Harness::new(5);
        h.emit(t0, "a");
        h.tick(t0 + s);
        assert_eq!(h.queue.head_tries(), Some(2));
        h.ack(t0 + s, 1);
        assert_eq!(h.done, vec![Ok("a")]);
        assert!(h.acks.is_empty());
    }

    #[test]
    fn reconnection_forces_the_head_again() {
        let t0 = Instant::now();
        let mut h = Harness::new(1);
        h.emit(t0, "a");
        h.drain(t0, false);
        assert_eq!(h.sent.len(), 1, "in flight: not sent twice");
        h.drain(t0, true);
        assert_eq!(h.sent, vec![("a", 0), ("a", 1)]);
        assert_eq!(h.queue.head_tries(), Some(2));
        assert_eq!(h.queue.drain(), vec!["a"]);
    }

    #[test]
    fn stale_outcomes_are_ignored() {
        let mut q = RetryQueue::new(0);
        assert_eq!(q.on_result(0, true), RetryOutcome::Stale);
        let a = q.push(1);
        let b = q.push(2);
        assert_eq!(q.next(false), Some((a, &1)));
        assert_eq!(q.on_result(b, true), RetryOutcome::Stale);
        assert_eq!(q.on_result(a, false), RetryOutcome::GaveUp(1));
        assert_eq!(q.len(), 1);
    }
}
