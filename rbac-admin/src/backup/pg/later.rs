//! Tenant restores of a chain: the keys that the steps after the full backup name.
//!
//! A row of a tenant's full backup may since have moved to another tenant under the same key;
//! replayed as it was, it would collide with that tenant's row. So the full step leaves every
//! key that a later step names (a row of any tenant, or a delete) to the later step that has
//! the last word on it. The keys are read from the later steps before the full step runs:
//!
//! - up to a limit ([`IN_MEMORY`]), they are held here and each row of the full step is
//!   checked against them as it is read, so the full step loads the tenant's rows straight
//!   into the table as a full step without later steps does;
//! - beyond it, they go to a temporary table, and the full step loads into a staging table,
//!   deletes those keys from it, and applies the rest (slower: an upsert of every row).
//!
//! Keys with a real or binary part are not collected (they are not keys anyone uses): such a
//! row then collides as before, and the restore fails, changing nothing.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::Arc;

use sqlx::{AssertSqlSafe, PgConnection};

use super::super::chunk;
use super::super::codec::{self, Value, ValueRef};
use super::super::model::{BackupError, TableManifest};
use super::super::plan::quote;
use super::super::storage::Storage;
use super::{Chain, run};

/// Keys of later steps held in memory at the most: about 60 bytes each with their share of
/// the set, so 15 MB. An incremental after 1% of 10 million rows changed names about 100,000.
pub(crate) const IN_MEMORY: usize = 250_000;

/// The temporary table of the keys when they do not fit in memory.
const LATER_KEYS: &str = "rbac_restore_later_keys";

/// What a restore knows of the keys that its chain's later steps name.
pub(crate) enum LaterKeys {
    /// Not a tenant restore of a chain: the full step takes every row of the tenant.
    None,
    /// The keys of each table, held here.
    InMemory(HashMap<String, Arc<KeySet>>),
    /// The keys are in a temporary table: the full step goes through a staging table and
    /// [`leave`] deletes them from it.
    Staged,
}

impl LaterKeys {
    /// Reads the keys that the steps of `later` name in `tables`: into memory, or into the
    /// temporary table when there are more than `in_memory` of them.
    pub(crate) async fn read(
        tx: &mut PgConnection,
        later: Chain<'_>,
        tables: &[TableManifest],
        storage: &Storage,
        in_memory: usize,
    ) -> Result<LaterKeys, BackupError> {
        if later.manifests.is_empty() {
            return Ok(LaterKeys::None);
        }
        if let Some(sets) = read_into_memory(later, tables, storage, in_memory).await? {
            return Ok(LaterKeys::InMemory(sets));
        }
        tracing::info!(
            target: "rbac::backup",
            limit = in_memory,
            "the later steps name too many keys to hold: the full step goes through a staging table"
        );
        stage(tx, later, tables, storage).await?;
        Ok(LaterKeys::Staged)
    }

    /// Whether the keys are in the temporary table.
    pub(crate) fn staged(&self) -> bool {
        matches!(self, LaterKeys::Staged)
    }

    /// The keys of `table`, when they are held in memory.
    pub(crate) fn of(&self, table: &str) -> Option<&Arc<KeySet>> {
        match self {
            LaterKeys::InMemory(sets) => sets.get(table),
            LaterKeys::None | LaterKeys::Staged => None,
        }
    }
}

/// The keys that later steps name in one table, encoded by [`encode`].
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashSet<Box<[u8]>>,
}

impl KeySet {
    /// Whether the key whose parts are `parts` is one of them (`scratch` is reused between
    /// calls, to spare an allocation per row).
    pub(crate) fn holds<'v>(
        &self,
        parts: impl Iterator<Item = Option<ValueRef<'v>>>,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        encode(parts, scratch) && self.keys.contains(scratch.as_slice())
    }
}

/// A key as bytes: per part, `N` for NULL, or `T`, the length (4 bytes, little endian) and
/// the text, an integer as its decimal digits (what PostgreSQL's `::text` gives, so a key
/// read as text and the same key read as an integer are one key). False, with `out` left
/// partial, for a missing part or a part of another kind.
fn encode<'v>(parts: impl Iterator<Item = Option<ValueRef<'v>>>, out: &mut Vec<u8>) -> bool {
    for part in parts {
        match part {
            Some(ValueRef::Null) => out.push(b'N'),
            Some(ValueRef::Text(s)) => {
                let Ok(len) = u32::try_from(s.len()) else {
                    return false;
                };
                out.push(b'T');
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Some(ValueRef::Int(i)) => {
                out.push(b'T');
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                if write!(out, "{i}").is_err() {
                    return false;
                }
                let len = (out.len() - at - 4) as u32;
                if let Some(slot) = out.get_mut(at..at + 4) {
                    slot.copy_from_slice(&len.to_le_bytes());
                }
            }
            Some(ValueRef::Real(_) | ValueRef::Blob(_) | ValueRef::RawText(_)) | None => {
                return false;
            }
        }
    }
    true
}

/// The keys of each table that the steps of `later` name, or None as soon as there are more
/// than `limit`.
async fn read_into_memory(
    later: Chain<'_>,
    tables: &[TableManifest],
    storage: &Storage,
    limit: usize,
) -> Result<Option<HashMap<String, Arc<KeySet>>>, BackupError> {
    let mut sets: HashMap<String, KeySet> = HashMap::new();
    let mut held = 0usize;
    let mut scratch = Vec::new();
    for (step, m) in later.manifests.iter().enumerate() {
        let data_key = later.keys.get(step).cloned().flatten();
        for wanted in tables {
            let Some(t) = m.tables.iter().find(|x| x.name == wanted.name) else {
                continue;
            };
            let positions = t.key_positions()?;
            let set = sets.entry(t.name.clone()).or_default();
            for (j, info) in m
                .chunks
                .iter()
                .enumerate()
                .filter(|(_, c)| c.table == t.name)
            {
                let stored = storage.get(&m.id, &info.name).await?;
                let raw = chunk::decode(m, j, &stored, data_key.as_deref())?;
                let mut reader = codec::Reader::new(&raw);
                let mut values = Vec::with_capacity(t.columns.len());
                while let Some(tag) =
                    reader.next_ref(t.columns.len(), t.primary_key.len(), &mut values)?
                {
                    scratch.clear();
                    let encoded = if tag == codec::ROW {
                        encode(
                            positions.iter().map(|&i| values.get(i).copied()),
                            &mut scratch,
                        )
                    } else {
                        encode(values.iter().map(|v| Some(*v)), &mut scratch)
                    };
                    if encoded && set.keys.insert(scratch.as_slice().into()) {
                        held += 1;
                        if held > limit {
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
    Ok(Some(
        sets.into_iter()
            .map(|(table, set)| (table, Arc::new(set)))
            .collect(),
    ))
}

/// Collects every key that a step of `later` names into [`LATER_KEYS`], as a JSON array of
/// the key's texts.
async fn stage(
    tx: &mut PgConnection,
    later: Chain<'_>,
    tables: &[TableManifest],
    storage: &Storage,
) -> Result<(), BackupError> {
    let Chain {
        manifests: steps,
        keys,
    } = later;
    run(
        tx,
        format!(
            "CREATE TEMP TABLE {LATER_KEYS} (tbl TEXT NOT NULL, k JSONB NOT NULL) ON COMMIT DROP"
        ),
    )
    .await?;
    let mut values = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    for (step, m) in steps.iter().enumerate() {
        let key = keys.get(step).cloned().flatten();
        for wanted in tables {
            let Some(t) = m.tables.iter().find(|x| x.name == wanted.name) else {
                continue;
            };
            let key_positions = t.key_positions()?;
            for (j, info) in m
                .chunks
                .iter()
                .enumerate()
                .filter(|(_, c)| c.table == t.name)
            {
                let stored = storage.get(&m.id, &info.name).await?;
                let raw = chunk::decode(m, j, &stored, key.as_deref())?;
                let mut reader = codec::Reader::new(&raw);
                while let Some(tag) =
                    reader.next(t.columns.len(), t.primary_key.len(), &mut values)?
                {
                    let parts: Vec<&Value> = if tag == codec::ROW {
                        key_positions
                            .iter()
                            .filter_map(|&i| values.get(i))
                            .collect()
                    } else {
                        values.iter().collect()
                    };
                    if let Some(text) = key_json(&parts) {
                        batch.push(text);
                    }
                    if batch.len() >= 10_000 {
                        insert(tx, &t.name, &mut batch).await?;
                    }
                }
            }
            insert(tx, &t.name, &mut batch).await?;
        }
    }
    run(tx, format!("ANALYZE {LATER_KEYS}")).await?;
    Ok(())
}

/// Moves the keys in `batch` (JSON texts) of `table` into [`LATER_KEYS`], if there are any.
async fn insert(
    tx: &mut PgConnection,
    table: &str,
    batch: &mut Vec<String>,
) -> Result<(), BackupError> {
    if batch.is_empty() {
        return Ok(());
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {LATER_KEYS} (tbl, k) SELECT $1, unnest($2::text[])::jsonb"
    )))
    .bind(table)
    .bind(std::mem::take(batch))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Takes the keys of [`LATER_KEYS`] for `t` out of `stage` (a staging table of the full
/// step); returns how many rows went.
pub(crate) async fn leave(
    tx: &mut PgConnection,
    stage: &str,
    t: &TableManifest,
) -> Result<u64, BackupError> {
    let key_texts: Vec<String> = t
        .primary_key
        .iter()
        .map(|k| format!("s.{}::text", quote(k)))
        .collect();
    let left = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {stage} s USING {LATER_KEYS} l \
         WHERE l.tbl = $1 AND l.k = jsonb_build_array({})",
        key_texts.join(", ")
    )))
    .bind(t.name.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(left.rows_affected())
}

/// A key as the JSON array of its texts (`jsonb_build_array(k::text, ...)` gives the same
/// value), or None when a part is not text, an integer or NULL.
fn key_json(parts: &[&Value]) -> Option<String> {
    let mut items = Vec::with_capacity(parts.len());
    for part in parts {
        items.push(match part {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) => serde_json::Value::String(i.to_string()),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Real(_) | Value::Blob(_) | Value::RawText(_) => return None,
        });
    }
    serde_json::to_string(&items).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(parts: &[ValueRef<'_>]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        encode(parts.iter().map(|v| Some(*v)), &mut out).then_some(out)
    }

    #[test]
    fn a_key_read_as_text_or_as_an_integer_is_one_key() {
        assert_eq!(
            encoded(&[ValueRef::Int(-42), ValueRef::Text("acme")]),
            encoded(&[ValueRef::Text("-42"), ValueRef::Text("acme")])
        );
        // Parts keep their bounds and NULL is not a text.
        assert_ne!(
            encoded(&[ValueRef::Text("ab"), ValueRef::Text("c")]),
            encoded(&[ValueRef::Text("a"), ValueRef::Text("bc")])
        );
        assert_ne!(encoded(&[ValueRef::Null]), encoded(&[ValueRef::Text("N")]));
        assert_eq!(encoded(&[ValueRef::Real(1.0)]), None);
        assert_eq!(encoded(&[ValueRef::Blob(b"k")]), None);
        let mut out = Vec::new();
        assert!(!encode([None].into_iter(), &mut out), "a missing part");
    }

    #[test]
    fn a_set_holds_exactly_its_keys() {
        let mut set = KeySet::default();
        let mut scratch = Vec::new();
        let key = [ValueRef::Int(7), ValueRef::Text("acme")];
        assert!(encode(key.iter().map(|v| Some(*v)), &mut scratch));
        set.keys.insert(scratch.as_slice().into());
        assert!(set.holds(key.iter().map(|v| Some(*v)), &mut scratch));
        let other = [ValueRef::Int(7), ValueRef::Text("globex")];
        assert!(!set.holds(other.iter().map(|v| Some(*v)), &mut scratch));
        assert!(!set.holds([Some(ValueRef::Int(7)), None].into_iter(), &mut scratch));
    }
}
