//! A fast, non-keyed hasher for maps whose keys the peer does not choose.
//!
//! Socket ids are 128 random bits chosen by the server, ack ids are counted by the side that waits for
//! the ack, namespace names are the application's: nobody can pick colliding keys, and the SipHash of
//! the standard maps buys nothing there. It was the largest single cost of a fan-out (one lookup per
//! recipient per broadcast), and three of the client's hashes per ack. This is the Fx hash of rustc
//! (multiply-rotate, 8 bytes at a time). Maps whose keys a peer sends (rooms, object keys) keep SipHash.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher; see the module.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some((chunk, rest)) = bytes.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*chunk));
            bytes = rest;
        }
        if let Some((chunk, rest)) = bytes.split_first_chunk::<4>() {
            self.add(u64::from(u32::from_le_bytes(*chunk)));
            bytes = rest;
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown and dashmap take their bucket and shard bits from the top: fold the low bits, which
        // carry the last words' entropy, into them.
        self.0.rotate_left(26)
    }
}

/// `BuildHasher` of [`FxHasher`].
pub type FxBuild = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_ids_hash_apart() {
        let b = FxBuild::default();
        let ids: Vec<String> = (0..10_000).map(|i| format!("id-{i:018}")).collect();
        let mut top: std::collections::HashSet<u64> = std::collections::HashSet::new();
        for id in &ids {
            top.insert(b.hash_one(id.as_str()) >> 52);
        }
        // 4096 possible values of the top 12 bits: nearly all must be used.
        assert!(top.len() > 3500, "{}", top.len());
    }

    /// Ack ids are counted up from 0: consecutive integers must spread over the top bits too (hashbrown
    /// takes its 7-bit tags from there; equal tags would make every probe compare keys).
    #[test]
    fn consecutive_integers_hash_apart() {
        let b = FxBuild::default();
        let tags: std::collections::HashSet<u64> =
            (0u64..1_000).map(|i| b.hash_one(i) >> 57).collect();
        assert!(tags.len() > 100, "{}", tags.len());
        let top: std::collections::HashSet<u64> =
            (0u64..10_000).map(|i| b.hash_one(i) >> 52).collect();
        assert!(top.len() > 3500, "{}", top.len());
    }
}
