//! PostgreSQL tenant restores of a chain: the keys that the steps after the full backup name,
//! with the last step that names each (see [`keyset`](super::super::keyset) for why). Up to a
//! limit they are held in memory and each record is checked as it is read, so the full step
//! loads the tenant's rows straight into the table as a full step without later steps does.
//! Beyond it, they go to a temporary table: the full step loads into a staging table, deletes
//! those keys from it and applies the rest (slower: an upsert of every row), and the
//! incrementals look their records' keys up there in batches ([`named_after`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::{AssertSqlSafe, PgConnection};

use super::super::codec::{self, Value, ValueRef};
use super::super::keyset::{KeySet, key_parts, owned_key_parts};
use super::super::model::{BackupError, TableManifest};
use super::super::plan::quote;
use super::super::storage::Storage;
use super::{Chain, fetch_chunk, run};

/// The temporary table of the keys when they do not fit in memory.
pub(crate) const LATER_KEYS: &str = "rbac_restore_later_keys";

/// What a restore knows of the keys that its chain's later steps name.
pub(crate) enum LaterKeys {
    /// Not a tenant restore of a chain: every step takes every record of the tenant.
    None,
    /// The keys of each table, held here.
    InMemory {
        sets: HashMap<String, Arc<KeySet>>,
        /// Per table, the keys (as JSON texts, see [`stage`]) whose last record is a row of
        /// the tenant: for the dry run against a baseline, the only later keys that can be
        /// the tenant's rows in the database; for a full step restored by upsert, the rows
        /// it keeps for the later steps. Only noted when asked for.
        mine: Option<Arc<HashMap<String, Vec<String>>>>,
    },
    /// The keys are in a temporary table: the full step goes through a staging table and
    /// [`leave`] deletes them from it; the incrementals ask [`named_after`].
    Staged,
}

impl LaterKeys {
    /// Reads the keys that the steps of `later` name in `tables`: into memory, or into the
    /// temporary table when there are more than `in_memory` of them. `collect_mine`: also
    /// notes, in memory, the keys whose last record is a row of the tenant (for a dry run,
    /// and for the full step of tables restored by upsert).
    pub(crate) async fn read(
        tx: &mut PgConnection,
        later: Chain<'_>,
        tables: &[TableManifest],
        storage: &Storage,
        in_memory: usize,
        (tenant, collect_mine): (&str, bool),
    ) -> Result<LaterKeys, BackupError> {
        if later.manifests.is_empty() {
            return Ok(LaterKeys::None);
        }
        let mine_of = collect_mine.then_some(tenant);
        if let Some(keys) = read_into_memory(later, tables, storage, in_memory, mine_of).await? {
            return Ok(keys);
        }
        tracing::info!(
            target: "rbac::backup",
            limit = in_memory,
            "the later steps name too many keys to hold: the full step goes through a staging table"
        );
        stage(tx, later, tables, storage, Some(tenant)).await?;
        Ok(LaterKeys::Staged)
    }

    /// Whether the keys are in the temporary table.
    pub(crate) fn staged(&self) -> bool {
        matches!(self, LaterKeys::Staged)
    }

    /// The keys of `table`, when they are held in memory.
    pub(crate) fn of(&self, table: &str) -> Option<&Arc<KeySet>> {
        match self {
            LaterKeys::InMemory { sets, .. } => sets.get(table),
            LaterKeys::None | LaterKeys::Staged => None,
        }
    }

    /// The keys whose last record is a row of the tenant, per table, when the keys are held
    /// in memory.
    pub(crate) fn mine(&self) -> Option<&Arc<HashMap<String, Vec<String>>>> {
        match self {
            LaterKeys::InMemory { mine, .. } => mine.as_ref(),
            LaterKeys::None | LaterKeys::Staged => None,
        }
    }
}

/// The keys of each table that the steps of `later` name, and with `mine_of`, those whose
/// last record is a row of that tenant, or None as soon as there are more than `limit`.
async fn read_into_memory(
    later: Chain<'_>,
    tables: &[TableManifest],
    storage: &Storage,
    limit: usize,
    mine_of: Option<&str>,
) -> Result<Option<LaterKeys>, BackupError> {
    let mut sets: HashMap<String, KeySet> = HashMap::new();
    let mut mine: HashMap<String, HashSet<String>> = HashMap::new();
    let mut held = 0usize;
    let mut scratch = Vec::new();
    for (step, m) in later.manifests.iter().enumerate() {
        let data_key = later.keys.get(step).cloned().flatten();
        let index = chain_index(step);
        for wanted in tables {
            let Some(t) = m.tables.iter().find(|x| x.name == wanted.name) else {
                continue;
            };
            let positions = t.key_positions()?;
            let tenant_position = t.tenant_position();
            let set = sets.entry(t.name.clone()).or_default();
            let mine = mine.entry(t.name.clone()).or_default();
            for (j, _) in m.chunks_of(&t.name) {
                let raw = fetch_chunk(storage, m, j, data_key.as_deref()).await?;
                let mut reader = codec::Reader::new(&raw);
                let mut values = Vec::with_capacity(t.columns.len());
                while let Some(tag) =
                    reader.next_ref(t.columns.len(), t.primary_key.len(), &mut values)?
                {
                    let row = tag == codec::ROW;
                    if set.insert(key_parts(row, &values, &positions), index, &mut scratch) {
                        held += 1;
                        if held > limit {
                            return Ok(None);
                        }
                    }
                    // Steps are read in order, and a step names a key once.
                    let Some(tenant) = mine_of else {
                        continue;
                    };
                    let ours = row
                        && tenant_position
                            .and_then(|i| values.get(i))
                            .is_some_and(|v| *v == ValueRef::Text(tenant));
                    if let Some(text) = key_json(key_parts(row, &values, &positions)) {
                        if ours {
                            mine.insert(text);
                        } else {
                            mine.remove(&text);
                        }
                    }
                }
            }
        }
    }
    Ok(Some(LaterKeys::InMemory {
        sets: sets
            .into_iter()
            .map(|(table, set)| (table, Arc::new(set)))
            .collect(),
        mine: mine_of.map(|_| {
            Arc::new(
                mine.into_iter()
                    .map(|(table, keys)| (table, keys.into_iter().collect()))
                    .collect(),
            )
        }),
    }))
}

/// The place in the chain of the `step`th backup after the full one.
fn chain_index(step: usize) -> u32 {
    u32::try_from(step).map_or(u32::MAX, |s| s.saturating_add(1))
}

/// Collects every key that a step of `later` names into [`LATER_KEYS`], as a JSON array of
/// the key's texts (the form of the change log's keys), with the step that names it (its
/// place in the chain: the first incremental is 1) and `mine`: for a restore of everything,
/// true; for a tenant's, true for a row of the tenant, false for a delete, and NULL for
/// another tenant's row, which a tenant restore skips. Creates the table: call it once.
///
/// `mine` is for the dry run of a tenant against a baseline (see `since`): there the
/// database holds, for a key the log does not name since, what the last record of the key
/// says (a tenant restore applies only that one: each step leaves the keys that a later step
/// names). A key can then be a row of the tenant only when that record is a row of the
/// tenant, so only those keys need looking up among the tenant's rows (a small tenant's
/// share, instead of every tenant's keys). The steps of a tenant restore leave every key a
/// later step names, whatever its record; the full step of a table restored by upsert keeps
/// the tenant's rows of the keys that end as `mine`, for the later step that writes them.
pub(crate) async fn stage(
    tx: &mut PgConnection,
    later: Chain<'_>,
    tables: &[TableManifest],
    storage: &Storage,
    tenant: Option<&str>,
) -> Result<(), BackupError> {
    let Chain {
        manifests: steps,
        keys,
    } = later;
    run(
        tx,
        format!(
            "CREATE TEMP TABLE {LATER_KEYS} (tbl TEXT NOT NULL, k JSONB NOT NULL, \
             step INT NOT NULL, mine BOOLEAN) ON COMMIT DROP"
        ),
    )
    .await?;
    let mut values = Vec::new();
    let mut batch = Batch::default();
    for (step, m) in steps.iter().enumerate() {
        let key = keys.get(step).cloned().flatten();
        let step = i32::try_from(chain_index(step)).unwrap_or(i32::MAX);
        for wanted in tables {
            let Some(t) = m.tables.iter().find(|x| x.name == wanted.name) else {
                continue;
            };
            let key_positions = t.key_positions()?;
            let tenant_position = t.tenant_position();
            for (j, _) in m.chunks_of(&t.name) {
                let raw = fetch_chunk(storage, m, j, key.as_deref()).await?;
                let mut reader = codec::Reader::new(&raw);
                while let Some(tag) =
                    reader.next(t.columns.len(), t.primary_key.len(), &mut values)?
                {
                    let row = tag == codec::ROW;
                    let mine = if !row {
                        Some(tenant.is_none())
                    } else {
                        match tenant {
                            None => Some(true),
                            Some(tn) => tenant_position
                                .and_then(|i| values.get(i))
                                .is_some_and(|v| v.as_ref().names_tenant(tn))
                                .then_some(true),
                        }
                    };
                    let parts = owned_key_parts(row, &values, &key_positions);
                    if let Some(text) = key_json(parts) {
                        batch.keys.push(text);
                        batch.mine.push(mine);
                    }
                    if batch.keys.len() >= 10_000 {
                        insert(tx, &t.name, step, &mut batch).await?;
                    }
                }
            }
            insert(tx, &t.name, step, &mut batch).await?;
        }
    }
    // A tenant restore's steps look their records' keys up ([`named_after`]): the
    // incrementals but the last, and a dry run's full step of a table without a staging
    // table.
    if tenant.is_some() {
        run(tx, format!("CREATE INDEX ON {LATER_KEYS} (tbl, k)")).await?;
    }
    run(tx, format!("ANALYZE {LATER_KEYS}")).await?;
    Ok(())
}

/// For each of `records` (tag and values, as read) of a step of `t` at `step` in the chain:
/// whether a later step names its key in [`LATER_KEYS`] (the step then leaves it to that
/// one). One query for them all.
pub(crate) async fn named_after(
    tx: &mut PgConnection,
    t: &TableManifest,
    step: u32,
    records: &[(u8, Vec<Value>)],
) -> Result<Vec<bool>, BackupError> {
    let positions = t.key_positions()?;
    let keys: Vec<Option<String>> = records
        .iter()
        .map(|(tag, values)| key_json(owned_key_parts(*tag == codec::ROW, values, &positions)))
        .collect();
    let named: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT k.ord FROM unnest($2::text[]) WITH ORDINALITY AS k(k, ord) \
         WHERE EXISTS (SELECT 1 FROM {LATER_KEYS} l \
                       WHERE l.tbl = $1 AND l.k = k.k::jsonb AND l.step > $3)"
    )))
    .bind(t.name.as_str())
    .bind(keys)
    .bind(i32::try_from(step).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    let mut out = vec![false; records.len()];
    for ord in named {
        // `ord` counts from 1.
        let slot = ord.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        if let Some(slot) = slot.and_then(|i| out.get_mut(i)) {
            *slot = true;
        }
    }
    Ok(out)
}

/// The staged keys of the table named by `table` (a parameter, `$n`) whose last record is a
/// row of the tenant (`mine`, see [`stage`]): a subquery with the key as `k` (JSONB).
pub(crate) fn ending_mine(table: &str) -> String {
    format!(
        "(SELECT k FROM (SELECT DISTINCT ON (k) k, mine FROM {LATER_KEYS} \
         WHERE tbl = {table} ORDER BY k, step DESC) l WHERE mine)"
    )
}

/// Keys on their way to [`LATER_KEYS`].
#[derive(Default)]
struct Batch {
    keys: Vec<String>,
    mine: Vec<Option<bool>>,
}

/// Moves the keys in `batch` (JSON texts) of `table`, named by `step`, into [`LATER_KEYS`],
/// if there are any.
async fn insert(
    tx: &mut PgConnection,
    table: &str,
    step: i32,
    batch: &mut Batch,
) -> Result<(), BackupError> {
    if batch.keys.is_empty() {
        return Ok(());
    }
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {LATER_KEYS} (tbl, k, step, mine) \
         SELECT $1, k::jsonb, $2, mine FROM unnest($3::text[], $4::bool[]) AS u(k, mine)"
    )))
    .bind(table)
    .bind(step)
    .bind(std::mem::take(&mut batch.keys))
    .bind(std::mem::take(&mut batch.mine))
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
/// value), or None when a part is missing or not text, an integer or NULL.
fn key_json<'v>(parts: impl Iterator<Item = Option<ValueRef<'v>>>) -> Option<String> {
    let mut items = Vec::new();
    for part in parts {
        items.push(match part? {
            ValueRef::Null => serde_json::Value::Null,
            ValueRef::Int(i) => serde_json::Value::String(i.to_string()),
            ValueRef::Text(s) => serde_json::Value::String(s.to_owned()),
            ValueRef::Real(_) | ValueRef::Blob(_) | ValueRef::RawText(_) => return None,
        });
    }
    serde_json::to_string(&items).ok()
}
