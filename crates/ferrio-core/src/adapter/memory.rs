//! The in-memory adapter: rooms of one process.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use ferrio_proto::socket::{Encoded, Packet};
use ferrio_proto::value::Value;
use parking_lot::{Mutex, RwLock};

use super::{
    AckEvent, AckSink, Adapter, AdapterError, BroadcastFlags, BroadcastOptions, JoinError,
    LocalNamespace, Recipient, RecoveryOptions, RestoredSession, Room, RoomListener, Session,
    SessionLog, Sid, SocketInfo,
};
use crate::BoxFuture;

#[derive(Default)]
struct Rooms {
    rooms: HashMap<Room, Few<Member>>,
    sids: HashMap<Sid, Joined>,
}

/// A socket's entry: its rooms, and the socket itself when the namespace handed it out.
#[derive(Default)]
struct Joined {
    rooms: Few<Room>,
    to: Option<Weak<dyn Recipient>>,
}

/// A member of a room: its sid, which is what it is compared and hashed by, and the socket itself
/// when the namespace handed it out, so that a broadcast reaches it without a lookup by sid.
#[derive(Clone)]
struct Member {
    sid: Sid,
    to: Option<Weak<dyn Recipient>>,
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        self.sid == other.sid
    }
}

impl Eq for Member {}

impl Hash for Member {
    // As its sid: a set of members is looked up by sid (`Borrow`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sid.hash(state)
    }
}

impl Borrow<Sid> for Member {
    fn borrow(&self) -> &Sid {
        &self.sid
    }
}

/// One recipient of a broadcast, collected under the rooms' lock and written to after it.
enum Target {
    Direct(Arc<dyn Recipient>),
    BySid(Sid),
}

impl Target {
    fn deliver(&self, ns: &dyn LocalNamespace, encoded: &Encoded, flags: &BroadcastFlags) {
        match self {
            Target::Direct(r) => {
                if r.deliver(encoded, flags).is_none() {
                    ns.deliver(r.sid(), encoded, flags);
                }
            }
            Target::BySid(sid) => {
                ns.deliver(sid, encoded, flags);
            }
        }
    }
}

/// A set that keeps a single member inline. Most sets here hold one: every socket has its own room,
/// with itself as the only member, and many sockets are in no other room. A hash set of one is a
/// table allocation of its own, two per connection for nothing. The table is boxed so that the set
/// takes little room in its map's slot (the maps hold one slot per socket and per room).
#[derive(Default, Debug)]
enum Few<T> {
    #[default]
    Empty,
    One(T),
    // Boxed on purpose (see above): the slot's size is what every socket and room pays.
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<T>>),
}

impl<T: std::hash::Hash + Eq + Clone> Few<T> {
    fn len(&self) -> usize {
        match self {
            Few::Empty => 0,
            Few::One(_) => 1,
            Few::Many(s) => s.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `x` is a member. A small set is compared by value: cheaper than hashing the key (this
    /// runs for every candidate of a broadcast that excludes rooms, such as the sender's own).
    fn contains<Q: Hash + Eq + ?Sized>(&self, x: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        match self {
            Few::Empty => false,
            Few::One(t) => t.borrow() == x,
            Few::Many(s) if s.len() <= 4 => s.iter().any(|t| t.borrow() == x),
            Few::Many(s) => s.contains(x),
        }
    }

    /// Adds `x`; returns whether it was new.
    fn insert(&mut self, x: T) -> bool {
        match self {
            Few::Empty => {
                *self = Few::One(x);
                true
            }
            Few::One(t) if *t == x => false,
            Few::One(_) => {
                let Few::One(t) = std::mem::take(self) else {
                    unreachable!("matched above")
                };
                *self = Few::Many(Box::new(HashSet::from([t, x])));
                true
            }
            Few::Many(s) => s.insert(x),
        }
    }

    /// Room for `n` more members at once (a join of several rooms). One more member needs none: `insert`
    /// grows the set itself, and a join repeating the room it is in must not build a table.
    fn reserve(&mut self, n: usize) {
        match self {
            Few::Many(s) => s.reserve(n),
            _ if n > 1 => {
                let mut s = HashSet::with_capacity(self.len() + n);
                if let Few::One(t) = std::mem::take(self) {
                    s.insert(t);
                }
                *self = Few::Many(Box::new(s));
            }
            _ => {}
        }
    }

    /// Puts `x` in the place of the member equal to it, if there is one.
    fn replace(&mut self, x: T) {
        match self {
            Few::One(t) if *t == x => *t = x,
            Few::Many(s) if s.contains(&x) => {
                s.replace(x);
            }
            _ => {}
        }
    }

    /// Takes `x` out; returns whether it was there.
    fn remove<Q: Hash + Eq + ?Sized>(&mut self, x: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        match self {
            Few::Empty => false,
            Few::One(t) if (*t).borrow() == x => {
                *self = Few::Empty;
                true
            }
            Few::One(_) => false,
            Few::Many(s) => {
                let removed = s.remove(x);
                if s.is_empty() {
                    *self = Few::Empty;
                }
                removed
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        let (one, many) = match self {
            Few::Empty => (None, None),
            Few::One(t) => (Some(t), None),
            Few::Many(s) => (None, Some(s.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// Rooms and broadcasts within one process.
pub struct MemoryAdapter {
    ns: Weak<dyn LocalNamespace>,
    state: RwLock<Rooms>,
    /// Usually empty: read on every join and leave, so a cheap read lock.
    listeners: RwLock<Vec<RoomListener>>,
    /// Set once when connection state recovery is on; unset, broadcasts take no lock and no offset.
    recovery: OnceLock<Mutex<SessionLog>>,
    /// The namespace's `max_rooms_per_socket`, read on the first join (the namespace cannot be reached
    /// while the factory builds the adapter).
    max_rooms: OnceLock<Option<usize>>,
}

impl std::fmt::Debug for MemoryAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.read();
        f.debug_struct("MemoryAdapter")
            .field("rooms", &s.rooms.len())
            .field("sockets", &s.sids.len())
            .finish()
    }
}

impl MemoryAdapter {
    /// An adapter for the namespace `ns`.
    pub fn new(ns: Weak<dyn LocalNamespace>) -> Self {
        MemoryAdapter {
            ns,
            state: RwLock::new(Rooms::default()),
            listeners: RwLock::new(Vec::new()),
            recovery: OnceLock::new(),
            max_rooms: OnceLock::new(),
        }
    }

    fn max_rooms(&self) -> Option<usize> {
        if let Some(max) = self.max_rooms.get() {
            return *max;
        }
        let ns = self.ns.upgrade()?;
        *self.max_rooms.get_or_init(|| ns.max_rooms_per_socket())
    }

    fn ns(&self) -> Result<std::sync::Arc<dyn LocalNamespace>, AdapterError> {
        self.ns.upgrade().ok_or(AdapterError::Closed)
    }

    /// Number of rooms (for tests and metrics).
    pub fn room_count(&self) -> usize {
        self.state.read().rooms.len()
    }

    /// Tells the room listeners, after the state lock is released (a listener may read the rooms).
    fn notify(&self, changes: &[(Room, bool)], sid: &Sid) {
        let listeners = self.listeners.read();
        for (room, joined) in changes {
            for l in listeners.iter() {
                l(room, sid, *joined);
            }
        }
    }

    fn listened(&self) -> bool {
        !self.listeners.read().is_empty()
    }

    /// Delivers `encoded` to every local socket matching `opts`.
    fn deliver_all(&self, ns: &dyn LocalNamespace, encoded: &Encoded, opts: &BroadcastOptions) {
        for t in self.targets(opts) {
            t.deliver(ns, encoded, &opts.flags);
        }
    }

    /// The sids of the local sockets matching `opts`.
    fn matching(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.collect(opts, |sid, _| sid.clone())
    }

    /// Where a broadcast to `opts` goes: each matching socket itself where the namespace handed it
    /// out, else its sid.
    fn targets(&self, opts: &BroadcastOptions) -> Vec<Target> {
        self.collect(opts, |sid, to| match to.and_then(Weak::upgrade) {
            Some(r) => Target::Direct(r),
            None => Target::BySid(sid.clone()),
        })
    }

    /// `pick` of each local socket matching `opts` (its sid and, when kept, the socket itself),
    /// collected first so that no lock is held while delivering.
    ///
    /// This runs once per broadcast over every recipient, so it hashes as little as it can: the excluded
    /// rooms are looked up once (not once per candidate), small excluded rooms (a socket's own room) are
    /// compared by value instead of hashed, and a single target room needs no de-duplication set (a
    /// growing `HashSet` was ~15% of the instructions of a 500-client fan-out).
    fn collect<T>(
        &self,
        opts: &BroadcastOptions,
        pick: impl Fn(&Sid, Option<&Weak<dyn Recipient>>) -> T,
    ) -> Vec<T> {
        let s = self.state.read();
        let except: Vec<&Few<Member>> = opts.except.iter().filter_map(|r| s.rooms.get(r)).collect();
        let excluded = |sid: &Sid| except.iter().any(|m| m.contains(sid));
        if opts.rooms.is_empty() {
            s.sids
                .iter()
                .filter(|(sid, _)| !excluded(sid))
                .map(|(sid, j)| pick(sid, j.to.as_ref()))
                .collect()
        } else if opts.rooms.len() == 1 {
            // One room: its members are distinct already.
            let Some(members) = opts.rooms.iter().next().and_then(|r| s.rooms.get(r)) else {
                return Vec::new();
            };
            let mut out = Vec::with_capacity(members.len());
            out.extend(
                members
                    .iter()
                    .filter(|m| !excluded(&m.sid))
                    .map(|m| pick(&m.sid, m.to.as_ref())),
            );
            out
        } else {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for r in &opts.rooms {
                if let Some(members) = s.rooms.get(r) {
                    for m in members.iter() {
                        if !excluded(&m.sid) && seen.insert(m.sid.clone()) {
                            out.push(pick(&m.sid, m.to.as_ref()));
                        }
                    }
                }
            }
            out
        }
    }
}

impl Adapter for MemoryAdapter {
    fn add_all(&self, sid: &Sid, rooms: &[Room]) {
        // The refusal is logged by `try_add_all`; a caller that must know uses it directly.
        let _ = self.try_add_all(sid, rooms);
    }

    fn try_add_all(&self, sid: &Sid, rooms: &[Room]) -> Result<(), JoinError> {
        let max = self.max_rooms();
        let listened = self.listened();
        // Asked before the lock: the namespace looks it up in its own map.
        let to = self.ns.upgrade().and_then(|ns| ns.recipient(sid));
        let mut joined = Vec::new();
        {
            let mut s = self.state.write();
            let Rooms { rooms: index, sids } = &mut *s;
            // One growth step for a join of many rooms, not one rehash per doubling.
            index.reserve(rooms.len());
            let entry = sids.entry(sid.clone()).or_default();
            let fresh = match (&to, &entry.to) {
                (Some(new), Some(old)) => !Weak::ptr_eq(new, old),
                (new, _) => new.is_some(),
            };
            if fresh {
                entry.to = to;
                // Rooms it joined before it was handed out (in a middleware, or restored with its
                // session) take the handle too.
                for r in entry.rooms.iter() {
                    if let Some(members) = index.get_mut(r) {
                        members.replace(Member {
                            sid: sid.clone(),
                            to: entry.to.clone(),
                        });
                    }
                }
            }
            let to = entry.to.clone();
            let entry = &mut entry.rooms;
            if let Some(max) = max
                && entry.len() + rooms.len() > max
            {
                // Only the rooms it is not in yet count (a join may repeat rooms).
                let new: HashSet<&Room> = rooms.iter().filter(|r| !entry.contains(*r)).collect();
                if entry.len() + new.len() > max {
                    let have = entry.len();
                    if have == 0 {
                        sids.remove(sid);
                    }
                    drop(s);
                    tracing::warn!(
                        sid = %sid,
                        rooms = have,
                        joining = new.len(),
                        max,
                        "join refused: max_rooms_per_socket reached"
                    );
                    return Err(JoinError::TooManyRooms { max });
                }
            }
            entry.reserve(rooms.len());
            for r in rooms {
                if entry.insert(r.clone()) && listened {
                    joined.push((r.clone(), true));
                }
            }
            for r in rooms {
                index.entry(r.clone()).or_default().insert(Member {
                    sid: sid.clone(),
                    to: to.clone(),
                });
            }
        }
        self.notify(&joined, sid);
        Ok(())
    }

    fn del(&self, sid: &Sid, room: &Room) {
        let mut left = false;
        {
            let mut s = self.state.write();
            if let Some(j) = s.sids.get_mut(sid) {
                left = j.rooms.remove(room);
            }
            if let Some(members) = s.rooms.get_mut(room) {
                members.remove(sid);
                if members.is_empty() {
                    s.rooms.remove(room);
                }
            }
        }
        if left {
            self.notify(&[(room.clone(), false)], sid);
        }
    }

    fn del_all(&self, sid: &Sid) {
        let listened = self.listened();
        let mut left = Vec::new();
        {
            let mut s = self.state.write();
            let Some(Joined { rooms, .. }) = s.sids.remove(sid) else {
                return;
            };
            for r in rooms.iter() {
                if let Some(members) = s.rooms.get_mut(r) {
                    members.remove(sid);
                    if members.is_empty() {
                        s.rooms.remove(r);
                    }
                }
                if listened {
                    left.push((r.clone(), false));
                }
            }
        }
        self.notify(&left, sid);
    }

    fn on_room_change(&self, listener: RoomListener) {
        self.listeners.write().push(listener);
    }

    fn socket_rooms(&self, sid: &Sid) -> Vec<Room> {
        self.state
            .read()
            .sids
            .get(sid)
            .map(|j| j.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.matching(opts)
    }

    fn all_rooms(&self, _local: bool) -> BoxFuture<Result<HashSet<Room>, AdapterError>> {
        let rooms = self.state.read().rooms.keys().cloned().collect();
        Box::pin(async move { Ok(rooms) })
    }

    fn broadcast(
        &self,
        mut packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let result = self.ns().map(|ns| match self.recovery.get() {
            Some(log) if SessionLog::is_eligible(&packet, &opts) => {
                // Offset, delivery and log entry under one lock: every socket gets the packets in
                // offset order, and a restore sees each packet either in the log before the socket
                // rejoined its rooms, or delivered (held) after.
                let mut log = log.lock();
                let now = Instant::now();
                log.stamp(now, &mut packet);
                self.deliver_all(&*ns, &ns.encode(&packet), &opts);
                log.push(now, packet, opts);
            }
            _ => self.deliver_all(&*ns, &ns.encode(&packet), &opts),
        });
        Box::pin(async move { result })
    }

    fn takes_encoded(&self, opts: &BroadcastOptions) -> bool {
        // A broadcast the session log keeps needs its packet (stamped with its offset, replayed).
        self.recovery.get().is_none() || !SessionLog::keeps(opts)
    }

    fn broadcast_encoded(
        &self,
        encoded: &Encoded,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        debug_assert!(self.takes_encoded(opts));
        let ns = self.ns()?;
        self.deliver_all(&*ns, encoded, opts);
        Ok(())
    }

    fn broadcast_with_ack(
        &self,
        mut packet: Packet,
        opts: BroadcastOptions,
        sink: AckSink,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let result = self.ns().map(|ns| {
            let ack_id = ns.next_ack_id();
            if let Packet::Event { id, .. } = &mut packet {
                *id = Some(ack_id);
            }
            let encoded = ns.encode(&packet);
            let mut count = 0;
            for sid in self.matching(&opts) {
                if ns.deliver_with_ack(&sid, &encoded, ack_id, &sink) {
                    count += 1;
                }
            }
            let _ = sink.send(AckEvent::ClientCount(count));
            let _ = sink.send(AckEvent::CountsComplete);
        });
        Box::pin(async move { result })
    }

    fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> BoxFuture<Result<Vec<SocketInfo>, AdapterError>> {
        let result = self.ns().map(|ns| {
            self.matching(&opts)
                .iter()
                .filter_map(|sid| ns.socket_info(sid))
                .collect()
        });
        Box::pin(async move { result })
    }

    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        for sid in self.matching(&opts) {
            self.add_all(&sid, &rooms);
        }
        Box::pin(async { Ok(()) })
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        for sid in self.matching(&opts) {
            for r in &rooms {
                self.del(&sid, r);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<Result<(), AdapterError>> {
        let result = self.ns().map(|ns| {
            for sid in self.matching(&opts) {
                ns.disconnect(&sid, close);
            }
        });
        Box::pin(async move { result })
    }

    fn server_side_emit(
        &self,
        _event: String,
        _args: Vec<Value>,
        sink: Option<AckSink>,
    ) -> BoxFuture<Result<(), AdapterError>> {
        // One node: nobody else to tell. With acks, the caller gets zero responses at once.
        if let Some(sink) = sink {
            let _ = sink.send(AckEvent::ClientCount(0));
            let _ = sink.send(AckEvent::CountsComplete);
        }
        Box::pin(async { Ok(()) })
    }

    fn socket_ids(&self, opts: BroadcastOptions) -> BoxFuture<Result<Vec<Sid>, AdapterError>> {
        let ids = self.matching(&opts);
        Box::pin(async move { Ok(ids) })
    }

    fn sockets_count(&self, opts: BroadcastOptions) -> BoxFuture<Result<usize, AdapterError>> {
        let n = {
            let s = self.state.read();
            match (opts.rooms.len(), opts.except.is_empty()) {
                // The common question, "how many in this room", is the size of one set.
                (1, true) => opts
                    .rooms
                    .iter()
                    .next()
                    .and_then(|r| s.rooms.get(r))
                    .map_or(0, |m| m.len()),
                (0, true) => s.sids.len(),
                _ => {
                    drop(s);
                    self.matching(&opts).len()
                }
            }
        };
        Box::pin(async move { Ok(n) })
    }

    fn server_count(&self) -> BoxFuture<usize> {
        Box::pin(async { 1 })
    }

    fn enable_recovery(&self, opts: RecoveryOptions) -> bool {
        let _ = self.recovery.set(Mutex::new(SessionLog::new(opts)));
        true
    }

    fn persist_session(&self, session: Session) -> BoxFuture<Result<(), AdapterError>> {
        if let Some(log) = self.recovery.get() {
            log.lock().persist(Instant::now(), session);
        }
        Box::pin(async { Ok(()) })
    }

    fn restore_session(
        &self,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<Result<Option<RestoredSession>, AdapterError>> {
        let restored = self.recovery.get().and_then(|log| {
            let mut log = log.lock();
            let restored = log.restore(Instant::now(), pid, offset)?;
            // Still under the log's lock, so that no broadcast falls between the snapshot and the
            // socket's return to its rooms.
            let sid = &restored.session.sid;
            self.add_all(sid, &restored.session.rooms);
            if let Some(ns) = self.ns.upgrade() {
                ns.hold(sid);
            }
            Some(restored)
        });
        Box::pin(async move { Ok(restored) })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_few_set_moves_between_its_forms_and_keeps_its_members() {
        let mut f: Few<u32> = Few::default();
        assert!(f.is_empty() && !f.contains(&1));
        assert!(f.insert(1));
        assert!(matches!(f, Few::One(1)));
        assert!(!f.insert(1), "a member is not added twice");
        assert!(f.insert(2) && f.insert(3));
        assert_eq!(f.len(), 3);
        for x in 4..10 {
            f.insert(x);
        }
        // Past the small size, membership goes through the hash table.
        assert!(f.contains(&9) && !f.contains(&10));
        let mut all: Vec<u32> = f.iter().copied().collect();
        all.sort();
        assert_eq!(all, (1..10).collect::<Vec<_>>());
        assert!(f.remove(&1) && !f.remove(&1));
        for x in 2..10 {
            assert!(f.remove(&x));
        }
        assert!(matches!(f, Few::Empty), "an emptied set holds no table");
        f.reserve(1);
        assert!(
            matches!(f, Few::Empty),
            "room for one member needs no table"
        );
        f.insert(5);
        f.reserve(1);
        assert!(
            matches!(f, Few::One(5)),
            "a join that may repeat a room builds no table"
        );
        f.reserve(3);
        assert!(matches!(&f, Few::Many(s) if s.capacity() >= 4 && s.contains(&5)));
        assert!(f.remove(&5) && f.is_empty());
        assert!(!Few::One(3).contains(&4));
    }

    fn adapter() -> MemoryAdapter {
        let weak: Weak<dyn LocalNamespace> = Weak::<HandingNs>::new();
        MemoryAdapter::new(weak)
    }

    fn room(s: &str) -> Room {
        Arc::from(s)
    }

    fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
        BroadcastOptions {
            rooms: rooms.iter().map(|r| room(r)).collect(),
            except: except.iter().map(|r| room(r)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rooms_and_targets() {
        let a = adapter();
        let (s1, s2, s3) = (room("s1"), room("s2"), room("s3"));
        a.add_all(&s1, &[s1.clone(), room("r1"), room("r2")]);
        a.add_all(&s2, &[s2.clone(), room("r1")]);
        a.add_all(&s3, std::slice::from_ref(&s3));
        let mut all = a.sockets(&opts(&[], &[]));
        all.sort();
        assert_eq!(all, vec![s1.clone(), s2.clone(), s3.clone()]);
        let mut r1 = a.sockets(&opts(&["r1", "r2"], &[]));
        r1.sort();
        assert_eq!(
            r1,
            vec![s1.clone(), s2.clone()],
            "a socket in two target rooms counts once"
        );
        assert_eq!(a.sockets(&opts(&["r1"], &["s1"])), vec![s2.clone()]);
        assert_eq!(a.sockets(&opts(&[], &["r1"])), vec![s3.clone()]);
        a.del(&s1, &room("r2"));
        assert!(a.sockets(&opts(&["r2"], &[])).is_empty());
        a.del_all(&s1);
        assert_eq!(a.socket_rooms(&s1), Vec::<Room>::new());
        assert_eq!(a.sockets(&opts(&["r1"], &[])), vec![s2]);
    }

    /// Hands out recipients for the sids in `sockets` and logs what it delivers by sid.
    #[derive(Default)]
    struct HandingNs {
        sockets: parking_lot::Mutex<HashMap<String, Arc<Direct>>>,
        by_sid: parking_lot::Mutex<Vec<String>>,
    }

    /// A recipient that logs what reaches it directly, and takes deliveries while `live`.
    struct Direct {
        sid: String,
        live: std::sync::atomic::AtomicBool,
        got: std::sync::atomic::AtomicUsize,
    }

    impl Recipient for Direct {
        fn sid(&self) -> &str {
            &self.sid
        }
        fn deliver(&self, _: &Encoded, _: &BroadcastFlags) -> Option<bool> {
            use std::sync::atomic::Ordering::SeqCst;
            self.live.load(SeqCst).then(|| {
                self.got.fetch_add(1, SeqCst);
                true
            })
        }
    }

    impl LocalNamespace for HandingNs {
        fn name(&self) -> &str {
            "/"
        }
        fn encode(&self, p: &Packet) -> Encoded {
            ferrio_proto::socket::encode(p)
        }
        fn deliver(&self, sid: &str, _: &Encoded, _: &BroadcastFlags) -> bool {
            self.by_sid.lock().push(sid.to_owned());
            true
        }
        fn recipient(&self, sid: &str) -> Option<Weak<dyn Recipient>> {
            let s = self.sockets.lock();
            s.get(sid).map(|d| Arc::downgrade(d) as Weak<dyn Recipient>)
        }
        fn deliver_with_ack(&self, _: &str, _: &Encoded, _: u64, _: &AckSink) -> bool {
            true
        }
        fn next_ack_id(&self) -> u64 {
            0
        }
        fn socket_info(&self, _: &str) -> Option<SocketInfo> {
            None
        }
        fn disconnect(&self, _: &str, _: bool) {}
        fn on_server_side_emit(&self, _: String, _: Vec<Value>, _: Option<AckSink>) {}
    }

    #[test]
    fn broadcasts_reach_handed_out_sockets_directly_and_the_rest_by_sid() {
        use std::sync::atomic::Ordering::SeqCst;
        let ns = Arc::new(HandingNs::default());
        let direct = |sid: &str| {
            let d = Arc::new(Direct {
                sid: sid.to_owned(),
                live: true.into(),
                got: 0.into(),
            });
            ns.sockets.lock().insert(sid.to_owned(), d.clone());
            d
        };
        let (a, b, gone) = (direct("a"), direct("b"), direct("gone"));
        let weak: Weak<dyn LocalNamespace> = Arc::downgrade(&ns) as Weak<dyn LocalNamespace>;
        let adapter = MemoryAdapter::new(weak);
        for sid in ["a", "b", "gone", "unknown"] {
            adapter.add_all(&room(sid), &[room(sid), room("r")]);
        }
        // "gone" was dropped since it joined, "b" no longer takes deliveries for its sid: both are
        // reached by sid, as "unknown" (never handed out) is.
        ns.sockets.lock().remove("gone");
        drop(gone);
        b.live.store(false, SeqCst);
        let packet = || Packet::Event {
            nsp: "/".into(),
            event: "e".into(),
            args: vec![],
            id: None,
        };
        // The in-memory adapter's futures are ready at once.
        let send = |o: BroadcastOptions| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let sent = adapter.broadcast(packet(), o).as_mut().poll(&mut cx);
            assert!(matches!(sent, std::task::Poll::Ready(Ok(()))));
        };
        send(opts(&["r"], &[]));
        assert_eq!(a.got.load(SeqCst), 1);
        assert_eq!(b.got.load(SeqCst), 0);
        let mut by_sid = std::mem::take(&mut *ns.by_sid.lock());
        by_sid.sort();
        assert_eq!(by_sid, ["b", "gone", "unknown"]);

        // Excluded rooms still exclude, and every socket is reached once.
        b.live.store(true, SeqCst);
        send(opts(&["r", "a"], &["unknown"]));
        assert_eq!((a.got.load(SeqCst), b.got.load(SeqCst)), (2, 1));
        assert_eq!(*ns.by_sid.lock(), ["gone"]);
        ns.by_sid.lock().clear();
        // A socket handed out after its first joins (in a middleware, or restored with its session)
        // is reached directly from its next join on, in the rooms it joined before too.
        let late = direct("unknown");
        adapter.add_all(&room("unknown"), &[room("late")]);
        send(opts(&["late"], &[]));
        send(opts(&["r"], &["a", "b", "gone"]));
        assert_eq!(late.got.load(SeqCst), 2);
        assert!(ns.by_sid.lock().is_empty());
        // A socket handed out anew under the same sid replaces the old one in all its rooms.
        let again = direct("a");
        adapter.add_all(&room("a"), &[room("a")]);
        send(opts(&["r"], &["unknown"]));
        assert_eq!((a.got.load(SeqCst), again.got.load(SeqCst)), (2, 1));
        // Everyone, with no rooms named: the sockets' own entries carry them too.
        send(opts(&[], &[]));
        assert_eq!(
            (
                again.got.load(SeqCst),
                b.got.load(SeqCst),
                late.got.load(SeqCst)
            ),
            (2, 3, 3)
        );
        assert_eq!(*ns.by_sid.lock(), ["gone", "gone"]);
    }

    #[test]
    fn del_all_frees_a_million_rooms() {
        let a = adapter();
        let sid = room("s");
        let rooms: Vec<Room> = (0..1_000_000).map(|i| room(&i.to_string())).collect();
        a.add_all(&sid, &rooms);
        assert_eq!(a.room_count(), 1_000_000);
        a.del_all(&sid);
        assert_eq!(a.room_count(), 0);
        assert!(a.state.read().sids.is_empty());
    }

    #[test]
    fn room_listeners_see_each_join_and_leave_once() {
        let a = adapter();
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = seen.clone();
        a.on_room_change(std::sync::Arc::new(move |r: &Room, s: &Sid, joined| {
            log.lock().push((r.to_string(), s.to_string(), joined));
        }));
        let s1 = room("s1");
        a.add_all(&s1, &[room("s1"), room("r1")]);
        a.add_all(&s1, &[room("r1")]);
        a.del(&s1, &room("r2"));
        a.del(&s1, &room("r1"));
        a.add_all(&s1, &[room("r2")]);
        a.del_all(&s1);
        let mut events = seen.lock().clone();
        // `del_all` leaves its rooms in no particular order.
        events[4..].sort();
        let e = |r: &str, j| (r.to_owned(), "s1".to_owned(), j);
        assert_eq!(
            events,
            vec![
                e("s1", true),
                e("r1", true),
                e("r1", false),
                e("r2", true),
                e("r2", false),
                e("s1", false)
            ],
            "no event for a room joined twice or a room the socket is not in"
        );
    }
}
