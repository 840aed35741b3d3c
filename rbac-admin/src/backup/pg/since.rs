//! Dry runs of a full backup, or of a chain, that read only what changed.
//!
//! A full dry run has to say, for every row of the backup, whether the database holds it
//! unchanged. Comparing every row means loading the whole backup into PostgreSQL, which takes
//! longer than the restore itself. But the database often has a point where its rows were
//! exactly the backup's (a *baseline*), and the change log (the triggers incrementals rely on)
//! names every key written since:
//!
//! - the backup's own snapshot, when the backup was read from this very database
//!   ([`Manifest::source_database`]) and nothing was restored into it since;
//! - the last restore, when it restored this backup, with the same tenant, into this table.
//!
//! A chain (a full backup and incrementals) has the baseline of its last step: the database
//! then held what the whole chain restores. The full step compares, besides the keys the log
//! names, those that the later steps name: the database holds the later steps' version of
//! them, not the full backup's.
//!
//! Rows whose key the log does not name since the baseline are unchanged without being read;
//! only the others are copied and compared. The log must reach back to the baseline (not
//! pruned past it) and the table must still have its capture trigger. As a check, the rows the
//! table holds in scope must add up to what the comparison implies; writes the log missed
//! (a `TRUNCATE`, which fires no row trigger, or triggers bypassed) almost always break that
//! sum, and the table is then compared in full. Anything unexpected falls back to the full
//! comparison too: this path only ever saves time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, PgConnection};

use super::super::codec::ValueRef;
use super::super::model::{BackupError, Manifest, TableManifest};
use super::later::LATER_KEYS;
use super::{CHANGES, begin_savepoint, end_savepoint};

/// Changed keys a table may have for the dry run to hold them (about 20 MB); with more, it
/// compares the table in full, whose memory does not grow with the table.
pub(crate) const MAX_CHANGED_KEYS: usize = 250_000;

/// Where the database's rows were last exactly the backup's (for a chain: its last step's).
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    since: Since,
    /// What the keys that the chain's later steps name take part in.
    later_keys: LaterKeys,
}

/// The keys a chain's later steps name, in a dry run of the chain against a baseline: the
/// database holds the later steps' version of them, not the full backup's.
#[derive(Debug, Clone)]
enum LaterKeys {
    /// No later steps.
    None,
    /// A restore of everything: the full step compares the backup's rows of every key in
    /// [`LATER_KEYS`], and counts the database's rows of those keys it does not hold.
    Compared,
    /// A tenant's restore, whose full step leaves the later keys to the later steps: the
    /// keys whose last record is a row of the tenant (`mine` in [`LATER_KEYS`]) count as
    /// changed in the database. The backup's rows of every later key are copied, and taken
    /// out again by `later::leave`.
    LeftStaged,
    /// The same with the later keys held in memory: the full step skips the backup's rows of
    /// later keys as it reads them, and the keys whose last record is a row of the tenant are
    /// bound, per table, as a text array (JSON texts, as in [`LATER_KEYS`]).
    Left(Arc<HashMap<String, Vec<String>>>),
}

#[derive(Debug, Clone)]
enum Since {
    /// The backup's snapshot: changes are the log rows it did not see.
    Snapshot(String),
    /// A restore of the backup whose snapshot had this `xmin`: changes are the log rows
    /// written by transactions from there on (a superset: never fewer than the real ones).
    /// Only the tables it restored count.
    Restore { xmin: String, tables: Vec<String> },
}

impl Since {
    /// The condition on the change log's `xid` (with the baseline bound as `$2`), and the
    /// oldest transaction id the log must still hold.
    fn condition(&self) -> (&'static str, &'static str, &str) {
        match self {
            Since::Snapshot(s) => (
                "NOT pg_visible_in_snapshot(xid, $2::pg_snapshot)",
                "pg_snapshot_xmin($1::pg_snapshot)",
                s,
            ),
            Since::Restore { xmin, .. } => ("xid >= $2::xid8", "$1::xid8", xmin),
        }
    }

    fn baseline(self) -> Baseline {
        Baseline {
            since: self,
            later_keys: LaterKeys::None,
        }
    }
}

impl Baseline {
    /// Whether `table`'s rows were the backup's at the baseline.
    pub(crate) fn covers(&self, table: &str) -> bool {
        match &self.since {
            Since::Snapshot(_) => true,
            Since::Restore { tables, .. } => tables.iter().any(|t| t == table),
        }
    }

    /// For the full step of a chain restored whole: the keys in [`LATER_KEYS`] count as
    /// changed.
    pub(crate) fn with_later_keys(self) -> Baseline {
        Baseline {
            later_keys: LaterKeys::Compared,
            ..self
        }
    }

    /// For the full step of a tenant's chain, which leaves the later keys, in [`LATER_KEYS`].
    pub(crate) fn with_later_keys_left_staged(self) -> Baseline {
        Baseline {
            later_keys: LaterKeys::LeftStaged,
            ..self
        }
    }

    /// The same with the later keys held in memory; `mine` are, per table, those whose last
    /// record is a row of the tenant.
    pub(crate) fn with_later_keys_left(self, mine: Arc<HashMap<String, Vec<String>>>) -> Baseline {
        Baseline {
            later_keys: LaterKeys::Left(mine),
            ..self
        }
    }

    /// The keys (as the log's JSON `pk` texts) that rows may differ in since the baseline:
    /// a subquery, with the table's name bound as `$1` and the baseline as `$2`. With
    /// `in_database`, for the rows of the database rather than the backup's: of a tenant's
    /// later keys, only those whose last record is a row of the tenant (see `later::stage`),
    /// as the others cannot be the tenant's rows unless the log names them, bound as
    /// `$mine` when they are held in memory ([`Baseline::mine_keys`]).
    fn changed_pks(&self, in_database: bool, mine: &str) -> String {
        let (condition, _, _) = self.since.condition();
        let later = match (&self.later_keys, in_database) {
            (LaterKeys::None, _) | (LaterKeys::Left(_), false) => String::new(),
            (LaterKeys::Compared, _) | (LaterKeys::LeftStaged, false) => {
                format!(" UNION SELECT k::text FROM {LATER_KEYS} WHERE tbl = $1")
            }
            (LaterKeys::LeftStaged, true) => format!(
                " UNION SELECT k::text FROM {} mine",
                super::later::ending_mine("$1")
            ),
            (LaterKeys::Left(_), true) => format!(" UNION SELECT unnest({mine}::text[])"),
        };
        format!("(SELECT DISTINCT pk FROM {CHANGES} WHERE tbl = $1 AND {condition}{later})")
    }

    /// The value to bind as the `mine` parameter of [`changed_keys_sql`] for `table`, when
    /// it takes one.
    pub(crate) fn mine_keys(&self, table: &str) -> Option<Vec<String>> {
        match &self.later_keys {
            LaterKeys::Left(mine) => Some(mine.get(table).cloned().unwrap_or_default()),
            LaterKeys::None | LaterKeys::Compared | LaterKeys::LeftStaged => None,
        }
    }
}

/// What a restore records in the change log (as the `pk` of its `*restore*` row): which
/// backup it restored, into which tables, for which tenant, from which snapshot `xmin`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RestoreMark {
    pub(crate) backup: String,
    pub(crate) tenant: Option<String>,
    pub(crate) tables: Vec<String>,
    pub(crate) xmin: String,
}

/// `system identifier:timeline:database oid`: which database a backup was read from. The
/// timeline changes when the cluster is recovered to a point in time or a standby is promoted:
/// such a database may hold rows older than the backup that its change log never saw. None
/// when the role may not read the control data, or on a standby (then dry runs compare in
/// full).
pub(crate) async fn database_identity(conn: &mut PgConnection) -> Option<String> {
    identity(conn).await.ok()
}

async fn identity(conn: &mut PgConnection) -> Result<String, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT (SELECT system_identifier::text FROM pg_control_system()) || ':' || \
         substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || ':' || \
         (SELECT oid::text FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut *conn)
    .await
}

/// The baseline a dry run of a chain whose last step is `m` may use in the database `tx` is
/// on, or None. Runs inside a savepoint: a failed query here costs only the fast path.
pub(crate) async fn baseline(
    tx: &mut PgConnection,
    m: &Manifest,
    tenant: Option<&str>,
) -> Result<Option<Baseline>, BackupError> {
    begin_savepoint(tx, "rbac_baseline").await?;
    let found = find_baseline(tx, m, tenant).await;
    end_savepoint(tx, "rbac_baseline", found.is_ok()).await?;
    Ok(found.ok().flatten())
}

async fn find_baseline(
    tx: &mut PgConnection,
    m: &Manifest,
    tenant: Option<&str>,
) -> Result<Option<Baseline>, sqlx::Error> {
    let log: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(CHANGES)
        .fetch_one(&mut *tx)
        .await?;
    if log.is_none() {
        return Ok(None);
    }
    // Not restored since the backup, which was read from this database: its snapshot.
    if let Some(snapshot) = &m.change_snapshot {
        let restored: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {CHANGES} WHERE tbl = '*restore*' \
             AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot))"
        )))
        .bind(snapshot)
        .fetch_one(&mut *tx)
        .await?;
        if !restored {
            let here = identity(tx).await?;
            if m.source_database.as_deref() != Some(here.as_str()) {
                return Ok(None);
            }
            return check_pruning(tx, Since::Snapshot(snapshot.clone())).await;
        }
    }
    // Else the last restore, if it restored this backup for the same tenant.
    let mark: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT pk FROM {CHANGES} WHERE tbl = '*restore*' ORDER BY seq DESC LIMIT 1"
    )))
    .fetch_optional(&mut *tx)
    .await?;
    match mark.and_then(|mark| serde_json::from_str::<RestoreMark>(&mark).ok()) {
        Some(mark) if mark.backup == m.id.as_str() && mark.tenant.as_deref() == tenant => {
            check_pruning(
                tx,
                Since::Restore {
                    xmin: mark.xmin,
                    tables: mark.tables,
                },
            )
            .await
        }
        _ => Ok(None),
    }
}

/// `baseline`, if the change log was not pruned past it.
async fn check_pruning(
    tx: &mut PgConnection,
    baseline: Since,
) -> Result<Option<Baseline>, sqlx::Error> {
    // The log must still hold every change since the baseline.
    let meta: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(super::super::changelog::META)
        .fetch_one(&mut *tx)
        .await?;
    if meta.is_none() {
        // Nothing was ever pruned.
        return Ok(Some(baseline.baseline()));
    }
    let (_, oldest, param) = baseline.condition();
    let pruned_past: Option<bool> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT value::xid8 > {oldest} FROM {} WHERE key = $2",
        super::super::changelog::META
    )))
    .bind(param)
    .bind(super::super::changelog::WATERMARK)
    .fetch_optional(&mut *tx)
    .await?;
    Ok((pruned_past != Some(true)).then(|| baseline.baseline()))
}

/// The keys of the rows the baseline's rows may differ in, encoded as [`KeyFilter`] encodes
/// backup rows; None when the table has no capture trigger or more than `at_most` changed
/// keys (normally [`MAX_CHANGED_KEYS`]).
pub(crate) async fn changed_keys(
    tx: &mut PgConnection,
    t: &TableManifest,
    baseline: &Baseline,
    at_most: usize,
) -> Result<Option<KeyFilter>, BackupError> {
    begin_savepoint(tx, "rbac_changed_keys").await?;
    let found = read_changed_keys(tx, t, baseline, at_most).await;
    if let Err(e) = &found {
        tracing::debug!(target: "rbac::backup", table = %t.name, error = %e, "change log unusable for the dry run; comparing in full");
    }
    end_savepoint(tx, "rbac_changed_keys", found.is_ok()).await?;
    Ok(found.ok().flatten())
}

async fn read_changed_keys(
    tx: &mut PgConnection,
    t: &TableManifest,
    baseline: &Baseline,
    at_most: usize,
) -> Result<Option<KeyFilter>, BackupError> {
    if !baseline.covers(&t.name) {
        return Ok(None);
    }
    // The same test as an incremental's: this version's capture, enabled (triggers of an
    // older version log a partitioned table under its partitions' names).
    if !super::captured(tx, &t.name).await? {
        return Ok(None);
    }
    let mut positions = Vec::new();
    for k in &t.primary_key {
        match t.columns.iter().position(|c| &c.name == k) {
            Some(i) => positions.push(i),
            None => return Ok(None),
        }
    }
    let sql = format!(
        "SELECT {} FROM {} c LIMIT {}",
        key_texts(t, &positions).join(", "),
        baseline.changed_pks(false, ""),
        at_most.saturating_add(1)
    );
    // Streamed: the keys are held once, as the filter's.
    let mut rows = sqlx::query(AssertSqlSafe(sql))
        .bind(&t.name)
        .bind(baseline_param(baseline))
        .fetch(&mut *tx);
    let mut keys = HashSet::new();
    let mut fetched = 0usize;
    while let Some(row) = rows.try_next().await? {
        use sqlx::Row;
        fetched += 1;
        if fetched > at_most {
            return Ok(None);
        }
        let parts = (0..positions.len())
            .map(|i| {
                let part: Option<&str> = row.try_get(i)?;
                Ok(part.map_or(ValueRef::Null, ValueRef::Text))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let mut key = Vec::new();
        if encode_key(&parts, &mut key) {
            keys.insert(key);
        }
    }
    drop(rows);
    Ok(Some(KeyFilter {
        positions,
        keys,
        scratch: Vec::new(),
    }))
}

/// Each key column of a change-log row as the text a backup stores for it (`col::text`).
fn key_texts(t: &TableManifest, positions: &[usize]) -> Vec<String> {
    (0..positions.len())
        .map(|n| format!("({})::text", logged_key(t, n, "pk")))
        .collect()
}

/// Key column `n` of the change-log column `pk` (a JSON array of the key's texts), cast to
/// the type of the table's key column `n` (text if the manifest does not say).
pub(crate) fn logged_key(t: &TableManifest, n: usize, pk: &str) -> String {
    let ty = t
        .primary_key
        .get(n)
        .and_then(|k| t.columns.iter().find(|c| &c.name == k))
        .map_or("text", |c| c.decl_type.as_str());
    format!("({pk}::jsonb ->> {n})::{ty}")
}

/// The changed keys of one table's rows in the database, as SQL for the comparison's delete
/// count: a subquery with columns `k0, k1, ...` typed like the table's key (`$1` table name,
/// `$2` baseline, `mine` the parameter of [`Baseline::mine_keys`], when there is one).
pub(crate) fn changed_keys_sql(
    t: &TableManifest,
    baseline: &Baseline,
    mine: &str,
) -> (String, Vec<String>) {
    let cols: Vec<String> = (0..t.primary_key.len())
        .map(|n| format!("{} AS k{n}", logged_key(t, n, "pk")))
        .collect();
    let names = (0..t.primary_key.len()).map(|n| format!("k{n}")).collect();
    (
        format!(
            "SELECT DISTINCT {} FROM {} c",
            cols.join(", "),
            baseline.changed_pks(true, mine)
        ),
        names,
    )
}

/// The bound value of `$2` in [`changed_keys_sql`].
pub(crate) fn baseline_param(baseline: &Baseline) -> &str {
    baseline.since.condition().2
}

/// Appends `parts` as one key (length-prefixed texts); false if a part is not text (such a
/// row is then always compared).
fn encode_key(parts: &[ValueRef<'_>], out: &mut Vec<u8>) -> bool {
    for part in parts {
        let ValueRef::Text(s) = part else {
            return false;
        };
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    true
}

/// The changed keys of one table: backup rows with one of them are compared, the others are
/// unchanged.
#[derive(Debug, Clone)]
pub(crate) struct KeyFilter {
    positions: Vec<usize>,
    keys: HashSet<Vec<u8>>,
    scratch: Vec<u8>,
}

impl KeyFilter {
    /// Whether the backup row `values` has to be compared (its key may have changed).
    pub(crate) fn must_compare(&mut self, values: &[ValueRef<'_>]) -> bool {
        self.scratch.clear();
        let mut parts = [ValueRef::Null; 4];
        if self.positions.len() > parts.len() {
            return true;
        }
        for (slot, &i) in parts.iter_mut().zip(&self.positions) {
            match values.get(i) {
                Some(v) => *slot = *v,
                None => return true,
            }
        }
        let parts = parts.get(..self.positions.len()).unwrap_or(&[]);
        !encode_key(parts, &mut self.scratch) || self.keys.contains(self.scratch.as_slice())
    }

    /// Which of a row's `columns` values [`KeyFilter::must_compare`] (and a tenant filter on
    /// column `tenant`) looks at.
    pub(crate) fn wanted(&self, columns: usize, tenant: Option<usize>) -> Vec<bool> {
        (0..columns)
            .map(|i| self.positions.contains(&i) || tenant == Some(i))
            .collect()
    }

    /// How many changed keys there are.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rows_with_a_changed_key_are_compared() {
        let mut keys = HashSet::new();
        let mut key = Vec::new();
        assert!(encode_key(
            &[ValueRef::Text("a"), ValueRef::Text("1")],
            &mut key
        ));
        keys.insert(key);
        let mut filter = KeyFilter {
            positions: vec![2, 0],
            keys,
            scratch: Vec::new(),
        };
        let row = |k0: &'static str, k2: &'static str| {
            vec![ValueRef::Text(k0), ValueRef::Null, ValueRef::Text(k2)]
        };
        assert!(filter.must_compare(&row("1", "a")));
        assert!(!filter.must_compare(&row("2", "a")));
        // Length prefixes keep ("a", "1") apart from ("a1", "").
        assert!(!filter.must_compare(&row("", "a1")));
        // A key that is not text is always compared.
        assert!(filter.must_compare(&[ValueRef::Int(1), ValueRef::Null, ValueRef::Text("a")]));
        assert!(filter.must_compare(&[ValueRef::Text("1")]));
    }
}
