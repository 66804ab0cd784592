//! Handshakes in progress per remote address (`max_pending_handshakes_per_address`).
//!
//! A session counts from its handshake until its handler says it is established (the Socket.IO server:
//! the first namespace joined) or until it closes, whichever comes first. A peer that opens sessions and
//! never joins anything holds each one until `connect_timeout`; without a cap, one address could hold as
//! many as it can open in that time.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use dashmap::DashMap;

/// The address a handshake is counted under: the IP of the peer socket (behind a reverse proxy, the
/// proxy's), with an IPv6 address reduced to its /64 prefix, since one host usually holds a whole /64.
fn key(addr: SocketAddr) -> IpAddr {
    match addr.ip().to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Counts of handshakes in progress, per address.
#[derive(Debug, Default)]
pub(crate) struct PendingHandshakes {
    max: Option<usize>,
    counts: DashMap<IpAddr, usize>,
}

impl PendingHandshakes {
    pub(crate) fn new(max: Option<usize>) -> Arc<Self> {
        Arc::new(PendingHandshakes {
            max,
            counts: DashMap::new(),
        })
    }

    /// A slot for a handshake from `addr`; `Err` when the address has `max` in progress already. No
    /// slot (and no limit) without an address or without a cap.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        addr: Option<SocketAddr>,
    ) -> Result<Option<HandshakeSlot>, ()> {
        let (Some(max), Some(addr)) = (self.max, addr) else {
            return Ok(None);
        };
        let ip = key(addr);
        let mut n = self.counts.entry(ip).or_insert(0);
        if *n >= max {
            return Err(());
        }
        *n += 1;
        Ok(Some(HandshakeSlot {
            owner: self.clone(),
            ip,
        }))
    }

    /// Handshakes in progress from `addr` (for tests and metrics).
    #[cfg(test)]
    fn count(&self, addr: SocketAddr) -> usize {
        self.counts.get(&key(addr)).map_or(0, |n| *n)
    }
}

/// One handshake in progress; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    owner: Arc<PendingHandshakes>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.owner.counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
        }
        // Forget an address with nothing in progress, so the map holds only busy addresses.
        self.owner.counts.remove_if(&self.ip, |_, n| *n == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn counts_per_address_and_frees_on_drop() {
        let p = PendingHandshakes::new(Some(2));
        let a = p.acquire(addr("10.0.0.1:1000")).unwrap();
        let b = p.acquire(addr("10.0.0.1:1001")).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(
            p.acquire(addr("10.0.0.1:1002")).is_err(),
            "third from one IP"
        );
        assert!(p.acquire(addr("10.0.0.2:1000")).unwrap().is_some());
        drop(a);
        assert_eq!(p.count("10.0.0.1:1".parse().unwrap()), 1);
        let c = p.acquire(addr("10.0.0.1:1003")).unwrap();
        drop((b, c));
        assert!(p.counts.is_empty(), "no entry left for idle addresses");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let p = PendingHandshakes::new(Some(1));
        let _a = p.acquire(addr("[2001:db8:1:2::1]:1")).unwrap();
        assert!(p.acquire(addr("[2001:db8:1:2:ffff::9]:2")).is_err());
        assert!(p.acquire(addr("[2001:db8:1:3::1]:2")).unwrap().is_some());
        let _b = p.acquire(addr("127.0.0.1:5")).unwrap();
        assert!(p.acquire(addr("[::ffff:127.0.0.1]:6")).is_err());
    }

    #[test]
    fn no_cap_or_no_address_is_unlimited() {
        let p = PendingHandshakes::new(None);
        assert!(p.acquire(addr("10.0.0.1:1")).unwrap().is_none());
        let p = PendingHandshakes::new(Some(0));
        assert!(p.acquire(None).unwrap().is_none());
        assert!(p.acquire(addr("10.0.0.1:1")).is_err());
    }
}
