//! The compiled, immutable form of a policy that checks run against.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::RandomState;

use crate::decision::{Cause, Decision, Effect, Explanation, Rule};
use crate::displace::Displace;
use crate::document::RoleDef;
use crate::name::Pattern;
use crate::pages::PodArray;
use crate::policy::Policy;

const NONE: u32 = u32::MAX;
/// The tenant id of the global scope (the empty tenant name).
const GLOBAL: u32 = u32::MAX;

/// The generation of the next snapshot compiled in this process. 64 bits, so that it never
/// wraps (a compile per nanosecond would take 584 years): no two snapshots of a process
/// share a generation, and ids issued by one are refused by every other.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Longest name kept inside its [`Interner`] slot.
const NAME_INLINE: usize = 26;

/// Whether `name` is the start of `stored` (a name kept inline in a slot, at least as long as
/// `name`), compared in 8-byte words. Every check compares three short names, and calling
/// `memcmp` for each cost more than the comparison itself.
#[inline(always)]
fn same_inline(name: &[u8], stored: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> Option<u64> {
        s.get(at..)?
            .first_chunk::<8>()
            .map(|w| u64::from_le_bytes(*w))
    }
    fn half(s: &[u8], at: usize) -> Option<u32> {
        s.get(at..)?
            .first_chunk::<4>()
            .map(|w| u32::from_le_bytes(*w))
    }
    let n = name.len();
    if n >= 8 {
        // Whole words from the start, then the last 8 bytes (overlapping the one before).
        let mut at = 0;
        while at + 8 < n {
            if word(name, at) != word(stored, at) {
                return false;
            }
            at += 8;
        }
        word(name, n - 8) == word(stored, n - 8)
    } else if n >= 4 {
        half(name, 0) == half(stored, 0) && half(name, n - 4) == half(stored, n - 4)
    } else {
        stored.get(..n) == Some(name)
    }
}

/// Names interned to dense ids, with one copy of each name.
///
/// The names are fixed when it is built, so its table is a perfect hash ([`Displace`]): each
/// name has a slot of its own, computed from its hash, that carries the id and, for names of
/// up to [`NAME_INLINE`] bytes, the name itself. A lookup reads that one slot and nothing else
/// (longer names are compared against the arena that holds every name for `name(id)`).
#[derive(Debug)]
struct Interner {
    /// Every name, back to back.
    bytes: String,
    /// `bytes[start .. start + len]` of each id.
    spans: Vec<(u32, u32)>,
    index: Displace,
    slots: Vec<Slot>,
}

// 32-byte aligned: a slot never straddles two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Slot {
    /// The name's id, or NONE for an empty slot.
    id: u32,
    /// The name's length, saturated at `u16::MAX`.
    len: u16,
    /// The name, when it is at most [`NAME_INLINE`] bytes long.
    inline: [u8; NAME_INLINE],
}

impl Slot {
    const EMPTY: Slot = Slot {
        id: NONE,
        len: 0,
        inline: [0; NAME_INLINE],
    };
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::build(std::iter::empty())
    }
}

impl Interner {
    /// Interns `names` in order: the first occurrence of a name gets the next id.
    fn build<'n>(names: impl IntoIterator<Item = &'n str>) -> Interner {
        let mut seen: HashSet<&str> = HashSet::new();
        let unique: Vec<&str> = names.into_iter().filter(|n| seen.insert(n)).collect();
        drop(seen);
        let mut bytes = String::new();
        let mut spans = Vec::with_capacity(unique.len());
        for name in &unique {
            // Offsets are u32: a policy's names would need 4 GiB of text to overflow, and then
            // the saturated span reads as no name at all, so the name is unknown (denied),
            // never aliased.
            let start = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
            bytes.push_str(name);
            spans.push((start, len));
        }
        let (index, at) = Displace::build(&unique);
        let mut slots = vec![Slot::EMPTY; index.slots()];
        for (id, (name, at)) in unique.iter().zip(at).enumerate() {
            let Some(slot) = at.and_then(|at| slots.get_mut(at)) else {
                continue;
            };
            *slot = Slot {
                id: id as u32,
                len: u16::try_from(name.len()).unwrap_or(u16::MAX),
                ..Slot::EMPTY
            };
            if let Some(inline) = slot.inline.get_mut(..name.len()) {
                inline.copy_from_slice(name.as_bytes());
            }
        }
        Interner {
            bytes,
            spans,
            index,
            slots,
        }
    }

    /// The id of `name`: the name is compared in full, never decided on its hash.
    #[inline(always)]
    fn get(&self, name: &str) -> Option<u32> {
        self.get_at(name, self.slot_of(name))
    }

    /// The only slot where `name` can be: [`Interner::get_at`] then compares it there.
    #[inline(always)]
    fn slot_of(&self, name: &str) -> usize {
        self.index.slot(self.index.hash(name.as_bytes()))
    }

    /// Starts loading the slot `i` into cache (see [`Subjects::prefetch`]).
    #[inline(always)]
    fn prefetch(&self, i: usize) {
        prefetch(&self.slots, i);
    }

    /// [`Interner::get`], with the name's slot found before.
    #[inline(always)]
    fn get_at(&self, name: &str, i: usize) -> Option<u32> {
        let name = name.as_bytes();
        let slot = self.slots.get(i)?;
        let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        if slot.id == NONE || slot.len != len {
            return None;
        }
        let same = if name.len() <= NAME_INLINE {
            same_inline(name, &slot.inline)
        } else {
            self.name(slot.id).as_bytes() == name
        };
        same.then_some(slot.id)
    }

    fn name(&self, id: u32) -> &str {
        self.spans
            .get(id as usize)
            .and_then(|&(start, len)| {
                self.bytes
                    .get(start as usize..(start as usize).saturating_add(len as usize))
            })
            .unwrap_or("")
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// A role's rules in one scope, with patterns resolved to ranges of permission ids.
#[derive(Debug, Default)]
struct Layer {
    parents: Vec<u32>,
    grants: Vec<(Pattern, Range<u32>)>,
    denies: Vec<(Pattern, Range<u32>)>,
}

/// Allow and deny bits of a role or a set, each `words` long, in [`Bits`].
#[derive(Debug, Clone, Copy)]
struct Eff {
    allow: u32,
    deny: u32,
}

/// An arena of fixed-width bitsets over permission ids.
#[derive(Debug)]
struct Bits {
    words: usize,
    data: Vec<u64>,
}

impl Bits {
    fn alloc(&mut self) -> u32 {
        let index = (self.data.len() / self.words) as u32;
        self.data.resize(self.data.len() + self.words, 0);
        index
    }

    fn slice(&self, index: u32) -> &[u64] {
        let start = index as usize * self.words;
        self.data.get(start..start + self.words).unwrap_or(&[])
    }

    fn set_range(&mut self, index: u32, range: Range<u32>) {
        let start = index as usize * self.words;
        if let Some(words) = self.data.get_mut(start..start + self.words) {
            for bit in range {
                if let Some(w) = words.get_mut(bit as usize / 64) {
                    *w |= 1 << (bit % 64);
                }
            }
        }
    }

    fn or_into(&mut self, into: u32, from: u32) {
        let (into, from) = (into as usize * self.words, from as usize * self.words);
        for i in 0..self.words {
            let v = self.data.get(from + i).copied().unwrap_or(0);
            if let Some(w) = self.data.get_mut(into + i) {
                *w |= v;
            }
        }
    }
}

/// Effective sets in one arena of `u32` words. A set gives each permission one of three
/// states: allowed, denied, or neither (deny wins when a set is compiled, so never both).
///
/// A set's id is the offset of its first word, so a check reads the set right away (no id →
/// location table, which would be one more cache miss on large policies). It is stored the
/// cheaper way, behind one header word:
///
/// - a sorted list of keys `id << 1 | denied` (header: their count) when it names few
///   permissions, or names them so spread out that a ranked bitset would be over twice its
///   size. At 10,000 permissions a bitset is 2.5 KB, and most effective sets hold a few
///   dozen;
/// - a ranked bitset (header [`RANKED`] and its block count) when it names more than
///   [`LIST_MAX`] permissions but its blocks are few: the two-bit states of 32 permissions in
///   a 64-bit block, only the blocks that hold one, found through a summary of which blocks
///   are present and a popcount. A binary search of a list of a hundred keys is seven loads,
///   each waiting on the one before; this is two;
/// - else a bitset of two bits per permission (header [`DENSE`]): bit `2 * id` allowed, bit
///   `2 * id + 1` denied.
///
/// Every way one lookup gives the state, so a check learns both whether it is allowed and,
/// if not, whether a deny or a missing grant refused it, and then picks the cause from a
/// table: on a random mix "allowed or not" is a branch no predictor gets right, and its
/// mispredictions cost more than the lookup. Identical sets are stored once.
#[derive(Debug, Default)]
struct Sets {
    /// `u64` words of a bitset over every permission.
    words: usize,
    /// Summary groups of a ranked set: one per [`GROUP_BLOCKS`] blocks.
    groups: usize,
    /// The sets, once sealed.
    data: PodArray<u32>,
    /// The sets while they are added.
    building: Vec<u32>,
    /// How many (role set, scope) sets were added, identical ones counted each time.
    count: usize,
    by_content: HashMap<(Vec<u64>, Vec<u64>), u32>,
}

/// Above this many bytes of distinct multi-role sets, tenant entries keep such sets as two
/// parts: see [`Compiler::split_combos`].
const SPLIT_ABOVE_BYTES: usize = 4 << 20;

/// Header bit of a set stored as a bitset.
const DENSE: u32 = 1 << 31;
/// Header bit of a set stored as a ranked bitset; the header's low bits count its blocks.
const RANKED: u32 = 1 << 30;
/// Header bits of a set stored as a list (neither of the above); the header is its count.
const LIST: u32 = 0;
/// Sets naming at most this many permissions are never ranked: as lists (or bitsets, over
/// few permissions) they are as quick to search.
const LIST_MAX: usize = 8;
/// Blocks (of 32 permissions) under one summary word of a ranked set.
const GROUP_BLOCKS: usize = 64;

/// How a set is stored, with its data after the header word.
#[derive(Debug, Clone, Copy)]
enum Stored<'a> {
    /// Sorted keys `id << 1 | denied`.
    List(&'a [u32]),
    /// Per group, the summary (two words, bit `b`: block `b` of the group is present) and the
    /// count of present blocks before the group; then (the second slice) the present blocks
    /// (two words each, low first) and a last empty one.
    Ranked(&'a [u32], &'a [u32]),
    /// Two bits per permission.
    Dense(&'a [u32]),
}

/// The `u64` whose low half is `words[at]` and high half `words[at + 1]` (0 past the end).
#[inline]
fn pair(words: &[u32], at: usize) -> u64 {
    words
        .get(at..)
        .and_then(|w| w.first_chunk::<2>())
        .map_or(0, |&[lo, hi]| u64::from(lo) | u64::from(hi) << 32)
}

/// A two-bit block of `allowed` and `denied` (bitsets over permission ids): the states of
/// permissions `32 * k .. 32 * k + 32`, permission `32 * k + i` at bits `2 * i` (allowed) and
/// `2 * i + 1` (denied).
fn block(allowed: &[u64], denied: &[u64], k: usize) -> u64 {
    let word = |v: &[u64]| (v.get(k / 2).copied().unwrap_or(0) >> (32 * (k % 2))) as u32;
    spread(word(allowed)) | spread(word(denied)) << 1
}

/// The state of a permission in a set: neither allowed nor denied.
const NEITHER: usize = 0;
/// The state of a permission in a set: allowed.
const ALLOWED: usize = 1;
/// The state of a permission in a set: denied.
const DENIED: usize = 2;

/// Bits `0..32` of `x` moved to the even bits `0, 2, …, 62`.
fn spread(x: u32) -> u64 {
    let mut x = u64::from(x);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

impl Sets {
    fn new(words: usize) -> Sets {
        Sets {
            words,
            groups: (words * 2).div_ceil(GROUP_BLOCKS),
            ..Sets::default()
        }
    }

    /// Adds a set given as bitset words (allowed, denied; a permission in both is denied) and
    /// returns its id, or NONE when the arena would outgrow `u32` offsets (then the set holds
    /// nothing: denied, never misread).
    fn push(&mut self, allowed: Vec<u64>, denied: Vec<u64>) -> u32 {
        self.count += 1;
        let word = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        let allowed: Vec<u64> = (0..self.words)
            .map(|i| word(&allowed, i) & !word(&denied, i))
            .collect();
        let denied: Vec<u64> = (0..self.words).map(|i| word(&denied, i)).collect();
        let key = (allowed, denied);
        if let Some(&existing) = self.by_content.get(&key) {
            return existing;
        }
        let Ok(id) = u32::try_from(self.building.len()) else {
            return NONE;
        };
        if id == NONE {
            return NONE;
        }
        let (allowed, denied) = &key;
        let count: usize = allowed
            .iter()
            .chain(denied)
            .map(|w| w.count_ones() as usize)
            .sum();
        let blocks: Vec<u64> = (0..self.words * 2)
            .map(|k| block(allowed, denied, k))
            .collect();
        let present = blocks.iter().filter(|&&b| b != 0).count();
        let ranked_len = 3 * self.groups + 2 * (present + 1);
        // Keys hold ids below 2^31 only, and headers count below 2^30.
        let small = self.words <= 1 << 25;
        // A bitset while it is at most twice the size of the list (one load beats a search);
        // ranked while it is at most twice the list and smaller than the bitset.
        let (kind, len) = if !small || count >= 2 * self.words {
            (DENSE, self.words * 4)
        } else if count > LIST_MAX && ranked_len <= 2 * count && ranked_len < 4 * self.words {
            (RANKED, ranked_len)
        } else {
            (LIST, count)
        };
        let len = 1 + len;
        // The arena never reaches index NONE, so that `part(NONE)` finds nothing rather than
        // the middle of a set read as a header.
        if self.building.len().saturating_add(len) > NONE as usize {
            return NONE;
        }
        match kind {
            DENSE => {
                self.building.push(DENSE);
                for b in blocks {
                    self.building.push(b as u32);
                    self.building.push((b >> 32) as u32);
                }
            }
            RANKED => {
                self.building.push(RANKED | present as u32);
                let mut before = 0u32;
                for group in blocks.chunks(GROUP_BLOCKS) {
                    let summary = group
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b != 0)
                        .fold(0u64, |s, (i, _)| s | 1 << i);
                    self.building.push(summary as u32);
                    self.building.push((summary >> 32) as u32);
                    self.building.push(before);
                    before += summary.count_ones();
                }
                for b in blocks.iter().filter(|&&b| b != 0).chain([&0]) {
                    self.building.push(*b as u32);
                    self.building.push((*b >> 32) as u32);
                }
            }
            _ => {
                // LIST: the header is the count.
                self.building.push(count as u32);
                for i in 0..self.words {
                    let (mut a, mut d) = (allowed[i], denied[i]);
                    // Allowed and denied ids of a word, merged in id order (they never meet).
                    while a | d != 0 {
                        let (bit, tag) = if a.trailing_zeros() < d.trailing_zeros() {
                            let bit = a.trailing_zeros();
                            a &= a - 1;
                            (bit, 0)
                        } else {
                            let bit = d.trailing_zeros();
                            d &= d - 1;
                            (bit, 1)
                        };
                        self.building.push((i as u32 * 64 + bit) << 1 | tag);
                    }
                }
            }
        }
        self.by_content.insert(key, id);
        id
    }

    /// The set at `set`: how it is stored, and its data.
    #[inline]
    fn part(&self, set: u32) -> Option<Stored<'_>> {
        let at = set as usize;
        let header = *self.data.get(at)?;
        let len = if header & DENSE != 0 {
            self.words * 4
        } else if header & RANKED != 0 {
            3 * self.groups + 2 * ((header & !RANKED) as usize + 1)
        } else {
            header as usize
        };
        let data = self.data.get(at + 1..at + 1 + len)?;
        Some(if header & DENSE != 0 {
            Stored::Dense(data)
        } else if header & RANKED != 0 {
            let (summaries, blocks) = data.split_at_checked(3 * self.groups)?;
            Stored::Ranked(summaries, blocks)
        } else {
            Stored::List(data)
        })
    }

    /// Block `k` of a ranked set (its summaries and blocks, see [`Stored::Ranked`]); 0 when
    /// absent, also past the last group.
    #[inline]
    fn ranked_block(summaries: &[u32], blocks: &[u32], k: usize) -> u64 {
        let (g, b) = (k / GROUP_BLOCKS, k % GROUP_BLOCKS);
        let Some(&[lo, hi, before]) = summaries.get(3 * g..).and_then(|d| d.first_chunk::<3>())
        else {
            return 0;
        };
        let summary = u64::from(lo) | u64::from(hi) << 32;
        // All ones when block `b` is present, else 0: no branch on it, as a random mix
        // finds a block half the time.
        let present = (summary >> b & 1).wrapping_neg();
        // When absent this is the next present block, or the empty one after them (the
        // summaries count them all): in range either way, and masked off.
        let rank = before as usize + (summary & ((1 << b) - 1)).count_ones() as usize;
        pair(blocks, 2 * rank) & present
    }

    /// The state of permission `bit` in `set`: [`NEITHER`], [`ALLOWED`] or [`DENIED`].
    #[inline]
    fn state(&self, set: u32, bit: u32) -> usize {
        match self.part(set) {
            Some(Stored::Dense(halves)) => {
                let pos = bit as usize * 2;
                halves
                    .get(pos / 32)
                    .map_or(NEITHER, |w| (w >> (pos % 32)) as usize & 3)
            }
            Some(Stored::Ranked(summaries, blocks)) => {
                let block = Sets::ranked_block(summaries, blocks, bit as usize / 32);
                (block >> (bit % 32 * 2)) as usize & 3
            }
            Some(Stored::List(keys)) => {
                let key = bit.wrapping_shl(1);
                let i = keys.partition_point(|&k| k < key);
                match keys.get(i) {
                    Some(&k) if k >> 1 == bit && bit < DENSE => 1 + (k & 1) as usize,
                    _ => NEITHER,
                }
            }
            None => NEITHER,
        }
    }

    /// Whether `set` allows permission `bit`: [`Sets::state`] without the denied half, for
    /// the interned fast path.
    #[inline]
    fn allows(&self, set: u32, bit: u32) -> bool {
        match self.part(set) {
            Some(Stored::Dense(halves)) => halves
                .get(bit as usize / 16)
                .is_some_and(|w| (w >> (bit % 16 * 2)) & 1 == 1),
            Some(Stored::Ranked(summaries, blocks)) => {
                Sets::ranked_block(summaries, blocks, bit as usize / 32) >> (bit % 32 * 2) & 1 == 1
            }
            // An allowed id's key is the id shifted, with the tag bit clear.
            Some(Stored::List(keys)) => bit < DENSE && keys.binary_search(&(bit << 1)).is_ok(),
            None => false,
        }
    }

    /// Whether `set` denies permission `bit`.
    #[cfg(test)]
    fn denies(&self, set: u32, bit: u32) -> bool {
        self.state(set, bit) == DENIED
    }

    /// Whether `set` gives some id in `lo..hi` the state `state` ([`ALLOWED`] or [`DENIED`])
    /// and that id passes `also`.
    fn any_in(&self, set: u32, lo: u32, hi: u32, state: usize, also: impl Fn(u32) -> bool) -> bool {
        if lo >= hi {
            return false;
        }
        // Block `k` (ids `32 * k ..`, two bits each) of a bitset or a ranked set.
        let block: &dyn Fn(usize) -> u64 = match self.part(set) {
            Some(Stored::List(keys)) => {
                let tag = u32::from(state == DENIED);
                let i = keys.partition_point(|&k| k >> 1 < lo);
                return keys
                    .get(i..)
                    .unwrap_or(&[])
                    .iter()
                    .take_while(|&&k| k >> 1 < hi)
                    .any(|&k| k & 1 == tag && also(k >> 1));
            }
            Some(Stored::Dense(halves)) => &move |k| pair(halves, 2 * k),
            Some(Stored::Ranked(summaries, blocks)) => {
                &move |k| Sets::ranked_block(summaries, blocks, k)
            }
            None => return false,
        };
        // The allowed bits are the even ones, the denied the odd ones.
        let pattern: u64 = if state == DENIED {
            0xAAAA_AAAA_AAAA_AAAA
        } else {
            0x5555_5555_5555_5555
        };
        let (lo, hi) = (lo as usize, hi as usize);
        (lo / 32..=(hi - 1) / 32).any(|k| {
            // Ids from..to of the block, as bit pairs.
            let from = lo.max(k * 32) - k * 32;
            let to = hi.min(k * 32 + 32) - k * 32;
            let mask = (u64::MAX << (2 * from)) & (u64::MAX >> (64 - 2 * to));
            let mut bits = block(k) & mask & pattern;
            while bits != 0 {
                if also(((k * 64) as u32 + bits.trailing_zeros()) / 2) {
                    return true;
                }
                bits &= bits - 1;
            }
            false
        })
    }

    #[cfg(test)]
    fn allows_any_in(&self, set: u32, lo: u32, hi: u32) -> bool {
        self.any_in(set, lo, hi, ALLOWED, |_| true)
    }

    #[cfg(test)]
    fn denies_any_in(&self, set: u32, lo: u32, hi: u32) -> bool {
        self.any_in(set, lo, hi, DENIED, |_| true)
    }

    fn len(&self) -> usize {
        self.count
    }

    /// Moves the sets to where checks read them, and drops the build-time index of contents.
    /// Checks see no set before this.
    fn seal(&mut self) {
        self.by_content = HashMap::new();
        self.data = PodArray::from_vec(std::mem::take(&mut self.building));
    }
}

/// Longest subject name kept inside its record: a UUID (36 characters) or most e-mail
/// addresses fit, and the record then fills one cache line exactly.
const INLINE: usize = 38;

/// Starts loading the cache line of `data[i]` into cache; an `i` past the end stands for the
/// last element, and an empty `data` loads nothing. A prefetch never faults, but one of an
/// address nothing is mapped at (an empty array's dangling pointer, or the slot `NONE` of the
/// unknown subject of [`QueryIds::DENIED`]) makes the processor walk the page tables, every
/// time. On the large shape, whose snapshot has no tenant entries, those walks made
/// `check_batch` of its allow-path query take 24 ns instead of 16.
#[inline(always)]
fn prefetch<T>(data: &[T], i: usize) {
    if let Some(at) = prefetch_at(data.len(), i) {
        prefetch_index::prefetch_index(data, at);
    }
}

/// The element [`prefetch`] loads for index `i` of an array of `len`: `i` clamped to the
/// last, or none when the array is empty.
#[inline(always)]
fn prefetch_at(len: usize, i: usize) -> Option<usize> {
    len.checked_sub(1).map(|last| i.min(last))
}

/// A subject: its name and where its effective sets are. It is also the subject's slot in
/// [`Subjects`], so finding the name finds the record, in one cache line or two adjacent ones.
// 64-byte aligned: finding a subject reads one cache line, never two.
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct SubjectRec {
    /// Length of the name in bytes; 0 marks an empty slot.
    name_len: u16,
    /// The name when it is at most [`INLINE`] bytes long, else (first 4 bytes, little endian)
    /// its offset in [`Subjects::long`].
    name: [u8; INLINE],
    /// Effective set in the global scope, or NONE when the subject holds no global role.
    global_set: u32,
    /// The first tenant entry, inline: most subjects belong to one tenant, and then a check
    /// reads no second array. `first.tenant` is NONE when the subject holds roles in no tenant.
    first: TenantEntry,
    /// The other tenant entries: `entries[start .. start + len]`, sorted by tenant id.
    start: u32,
    len: u32,
}

const _: () = assert!(std::mem::size_of::<SubjectRec>() == 64);
const _: () = assert!(std::mem::size_of::<Slot>() == 32);

impl SubjectRec {
    const EMPTY: SubjectRec = SubjectRec {
        name_len: 0,
        name: [0; INLINE],
        global_set: NONE,
        first: TenantEntry::NONE,
        start: 0,
        len: 0,
    };
}

/// A subject's roles in one tenant, as the effective set or sets that decide there.
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct TenantEntry {
    tenant: u32,
    set: u32,
    /// A second set, or NONE: see [`Parts`].
    also: u32,
}

impl TenantEntry {
    const NONE: TenantEntry = TenantEntry {
        tenant: NONE,
        set: NONE,
        also: NONE,
    };
}

/// The effective set or sets of a subject in a scope. A permission's state is the larger of
/// its states in the two ([`DENIED`] > [`ALLOWED`] > [`NEITHER`]), which is its state in their
/// union: a deny in either wins, else a grant in either allows.
///
/// Most snapshots give every (subject, scope) one set of its own role combination (`also` is
/// NONE). When there are so many combinations of two or more roles that their sets would not
/// stay in cache, a combination is kept as two parts instead, all but its last role and its
/// last role, whose sets are few and shared: a check then makes two lookups in cache rather
/// than one in memory (see [`Compiler::split_combos`]).
#[derive(Debug, Clone, Copy)]
struct Parts {
    set: u32,
    also: u32,
}

impl Parts {
    /// One set, no second part.
    const fn whole(set: u32) -> Parts {
        Parts { set, also: NONE }
    }

    const fn of(entry: &TenantEntry) -> Parts {
        Parts {
            set: entry.set,
            also: entry.also,
        }
    }
}

/// Subjects by name: a perfect hash table ([`Displace`]) whose slots are the subject records.
/// A subject's id is its slot's index.
#[derive(Debug)]
struct Subjects {
    slots: PodArray<SubjectRec>,
    /// Names longer than [`INLINE`] bytes, back to back.
    long: Vec<u8>,
    /// Role combination of each slot's first tenant entry (NONE if none), for `explain`.
    first_combos: Vec<u32>,
    /// Interned list of each slot's global roles, or NONE: for `explain`, and for the
    /// overlays of tenants whose own rules change a global role.
    global_combos: Vec<u32>,
    count: usize,
    index: Displace,
}

impl Subjects {
    /// A table of `names` (distinct), and each name's id. A name that cannot be stored has
    /// none: an empty name, one over 65,535 bytes, or one past an arena of 4 GiB (a validated
    /// policy has none of these). Such a subject is then unknown, so denied, never aliased.
    fn build(names: &[&str]) -> (Subjects, Vec<Option<u32>>) {
        let storable = |name: &str| (1..=usize::from(u16::MAX)).contains(&name.len());
        let keys: Vec<&str> = names.iter().copied().filter(|n| storable(n)).collect();
        let (index, at) = Displace::build(&keys);
        let mut table = Subjects {
            slots: PodArray::filled(SubjectRec::EMPTY, index.slots()),
            long: Vec::new(),
            first_combos: vec![NONE; index.slots()],
            global_combos: vec![NONE; index.slots()],
            count: 0,
            index,
        };
        let mut at = at.into_iter();
        let ids = names
            .iter()
            .map(|name| {
                if !storable(name) {
                    return None;
                }
                let slot = at.next().flatten()?;
                table.store(slot, name).then_some(slot as u32)
            })
            .collect();
        (table, ids)
    }

    /// Writes `name` into the empty record at `slot`; false if it cannot be stored.
    fn store(&mut self, slot: usize, name: &str) -> bool {
        let bytes = name.as_bytes();
        let Ok(len) = u16::try_from(bytes.len()) else {
            return false;
        };
        let mut rec = SubjectRec {
            name_len: len,
            ..SubjectRec::EMPTY
        };
        if bytes.len() <= INLINE {
            rec.name[..bytes.len()].copy_from_slice(bytes);
        } else {
            let Ok(start) = u32::try_from(self.long.len()) else {
                return false;
            };
            rec.name[..4].copy_from_slice(&start.to_le_bytes());
            self.long.extend_from_slice(bytes);
        }
        match self.slots.get_mut(slot) {
            Some(empty) if empty.name_len == 0 => {
                *empty = rec;
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn name<'a>(&'a self, slot: &'a SubjectRec) -> &'a [u8] {
        let len = slot.name_len as usize;
        if len <= INLINE {
            slot.name.get(..len).unwrap_or(&[])
        } else {
            let start = u32::from_le_bytes([slot.name[0], slot.name[1], slot.name[2], slot.name[3]])
                as usize;
            self.long.get(start..start + len).unwrap_or(&[])
        }
    }

    /// The id of `name`, if the policy knows it: the name is compared in full, never decided
    /// on its hash.
    #[inline]
    fn get(&self, name: &str) -> Option<u32> {
        self.get_at(name, self.slot_of(name))
    }

    /// The only slot where `name` can be: [`Subjects::get_at`] then compares it there.
    #[inline]
    fn slot_of(&self, name: &str) -> usize {
        self.index.slot(self.index.hash(name.as_bytes()))
    }

    /// Starts loading the record at `slot` into cache, so that a later read of it need not
    /// wait on memory. Any slot may be given (see [`prefetch`]).
    #[inline(always)]
    fn prefetch(&self, slot: usize) {
        prefetch(&self.slots, slot);
    }

    /// Whether batches should load records ahead: not while the table is small enough to
    /// stay in cache, where prefetching only adds work.
    #[inline]
    fn worth_prefetching(&self) -> bool {
        std::mem::size_of_val(&*self.slots) >= PREFETCH_FROM
    }

    /// [`Subjects::get`], with the name's slot found before.
    #[inline]
    fn get_at(&self, name: &str, i: usize) -> Option<u32> {
        let name = name.as_bytes();
        let len = u16::try_from(name.len()).ok().filter(|&l| l != 0)?;
        let slot = self.slots.get(i)?;
        if slot.name_len != len {
            return None;
        }
        let same = if name.len() <= INLINE {
            same_inline(name, &slot.name)
        } else {
            self.name(slot) == name
        };
        same.then_some(i as u32)
    }

    #[inline]
    fn record(&self, id: u32) -> Option<&SubjectRec> {
        self.slots.get(id as usize).filter(|r| r.name_len != 0)
    }

    fn len(&self) -> usize {
        self.count
    }
}

/// How a [`Snapshot`] keeps the effective permissions of a subject holding two or more roles
/// in a tenant. Decisions are the same in every layout; only speed and memory differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SetLayout {
    /// [`SetLayout::Whole`] unless the distinct combinations of two or more roles in tenant
    /// entries, priced at the size of a bitset over every permission each (an upper bound:
    /// short sets are stored as lists), would take more than 4 MiB; then
    /// [`SetLayout::Split`].
    #[default]
    Auto,
    /// One effective set per role combination: a check makes one set lookup. Best while the
    /// sets stay in cache.
    Whole,
    /// Each combination as two parts, all its roles but the last and its last role (in role
    /// id order, which is name order, not the order the policy lists them), whose sets
    /// are few and shared: checking such a subject takes two set lookups, each likely in
    /// cache. Best with many subjects holding varied pairs of roles: with a million subjects
    /// holding one or two of a thousand roles, 1,000 sets instead of 171,481, and an interned
    /// check of 34–42 ns instead of 66–129 (`rbac-bench --shape scale`).
    Split,
}

/// An immutable, compiled policy. Checks against it are a few hash lookups and a bit test;
/// it is shared between threads behind an `Arc` and never changes.
///
/// On Linux its subject table, tenant entries and effective sets, once 4 MiB or larger, live
/// in anonymous memory mappings of their own advised to use transparent huge pages: with a
/// million subjects a random check would otherwise also wait on the page-table walk of a TLB
/// miss.
/// [`SnapshotStats::mapped_bytes`] says how much memory sits there.
///
/// Obtain one from [`crate::Engine::snapshot`] (or [`Snapshot::compile`]) and use the interned
/// fast path in hot loops:
///
/// ```
/// # use rbac_core::{Engine, Policy};
/// # let policy = Policy::from_toml_str(r#"
/// #   [permissions.finance.invoices]
/// #   read = "Read invoices"
/// #   [roles.viewer]
/// #   grants = ["finance.*"]
/// #   [tenants.acme]
/// #   [subjects.alice.tenants]
/// #   acme = ["viewer"]
/// # "#)?;
/// let engine = Engine::new(&policy);
/// let snapshot = engine.snapshot();
/// let read = snapshot.permission_id("finance.invoices.read").unwrap();
/// let acme = snapshot.tenant_id("acme").unwrap();
/// let alice = snapshot.subject_id("alice").unwrap();
/// assert!(snapshot.is_allowed(alice, acme, read));
/// # Ok::<(), rbac_core::PolicyError>(())
/// ```
///
/// Many queries at once go faster through [`Snapshot::check_batch`] (names) or
/// [`Snapshot::is_allowed_batch`] (ids), which read ahead in large snapshots.
#[derive(Debug)]
pub struct Snapshot {
    generation: u64,
    permissions: Interner,
    tenants: Interner,
    roles: Interner,
    subjects: Subjects,
    entries: PodArray<TenantEntry>,
    /// Role combination of each of `entries`, for `explain`.
    entry_combos: Vec<u32>,
    combos: Vec<Box<[u32]>>,
    /// Effective sets of (subject, scope) combinations: allowed bits, and denied bits (for the
    /// reason of a deny).
    sets: Sets,
    /// For subjects with only global roles, in tenants whose own rules change those roles:
    /// (tenant id, global combo) → set.
    overlays: hashbrown::HashMap<(u32, u32), u32, RandomState>,
    /// Global layer of each role id (None for roles that exist only inside tenants).
    global_layers: Vec<Option<Layer>>,
    /// Tenant layers by (tenant, role).
    tenant_layers: HashMap<(u32, u32), Layer>,
    /// Resources and the row and field rules of role layers.
    resource_policies: crate::rows::ResourcePolicies,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            generation: u64,
            index: u32,
        }
    };
}

id_type!(
    /// An interned permission, valid for the snapshot that issued it.
    PermissionId
);
id_type!(
    /// An interned tenant (or the global scope), valid for the snapshot that issued it.
    TenantId
);
id_type!(
    /// An interned subject, valid for the snapshot that issued it.
    SubjectId
);

/// How many queries ahead of the one it decides [`Snapshot::check_batch`] and
/// [`Snapshot::is_allowed_batch`] start loading a subject's record: far enough to cover a wait
/// on memory (about 100 ns against a few ns of work per query), near enough that the records
/// loaded stay in the first-level cache until they are used. On the benchmark's scale shape
/// 16 and 64 did as well: what bounds a batch there is how many reads the processor keeps in
/// flight, not how early they are asked for.
pub const BATCH_AHEAD: usize = 32;

/// Where the names of a query can be, in the subject, tenant and permission tables.
#[derive(Debug, Clone, Copy, Default)]
struct NameSlots {
    subject: usize,
    tenant: usize,
    permission: usize,
}

/// How [`Snapshot::check_at`] learns where a name can be: hashed by the check itself
/// ([`HashNow`], a single check), or from [`NameSlots`] found ahead (a batch).
trait FindSlots {
    fn subject(&self, snapshot: &Snapshot, name: &str) -> usize;
    fn tenant(&self, snapshot: &Snapshot, name: &str) -> usize;
    fn permission(&self, snapshot: &Snapshot, name: &str) -> usize;
}

/// The subject's slot, found first; the other names hashed when they are looked up.
#[derive(Clone, Copy)]
struct HashNow {
    subject: usize,
}

impl FindSlots for HashNow {
    #[inline(always)]
    fn subject(&self, _: &Snapshot, _: &str) -> usize {
        self.subject
    }
    #[inline(always)]
    fn tenant(&self, snapshot: &Snapshot, name: &str) -> usize {
        snapshot.tenants.slot_of(name)
    }
    #[inline(always)]
    fn permission(&self, snapshot: &Snapshot, name: &str) -> usize {
        snapshot.permissions.slot_of(name)
    }
}

impl FindSlots for NameSlots {
    #[inline(always)]
    fn subject(&self, _: &Snapshot, _: &str) -> usize {
        self.subject
    }
    #[inline(always)]
    fn tenant(&self, _: &Snapshot, _: &str) -> usize {
        self.tenant
    }
    #[inline(always)]
    fn permission(&self, _: &Snapshot, _: &str) -> usize {
        self.permission
    }
}

/// Subject tables from this size on are read ahead by batches ([`Subjects::worth_prefetching`]).
/// Below it (the small, medium and ERP shapes of `rbac-bench`, up to 11,000 subjects) most
/// records stay in cache and reading ahead only adds work: in alternated runs, the small
/// shape's interned batch took half again as long reading ahead as without.
const PREFETCH_FROM: usize = 4 << 20;

/// A `(subject, tenant, permission)` query resolved against one snapshot
/// ([`Snapshot::query_ids`], [`QueryIds::new`]), for [`Snapshot::is_allowed_batch`]: 24 bytes
/// (the snapshot's generation and three indexes), so that a batch of them is read with little
/// memory traffic. Against any other snapshot it is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryIds {
    generation: u64,
    subject: u32,
    tenant: u32,
    permission: u32,
}

const _: () = assert!(std::mem::size_of::<QueryIds>() == 24);
const _: () = assert!(std::mem::size_of::<SubjectId>() == 16);
const _: () = assert!(std::mem::size_of::<TenantId>() == 16);
const _: () = assert!(std::mem::size_of::<PermissionId>() == 16);

impl QueryIds {
    /// Denied by every snapshot: no snapshot has a subject at index [`NONE`] (a subject table
    /// has fewer slots than that), whatever its generation.
    const DENIED: QueryIds = QueryIds {
        generation: 0,
        subject: NONE,
        tenant: NONE,
        permission: NONE,
    };

    /// The query `(subject, tenant, permission)`. Ids issued by different snapshots give a
    /// query that is always denied, as [`Snapshot::is_allowed`] denies them.
    pub fn new(subject: SubjectId, tenant: TenantId, permission: PermissionId) -> QueryIds {
        let generation = subject.generation;
        if tenant.generation != generation || permission.generation != generation {
            return QueryIds::DENIED;
        }
        QueryIds {
            generation,
            subject: subject.index,
            tenant: tenant.index,
            permission: permission.index,
        }
    }
}

impl Snapshot {
    /// Compiles a validated policy: interns every name, resolves wildcards, inheritance and
    /// denies into one effective set per distinct (role set, scope), kept whole or in two
    /// parts as [`SetLayout::Auto`] chooses, and indexes subjects.
    pub fn compile(policy: &Policy) -> Snapshot {
        Snapshot::compile_with(policy, SetLayout::Auto)
    }

    /// Like [`Snapshot::compile`], with the layout of multi-role sets chosen by the caller
    /// rather than by size. Every layout gives the same decisions.
    ///
    /// ```
    /// # use rbac_core::{Policy, SetLayout, Snapshot};
    /// let policy = Policy::from_toml_str(r#"
    ///   [permissions.finance.invoices]
    ///   read = "Read invoices"
    ///   approve = "Approve invoices"
    ///   [roles.clerk]
    ///   grants = ["finance.invoices.read"]
    ///   [roles.approver]
    ///   grants = ["finance.invoices.*"]
    ///   denies = ["finance.invoices.read"]
    ///   [tenants.acme]
    ///   [subjects.alice.tenants]
    ///   acme = ["clerk", "approver"]
    /// "#)?;
    /// for layout in [SetLayout::Whole, SetLayout::Split] {
    ///     let snapshot = Snapshot::compile_with(&policy, layout);
    ///     // The deny of one role wins over the grant of the other in either layout.
    ///     assert!(!snapshot.check("alice", "acme", "finance.invoices.read").is_allowed());
    ///     assert!(snapshot.check("alice", "acme", "finance.invoices.approve").is_allowed());
    /// }
    /// # Ok::<(), rbac_core::PolicyError>(())
    /// ```
    pub fn compile_with(policy: &Policy, layout: SetLayout) -> Snapshot {
        Compiler::new(policy, layout).run()
    }

    /// The id of a declared permission.
    pub fn permission_id(&self, name: &str) -> Option<PermissionId> {
        self.permissions.get(name).map(|index| PermissionId {
            generation: self.generation,
            index,
        })
    }

    /// The id of a declared tenant; the empty name is the global scope.
    pub fn tenant_id(&self, name: &str) -> Option<TenantId> {
        let index = if name.is_empty() {
            GLOBAL
        } else {
            self.tenants.get(name)?
        };
        Some(TenantId {
            generation: self.generation,
            index,
        })
    }

    /// The id of a subject the policy knows.
    pub fn subject_id(&self, name: &str) -> Option<SubjectId> {
        self.subjects.get(name).map(|index| SubjectId {
            generation: self.generation,
            index,
        })
    }

    /// The fast path: whether `subject` may `permission` in `tenant`. Ids from another snapshot
    /// are refused (deny), never misread.
    // Always inlined: it is a few instructions, and a call costs as much again.
    #[inline(always)]
    pub fn is_allowed(
        &self,
        subject: SubjectId,
        tenant: TenantId,
        permission: PermissionId,
    ) -> bool {
        let g = self.generation;
        if (subject.generation ^ g) | (tenant.generation ^ g) | (permission.generation ^ g) != 0 {
            return false;
        }
        match self.set_of(subject.index, tenant.index) {
            Some(parts) => self.allows(parts, permission.index),
            None => false,
        }
    }

    /// Like [`Snapshot::is_allowed`], with the cause.
    pub fn decide(
        &self,
        subject: SubjectId,
        tenant: TenantId,
        permission: PermissionId,
    ) -> Decision {
        let g = self.generation;
        if (subject.generation ^ g) | (tenant.generation ^ g) | (permission.generation ^ g) != 0 {
            return Decision::new(Cause::StaleIds);
        }
        self.decide_raw(subject.index, tenant.index, permission.index)
    }

    /// Whether `subject` may `permission` in `tenant` (empty for the global scope). Unknown
    /// names are denies.
    #[inline]
    pub fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        // The subject's slot first: its record is the read most likely to miss the cache (ERP
        // mix 1.3 ns faster than hashing it last). In a table too large to stay in cache, its
        // load is also started here, so that it overlaps the other names' lookups instead of
        // waiting for them (scale mix 175–248 → 103–173 ns; smaller tables only paid for it).
        let at = HashNow {
            subject: self.subjects.slot_of(subject),
        };
        if self.subjects.worth_prefetching() {
            self.subjects.prefetch(at.subject);
        }
        self.check_at(subject, tenant, permission, at)
    }

    /// The slots where the names of a query can be found, hashed ahead by a batch.
    #[inline(always)]
    fn slots_of(&self, subject: &str, tenant: &str, permission: &str) -> NameSlots {
        NameSlots {
            subject: self.subjects.slot_of(subject),
            tenant: self.tenants.slot_of(tenant),
            permission: self.permissions.slot_of(permission),
        }
    }

    /// [`Snapshot::check`], with the slots where the names can be found from `at`.
    #[inline(always)]
    fn check_at(
        &self,
        subject: &str,
        tenant: &str,
        permission: &str,
        at: impl FindSlots,
    ) -> Decision {
        let Some(p) = self
            .permissions
            .get_at(permission, at.permission(self, permission))
        else {
            return Decision::new(Cause::UnknownPermission);
        };
        match self.resolve_at(subject, tenant, &at) {
            Ok((s, t)) => self.decide_raw(s, t, p),
            Err(cause) => Decision::new(cause),
        }
    }

    /// [`Snapshot::check`] of every query of `queries` (`(subject, tenant, permission)`, the
    /// tenant empty for the global scope), in order. Gives the same decisions as one check
    /// per query, faster when the subjects' records are not in cache (a large policy, a
    /// random mix): once the subject table passes 4 MiB (about 50,000 subjects), while it
    /// decides one query it is already loading the names' slots and the subject's record
    /// [`BATCH_AHEAD`] queries later, and the tenant entries half that later, so that reads
    /// from memory overlap, as many as the processor can keep in flight, instead of following
    /// one another. Below that, it is one check per query.
    ///
    /// Each name is read twice (`as_ref`), once to read ahead and once to decide.
    ///
    /// ```
    /// # use rbac_core::{Engine, Policy};
    /// # let policy = Policy::from_toml_str(r#"
    /// #   [permissions.finance.invoices]
    /// #   read = "Read invoices"
    /// #   approve = "Approve invoices"
    /// #   [roles.viewer]
    /// #   grants = ["finance.invoices.read"]
    /// #   [tenants.acme]
    /// #   [subjects.alice.tenants]
    /// #   acme = ["viewer"]
    /// # "#)?;
    /// let snapshot = Engine::new(&policy).snapshot();
    /// let queries = [
    ///     ("alice", "acme", "finance.invoices.read"),
    ///     ("alice", "acme", "finance.invoices.approve"),
    ///     ("mallory", "acme", "finance.invoices.read"),
    /// ];
    /// let allowed: Vec<bool> = snapshot.check_batch(&queries).iter().map(|d| d.is_allowed()).collect();
    /// assert_eq!(allowed, [true, false, false]);
    /// # Ok::<(), rbac_core::PolicyError>(())
    /// ```
    // Never inlined: one call per batch costs nothing, and inlined its loop would change
    // how the caller's own code is laid out and optimised.
    #[inline(never)]
    pub fn check_batch<S, T, P>(&self, queries: &[(S, T, P)]) -> Vec<Decision>
    where
        S: AsRef<str>,
        T: AsRef<str>,
        P: AsRef<str>,
    {
        if !self.subjects.worth_prefetching() {
            return queries
                .iter()
                .map(|(s, t, p)| self.check(s.as_ref(), t.as_ref(), p.as_ref()))
                .collect();
        }
        self.check_batch_ahead(queries)
    }

    /// [`Snapshot::check_batch`] reading ahead, whatever the snapshot's size.
    fn check_batch_ahead<S, T, P>(&self, queries: &[(S, T, P)]) -> Vec<Decision>
    where
        S: AsRef<str>,
        T: AsRef<str>,
        P: AsRef<str>,
    {
        // The slots of the names of each of the next `BATCH_AHEAD` queries, by index modulo
        // `BATCH_AHEAD`: found, and their loads started, before the query's turn comes.
        let mut ring = [NameSlots::default(); BATCH_AHEAD];
        let start = |at: &mut NameSlots, (subject, tenant, permission): &(S, T, P)| {
            *at = self.slots_of(subject.as_ref(), tenant.as_ref(), permission.as_ref());
            self.subjects.prefetch(at.subject);
            self.tenants.prefetch(at.tenant);
            self.permissions.prefetch(at.permission);
        };
        for (at, query) in ring.iter_mut().zip(queries) {
            start(at, query);
        }
        for at in ring.iter().take(BATCH_AHEAD / 2) {
            self.prefetch_entry(at.subject);
        }
        let mut out = Vec::with_capacity(queries.len());
        for (i, (subject, tenant, permission)) in queries.iter().enumerate() {
            let at = &mut ring[i % BATCH_AHEAD];
            let here = *at;
            if let Some(later) = queries.get(i + BATCH_AHEAD) {
                start(at, later);
            }
            // The record of the subject half a look-ahead later has had time to arrive: its
            // tenant entries next (an unknown name's slot holds some other record, or none;
            // loading its entries is only wasted).
            self.prefetch_entry(ring[(i + BATCH_AHEAD / 2) % BATCH_AHEAD].subject);
            out.push(self.check_at(subject.as_ref(), tenant.as_ref(), permission.as_ref(), here));
        }
        out
    }

    /// The interned [`Snapshot::check_batch`]: [`Snapshot::is_allowed`] of every query, in
    /// order. Once the subject table passes 4 MiB, it loads the record of the subject
    /// [`BATCH_AHEAD`] queries later, and the tenant entries of the one half that later,
    /// while it decides one.
    ///
    /// ```
    /// # use rbac_core::{Engine, Policy};
    /// # let policy = Policy::from_toml_str(r#"
    /// #   [permissions.finance.invoices]
    /// #   read = "Read invoices"
    /// #   [roles.viewer]
    /// #   grants = ["finance.invoices.read"]
    /// #   [tenants.acme]
    /// #   [subjects.alice.tenants]
    /// #   acme = ["viewer"]
    /// #   [subjects.bob.tenants]
    /// #   acme = []
    /// # "#)?;
    /// let snapshot = Engine::new(&policy).snapshot();
    /// // Resolved once: names the snapshot does not know resolve to queries that deny.
    /// let queries: Vec<_> = ["alice", "bob", "mallory"]
    ///     .iter()
    ///     .map(|who| snapshot.query_ids(who, "acme", "finance.invoices.read"))
    ///     .collect();
    /// assert_eq!(snapshot.is_allowed_batch(&queries), [true, false, false]);
    /// # Ok::<(), rbac_core::PolicyError>(())
    /// ```
    // Never inlined: one call per batch costs nothing, and inlined its loop would change
    // how the caller's own code is laid out and optimised.
    #[inline(never)]
    pub fn is_allowed_batch(&self, queries: &[QueryIds]) -> Vec<bool> {
        if !self.subjects.worth_prefetching() {
            return queries.iter().map(|query| self.allows_ids(query)).collect();
        }
        self.is_allowed_batch_ahead(queries)
    }

    /// [`Snapshot::is_allowed_batch`] reading ahead, whatever the snapshot's size.
    fn is_allowed_batch_ahead(&self, queries: &[QueryIds]) -> Vec<bool> {
        for query in queries.iter().take(BATCH_AHEAD) {
            self.subjects.prefetch(query.subject as usize);
        }
        for query in queries.iter().take(BATCH_AHEAD / 2) {
            self.prefetch_entry(query.subject as usize);
        }
        let mut out = Vec::with_capacity(queries.len());
        for (i, query) in queries.iter().enumerate() {
            if let Some(later) = queries.get(i + BATCH_AHEAD) {
                self.subjects.prefetch(later.subject as usize);
            }
            if let Some(sooner) = queries.get(i + BATCH_AHEAD / 2) {
                self.prefetch_entry(sooner.subject as usize);
            }
            out.push(self.allows_ids(query));
        }
        out
    }

    /// Starts loading subject `s`'s tenant entries, in case the query is not about its inline
    /// one. Called half a look-ahead after the record was asked for, so that the record is
    /// likely there (except for the first queries of a batch, whose record has just been
    /// asked for: then this waits on it).
    // Without testing whether the entries will be read: on a random mix that test is a coin
    // toss the branch predictor loses, which costs more than a needless prefetch.
    #[inline(always)]
    fn prefetch_entry(&self, s: usize) {
        if let Some(rec) = self.subjects.slots.get(s) {
            prefetch(&self.entries, rec.start as usize);
        }
    }

    /// Whether `query` is allowed; a query of another snapshot is not.
    #[inline(always)]
    fn allows_ids(&self, query: &QueryIds) -> bool {
        if query.generation != self.generation {
            return false;
        }
        // Most queries are about the tenant of the subject's inline entry, with one set: that
        // path is written out here, so that a batch's loop holds it whole.
        if let Some(rec) = self.subjects.slots.get(query.subject as usize)
            && rec.first.tenant == query.tenant
            && query.tenant != GLOBAL
            && rec.first.also == NONE
        {
            return self.sets.allows(rec.first.set, query.permission);
        }
        match self.set_of(query.subject, query.tenant) {
            Some(parts) => self.allows(parts, query.permission),
            None => false,
        }
    }

    /// A query resolved once, for [`Snapshot::is_allowed_batch`]. Names this snapshot does
    /// not know (and an empty subject or permission) give a query that is denied, as
    /// [`Snapshot::check`] denies them.
    pub fn query_ids(&self, subject: &str, tenant: &str, permission: &str) -> QueryIds {
        match (
            self.subject_id(subject),
            self.tenant_id(tenant),
            self.permission_id(permission),
        ) {
            (Some(s), Some(t), Some(p)) => QueryIds::new(s, t, p),
            _ => QueryIds::DENIED,
        }
    }

    /// The subject's and tenant's ids (`""`: the global scope), or which one is unknown.
    #[inline]
    fn resolve(&self, subject: &str, tenant: &str) -> Result<(u32, u32), Cause> {
        let at = HashNow {
            subject: self.subjects.slot_of(subject),
        };
        self.resolve_at(subject, tenant, &at)
    }

    /// [`Snapshot::resolve`], with the slots where the names can be found from `at`.
    #[inline(always)]
    fn resolve_at(
        &self,
        subject: &str,
        tenant: &str,
        at: &impl FindSlots,
    ) -> Result<(u32, u32), Cause> {
        let t = if tenant.is_empty() {
            GLOBAL
        } else {
            let slot = at.tenant(self, tenant);
            self.tenants
                .get_at(tenant, slot)
                .ok_or(Cause::UnknownTenant)?
        };
        let slot = at.subject(self, subject);
        let s = self
            .subjects
            .get_at(subject, slot)
            .ok_or(Cause::UnknownSubject)?;
        Ok((s, t))
    }

    #[inline]
    fn decide_raw(&self, s: u32, t: u32, p: u32) -> Decision {
        // Indexed by the permission's state in the set (a set never holds both bits; were it
        // to, the last entry says deny).
        const CAUSES: [Cause; 4] = [
            Cause::NoGrant,
            Cause::Granted,
            Cause::ExplicitDeny,
            Cause::ExplicitDeny,
        ];
        match self.set_of(s, t) {
            Some(parts) => Decision::new(CAUSES[self.state(parts, p) & 3]),
            None => Decision::new(Cause::NoRoles),
        }
    }

    /// The state of permission `p` in `parts`: [`NEITHER`], [`ALLOWED`] or [`DENIED`].
    #[inline]
    fn state(&self, parts: Parts, p: u32) -> usize {
        if parts.also == NONE {
            self.sets.state(parts.set, p)
        } else {
            self.state_of_two(parts, p)
        }
    }

    /// [`Snapshot::state`] of a split combination, out of line: the one-set path is what
    /// every check of most snapshots takes, and it must stay small enough to inline.
    #[inline(never)]
    fn state_of_two(&self, parts: Parts, p: u32) -> usize {
        self.sets
            .state(parts.set, p)
            .max(self.sets.state(parts.also, p))
    }

    /// Whether `parts` allow permission `p`.
    #[inline]
    fn allows(&self, parts: Parts, p: u32) -> bool {
        if parts.also == NONE {
            self.sets.allows(parts.set, p)
        } else {
            self.state_of_two(parts, p) == ALLOWED
        }
    }

    /// Whether `parts` allow any permission in `lo..hi`.
    fn allows_any_in(&self, parts: Parts, lo: u32, hi: u32) -> bool {
        if parts.also == NONE {
            return self.sets.any_in(parts.set, lo, hi, ALLOWED, |_| true);
        }
        // Allowed by one part and not denied by the other.
        let (a, b) = (parts.set, parts.also);
        self.sets
            .any_in(a, lo, hi, ALLOWED, |p| self.sets.state(b, p) != DENIED)
            || self
                .sets
                .any_in(b, lo, hi, ALLOWED, |p| self.sets.state(a, p) != DENIED)
    }

    /// Whether `parts` deny any permission in `lo..hi`.
    fn denies_any_in(&self, parts: Parts, lo: u32, hi: u32) -> bool {
        [parts.set, parts.also]
            .into_iter()
            .filter(|&set| set != NONE)
            .any(|set| self.sets.any_in(set, lo, hi, DENIED, |_| true))
    }

    /// The effective set or sets of a subject in a scope, if it holds any role there.
    #[inline]
    fn set_of(&self, s: u32, t: u32) -> Option<Parts> {
        let rec = self.subjects.record(s)?;
        if t == GLOBAL {
            return (rec.global_set != NONE).then_some(Parts::whole(rec.global_set));
        }
        match self.entry(rec, t) {
            Some((_, entry)) => Some(Parts::of(entry)),
            None => self.global_set_in(s, rec, t),
        }
    }

    /// [`Snapshot::set_of`] for a tenant where the subject holds no role of its own: its
    /// global roles, as the tenant's own rules change them. Out of line, so that the common
    /// path stays small enough to inline into every check.
    #[inline(never)]
    fn global_set_in(&self, s: u32, rec: &SubjectRec, t: u32) -> Option<Parts> {
        if rec.global_set == NONE {
            return None;
        }
        // Entries that cannot be read must not leave the global roles to decide alone: a
        // tenant role there may deny what they grant.
        let (start, len) = (rec.start as usize, rec.len as usize);
        self.entries.get(start..start.saturating_add(len))?;
        let global = Parts::whole(rec.global_set);
        if self.overlays.is_empty() {
            return Some(global);
        }
        // A missing combination would skip the tenant's own rules, denies included: deny.
        let combo = self.subjects.global_combos.get(s as usize).copied();
        let combo = combo.filter(|&c| c != NONE)?;
        let overlay = self.overlays.get(&(t, combo));
        Some(overlay.map_or(global, |&set| Parts::whole(set)))
    }

    /// The subject's entry for tenant `t`, and its index in `entries` (None: the inline one).
    #[inline]
    fn entry<'a>(
        &'a self,
        rec: &'a SubjectRec,
        t: u32,
    ) -> Option<(Option<usize>, &'a TenantEntry)> {
        // The empty `first` has tenant NONE, which is also GLOBAL: never match the global scope.
        if rec.first.tenant == t && t != GLOBAL {
            return Some((None, &rec.first));
        }
        if rec.len == 0 {
            return None;
        }
        let start = rec.start as usize;
        let entries = self.entries.get(start..start + rec.len as usize)?;
        let i = if entries.len() <= 8 {
            entries.iter().position(|e| e.tenant == t)
        } else {
            entries.binary_search_by_key(&t, |e| e.tenant).ok()
        }?;
        Some((Some(start + i), entries.get(i)?))
    }

    /// The ids of the permissions of `module`: the one named `module` and every one named
    /// `module.…`. Ids follow name order, and no character allowed in a name sorts between
    /// `module` and `module.`, so they are one range.
    fn module_range(&self, module: &str) -> (u32, u32) {
        let n = self.permissions.len() as u32;
        let first_not = |from: u32, pred: &dyn Fn(&str) -> bool| {
            let (mut lo, mut hi) = (from, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if pred(self.permissions.name(mid)) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let lo = first_not(0, &|name| name < module);
        let hi = first_not(lo, &|name| {
            name.strip_prefix(module)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        });
        (lo, hi)
    }

    /// Whether the policy defines a role named `name` (global, or inside any tenant).
    ///
    /// ```
    /// # use rbac_core::{Engine, Policy};
    /// # let policy = Policy::from_toml_str(r#"
    /// #   [permissions.finance.invoices]
    /// #   read = "Read invoices"
    /// #   [roles.viewer]
    /// #   grants = ["finance.*"]
    /// # "#)?;
    /// let snapshot = Engine::new(&policy).snapshot();
    /// assert!(snapshot.has_role("viewer"));
    /// assert!(!snapshot.has_role("veiwer"));
    /// assert!(snapshot.has_module("finance") && snapshot.has_module("finance.invoices"));
    /// assert!(!snapshot.has_module("fin") && !snapshot.has_module("crm"));
    /// # Ok::<(), rbac_core::PolicyError>(())
    /// ```
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.get(name).is_some()
    }

    /// Whether the policy declares a permission in `module` (the permission named `module`,
    /// or one named `module.…`): what [`Snapshot::check_module`] can ever grant.
    pub fn has_module(&self, module: &str) -> bool {
        let (lo, hi) = self.module_range(module);
        lo < hi
    }

    /// Whether `subject` holds any permission of `module` (`finance`: `finance.invoices.read`,
    /// …) in `tenant`, without building the list: `Granted` if one is allowed, else
    /// `ExplicitDeny` when one is denied, `NoGrant`, `NoRoles`, or the unknown name's cause
    /// (`UnknownPermission` for a module with no declared permission).
    pub fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        let (lo, hi) = self.module_range(module);
        if lo >= hi {
            return Decision::new(Cause::UnknownPermission);
        }
        let (s, t) = match self.resolve(subject, tenant) {
            Ok(ids) => ids,
            Err(cause) => return Decision::new(cause),
        };
        match self.set_of(s, t) {
            Some(parts) if self.allows_any_in(parts, lo, hi) => Decision::new(Cause::Granted),
            Some(parts) if self.denies_any_in(parts, lo, hi) => Decision::new(Cause::ExplicitDeny),
            Some(_) => Decision::new(Cause::NoGrant),
            None => Decision::new(Cause::NoRoles),
        }
    }

    /// Every permission `subject` holds in `tenant` (empty for the global scope), in name order.
    pub fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<&str> {
        let set = self.subjects.get(subject).and_then(|s| {
            let t = if tenant.is_empty() {
                Some(GLOBAL)
            } else {
                self.tenants.get(tenant)
            };
            t.and_then(|t| self.set_of(s, t))
        });
        let Some(parts) = set else { return Vec::new() };
        let n = self.permissions.len() as u32;
        (0..n)
            .filter(|&p| self.allows(parts, p))
            .map(|p| self.permissions.name(p))
            .collect()
    }

    /// The decision with the role chain and the rule that decided it.
    pub fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        let decision = self.check(subject, tenant, permission);
        let mut out = Explanation {
            decision,
            subject: subject.to_owned(),
            tenant: tenant.to_owned(),
            permission: permission.to_owned(),
            held_roles: Vec::new(),
            chain: Vec::new(),
            rule: None,
        };
        let (Some(s), Some(p)) = (self.subjects.get(subject), self.permissions.get(permission))
        else {
            return out;
        };
        let t = if tenant.is_empty() {
            Some(GLOBAL)
        } else {
            self.tenants.get(tenant)
        };
        let Some(t) = t else { return out };
        let held = self.held_roles(s, t);
        out.held_roles = held
            .iter()
            .map(|&r| self.roles.name(r).to_owned())
            .collect();
        // Breadth-first from every held role at once, so the chain reported is a shortest one;
        // any deny decides, else the first grant found.
        let mut queue: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
        let mut parent_of: HashMap<u32, Option<u32>> = HashMap::new();
        for &r in &held {
            if parent_of.insert(r, None).is_none() {
                queue.push_back(r);
            }
        }
        let mut grant: Option<(u32, Rule)> = None;
        let mut deny: Option<(u32, Rule)> = None;
        while let Some(role) = queue.pop_front() {
            for (layer, scope) in self.layers_of(role, t) {
                let tenant_name = scope.map(|_| tenant.to_owned());
                let rule = |effect, pattern: &Pattern| Rule {
                    effect,
                    role: self.roles.name(role).to_owned(),
                    pattern: pattern.to_string(),
                    tenant: tenant_name.clone(),
                };
                if deny.is_none()
                    && let Some((pat, _)) = layer.denies.iter().find(|(_, r)| r.contains(&p))
                {
                    deny = Some((role, rule(Effect::Deny, pat)));
                }
                if grant.is_none()
                    && let Some((pat, _)) = layer.grants.iter().find(|(_, r)| r.contains(&p))
                {
                    grant = Some((role, rule(Effect::Grant, pat)));
                }
                for &parent in &layer.parents {
                    if let std::collections::hash_map::Entry::Vacant(slot) = parent_of.entry(parent)
                    {
                        slot.insert(Some(role));
                        queue.push_back(parent);
                    }
                }
            }
        }
        if let Some((role, rule)) = deny.or(grant) {
            let mut chain = vec![self.roles.name(role).to_owned()];
            let mut at = role;
            while let Some(Some(child)) = parent_of.get(&at) {
                chain.push(self.roles.name(*child).to_owned());
                at = *child;
            }
            chain.reverse();
            out.chain = chain;
            out.rule = Some(rule);
        }
        out
    }

    fn held_roles(&self, s: u32, t: u32) -> Vec<u32> {
        let Some(rec) = self.subjects.record(s) else {
            return Vec::new();
        };
        let combo = match (t, self.entry(rec, t)) {
            (GLOBAL, _) | (_, None) => self
                .subjects
                .global_combos
                .get(s as usize)
                .copied()
                .unwrap_or(NONE),
            (_, Some((None, _))) => self
                .subjects
                .first_combos
                .get(s as usize)
                .copied()
                .unwrap_or(NONE),
            (_, Some((Some(i), _))) => self.entry_combos.get(i).copied().unwrap_or(NONE),
        };
        self.combos
            .get(combo as usize)
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    /// The layers of `role` that apply in scope `t`: its global one, then its tenant one.
    fn layers_of(&self, role: u32, t: u32) -> impl Iterator<Item = (&Layer, Option<u32>)> {
        let global = self
            .global_layers
            .get(role as usize)
            .and_then(Option::as_ref);
        let scoped = if t == GLOBAL {
            None
        } else {
            self.tenant_layers.get(&(t, role))
        };
        global
            .map(|l| (l, None))
            .into_iter()
            .chain(scoped.map(|l| (l, Some(t))))
    }

    /// The roles `subject` has in force in `tenant` (empty for the global scope): those it
    /// holds there or globally, and every role those inherit (through global and that tenant's
    /// inherits), in name order. Unknown names give an empty list.
    ///
    /// ```
    /// # use rbac_core::{Engine, Policy};
    /// let policy = Policy::from_toml_str(r#"
    ///     [roles.viewer]
    ///     [roles.manager]
    ///     inherits = ["viewer"]
    ///     [tenants.acme]
    ///     [subjects.bob.tenants]
    ///     acme = ["manager"]
    /// "#)?;
    /// let snapshot = Engine::new(&policy).snapshot();
    /// assert_eq!(snapshot.roles_of("bob", "acme"), ["manager", "viewer"]);
    /// assert!(snapshot.roles_of("bob", "").is_empty());
    /// # Ok::<(), rbac_core::PolicyError>(())
    /// ```
    pub fn roles_of(&self, subject: &str, tenant: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .role_ids_in(subject, tenant)
            .map(|(_, roles)| roles.into_iter().map(|r| self.roles.name(r)).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// The tenants where `subject` holds roles of its own, in name order (global roles, which
    /// apply in every tenant, are not counted): what a tenant switcher lists, or where a
    /// tenant-scoped permission may be looked for.
    ///
    /// ```
    /// # use rbac_core::{Engine, Policy};
    /// let policy = Policy::from_toml_str(r#"
    ///     [permissions.finance.invoices]
    ///     read = "Read invoices"
    ///     [roles.viewer]
    ///     grants = ["finance.*"]
    ///     [tenants.acme]
    ///     [tenants.globex]
    ///     [tenants.initech]
    ///     [subjects.bob.tenants]
    ///     initech = ["viewer"]
    ///     acme = ["viewer"]
    /// "#)?;
    /// let snapshot = Engine::new(&policy).snapshot();
    /// assert_eq!(snapshot.tenants_of("bob"), ["acme", "initech"]);
    /// assert!(snapshot.tenants_of("mallory").is_empty());
    /// # Ok::<(), rbac_core::PolicyError>(())
    /// ```
    pub fn tenants_of(&self, subject: &str) -> Vec<&str> {
        let Some(rec) = self
            .subjects
            .get(subject)
            .and_then(|s| self.subjects.record(s))
        else {
            return Vec::new();
        };
        let start = rec.start as usize;
        let rest = self
            .entries
            .get(start..start.saturating_add(rec.len as usize))
            .unwrap_or(&[]);
        let mut names: Vec<&str> = std::iter::once(&rec.first)
            .chain(rest)
            .filter(|e| e.tenant != NONE)
            .map(|e| self.tenants.name(e.tenant))
            .filter(|name| !name.is_empty())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The scope id of `tenant` and the ids of the roles `subject` has in force there (held
    /// and inherited); `None` for an unknown subject or tenant.
    pub(crate) fn role_ids_in(&self, subject: &str, tenant: &str) -> Option<(u32, Vec<u32>)> {
        let s = self.subjects.get(subject)?;
        let t = if tenant.is_empty() {
            GLOBAL
        } else {
            self.tenants.get(tenant)?
        };
        let mut seen: BTreeSet<u32> = BTreeSet::new();
        let mut stack = self.held_roles(s, t);
        while let Some(role) = stack.pop() {
            if seen.insert(role) {
                for (layer, _) in self.layers_of(role, t) {
                    stack.extend(layer.parents.iter().copied());
                }
            }
        }
        Some((t, seen.into_iter().collect()))
    }

    /// Resources and the row and field rules of role layers.
    pub(crate) fn resource_policies(&self) -> &crate::rows::ResourcePolicies {
        &self.resource_policies
    }

    /// How many subjects, tenants, roles, permissions and distinct effective sets it holds.
    pub fn stats(&self) -> SnapshotStats {
        SnapshotStats {
            subjects: self.subjects.len(),
            tenants: self.tenants.len(),
            roles: self.roles.len(),
            permissions: self.permissions.len(),
            effective_sets: self.sets.len(),
            mapped_bytes: self.subjects.slots.mapped_bytes()
                + self.sets.data.mapped_bytes()
                + self.entries.mapped_bytes(),
        }
    }
}

/// Sizes of a compiled snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Subjects.
    pub subjects: usize,
    /// Tenants.
    pub tenants: usize,
    /// Roles (global and tenant-only names).
    pub roles: usize,
    /// Declared permissions.
    pub permissions: usize,
    /// Effective sets compiled: one per distinct (role set, scope), where a role set is a
    /// subject's whole combination of roles in a scope or, when the snapshot splits
    /// combinations ([`SetLayout`]), one part of it.
    pub effective_sets: usize,
    /// Bytes of the snapshot in memory mappings of their own: its large tables, on Linux (see
    /// [`Snapshot`]). The global allocator does not see them, so a heap profile of the
    /// snapshot misses them.
    pub mapped_bytes: usize,
}

struct Compiler<'a> {
    policy: &'a Policy,
    layout: SetLayout,
    snap: Snapshot,
    /// Sorted permission names, for wildcard ranges.
    perm_names: Vec<&'a str>,
    /// Per-role bit arena (allow/deny of single roles per scope).
    role_bits: Bits,
    global_eff: Vec<Option<Eff>>,
    /// (tenant, role) → effective bits of roles whose rules differ in that tenant.
    tenant_eff: HashMap<(u32, u32), Eff>,
    /// Roles whose effective rules differ in a tenant, per tenant.
    affected: HashMap<u32, BTreeSet<u32>>,
    combo_ids: HashMap<Box<[u32]>, u32>,
    set_ids: HashMap<(u32, u32), u32>,
    /// The snapshot's `entries` while they are added.
    entries: Vec<TenantEntry>,
}

impl<'a> Compiler<'a> {
    fn new(policy: &'a Policy, layout: SetLayout) -> Self {
        let doc = policy.document();
        let perm_names: Vec<&str> = doc.permissions.names().collect();
        let words = perm_names.len().div_ceil(64).max(1);
        let snap = Snapshot {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            permissions: Interner::default(),
            tenants: Interner::default(),
            roles: Interner::default(),
            subjects: Subjects::build(&[]).0,
            entries: PodArray::default(),
            entry_combos: Vec::new(),
            combos: Vec::new(),
            sets: Sets::new(words),
            overlays: hashbrown::HashMap::default(),
            global_layers: Vec::new(),
            tenant_layers: HashMap::new(),
            resource_policies: crate::rows::ResourcePolicies::default(),
        };
        Compiler {
            policy,
            layout,
            snap,
            perm_names,
            role_bits: Bits {
                words,
                data: Vec::new(),
            },
            global_eff: Vec::new(),
            tenant_eff: HashMap::new(),
            affected: HashMap::new(),
            combo_ids: HashMap::new(),
            set_ids: HashMap::new(),
            entries: Vec::new(),
        }
    }

    fn run(mut self) -> Snapshot {
        let doc = self.policy.document();
        self.snap.permissions = Interner::build(self.perm_names.iter().copied());
        self.snap.tenants = Interner::build(doc.tenants.keys().map(String::as_str));
        let tenant_roles = doc.tenants.values().flat_map(|def| def.roles.keys());
        self.snap.roles = Interner::build(doc.roles.keys().chain(tenant_roles).map(String::as_str));
        let n_roles = self.snap.roles.len();
        self.snap.global_layers = (0..n_roles).map(|_| None).collect();
        for (name, def) in &doc.roles {
            let id = self.snap.roles.get(name).unwrap_or(NONE);
            let layer = self.layer(def);
            if let Some(slot) = self.snap.global_layers.get_mut(id as usize) {
                *slot = Some(layer);
            }
        }
        for (tenant, def) in &doc.tenants {
            let t = self.snap.tenants.get(tenant).unwrap_or(NONE);
            for (role, layer_def) in &def.roles {
                let r = self.snap.roles.get(role).unwrap_or(NONE);
                let layer = self.layer(layer_def);
                self.snap.tenant_layers.insert((t, r), layer);
            }
        }
        let resource_policies = crate::rows::ResourcePolicies::compile(
            doc,
            |role| self.snap.roles.get(role),
            |tenant| self.snap.tenants.get(tenant),
        );
        self.snap.resource_policies = resource_policies;
        self.global_effects();
        self.tenant_effects();
        self.subjects();
        self.overlays();
        self.snap.sets.seal();
        self.snap.entries = PodArray::from_vec(std::mem::take(&mut self.entries));
        self.snap.entry_combos.shrink_to_fit();
        self.snap.subjects.long.shrink_to_fit();
        self.snap
    }

    fn range(&self, pattern: &Pattern) -> Range<u32> {
        let names = &self.perm_names;
        let (lo, hi) = match pattern {
            Pattern::All => (0, names.len()),
            Pattern::Exact(name) => match names.binary_search(&name.as_str()) {
                Ok(i) => (i, i + 1),
                Err(_) => (0, 0),
            },
            Pattern::Prefix(prefix) => {
                // Every name under `prefix.` sorts between `prefix.` and `prefix/`.
                let (from, to) = (format!("{prefix}."), format!("{prefix}/"));
                let lo = names.partition_point(|n| *n < from.as_str());
                let hi = names.partition_point(|n| *n < to.as_str());
                (lo, hi)
            }
        };
        lo as u32..hi as u32
    }

    fn layer(&self, def: &RoleDef) -> Layer {
        let rules = |list: &[String]| {
            list.iter()
                .filter_map(|text| Pattern::parse(text).ok())
                .map(|p| {
                    let range = self.range(&p);
                    (p, range)
                })
                .collect()
        };
        Layer {
            parents: def
                .inherits
                .iter()
                .filter_map(|r| self.snap.roles.get(r))
                .collect(),
            grants: rules(&def.grants),
            denies: rules(&def.denies),
        }
    }

    /// Effective allow/deny bits of every global role, parents before children.
    fn global_effects(&mut self) {
        let n = self.snap.roles.len();
        self.global_eff = vec![None; n];
        let parents = |r: u32| -> Vec<u32> {
            self.snap
                .global_layers
                .get(r as usize)
                .and_then(Option::as_ref)
                .map(|l| l.parents.clone())
                .unwrap_or_default()
        };
        let roots: Vec<u32> = (0..n as u32)
            .filter(|&r| {
                self.snap
                    .global_layers
                    .get(r as usize)
                    .is_some_and(Option::is_some)
            })
            .collect();
        for r in post_order(&roots, parents) {
            let Some(Some(layer)) = self.snap.global_layers.get(r as usize) else {
                continue;
            };
            let eff = own_bits(&mut self.role_bits, &[layer]);
            let parent_ids = layer.parents.clone();
            for p in parent_ids {
                if let Some(Some(pe)) = self.global_eff.get(p as usize).copied() {
                    self.role_bits.or_into(eff.allow, pe.allow);
                    self.role_bits.or_into(eff.deny, pe.deny);
                }
            }
            if let Some(slot) = self.global_eff.get_mut(r as usize) {
                *slot = Some(eff);
            }
        }
    }

    /// For each tenant with rules of its own: which roles they change (the roles with a tenant
    /// layer and every role inheriting one, in that tenant), and those roles' effective bits.
    fn tenant_effects(&mut self) {
        let mut by_tenant: HashMap<u32, Vec<u32>> = HashMap::new();
        for &(t, r) in self.snap.tenant_layers.keys() {
            by_tenant.entry(t).or_default().push(r);
        }
        // Who inherits whom, globally: role → children.
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (r, layer) in self.snap.global_layers.iter().enumerate() {
            for &p in layer.iter().flat_map(|l| l.parents.iter()) {
                children.entry(p).or_default().push(r as u32);
            }
        }
        let mut tenants: Vec<u32> = by_tenant.keys().copied().collect();
        tenants.sort_unstable();
        for t in tenants {
            let layered = by_tenant.get(&t).cloned().unwrap_or_default();
            // Tenant-scoped children: in t, role r with a layer inheriting p is a child of p.
            let mut t_children = children.clone();
            for &r in &layered {
                if let Some(layer) = self.snap.tenant_layers.get(&(t, r)) {
                    for &p in &layer.parents {
                        t_children.entry(p).or_default().push(r);
                    }
                }
            }
            let mut affected: BTreeSet<u32> = BTreeSet::new();
            let mut stack = layered.clone();
            while let Some(r) = stack.pop() {
                if affected.insert(r) {
                    stack.extend(t_children.get(&r).into_iter().flatten().copied());
                }
            }
            let parents_in_t = |r: u32| -> Vec<u32> {
                let global = self
                    .snap
                    .global_layers
                    .get(r as usize)
                    .and_then(Option::as_ref);
                let scoped = self.snap.tenant_layers.get(&(t, r));
                global
                    .into_iter()
                    .chain(scoped)
                    .flat_map(|l| l.parents.iter().copied())
                    .collect()
            };
            let roots: Vec<u32> = affected.iter().copied().collect();
            let order = post_order(&roots, parents_in_t);
            for r in order {
                if !affected.contains(&r) {
                    continue;
                }
                let global = self
                    .snap
                    .global_layers
                    .get(r as usize)
                    .and_then(Option::as_ref);
                let scoped = self.snap.tenant_layers.get(&(t, r));
                let parents: Vec<u32> = global
                    .into_iter()
                    .chain(scoped)
                    .flat_map(|l| l.parents.iter().copied())
                    .collect();
                let own: Vec<&Layer> = global.into_iter().chain(scoped).collect();
                let eff = own_bits(&mut self.role_bits, &own);
                for p in parents {
                    let pe = self
                        .tenant_eff
                        .get(&(t, p))
                        .copied()
                        .or_else(|| self.global_eff.get(p as usize).copied().flatten());
                    if let Some(pe) = pe {
                        self.role_bits.or_into(eff.allow, pe.allow);
                        self.role_bits.or_into(eff.deny, pe.deny);
                    }
                }
                self.tenant_eff.insert((t, r), eff);
            }
            self.affected.insert(t, affected);
        }
    }

    fn combo(&mut self, mut roles: Vec<u32>) -> u32 {
        roles.sort_unstable();
        roles.dedup();
        let key: Box<[u32]> = roles.into();
        if let Some(&id) = self.combo_ids.get(&key) {
            return id;
        }
        let id = self.snap.combos.len() as u32;
        self.snap.combos.push(key.clone());
        self.combo_ids.insert(key, id);
        id
    }

    /// The effective set of a role combination in scope `t` (GLOBAL or a tenant). Combinations
    /// that no tenant rule touches share the global set.
    fn set(&mut self, combo: u32, t: u32) -> u32 {
        let roles = self
            .snap
            .combos
            .get(combo as usize)
            .cloned()
            .unwrap_or_default();
        let scope = match self.affected.get(&t) {
            Some(aff) if t != GLOBAL && roles.iter().any(|r| aff.contains(r)) => t,
            _ => GLOBAL,
        };
        if let Some(&id) = self.set_ids.get(&(combo, scope)) {
            return id;
        }
        let mut allow = vec![0u64; self.role_bits.words];
        let mut deny = vec![0u64; self.role_bits.words];
        for &r in roles.iter() {
            let eff = if scope == GLOBAL {
                self.global_eff.get(r as usize).copied().flatten()
            } else {
                self.tenant_eff
                    .get(&(scope, r))
                    .copied()
                    .or_else(|| self.global_eff.get(r as usize).copied().flatten())
            };
            if let Some(eff) = eff {
                for (a, w) in allow.iter_mut().zip(self.role_bits.slice(eff.allow)) {
                    *a |= w;
                }
                for (d, w) in deny.iter_mut().zip(self.role_bits.slice(eff.deny)) {
                    *d |= w;
                }
            }
        }
        let effective: Vec<u64> = allow.iter().zip(&deny).map(|(a, d)| a & !d).collect();
        let set = self.snap.sets.push(effective, deny);
        self.set_ids.insert((combo, scope), set);
        set
    }

    fn subjects(&mut self) {
        let doc = self.policy.document();
        let names: Vec<&str> = doc.subjects.keys().map(String::as_str).collect();
        let (table, ids) = Subjects::build(&names);
        drop(names);
        self.snap.subjects = table;
        // First every subject's role combinations, so that the layout of all of them can be
        // chosen (`split_combos`) before any set is built.
        struct Planned {
            id: u32,
            global_combo: u32,
            /// `tenant_combos[previous end..end]`: (tenant, combination) of each tenant entry.
            end: usize,
        }
        let mut planned: Vec<Planned> = Vec::with_capacity(doc.subjects.len());
        let mut tenant_combos: Vec<(u32, u32)> = Vec::new();
        for ((_, def), id) in doc.subjects.iter().zip(ids) {
            let Some(id) = id else {
                continue;
            };
            let global: Vec<u32> = def
                .roles
                .iter()
                .filter_map(|r| self.snap.roles.get(r))
                .collect();
            let global_combo = if global.is_empty() {
                NONE
            } else {
                self.combo(global.clone())
            };
            for (tenant, roles) in &def.tenants {
                let Some(t) = self.snap.tenants.get(tenant) else {
                    continue;
                };
                let mut held = global.clone();
                held.extend(roles.iter().filter_map(|r| self.snap.roles.get(r)));
                tenant_combos.push((t, self.combo(held)));
            }
            planned.push(Planned {
                id,
                global_combo,
                end: tenant_combos.len(),
            });
        }
        let split = self.split_combos(tenant_combos.iter().map(|&(_, c)| c));
        let mut from = 0;
        for plan in planned {
            let global_set = if plan.global_combo == NONE {
                NONE
            } else {
                self.set(plan.global_combo, GLOBAL)
            };
            let mut entries: Vec<(TenantEntry, u32)> = Vec::with_capacity(plan.end - from);
            for &(t, combo) in tenant_combos.get(from..plan.end).unwrap_or(&[]) {
                let halves = if split { self.halves(combo) } else { None };
                let entry = match halves {
                    Some((init, last)) => {
                        let (set, also) = (self.set(init, t), self.set(last, t));
                        // A part that could not be stored must not leave the other to decide
                        // alone (its denies would be lost): then neither part is kept, and
                        // the subject holds nothing in the tenant.
                        let stored = set != NONE && also != NONE;
                        TenantEntry {
                            tenant: t,
                            set: if stored { set } else { NONE },
                            also: if stored { also } else { NONE },
                        }
                    }
                    None => TenantEntry {
                        tenant: t,
                        set: self.set(combo, t),
                        also: NONE,
                    },
                };
                entries.push((entry, combo));
            }
            from = plan.end;
            entries.sort_unstable_by_key(|(e, _)| e.tenant);
            let start = self.entries.len() as u32;
            let mut rest = entries.into_iter();
            let (first, first_combo) = rest.next().unwrap_or((TenantEntry::NONE, NONE));
            for (entry, combo) in rest {
                self.entries.push(entry);
                self.snap.entry_combos.push(combo);
            }
            let len = self.entries.len() as u32 - start;
            let id = plan.id as usize;
            if let Some(rec) = self.snap.subjects.slots.get_mut(id) {
                rec.global_set = global_set;
                rec.first = first;
                rec.start = start;
                rec.len = len;
            }
            if let Some(combo) = self.snap.subjects.first_combos.get_mut(id) {
                *combo = first_combo;
            }
            if let Some(combo) = self.snap.subjects.global_combos.get_mut(id) {
                *combo = plan.global_combo;
            }
        }
    }

    /// The two parts of a combination of two or more roles: all its roles but the last, and
    /// its last role (combinations are sorted by role id). None for a single role.
    fn halves(&mut self, combo: u32) -> Option<(u32, u32)> {
        let roles = self.snap.combos.get(combo as usize)?;
        let (last, init) = roles.split_last()?;
        if init.is_empty() {
            return None;
        }
        let (init, last) = (init.to_vec(), vec![*last]);
        Some((self.combo(init), self.combo(last)))
    }

    /// Whether tenant entries keep a combination of two or more roles as two parts (see
    /// [`Parts`]) rather than as one set of its own. [`SetLayout::Auto`] splits when the
    /// distinct such combinations, at the size of a bitset each, would take more than
    /// [`SPLIT_ABOVE_BYTES`]. Their sets then would not stay in cache, and a check that
    /// misses the cache costs more than a second lookup in it. With a million subjects
    /// holding one or two of a thousand roles, a check makes one trip to memory (the
    /// subject) instead of several.
    fn split_combos(&self, combos: impl Iterator<Item = u32>) -> bool {
        match self.layout {
            SetLayout::Whole => return false,
            SetLayout::Split => return true,
            SetLayout::Auto => {}
        }
        let mut seen = vec![false; self.snap.combos.len()];
        let mut multi = 0usize;
        for combo in combos {
            if let Some(seen) = seen.get_mut(combo as usize)
                && !*seen
            {
                *seen = true;
                if self
                    .snap
                    .combos
                    .get(combo as usize)
                    .is_some_and(|c| c.len() > 1)
                {
                    multi += 1;
                }
            }
        }
        multi.saturating_mul(self.role_bits.words * 16) > SPLIT_ABOVE_BYTES
    }

    /// Sets for global-only subjects in tenants whose own rules change one of their roles.
    fn overlays(&mut self) {
        let global_combos: BTreeSet<u32> = self
            .snap
            .subjects
            .global_combos
            .iter()
            .copied()
            .filter(|&c| c != NONE)
            .collect();
        let mut tenants: Vec<u32> = self.affected.keys().copied().collect();
        tenants.sort_unstable();
        for t in tenants {
            for &c in &global_combos {
                let touched = {
                    let roles = self.snap.combos.get(c as usize);
                    let aff = self.affected.get(&t);
                    match (roles, aff) {
                        (Some(roles), Some(aff)) => roles.iter().any(|r| aff.contains(r)),
                        _ => false,
                    }
                };
                if touched {
                    let set = self.set(c, t);
                    self.snap.overlays.insert((t, c), set);
                }
            }
        }
    }
}

/// Allocates allow/deny bits holding the direct grants and denies of `layers`.
fn own_bits(bits: &mut Bits, layers: &[&Layer]) -> Eff {
    let eff = Eff {
        allow: bits.alloc(),
        deny: bits.alloc(),
    };
    for layer in layers {
        for (_, range) in &layer.grants {
            bits.set_range(eff.allow, range.clone());
        }
        for (_, range) in &layer.denies {
            bits.set_range(eff.deny, range.clone());
        }
    }
    eff
}

/// Nodes reachable from `roots` through `parents`, each after all of its parents.
fn post_order(roots: &[u32], parents: impl Fn(u32) -> Vec<u32>) -> Vec<u32> {
    let mut done: BTreeSet<u32> = BTreeSet::new();
    let mut order = Vec::new();
    for &root in roots {
        if done.contains(&root) {
            continue;
        }
        let mut stack: Vec<(u32, Vec<u32>)> = vec![(root, parents(root))];
        let mut open: BTreeSet<u32> = BTreeSet::from([root]);
        while let Some((node, pending)) = stack.last_mut() {
            if let Some(next) = pending.pop() {
                // A validated policy has no cycle; `open` guards against looping anyway.
                if !done.contains(&next) && open.insert(next) {
                    let ps = parents(next);
                    stack.push((next, ps));
                }
            } else {
                let node = *node;
                stack.pop();
                open.remove(&node);
                if done.insert(node) {
                    order.push(node);
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-ahead loops of the batch APIs, which the public entry points take only past
    /// 4 MiB of subjects, decide like single checks on a small snapshot too: slices of every
    /// length around the look-ahead, in both layouts, with unknown names, the global scope,
    /// subjects holding only global roles and split role pairs.
    #[test]
    fn batches_read_ahead_decide_like_single_checks() {
        let mut toml = String::from("[permissions.m.r]\na = \"\"\nb = \"\"\nc = \"\"\n");
        toml.push_str("[permissions.n.r]\na = \"\"\nb = \"\"\n");
        let grants = ["m.*", "m.r.a", "n.*", "*", "n.r.b", "m.r.c"];
        for (i, grant) in grants.iter().enumerate() {
            let deny = ["n.r.a", "m.r.b"][i % 2];
            toml.push_str(&format!(
                "[roles.r{i}]\ngrants = [\"{grant}\"]\ndenies = [\"{deny}\"]\n"
            ));
        }
        for t in 0..5 {
            toml.push_str(&format!("[tenants.t{t}]\n"));
        }
        toml.push_str("[tenants.t1.roles.r0]\ndenies = [\"m.r.c\"]\n");
        for s in 0..40 {
            toml.push_str(&format!("[subjects.u{s}]\n"));
            if s % 3 == 0 {
                toml.push_str(&format!("roles = [\"r{}\"]\n", s % 6));
            }
            if s % 5 != 0 {
                toml.push_str(&format!("[subjects.u{s}.tenants]\n"));
                for t in [s % 5, (s * 7 + 1) % 5] {
                    let (a, b) = (s % 6, (s + t + 1) % 6);
                    let roles = if a == b {
                        format!("\"r{a}\"")
                    } else {
                        format!("\"r{a}\", \"r{b}\"")
                    };
                    toml.push_str(&format!("t{t} = [{roles}]\n"));
                    if (s * 7 + 1) % 5 == s % 5 {
                        break;
                    }
                }
            }
        }
        let policy = crate::Policy::from_toml_str(&toml).unwrap();
        let subjects: Vec<String> = (0..41).map(|s| format!("u{s}")).collect();
        let tenants = ["t0", "t1", "t2", "t3", "t4", "", "nowhere"];
        let permissions = ["m.r.a", "m.r.b", "m.r.c", "n.r.a", "n.r.b", "m.r.zz"];
        let mut queries = Vec::new();
        for s in &subjects {
            for t in tenants {
                for p in permissions {
                    queries.push((s.as_str(), t, p));
                }
            }
        }
        for layout in [SetLayout::Whole, SetLayout::Split] {
            let snap = Snapshot::compile_with(&policy, layout);
            let singles: Vec<Decision> = queries
                .iter()
                .map(|&(s, t, p)| snap.check(s, t, p))
                .collect();
            let allowed = singles.iter().filter(|d| d.is_allowed()).count();
            assert!(
                allowed > 100 && allowed < singles.len() - 100,
                "{allowed} allowed"
            );
            let ids: Vec<QueryIds> = queries
                .iter()
                .map(|&(s, t, p)| snap.query_ids(s, t, p))
                .collect();
            for len in [1, 15, 16, 17, 31, 32, 33, 1000, queries.len()] {
                for (from, chunk) in queries.chunks(len).enumerate() {
                    let want = &singles[from * len..from * len + chunk.len()];
                    assert_eq!(
                        snap.check_batch_ahead(chunk),
                        want,
                        "{layout:?}, slices of {len}"
                    );
                    let got =
                        snap.is_allowed_batch_ahead(&ids[from * len..from * len + chunk.len()]);
                    let want: Vec<bool> = want.iter().map(|d| d.is_allowed()).collect();
                    assert_eq!(got, want, "{layout:?}, slices of {len}");
                }
            }
            assert!(snap.check_batch_ahead::<&str, &str, &str>(&[]).is_empty());
            assert!(snap.is_allowed_batch_ahead(&[]).is_empty());
        }
    }

    /// With 32-bit generations, the snapshot compiled 2^32 compiles after another shared its
    /// generation and accepted its ids. Generations are 64 bits now: that snapshot refuses
    /// them like any other.
    #[test]
    fn ids_from_four_billion_compiles_before_are_refused() {
        let policy = crate::Policy::from_toml_str(
            "[permissions.m.r]\na = \"\"\n[roles.v]\ngrants = [\"m.r.a\"]\n\
             [tenants.t0]\n[subjects.alice.tenants]\nt0 = [\"v\"]\n",
        )
        .unwrap();
        // The counter itself is 64 bits (this line does not compile otherwise); the snapshot
        // it would give 2^32 compiles later is made directly, so the test neither waits for
        // it nor moves the counter other tests use.
        let _: &AtomicU64 = &GENERATION;
        let old = Snapshot::compile(&policy);
        let mut new = Snapshot::compile(&policy);
        new.generation = old.generation + (1 << 32);
        let ids = (
            old.subject_id("alice").unwrap(),
            old.tenant_id("t0").unwrap(),
            old.permission_id("m.r.a").unwrap(),
        );
        assert!(old.is_allowed(ids.0, ids.1, ids.2));
        assert!(!new.is_allowed(ids.0, ids.1, ids.2));
        assert_eq!(new.decide(ids.0, ids.1, ids.2).cause(), Cause::StaleIds);
        let query = QueryIds::new(ids.0, ids.1, ids.2);
        assert_eq!(old.is_allowed_batch(&[query]), [true]);
        assert_eq!(new.is_allowed_batch(&[query]), [false]);
    }

    /// Prefetches stay inside their array: nothing for an empty one, the last element for
    /// an index past the end (the unknown subject's slot `NONE` among them).
    #[test]
    fn prefetches_stay_inside_their_array() {
        assert_eq!(prefetch_at(0, 0), None);
        assert_eq!(prefetch_at(0, NONE as usize), None);
        assert_eq!(prefetch_at(1, 0), Some(0));
        assert_eq!(prefetch_at(10, 3), Some(3));
        assert_eq!(prefetch_at(10, 9), Some(9));
        assert_eq!(prefetch_at(10, 10), Some(9));
        assert_eq!(prefetch_at(10, NONE as usize), Some(9));
        assert_eq!(prefetch_at(10, usize::MAX), Some(9));
    }

    /// A snapshot where no subject holds a tenant role has no tenant entries at all: the
    /// read-ahead must decide there as single checks do, and never read past that empty
    /// array (that it never prefetches past it is [`prefetches_stay_inside_their_array`]).
    #[test]
    fn batches_read_ahead_without_tenant_entries() {
        let mut toml = String::from("[permissions.m.r]\na = \"\"\nb = \"\"\n");
        toml.push_str("[roles.ra]\ngrants = [\"m.r.a\"]\n[roles.rb]\ngrants = [\"m.*\"]\n");
        toml.push_str("denies = [\"m.r.a\"]\n[tenants.t0]\n");
        for s in 0..50 {
            toml.push_str(&format!(
                "[subjects.u{s}]\nroles = [\"{}\"]\n",
                ["ra", "rb"][s % 2]
            ));
        }
        let policy = crate::Policy::from_toml_str(&toml).unwrap();
        let snap = Snapshot::compile(&policy);
        assert!(snap.entries.is_empty());
        let mut queries = Vec::new();
        for s in 0..52 {
            for t in ["", "t0", "t9"] {
                for p in ["m.r.a", "m.r.b", "m.r.zz"] {
                    queries.push((format!("u{s}"), t, p));
                }
            }
        }
        let singles: Vec<Decision> = queries
            .iter()
            .map(|(s, t, p)| snap.check(s, t, p))
            .collect();
        assert!(singles.iter().any(Decision::is_allowed));
        assert_eq!(snap.check_batch_ahead(&queries), singles);
        let ids: Vec<QueryIds> = queries
            .iter()
            .map(|(s, t, p)| snap.query_ids(s, t, p))
            .collect();
        let want: Vec<bool> = singles.iter().map(Decision::is_allowed).collect();
        assert_eq!(snap.is_allowed_batch_ahead(&ids), want);
    }

    /// `tests/batch.rs` relies on 60,000 subjects taking the read-ahead path, and the
    /// benchmark's medium shape (11,000) on not taking it.
    #[test]
    fn batches_read_ahead_from_about_fifty_thousand_subjects() {
        let names = |n: usize| (0..n).map(|s| format!("u{s}")).collect::<Vec<_>>();
        let table = |names: &[String]| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            Subjects::build(&names).0
        };
        assert!(table(&names(60_000)).worth_prefetching());
        assert!(!table(&names(11_000)).worth_prefetching());
    }

    /// Names inside the record and in the arena, ones that differ only past the inline part,
    /// and lookups of names that are not there.
    #[test]
    fn subject_table_compares_whole_names() {
        let long = "x".repeat(INLINE);
        let names: Vec<String> = (0..500)
            .map(|i| match i % 4 {
                0 => format!("u{i}"),
                1 => format!("{long}{i}"),
                2 => format!("{}{i}", &long[..i % INLINE]),
                _ => format!("{long}{long}@{i}"),
            })
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (table, ids) = Subjects::build(&refs);
        let ids: Vec<u32> = ids
            .into_iter()
            .map(|id| id.expect("room for every name"))
            .collect();
        for (name, id) in names.iter().zip(&ids) {
            assert_eq!(table.get(name), Some(*id), "{name}");
        }
        for missing in [
            "",
            "u",
            "u1000",
            &long,
            &format!("{long}1000"),
            &"y".repeat(300),
        ] {
            assert_eq!(table.get(missing), None, "{missing}");
        }
        assert_eq!(table.len(), names.len());
        let stored = table.slots.iter().filter(|r| r.name_len != 0).count();
        assert_eq!(stored, names.len());
        let (table, ids) = Subjects::build(&["", "a", &"z".repeat(70_000)]);
        assert_eq!(ids[0], None, "the empty name is never stored");
        assert_eq!(ids[2], None, "a name over 65,535 bytes is never stored");
        assert_eq!(table.get(""), None);
        assert_eq!(table.get("a"), ids[1]);
    }

    /// Names of every inline length are equal to themselves and to nothing that differs in
    /// one byte, whatever lies in the slot past the name.
    #[test]
    fn inline_names_compare_every_byte() {
        for n in 0..=INLINE {
            let name: Vec<u8> = (0..n).map(|i| b'a' + (i * 7 % 26) as u8).collect();
            let mut stored = [0u8; INLINE];
            stored[..n].copy_from_slice(&name);
            assert!(same_inline(&name, &stored), "length {n}");
            for i in 0..n {
                let mut other = name.clone();
                other[i] ^= 0x20;
                assert!(!same_inline(&other, &stored), "length {n}, byte {i}");
            }
            if n < INLINE {
                stored[n] = b'z';
                assert!(same_inline(&name, &stored), "length {n}, padding");
            }
        }
    }

    /// Names inside the slot and in the arena only, names given twice, and lookups of names
    /// that are not there.
    #[test]
    fn interner_finds_every_name_and_only_those() {
        let long = "p".repeat(NAME_INLINE);
        let names: Vec<String> = (0..700)
            .map(|i| match i % 3 {
                0 => format!("m.r{i}.read"),
                1 => format!("{long}{i}"),
                _ => format!("{long}{long}.{i}"),
            })
            .collect();
        // Every name twice: the second time gets the first id.
        let interner = Interner::build(names.iter().chain(&names).map(String::as_str));
        assert_eq!(interner.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(interner.get(name), Some(i as u32), "{name}");
            assert_eq!(interner.name(i as u32), name);
        }
        for missing in [
            "",
            "m",
            "m.r1.read ",
            &long,
            &format!("{long}1000"),
            &"q".repeat(70_000),
        ] {
            assert_eq!(interner.get(missing), None, "{missing}");
        }
        let empty = Interner::default();
        assert_eq!(empty.get("x"), None);
        assert_eq!(empty.get(""), None);
        let only_empty = Interner::build([""]);
        assert_eq!(only_empty.get(""), Some(0));
        assert_eq!(only_empty.get("x"), None);
    }

    /// A role whose grants sit in a few blocks of a 10,000-permission registry compiles to
    /// a ranked set, and decides by it.
    #[test]
    fn clustered_grants_compile_to_a_ranked_set() {
        let mut toml = String::new();
        for m in 0..100 {
            for r in 0..10 {
                toml.push_str(&format!("[permissions.m{m:02}.r{r}]\n"));
                for a in 0..10 {
                    toml.push_str(&format!("a{a} = \"\"\n"));
                }
            }
        }
        toml.push_str(
            "[roles.clerk]\ngrants = [\"m07.r1.*\", \"m07.r2.*\", \"m99.r9.a9\"]\n\
             denies = [\"m07.r1.a3\"]\n[tenants.acme]\n[subjects.ann.tenants]\nacme = [\"clerk\"]\n",
        );
        let snap = Snapshot::compile(&crate::Policy::from_toml_str(&toml).unwrap());
        let rec = snap
            .subjects
            .record(snap.subjects.get("ann").unwrap())
            .unwrap();
        let header = snap.sets.data[rec.first.set as usize];
        assert_eq!(header & (DENSE | RANKED), RANKED, "header {header:#x}");
        let cause = |p: &str| snap.check("ann", "acme", p).cause();
        assert_eq!(cause("m07.r2.a9"), Cause::Granted);
        assert_eq!(cause("m99.r9.a9"), Cause::Granted);
        assert_eq!(cause("m07.r1.a3"), Cause::ExplicitDeny);
        assert_eq!(cause("m07.r3.a0"), Cause::NoGrant);
        assert_eq!(snap.permissions_of("ann", "acme").len(), 20);
    }

    #[test]
    fn sets_test_both_states() {
        let mut sets = Sets::new(4);
        // A few allowed and many denied (a bitset), the reverse, and a few alone (a list).
        let few = vec![0b1010, 0, 0, 0];
        let many = vec![!0b1010, 0b1, 0, 0];
        let a = sets.push(few.clone(), many.clone());
        let b = sets.push(many.clone(), few.clone());
        let c = sets.push(few.clone(), vec![0; 4]);
        assert_eq!(sets.push(few.clone(), many.clone()), a);
        // A permission both granted and denied is denied.
        let d = sets.push(vec![0b110, 0, 0, 0], vec![0b100, 0, 0, 0]);
        sets.seal();
        assert!(sets.allows(a, 1) && sets.allows(a, 3) && !sets.allows(a, 2));
        assert!(sets.denies(a, 0) && sets.denies(a, 2) && sets.denies(a, 64));
        assert!(!sets.denies(a, 1) && !sets.denies(a, 65));
        assert!(sets.allows(b, 0) && sets.allows(b, 63) && sets.allows(b, 64));
        assert!(!sets.allows(b, 1) && !sets.allows(b, 65));
        assert!(sets.denies(b, 1) && sets.denies(b, 3) && !sets.denies(b, 4));
        assert!(sets.allows(c, 1) && sets.allows(c, 3) && !sets.allows(c, 0));
        assert!(!sets.denies(c, 1) && !sets.denies(c, 2));
        assert!(sets.allows(d, 1) && !sets.allows(d, 2) && sets.denies(d, 2));
        for set in [a, b, c, d] {
            assert_eq!(sets.state(set, 1000), NEITHER);
            assert_eq!(sets.state(set, u32::MAX), NEITHER);
        }
        assert!(sets.allows_any_in(a, 2, 4) && !sets.allows_any_in(a, 4, 128));
        assert!(sets.denies_any_in(b, 3, 4) && !sets.denies_any_in(b, 4, 128));
        assert!(sets.allows_any_in(b, 64, 65) && !sets.allows_any_in(b, 65, 128));
        assert!(sets.allows_any_in(c, 0, 2) && !sets.denies_any_in(c, 0, 256));
        assert_eq!(sets.len(), 5);
    }

    /// Sets of every size and spread, so every kind (lists of keys, ranked bitsets, two-bit
    /// bitsets), with and without denies, answer exactly like the bits they were built from,
    /// for every id and range.
    #[test]
    fn sets_answer_like_their_bits_for_every_kind_of_set() {
        // 300 words (10 summary groups, ids below 20,480): up to 599 keys make a list or,
        // when they sit in few blocks, a ranked set; more make a bitset.
        let words = 300;
        let bits = words as u32 * 64;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut sets = Sets::new(words);
        let mut built = Vec::new();
        let sizes = [
            0usize, 1, 2, 15, 16, 17, 31, 32, 33, 100, 255, 256, 257, 299, 598, 600, 5000,
        ];
        // Ids drawn from all of them, then from a window (few blocks: ranked sets), at the
        // start, the middle, across a group's end, and at the end.
        let windows = [
            (0, bits),
            (0, 100),
            (4000, 300),
            (2048 * 3 - 90, 200),
            (bits - 70, 70),
        ];
        let cases = windows
            .iter()
            .flat_map(|&w| (0..sizes.len()).map(move |i| (w, i)));
        for ((base, window), i) in cases {
            let allowed_n = sizes[i];
            let denied_n = sizes[(i * 7 + 3) % sizes.len()] * (i % 2);
            let mut make = |n: usize| {
                let mut v = vec![0u64; words];
                for _ in 0..n.min(window as usize) {
                    let bit = base + rng.u32(..window);
                    v[bit as usize / 64] |= 1 << (bit % 64);
                }
                v
            };
            let (granted, denied) = (make(allowed_n), make(denied_n));
            let id = sets.push(granted.clone(), denied.clone());
            assert_ne!(id, NONE);
            let allowed: Vec<u64> = granted.iter().zip(&denied).map(|(g, d)| g & !d).collect();
            built.push((id, allowed, denied));
        }
        sets.seal();
        let kind = |tag: u32| {
            built
                .iter()
                .filter(|(id, _, _)| sets.data[*id as usize] & (DENSE | RANKED) == tag)
                .count()
        };
        let (dense, ranked, lists) = (kind(DENSE), kind(RANKED), kind(0));
        assert!(
            dense >= 3 && ranked >= 10 && lists >= 10,
            "every kind: {dense} bitsets, {ranked} ranked, {lists} lists"
        );
        let has = |v: &[u64], bit: u32| v[bit as usize / 64] >> (bit % 64) & 1 == 1;
        for (id, allowed, denied) in &built {
            for bit in 0..bits + 70 {
                let (a, d) = if bit < bits {
                    (has(allowed, bit), has(denied, bit))
                } else {
                    (false, false)
                };
                assert_eq!(sets.allows(*id, bit), a, "set {id} allows {bit}");
                assert_eq!(sets.denies(*id, bit), d, "set {id} denies {bit}");
            }
            // Ids past every group's summary, where blocks must not be read as one.
            for bit in [
                20_479,
                20_480,
                20_481,
                2048 * 11,
                2048 * 64,
                1 << 30,
                u32::MAX,
            ] {
                assert_eq!(sets.state(*id, bit), NEITHER, "set {id}, id {bit}");
                assert!(!sets.allows(*id, bit), "set {id} allows {bit}");
            }
            // Ranges at block and group edges, and ranges that run past the last id.
            let edges = [
                0,
                1,
                31,
                32,
                33,
                63,
                64,
                2047,
                2048,
                2049,
                4095,
                4096,
                bits - 33,
            ];
            let spans = [1, 2, 31, 32, 33, 100, 5000, 30_000];
            for (lo, span) in edges
                .iter()
                .flat_map(|&e| spans.iter().map(move |&n| (e, n)))
            {
                let hi = lo + span;
                let any = |v: &[u64]| (lo..hi.min(bits)).any(|b| has(v, b));
                assert_eq!(sets.allows_any_in(*id, lo, hi), any(allowed), "{lo}..{hi}");
                assert_eq!(sets.denies_any_in(*id, lo, hi), any(denied), "{lo}..{hi}");
            }
            for _ in 0..300 {
                let lo = rng.u32(..bits);
                let hi = (lo + rng.u32(1..200)).min(bits);
                let any = |v: &[u64]| (lo..hi).any(|b| has(v, b));
                assert_eq!(sets.allows_any_in(*id, lo, hi), any(allowed));
                assert_eq!(sets.denies_any_in(*id, lo, hi), any(denied));
            }
        }
    }
}
