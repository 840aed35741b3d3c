//! The operation log: one row per backup operation (including denials) in the table
//! `rbac_backup_log` of the application database, queryable with [`LogQuery`].

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::model::{BackupError, Operation, Scope};
use super::sqlite;

/// The log table.
pub const LOG_TABLE: &str = "rbac_backup_log";

/// An operation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Recorded, not started.
    Pending,
    /// In progress (or its process died; see the backup's lock).
    Running,
    /// Completed.
    Success,
    /// Failed; `error` says why.
    Failed,
    /// Refused for lack of permission.
    Denied,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Denied => "denied",
        }
    }

    pub(crate) fn parse(s: &str) -> Status {
        match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "success" => Status::Success,
            "denied" => Status::Denied,
            _ => Status::Failed,
        }
    }
}

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The log row id.
    pub id: i64,
    /// `create`, `restore`, `verify`, ...
    pub operation: String,
    /// The backup concerned, when there is one.
    pub backup_id: Option<String>,
    /// The scope (text form).
    pub scope: String,
    /// The state.
    pub status: Status,
    /// Who asked.
    pub actor: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Bytes stored or read.
    pub size: Option<u64>,
    /// Rows written or restored.
    pub rows: Option<u64>,
    /// Duration in milliseconds.
    pub duration_ms: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A log filter; empty fields match everything. Newest first.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this backup.
    pub backup_id: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Only rows of these scopes (`tenant:acme`, …); `None` for every scope. The limit counts
    /// the rows that match.
    pub scopes: Option<Vec<String>>,
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS rbac_backup_log (\
    id INTEGER PRIMARY KEY AUTOINCREMENT, operation TEXT NOT NULL, backup_id TEXT, \
    scope TEXT NOT NULL, status TEXT NOT NULL, actor TEXT NOT NULL, started_at TEXT NOT NULL, \
    finished_at TEXT, size INTEGER, rows INTEGER, duration_ms INTEGER, error TEXT)";

/// Adds a row; returns its id.
pub(crate) fn start(
    db: &Path,
    op: Operation,
    backup_id: Option<&str>,
    scope: &Scope,
    actor: &str,
    status: Status,
) -> Result<i64, BackupError> {
    let conn = sqlite::open(db, false)?;
    conn.execute_batch(CREATE)?;
    conn.execute(
        "INSERT INTO rbac_backup_log (operation, backup_id, scope, status, actor, started_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            op.as_str(),
            backup_id,
            scope.to_string(),
            status.as_str(),
            actor,
            Utc::now().to_rfc3339()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// What an operation ended with.
#[derive(Debug, Default)]
pub(crate) struct Outcome<'a> {
    pub(crate) backup_id: Option<&'a str>,
    pub(crate) size: Option<u64>,
    pub(crate) rows: Option<u64>,
    pub(crate) error: Option<String>,
}

/// Closes a row with its outcome.
pub(crate) fn finish(db: &Path, id: i64, outcome: &Outcome<'_>) -> Result<(), BackupError> {
    let conn = sqlite::open(db, false)?;
    let started: Option<String> = conn
        .query_row(
            "SELECT started_at FROM rbac_backup_log WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let now = Utc::now();
    let duration = started
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|s| (now - s.with_timezone(&Utc)).num_milliseconds().max(0));
    let status = if outcome.error.is_some() {
        Status::Failed
    } else {
        Status::Success
    };
    conn.execute(
        "UPDATE rbac_backup_log SET status = ?2, finished_at = ?3, size = ?4, rows = ?5, \
         duration_ms = ?6, error = ?7, backup_id = COALESCE(?8, backup_id) WHERE id = ?1",
        rusqlite::params![
            id,
            status.as_str(),
            now.to_rfc3339(),
            outcome.size.map(|s| s as i64),
            outcome.rows.map(|s| s as i64),
            duration,
            outcome.error,
            outcome.backup_id,
        ],
    )?;
    Ok(())
}

/// Marks `running` rows of a backup as failed (its process died).
pub(crate) fn mark_abandoned(db: &Path, backup_id: &str) -> Result<(), BackupError> {
    let conn = sqlite::open(db, false)?;
    conn.execute_batch(CREATE)?;
    conn.execute(
        "UPDATE rbac_backup_log SET status = 'failed', finished_at = ?2, \
         error = 'interrupted: the process ended before the manifest was written; partial data removed' \
         WHERE backup_id = ?1 AND status IN ('running', 'pending')",
        rusqlite::params![backup_id, Utc::now().to_rfc3339()],
    )?;
    Ok(())
}

/// Log rows matching `query`, newest first.
pub(crate) fn query(db: &Path, query: &LogQuery) -> Result<Vec<LogEntry>, BackupError> {
    let conn = sqlite::open(db, false)?;
    conn.execute_batch(CREATE)?;
    let mut stmt = conn.prepare(
        "SELECT id, operation, backup_id, scope, status, actor, started_at, finished_at, size, \
         rows, duration_ms, error FROM rbac_backup_log \
         WHERE (?1 IS NULL OR operation = ?1) AND (?2 IS NULL OR status = ?2) \
           AND (?3 IS NULL OR backup_id = ?3) \
           AND (?5 IS NULL OR scope IN (SELECT value FROM json_each(?5))) \
         ORDER BY id DESC LIMIT ?4",
    )?;
    let scopes_json = match &query.scopes {
        Some(scopes) => Some(
            serde_json::to_string(scopes).map_err(|e| BackupError::InvalidInput(e.to_string()))?,
        ),
        None => None,
    };
    let time = |s: Option<String>| {
        s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let rows = stmt.query_map(
        rusqlite::params![
            query.operation,
            query.status.map(Status::as_str),
            query.backup_id,
            query.limit.unwrap_or(100),
            scopes_json
        ],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<i64>>(9)?,
                r.get::<_, Option<i64>>(10)?,
                r.get::<_, Option<String>>(11)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (id, operation, backup_id, scope, status, actor, started, finished, size, n, ms, error) =
            row?;
        out.push(LogEntry {
            id,
            operation,
            backup_id,
            scope,
            status: Status::parse(&status),
            actor,
            started_at: time(Some(started)).unwrap_or_default(),
            finished_at: time(finished),
            size: size.map(|v| v as u64),
            rows: n.map(|v| v as u64),
            duration_ms: ms.map(|v| v as u64),
            error,
        });
    }
    Ok(out)
}
