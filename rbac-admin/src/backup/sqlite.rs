//! The SQLite data path, through rusqlite (the same libsqlite3 as sqlx): catalogue, change
//! capture triggers, snapshot reads into chunks, and restores (real or dry run).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::affinity::Affinity;
use super::chunk::ChunkWriter;
use super::codec::{self, Value};
use super::keyset::{self, KeySet};
use super::model::{BackupError, TableManifest};
use super::plan::{INTERNAL_PREFIX, TableDef, quote};
use super::progress::Progress;

/// The `tbl` of the change-log row a restore leaves: its rows bypassed the triggers.
const RESTORE_MARK: &str = "*restore*";

/// The change-log entry each backup writes once it has read its snapshot (`pk`: the backup
/// id). An incremental requires its parent's: a copy of the file put in place of the
/// database, and then written to past the parent's position, has a log that looks like a
/// continuation of the parent's but lacks the changes between the copy and the parent.
const BACKUP_MARK: &str = "*backup*";

/// The change log written by the capture triggers.
pub(crate) const CHANGES: &str = "rbac_backup_changes";

/// The file of an `sqlite://FILE[?...]` or `sqlite:FILE` URL.
pub(crate) fn path_of(url: &str) -> Result<PathBuf, BackupError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| BackupError::Config(format!("`{url}` is not an sqlite:// URL")))?;
    let file = rest.split('?').next().unwrap_or(rest);
    if file.is_empty() || file.contains(":memory:") {
        return Err(BackupError::Config(format!(
            "`{url}`: in-memory databases cannot be backed up; use a file"
        )));
    }
    Ok(PathBuf::from(file))
}

/// Opens a database file for reading and writing (it must exist unless `create`).
pub(crate) fn open(path: &Path, create: bool) -> Result<Connection, BackupError> {
    if !create && !path.exists() {
        return Err(BackupError::Config(format!(
            "database `{}` does not exist",
            path.display()
        )));
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| BackupError::Database(format!("cannot open `{}`: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(conn)
}

/// Opens a database file read-only: nothing done through it can change the file.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, BackupError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| BackupError::Database(format!("cannot open `{}`: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(conn)
}

/// Every user table with its columns and key.
pub(crate) fn tables(conn: &Connection) -> Result<Vec<TableDef>, BackupError> {
    let mut stmt = conn.prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names: Vec<(String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (name, sql) in names {
        out.push(table_def(conn, &name, sql)?);
    }
    Ok(out)
}

fn table_def(conn: &Connection, name: &str, sql: Option<String>) -> Result<TableDef, BackupError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(name)))?;
    let mut columns = Vec::new();
    let mut keys: Vec<(i64, String)> = Vec::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (col, decl, pk) = row?;
        if pk > 0 {
            keys.push((pk, col.clone()));
        }
        columns.push((col, decl));
    }
    keys.sort();
    Ok(TableDef {
        name: name.to_owned(),
        columns,
        primary_key: keys.into_iter().map(|k| k.1).collect(),
        create_sql: sql,
    })
}

/// The omitted (secret) columns of `t` that the target declares NOT NULL without a default,
/// each with an empty literal of its type affinity ('' for text, 0 for numbers, x'' for blobs).
fn secret_fillers(
    conn: &Connection,
    t: &TableManifest,
) -> Result<Vec<(String, &'static str)>, BackupError> {
    if t.omitted_columns.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(&t.name)))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, decl, not_null, default) = row?;
        if not_null == 0 || default.is_some() || !t.omitted_columns.contains(&name) {
            continue;
        }
        // SQLite's affinity rules (https://sqlite.org/datatype3.html, 3.1).
        let decl = decl.to_ascii_uppercase();
        let literal = if decl.contains("INT") {
            "0"
        } else if decl.contains("CHAR") || decl.contains("CLOB") || decl.contains("TEXT") {
            "''"
        } else if decl.contains("BLOB") || decl.is_empty() {
            "x''"
        } else if decl.contains("REAL") || decl.contains("FLOA") || decl.contains("DOUB") {
            "0.0"
        } else {
            "0"
        };
        out.push((name, literal));
    }
    Ok(out)
}

pub(crate) fn table_exists(conn: &Connection, name: &str) -> Result<bool, BackupError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The JSON array a row's key is recorded as (in the change log, and in a restore's key
/// set), from `parts`, SQL expressions of its columns. JSON cannot hold a BLOB (SQLite's
/// `json_array` fails on one, and a failing trigger fails the application's write), so a BLOB
/// part is written `{"blob": "HEX"}`; [`key_part`] reads it back. A REAL part is written
/// `{"real": "TEXT"}` with 17 significant digits: JSON numbers keep 15, so a key such as a
/// julian-day timestamp would come back as another number, and its row be taken for deleted.
fn key_json(parts: &[String]) -> String {
    let parts: Vec<String> = parts
        .iter()
        .map(|p| {
            format!(
                "CASE typeof({p}) WHEN 'blob' THEN json_object('blob', hex({p})) \
                 WHEN 'real' THEN CASE WHEN abs({p}) <= 1.7976931348623157e308 \
                   THEN json_object('real', printf('%!.17g', {p})) ELSE {p} END ELSE {p} END"
            )
        })
        .collect();
    format!("json_array({})", parts.join(", "))
}

/// Part `i` of the key `pk` that [`key_json`] recorded, as the value it was. Runs in this
/// tool's SQLite (bundled, 3.51), never in the application's: `unhex` needs 3.41.
fn key_part(pk: &str, i: usize) -> String {
    format!(
        "CASE WHEN json_type({pk}, '$[{i}].blob') = 'text' \
           THEN unhex(json_extract({pk}, '$[{i}].blob')) \
         WHEN json_type({pk}, '$[{i}].real') = 'text' \
           THEN CAST(json_extract({pk}, '$[{i}].real') AS REAL) \
         ELSE json_extract({pk}, '$[{i}]') END"
    )
}

/// The change-log entry `install_capture` writes for a table whose capture it had to put
/// back (`pk`: the table).
const RECAPTURE_MARK: &str = "*recapture*";

/// The kinds of capture trigger: after insert, update and delete, and before insert and
/// update (the rows an `OR REPLACE` deletes).
const CAPTURE_KINDS: [&str; 5] = ["i", "u", "d", "ri", "ru"];

/// The name of `table`'s capture trigger of `kind` (one of [`CAPTURE_KINDS`]).
fn capture_trigger(kind: &str, table: &str) -> String {
    format!("{INTERNAL_PREFIX}{kind}_{table}")
}

/// A unique index's columns, each with its collation; `None` for an index the capture does
/// not cover: on an expression (whose values a trigger cannot name), or partial (a lookup by
/// its columns alone cannot use it, and would scan the table at every insert).
type UniqueIndex = Option<Vec<(String, String)>>;

/// The unique indexes of `table` other than its primary key.
fn unique_indexes(conn: &Connection, table: &str) -> Result<Vec<UniqueIndex>, BackupError> {
    let mut stmt = conn.prepare(&format!("PRAGMA index_list({})", quote(table)))?;
    let indexes: Vec<(String, bool, String, bool)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (index, unique, origin, partial) in indexes {
        if !unique || origin == "pk" {
            continue;
        }
        if partial {
            out.push(None);
            continue;
        }
        let mut stmt = conn.prepare(&format!("PRAGMA index_xinfo({})", quote(&index)))?;
        // (column id, name, collation, part of the key)
        let parts: Vec<(i64, Option<String>, Option<String>, bool)> = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(4)?, r.get(5)?)))?
            .collect::<Result<_, _>>()?;
        let columns: UniqueIndex = parts
            .into_iter()
            .filter(|p| p.3)
            .map(|(cid, name, collation, _)| {
                (cid >= 0)
                    .then_some(name)
                    .flatten()
                    .map(|n| (n, collation.unwrap_or_else(|| "BINARY".into())))
            })
            .collect();
        out.push(columns);
    }
    Ok(out)
}

/// The primary key of `t` with the collation its uniqueness follows: its index's (an
/// INTEGER PRIMARY KEY has none, and needs none: it holds integers).
fn key_collations(
    conn: &Connection,
    t: &TableManifest,
) -> Result<Vec<(String, String)>, BackupError> {
    let mut stmt = conn.prepare(&format!("PRAGMA index_list({})", quote(&t.name)))?;
    let key_index: Option<String> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(3)?)))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|(_, origin)| origin == "pk")
        .map(|(name, _)| name);
    let mut collations: HashMap<String, String> = HashMap::new();
    if let Some(index) = key_index {
        let mut stmt = conn.prepare(&format!("PRAGMA index_xinfo({})", quote(&index)))?;
        let parts: Vec<(Option<String>, Option<String>, bool)> = stmt
            .query_map([], |r| Ok((r.get(2)?, r.get(4)?, r.get(5)?)))?
            .collect::<Result<_, _>>()?;
        for (name, collation, key) in parts {
            if let (true, Some(name), Some(collation)) = (key, name, collation) {
                collations.insert(name, collation);
            }
        }
    }
    Ok(t.primary_key
        .iter()
        .map(|k| (k.clone(), collations.get(k).cloned().unwrap_or_default()))
        .collect())
}

/// The generated columns of `table` (an `UPDATE` never names them).
fn generated_columns(conn: &Connection, table: &str) -> Result<HashSet<String>, BackupError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_xinfo({})", quote(table)))?;
    let columns: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get(6)?)))?
        .collect::<Result<_, _>>()?;
    Ok(columns
        .into_iter()
        .filter(|(_, hidden)| matches!(hidden, 2 | 3))
        .map(|(name, _)| name)
        .collect())
}

/// The capture triggers of `t`, as (name, `CREATE TRIGGER` statement): after each insert,
/// update and delete, the row's key (and tenant) goes to the change log. `INSERT OR REPLACE`
/// and `UPDATE OR REPLACE` also delete the rows whose unique columns the new row takes, and
/// SQLite fires no delete trigger for those (unless the application's connection set
/// `recursive_triggers`): with unique indexes besides the key, triggers before inserts and
/// before updates of their columns log the keys of such rows first. So they do for a row
/// whose key an `INSERT OR REPLACE` gives to another tenant's row (the insert is logged for
/// the new tenant only) or an `UPDATE OR REPLACE` takes: in a table with a tenant column, the
/// key is one more unique index. A key logged for a row that was kept only makes the next
/// incremental read it again.
fn capture_triggers(
    conn: &Connection,
    t: &TableManifest,
) -> Result<Vec<(String, String)>, BackupError> {
    let key = |row: &str| {
        let cols: Vec<String> = t
            .primary_key
            .iter()
            .map(|k| format!("{row}.{}", quote(k)))
            .collect();
        key_json(&cols)
    };
    let tenant = |row: &str| match &t.tenant_column {
        Some(c) => format!("{row}.{}", quote(c)),
        None => "NULL".into(),
    };
    let lit = format!("'{}'", t.name.replace('\'', "''"));
    let table = quote(&t.name);
    let log = |row: &str| {
        format!(
            "INSERT INTO {CHANGES} (tbl, pk, tenant) VALUES ({lit}, {}, {});",
            key(row),
            tenant(row)
        )
    };
    let mut out = vec![
        (
            capture_trigger("i", &t.name),
            format!("AFTER INSERT ON {table} BEGIN {} END", log("NEW")),
        ),
        (
            capture_trigger("u", &t.name),
            format!(
                "AFTER UPDATE ON {table} BEGIN {} INSERT INTO {CHANGES} (tbl, pk, tenant) \
                 SELECT {lit}, {ok}, {ot} WHERE {ok} IS NOT {nk} OR {ot} IS NOT {nt}; END",
                log("NEW"),
                ok = key("OLD"),
                nk = key("NEW"),
                ot = tenant("OLD"),
                nt = tenant("NEW"),
            ),
        ),
        (
            capture_trigger("d", &t.name),
            format!("AFTER DELETE ON {table} BEGIN {} END", log("OLD")),
        ),
    ];
    let mut indexes: Vec<Vec<(String, String)>> = unique_indexes(conn, &t.name)?
        .into_iter()
        // Not covered: see `install_capture`.
        .flatten()
        .collect();
    // A key that holds the tenant cannot pass to another tenant.
    if let Some(tenant) = &t.tenant_column
        && !t.primary_key.is_empty()
        && !t.primary_key.contains(tenant)
    {
        indexes.push(key_collations(conn, t)?);
    }
    let generated = generated_columns(conn, &t.name)?;
    let mut matches = Vec::new();
    let mut columns = BTreeSet::new();
    let mut on_any_update = false;
    for index in indexes {
        on_any_update |= index.iter().any(|(c, _)| generated.contains(c));
        let same: Vec<String> = index
            .iter()
            .map(|(c, collation)| {
                columns.insert(quote(c));
                let c = quote(c);
                if collation.is_empty() {
                    format!("o.{c} = NEW.{c}")
                } else {
                    format!("o.{c} = NEW.{c} COLLATE {}", quote(collation))
                }
            })
            .collect();
        matches.push(format!("({})", same.join(" AND ")));
    }
    if !matches.is_empty() {
        // Another row than the one written (an insert of the same key for another tenant
        // counts as another row: its old tenant must hear of it).
        let displaced = |other: &str| {
            format!(
                "INSERT INTO {CHANGES} (tbl, pk, tenant) SELECT {lit}, {ko}, {to} FROM {table} AS o \
                 WHERE ({}) AND ({other});",
                matches.join(" OR "),
                ko = key("o"),
                to = tenant("o"),
            )
        };
        let other_than_new = format!(
            "{} IS NOT {} OR {} IS NOT {}",
            key("o"),
            key("NEW"),
            tenant("o"),
            tenant("NEW")
        );
        let other_than_old = format!("{} IS NOT {}", key("o"), key("OLD"));
        out.push((
            capture_trigger("ri", &t.name),
            format!(
                "BEFORE INSERT ON {table} BEGIN {} END",
                displaced(&other_than_new)
            ),
        ));
        // A generated column changes with the columns it is computed from, which an
        // `UPDATE OF` list cannot name: then every update.
        let of = if on_any_update {
            String::new()
        } else {
            format!(" OF {}", columns.into_iter().collect::<Vec<_>>().join(", "))
        };
        out.push((
            capture_trigger("ru", &t.name),
            format!(
                "BEFORE UPDATE{of} ON {table} BEGIN {} END",
                displaced(&other_than_old)
            ),
        ));
    }
    Ok(out
        .into_iter()
        .map(|(name, body)| {
            let sql = format!("CREATE TRIGGER {} {body}", quote(&name));
            (name, sql)
        })
        .collect())
}

/// Whether `t` has exactly this version's capture triggers ([`capture_triggers`]): older
/// versions logged REAL keys with 15 digits, and none logged the rows `OR REPLACE` deletes;
/// a unique index added since they were made is not covered by them either.
fn captured(conn: &Connection, t: &TableManifest) -> Result<bool, BackupError> {
    let words = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let expected = capture_triggers(conn, t)?;
    // Left from an index dropped since (or a version that made more), a trigger may name a
    // column the application is about to drop, and its `ALTER TABLE DROP COLUMN` fails:
    // capture is then out of date, and the next full backup makes it anew.
    for kind in CAPTURE_KINDS {
        let name = capture_trigger(kind, &t.name);
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1)",
            [&name],
            |r| r.get(0),
        )?;
        if exists && !expected.iter().any(|(n, _)| *n == name) {
            return Ok(false);
        }
    }
    for (name, sql) in expected {
        let found: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 AND name = ?2",
                (&t.name, &name),
                |r| r.get(0),
            )
            .optional()?;
        if found.as_deref().map(words) != Some(words(&sql)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Installs the change-capture triggers on `tables` (idempotent). Each insert, update or
/// delete then also writes one row (two when an update changes the key) to the change log.
pub(crate) fn install_capture(
    conn: &mut Connection,
    tables: &[TableManifest],
) -> Result<(), BackupError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let had_log = table_exists(&tx, CHANGES)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {CHANGES} (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         tbl TEXT NOT NULL, pk TEXT NOT NULL, tenant TEXT);
         CREATE INDEX IF NOT EXISTS {CHANGES}_tbl_seq ON {CHANGES} (tbl, seq);"
    ))?;
    for t in tables {
        // A table whose capture was missing or outdated (rebuilt since, or triggers of an
        // older version) may have changed unlogged: a mark says so to every chain that
        // started before it, whose next incremental then needs a full backup.
        if had_log && !captured(&tx, t)? {
            tx.execute(
                &format!("INSERT INTO {CHANGES} (tbl, pk, tenant) VALUES (?1, ?2, NULL)"),
                [RECAPTURE_MARK, t.name.as_str()],
            )?;
        }
        // Replaced, not kept if present: triggers of an older version recorded a BLOB key
        // with `json_array`, which fails the application's writes to the table.
        for kind in CAPTURE_KINDS {
            tx.execute_batch(&format!(
                "DROP TRIGGER IF EXISTS {}",
                quote(&capture_trigger(kind, &t.name))
            ))?;
        }
        for (_, sql) in capture_triggers(&tx, t)? {
            tx.execute_batch(&sql)?;
        }
        if unique_indexes(&tx, &t.name)?.iter().any(Option::is_none) {
            tracing::warn!(target: "rbac::backup", table = %t.name,
                "a partial unique index, or one on an expression: the rows `INSERT OR REPLACE` deletes for it are not logged, and incrementals miss those deletes");
        }
    }
    tx.commit()?;
    Ok(())
}

fn put_ref(buf: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => codec::put_null(buf),
        ValueRef::Integer(i) => codec::put_int(buf, i),
        ValueRef::Real(r) => codec::put_real(buf, r),
        ValueRef::Text(t) => codec::put_text(buf, t),
        ValueRef::Blob(b) => codec::put_blob(buf, b),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::RawText(b) => ValueRef::Text(b),
        }))
    }
}

fn column_list(t: &TableManifest, prefix: &str) -> String {
    t.columns
        .iter()
        .map(|c| format!("{prefix}{}", quote(&c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads every table of `tables` in one read transaction (one consistent snapshot) into
/// `writer`, filling in row counts. For an incremental (`since = Some(seq)`), reads only rows
/// changed after `seq` and records deletes. Returns the change-log position of the snapshot.
/// Writes backup `id`'s mark in the change log (see [`BACKUP_MARK`]), once its snapshot is
/// read. Best effort: without it the next incremental of the chain is a full backup.
pub(crate) fn mark_backup(conn: &Connection, id: &str) {
    let written = conn.execute(
        &format!("INSERT INTO {CHANGES} (tbl, pk, tenant) VALUES (?1, ?2, NULL)"),
        (BACKUP_MARK, id),
    );
    if let Err(e) = written {
        tracing::warn!(target: "rbac::backup", backup = %id, error = %e,
            "cannot write the backup's mark in the change log: the next incremental of its chain will be a full backup");
    }
}

pub(crate) fn read_snapshot(
    conn: &mut Connection,
    tables: &mut [TableManifest],
    tenant: Option<&str>,
    since: Option<(i64, &str)>,
    writer: &mut ChunkWriter<'_>,
    progress: &dyn Progress,
) -> Result<i64, BackupError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    // The first read fixes the snapshot; everything below sees the same database state.
    let has_changes = table_exists(&tx, CHANGES)?;
    // The AUTOINCREMENT high-water mark, not MAX(seq): pruning may have emptied the log.
    let seq: i64 = if has_changes {
        tx.query_row(
            &format!(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{CHANGES}'), 0),                  COALESCE((SELECT MAX(seq) FROM {CHANGES}), 0))"
            ),
            [],
            |r| r.get(0),
        )?
    } else {
        0
    };
    if let Some((parent_seq, parent)) = since {
        if !has_changes {
            return Err(BackupError::NeedsFull("the change log is missing".into()));
        }
        super::changelog::check_sqlite(&tx, parent_seq)?;
        let restored: bool = tx.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {CHANGES} WHERE tbl = ?1 AND seq > ?2)"),
            (RESTORE_MARK, parent_seq),
            |r| r.get(0),
        )?;
        if restored {
            return Err(BackupError::NeedsFull(
                "the database was restored since the parent backup".into(),
            ));
        }
        // The log's position only grows: behind the parent's, this is another file (an
        // older copy put in its place), whose log cannot say what changed since the parent.
        if seq < parent_seq {
            return Err(BackupError::NeedsFull(format!(
                "the change log is at {seq}, before the parent backup's {parent_seq}: the \
                 database file was replaced"
            )));
        }
        let marked: bool = tx.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {CHANGES} WHERE tbl = ?1 AND pk = ?2)"),
            (BACKUP_MARK, parent),
            |r| r.get(0),
        )?;
        if !marked {
            return Err(BackupError::NeedsFull(format!(
                "the change log holds no mark of the parent backup {parent}: the database \
                 file was replaced by another copy since, or the parent was made by an older \
                 version"
            )));
        }
        // Changes reach the log only through the capture triggers: a table rebuilt (the
        // usual way to change a constraint in SQLite) has none, and records nothing; nor did
        // it while another scope's full backup had not yet put them back (its mark).
        for t in tables.iter() {
            let put_back: bool = tx.query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {CHANGES} WHERE tbl = ?1 AND pk = ?2 AND seq > ?3)"
                ),
                (RECAPTURE_MARK, &t.name, parent_seq),
                |r| r.get(0),
            )?;
            if put_back || !captured(&tx, t)? {
                return Err(BackupError::NeedsFull(format!(
                    "`{}` has no change capture of this version since the parent backup \
                     (created again, or triggers of an older version)",
                    t.name
                )));
            }
        }
    }
    for t in tables.iter_mut() {
        // A full backup's rows are grouped by tenant in each chunk; an incremental's records
        // keep their order.
        let tenant_column = if since.is_none() {
            t.tenant_position()
        } else {
            None
        };
        writer.begin_table_by_tenant(&t.name, tenant_column)?;
        progress.phase(&format!("table {}", t.name), None);
        let filter = match (tenant, &t.tenant_column) {
            (Some(_), Some(c)) => format!(" WHERE t.{} = ?1", quote(c)),
            _ => String::new(),
        };
        match since {
            None => {
                let sql = format!(
                    "SELECT {} FROM {} AS t{filter}",
                    column_list(t, "t."),
                    quote(&t.name)
                );
                let mut stmt = tx.prepare(&sql)?;
                let mut rows = match (tenant, filter.is_empty()) {
                    (Some(tn), false) => stmt.query([tn])?,
                    _ => stmt.query([])?,
                };
                let n = t.columns.len();
                let mut count = 0u64;
                while let Some(row) = rows.next()? {
                    writer.buf.push(codec::ROW);
                    for i in 0..n {
                        put_ref(&mut writer.buf, row.get_ref(i)?);
                    }
                    writer.record_done()?;
                    count += 1;
                    if count.is_multiple_of(65536) {
                        progress.advance(65536);
                    }
                }
                progress.advance(count % 65536);
                t.rows = count;
            }
            Some((parent_seq, _)) => {
                let k = t.primary_key.len();
                let keys: Vec<String> = (0..k).map(|i| key_part("c.pk", i)).collect();
                let join: Vec<String> = t
                    .primary_key
                    .iter()
                    .zip(&keys)
                    // `IS`: a key part may be NULL (a rowid table allows it).
                    .map(|(col, key)| format!("t.{} IS {key}", quote(col)))
                    .collect();
                let tenant_join = match (tenant, &t.tenant_column) {
                    (Some(_), Some(c)) => format!(" AND t.{} = ?4", quote(c)),
                    _ => String::new(),
                };
                let tenant_changes = if tenant_join.is_empty() {
                    String::new()
                } else {
                    " AND tenant = ?4".into()
                };
                // Whether the key's row is there: a column of the joined side that is never
                // NULL (a key part may be). Deletes first: a restore applies the records in
                // order, and a row may have taken the unique value of one deleted (an
                // `UPDATE OR REPLACE`, or a delete and an update).
                let sql = format!(
                    "SELECT {}, t.rbac_present IS NOT NULL, {} FROM (SELECT DISTINCT pk FROM {CHANGES} \
                     WHERE tbl = ?1 AND seq > ?2 AND seq <= ?3{tenant_changes}) AS c \
                     LEFT JOIN (SELECT 1 AS rbac_present, * FROM {}) AS t ON {}{tenant_join} \
                     ORDER BY t.rbac_present IS NOT NULL",
                    keys.join(", "),
                    column_list(t, "t."),
                    quote(&t.name),
                    join.join(" AND "),
                );
                let mut stmt = tx.prepare(&sql)?;
                let tn = tenant.unwrap_or_default();
                let mut rows = if tenant_join.is_empty() {
                    stmt.query(rusqlite::params![t.name, parent_seq, seq])?
                } else {
                    stmt.query(rusqlite::params![t.name, parent_seq, seq, tn])?
                };
                let (mut upserts, mut deletes) = (0u64, 0u64);
                while let Some(row) = rows.next()? {
                    let present: bool = row.get(k)?;
                    if present {
                        writer.buf.push(codec::ROW);
                        for i in 0..t.columns.len() {
                            put_ref(&mut writer.buf, row.get_ref(k + 1 + i)?);
                        }
                        upserts += 1;
                    } else {
                        writer.buf.push(codec::DELETE);
                        for i in 0..k {
                            put_ref(&mut writer.buf, row.get_ref(i)?);
                        }
                        deletes += 1;
                    }
                    writer.record_done()?;
                }
                progress.advance(upserts + deletes);
                t.rows = upserts;
                t.deleted = deletes;
            }
        }
    }
    writer.flush()?;
    tx.commit()?;
    Ok(seq)
}

/// What a restore did, or would do, to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableReport {
    /// The table.
    pub table: String,
    /// Rows inserted (absent before).
    pub insert: u64,
    /// Rows replaced (present before with other values).
    pub replace: u64,
    /// Rows present before with the same values (dry run only; a restore rewrites them).
    pub unchanged: u64,
    /// Of `unchanged`, the rows a PostgreSQL dry run did not need to read: the change log
    /// shows their keys untouched since the backup was taken from this database, or since
    /// this backup was restored into it.
    pub unchanged_by_change_log: u64,
    /// Rows deleted (in scope, absent from the backup, or deleted by an incremental).
    pub delete: u64,
    /// Rows whose key belongs to another tenant (a restore refuses them).
    pub conflicts: u64,
    /// Whether the table does not exist and would be (or was) created.
    pub create: bool,
}

/// One step of a restore as given to [`Restorer`].
pub(crate) struct Step<'a> {
    pub(crate) table: &'a TableManifest,
    /// The step's place in its chain: 0 for the full backup.
    pub(crate) index: u32,
    pub(crate) full: bool,
    pub(crate) tenant: Option<&'a str>,
}

enum Mode<'t> {
    Dry {
        lookup: rusqlite::Statement<'t>,
        /// SQLite's reading of a real literal (see [`Affinity::converts`]).
        read_real: rusqlite::Statement<'t>,
        in_scope: u64,
    },
    Replace {
        insert: rusqlite::Statement<'t>,
    },
    Upsert {
        upsert: rusqlite::Statement<'t>,
        key: Option<rusqlite::Statement<'t>>,
        delete: rusqlite::Statement<'t>,
        null_key: Box<NullKey<'t>>,
    },
}

/// How an upsert writes a row whose key has a NULL part, which `ON CONFLICT` never matches.
struct NullKey<'t> {
    /// Updates the row with that key (of the row's own tenant, in a tenant restore); None when
    /// every column is part of the key.
    update: Option<rusqlite::Statement<'t>>,
    /// Whether a row with that key exists (bound with the key's values).
    exists: rusqlite::Statement<'t>,
    /// Inserts the row.
    insert: rusqlite::Statement<'t>,
}

/// Applies (or, in a dry run, compares) decoded records inside one transaction.
pub(crate) struct Restorer<'c> {
    tx: rusqlite::Transaction<'c>,
    dry_run: bool,
    /// Whether [`Restorer::note_later_keys`] ran: each step of a tenant restore then skips
    /// the keys it noted for a step after it.
    later_keys: bool,
    /// The keys it noted, per table, with the last step that names each, held in memory...
    later: HashMap<String, KeySet>,
    /// ... this many of them ...
    later_held: usize,
    /// Per table, the later keys whose last record is a row of the tenant (encoded as in
    /// [`KeySet`]): a full step restored by upsert keeps their rows, and so their secret
    /// columns, for the later step that writes them. Held in memory even when the later keys
    /// spill: they are the tenant's own changed rows, a part of them.
    later_mine: HashMap<String, HashSet<Box<[u8]>>>,
    /// ... up to this many; past that they move to the temporary table
    /// `temp.rbac_restore_later` (and this is true).
    later_in_memory: usize,
    later_spilled: bool,
    /// The capture triggers, as `CREATE TRIGGER` statements, that a real restore removed
    /// for its writes and puts back before it commits.
    triggers: Vec<String>,
    /// Foreign-key violations in the target before the restore wrote anything.
    violations: BTreeMap<(String, String), u64>,
    /// See [`Restorer::in_scratch`].
    scratch: bool,
    pub(crate) reports: Vec<TableReport>,
}

/// How many rows of each (child table, parent table) break a foreign key, as
/// `PRAGMA foreign_key_check` finds them (it checks whatever `foreign_keys` is set to).
fn foreign_key_violations(
    conn: &Connection,
) -> Result<BTreeMap<(String, String), u64>, BackupError> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut found = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let child: String = row.get(0)?;
        let parent: String = row.get(2)?;
        *found.entry((child, parent)).or_insert(0) += 1;
    }
    Ok(found)
}

fn constraint(table: &str, e: rusqlite::Error) -> BackupError {
    BackupError::Database(format!(
        "restore of `{table}` failed, nothing was changed: {e}"
    ))
}

impl<'c> Restorer<'c> {
    pub(crate) fn begin(
        conn: &'c mut Connection,
        dry_run: bool,
    ) -> Result<Restorer<'c>, BackupError> {
        let tx = if dry_run {
            conn.transaction_with_behavior(TransactionBehavior::Deferred)?
        } else {
            // Foreign-key *actions* off: with them on, replacing a parent table's rows
            // (`DELETE FROM tenants`) would run its `ON DELETE CASCADE` / `SET NULL` at once,
            // deferred or not, and erase or blank child rows restored before it, or those of
            // tables the restore does not cover. The keys are still checked, once, before
            // commit ([`Restorer::finish`]): a restore may add no violation.
            conn.execute_batch("PRAGMA foreign_keys = OFF")?;
            conn.transaction_with_behavior(TransactionBehavior::Immediate)?
        };
        // Violations already there (an application that runs without foreign keys) are not
        // the restore's to refuse: only new ones are.
        let violations = if dry_run {
            BTreeMap::new()
        } else {
            foreign_key_violations(&tx)?
        };
        // The capture triggers would log every restored and deleted row (and make a restore
        // of a large tenant several times slower, with the statement journal growing past
        // the memory bound): they are dropped for the restore's writes, inside its
        // transaction, so that no other connection ever sees them missing, and put back
        // before it commits, with a mark in the change log (see `finish`).
        let mut triggers = Vec::new();
        if !dry_run {
            let mut stmt = tx.prepare(&format!(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name <> '{CHANGES}' \
                 AND (name GLOB '{INTERNAL_PREFIX}i_*' OR name GLOB '{INTERNAL_PREFIX}u_*' \
                      OR name GLOB '{INTERNAL_PREFIX}d_*' OR name GLOB '{INTERNAL_PREFIX}r[iu]_*')"
            ))?;
            let found: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            drop(stmt);
            for (name, sql) in found {
                tx.execute_batch(&format!("DROP TRIGGER {}", quote(&name)))?;
                triggers.push(sql);
            }
        }
        Ok(Restorer {
            tx,
            dry_run,
            later_keys: false,
            later: HashMap::new(),
            later_held: 0,
            later_mine: HashMap::new(),
            later_in_memory: keyset::IN_MEMORY,
            later_spilled: false,
            triggers,
            violations,
            scratch: false,
            reports: Vec::new(),
        })
    }

    /// For a dry run into a scratch database (a new file's preview, in memory): tables are
    /// created as the restore would create them, so that a chain's later steps find them;
    /// the transaction is rolled back all the same.
    pub(crate) fn in_scratch(&mut self) {
        self.scratch = true;
    }

    /// Holds at most `n` of the keys that [`Restorer::note_later_keys`] notes in memory
    /// (default [`keyset::IN_MEMORY`]); the others go to a temporary table.
    pub(crate) fn hold_later_keys_up_to(&mut self, n: usize) {
        self.later_in_memory = n;
    }

    /// For a tenant restore of a chain, before any step: notes every key that `step` (an
    /// incremental, by its place in the chain) names for `t` (a row, of any tenant, or a
    /// delete), and which of them end as rows of `tenant` (steps noted in order). Each step then leaves the keys that a step after it names to the last of
    /// those, which has the last word on them: a row of the tenant's backup may since have
    /// moved to another tenant under the same key, and replayed as it was, it would collide
    /// with that tenant's row or make the row the tenant's again (see [`keyset`]).
    pub(crate) fn note_later_keys(
        &mut self,
        t: &TableManifest,
        step: u32,
        tenant: Option<&str>,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, BackupError>>,
    ) -> Result<(), BackupError> {
        let tenant_position = t.tenant_position();
        self.later_keys = true;
        let key_positions = t.key_positions()?;
        let mut scratch = Vec::new();
        for chunk in chunks {
            let chunk = chunk?;
            let mut reader = codec::Reader::new(&chunk);
            let mut values = Vec::with_capacity(t.columns.len());
            let set = self.later.entry(t.name.clone()).or_default();
            let mine = self.later_mine.entry(t.name.clone()).or_default();
            while let Some(tag) =
                reader.next_ref(t.columns.len(), t.primary_key.len(), &mut values)?
            {
                let row = tag == codec::ROW;
                if set.insert(
                    keyset::key_parts(row, &values, &key_positions),
                    step,
                    &mut scratch,
                ) {
                    self.later_held += 1;
                }
                // Steps are noted in order, and a step names a key once.
                let ours = row
                    && tenant
                        .zip(tenant_position)
                        .is_some_and(|(tn, i)| values.get(i).is_some_and(|v| v.names_tenant(tn)));
                scratch.clear();
                if keyset::encode(
                    keyset::key_parts(row, &values, &key_positions),
                    &mut scratch,
                ) {
                    if ours {
                        mine.insert(scratch.as_slice().into());
                    } else {
                        mine.remove(scratch.as_slice());
                    }
                }
            }
            if self.later_held > self.later_in_memory {
                self.spill_later_keys()?;
            }
        }
        Ok(())
    }

    /// Moves the later keys held in memory to the temporary table.
    fn spill_later_keys(&mut self) -> Result<(), BackupError> {
        self.tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS rbac_restore_later \
             (tbl TEXT NOT NULL, k BLOB NOT NULL, step INTEGER NOT NULL, PRIMARY KEY (tbl, k))",
        )?;
        let mut insert = self.tx.prepare(
            "INSERT INTO temp.rbac_restore_later VALUES (?1, ?2, ?3) \
             ON CONFLICT (tbl, k) DO UPDATE SET step = max(step, excluded.step)",
        )?;
        for (table, set) in &mut self.later {
            for (key, step) in set.drain() {
                insert.execute((table.as_str(), &*key, step))?;
            }
        }
        self.later_held = 0;
        self.later_spilled = true;
        Ok(())
    }

    /// Creates the tables the target lacks, in this transaction, before any row is written.
    pub(crate) fn create_missing(&self, tables: &[&TableManifest]) -> Result<(), BackupError> {
        create_missing(&self.tx, tables)
    }

    /// Applies one table's records from `chunks` (decoded chunk bytes, in order).
    pub(crate) fn table(
        &mut self,
        step: &Step<'_>,
        chunks: &mut dyn Iterator<Item = Result<Vec<u8>, BackupError>>,
        progress: &dyn Progress,
    ) -> Result<(), BackupError> {
        let t = step.table;
        let mut report = TableReport {
            table: t.name.clone(),
            ..TableReport::default()
        };
        let exists = table_exists(&self.tx, &t.name)?;
        if !exists {
            if !step.full {
                return Err(BackupError::Schema(format!(
                    "table `{}` does not exist in the target database",
                    t.name
                )));
            }
            report.create = true;
            let create = t.create_sql.clone().unwrap_or_else(|| generic_create(t));
            if !self.dry_run || self.scratch {
                self.tx.execute_batch(&create)?;
            }
        }
        // Each backup column's affinity in the target: a dry run compares a value as the
        // restore would store it.
        let mut affinities = Vec::with_capacity(t.columns.len());
        if exists {
            let def = table_def(&self.tx, &t.name, None)?;
            for c in &t.columns {
                let Some((_, decl)) = def.columns.iter().find(|(n, _)| *n == c.name) else {
                    return Err(BackupError::Schema(format!(
                        "column `{}.{}` is in the backup but not in the target database",
                        t.name, c.name
                    )));
                };
                affinities.push(Affinity::of(decl));
            }
        }
        let tenant_filter = match (step.tenant, &t.tenant_column) {
            (Some(tn), Some(c)) => Some((tn, c.as_str())),
            (Some(_), None) => return Ok(()),
            _ => None,
        };
        let tenant_index =
            tenant_filter.and_then(|(_, c)| t.columns.iter().position(|col| col.name == c));
        let where_scope = match tenant_filter {
            Some((_, c)) => format!(" WHERE {} = ?1", quote(c)),
            None => String::new(),
        };
        let table = quote(&t.name);
        let cols = column_list(t, "");
        let marks: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
        // `IS`, not `=`: SQLite lets a rowid table's key hold NULL parts, which `=` never
        // matches (`IS` applies the same affinity and collation, and uses the same index).
        let key_match: Vec<String> = t
            .primary_key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} IS ?{}", quote(k), i + 1))
            .collect();
        let key_positions = t.key_positions()?;
        let count_scope = |tx: &rusqlite::Transaction<'_>| -> Result<u64, BackupError> {
            if !exists {
                return Ok(0);
            }
            let sql = format!("SELECT count(*) FROM {table}{where_scope}");
            let n: i64 = match tenant_filter {
                Some((tn, _)) => tx.query_row(&sql, [tn], |r| r.get(0))?,
                None => tx.query_row(&sql, [], |r| r.get(0))?,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let tenant_col_sql = match tenant_filter {
            Some((_, c)) => quote(c),
            None => "NULL".into(),
        };
        let mut mode = if self.dry_run {
            let in_scope = if step.full { count_scope(&self.tx)? } else { 0 };
            if exists {
                let lookup = self.tx.prepare(&format!(
                    "SELECT {cols}, {tenant_col_sql} FROM {table} WHERE {}",
                    key_match.join(" AND ")
                ))?;
                let read_real = self.tx.prepare("SELECT CAST(?1 AS REAL)")?;
                Some(Mode::Dry {
                    lookup,
                    read_real,
                    in_scope,
                })
            } else {
                None
            }
        } else if step.full && t.omitted_columns.is_empty() {
            let deleted = match tenant_filter {
                Some((tn, _)) => self
                    .tx
                    .execute(&format!("DELETE FROM {table}{where_scope}"), [tn])?,
                None => self.tx.execute(&format!("DELETE FROM {table}"), [])?,
            };
            report.delete = deleted as u64;
            Some(Mode::Replace {
                insert: self.tx.prepare(&format!(
                    "INSERT INTO {table} ({cols}) VALUES ({})",
                    marks.join(", ")
                ))?,
            })
        } else {
            let updates: Vec<String> = t
                .columns
                .iter()
                .filter(|c| !t.primary_key.contains(&c.name))
                .map(|c| format!("{0} = excluded.{0}", quote(&c.name)))
                .collect();
            let key_columns: Vec<String> = t.primary_key.iter().map(|k| quote(k)).collect();
            let keys = key_columns.join(", ");
            let guard = match tenant_filter {
                Some((_, c)) => format!(" WHERE {table}.{0} = excluded.{0}", quote(c)),
                None => String::new(),
            };
            // Every backed-up column is part of the key: the row is written to itself, so that
            // a row of the tenant counts as written and another tenant's is refused (`DO
            // NOTHING` would count neither).
            let updates = match (updates.is_empty(), t.primary_key.first()) {
                (true, Some(k)) => vec![format!("{0} = excluded.{0}", quote(k))],
                _ => updates,
            };
            let action = if updates.is_empty() {
                "NOTHING".to_owned()
            } else {
                format!("UPDATE SET {}{guard}", updates.join(", "))
            };
            // Secret columns are not in the backup: an existing row keeps its value (the
            // update leaves the column alone), a new row gets the column's default, or an
            // empty value of its type when it is NOT NULL without a default.
            let fillers = secret_fillers(&self.tx, t)?;
            if !fillers.is_empty() {
                let names: Vec<&str> = fillers.iter().map(|(c, _)| c.as_str()).collect();
                tracing::warn!(
                    target: "rbac::backup",
                    table = %t.name,
                    columns = ?names,
                    "restored rows new to the table get an empty value in these secret columns (NOT NULL without a default): reset them"
                );
            }
            let filler_cols: String = fillers
                .iter()
                .map(|(c, _)| format!(", {}", quote(c)))
                .collect();
            let filler_values: String = fillers.iter().map(|(_, v)| format!(", {v}")).collect();
            let upsert = self.tx.prepare(&format!(
                "INSERT INTO {table} ({cols}{filler_cols}) VALUES ({}{filler_values}) ON CONFLICT ({keys}) DO {action}",
                marks.join(", ")
            ))?;
            let n = t.primary_key.len();
            let tenant_cond = match tenant_filter {
                Some((_, c)) => format!(" AND {} = ?{}", quote(c), n + 1),
                None => String::new(),
            };
            let key = if step.full {
                self.tx.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS rbac_restore_keys (k TEXT PRIMARY KEY); \
                     DELETE FROM temp.rbac_restore_keys;",
                )?;
                // The key as the table stores it (its columns' affinity may have turned a
                // text into a number), as the delete below reads it.
                Some(self.tx.prepare(&format!(
                    "INSERT OR IGNORE INTO temp.rbac_restore_keys \
                     SELECT {} FROM {table} WHERE {}",
                    key_json(&key_columns),
                    key_match.join(" AND ")
                ))?)
            } else {
                None
            };
            let delete = self.tx.prepare(&format!(
                "DELETE FROM {table} WHERE {}{tenant_cond}",
                key_match.join(" AND ")
            ))?;
            // A key with a NULL part never conflicts: such a row is updated in place, by
            // `IS`, or inserted when there is none (the values bound in column order).
            let by_position = |name: &str| {
                t.columns
                    .iter()
                    .position(|c| c.name == name)
                    .map(|i| format!("?{}", i + 1))
            };
            let key_at: Vec<String> = t
                .primary_key
                .iter()
                .filter_map(|k| Some(format!("{} IS {}", quote(k), by_position(k)?)))
                .collect();
            let sets: Vec<String> = t
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| !t.primary_key.contains(&c.name))
                .map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1))
                .collect();
            let own_tenant = match tenant_filter.and_then(|(_, c)| Some((c, by_position(c)?))) {
                Some((c, at)) => format!(" AND {} = {at}", quote(c)),
                None => String::new(),
            };
            let null_key = NullKey {
                update: if sets.is_empty() {
                    None
                } else {
                    Some(self.tx.prepare(&format!(
                        "UPDATE {table} SET {} WHERE {}{own_tenant}",
                        sets.join(", "),
                        key_at.join(" AND ")
                    ))?)
                },
                exists: self.tx.prepare(&format!(
                    "SELECT 1 FROM {table} WHERE {}",
                    key_match.join(" AND ")
                ))?,
                insert: self.tx.prepare(&format!(
                    "INSERT INTO {table} ({cols}{filler_cols}) VALUES ({}{filler_values})",
                    marks.join(", ")
                ))?,
            };
            Some(Mode::Upsert {
                upsert,
                key,
                delete,
                null_key: Box::new(null_key),
            })
        };
        let row_len = t.columns.len();
        let key_len = t.primary_key.len();
        // The keys that later steps name, which each step of a tenant restore leaves them.
        let leave = self.later_keys && tenant_filter.is_some();
        let leave_held = self.later.get(&t.name).filter(|_| leave);
        let mut leave_spilled = if leave && self.later_spilled {
            Some(self.tx.prepare(
                "SELECT 1 FROM temp.rbac_restore_later WHERE tbl = ?1 AND k = ?2 AND step > ?3",
            )?)
        } else {
            None
        };
        let mut scratch = Vec::new();
        let mut values = Vec::with_capacity(row_len);
        let mut key_values: Vec<Value> = Vec::with_capacity(key_len + 1);
        // A full backup holds every tenant: only this tenant's rows apply. Each record's
        // tenant is looked at first, stepping over its other values, and the record is read
        // in full only when it applies (a small tenant's restore decodes little).
        let only_tenant: Option<Vec<bool>> =
            tenant_index.map(|i| (0..row_len).map(|c| c == i).collect());
        for chunk in chunks {
            let chunk = chunk?;
            let mut reader = codec::Reader::new(&chunk);
            let mut n = 0u64;
            let mut peeked = Vec::with_capacity(row_len);
            loop {
                if let (Some((tn, _)), Some(i), Some(wanted)) =
                    (tenant_filter, tenant_index, &only_tenant)
                {
                    let at = reader.position();
                    match reader.next_ref_only(row_len, key_len, wanted, &mut peeked)? {
                        None => break,
                        Some(codec::ROW) if !peeked.get(i).is_some_and(|v| v.names_tenant(tn)) => {
                            n += 1;
                            continue;
                        }
                        Some(_) => reader.rewind(at),
                    }
                }
                let Some(tag) = reader.next(row_len, key_len, &mut values)? else {
                    break;
                };
                n += 1;
                key_values.clear();
                if tag == codec::ROW {
                    key_values.extend(key_positions.iter().filter_map(|&i| values.get(i).cloned()));
                } else {
                    key_values.extend(values.iter().cloned());
                }
                if leave {
                    scratch.clear();
                    let parts = keyset::owned_key_parts(tag == codec::ROW, &values, &key_positions);
                    if keyset::encode(parts, &mut scratch) {
                        let held =
                            leave_held.is_some_and(|set| set.key_named_after(&scratch, step.index));
                        let spilled = match &mut leave_spilled {
                            Some(lookup) => {
                                lookup.exists((t.name.as_str(), scratch.as_slice(), step.index))?
                            }
                            None => false,
                        };
                        if held || spilled {
                            continue;
                        }
                    }
                }
                match &mut mode {
                    None => {
                        if tag == codec::ROW {
                            report.insert += 1;
                        }
                    }
                    Some(Mode::Dry {
                        lookup, read_real, ..
                    }) => {
                        // Compared in place, without copying the stored row.
                        let found = lookup
                            .query_row(rusqlite::params_from_iter(key_values.iter()), |r| {
                                let mut same = tag == codec::ROW;
                                if same {
                                    for (i, v) in values.iter().enumerate() {
                                        let affinity =
                                            affinities.get(i).copied().unwrap_or(Affinity::Blob);
                                        let mut read = |s: &str| {
                                            read_real.query_row([s], |r| r.get::<_, f64>(0)).ok()
                                        };
                                        if !same_as_stored(v, r.get_ref(i)?, affinity, &mut read) {
                                            same = false;
                                            break;
                                        }
                                    }
                                }
                                let other_tenant = match tenant_filter {
                                    Some((tn, _)) => !stored_tenant_is(r.get_ref(row_len)?, tn),
                                    None => false,
                                };
                                Ok((same, other_tenant))
                            })
                            .optional()?;
                        match (tag, found) {
                            (codec::ROW, None) => report.insert += 1,
                            (codec::ROW, Some((_, true))) => report.conflicts += 1,
                            (codec::ROW, Some((true, false))) => report.unchanged += 1,
                            (codec::ROW, Some((false, false))) => report.replace += 1,
                            (_, Some((_, false))) => report.delete += 1,
                            (_, _) => {}
                        }
                    }
                    Some(Mode::Replace { insert }) => {
                        insert
                            .execute(rusqlite::params_from_iter(values.iter()))
                            .map_err(|e| constraint(&t.name, e))?;
                        report.insert += 1;
                    }
                    Some(Mode::Upsert {
                        upsert,
                        key,
                        delete,
                        null_key,
                    }) => {
                        if tag == codec::ROW {
                            let row = rusqlite::params_from_iter(values.iter());
                            let changed = if key_values.contains(&Value::Null) {
                                let updated = match &mut null_key.update {
                                    Some(update) => {
                                        update.execute(row).map_err(|e| constraint(&t.name, e))?
                                    }
                                    None => 0,
                                };
                                if updated > 0 {
                                    updated
                                } else if null_key
                                    .exists
                                    .exists(rusqlite::params_from_iter(key_values.iter()))?
                                {
                                    // Every column is the key: the row is there already (its
                                    // tenant is part of the key). Else the guard refused it:
                                    // another tenant holds the key.
                                    usize::from(
                                        null_key.update.is_none() || tenant_filter.is_none(),
                                    )
                                } else {
                                    null_key
                                        .insert
                                        .execute(rusqlite::params_from_iter(values.iter()))
                                        .map_err(|e| constraint(&t.name, e))?
                                }
                            } else {
                                upsert.execute(row).map_err(|e| constraint(&t.name, e))?
                            };
                            if changed == 0 && tenant_filter.is_some() {
                                return Err(BackupError::Schema(format!(
                                    "table `{}`: a restored row's key belongs to another tenant; \
                                     nothing was changed",
                                    t.name
                                )));
                            }
                            report.insert += 1;
                            if let Some(key) = key {
                                key.execute(rusqlite::params_from_iter(key_values.iter()))?;
                            }
                        } else {
                            if let Some((tn, _)) = tenant_filter {
                                key_values.push(Value::Text(tn.to_owned()));
                            }
                            report.delete += delete
                                .execute(rusqlite::params_from_iter(key_values.iter()))?
                                as u64;
                        }
                    }
                }
            }
            progress.advance(n);
        }
        match mode {
            Some(Mode::Dry {
                in_scope,
                mut lookup,
                ..
            }) if step.full => {
                // A restore by upsert keeps the tenant's rows that a later step writes (see
                // `later_mine`): they are not deleted.
                let mut kept = 0u64;
                if let (Some((tn, _)), false) = (tenant_filter, t.omitted_columns.is_empty()) {
                    for k in self.later_mine.get(&t.name).into_iter().flatten() {
                        let Some(parts) = keyset::decode(k) else {
                            continue;
                        };
                        let ours = lookup
                            .query_row(rusqlite::params_from_iter(parts.iter()), |r| {
                                Ok(stored_tenant_is(r.get_ref(row_len)?, tn))
                            })
                            .optional()?;
                        if ours == Some(true) {
                            kept += 1;
                        }
                    }
                }
                report.delete = in_scope
                    .saturating_sub(report.replace + report.unchanged)
                    .saturating_sub(kept);
            }
            Some(Mode::Upsert {
                key: Some(mut key), ..
            }) => {
                // The keys that end as the tenant's rows come back in a later step: the table,
                // restored by upsert, keeps their rows (and the secret columns the backup
                // lacks) for it, whether the full backup holds them as the tenant's or not.
                for k in self.later_mine.get(&t.name).into_iter().flatten() {
                    if let Some(parts) = keyset::decode(k) {
                        key.execute(rusqlite::params_from_iter(parts.iter()))?;
                    }
                }
                let keys: Vec<String> = t.primary_key.iter().map(|k| quote(k)).collect();
                let extra = match tenant_filter {
                    Some((_, c)) => format!("{} = ?1 AND ", quote(c)),
                    None => String::new(),
                };
                let sql = format!(
                    "DELETE FROM {table} WHERE {extra}{} NOT IN (SELECT k FROM temp.rbac_restore_keys)",
                    key_json(&keys)
                );
                report.delete += match tenant_filter {
                    Some((tn, _)) => self.tx.execute(&sql, [tn])?,
                    None => self.tx.execute(&sql, [])?,
                } as u64;
            }
            _ => {}
        }
        self.reports.push(report);
        Ok(())
    }

    /// Commits a real restore (foreign keys are checked here); a dry run just ends. The
    /// capture triggers go back first, and the change log gets a mark: the restored rows are
    /// not in it, so the next incremental asks for a full backup.
    pub(crate) fn finish(self) -> Result<Vec<TableReport>, BackupError> {
        if self.dry_run {
            self.tx.rollback()?;
        } else {
            for sql in &self.triggers {
                self.tx.execute_batch(sql)?;
            }
            if table_exists(&self.tx, CHANGES)? {
                self.tx.execute(
                    &format!("INSERT INTO {CHANGES} (tbl, pk, tenant) VALUES (?1, '[]', NULL)"),
                    [RESTORE_MARK],
                )?;
            }
            let after = foreign_key_violations(&self.tx)?;
            let added = after
                .iter()
                .find(|(key, n)| **n > self.violations.get(*key).copied().unwrap_or(0));
            if let Some(((child, parent), n)) = added {
                // Dropping the transaction rolls it back.
                return Err(BackupError::Database(format!(
                    "restore failed at commit, nothing was changed: FOREIGN KEY constraint \
                     failed: {n} row(s) of `{child}` would refer to rows of `{parent}` that do \
                     not exist (restore `{parent}` too, or the rows it refers to)"
                )));
            }
            self.tx.commit().map_err(|e| {
                BackupError::Database(format!(
                    "restore failed at commit, nothing was changed: {e}"
                ))
            })?;
        }
        Ok(self.reports)
    }
}

/// Whether the restore would store `v` in a column of `affinity` as `stored` is, byte for
/// byte (`read_real`: SQLite's reading of a real literal).
fn same_as_stored(
    v: &Value,
    stored: ValueRef<'_>,
    affinity: Affinity,
    read_real: &mut dyn FnMut(&str) -> Option<f64>,
) -> bool {
    stored_exactly(v, stored)
        || affinity
            .converts(v, read_real)
            .is_some_and(|c| stored_exactly(&c, stored))
}

/// Whether a backed-up value equals a stored one exactly (reals bit for bit).
fn stored_exactly(v: &Value, stored: ValueRef<'_>) -> bool {
    match (v, stored) {
        (Value::Null, ValueRef::Null) => true,
        (Value::Int(a), ValueRef::Integer(b)) => *a == b,
        (Value::Real(a), ValueRef::Real(b)) => a.to_bits() == b.to_bits(),
        (Value::Text(a), ValueRef::Text(b)) => a.as_bytes() == b,
        (Value::RawText(a), ValueRef::Text(b)) => a.as_slice() == b,
        (Value::Blob(a), ValueRef::Blob(b)) => a.as_slice() == b,
        _ => false,
    }
}

/// Whether a stored tenant column value names tenant `tn`.
fn stored_tenant_is(stored: ValueRef<'_>, tn: &str) -> bool {
    match stored {
        ValueRef::Text(b) => b == tn.as_bytes(),
        ValueRef::Integer(i) => codec::names_integer(tn, i),
        _ => false,
    }
}

/// Creates the tables of a full restore that the target lacks, all before any row is
/// written (so foreign keys between them resolve).
fn create_missing(conn: &Connection, tables: &[&TableManifest]) -> Result<(), BackupError> {
    for t in tables {
        if !table_exists(conn, &t.name)? {
            let create = t.create_sql.clone().unwrap_or_else(|| generic_create(t));
            conn.execute_batch(&create)?;
        }
    }
    Ok(())
}

/// A table definition that stores any value as given (no type affinity), for targets that
/// lack the table and a backup without its `CREATE TABLE` (e.g. from PostgreSQL).
pub(crate) fn generic_create(t: &TableManifest) -> String {
    let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let keys: Vec<String> = t.primary_key.iter().map(|k| quote(k)).collect();
    format!(
        "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
        quote(&t.name),
        cols.join(", "),
        keys.join(", ")
    )
}

/// Rows in a table (for deep verification).
pub(crate) fn count_rows(conn: &Connection, table: &str) -> Result<u64, BackupError> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
        r.get(0)
    })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::codec::names_integer;

    #[test]
    fn an_integer_tenant_matches_its_decimal_text_only() {
        for i in [0, 7, -1, 42_000, i64::MAX, i64::MIN] {
            assert!(names_integer(&i.to_string(), i), "{i}");
            assert!(!names_integer(&format!("{i}0"), i), "{i}");
        }
        assert!(!names_integer("007", 7));
        assert!(!names_integer("+7", 7));
        assert!(!names_integer("", 0));
        assert!(!names_integer("7", 8));
    }
}
