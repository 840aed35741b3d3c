//! The compiled, immutable form of a policy that checks run against.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

use foldhash::fast::RandomState;

use crate::decision::{Cause, Decision, Effect, Explanation, Rule};
use crate::document::RoleDef;
use crate::name::Pattern;
use crate::pages::PodArray;
use crate::policy::Policy;

const NONE: u32 = u32::MAX;
/// The tenant id of the global scope (the empty tenant name).
const GLOBAL: u32 = u32::MAX;

static GENERATION: AtomicU32 = AtomicU32::new(1);

/// Longest name kept inside its [`Interner`] slot.
const NAME_INLINE: usize = 24;

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
/// An open-addressing hash table (linear probing) whose slots carry the id, a 16-bit hash tag
/// and, for names of up to [`NAME_INLINE`] bytes, the name itself: a lookup reads one slot (two
/// adjacent ones on a collision) and nothing else. Longer names are compared against the arena
/// that holds every name for `name(id)`. The table is built once and only read by checks. It
/// is kept at most half full: with linear probing, a lookup of a name that is not there (an
/// unknown permission or tenant) scans to the next empty slot, about 2.5 slots on average at
/// that load against 8.5 at 3/4 full, and these tables are small next to the subjects'.
#[derive(Debug, Default)]
struct Interner {
    /// Every name, back to back.
    bytes: String,
    /// `bytes[start .. start + len]` of each id.
    spans: Vec<(u32, u32)>,
    /// At most half full, so a probe always ends at an empty slot, soon.
    slots: Vec<Slot>,
    hasher: RandomState,
}

// 32-byte aligned: a slot never straddles two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Slot {
    /// The name's id, or NONE for an empty slot.
    id: u32,
    /// 16 bits of the name's hash: most other names are passed over without a comparison.
    tag: u16,
    /// The name's length, saturated at `u16::MAX`.
    len: u16,
    /// The name, when it is at most [`NAME_INLINE`] bytes long.
    inline: [u8; NAME_INLINE],
}

impl Slot {
    const EMPTY: Slot = Slot {
        id: NONE,
        tag: 0,
        len: 0,
        inline: [0; NAME_INLINE],
    };
}

impl Interner {
    #[inline]
    fn hash(&self, name: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// The slot where the probe for `hash` starts (`n` slots, n > 0).
    #[inline]
    fn home(hash: u64, n: usize) -> usize {
        ((hash & 0xffff_ffff).wrapping_mul(n as u64) >> 32) as usize
    }

    /// The id of `name`: the name is compared in full, never decided on its hash.
    #[inline(always)]
    fn get(&self, name: &str) -> Option<u32> {
        let name = name.as_bytes();
        let hash = self.hash(name);
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let tag = (hash >> 48) as u16;
        let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        let mut i = Interner::home(hash, n);
        // The table always has an empty slot, which ends the probe; the bound is a safeguard.
        for _ in 0..n {
            let slot = self.slots.get(i)?;
            if slot.id == NONE {
                return None;
            }
            if slot.tag == tag && slot.len == len {
                let same = if name.len() <= NAME_INLINE {
                    same_inline(name, &slot.inline)
                } else {
                    self.name(slot.id).as_bytes() == name
                };
                if same {
                    return Some(slot.id);
                }
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        None
    }

    /// Interns `name` (a no-op if it is there already) and returns its id.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.get(name) {
            return id;
        }
        let id = self.spans.len() as u32;
        // Offsets are u32: a policy's names would need 4 GiB of text to overflow, and then the
        // saturated span reads as no name at all, so the name is unknown (denied), never aliased.
        let start = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        self.bytes.push_str(name);
        self.spans.push((start, len));
        if (self.spans.len() + 1) * 2 > self.slots.len() {
            self.rebuild(self.slots.len().saturating_mul(2).max(16));
        } else {
            self.place(id);
        }
        id
    }

    /// Puts id `id` (whose name is in the arena) into its slot.
    fn place(&mut self, id: u32) {
        let name = self.name(id);
        let hash = self.hash(name.as_bytes());
        let mut slot = Slot {
            id,
            tag: (hash >> 48) as u16,
            len: u16::try_from(name.len()).unwrap_or(u16::MAX),
            ..Slot::EMPTY
        };
        if let (Some(dst), Some(src)) = (
            slot.inline.get_mut(..name.len()),
            Some(name.as_bytes()).filter(|b| b.len() <= NAME_INLINE),
        ) {
            dst.copy_from_slice(src);
        }
        let n = self.slots.len();
        let mut i = Interner::home(hash, n);
        for _ in 0..n {
            match self.slots.get_mut(i) {
                Some(free) if free.id == NONE => {
                    *free = slot;
                    return;
                }
                Some(_) => {}
                None => return,
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Makes the table `n` slots long and puts every name back in.
    fn rebuild(&mut self, n: usize) {
        self.slots = vec![Slot::EMPTY; n];
        for id in 0..self.spans.len() as u32 {
            self.place(id);
        }
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

    /// Frees the arena's unused capacity once every name is in, and sizes the table to the
    /// names (at most half full).
    fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.spans.shrink_to_fit();
        let n = self.spans.len();
        self.rebuild(n.saturating_mul(2).saturating_add(1));
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

/// Effective sets, allowed and denied bits together, in one arena of `u32` words.
///
/// A set's id is the offset of its first word, so a check reads the set right away (no id →
/// location table, which would be one more cache miss on large policies). A set is two parts,
/// allowed then denied, each one header word followed by its data, stored the cheaper way: a
/// bitset (header [`DENSE`], then the bitset as `2 * words` halves) when it holds many
/// permissions, else a sorted list of ids (header: their count). At 10,000 permissions a bitset
/// is 1.25 KB, and most effective sets hold a few dozen. Identical sets are stored once.
#[derive(Debug, Default)]
struct Sets {
    /// `u64` words of a bitset over every permission.
    words: usize,
    /// The sets, once sealed.
    data: PodArray<u32>,
    /// The sets while they are added.
    building: Vec<u32>,
    /// How many (role set, scope) sets were added, identical ones counted each time.
    count: usize,
    by_content: HashMap<(Vec<u64>, Vec<u64>), u32>,
}

/// Header bit of a part stored as a bitset.
const DENSE: u32 = 1 << 31;

impl Sets {
    fn new(words: usize) -> Sets {
        Sets {
            words,
            ..Sets::default()
        }
    }

    /// Adds a set given as bitset words (allowed, denied) and returns its id, or NONE when the
    /// arena would outgrow `u32` offsets (then the set holds nothing: denied, never misread).
    fn push(&mut self, allowed: Vec<u64>, denied: Vec<u64>) -> u32 {
        self.count += 1;
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
        self.push_part(&key.0);
        self.push_part(&key.1);
        self.by_content.insert(key, id);
        id
    }

    fn push_part(&mut self, words: &[u64]) {
        let count: usize = words.iter().map(|w| w.count_ones() as usize).sum();
        // A list of u32 ids beats the bitset while it is under half the bitset's size.
        if count * 4 < self.words * 8 / 2 {
            self.building.push(count as u32);
            for (i, w) in words.iter().enumerate() {
                let mut w = *w;
                while w != 0 {
                    self.building.push(i as u32 * 64 + w.trailing_zeros());
                    w &= w - 1;
                }
            }
        } else {
            self.building.push(DENSE);
            for i in 0..self.words {
                let w = words.get(i).copied().unwrap_or(0);
                self.building.push(w as u32);
                self.building.push((w >> 32) as u32);
            }
        }
    }

    /// The part that starts at `at`: whether it is a bitset, and its data.
    #[inline]
    fn part(&self, at: usize) -> Option<(bool, &[u32])> {
        let header = *self.data.get(at)?;
        let (dense, len) = if header & DENSE != 0 {
            (true, self.words * 2)
        } else {
            (false, header as usize)
        };
        Some((dense, self.data.get(at + 1..at + 1 + len)?))
    }

    /// Where the denied part of `set` starts.
    #[inline]
    fn denied_at(&self, set: u32) -> Option<usize> {
        let (_, allowed) = self.part(set as usize)?;
        Some(set as usize + 1 + allowed.len())
    }

    #[inline]
    fn part_test(&self, at: usize, bit: u32) -> bool {
        match self.part(at) {
            Some((true, halves)) => halves
                .get(bit as usize / 32)
                .is_some_and(|w| (w >> (bit % 32)) & 1 == 1),
            Some((false, ids)) => ids.binary_search(&bit).is_ok(),
            None => false,
        }
    }

    /// Whether `set` allows permission `bit`.
    #[inline]
    fn allows(&self, set: u32, bit: u32) -> bool {
        self.part_test(set as usize, bit)
    }

    /// Whether `set` denies permission `bit` (for the reason of a deny).
    #[inline]
    fn denies(&self, set: u32, bit: u32) -> bool {
        self.denied_at(set)
            .is_some_and(|at| self.part_test(at, bit))
    }

    /// Whether the part at `at` holds any id in `lo..hi`.
    fn part_any_in(&self, at: usize, lo: u32, hi: u32) -> bool {
        if lo >= hi {
            return false;
        }
        match self.part(at) {
            Some((true, halves)) => {
                let (first, last) = (lo as usize / 32, (hi as usize - 1) / 32);
                (first..=last).any(|w| {
                    let word = halves.get(w).copied().unwrap_or(0);
                    let from = if w == first { lo % 32 } else { 0 };
                    let to = if w == last { (hi - 1) % 32 } else { 31 };
                    // Bits from..=to of the word.
                    let mask = (u32::MAX << from) & (u32::MAX >> (31 - to));
                    word & mask != 0
                })
            }
            Some((false, ids)) => {
                let i = ids.partition_point(|&id| id < lo);
                ids.get(i).is_some_and(|&id| id < hi)
            }
            None => false,
        }
    }

    fn allows_any_in(&self, set: u32, lo: u32, hi: u32) -> bool {
        self.part_any_in(set as usize, lo, hi)
    }

    fn denies_any_in(&self, set: u32, lo: u32, hi: u32) -> bool {
        self.denied_at(set)
            .is_some_and(|at| self.part_any_in(at, lo, hi))
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
const INLINE: usize = 36;

/// A subject: its name and where its effective sets are. It is also the subject's slot in
/// [`Subjects`], so finding the name finds the record, in one cache line or two adjacent ones.
// 64-byte aligned: finding a subject reads one cache line, never two.
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct SubjectRec {
    /// Length of the name in bytes; 0 marks an empty slot.
    name_len: u16,
    /// 16 bits of the name's hash: most other names are passed over without a comparison.
    tag: u16,
    /// The name when it is at most [`INLINE`] bytes long, else (first 4 bytes, little endian)
    /// its offset in [`Subjects::long`].
    name: [u8; INLINE],
    /// Interned list of global roles, or NONE.
    global_combo: u32,
    /// Effective set in the global scope, or NONE.
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
        tag: 0,
        name: [0; INLINE],
        global_combo: NONE,
        global_set: NONE,
        first: TenantEntry {
            tenant: NONE,
            set: NONE,
        },
        start: 0,
        len: 0,
    };
}

#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct TenantEntry {
    tenant: u32,
    set: u32,
}

/// Subjects by name: an open-addressing hash table (linear probing) whose slots are the
/// subject records. A subject's id is its slot's index.
#[derive(Debug, Default)]
struct Subjects {
    slots: PodArray<SubjectRec>,
    /// Names longer than [`INLINE`] bytes, back to back.
    long: Vec<u8>,
    /// Role combination of each slot's first tenant entry (NONE if none), for `explain`.
    first_combos: Vec<u32>,
    count: usize,
    hasher: RandomState,
}

impl Subjects {
    /// An empty table with room for `n` subjects at a load factor of at most 3/4.
    fn with_capacity(n: usize) -> Subjects {
        // Ids are u32 (and NONE is not one), and `home` needs the count to fit in 32 bits.
        let slots = n
            .saturating_add(n / 3)
            .saturating_add(1)
            .min(u32::MAX as usize);
        Subjects {
            slots: PodArray::filled(SubjectRec::EMPTY, slots),
            first_combos: vec![NONE; slots],
            ..Subjects::default()
        }
    }

    #[inline]
    fn hash(&self, name: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// The slot where the probe for `hash` starts.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((hash & 0xffff_ffff).wrapping_mul(self.slots.len() as u64) >> 32) as usize
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
        let name = name.as_bytes();
        let len = u16::try_from(name.len()).ok()?;
        let hash = self.hash(name);
        let tag = (hash >> 48) as u16;
        let n = self.slots.len();
        let mut i = self.home(hash);
        // The table always has an empty slot, which ends the probe; the bound is a safeguard.
        for _ in 0..n {
            let slot = self.slots.get(i)?;
            if slot.name_len == 0 {
                return None;
            }
            if slot.tag == tag && slot.name_len == len {
                let same = if name.len() <= INLINE {
                    same_inline(name, &slot.name)
                } else {
                    self.name(slot) == name
                };
                if same {
                    return Some(i as u32);
                }
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        None
    }

    /// Adds `name` (not there yet) and returns its id, or None if it cannot be stored: an
    /// empty name, one over 65,535 bytes, a full table or an arena over 4 GiB (a validated
    /// policy has none of these). Such a subject is then unknown, so denied, never aliased.
    fn insert(&mut self, name: &str) -> Option<u32> {
        let bytes = name.as_bytes();
        let len = u16::try_from(bytes.len()).ok().filter(|&l| l != 0)?;
        if self.count + 1 >= self.slots.len() || u32::try_from(self.slots.len()).is_err() {
            return None;
        }
        let hash = self.hash(bytes);
        let mut rec = SubjectRec {
            name_len: len,
            tag: (hash >> 48) as u16,
            ..SubjectRec::EMPTY
        };
        if bytes.len() <= INLINE {
            rec.name[..bytes.len()].copy_from_slice(bytes);
        } else {
            let start = u32::try_from(self.long.len()).ok()?;
            rec.name[..4].copy_from_slice(&start.to_le_bytes());
            self.long.extend_from_slice(bytes);
        }
        let n = self.slots.len();
        let mut i = self.home(hash);
        loop {
            let slot = self.slots.get_mut(i)?;
            if slot.name_len == 0 {
                *slot = rec;
                self.count += 1;
                return Some(i as u32);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    #[inline]
    fn record(&self, id: u32) -> Option<&SubjectRec> {
        self.slots.get(id as usize).filter(|r| r.name_len != 0)
    }

    /// Every subject's record.
    fn records(&self) -> impl Iterator<Item = &SubjectRec> {
        self.slots.iter().filter(|r| r.name_len != 0)
    }

    fn len(&self) -> usize {
        self.count
    }
}

/// An immutable, compiled policy. Checks against it are a few hash lookups and a bit test;
/// it is shared between threads behind an `Arc` and never changes.
///
/// On Linux its subject table and effective sets, once 4 MiB or larger, live in anonymous
/// memory mappings of their own advised to use transparent huge pages: with a million
/// subjects a random check would otherwise also wait on the page-table walk of a TLB miss.
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
#[derive(Debug)]
pub struct Snapshot {
    generation: u32,
    permissions: Interner,
    tenants: Interner,
    roles: Interner,
    subjects: Subjects,
    entries: Vec<TenantEntry>,
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
            generation: u32,
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

impl Snapshot {
    /// Compiles a validated policy: interns every name, resolves wildcards, inheritance and
    /// denies into one bitset per distinct (role set, scope), and indexes subjects.
    pub fn compile(policy: &Policy) -> Snapshot {
        Compiler::new(policy).run()
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
    #[inline]
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
            Some(set) => self.sets.allows(set, permission.index),
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
        let Some(p) = self.permissions.get(permission) else {
            return Decision::new(Cause::UnknownPermission);
        };
        match self.resolve(subject, tenant) {
            Ok((s, t)) => self.decide_raw(s, t, p),
            Err(cause) => Decision::new(cause),
        }
    }

    /// The subject's and tenant's ids (`""`: the global scope), or which one is unknown.
    #[inline]
    fn resolve(&self, subject: &str, tenant: &str) -> Result<(u32, u32), Cause> {
        let t = if tenant.is_empty() {
            GLOBAL
        } else {
            self.tenants.get(tenant).ok_or(Cause::UnknownTenant)?
        };
        let s = self.subjects.get(subject).ok_or(Cause::UnknownSubject)?;
        Ok((s, t))
    }

    #[inline]
    fn decide_raw(&self, s: u32, t: u32, p: u32) -> Decision {
        match self.set_of(s, t) {
            Some(set) if self.sets.allows(set, p) => Decision::new(Cause::Granted),
            Some(set) if self.sets.denies(set, p) => Decision::new(Cause::ExplicitDeny),
            Some(_) => Decision::new(Cause::NoGrant),
            None => Decision::new(Cause::NoRoles),
        }
    }

    /// The effective set of a subject in a scope, if it holds any role there.
    #[inline]
    fn set_of(&self, s: u32, t: u32) -> Option<u32> {
        let rec = self.subjects.record(s)?;
        if t == GLOBAL {
            return (rec.global_set != NONE).then_some(rec.global_set);
        }
        if let Some(entry) = self.entry(rec, t) {
            return Some(entry.1.set);
        }
        if rec.global_combo == NONE {
            return None;
        }
        if self.overlays.is_empty() {
            return Some(rec.global_set);
        }
        let overlay = self.overlays.get(&(t, rec.global_combo));
        Some(overlay.copied().unwrap_or(rec.global_set))
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
            Some(set) if self.sets.allows_any_in(set, lo, hi) => Decision::new(Cause::Granted),
            Some(set) if self.sets.denies_any_in(set, lo, hi) => Decision::new(Cause::ExplicitDeny),
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
        let Some(set) = set else { return Vec::new() };
        let n = self.permissions.len() as u32;
        (0..n)
            .filter(|&p| self.sets.allows(set, p))
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
            (GLOBAL, _) | (_, None) => rec.global_combo,
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
            mapped_bytes: self.subjects.slots.mapped_bytes() + self.sets.data.mapped_bytes(),
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
    /// Distinct (role set, scope) combinations compiled to a bitset.
    pub effective_sets: usize,
    /// Bytes of the snapshot in memory mappings of their own: its large tables, on Linux (see
    /// [`Snapshot`]). The global allocator does not see them, so a heap profile of the
    /// snapshot misses them.
    pub mapped_bytes: usize,
}

struct Compiler<'a> {
    policy: &'a Policy,
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
}

impl<'a> Compiler<'a> {
    fn new(policy: &'a Policy) -> Self {
        let doc = policy.document();
        let perm_names: Vec<&str> = doc.permissions.names().collect();
        let words = perm_names.len().div_ceil(64).max(1);
        let snap = Snapshot {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            permissions: Interner::default(),
            tenants: Interner::default(),
            roles: Interner::default(),
            subjects: Subjects::with_capacity(doc.subjects.len()),
            entries: Vec::new(),
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
        }
    }

    fn run(mut self) -> Snapshot {
        let doc = self.policy.document();
        for name in &self.perm_names {
            self.snap.permissions.intern(name);
        }
        for name in doc.tenants.keys() {
            self.snap.tenants.intern(name);
        }
        for name in doc.roles.keys() {
            self.snap.roles.intern(name);
        }
        for def in doc.tenants.values() {
            for name in def.roles.keys() {
                self.snap.roles.intern(name);
            }
        }
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
        self.snap.entries.shrink_to_fit();
        self.snap.entry_combos.shrink_to_fit();
        self.snap.subjects.long.shrink_to_fit();
        for interner in [
            &mut self.snap.permissions,
            &mut self.snap.tenants,
            &mut self.snap.roles,
        ] {
            interner.shrink();
        }
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
        for (subject, def) in &doc.subjects {
            let Some(id) = self.snap.subjects.insert(subject) else {
                continue;
            };
            let global: Vec<u32> = def
                .roles
                .iter()
                .filter_map(|r| self.snap.roles.get(r))
                .collect();
            let (global_combo, global_set) = if global.is_empty() {
                (NONE, NONE)
            } else {
                let c = self.combo(global.clone());
                (c, self.set(c, GLOBAL))
            };
            let start = self.snap.entries.len() as u32;
            let mut entries: Vec<(TenantEntry, u32)> = Vec::with_capacity(def.tenants.len());
            for (tenant, roles) in &def.tenants {
                let Some(t) = self.snap.tenants.get(tenant) else {
                    continue;
                };
                let mut held = global.clone();
                held.extend(roles.iter().filter_map(|r| self.snap.roles.get(r)));
                let combo = self.combo(held);
                let set = self.set(combo, t);
                entries.push((TenantEntry { tenant: t, set }, combo));
            }
            entries.sort_unstable_by_key(|(e, _)| e.tenant);
            let mut rest = entries.into_iter();
            let (first, first_combo) = rest.next().unwrap_or((
                TenantEntry {
                    tenant: NONE,
                    set: NONE,
                },
                NONE,
            ));
            for (entry, combo) in rest {
                self.snap.entries.push(entry);
                self.snap.entry_combos.push(combo);
            }
            let len = self.snap.entries.len() as u32 - start;
            if let Some(rec) = self.snap.subjects.slots.get_mut(id as usize) {
                rec.global_combo = global_combo;
                rec.global_set = global_set;
                rec.first = first;
                rec.start = start;
                rec.len = len;
            }
            if let Some(combo) = self.snap.subjects.first_combos.get_mut(id as usize) {
                *combo = first_combo;
            }
        }
    }

    /// Sets for global-only subjects in tenants whose own rules change one of their roles.
    fn overlays(&mut self) {
        let global_combos: BTreeSet<u32> = self
            .snap
            .subjects
            .records()
            .map(|r| r.global_combo)
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
        let mut table = Subjects::with_capacity(names.len());
        let ids: Vec<u32> = names
            .iter()
            .map(|n| table.insert(n).expect("room for every name"))
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
        assert_eq!(table.records().count(), names.len());
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

    /// Names inside the slot and in the arena only, growth while interning, the table sized
    /// down afterwards, and lookups of names that are not there.
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
        let mut interner = Interner::default();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(interner.intern(name) as usize, i, "dense ids");
            assert_eq!(interner.intern(name) as usize, i, "interning twice: one id");
        }
        for round in ["grown", "shrunk"] {
            for (i, name) in names.iter().enumerate() {
                assert_eq!(interner.get(name), Some(i as u32), "{round}: {name}");
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
                assert_eq!(interner.get(missing), None, "{round}: {missing}");
            }
            assert!(
                interner.slots.len() >= interner.len() * 2,
                "{round}: at most half full"
            );
            interner.shrink();
        }
        let mut empty = Interner::default();
        assert_eq!(empty.get("x"), None);
        empty.shrink();
        assert_eq!(empty.get(""), None);
        assert_eq!(empty.intern(""), 0);
        assert_eq!(empty.get(""), Some(0));
    }

    #[test]
    fn sets_test_both_parts() {
        let mut sets = Sets::new(4);
        // Sparse allowed, dense denied, and the reverse.
        let few = vec![0b1010, 0, 0, 0];
        let many = vec![u64::MAX, 0b1, 0, 0];
        let a = sets.push(few.clone(), many.clone());
        let b = sets.push(many.clone(), few.clone());
        assert_eq!(sets.push(few.clone(), many.clone()), a);
        sets.seal();
        assert!(sets.allows(a, 1) && sets.allows(a, 3) && !sets.allows(a, 2));
        assert!(sets.denies(b, 1) && !sets.denies(b, 0));
        assert!(sets.denies(a, 0) && sets.denies(a, 64) && !sets.denies(a, 65));
        assert!(sets.allows(b, 63) && sets.allows(b, 64) && !sets.allows(b, 65));
        assert!(sets.denies(b, 3) && !sets.denies(b, 4));
        assert!(!sets.allows(a, 1000) && !sets.denies(b, 1000));
        assert!(sets.allows_any_in(a, 2, 4) && !sets.allows_any_in(a, 4, 128));
        assert!(sets.denies_any_in(b, 3, 4) && !sets.denies_any_in(b, 4, 128));
        assert!(sets.allows_any_in(b, 64, 65) && !sets.allows_any_in(b, 65, 128));
        assert_eq!(sets.len(), 3);
    }

    /// Every kind of part (empty, short and long lists, a bitset), with and without a denied
    /// part, answers exactly like the bits it was built from, for every id and every range.
    #[test]
    fn sets_answer_like_their_bits_for_every_kind_of_part() {
        // 300 words: lists of up to 299 ids; more make a bitset.
        let words = 300;
        let bits = words as u32 * 64;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut sets = Sets::new(words);
        let mut built = Vec::new();
        let sizes = [
            0usize, 1, 2, 15, 16, 17, 31, 32, 33, 100, 255, 256, 257, 299, 5000,
        ];
        for (i, &allowed_n) in sizes.iter().enumerate() {
            let denied_n = sizes[(i * 7 + 3) % sizes.len()] * (i % 2);
            let mut make = |n: usize| {
                let mut v = vec![0u64; words];
                for _ in 0..n {
                    let bit = rng.u32(..bits);
                    v[bit as usize / 64] |= 1 << (bit % 64);
                }
                v
            };
            let (allowed, denied) = (make(allowed_n), make(denied_n));
            let id = sets.push(allowed.clone(), denied.clone());
            assert_ne!(id, NONE);
            built.push((id, allowed, denied));
        }
        sets.seal();
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
