//! Keeping the change log short. The triggers add a row per changed row forever; once every
//! scope's newest backup has read past a row, no future incremental needs it. After each
//! successful backup the log is cut below the oldest of those newest backups (the "heads"),
//! and the cut is recorded as a watermark in `rbac_backup_meta`. An incremental whose parent
//! is older than the watermark (its newer siblings were deleted by hand) is refused with a
//! request for a full backup, instead of silently missing changes.
//!
//! - SQLite: rows with `seq` at or below the oldest head's `change_seq` go; the watermark is
//!   that sequence number.
//! - PostgreSQL: rows whose transaction id is below the oldest head snapshot's `xmin` go (they
//!   were finished before every head read, so every head saw them); the watermark is that xid.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use sqlx::Connection as _;

use super::model::BackupError;

/// The metadata table (key, value), on both databases.
pub(crate) const META: &str = "rbac_backup_meta";
const CHANGES: &str = "rbac_backup_changes";
pub(crate) const WATERMARK: &str = "changes_pruned_through";

/// SQLite: deletes the change rows at or below `through`; returns how many went.
pub(crate) fn prune_sqlite(path: &Path, through: i64) -> Result<u64, BackupError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !super::sqlite::table_exists(&conn, CHANGES)? {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        &format!("CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
        [],
    )?;
    let deleted = tx.execute(&format!("DELETE FROM {CHANGES} WHERE seq <= ?1"), [through])?;
    // The watermark only moves forward.
    tx.execute(
        &format!(
            "INSERT INTO {META} (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET \
             value = CASE WHEN CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER) \
             THEN excluded.value ELSE value END"
        ),
        (WATERMARK, through.to_string()),
    )?;
    tx.commit()?;
    Ok(deleted as u64)
}

/// SQLite, inside the reading transaction of an incremental: refuses a parent older than the
/// watermark.
pub(crate) fn check_sqlite(conn: &Connection, parent_seq: i64) -> Result<(), BackupError> {
    if !super::sqlite::table_exists(conn, META)? {
        return Ok(());
    }
    let mark: Option<String> = conn
        .query_row(
            &format!("SELECT value FROM {META} WHERE key = ?1"),
            [WATERMARK],
            |r| r.get(0),
        )
        .optional()?;
    match mark.and_then(|m| m.parse::<i64>().ok()) {
        Some(mark) if mark > parent_seq => Err(too_old()),
        _ => Ok(()),
    }
}

fn too_old() -> BackupError {
    BackupError::NeedsFull(
        "the change log since the parent backup was pruned (a newer backup of this scope was \
         deleted)"
            .into(),
    )
}

/// PostgreSQL: deletes the change rows written by transactions below the `xmin` of the oldest
/// of `snapshots`; returns how many went.
pub(crate) async fn prune_pg(url: &str, snapshots: &[String]) -> Result<u64, BackupError> {
    if snapshots.is_empty() {
        return Ok(0);
    }
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(CHANGES)
        .fetch_one(&mut conn)
        .await?;
    if exists.is_none() {
        return Ok(0);
    }
    let mut tx = conn.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    )))
    .execute(&mut *tx)
    .await?;
    let mark: String = sqlx::query_scalar(
        "SELECT min(pg_snapshot_xmin(s::pg_snapshot))::text FROM unnest($1::text[]) AS s",
    )
    .bind(snapshots)
    .fetch_one(&mut *tx)
    .await?;
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {CHANGES} WHERE xid < $1::xid8"
    )))
    .bind(&mark)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {META} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET \
         value = CASE WHEN excluded.value::xid8 > {META}.value::xid8 \
         THEN excluded.value ELSE {META}.value END"
    )))
    .bind(WATERMARK)
    .bind(&mark)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// PostgreSQL: refuses an incremental whose parent snapshot may not have seen every pruned
/// row (its `xmin` is below the watermark). Run after the incremental's snapshot was read: the
/// watermark only grows, so a watermark still at or below the parent's `xmin` then means no
/// row the incremental needed was pruned before its snapshot.
pub(crate) async fn check_pg(
    conn: &mut sqlx::PgConnection,
    parent_snapshot: &str,
) -> Result<(), BackupError> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(META)
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(());
    }
    let stale: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT value::xid8 > pg_snapshot_xmin($2::pg_snapshot) FROM {META} WHERE key = $1"
    )))
    .bind(WATERMARK)
    .bind(parent_snapshot)
    .fetch_optional(&mut *conn)
    .await?;
    match stale {
        Some(true) => Err(too_old()),
        _ => Ok(()),
    }
}
