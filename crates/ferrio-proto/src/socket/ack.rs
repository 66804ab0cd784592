//! Acknowledgements on both sides: the answer's arguments, the errors of an emit that waits for one, and
//! the table of pending acks with their deadlines (one timer per owner, not one per ack).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::fxhash::FxBuild;
use crate::value::{Value, ValueError, from_args};

/// The arguments of an ack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AckArgs(pub Vec<Value>);

impl AckArgs {
    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(self) -> Result<T, ValueError> {
        from_args(self.0)
    }

    /// The raw arguments.
    pub fn into_inner(self) -> Vec<Value> {
        self.0
    }
}

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The arguments could not be serialized.
    #[error("cannot serialize arguments: {0}")]
    Serialize(#[from] ValueError),
    /// The socket is disconnected (and does not buffer).
    #[error("socket disconnected")]
    Disconnected,
    /// The event name is reserved.
    #[error("\"{0}\" is a reserved event name")]
    Reserved(String),
}

/// Why an ack did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// No answer within the timeout (after every retry, on a client with `retries`).
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("socket disconnected")]
    Disconnected,
}

/// Pending acks of one owner (a socket, a namespace's broadcasts), each with an optional deadline.
///
/// The owner keeps one timer at `poll_timeout()` and calls `handle_timeout(now)` when it fires: every
/// ack past its deadline comes back once, and a late answer then finds nothing to `take`.
#[derive(Debug)]
pub struct AckTable<T> {
    next_id: u64,
    /// Keyed by our own ids (the peer only names them back): the Fx hash, not SipHash.
    pending: HashMap<u64, (Option<Instant>, T), FxBuild>,
    deadlines: BTreeSet<(Instant, u64)>,
}

impl<T> Default for AckTable<T> {
    fn default() -> Self {
        AckTable {
            next_id: 0,
            pending: HashMap::default(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl<T> AckTable<T> {
    /// An empty table whose first id is 0, as the official implementations count.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next ack id.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Waits for the answer to `id` until `deadline` (forever with `None`). An entry already under
    /// `id` is replaced and returned.
    pub fn insert(&mut self, id: u64, deadline: Option<Instant>, value: T) -> Option<T> {
        if let Some(d) = deadline {
            self.deadlines.insert((d, id));
        }
        let old = self.pending.insert(id, (deadline, value));
        old.map(|(old_deadline, v)| {
            if let Some(d) = old_deadline
                && Some(d) != deadline
            {
                self.deadlines.remove(&(d, id));
            }
            v
        })
    }

    /// Takes a fresh id and waits for its answer: `next_id` and `insert` in one.
    pub fn register(&mut self, deadline: Option<Instant>, value: T) -> u64 {
        let id = self.next_id();
        self.insert(id, deadline, value);
        id
    }

    /// The answer to `id` came: its entry, unless it already timed out (or never existed).
    pub fn take(&mut self, id: u64) -> Option<T> {
        let (deadline, value) = self.pending.remove(&id)?;
        if let Some(d) = deadline {
            self.deadlines.remove(&(d, id));
        }
        Some(value)
    }

    /// Whether `id` is still waiting.
    pub fn contains(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    /// The earliest deadline, when some ack has one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// Removes and returns every ack whose deadline is at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(u64, T)> {
        let mut expired = Vec::new();
        while let Some(&(d, id)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, v)) = self.pending.remove(&id) {
                expired.push((id, v));
            }
        }
        expired
    }

    /// Removes every pending ack (the owner disconnected), in id order.
    pub fn drain(&mut self) -> Vec<(u64, T)> {
        self.deadlines.clear();
        let mut all: Vec<(u64, T)> = self.pending.drain().map(|(id, (_, v))| (id, v)).collect();
        all.sort_unstable_by_key(|&(id, _)| id);
        all
    }

    /// Acks waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no ack is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ids_count_from_zero() {
        let mut t = AckTable::<()>::new();
        assert_eq!(t.next_id(), 0);
        assert_eq!(t.register(None, ()), 1);
        assert_eq!(t.next_id(), 2);
    }

    #[test]
    fn deadlines_fire_in_order_and_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = AckTable::new();
        let a = t.register(Some(t0 + 2 * s), "a");
        let b = t.register(Some(t0 + s), "b");
        let c = t.register(None, "c");
        assert_eq!(t.poll_timeout(), Some(t0 + s));
        assert!(t.handle_timeout(t0).is_empty());
        assert_eq!(t.handle_timeout(t0 + s), vec![(b, "b")]);
        assert_eq!(t.poll_timeout(), Some(t0 + 2 * s));
        // A late answer to b finds nothing; an answer to a in time cancels its deadline.
        assert_eq!(t.take(b), None);
        assert_eq!(t.take(a), Some("a"));
        assert_eq!(t.poll_timeout(), None);
        assert!(t.handle_timeout(t0 + 10 * s).is_empty());
        assert_eq!(t.len(), 1);
        assert_eq!(t.drain(), vec![(c, "c")]);
        assert!(t.is_empty());
    }

    #[test]
    fn replacing_an_entry_moves_its_deadline() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = AckTable::new();
        t.insert(7, Some(t0 + s), 1);
        assert_eq!(t.insert(7, Some(t0 + 3 * s), 2), Some(1));
        assert!(t.handle_timeout(t0 + s).is_empty());
        assert_eq!(t.handle_timeout(t0 + 3 * s), vec![(7, 2)]);
    }

    #[test]
    fn drain_returns_everything_in_id_order() {
        let mut t = AckTable::new();
        for i in 0..20 {
            t.register(None, i);
        }
        let ids: Vec<u64> = t.drain().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, (0..20).collect::<Vec<_>>());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn ack_args_parse() {
        let a = AckArgs(vec![Value::from(1u64), Value::from("x")]);
        let (n, s): (u32, String) = a.clone().parse().unwrap();
        assert_eq!((n, s.as_str()), (1, "x"));
        let first: u32 = a.parse().unwrap();
        assert_eq!(first, 1);
    }
}
