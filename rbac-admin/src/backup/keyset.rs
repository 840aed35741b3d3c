//! Sets of row keys, held in memory: the keys that the steps after the full backup of a
//! tenant restore's chain name, each with the last step that names it.
//!
//! A row of a tenant's backup may since have moved to another tenant under the same key;
//! replayed as it was, it would collide with that tenant's row, or make the row the tenant's
//! again. So each step leaves every key that a later step names (a row of any tenant, or a
//! delete) to the last step that names it, which has the last word on it: a row of the tenant
//! there is restored, a row of another tenant or a delete means the key is not the tenant's.
//! Both backends read those keys before the full step and hold up to [`IN_MEMORY`] of them
//! here, so that each record is checked as it is read; past that, they keep them in a
//! temporary table.

use std::collections::HashMap;

use super::codec::{Value, ValueRef};

/// Keys held in memory at the most: about 60 bytes each with their share of the set, so
/// 15 MB. An incremental after 1% of 10 million rows changed names about 100,000.
pub(crate) const IN_MEMORY: usize = 250_000;

/// Row keys, encoded by [`encode`], each with the last step of the chain that names it (the
/// full backup is step 0).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashMap<Box<[u8]>, u32>,
}

impl KeySet {
    /// Notes that `step` names the key whose parts are `parts`; true if the key is new. A key
    /// that cannot be encoded is not added.
    pub(crate) fn insert<'v>(
        &mut self,
        parts: impl Iterator<Item = Option<ValueRef<'v>>>,
        step: u32,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        if !encode(parts, scratch) {
            return false;
        }
        if let Some(last) = self.keys.get_mut(scratch.as_slice()) {
            *last = (*last).max(step);
            return false;
        }
        self.keys.insert(scratch.as_slice().into(), step);
        true
    }

    /// Whether a step after `step` names the key whose parts are `parts` (`scratch` is reused
    /// between calls, to spare an allocation per row).
    pub(crate) fn named_after<'v>(
        &self,
        parts: impl Iterator<Item = Option<ValueRef<'v>>>,
        step: u32,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        encode(parts, scratch) && self.key_named_after(scratch, step)
    }

    /// The same for `key`, encoded by [`encode`].
    pub(crate) fn key_named_after(&self, key: &[u8], step: u32) -> bool {
        self.keys.get(key).is_some_and(|&last| last > step)
    }

    /// The encoded keys with their last step, for a temporary table that takes over when
    /// there are too many.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Box<[u8]>, u32)> + '_ {
        self.keys.drain()
    }
}

/// The parts of a record's key: for a row, the values at the key columns' `positions`; for a
/// delete, its values (the key).
pub(crate) fn key_parts<'r, 'v>(
    row: bool,
    values: &'r [ValueRef<'v>],
    positions: &'r [usize],
) -> impl Iterator<Item = Option<ValueRef<'v>>> + 'r {
    let (row_parts, delete_parts) = if row {
        (
            Some(positions.iter().map(|&i| values.get(i).copied())),
            None,
        )
    } else {
        (None, Some(values.iter().map(|v| Some(*v))))
    };
    row_parts
        .into_iter()
        .flatten()
        .chain(delete_parts.into_iter().flatten())
}

/// The same for owned values.
pub(crate) fn owned_key_parts<'r>(
    row: bool,
    values: &'r [Value],
    positions: &'r [usize],
) -> impl Iterator<Item = Option<ValueRef<'r>>> + 'r {
    let (row_parts, delete_parts) = if row {
        (
            Some(positions.iter().map(|&i| values.get(i).map(Value::as_ref))),
            None,
        )
    } else {
        (None, Some(values.iter().map(|v| Some(v.as_ref()))))
    };
    row_parts
        .into_iter()
        .flatten()
        .chain(delete_parts.into_iter().flatten())
}

/// A key as bytes, exact and typed: per part, `N` for NULL, `I` and 8 bytes (little endian)
/// for an integer, or `T` and the text's length (4 bytes, little endian) then the text. An
/// integer and the same digits as text are two keys, as they are to SQLite in a column
/// without type affinity. False, with `out` left partial, for a missing part or a part of
/// another kind (real, blob, text that is not UTF-8): such keys are not collected (nobody
/// keys rows on them), so such a row collides as before and the restore fails, changing
/// nothing.
pub(crate) fn encode<'v>(
    parts: impl Iterator<Item = Option<ValueRef<'v>>>,
    out: &mut Vec<u8>,
) -> bool {
    for part in parts {
        match part {
            Some(ValueRef::Null) => out.push(b'N'),
            Some(ValueRef::Int(i)) => {
                out.push(b'I');
                out.extend_from_slice(&i.to_le_bytes());
            }
            Some(ValueRef::Text(s)) => {
                let Ok(len) = u32::try_from(s.len()) else {
                    return false;
                };
                out.push(b'T');
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Some(ValueRef::Real(_) | ValueRef::Blob(_) | ValueRef::RawText(_)) | None => {
                return false;
            }
        }
    }
    true
}

/// The parts of a key encoded by [`encode`], or None if `key` is not such an encoding.
pub(crate) fn decode(mut key: &[u8]) -> Option<Vec<Value>> {
    let mut parts = Vec::new();
    while let Some((&kind, rest)) = key.split_first() {
        key = rest;
        match kind {
            b'N' => parts.push(Value::Null),
            b'I' => {
                let (bytes, rest) = key.split_first_chunk::<8>()?;
                parts.push(Value::Int(i64::from_le_bytes(*bytes)));
                key = rest;
            }
            b'T' => {
                let (len, rest) = key.split_first_chunk::<4>()?;
                let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
                let (text, rest) = (rest.get(..len)?, rest.get(len..)?);
                parts.push(Value::Text(std::str::from_utf8(text).ok()?.to_owned()));
                key = rest;
            }
            _ => return None,
        }
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(parts: &[ValueRef<'_>]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode(parts.iter().map(|v| Some(*v)), &mut out).then_some(out)
    }

    #[test]
    fn keys_are_exact_and_typed() {
        assert_eq!(
            encoded(&[ValueRef::Int(-42), ValueRef::Text("acme")]),
            encoded(&[ValueRef::Int(-42), ValueRef::Text("acme")])
        );
        assert_ne!(
            encoded(&[ValueRef::Int(42)]),
            encoded(&[ValueRef::Text("42")])
        );
        // Parts keep their bounds and NULL is not a text.
        assert_ne!(
            encoded(&[ValueRef::Text("ab"), ValueRef::Text("c")]),
            encoded(&[ValueRef::Text("a"), ValueRef::Text("bc")])
        );
        assert_ne!(encoded(&[ValueRef::Null]), encoded(&[ValueRef::Text("N")]));
        assert_eq!(encoded(&[ValueRef::Real(1.0)]), None);
        // And back.
        let parts = [ValueRef::Int(-42), ValueRef::Null, ValueRef::Text("acmé")];
        let key = encoded(&parts).unwrap();
        assert_eq!(
            decode(&key),
            Some(vec![
                Value::Int(-42),
                Value::Null,
                Value::Text("acmé".into())
            ])
        );
        assert_eq!(decode(&key[..key.len() - 1]), None, "cut short");
        assert_eq!(decode(b"X"), None);
        assert_eq!(encoded(&[ValueRef::Blob(b"k")]), None);
        let mut out = Vec::new();
        assert!(!encode([None].into_iter(), &mut out), "a missing part");
    }

    #[test]
    fn a_set_holds_exactly_its_keys_from_rows_and_deletes() {
        let mut set = KeySet::default();
        let mut scratch = Vec::new();
        // A row (id, tenant, amount) keyed on (tenant, id), and a delete of another key.
        let row = [
            ValueRef::Int(7),
            ValueRef::Text("acme"),
            ValueRef::Real(1.5),
        ];
        assert!(set.insert(key_parts(true, &row, &[1, 0]), 2, &mut scratch));
        assert!(
            !set.insert(key_parts(true, &row, &[1, 0]), 1, &mut scratch),
            "once"
        );
        let delete = [Value::Text("globex".into()), Value::Int(8)];
        assert!(set.insert(owned_key_parts(false, &delete, &[]), 1, &mut scratch));
        let mut drained: Vec<u32> = set.drain().map(|(_, step)| step).collect();
        drained.sort();
        assert_eq!(drained, [1, 2], "the last step that names each key");
        assert!(set.insert(key_parts(true, &row, &[1, 0]), 1, &mut scratch));
        assert!(!set.insert(key_parts(true, &row, &[1, 0]), 3, &mut scratch));
        assert!(set.insert(owned_key_parts(false, &delete, &[]), 1, &mut scratch));

        // (acme, 7) is named last by step 3, (globex, 8) by step 1.
        let key = [ValueRef::Text("acme"), ValueRef::Int(7)];
        for (step, after) in [(0, true), (2, true), (3, false), (4, false)] {
            assert_eq!(
                set.named_after(key_parts(false, &key, &[]), step, &mut scratch),
                after,
                "after step {step}"
            );
        }
        let moved = [Value::Int(8), Value::Text("globex".into())];
        assert!(set.named_after(owned_key_parts(true, &moved, &[1, 0]), 0, &mut scratch));
        assert!(!set.named_after(owned_key_parts(true, &moved, &[1, 0]), 1, &mut scratch));
        let other = [ValueRef::Text("globex"), ValueRef::Int(7)];
        assert!(!set.named_after(key_parts(false, &other, &[]), 0, &mut scratch));
        assert!(
            !set.named_after(key_parts(true, &row, &[1, 9]), 0, &mut scratch),
            "short row"
        );
    }
}
