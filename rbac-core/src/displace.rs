//! Perfect hashing for the snapshot's name tables (hash and displace, as in PTHash).
//!
//! A snapshot never changes, so every name it will be asked about is known when it is built.
//! Each name's slot can then be chosen so that no two names share one: a lookup hashes the
//! name, reads the small "pilot" of the name's bucket, computes the slot and compares the one
//! name stored there. There is no probe sequence, so no branch that depends on how many slots
//! a probe visits. With linear probing, a random mix of checks took that branch one way or the
//! other unpredictably (a table three quarters full needs 2.5 probes on average), and each
//! misprediction also threw away the work the processor had started on the next check: the
//! probe loops were the hottest instructions of a profiled check.
//!
//! Building: names are hashed into buckets of about [`KEYS_PER_BUCKET`]; buckets are placed
//! largest first, each trying pilots `0, 1, 2, …` until every name of the bucket lands on a
//! free slot, distinct from the others. With the table at most 4/5 full that takes a few
//! tries per bucket. A bucket for which no 16-bit pilot works (two names with the same 64-bit
//! hash, or bad luck) makes the build start again with a new hash seed and a larger table; if
//! that keeps failing, the names that could not be placed are reported as such and are then
//! unknown to lookups (denied), never aliased.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

/// Names per bucket, on average: the pilots of a million names take 500 KB.
const KEYS_PER_BUCKET: usize = 4;

/// Builds tried, each with a new seed and a table 1/8 larger than the one before.
const ATTEMPTS: usize = 12;

/// Where each name of a fixed set lives in a table of [`Displace::slots`] slots.
#[derive(Debug, Clone)]
pub(crate) struct Displace {
    hasher: RandomState,
    pilots: Box<[u16]>,
    buckets: u64,
    slots: u64,
}

impl Displace {
    /// Places `keys` (distinct) and returns the table's layout and each key's slot, in order
    /// (None for a key that could not be placed: see the module docs).
    pub(crate) fn build<K: AsRef<[u8]>>(keys: &[K]) -> (Displace, Vec<Option<usize>>) {
        let n = keys.len();
        let buckets = n / KEYS_PER_BUCKET + 1;
        // At most 4/5 full, and at least one slot so that a lookup always has one to read.
        let mut slots = (n + n / 4 + 1).min(u32::MAX as usize);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let hasher = RandomState::default();
            let hashes: Vec<u64> = keys.iter().map(|k| hash(&hasher, k.as_ref())).collect();
            // The last attempt always returns.
            let best_effort = attempt >= ATTEMPTS;
            if let Some((pilots, at)) = place(&hashes, buckets, slots, best_effort) {
                let table = Displace {
                    hasher,
                    pilots: pilots.into_boxed_slice(),
                    buckets: buckets as u64,
                    slots: slots as u64,
                };
                return (table, at);
            }
            slots = slots.saturating_add(slots / 8).min(u32::MAX as usize);
        }
    }

    /// How many slots the table has (at least one).
    pub(crate) fn slots(&self) -> usize {
        self.slots as usize
    }

    #[inline(always)]
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        hash(&self.hasher, key)
    }

    /// The only slot where the key of `hash` can be.
    #[inline(always)]
    pub(crate) fn slot(&self, hash: u64) -> usize {
        let bucket = ((hash & 0xffff_ffff) * self.buckets) >> 32;
        let pilot = self.pilots.get(bucket as usize).copied().unwrap_or(0);
        position(hash, pilot, self.slots)
    }
}

/// The hash of `key`: its bytes alone, without the length prefix `Hash` for slices adds (the
/// length already enters foldhash's mixing of the bytes, and the prefix cost one more
/// multiplication per name, three per check).
#[inline(always)]
fn hash(hasher: &RandomState, key: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut state = hasher.build_hasher();
    state.write(key);
    state.finish()
}

/// The slot of a key of hash `hash` in bucket whose pilot is `pilot`, among `slots`.
#[inline(always)]
fn position(hash: u64, pilot: u16, slots: u64) -> usize {
    let x = (hash ^ u64::from(pilot).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (((x >> 32) * slots) >> 32) as usize
}

/// Chooses a pilot per bucket. Returns the pilots and each key's slot (None: not placed).
/// Without `best_effort` it gives up at the first bucket that fits nowhere; with it, such a
/// bucket takes the pilot that places most of its keys, and the others are left out.
fn place(
    hashes: &[u64],
    buckets: usize,
    slots: usize,
    best_effort: bool,
) -> Option<(Vec<u16>, Vec<Option<usize>>)> {
    let bucket_of = |h: u64| (((h & 0xffff_ffff) * buckets as u64) >> 32) as usize;
    // Keys grouped by bucket (a counting sort), then buckets ordered largest first.
    let mut start = vec![0usize; buckets + 1];
    for &h in hashes {
        start[bucket_of(h) + 1] += 1;
    }
    let largest = start.iter().copied().max().unwrap_or(0);
    for b in 0..buckets {
        start[b + 1] += start[b];
    }
    let mut grouped = vec![0usize; hashes.len()];
    let mut next = start.clone();
    for (i, &h) in hashes.iter().enumerate() {
        let b = bucket_of(h);
        grouped[next[b]] = i;
        next[b] += 1;
    }
    let mut by_size: Vec<Vec<usize>> = vec![Vec::new(); largest + 1];
    for b in 0..buckets {
        by_size[start[b + 1] - start[b]].push(b);
    }
    let mut pilots = vec![0u16; buckets];
    let mut slot_of = vec![None; hashes.len()];
    let mut taken = vec![0u64; slots.div_ceil(64)];
    let is_taken = |taken: &[u64], s: usize| taken[s / 64] >> (s % 64) & 1 == 1;
    // The keys of the bucket being placed and their slots (None: collides).
    let mut at: Vec<(usize, Option<usize>)> = Vec::with_capacity(largest);
    let mut best: Vec<(usize, Option<usize>)> = Vec::with_capacity(largest);
    for b in by_size.iter().skip(1).rev().flatten().copied() {
        let keys = &grouped[start[b]..start[b + 1]];
        best.clear();
        let mut best_placed = 0;
        for pilot in 0..=u16::MAX {
            at.clear();
            let mut placed = 0;
            for &k in keys {
                let s = position(hashes[k], pilot, slots as u64);
                let free = !is_taken(&taken, s) && !at.iter().any(|&(_, o)| o == Some(s));
                if !free && !best_effort {
                    break;
                }
                at.push((k, free.then_some(s)));
                placed += usize::from(free);
            }
            if placed > best_placed || best.is_empty() {
                best_placed = placed;
                pilots[b] = pilot;
                std::mem::swap(&mut at, &mut best);
            }
            if best_placed == keys.len() {
                break;
            }
        }
        if best_placed < keys.len() && !best_effort {
            return None;
        }
        for &(k, s) in &best {
            if let Some(s) = s {
                taken[s / 64] |= 1 << (s % 64);
            }
            slot_of[k] = s;
        }
    }
    Some((pilots, slot_of))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key gets a slot of its own, found again through its hash, at every size.
    #[test]
    fn every_key_has_a_slot_of_its_own() {
        for n in [0usize, 1, 2, 3, 7, 100, 1000, 20_000] {
            let keys: Vec<String> = (0..n).map(|i| format!("user-{i}@example.com")).collect();
            let (table, at) = Displace::build(&keys);
            assert_eq!(at.len(), n);
            assert!(table.slots() > n, "{n}: a free slot at least");
            let mut seen = vec![false; table.slots()];
            for (key, slot) in keys.iter().zip(&at) {
                let slot = slot.expect("every key placed");
                assert_eq!(table.slot(table.hash(key.as_bytes())), slot, "{key}");
                assert!(!seen[slot], "{n}: slot {slot} given twice");
                seen[slot] = true;
            }
        }
    }

    /// Small tables are where a weak slot function shows: keys whose hashes are close must
    /// still be told apart by some pilot. Thousands of small key sets, every key placed.
    #[test]
    fn small_tables_place_every_key() {
        for round in 0..3000 {
            let n = 2 + round % 19;
            let keys: Vec<String> = (0..n).map(|i| format!("r{round}-k{i}")).collect();
            let (table, at) = Displace::build(&keys);
            for (key, slot) in keys.iter().zip(&at) {
                let slot = slot.unwrap_or_else(|| panic!("{key} of {n} not placed"));
                assert_eq!(table.slot(table.hash(key.as_bytes())), slot);
            }
        }
    }

    /// Keys that cannot be told apart (the same key twice) end the build all the same: one
    /// copy gets a slot, the other none, and every other key is placed.
    #[test]
    fn keys_that_collide_forever_are_left_out() {
        let keys = ["a", "b", "c", "b", "d"];
        let (table, at) = Displace::build(&keys);
        assert_eq!(at[1].is_some() as u8 + at[3].is_some() as u8, 1, "{at:?}");
        for i in [0, 2, 4] {
            let slot = at[i].expect("distinct keys placed");
            assert_eq!(table.slot(table.hash(keys[i].as_bytes())), slot);
        }
    }
}
