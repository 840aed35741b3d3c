//! The PostgreSQL data path. Backups read every table in one `REPEATABLE READ, READ ONLY`
//! transaction (one snapshot) with `COPY ... TO STDOUT` in text form, streamed: the rows are
//! turned into chunk records on a blocking thread (each value as text, exactly what `col::text`
//! gives: columns whose cast to text is a function, such as `boolean` or `inet`, are cast in
//! the `COPY (SELECT ...)`), compressed, sealed and uploaded while the next rows arrive. The
//! chunk format is the same as for SQLite, so verify, deep verify (into SQLite) and restores of
//! older backups are unchanged. Restores run in one transaction with `session_replication_role
//! = replica` so that foreign keys and triggers do not depend on table order (as `pg_restore
//! --disable-triggers` does; it needs a role allowed to set it, e.g. the table owner with
//! superuser rights); full steps stream the records back with `COPY ... FROM STDIN` (into the
//! table after deleting the scope's rows, or, for tables with secret columns, into a staging
//! table that is then upserted so the secrets in place are kept), incremental steps and dry
//! runs go row by row with a cast to the column's type (`$1::numeric(10,2)`). Incrementals use
//! the same change log design as SQLite (triggers writing table, key and tenant), plus the
//! writing transaction id, so that an incremental takes exactly the changes its parent's
//! snapshot did not see (`pg_visible_in_snapshot`), whatever the commit order.

mod copy;
mod counts;
mod later;
mod since;

pub(crate) use since::{MAX_CHANGED_KEYS, database_identity};

use super::keyset::{self, KeySet};
use counts::{Counted, ScopeCounts};
use later::LaterKeys;

use std::sync::Arc;

use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

use tokio::sync::mpsc;

use super::chunk::{self, ChunkWriter, Outgoing, UPLOAD_QUEUE};
use super::codec::{self, Value};
use super::crypto::DataKey;
use super::log::{LogEntry, LogQuery, Outcome, Status};
use super::model::{BackupError, BackupId, Manifest, Operation, Scope, TableManifest};
use super::plan::{TableDef, quote};
use super::progress::Progress;
use super::sqlite::TableReport;
use super::storage::Storage;

pub(crate) async fn connect(url: &str) -> Result<PgConnection, BackupError> {
    PgConnection::connect(url).await.map_err(|e| {
        BackupError::Database(format!(
            "cannot connect to `{}`: {e}",
            url.rsplit('@').next().unwrap_or_default()
        ))
    })
}

/// Every table of the current schema with its columns (and their SQL types) and key.
pub(crate) async fn tables(conn: &mut PgConnection) -> Result<Vec<TableDef>, BackupError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
         AND NOT c.relispartition ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for name in names {
        let qualified = quote(&name);
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )
        .bind(&qualified)
        .fetch_all(&mut *conn)
        .await?;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord",
        )
        .bind(&qualified)
        .fetch_all(&mut *conn)
        .await?;
        out.push(TableDef {
            name,
            columns,
            primary_key: keys,
            create_sql: None,
        });
    }
    Ok(out)
}

/// The change log written by the capture triggers (same name and role as on SQLite).
pub(crate) const CHANGES: &str = "rbac_backup_changes";

/// Column types whose values survive `to_jsonb` and `jsonb_populate_record` exactly, whatever
/// the writing session's settings (dates and times are written in ISO 8601, numerics as
/// decimal, `bytea` in either output form reads back the same). Floats (`extra_float_digits`
/// can drop digits, and `-0` becomes `0`), `json` (its text is not kept), `jsonb` (a JSON
/// `null` comes back as SQL NULL), intervals, arrays (their bounds are lost), domains, enums
/// and other types are not on the list.
fn survives_json(decl_type: &str) -> bool {
    // `format_type` spells a type as `numeric(12,2)`, `timestamp(3) with time zone`,
    // `integer[]`: compare the name without its modifier.
    let name = match decl_type.split_once('(') {
        Some((head, rest)) => match rest.split_once(')') {
            Some((_, tail)) => format!("{head}{tail}"),
            None => return false,
        },
        None => decl_type.to_owned(),
    };
    matches!(
        name.as_str(),
        "smallint"
            | "integer"
            | "bigint"
            | "numeric"
            | "text"
            | "character varying"
            | "character"
            | "boolean"
            | "date"
            | "timestamp without time zone"
            | "timestamp with time zone"
            | "time without time zone"
            | "uuid"
            | "bytea"
    )
}

/// Whether the capture trigger of `t` keeps each new row's image in the change log, so an
/// incremental reads the log alone instead of looking every changed row up in the table
/// (random heap pages: most of an incremental's time after changes spread over a big
/// table). Only when every backed-up column's type survives the JSON round trip, and the
/// names can be passed to the trigger.
fn keeps_images(t: &TableManifest) -> bool {
    t.columns.iter().all(|c| survives_json(&c.decl_type))
        && !t
            .primary_key
            .iter()
            .chain(&t.omitted_columns)
            .any(|n| n.contains(','))
}

/// Gives a change log from before row images their two columns (its entries have none, and
/// are read from the table, as then). Only when missing: the `ALTER` locks the log, and so
/// every writer, for as long as it waits.
/// One of `tables` that the change log marks with `mark` (`*truncate*`, `*recapture*`) after
/// the snapshot `parent`, if any.
async fn marked_since(
    conn: &mut PgConnection,
    mark: &str,
    parent: &str,
    tables: &[String],
) -> Result<Option<String>, BackupError> {
    Ok(sqlx::query_scalar(
        "SELECT pk FROM rbac_backup_changes WHERE tbl = $3 \
         AND pk = ANY($2) AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot) LIMIT 1",
    )
    .bind(parent)
    .bind(tables)
    .bind(mark)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Whether `table` has this version's capture: its row trigger enabled (in every session,
/// not only replicas) with the table's name as fifth argument, and its `TRUNCATE` trigger.
pub(crate) async fn captured(conn: &mut PgConnection, table: &str) -> Result<bool, BackupError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) = 2 FROM pg_trigger WHERE tgrelid = to_regclass($1) \
         AND tgenabled IN ('O', 'A') AND ((tgname = 'rbac_backup_capture' AND tgnargs >= 5) \
           OR tgname = 'rbac_backup_truncate')",
    )
    .bind(quote(table))
    .fetch_one(&mut *conn)
    .await?)
}

/// Whether the change log table is there (a database restored from elsewhere, or one whose
/// log was dropped, has none: an incremental then needs a full backup first).
pub(crate) async fn has_change_log(conn: &mut PgConnection) -> Result<bool, BackupError> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('rbac_backup_changes') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?,
    )
}

pub(crate) async fn add_image_columns(conn: &mut PgConnection) -> Result<(), BackupError> {
    let has_images: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute \
         WHERE attrelid = 'rbac_backup_changes'::regclass AND attname = 'image')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !has_images {
        sqlx::raw_sql(
            "ALTER TABLE rbac_backup_changes \
             ADD COLUMN has_image BOOLEAN NOT NULL DEFAULT false, ADD COLUMN image JSONB",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Installs the change-capture triggers on `tables` (idempotent): after each row insert,
/// update or delete, one row (two when an update changes the key or tenant) goes to the
/// change log with the writing transaction's id, so an incremental can take exactly the
/// changes its parent's snapshot did not see. For tables where [`keeps_images`] holds, the
/// row written for the new key also carries the new row as JSON (secret columns removed),
/// and the one written for a deleted key says it is gone.
pub(crate) async fn install_capture(
    conn: &mut PgConnection,
    tables: &[TableManifest],
) -> Result<(), BackupError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(1919050340)")
        .execute(&mut *tx)
        .await?;
    // A first install leaves no marks: no chain can have started before it.
    let had_log = has_change_log(&mut tx).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS rbac_backup_changes (seq BIGSERIAL PRIMARY KEY, \
           tbl TEXT NOT NULL, pk TEXT NOT NULL, tenant TEXT, \
           xid xid8 NOT NULL DEFAULT pg_current_xact_id(), \
           has_image BOOLEAN NOT NULL DEFAULT false, image JSONB)",
    )
    .execute(&mut *tx)
    .await?;
    add_image_columns(&mut tx).await?;
    sqlx::raw_sql(
        "CREATE INDEX IF NOT EXISTS rbac_backup_changes_tbl_seq ON rbac_backup_changes (tbl, seq);
         CREATE OR REPLACE FUNCTION rbac_backup_capture() RETURNS trigger LANGUAGE plpgsql AS $f$
         DECLARE
           keys text[] := string_to_array(TG_ARGV[0], ',');
           tcol text := NULLIF(TG_ARGV[1], '');
           images boolean := TG_NARGS > 2 AND TG_ARGV[2] = 'images';
           secret text[] := CASE WHEN TG_NARGS > 3 THEN string_to_array(TG_ARGV[3], ',') ELSE '{}' END;
           -- The backed-up table's name: on a partition, TG_TABLE_NAME is the partition's.
           tname text := CASE WHEN TG_NARGS > 4 THEN TG_ARGV[4] ELSE TG_TABLE_NAME END;
           r jsonb; o jsonb; nk jsonb := '[]'; ok jsonb := '[]'; k text;
         BEGIN
           IF TG_OP IN ('INSERT', 'UPDATE') THEN
             r := to_jsonb(NEW);
             FOREACH k IN ARRAY keys LOOP nk := nk || jsonb_build_array(r -> k); END LOOP;
           END IF;
           -- The old key first: when only the tenant changed, the new row's entry (same key)
           -- is then the later one, which is what a backup of every tenant takes.
           IF TG_OP IN ('UPDATE', 'DELETE') THEN
             o := to_jsonb(OLD);
             FOREACH k IN ARRAY keys LOOP ok := ok || jsonb_build_array(o -> k); END LOOP;
             IF TG_OP = 'DELETE' OR ok IS DISTINCT FROM nk
                OR (tcol IS NOT NULL AND (o ->> tcol) IS DISTINCT FROM (r ->> tcol)) THEN
               INSERT INTO rbac_backup_changes (tbl, pk, tenant, has_image)
                 VALUES (tname, ok::text, CASE WHEN tcol IS NULL THEN NULL ELSE o ->> tcol END, images);
             END IF;
           END IF;
           IF TG_OP IN ('INSERT', 'UPDATE') THEN
             INSERT INTO rbac_backup_changes (tbl, pk, tenant, has_image, image)
               VALUES (tname, nk::text, CASE WHEN tcol IS NULL THEN NULL ELSE r ->> tcol END,
                       images, CASE WHEN images THEN r - secret END);
           END IF;
           RETURN NULL;
         END $f$;
         -- A TRUNCATE fires no row trigger: it leaves a mark, and the next incremental of the
         -- table needs a full backup.
         CREATE OR REPLACE FUNCTION rbac_backup_truncated() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           INSERT INTO rbac_backup_changes (tbl, pk) VALUES ('*truncate*', TG_ARGV[0]);
           RETURN NULL;
         END $f$;",
    )
    .execute(&mut *tx)
    .await?;
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    for t in tables {
        // A table whose capture was missing, disabled or outdated (created again since, or
        // the trigger of an older version) may have changed unlogged: a mark says so to every
        // chain that started before it, whose next incremental then needs a full backup.
        if had_log && !captured(&mut tx, &t.name).await? {
            sqlx::query("INSERT INTO rbac_backup_changes (tbl, pk) VALUES ('*recapture*', $1)")
                .bind(&t.name)
                .execute(&mut *tx)
                .await?;
        }
        let images = if keeps_images(t) { "images" } else { "" };
        let sql = format!(
            "CREATE OR REPLACE TRIGGER rbac_backup_capture AFTER INSERT OR UPDATE OR DELETE ON {} \
             FOR EACH ROW EXECUTE FUNCTION rbac_backup_capture({}, {}, {}, {}, {})",
            quote(&t.name),
            lit(&t.primary_key.join(",")),
            lit(t.tenant_column.as_deref().unwrap_or_default()),
            lit(images),
            lit(&t.omitted_columns.join(",")),
            lit(&t.name),
        );
        run(&mut tx, sql).await?;
        // On a partitioned table, on each partition too: statement triggers are not cloned
        // to partitions, and `TRUNCATE parts_2023` fires only those of the partition.
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT relid::regclass::text FROM pg_partition_tree($1::regclass) \
             WHERE relid <> $1::regclass",
        )
        .bind(quote(&t.name))
        .fetch_all(&mut *tx)
        .await?;
        let own = std::iter::once(quote(&t.name));
        for on in own.chain(partitions) {
            let sql = format!(
                "CREATE OR REPLACE TRIGGER rbac_backup_truncate AFTER TRUNCATE ON {on} \
                 FOR EACH STATEMENT EXECUTE FUNCTION rbac_backup_truncated({})",
                lit(&t.name),
            );
            run(&mut tx, sql).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Where a backup's chunks go: the backup they belong to, their compression level and data
/// key, the storage that receives them, and who hears of progress.
pub(crate) struct ChunkSink<'a> {
    pub(crate) backup: &'a BackupId,
    pub(crate) level: i32,
    pub(crate) key: Option<Arc<DataKey>>,
    pub(crate) storage: &'a Storage,
    pub(crate) progress: &'a dyn Progress,
}

/// Reads `tables` in one snapshot into chunks, uploading each as it is finished. With
/// `since` (the parent's snapshot), reads only the rows changed since, and deletes. Returns
/// the chunks and this snapshot (`pg_current_snapshot()`, for the next incremental).
pub(crate) async fn read_snapshot(
    conn: &mut PgConnection,
    tables: &mut [TableManifest],
    tenant: Option<&str>,
    since: Option<&str>,
    sink: &ChunkSink<'_>,
) -> Result<(Vec<super::ChunkInfo>, String), BackupError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // The first query fixes the snapshot for everything below.
    let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
        .fetch_one(&mut *tx)
        .await?;
    let chunks = match since {
        None => read_full(&mut tx, tables, tenant, sink).await?,
        Some(parent) => {
            let restored: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM rbac_backup_changes WHERE tbl = '*restore*' \
                 AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot))",
            )
            .bind(parent)
            .fetch_one(&mut *tx)
            .await?;
            if restored {
                return Err(BackupError::NeedsFull(
                    "the database was restored since the parent backup".into(),
                ));
            }
            let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
            if let Some(table) = marked_since(&mut tx, "*truncate*", parent, &names).await? {
                return Err(BackupError::NeedsFull(format!(
                    "`{table}` was truncated since the parent backup"
                )));
            }
            // Changes reach the log only through the capture triggers: a table rebuilt (dropped
            // and created again with the same shape) or whose trigger was disabled records
            // none, and its incrementals would be empty; nor did it while another scope's full
            // backup had not yet put the capture back (its mark).
            let mut uncaptured = marked_since(&mut tx, "*recapture*", parent, &names).await?;
            for t in tables.iter() {
                if uncaptured.is_some() {
                    break;
                }
                if !captured(&mut tx, &t.name).await? {
                    uncaptured = Some(t.name.clone());
                }
            }
            if let Some(table) = uncaptured {
                return Err(BackupError::NeedsFull(format!(
                    "`{table}` has no enabled change capture of this version since the parent \
                     backup (created again, its trigger disabled, or an older version's)"
                )));
            }
            read_changes(&mut tx, tables, tenant, parent, sink).await?
        }
    };
    tx.commit().await?;
    Ok((chunks, snapshot))
}

/// Raw COPY bytes handed to the encoder at a time.
const FEED_BATCH: usize = 256 * 1024;
/// Batches waiting for the encoder.
const FEED_QUEUE: usize = 4;

/// What the COPY reader hands to the encoder thread.
enum Feed {
    /// The next table: its name, column count, and where its tenant column is (its rows
    /// are grouped by tenant in each chunk).
    Table(String, usize, Option<usize>),
    /// COPY text rows of the current table (a batch may end inside a row).
    Data(Vec<u8>),
    /// The current table's rows are complete.
    End,
}

/// The `COPY ... TO STDOUT` statement reading `t` (the tenant's rows only, with `tenant`):
/// each column in the text form `col::text` gives. For most types that is the output
/// function COPY uses anyway; columns whose cast to text is a function (`boolean` gives
/// `true`, `inet` keeps its mask, `character(n)` is trimmed, ...), also through domains, are
/// cast explicitly so the stored text is exactly what the row-by-row path stored.
async fn copy_out_sql(
    tx: &mut PgConnection,
    t: &TableManifest,
    tenant: Option<&str>,
) -> Result<String, BackupError> {
    let info: Vec<(String, bool)> = sqlx::query_as(
        "WITH RECURSIVE cols AS ( \
           SELECT a.attnum, a.attname::text AS name, a.atttypid AS ty FROM pg_attribute a \
           WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped), \
         chain AS ( \
           SELECT attnum, ty FROM cols \
           UNION ALL SELECT c.attnum, y.typbasetype FROM chain c JOIN pg_type y ON y.oid = c.ty \
           WHERE y.typtype = 'd') \
         SELECT c.name, EXISTS (SELECT 1 FROM chain h JOIN pg_cast k ON k.castsource = h.ty \
           WHERE h.attnum = c.attnum AND k.casttarget = 'text'::regtype AND k.castmethod = 'f') \
         FROM cols c",
    )
    .bind(quote(&t.name))
    .fetch_all(&mut *tx)
    .await?;
    let plain_table: bool =
        sqlx::query_scalar("SELECT relkind = 'r' FROM pg_class WHERE oid = $1::regclass")
            .bind(quote(&t.name))
            .fetch_one(&mut *tx)
            .await?;
    let mut cast_any = false;
    let exprs: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let cast = info.iter().any(|(n, cast)| *n == c.name && *cast);
            cast_any |= cast;
            if cast {
                format!("t.{}::text", quote(&c.name))
            } else {
                format!("t.{}", quote(&c.name))
            }
        })
        .collect();
    let filter = match (tenant, &t.tenant_column) {
        (Some(tn), Some(c)) => {
            // COPY takes no parameters: the server quotes the literal.
            let literal: String = sqlx::query_scalar("SELECT quote_literal($1::text)")
                .bind(tn)
                .fetch_one(&mut *tx)
                .await?;
            Some(format!(" WHERE t.{}::text = {literal}", quote(c)))
        }
        _ => None,
    };
    let table = quote(&t.name);
    Ok(match filter {
        None if plain_table && !cast_any => {
            let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
            format!("COPY {table} ({}) TO STDOUT", cols.join(", "))
        }
        filter => format!(
            "COPY (SELECT {} FROM {table} AS t{}) TO STDOUT",
            exprs.join(", "),
            filter.unwrap_or_default()
        ),
    })
}

/// A full read: each table through `COPY ... TO STDOUT`, streamed to an encoder thread that
/// cuts records into chunks, compresses and seals them, while finished chunks are uploaded.
/// Memory: a few [`FEED_BATCH`]es, one chunk being filled and [`UPLOAD_QUEUE`] chunks.
async fn read_full(
    tx: &mut PgConnection,
    tables: &mut [TableManifest],
    tenant: Option<&str>,
    sink: &ChunkSink<'_>,
) -> Result<Vec<super::ChunkInfo>, BackupError> {
    let ChunkSink {
        backup,
        level,
        storage,
        progress,
        ..
    } = *sink;
    let key = sink.key.clone();
    let mut statements = Vec::with_capacity(tables.len());
    for t in tables.iter() {
        statements.push(copy_out_sql(tx, t, tenant).await?);
    }
    let (feed_tx, mut feed_rx) = mpsc::channel::<Feed>(FEED_QUEUE);
    let (out_tx, out_rx) = mpsc::channel::<Outgoing>(UPLOAD_QUEUE);
    let owned_id = backup.clone();
    let encoder = tokio::task::spawn_blocking(move || {
        // Compression, sealing and hashing run on the writer's own thread, beside decoding.
        let encode = |writer: &mut ChunkWriter<'_>| {
            let (mut counts, mut columns) = (Vec::new(), 0usize);
            let (mut carry, mut scratch) = (Vec::new(), Vec::new());
            while let Some(feed) = feed_rx.blocking_recv() {
                match feed {
                    Feed::Table(name, n, tenant_column) => {
                        writer.begin_table_by_tenant(&name, tenant_column)?;
                        columns = n;
                        counts.push(0u64);
                    }
                    Feed::Data(data) => {
                        let data = if carry.is_empty() {
                            data
                        } else {
                            let mut joined = std::mem::take(&mut carry);
                            joined.extend_from_slice(&data);
                            joined
                        };
                        let (rows, used) = copy::encode_rows(&data, columns, writer, &mut scratch)?;
                        carry.extend_from_slice(data.get(used..).unwrap_or_default());
                        if let Some(c) = counts.last_mut() {
                            *c += rows;
                        }
                    }
                    Feed::End => {
                        if !carry.is_empty() {
                            return Err(BackupError::Database(
                                "COPY data ended inside a row".into(),
                            ));
                        }
                    }
                }
            }
            Ok::<_, BackupError>(counts)
        };
        ChunkWriter::pipelined(owned_id, level, key.as_deref(), out_tx, 0, encode)
            .map(|(counts, chunks)| (chunks, counts))
    });
    let stopped = || BackupError::Database("the backup encoder stopped".into());
    let names: Vec<(String, usize, Option<usize>)> = tables
        .iter()
        .map(|t| (t.name.clone(), t.columns.len(), t.tenant_position()))
        .collect();
    let read = async move {
        for ((name, columns, tenant_column), sql) in names.into_iter().zip(&statements) {
            progress.phase(&format!("table {name}"), None);
            feed_tx
                .send(Feed::Table(name, columns, tenant_column))
                .await
                .map_err(|_| stopped())?;
            let mut stream = tx.copy_out_raw(sql).await?;
            let mut batch = Vec::with_capacity(FEED_BATCH + 64 * 1024);
            let mut messages = 0u64;
            while let Some(bytes) = stream.try_next().await? {
                batch.extend_from_slice(&bytes);
                // The server sends one message per row.
                messages += 1;
                if batch.len() >= FEED_BATCH {
                    let full =
                        std::mem::replace(&mut batch, Vec::with_capacity(FEED_BATCH + 64 * 1024));
                    feed_tx
                        .send(Feed::Data(full))
                        .await
                        .map_err(|_| stopped())?;
                    progress.advance(std::mem::take(&mut messages));
                }
            }
            if !batch.is_empty() {
                feed_tx
                    .send(Feed::Data(batch))
                    .await
                    .map_err(|_| stopped())?;
            }
            progress.advance(messages);
            feed_tx.send(Feed::End).await.map_err(|_| stopped())?;
        }
        Ok::<_, BackupError>(())
    };
    let upload = async move {
        let mut out_rx = out_rx;
        while let Some(c) = out_rx.recv().await {
            storage.put(backup, &c.name, c.data).await?;
        }
        Ok::<_, BackupError>(())
    };
    let (read, upload) = tokio::join!(read, upload);
    let encoded = encoder
        .await
        .map_err(|e| BackupError::Database(format!("the backup encoder stopped: {e}")))?;
    // The first cause wins: a failed upload stops the encoder, which stops the reader.
    upload?;
    let (chunks, counts) = encoded?;
    read?;
    if counts.len() != tables.len() {
        return Err(stopped());
    }
    for (t, rows) in tables.iter_mut().zip(counts) {
        t.rows = rows;
        t.deleted = 0;
    }
    Ok(chunks)
}

/// An incremental read: the rows changed since `parent` (a snapshot) and the deletes, row by
/// row (they are few), each column as `col::text`.
async fn read_changes(
    tx: &mut PgConnection,
    tables: &mut [TableManifest],
    tenant: Option<&str>,
    parent: &str,
    sink: &ChunkSink<'_>,
) -> Result<Vec<super::ChunkInfo>, BackupError> {
    let ChunkSink {
        backup,
        level,
        storage,
        progress,
        ..
    } = *sink;
    let key = sink.key.as_deref();
    let mut writer = ChunkWriter::pending(backup.clone(), level, key);
    for t in tables.iter_mut() {
        writer.begin_table(&t.name)?;
        progress.phase(&format!("table {}", t.name), None);
        let k = t.primary_key.len();
        let tenant_col = match (tenant, &t.tenant_column) {
            (Some(_), Some(c)) => Some(quote(c)),
            _ => None,
        };
        // A deleted key as its columns' text, as a row's key is written (`to_jsonb` spells
        // some types otherwise, timestamps for one): a later step's delete then names the
        // same key as an earlier step's row.
        let key_text: Vec<String> = (0..k)
            .map(|i| format!("({})::text", since::logged_key(t, i, "c.pk")))
            .collect();
        let join: Vec<String> = t
            .primary_key
            .iter()
            .enumerate()
            .map(|(i, col)| format!("t.{} = {}", quote(col), since::logged_key(t, i, "c.pk")))
            .collect();
        let (tenant_changes, tenant_join) = match &tenant_col {
            Some(c) => (
                " AND tenant = $3".to_owned(),
                format!(" AND t.{c}::text = $3"),
            ),
            None => (String::new(), String::new()),
        };
        // Each changed key's latest log entry: its image when it has one (NULL: the key is
        // gone), else the row as the table holds it in this snapshot. The table is only
        // looked up for entries without an image (the one-time filter `NOT c.has_image`).
        let columns: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                let c = quote(&c.name);
                format!("CASE WHEN c.has_image THEN i.{c}::text ELSE t.{c}::text END")
            })
            .collect();
        let sql = format!(
            "SELECT {keys}, CASE WHEN c.has_image THEN c.image IS NOT NULL \
             ELSE t.{first} IS NOT NULL END, {columns} \
             FROM (SELECT DISTINCT ON (pk) pk, has_image, image FROM {CHANGES} \
             WHERE tbl = $1 AND NOT pg_visible_in_snapshot(xid, $2::pg_snapshot){tenant_changes} \
             ORDER BY pk, seq DESC) AS c \
             LEFT JOIN LATERAL jsonb_populate_record(NULL::{table}, c.image) AS i ON true \
             LEFT JOIN LATERAL (SELECT * FROM {table} AS t WHERE NOT c.has_image AND {join}\
             {tenant_join} OFFSET 0) AS t ON true \
             ORDER BY {present}",
            // Deletes first: a restore applies the records in order, and a row may have
            // taken the unique value of one deleted since.
            present = key_text.len() + 1,
            keys = key_text.join(", "),
            first = quote(&t.primary_key[0]),
            columns = columns.join(", "),
            table = quote(&t.name),
            join = join.join(" AND "),
        );
        let (mut rows_n, mut deletes) = (0u64, 0u64);
        {
            let mut query = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(t.name.as_str())
                .bind(parent);
            if tenant_col.is_some() {
                query = query.bind(tenant.unwrap_or_default());
            }
            let mut rows = query.fetch(&mut *tx);
            let offset = k + 1;
            while let Some(row) = rows.try_next().await? {
                if row.try_get::<bool, _>(k)? {
                    writer.buf.push(codec::ROW);
                    for i in 0..t.columns.len() {
                        match row.try_get::<Option<String>, _>(offset + i)? {
                            Some(s) => codec::put_text(&mut writer.buf, s.as_bytes()),
                            None => codec::put_null(&mut writer.buf),
                        }
                    }
                    rows_n += 1;
                } else {
                    writer.buf.push(codec::DELETE);
                    for i in 0..k {
                        match row.try_get::<Option<String>, _>(i)? {
                            Some(s) => codec::put_text(&mut writer.buf, s.as_bytes()),
                            None => codec::put_null(&mut writer.buf),
                        }
                    }
                    deletes += 1;
                }
                writer.record_done()?;
                for c in writer.take_pending() {
                    storage.put(backup, &c.name, c.data).await?;
                }
            }
        }
        progress.advance(rows_n + deletes);
        t.rows = rows_n;
        t.deleted = deletes;
    }
    writer.flush()?;
    for c in writer.take_pending() {
        storage.put(backup, &c.name, c.data).await?;
    }
    Ok(writer.chunks)
}

fn bind_value<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    v: &'q Value,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    match v {
        Value::Text(s) => q.bind(s.as_str()),
        other => q.bind(value_text(other)),
    }
}

/// A value as the text a statement binds for it (cast to the column's type there), or None
/// for NULL.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Real(r) => Some(r.to_string()),
        Value::Blob(b) => Some(format!("\\x{}", hex::encode(b))),
        Value::RawText(b) => Some(String::from_utf8_lossy(b).into_owned()),
    }
}

fn is_tenant(v: &Value, tn: &str) -> bool {
    v.as_ref().names_tenant(tn)
}

/// Restores (or compares, for a dry run) a chain (a full backup, then incrementals) into
/// `url` in one transaction. `tables` are the tables to restore (from the full backup).
pub(crate) async fn restore(
    url: &str,
    steps: Chain<'_>,
    scope: &RestoreScope<'_>,
    storage: &Storage,
    progress: &dyn Progress,
) -> Result<Vec<TableReport>, BackupError> {
    let Chain {
        manifests: chain,
        keys,
    } = steps;
    let RestoreScope {
        tables,
        tenant,
        dry_run,
        later_keys_in_memory,
        shortcuts,
        changed_keys_at_most,
    } = *scope;
    let mut conn = connect(url).await?;
    let mut tx = conn.begin().await?;
    if dry_run {
        // One snapshot for every query of the dry run: its counts add up while others write
        // (and a second connection can count in it).
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    let mut xmin = String::new();
    let mut dry_stages = Vec::new();
    let mut baseline = None;
    // A tenant restore of a chain: each step leaves the keys that later steps name to them
    // (see `later`), in a dry run as in a real restore.
    let later = if let Some(tenant) = tenant {
        LaterKeys::read(
            &mut tx,
            steps.after_full(),
            tables,
            storage,
            later_keys_in_memory,
            // A table with secret columns is restored by upsert, and keeps the rows that
            // later steps give the tenant (their secrets are not in the backup).
            (
                tenant,
                dry_run || tables.iter().any(|t| !t.omitted_columns.is_empty()),
            ),
        )
        .await?
    } else {
        LaterKeys::None
    };
    if dry_run {
        if shortcuts && let Some(last) = chain.last() {
            baseline = since::baseline(&mut tx, last, tenant).await?;
        }
        // With later steps, the database holds their version of the keys they name. A
        // restore of everything compares the full step's rows of those keys too: the
        // temporary table of `later` holds them, for the query of changed keys. A tenant's
        // full step leaves them; of those, the keys the later steps give the tenant count as
        // changed in the database. A baseline that covers none of the tables (the mark of a
        // restore of other tables) is of no use: staging the keys for it would be work for
        // nothing.
        if chain.len() > 1
            && let Some(b) = baseline.take()
            && tables.iter().any(|t| b.covers(&t.name))
        {
            baseline = Some(match (later.mine(), later.staged()) {
                // A tenant's: its full step leaves the later keys.
                (Some(mine), _) => b.with_later_keys_left(mine.clone()),
                (None, true) => b.with_later_keys_left_staged(),
                (None, false) => {
                    later::stage(&mut tx, steps.after_full(), tables, storage, tenant).await?;
                    b.with_later_keys()
                }
            });
        }
        // The full step of a dry run is compared in bulk: its rows are copied into temporary
        // tables made now, before the transaction turns read-only (which still allows
        // writing temporary tables, not creating them). Rolled back at the end.
        if let Some(first) = chain.first() {
            dry_stages = dry_run_stages(&mut tx, first, tables).await?;
        }
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
    } else {
        // Where this restore starts: transactions from here on may write after it (the mark it
        // leaves in the change log says so, for fast dry runs of this backup later).
        xmin = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                BackupError::Database(format!(
                    "a PostgreSQL restore needs a role that may set session_replication_role: {e}"
                ))
            })?;
    }
    let existing = tables_in(&mut tx).await?;
    // A dry run counts the rows of the full step's tables in scope on a second connection,
    // meanwhile.
    let counts = match chain.first() {
        Some(first) if dry_run => {
            let counted = tables
                .iter()
                .filter_map(|wanted| first.tables.iter().find(|x| x.name == wanted.name))
                .filter(|t| {
                    existing.contains(&t.name) && (tenant.is_none() || t.tenant_column.is_some())
                })
                .map(|t| Counted {
                    table: t.name.clone(),
                    tenant_column: tenant.and(t.tenant_column.clone()),
                })
                .collect();
            ScopeCounts::start(&mut tx, url, counted, tenant).await?
        }
        _ => ScopeCounts::none(),
    };
    let mut reports = Vec::new();
    for (step, m) in chain.iter().enumerate() {
        let full = step == 0;
        let source = Step {
            m: Arc::new(m.clone()),
            key: keys.get(step).cloned().flatten(),
            storage,
            progress,
        };
        for wanted in tables {
            let Some(t) = m.tables.iter().find(|x| x.name == wanted.name) else {
                continue;
            };
            let stage = if full {
                dry_stages
                    .iter()
                    .find(|(table, _)| *table == t.name)
                    .map(|(_, stage)| stage.as_str())
            } else {
                None
            };
            let apply = Apply {
                full,
                step: u32::try_from(step).unwrap_or(u32::MAX),
                later_steps: step + 1 < chain.len(),
                dry_run,
                later_keys_staged: later.staged(),
                leave: later.of(&t.name),
                ends_mine: later
                    .mine()
                    .and_then(|mine| mine.get(&t.name))
                    .map(Vec::as_slice),
                dry_stage: stage,
                baseline: baseline.as_ref(),
                empty_shortcut: shortcuts,
                changed_keys_at_most,
                counts: &counts,
            };
            let report = restore_table(&mut tx, &existing, &source, t, tenant, &apply).await?;
            if let Some(report) = report {
                reports.push(report);
            }
        }
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        if existing.iter().any(|t| t == CHANGES) {
            // Restored rows bypass the capture triggers: mark the change log so that the next
            // incremental refuses and asks for a full backup. The mark says what was restored,
            // so that a dry run of the same backup knows which rows are still the backup's.
            let mut restored: Vec<String> = reports.iter().map(|r| r.table.clone()).collect();
            restored.sort();
            restored.dedup();
            let mark = since::RestoreMark {
                backup: chain.last().map(|m| m.id.to_string()).unwrap_or_default(),
                tenant: tenant.map(str::to_owned),
                tables: restored,
                xmin,
            };
            let mark = serde_json::to_string(&mark)
                .map_err(|e| BackupError::Database(format!("restore mark: {e}")))?;
            sqlx::query("INSERT INTO rbac_backup_changes (tbl, pk) VALUES ('*restore*', $1)")
                .bind(mark)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.map_err(|e| {
            BackupError::Database(format!(
                "restore failed at commit, nothing was changed: {e}"
            ))
        })?;
    }
    Ok(reports)
}

/// The omitted (secret) columns of `t` that the target declares NOT NULL without a default,
/// each with an empty value of its type (`''`, `0`, `false`, `'\x'`, `'{}'`): a restored row
/// new to the table needs one; an existing row keeps its secret (the upsert leaves it alone).
async fn secret_fillers(
    tx: &mut PgConnection,
    t: &TableManifest,
) -> Result<Vec<(String, &'static str)>, BackupError> {
    if t.omitted_columns.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.attname::text, ty.typcategory::text, ty.typname::text \
         FROM pg_attribute a JOIN pg_type ty ON ty.oid = COALESCE(NULLIF(( \
             SELECT typbasetype FROM pg_type WHERE oid = a.atttypid), 0), a.atttypid) \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
           AND a.attnotnull AND NOT a.atthasdef AND a.attname = ANY($2)",
    )
    .bind(quote(&t.name))
    .bind(&t.omitted_columns)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for (name, category, type_name) in rows {
        let literal = match (category.as_str(), type_name.as_str()) {
            (_, "bytea") => "'\\x'",
            ("S", _) => "''",
            ("N", _) => "0",
            ("B", _) => "false",
            ("A", _) => "'{}'",
            _ => {
                return Err(BackupError::Schema(format!(
                    "secret column `{}.{name}` ({type_name}) is NOT NULL without a default: \
                     give it a default so that restored rows can be inserted without it",
                    t.name
                )));
            }
        };
        out.push((name, literal));
    }
    Ok(out)
}

/// `, "c1", "c2"` and `, v1, v2` for an INSERT's column and value lists.
fn fillers_sql(fillers: &[(String, &'static str)]) -> (String, String) {
    if !fillers.is_empty() {
        let names: Vec<&str> = fillers.iter().map(|(c, _)| c.as_str()).collect();
        tracing::warn!(
            target: "rbac::backup",
            columns = ?names,
            "restored rows new to their table get an empty value in these secret columns (NOT NULL without a default): reset them"
        );
    }
    let cols = fillers
        .iter()
        .map(|(c, _)| format!(", {}", quote(c)))
        .collect();
    let values = fillers.iter().map(|(_, v)| format!(", {v}")).collect();
    (cols, values)
}

/// What a restore takes from its chain, and how.
#[derive(Clone, Copy)]
pub(crate) struct RestoreScope<'a> {
    /// The tables, as the chain's full backup lists them.
    pub(crate) tables: &'a [TableManifest],
    /// Only this tenant's rows.
    pub(crate) tenant: Option<&'a str>,
    pub(crate) dry_run: bool,
    /// How many keys of a tenant chain's later steps are held in memory at the most
    /// ([`keyset::IN_MEMORY`](super::keyset::IN_MEMORY)); beyond, they go through a temporary
    /// table.
    pub(crate) later_keys_in_memory: usize,
    /// Whether a dry run may skip comparing rows whose answer it knows: those the change log
    /// shows unchanged (see [`since`]), and every row of a table that is empty. Else it
    /// compares every row.
    pub(crate) shortcuts: bool,
    /// How many keys the change log may name in a table for a dry run to compare only those
    /// ([`MAX_CHANGED_KEYS`]); with more, the table is compared in full.
    pub(crate) changed_keys_at_most: usize,
}

/// A restore chain: its backups, the full one first, and the data key of each.
#[derive(Clone, Copy)]
pub(crate) struct Chain<'a> {
    pub(crate) manifests: &'a [Manifest],
    pub(crate) keys: &'a [Option<Arc<DataKey>>],
}

impl<'a> Chain<'a> {
    /// The incrementals after the full backup.
    fn after_full(self) -> Chain<'a> {
        Chain {
            manifests: self.manifests.get(1..).unwrap_or_default(),
            keys: self.keys.get(1..).unwrap_or_default(),
        }
    }
}

/// One backup of a restore chain as its tables read it: the manifest and data key, the
/// storage that holds its chunks, and who hears of progress.
struct Step<'a> {
    m: Arc<Manifest>,
    key: Option<Arc<DataKey>>,
    storage: &'a Storage,
    progress: &'a dyn Progress,
}

/// How a restore applies one step to a table.
struct Apply<'a> {
    /// The step is the chain's full backup.
    full: bool,
    /// The step's place in the chain (the full backup is 0).
    step: u32,
    /// Steps come after this one.
    later_steps: bool,
    dry_run: bool,
    /// The step leaves the keys that later steps name to them, through the temporary table
    /// of `later` (too many keys to hold).
    later_keys_staged: bool,
    /// The keys that later steps name in this table, held in memory, each with the last step
    /// that names it: the step leaves those named after it to them.
    leave: Option<&'a Arc<KeySet>>,
    /// Of those, the keys whose last record is a row of the tenant (see [`StepRows`]).
    ends_mine: Option<&'a [String]>,
    /// The temporary table a dry run compares the full step in, when the table has one.
    dry_stage: Option<&'a str>,
    /// What the change log says changed in the target since the chain's last step, for a dry
    /// run against the database the chain came from or was restored into.
    baseline: Option<&'a since::Baseline>,
    /// A dry run counts every row of the full step as an insert, without comparing, when the
    /// table is empty.
    empty_shortcut: bool,
    /// The most changed keys a dry run holds for a table ([`RestoreScope::changed_keys_at_most`]).
    changed_keys_at_most: usize,
    /// The rows of the full step's tables in scope, counted meanwhile (a dry run).
    counts: &'a ScopeCounts,
}

/// Which rows of a table a restore step takes: every row, or one tenant's, less the keys
/// that later steps name.
#[derive(Clone, Copy)]
struct StepRows<'a> {
    /// The tenant and the table's tenant column.
    filter: Option<(&'a str, &'a str)>,
    /// Where the tenant column sits among the backup's columns.
    index: Option<usize>,
    /// Keys left to later steps.
    leave: Option<&'a Arc<KeySet>>,
    /// Of those, held in memory, the keys whose last record is a row of the tenant (JSON
    /// texts, see `later::stage`): a full step restored by upsert keeps their rows.
    ends_mine: Option<&'a [String]>,
}

impl StepRows<'_> {
    /// The tenant and its column's position, for the thread that reads the chunks.
    fn owned(self) -> Option<(String, usize)> {
        self.filter
            .zip(self.index)
            .map(|((tn, _), i)| (tn.to_owned(), i))
    }
}

async fn restore_table(
    tx: &mut PgConnection,
    existing: &[String],
    step: &Step<'_>,
    t: &TableManifest,
    tenant: Option<&str>,
    apply: &Apply<'_>,
) -> Result<Option<TableReport>, BackupError> {
    let Apply {
        full,
        dry_run,
        later_keys_staged,
        dry_stage,
        ..
    } = *apply;
    let (m, key, storage, progress) = (&*step.m, step.key.clone(), step.storage, step.progress);
    let tenant_filter = match (tenant, &t.tenant_column) {
        (Some(tn), Some(c)) => Some((tn, c.as_str())),
        (Some(_), None) => return Ok(None),
        _ => None,
    };
    let mut report = TableReport {
        table: t.name.clone(),
        ..TableReport::default()
    };
    if !existing.contains(&t.name) {
        return Err(BackupError::Schema(format!(
            "table `{}` does not exist in the target PostgreSQL database: create the schema \
             (run the application's migrations) first",
            t.name
        )));
    }
    // Values are cast to the target's column types (the backup may come from SQLite).
    let target_types: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
    )
    .bind(quote(&t.name))
    .fetch_all(&mut *tx)
    .await?;
    let mut typed = t.clone();
    for c in &mut typed.columns {
        c.decl_type = target_types
            .iter()
            .find(|(n, _)| *n == c.name)
            .map(|(_, ty)| ty.clone())
            .ok_or_else(|| {
                BackupError::Schema(format!(
                    "column `{}.{}` is in the backup but not in the target database",
                    t.name, c.name
                ))
            })?;
    }
    let t = &typed;
    progress.phase(&format!("{} {}", m.id, t.name), Some(t.rows + t.deleted));
    let table = quote(&t.name);
    let casts: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.decl_type))
        .collect();
    let cols = quoted_columns(t);
    let key_positions = t.key_positions()?;
    let key_match: Vec<String> = key_positions
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let c = &t.columns[i];
            format!("{} = ${}::{}", quote(&c.name), n + 1, c.decl_type)
        })
        .collect();
    let tenant_index = tenant_filter.and_then(|(_, c)| t.columns.iter().position(|x| x.name == c));
    let tenant_sql = tenant_filter.map(|(_, c)| quote(c));
    // Full steps replace the scope's rows; tables with omitted (secret) columns and
    // incremental steps upsert, so that the secret values already there are kept.
    let upsert = !t.omitted_columns.is_empty() || !full;
    let rows = StepRows {
        filter: tenant_filter,
        index: tenant_index,
        leave: apply.leave,
        ends_mine: apply.ends_mine,
    };
    if full && !dry_run {
        copy_restore(tx, step, t, rows, upsert, later_keys_staged, &mut report).await?;
        return Ok(Some(report));
    }
    if let (true, Some(stage)) = (dry_run && full, dry_stage) {
        dry_run_full(tx, stage, apply, step, t, rows, &mut report).await?;
        return Ok(Some(report));
    }
    // Below: incremental steps, applied row by row, or compared in batches of keys (a dry
    // run; also a full step whose table has no staging table).
    let in_scope = if full && dry_run {
        scope_count(tx, apply.counts, t, tenant_filter).await?
    } else {
        0
    };
    let keys_sql = t
        .primary_key
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ");
    let insert_sql = if upsert {
        let updates: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !t.primary_key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
            .collect();
        let guard = tenant_sql
            .as_ref()
            .map(|c| format!(" WHERE {table}.{c} = EXCLUDED.{c}"))
            .unwrap_or_default();
        let action = if updates.is_empty() {
            "NOTHING".to_owned()
        } else {
            format!("UPDATE SET {}{guard}", updates.join(", "))
        };
        let (filler_cols, filler_values) = fillers_sql(&secret_fillers(tx, t).await?);
        format!(
            "INSERT INTO {table} ({cols}{filler_cols}) VALUES ({}{filler_values}) ON CONFLICT ({keys_sql}) DO {action}",
            casts.join(", ")
        )
    } else {
        format!("INSERT INTO {table} ({cols}) VALUES ({})", casts.join(", "))
    };
    let tenant_cond = tenant_sql
        .as_ref()
        .map(|c| format!(" AND {c}::text = ${}", key_positions.len() + 1))
        .unwrap_or_default();
    let delete_sql = format!(
        "DELETE FROM {table} WHERE {}{tenant_cond}",
        key_match.join(" AND ")
    );
    // A dry run looks the records up in batches: every value as text (as a single record's
    // would be bound), one array per column, cast to the column's type, each record's number
    // with it. A row is unchanged when what the restore would store is what is there, byte
    // for byte, as in the comparison of a full step (`compare_stage`).
    let names: Vec<String> = (0..t.columns.len()).map(|n| format!("v{n}")).collect();
    let lookup_sql = format!(
        "SELECT k.ord, CASE WHEN k.is_row THEN record_image_eq(ROW({}), ROW({})) END, {} \
         FROM unnest({}, ${}::bool[]) WITH ORDINALITY AS k({}, is_row, ord) \
         JOIN {table} AS t ON {}",
        t.columns
            .iter()
            .map(|c| format!("t.{}", quote(&c.name)))
            .collect::<Vec<_>>()
            .join(", "),
        t.columns
            .iter()
            .zip(&names)
            .map(|(c, v)| format!("k.{v}::{}", c.decl_type))
            .collect::<Vec<_>>()
            .join(", "),
        tenant_sql
            .as_ref()
            .map(|c| format!("t.{c}::text"))
            .unwrap_or("NULL::text".into()),
        (1..=t.columns.len())
            .map(|n| format!("${n}::text[]"))
            .collect::<Vec<_>>()
            .join(", "),
        t.columns.len() + 1,
        names.join(", "),
        key_positions
            .iter()
            .filter_map(|&i| Some((t.columns.get(i)?, names.get(i)?)))
            .map(|(c, v)| format!("t.{} = k.{v}::{}", quote(&c.name), c.decl_type))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let dry = DryLookup {
        table: &t.name,
        sql: &lookup_sql,
        key_positions: &key_positions,
        columns: t.columns.len(),
        tenant: tenant_filter.map(|(tn, _)| tn),
    };
    let writes = RowWrites {
        table: &t.name,
        insert_sql: &insert_sql,
        delete_sql: &delete_sql,
        upsert,
        tenant: tenant_filter.map(|(tn, _)| tn),
    };
    // Each record applies unless a later step names its key (a tenant restore of a chain):
    // held in memory, that is checked as the record is read; in the temporary table, for a
    // batch of records at a time.
    let mut batch: Vec<(u8, Vec<Value>)> = Vec::new();
    let mut pending: Vec<(u8, Vec<Value>)> = Vec::new();
    let mut values = Vec::new();
    let mut scratch = Vec::new();
    for (j, info) in m.chunks_of(&t.name) {
        let tenant = tenant_filter.map(|(tn, _)| tn);
        let (raw, _) = fetch_chunk_for(storage, m, j, key.as_deref(), tenant).await?;
        let mut reader = codec::Reader::new(&raw);
        while let Some(tag) = reader.next(t.columns.len(), t.primary_key.len(), &mut values)? {
            if tag == codec::ROW
                && let (Some((tn, _)), Some(i)) = (tenant_filter, tenant_index)
                && !values.get(i).is_some_and(|v| is_tenant(v, tn))
            {
                continue;
            }
            if let Some(keys) = apply.leave {
                let parts = keyset::owned_key_parts(tag == codec::ROW, &values, &key_positions);
                if keys.named_after(parts, apply.step, &mut scratch) {
                    continue;
                }
            }
            batch.push((tag, std::mem::take(&mut values)));
            if batch.len() >= DRY_LOOKUP_BATCH {
                writes
                    .take(tx, t, apply, &mut batch, &mut pending, &mut report)
                    .await?;
                if pending.len() >= DRY_LOOKUP_BATCH {
                    dry.compare(tx, &mut pending, &mut report).await?;
                }
            }
        }
        progress.advance(info.records);
    }
    writes
        .take(tx, t, apply, &mut batch, &mut pending, &mut report)
        .await?;
    if dry_run {
        dry.compare(tx, &mut pending, &mut report).await?;
    }
    if dry_run && full {
        let kept = count_kept_for_later(tx, t, rows, apply.later_keys_staged).await?;
        report.delete = in_scope
            .saturating_sub(report.replace + report.unchanged)
            .saturating_sub(kept);
    }
    Ok(Some(report))
}

/// Records a dry run looks up in one query (and a restore looks up among the later keys of
/// a tenant restore, when they are in the temporary table).
const DRY_LOOKUP_BATCH: usize = 2_000;

/// How an incremental step writes its records, one at a time.
struct RowWrites<'a> {
    table: &'a str,
    /// Inserts (or upserts) a row, its values bound in order.
    insert_sql: &'a str,
    /// Deletes by key (and tenant), the key's values bound in order, then the tenant.
    delete_sql: &'a str,
    upsert: bool,
    tenant: Option<&'a str>,
}

impl RowWrites<'_> {
    /// Applies the records of `batch` (emptied) that no later step names, or in a dry run
    /// moves them to `pending`, for comparison. The later keys in the temporary table are
    /// looked up here, once for the batch.
    async fn take(
        &self,
        tx: &mut PgConnection,
        t: &TableManifest,
        apply: &Apply<'_>,
        batch: &mut Vec<(u8, Vec<Value>)>,
        pending: &mut Vec<(u8, Vec<Value>)>,
        report: &mut TableReport,
    ) -> Result<(), BackupError> {
        let left = if apply.later_keys_staged && apply.later_steps && !batch.is_empty() {
            later::named_after(tx, t, apply.step, batch).await?
        } else {
            Vec::new()
        };
        for (n, record) in batch.drain(..).enumerate() {
            if left.get(n).copied().unwrap_or(false) {
                continue;
            }
            if apply.dry_run {
                pending.push(record);
            } else {
                self.apply(tx, &record, report).await?;
            }
        }
        Ok(())
    }

    /// Applies one record (tag and values, as read), counting it into `report`.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        (tag, values): &(u8, Vec<Value>),
        report: &mut TableReport,
    ) -> Result<(), BackupError> {
        if *tag != codec::ROW {
            // A delete record's values are its key.
            let mut q = sqlx::query(AssertSqlSafe(self.delete_sql));
            for v in values {
                q = bind_value(q, v);
            }
            if let Some(tn) = self.tenant {
                q = q.bind(tn);
            }
            report.delete += q.execute(&mut *tx).await?.rows_affected();
            return Ok(());
        }
        let mut q = sqlx::query(AssertSqlSafe(self.insert_sql));
        for v in values {
            q = bind_value(q, v);
        }
        let done = q.execute(&mut *tx).await.map_err(|e| {
            BackupError::Database(format!(
                "restore of `{}` failed, nothing was changed: {e}",
                self.table
            ))
        })?;
        if self.upsert && done.rows_affected() == 0 && self.tenant.is_some() {
            return Err(BackupError::Schema(format!(
                "table `{}`: a restored row's key belongs to another tenant; nothing was changed",
                self.table
            )));
        }
        report.insert += 1;
        Ok(())
    }
}

/// How a dry run compares the records of a step row by row (incremental steps, and full
/// steps of tables without a staging table) with what the table holds under their keys.
struct DryLookup<'a> {
    table: &'a str,
    /// Finds the row under each key of a batch: `k.ord` (the record's number, from 1),
    /// whether the row is the record's byte for byte (NULL for a delete), and its tenant as
    /// text.
    sql: &'a str,
    key_positions: &'a [usize],
    columns: usize,
    tenant: Option<&'a str>,
}

impl DryLookup<'_> {
    /// Looks the keys of `records` (tag and values, as read) up in one query, counts each
    /// record into `report` and empties `records`.
    async fn compare(
        &self,
        tx: &mut PgConnection,
        records: &mut Vec<(u8, Vec<Value>)>,
        report: &mut TableReport,
    ) -> Result<(), BackupError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); self.columns];
        let mut is_row = Vec::with_capacity(records.len());
        for (tag, values) in records.iter() {
            let row = *tag == codec::ROW;
            is_row.push(row);
            for (i, column) in columns.iter_mut().enumerate() {
                // A row holds every column; a delete record only its key, in key order.
                let value = if row {
                    values.get(i)
                } else {
                    self.key_positions
                        .iter()
                        .position(|&p| p == i)
                        .and_then(|n| values.get(n))
                };
                column.push(value.and_then(value_text));
            }
        }
        let mut query = sqlx::query(AssertSqlSafe(self.sql));
        for column in columns {
            query = query.bind(column);
        }
        query = query.bind(is_row);
        let mut found: Vec<Option<sqlx::postgres::PgRow>> = std::iter::repeat_with(|| None)
            .take(records.len())
            .collect();
        let rows = query.fetch_all(&mut *tx).await.map_err(|e| {
            BackupError::Database(format!(
                "dry run of `{}`: a record does not fit the table (the restore would fail \
                 too): {e}",
                self.table
            ))
        })?;
        for row in rows {
            let ord: i64 = row.try_get(0)?;
            if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| found.get_mut(i)) {
                *slot = Some(row);
            }
        }
        for ((tag, _), row) in records.iter().zip(&found) {
            self.count(*tag, row.as_ref(), report)?;
        }
        records.clear();
        Ok(())
    }

    /// Counts one record against `row`, what [`DryLookup::sql`] found under its key, if
    /// anything.
    fn count(
        &self,
        tag: u8,
        row: Option<&sqlx::postgres::PgRow>,
        report: &mut TableReport,
    ) -> Result<(), BackupError> {
        let Some(row) = row else {
            if tag == codec::ROW {
                report.insert += 1;
            }
            return Ok(());
        };
        let other = match self.tenant {
            Some(tn) => row.try_get::<Option<String>, _>(2)?.as_deref() != Some(tn),
            None => false,
        };
        if tag != codec::ROW {
            if !other {
                report.delete += 1;
            }
            return Ok(());
        }
        let same = row.try_get::<Option<bool>, _>(1)?.unwrap_or(false);
        if other {
            report.conflicts += 1;
        } else if same {
            report.unchanged += 1;
        } else {
            report.replace += 1;
        }
        Ok(())
    }
}

/// `"c1", "c2"`: the backup's columns of `t`, quoted, in manifest order.
fn quoted_columns(t: &TableManifest) -> String {
    t.columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `t."k1" = s."k1" AND ...`: the key match between the target (`t`) and a staging table (`s`).
fn key_join(t: &TableManifest) -> String {
    t.primary_key
        .iter()
        .map(|k| format!("t.{0} = s.{0}", quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Chunk `j` of `m` as stored, checked and decoded (decrypted with `key`, decompressed).
pub(super) async fn fetch_chunk(
    storage: &Storage,
    m: &Manifest,
    j: usize,
    key: Option<&DataKey>,
) -> Result<Vec<u8>, BackupError> {
    fetch_chunk_for(storage, m, j, key, None)
        .await
        .map(|(raw, _)| raw)
}

/// [`fetch_chunk`] for a restore of `tenant`, if one is given: a chunk with none of its rows
/// is not even fetched, and of one grouped by tenant only what it may need is decompressed
/// ([`chunk::decode_for`]). Returns the records and how many were left out.
pub(super) async fn fetch_chunk_for(
    storage: &Storage,
    m: &Manifest,
    j: usize,
    key: Option<&DataKey>,
    tenant: Option<&str>,
) -> Result<(Vec<u8>, u64), BackupError> {
    let info = m.chunk(j)?;
    if let Some(tenant) = tenant
        && !info.may_hold(tenant)
    {
        return Ok((Vec::new(), info.records));
    }
    let stored = storage.get(&m.id, &info.name).await?;
    chunk::decode_for(m, j, &stored, key, tenant)
}

/// Runs one statement without parameters, built here from names quoted by [`quote`]; returns
/// how many rows it touched.
async fn run(tx: &mut PgConnection, sql: String) -> Result<u64, BackupError> {
    Ok(sqlx::query(AssertSqlSafe(sql))
        .execute(tx)
        .await?
        .rows_affected())
}

/// Opens the savepoint `name`: a statement that fails after it, up to [`end_savepoint`], does
/// not abort the transaction.
pub(crate) async fn begin_savepoint(tx: &mut PgConnection, name: &str) -> Result<(), BackupError> {
    run(tx, format!("SAVEPOINT {name}")).await?;
    Ok(())
}

/// Closes the savepoint `name`: keeps what ran since [`begin_savepoint`] if `keep`, else
/// rolls it back (which also clears a failed statement's error state).
pub(crate) async fn end_savepoint(
    tx: &mut PgConnection,
    name: &str,
    keep: bool,
) -> Result<(), BackupError> {
    let end = if keep {
        "RELEASE SAVEPOINT"
    } else {
        "ROLLBACK TO SAVEPOINT"
    };
    run(tx, format!("{end} {name}")).await?;
    Ok(())
}

/// Makes one temporary table per table of `first` (a full backup) that a dry run will
/// compare, with the backup's columns typed as in the target; returns (table, stage) pairs. A
/// table that cannot have one (missing in the target, or columns missing) is left out: the
/// comparison then reports the schema error.
async fn dry_run_stages(
    tx: &mut PgConnection,
    first: &Manifest,
    tables: &[TableManifest],
) -> Result<Vec<(String, String)>, BackupError> {
    let mut stages = Vec::new();
    for wanted in tables {
        let Some(t) = first.tables.iter().find(|x| x.name == wanted.name) else {
            continue;
        };
        let stage = format!("rbac_dry_run_{}", stages.len());
        let cols = quoted_columns(t);
        begin_savepoint(tx, "rbac_dry_run").await?;
        let made = sqlx::query(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {} WITH NO DATA",
            quote(&t.name)
        )))
        .execute(&mut *tx)
        .await;
        end_savepoint(tx, "rbac_dry_run", made.is_ok()).await?;
        if made.is_ok() {
            stages.push((t.name.clone(), stage));
        }
    }
    Ok(stages)
}

/// The dry run of a full step: copies the backup's rows (the tenant's, for a tenant restore)
/// into `stage`, then counts in one query, by key, the rows that would be inserted, replaced,
/// left unchanged (every value stored identically) or refused (the key belongs to another tenant),
/// and those of the scope that would be deleted. With a `baseline` (see [`since`]), only the
/// rows whose key the change log names are copied and compared; the others are unchanged.
async fn dry_run_full(
    tx: &mut PgConnection,
    stage: &str,
    apply: &Apply<'_>,
    step: &Step<'_>,
    t: &TableManifest,
    rows: StepRows<'_>,
    report: &mut TableReport,
) -> Result<(), BackupError> {
    let counts = apply.counts;
    let (baseline, later_keys_staged) = (apply.baseline, apply.later_keys_staged);
    // Counted once, where a comparison needs it (the same snapshot throughout).
    let mut in_scope = None;
    let (m, progress) = (&*step.m, step.progress);
    let tenant_filter = rows.filter;
    let cols = quoted_columns(t);
    let copy_in = format!("COPY {stage} ({cols}) FROM STDIN");
    // JIT compiles these one-off queries for longer than it saves.
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let filter = match baseline {
        Some(b) => since::changed_keys(tx, t, b, apply.changed_keys_at_most).await?,
        None => None,
    };
    if let (Some(b), Some(filter)) = (baseline, filter) {
        let changed = filter.len();
        let (_, skipped) = copy_chunks(tx, &copy_in, step, t, rows, Some(filter)).await?;
        if later_keys_staged {
            later::leave(tx, stage, t).await?;
        }
        let n = match in_scope {
            Some(n) => n,
            None => scope_count(tx, counts, t, tenant_filter).await?,
        };
        in_scope = Some(n);
        let c = compare_stage(tx, stage, t, tenant_filter, n).await?;
        let delete = deleted_since(tx, stage, t, b, tenant_filter).await?;
        // Every row in scope is one the backup holds untouched, one it compared, or one it
        // would delete; if not, the log missed writes (a TRUNCATE, triggers bypassed).
        if c.in_scope == skipped + c.unchanged + c.replace + delete {
            report.insert = c.insert;
            report.conflicts = c.conflicts;
            report.unchanged = c.unchanged + skipped;
            report.unchanged_by_change_log = skipped;
            report.replace = c.replace;
            // Of the rows not in the stage, a restore keeps those a later step writes.
            let kept = count_kept_for_later(tx, t, rows, later_keys_staged).await?;
            report.delete = delete.saturating_sub(kept);
            return Ok(());
        }
        tracing::warn!(
            target: "rbac::backup",
            table = %t.name,
            changed_keys = changed,
            "the change log does not account for every row of the table (a TRUNCATE, or triggers bypassed?): comparing it in full"
        );
        run(tx, format!("DELETE FROM {stage}")).await?;
        // The backup is read again: start the table's progress over.
        progress.phase(
            &format!("{} {} (full comparison)", m.id, t.name),
            Some(t.rows + t.deleted),
        );
    }
    // An empty table (a restore into a new database): every row of the step is an insert,
    // and nothing can conflict. The chunks are still read and checked, but nothing is copied.
    // (With the later keys in the temporary table, which only the stage can take them from,
    // the comparison runs as usual.)
    if apply.empty_shortcut && !later_keys_staged && table_is_empty(tx, t).await? {
        report.insert = count_chunks(step, t, rows).await?;
        return Ok(());
    }
    copy_chunks(tx, &copy_in, step, t, rows, None).await?;
    if later_keys_staged {
        later::leave(tx, stage, t).await?;
    }
    let n = match in_scope {
        Some(n) => n,
        None => scope_count(tx, counts, t, tenant_filter).await?,
    };
    let c = compare_stage(tx, stage, t, tenant_filter, n).await?;
    report.insert = c.insert;
    report.conflicts = c.conflicts;
    report.unchanged = c.unchanged;
    report.replace = c.replace;
    let kept = count_kept_for_later(tx, t, rows, later_keys_staged).await?;
    report.delete = c
        .in_scope
        .saturating_sub(c.replace + c.unchanged)
        .saturating_sub(kept);
    Ok(())
}

/// The rows `t` holds in scope: the second connection's count when it has one (see
/// [`counts`]), else counted here.
async fn scope_count(
    tx: &mut PgConnection,
    counts: &ScopeCounts,
    t: &TableManifest,
    tenant_filter: Option<(&str, &str)>,
) -> Result<u64, BackupError> {
    if let Some(n) = counts.take(&t.name).await {
        return Ok(n);
    }
    counts::count_in_scope(
        tx,
        &t.name,
        tenant_filter.map(|(_, c)| c),
        tenant_filter.map(|(tn, _)| tn),
    )
    .await
}

/// Whether `t` holds no row at all (of any tenant).
async fn table_is_empty(tx: &mut PgConnection, t: &TableManifest) -> Result<bool, BackupError> {
    let sql = format!("SELECT NOT EXISTS (SELECT 1 FROM {})", quote(&t.name));
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *tx)
        .await?)
}

/// What [`compare_stage`] counts.
struct Compared {
    insert: u64,
    conflicts: u64,
    unchanged: u64,
    replace: u64,
    /// Rows of the table in scope (all of them, whatever the stage holds).
    in_scope: u64,
}

/// Compares the backup rows in `stage` with the table, by key, in one query; `in_scope` is
/// the number of rows the table holds in scope.
async fn compare_stage(
    tx: &mut PgConnection,
    stage: &str,
    t: &TableManifest,
    tenant_filter: Option<(&str, &str)>,
    in_scope: u64,
) -> Result<Compared, BackupError> {
    let table = quote(&t.name);
    let join = key_join(t);
    let row = |alias: &str| {
        t.columns
            .iter()
            .map(|c| format!("{alias}.{}", quote(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let other = match tenant_filter {
        Some((_, c)) => format!("t.{}::text IS DISTINCT FROM $1", quote(c)),
        None => "FALSE".to_owned(),
    };
    // Unchanged means byte for byte (`record_image_eq`, the comparison behind REFRESH
    // MATERIALIZED VIEW CONCURRENTLY: NULLs equal, any type, no text conversion): what the
    // restore would store is what is there.
    let counts = format!(
        "SELECT count(*) FILTER (WHERE NOT found), \
                count(*) FILTER (WHERE found AND other), \
                count(*) FILTER (WHERE found AND NOT other AND same), \
                count(*) FILTER (WHERE found AND NOT other AND NOT same) \
         FROM (SELECT t.ctid IS NOT NULL AS found, COALESCE({other}, FALSE) AS other, \
                      record_image_eq(ROW({}), ROW({})) AS same \
               FROM {stage} s LEFT JOIN {table} t ON {join}) AS compared",
        row("t"),
        row("s"),
    );
    let mut query = sqlx::query_as::<_, (i64, i64, i64, i64)>(AssertSqlSafe(counts));
    if let Some((tn, _)) = tenant_filter {
        query = query.bind(tn.to_owned());
    }
    let (insert, conflicts, unchanged, replace) = query.fetch_one(&mut *tx).await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Compared {
        insert: count(insert),
        conflicts: count(conflicts),
        unchanged: count(unchanged),
        replace: count(replace),
        in_scope,
    })
}

/// Rows of the table in scope whose key the change log names since `baseline` and that the
/// backup does not hold (`stage` holds every backup row with such a key): a restore deletes
/// them.
async fn deleted_since(
    tx: &mut PgConnection,
    stage: &str,
    t: &TableManifest,
    baseline: &since::Baseline,
    tenant_filter: Option<(&str, &str)>,
) -> Result<u64, BackupError> {
    // The tenant is `$3`; the keys the later steps give the tenant, when bound, come next.
    let mine_param = if tenant_filter.is_some() { "$4" } else { "$3" };
    let (changed, names) = since::changed_keys_sql(t, baseline, mine_param);
    let on_changed = t
        .primary_key
        .iter()
        .zip(&names)
        .map(|(k, n)| format!("t.{} = c.{n}", quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let scope = match tenant_filter {
        Some((_, c)) => format!(" AND t.{}::text = $3", quote(c)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT count(*) FROM ({changed}) c JOIN {} t ON {on_changed}{scope} \
         WHERE NOT EXISTS (SELECT 1 FROM {stage} s WHERE {})",
        quote(&t.name),
        key_join(t)
    );
    let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
        .bind(t.name.as_str())
        .bind(since::baseline_param(baseline));
    if let Some((tn, _)) = tenant_filter {
        query = query.bind(tn);
    }
    if let Some(mine) = baseline.mine_keys(&t.name) {
        query = query.bind(mine);
    }
    Ok(u64::try_from(query.fetch_one(&mut *tx).await?).unwrap_or(0))
}

/// The staging table of a restore that upserts (tables with secret columns).
const STAGE: &str = "rbac_restore_stage";

/// The rows of the tenant that the full step of a tenant restore of a chain keeps when it
/// goes through the staging table: those whose key ends as the tenant's row, which the later
/// step that writes them upserts (so their secret columns stay).
struct KeptForLater<'a> {
    /// True for a row `t` of the table that is kept; `$2` is [`KeptForLater::bind`]'s.
    condition: String,
    /// The keys held in memory (JSON texts), or None: the staged keys, by table name.
    mine: Option<&'a [String]>,
    table: String,
}

impl KeptForLater<'_> {
    /// Binds `$2` (after the tenant, `$1`).
    fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        match self.mine {
            Some(mine) => q.bind(mine.to_vec()),
            None => q.bind(self.table.clone()),
        }
    }
}

/// What the full step of `t` keeps for later steps, if anything: only a tenant restore of a
/// chain keeps rows, and only of a table with secret columns (the others lose nothing when
/// the later step writes the row again, and report the same whether the later keys are held
/// in memory or staged).
fn kept_for_later<'a>(
    t: &TableManifest,
    rows: StepRows<'a>,
    later_keys_staged: bool,
) -> Option<KeptForLater<'a>> {
    rows.filter?;
    if t.omitted_columns.is_empty() {
        return None;
    }
    let key_texts: Vec<String> = t
        .primary_key
        .iter()
        .map(|k| format!("t.{}::text", quote(k)))
        .collect();
    let key_json = format!("jsonb_build_array({})", key_texts.join(", "));
    let (condition, mine) = match (later_keys_staged, rows.ends_mine) {
        (true, _) => (format!("{key_json} IN {}", later::ending_mine("$2")), None),
        (false, Some(mine)) if !mine.is_empty() => (
            format!("{key_json} IN (SELECT k::jsonb FROM unnest($2::text[]) AS u(k))"),
            Some(mine),
        ),
        _ => return None,
    };
    Some(KeptForLater {
        condition,
        mine,
        table: t.name.clone(),
    })
}

/// How many rows of the tenant a real restore's full step keeps for later steps (see
/// [`kept_for_later`]): a dry run does not count them as deleted.
async fn count_kept_for_later(
    tx: &mut PgConnection,
    t: &TableManifest,
    rows: StepRows<'_>,
    later_keys_staged: bool,
) -> Result<u64, BackupError> {
    let (Some(kept), Some((tn, c))) = (kept_for_later(t, rows, later_keys_staged), rows.filter)
    else {
        return Ok(0);
    };
    let sql = format!(
        "SELECT count(*) FROM {} t WHERE t.{}::text = $1 AND {}",
        quote(&t.name),
        quote(c),
        kept.condition
    );
    let query = kept.bind(sqlx::query(AssertSqlSafe(sql)).bind(tn.to_owned()));
    let n: i64 = query.fetch_one(&mut *tx).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Restores a full step of one table with `COPY ... FROM STDIN`: deletes the scope's rows (all,
/// or the tenant's) and copies the backup's rows in; for a table with secret columns, copies
/// into a staging table instead, then deletes the scope's rows the backup does not hold
/// (but those a later step of a tenant restore writes: `rows.ends_mine`, or the staged later
/// keys) and upserts the rest, so that the secrets in place are kept. A key held by another
/// tenant is refused. Errors leave the transaction to be rolled back by the caller.
async fn copy_restore(
    tx: &mut PgConnection,
    step: &Step<'_>,
    t: &TableManifest,
    rows: StepRows<'_>,
    stage: bool,
    later_keys_staged: bool,
    report: &mut TableReport,
) -> Result<(), BackupError> {
    let tenant_filter = rows.filter;
    // Keys named by later steps are taken out of the stage before it is applied.
    let stage = stage || later_keys_staged;
    let table = quote(&t.name);
    let cols = quoted_columns(t);
    let failed = |e: BackupError| match e {
        BackupError::Database(e) => BackupError::Database(format!(
            "restore of `{}` failed, nothing was changed: {e}",
            t.name
        )),
        other => other,
    };
    let scope_cond = |alias: &str| match tenant_filter {
        Some((_, c)) => format!("{alias}{}::text = $1", quote(c)),
        None => "TRUE".to_owned(),
    };
    let bind_tenant =
        |q: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>| {
            match tenant_filter {
                Some((tn, _)) => q.bind(tn.to_owned()),
                None => q,
            }
        };
    if stage {
        run(tx, format!("DROP TABLE IF EXISTS pg_temp.{STAGE}")).await?;
        run(tx, format!(
            "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
        )).await?;
    }
    // A whole table replaced: its indexes are built once after the load, as pg_restore
    // does, rather than updated row by row (half of a restore's time otherwise).
    let rebuild = if !stage && tenant_filter.is_none() {
        set_indexes_aside(tx, &t.name).await?
    } else {
        Vec::new()
    };
    if !stage {
        report.delete = if tenant_filter.is_none() && !referenced_by_others(tx, &t.name).await? {
            let rows: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&mut *tx)
                    .await?;
            run(tx, format!("TRUNCATE {table}")).await?;
            u64::try_from(rows).unwrap_or(0)
        } else {
            bind_tenant(sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {}",
                scope_cond("")
            ))))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
    }
    let target = if stage {
        STAGE.to_owned()
    } else {
        table.clone()
    };
    let statement = format!("COPY {target} ({cols}) FROM STDIN");
    let (copied, _) = copy_chunks(tx, &statement, step, t, rows, None)
        .await
        .map_err(failed)?;
    report.insert = copied;
    if later_keys_staged {
        report.insert = copied.saturating_sub(later::leave(tx, STAGE, t).await?);
    }
    for statement in rebuild {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(e.into()))?;
    }
    if !stage {
        return Ok(());
    }
    let join = key_join(t);
    if let Some((_, c)) = tenant_filter {
        let clash: bool = bind_tenant(sqlx::query(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {table} t JOIN {STAGE} s ON {join} \
             WHERE t.{}::text IS DISTINCT FROM $1)",
            quote(c)
        ))))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if clash {
            return Err(BackupError::Schema(format!(
                "table `{}`: a restored row's key belongs to another tenant; nothing was changed",
                t.name
            )));
        }
    }
    // A tenant restore of a chain keeps the rows whose key ends as the tenant's row: the later
    // step that writes them upserts them, and their secret columns stay.
    let kept = kept_for_later(t, rows, later_keys_staged);
    let keep_later = kept
        .as_ref()
        .map(|k| format!(" AND NOT {}", k.condition))
        .unwrap_or_default();
    let mut delete = bind_tenant(sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {table} t WHERE {} AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE {join}){keep_later}",
        scope_cond("t.")
    ))));
    if let Some(kept) = kept {
        delete = kept.bind(delete);
    }
    let deleted = delete.execute(&mut *tx).await?;
    report.delete = deleted.rows_affected();
    let keys_sql = t
        .primary_key
        .iter()
        .map(|k| quote(k))
        .collect::<Vec<_>>()
        .join(", ");
    let updates: Vec<String> = t
        .columns
        .iter()
        .filter(|c| !t.primary_key.contains(&c.name))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
        .collect();
    let action = if updates.is_empty() {
        "NOTHING".to_owned()
    } else {
        format!("UPDATE SET {}", updates.join(", "))
    };
    let (filler_cols, filler_values) = fillers_sql(&secret_fillers(tx, t).await?);
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} ({cols}{filler_cols}) SELECT {cols}{filler_values} FROM {STAGE} ON CONFLICT ({keys_sql}) DO {action}"
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| failed(e.into()))?;
    run(tx, format!("DROP TABLE pg_temp.{STAGE}")).await?;
    Ok(())
}

/// Drops the indexes of `table` that can be rebuilt exactly from their definition and
/// returns the statements that rebuild them: plain indexes and the indexes of primary-key and
/// unique constraints, when nothing else depends on them. Left in place: indexes a foreign key
/// references, exclusion constraints, replica-identity and clustered indexes, indexes with a
/// comment or their own tablespace, and every index of a partitioned or inherited table.
async fn set_indexes_aside(tx: &mut PgConnection, table: &str) -> Result<Vec<String>, BackupError> {
    let found: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, c.conname::text, \
                CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid) \
                     ELSE pg_get_constraintdef(c.oid) END \
         FROM pg_index i \
         JOIN pg_class r ON r.oid = i.indrelid \
         JOIN pg_class ic ON ic.oid = i.indexrelid \
         LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid \
              AND c.contype IN ('p', 'u', 'x') \
         WHERE i.indrelid = to_regclass($1) AND r.relkind = 'r' AND NOT r.relispartition \
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = r.oid OR h.inhrelid = r.oid) \
           AND i.indisvalid AND i.indisready AND NOT i.indisreplident AND NOT i.indisclustered \
           AND ic.reltablespace = 0 AND (c.oid IS NULL OR c.contype IN ('p', 'u')) \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint f \
                           WHERE f.contype = 'f' AND f.conindid = i.indexrelid) \
           AND NOT EXISTS (SELECT 1 FROM pg_description d \
                           WHERE d.objoid = i.indexrelid OR d.objoid = c.oid) \
         ORDER BY c.oid IS NULL, i.indexrelid",
    )
    .bind(quote(table))
    .fetch_all(&mut *tx)
    .await?;
    let table = quote(table);
    let mut rebuild = Vec::with_capacity(found.len());
    for (index, constraint, definition) in found {
        let (drop, create) = match constraint {
            Some(name) => (
                format!("ALTER TABLE {table} DROP CONSTRAINT {}", quote(&name)),
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {} {definition}",
                    quote(&name)
                ),
            ),
            None => (format!("DROP INDEX {index}"), definition),
        };
        run(tx, drop).await?;
        rebuild.push(create);
    }
    Ok(rebuild)
}

/// Whether a foreign key of another table references `table` (then it cannot be truncated).
async fn referenced_by_others(tx: &mut PgConnection, table: &str) -> Result<bool, BackupError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint \
                        WHERE contype = 'f' AND confrelid = to_regclass($1) AND conrelid <> confrelid)",
    )
    .bind(quote(table))
    .fetch_one(&mut *tx)
    .await?)
}

/// Streams the rows of `t`'s chunks in `m` (only `tenant`'s rows: its name and the tenant
/// column's position) into `statement` (a `COPY ... FROM STDIN`). One blocking thread reads,
/// decrypts and decompresses the chunks and writes COPY text into pieces of [`COPY_PIECE`]
/// bytes while this task sends the previous ones: memory is one chunk and a few pieces,
/// whatever the table's size. Returns the rows copied.
async fn copy_chunks(
    tx: &mut PgConnection,
    statement: &str,
    step: &Step<'_>,
    t: &TableManifest,
    rows: StepRows<'_>,
    filter: Option<since::KeyFilter>,
) -> Result<(u64, u64), BackupError> {
    let progress = step.progress;
    let mut copy = tx.copy_in_raw(statement).await?;
    let (pieces, mut received) = tokio::sync::mpsc::channel(PIECES_AHEAD);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let source = CopySource::new(step, t, rows, filter, false)?;
    let producer = tokio::task::spawn_blocking(move || source.run(&pieces, &recycled));
    let sent = async {
        let (mut copied, mut skipped) = (0u64, 0u64);
        while let Some(piece) = received.recv().await {
            match piece? {
                CopyPiece::Text(mut text, rows) => {
                    copy.send(text.as_slice()).await?;
                    copied += rows;
                    text.clear();
                    // The producer may have finished: then the buffer is simply dropped.
                    let _ = recycle.send(text);
                }
                CopyPiece::ChunkDone { records, unchanged } => {
                    progress.advance(records);
                    skipped += unchanged;
                }
            }
        }
        Ok::<_, BackupError>((copied, skipped))
    }
    .await;
    // Closing the channel stops the producer at its next piece if sending failed.
    drop(received);
    let produced = producer.await.map_err(join_error);
    match (sent, produced) {
        (Ok((copied, skipped)), Ok(())) => {
            let done = copy.finish().await?;
            if done != copied {
                return Err(BackupError::Database(format!(
                    "COPY into `{}` stored {done} rows where {copied} were sent",
                    t.name
                )));
            }
            Ok((done, skipped))
        }
        (Err(e), _) | (Ok(_), Err(e)) => {
            // The server answers the abort with an error; the caller rolls back.
            let _ = copy.abort(e.to_string()).await;
            Err(e)
        }
    }
}

/// Reads the chunks of `t` in `m` as [`copy_chunks`] does, checking every record, and counts
/// the rows it would copy (the tenant's, less the keys left to later steps) without copying
/// any: what a dry run needs when the target table is empty.
async fn count_chunks(
    step: &Step<'_>,
    t: &TableManifest,
    rows: StepRows<'_>,
) -> Result<u64, BackupError> {
    let progress = step.progress;
    let (pieces, mut received) = tokio::sync::mpsc::channel(PIECES_AHEAD);
    let (_recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let source = CopySource::new(step, t, rows, None, true)?;
    let producer = tokio::task::spawn_blocking(move || source.run(&pieces, &recycled));
    let mut counted = 0u64;
    let mut failed = None;
    while let Some(piece) = received.recv().await {
        match piece {
            Ok(CopyPiece::Text(_, n)) => counted += n,
            Ok(CopyPiece::ChunkDone { records, .. }) => progress.advance(records),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(received);
    let produced = producer.await.map_err(join_error);
    match (failed, produced) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(counted),
    }
}

/// COPY text per piece sent: small enough that the pieces in flight and the driver's write
/// buffer (which keeps the size of the largest send) stay small, large enough that a send
/// costs nothing.
const COPY_PIECE: usize = 512 * 1024;

/// Pieces the producer may be ahead of the sender.
const PIECES_AHEAD: usize = 2;

/// What the producer of a COPY hands the sender.
enum CopyPiece {
    /// COPY text lines and the rows in them.
    Text(Vec<u8>, u64),
    /// A chunk was read: its record count, for progress, and how many of its rows the
    /// filter left out (unchanged since the dry run's baseline).
    ChunkDone { records: u64, unchanged: u64 },
}

/// A chunk as the decoding thread hands it over.
struct Decoded {
    name: String,
    raw: Vec<u8>,
    /// Records of other tenants that were not decompressed (they count for progress).
    skipped: u64,
}

/// The chunks of one table turned into COPY text, on a blocking thread.
struct CopySource {
    m: Arc<Manifest>,
    table: String,
    columns: usize,
    tenant: Option<(String, usize)>,
    /// Only rows with a changed key are sent (a dry run since a baseline).
    filter: Option<since::KeyFilter>,
    /// Rows with one of these keys are not sent (left to later steps), and where the key
    /// columns sit.
    leave: Option<(Arc<KeySet>, Vec<usize>)>,
    key: Option<Arc<DataKey>>,
    storage: Storage,
    runtime: tokio::runtime::Handle,
    /// Count the rows that would be sent instead of writing them: every piece is empty text
    /// with a count (see [`count_chunks`]).
    count_only: bool,
}

impl CopySource {
    fn new(
        step: &Step<'_>,
        t: &TableManifest,
        rows: StepRows<'_>,
        filter: Option<since::KeyFilter>,
        count_only: bool,
    ) -> Result<CopySource, BackupError> {
        let leave = match rows.leave {
            Some(keys) => Some((keys.clone(), t.key_positions()?)),
            None => None,
        };
        Ok(CopySource {
            m: step.m.clone(),
            table: t.name.clone(),
            columns: t.columns.len(),
            tenant: rows.owned(),
            filter,
            leave,
            key: step.key.clone(),
            storage: step.storage.clone(),
            runtime: tokio::runtime::Handle::current(),
            count_only,
        })
    }

    /// Sends every piece; stops early, without error, when the receiver is gone (the sender
    /// failed and reports why); a decoding error is sent as the last piece.
    fn run(
        mut self,
        pieces: &tokio::sync::mpsc::Sender<Result<CopyPiece, BackupError>>,
        recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
    ) {
        if let Err(e) = self.produce(pieces, recycled) {
            let _ = pieces.blocking_send(Err(e));
        }
    }

    fn produce(
        &mut self,
        pieces: &tokio::sync::mpsc::Sender<Result<CopyPiece, BackupError>>,
        recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
    ) -> Result<(), BackupError> {
        // A second thread fetches, decrypts and decompresses the next chunk while this one
        // turns the current one into COPY text (one chunk waits at most).
        let (decoded, chunks) = std::sync::mpsc::sync_channel(1);
        let (m, table, key) = (self.m.clone(), self.table.clone(), self.key.clone());
        let (storage, runtime) = (self.storage.clone(), self.runtime.clone());
        let tenant = self.tenant.as_ref().map(|(tn, _)| tn.clone());
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for (j, info) in m.chunks_of(&table) {
                    let raw = runtime.block_on(fetch_chunk_for(
                        &storage,
                        &m,
                        j,
                        key.as_deref(),
                        tenant.as_deref(),
                    ));
                    let failed = raw.is_err();
                    // The receiver is gone when the consumer stopped: then so does this.
                    let sent = raw.map(|(raw, skipped)| Decoded {
                        name: info.name.clone(),
                        raw,
                        skipped,
                    });
                    if decoded.send(sent).is_err() || failed {
                        return;
                    }
                }
            });
            // `chunks` goes with the call: when it returns, early or not, the decoder's next
            // send fails and the scope can join it.
            self.consume(chunks, pieces, recycled)
        })
    }

    /// Turns the decoded chunks into COPY pieces.
    fn consume(
        &mut self,
        chunks: std::sync::mpsc::Receiver<Result<Decoded, BackupError>>,
        pieces: &tokio::sync::mpsc::Sender<Result<CopyPiece, BackupError>>,
        recycled: &std::sync::mpsc::Receiver<Vec<u8>>,
    ) -> Result<(), BackupError> {
        let m = &self.m;
        let fresh = || Vec::with_capacity(COPY_PIECE + COPY_PIECE / 4);
        let mut out = fresh();
        let mut rows = 0u64;
        let mut scratch = Vec::new();
        for decoded in chunks {
            let Decoded { name, raw, skipped } = decoded?;
            let mut reader = codec::Reader::new(&raw);
            let mut values = Vec::with_capacity(self.columns);
            let (mut records, mut unchanged) = (skipped, 0u64);
            // With a filter or a tenant, most rows are only looked at by key or tenant: the
            // other values are stepped over, and read in full only for rows that are sent.
            let tenant_column = self.tenant.as_ref().map(|(_, i)| *i);
            let wanted: Option<Vec<bool>> = match (&self.filter, tenant_column) {
                (Some(f), _) => Some(f.wanted(self.columns, tenant_column)),
                (None, Some(i)) => Some((0..self.columns).map(|c| c == i).collect()),
                (None, None) if self.count_only => Some(vec![false; self.columns]),
                (None, None) => None,
            }
            .map(|mut wanted| {
                // The later keys are checked before the row is read in full.
                for &i in self.leave.iter().flat_map(|(_, positions)| positions) {
                    if let Some(w) = wanted.get_mut(i) {
                        *w = true;
                    }
                }
                wanted
            });
            loop {
                let at = reader.position();
                let next = match &wanted {
                    Some(wanted) => reader.next_ref_only(self.columns, 0, wanted, &mut values)?,
                    None => reader.next_ref(self.columns, 0, &mut values)?,
                };
                let Some(tag) = next else {
                    break;
                };
                records += 1;
                if tag != codec::ROW {
                    return Err(BackupError::CorruptChunk {
                        id: m.id.clone(),
                        chunk: name.clone(),
                        reason: "a delete record in a full backup".into(),
                    });
                }
                if let Some((tn, i)) = &self.tenant
                    && !values.get(*i).is_some_and(|v| v.names_tenant(tn))
                {
                    continue;
                }
                // A full step (the chain's first) leaves every key a later step names.
                if let Some((keys, positions)) = &self.leave
                    && keys.named_after(
                        keyset::key_parts(true, &values, positions),
                        0,
                        &mut scratch,
                    )
                {
                    continue;
                }
                if let Some(filter) = &mut self.filter
                    && !filter.must_compare(&values)
                {
                    unchanged += 1;
                    continue;
                }
                rows += 1;
                if self.count_only {
                    continue;
                }
                if wanted.is_some() {
                    reader.rewind(at);
                    reader.next_ref(self.columns, 0, &mut values)?;
                }
                copy::put_row(&mut out, &values);
                if out.len() >= COPY_PIECE {
                    let next = recycled.try_recv().unwrap_or_else(|_| fresh());
                    let full = std::mem::replace(&mut out, next);
                    if pieces
                        .blocking_send(Ok(CopyPiece::Text(full, std::mem::take(&mut rows))))
                        .is_err()
                    {
                        return Ok(());
                    }
                }
            }
            if self.count_only
                && pieces
                    .blocking_send(Ok(CopyPiece::Text(Vec::new(), std::mem::take(&mut rows))))
                    .is_err()
            {
                return Ok(());
            }
            if pieces
                .blocking_send(Ok(CopyPiece::ChunkDone { records, unchanged }))
                .is_err()
            {
                return Ok(());
            }
        }
        if !out.is_empty() {
            let _ = pieces.blocking_send(Ok(CopyPiece::Text(out, rows)));
        }
        Ok(())
    }
}

fn join_error(e: tokio::task::JoinError) -> BackupError {
    BackupError::Database(format!("a restore worker stopped: {e}"))
}

async fn tables_in(conn: &mut PgConnection) -> Result<Vec<String>, BackupError> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
    )
    .fetch_all(&mut *conn)
    .await?)
}

const CREATE_LOG: &str = "CREATE TABLE IF NOT EXISTS rbac_backup_log (\
    id BIGSERIAL PRIMARY KEY, operation TEXT NOT NULL, backup_id TEXT, \
    scope TEXT NOT NULL, status TEXT NOT NULL, actor TEXT NOT NULL, started_at TEXT NOT NULL, \
    finished_at TEXT, size BIGINT, rows BIGINT, duration_ms BIGINT, error TEXT)";

/// Adds a log row; returns its id.
pub(crate) async fn log_start(
    url: &str,
    op: Operation,
    backup_id: Option<&str>,
    scope: &Scope,
    actor: &str,
    status: Status,
    error: Option<&str>,
) -> Result<i64, BackupError> {
    let mut conn = connect(url).await?;
    sqlx::query(CREATE_LOG).execute(&mut conn).await?;
    let now = chrono::Utc::now().to_rfc3339();
    let finished = error.map(|_| now.clone());
    Ok(sqlx::query_scalar(
        "INSERT INTO rbac_backup_log (operation, backup_id, scope, status, actor, started_at, finished_at, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8::text IS NULL THEN NULL ELSE 0 END) RETURNING id",
    )
    .bind(op.as_str())
    .bind(backup_id)
    .bind(scope.to_string())
    .bind(status.as_str())
    .bind(actor)
    .bind(now)
    .bind(finished)
    .bind(error)
    .fetch_one(&mut conn)
    .await?)
}

/// Closes a log row.
pub(crate) async fn log_finish(
    url: &str,
    id: i64,
    outcome: &Outcome<'_>,
) -> Result<(), BackupError> {
    let mut conn = connect(url).await?;
    let started: Option<String> =
        sqlx::query_scalar("SELECT started_at FROM rbac_backup_log WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut conn)
            .await?;
    let now = chrono::Utc::now();
    let duration = started
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|s| {
            (now - s.with_timezone(&chrono::Utc))
                .num_milliseconds()
                .max(0)
        });
    let status = if outcome.error.is_some() {
        Status::Failed
    } else {
        Status::Success
    };
    sqlx::query(
        "UPDATE rbac_backup_log SET status = $2, finished_at = $3, size = $4, rows = $5, \
         duration_ms = $6, error = $7, backup_id = COALESCE($8, backup_id) WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(now.to_rfc3339())
    .bind(outcome.size.map(|s| s as i64))
    .bind(outcome.rows.map(|s| s as i64))
    .bind(duration)
    .bind(outcome.error.as_deref())
    .bind(outcome.backup_id)
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Marks `running` rows of a dead backup failed.
pub(crate) async fn log_abandoned(url: &str, backup_id: &str) -> Result<(), BackupError> {
    let mut conn = connect(url).await?;
    sqlx::query(CREATE_LOG).execute(&mut conn).await?;
    sqlx::query(
        "UPDATE rbac_backup_log SET status = 'failed', finished_at = $2, \
         error = 'interrupted: the process ended before the manifest was written; partial data removed' \
         WHERE backup_id = $1 AND status IN ('running', 'pending')",
    )
    .bind(backup_id)
    .bind(chrono::Utc::now().to_rfc3339())
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Log rows matching `query`, newest first.
pub(crate) async fn log_query(url: &str, query: &LogQuery) -> Result<Vec<LogEntry>, BackupError> {
    let mut conn = connect(url).await?;
    sqlx::query(CREATE_LOG).execute(&mut conn).await?;
    let rows = sqlx::query(
        "SELECT id, operation, backup_id, scope, status, actor, started_at, finished_at, size, \
         rows, duration_ms, error FROM rbac_backup_log \
         WHERE ($1::text IS NULL OR operation = $1) AND ($2::text IS NULL OR status = $2) \
           AND ($3::text IS NULL OR backup_id = $3) \
           AND ($5::text[] IS NULL OR scope = ANY($5)) ORDER BY id DESC LIMIT $4",
    )
    .bind(query.operation.as_deref())
    .bind(query.status.map(Status::as_str))
    .bind(query.backup_id.as_deref())
    .bind(i64::from(query.limit.unwrap_or(100)))
    .bind(query.scopes.as_deref())
    .fetch_all(&mut conn)
    .await?;
    let time = |s: Option<String>| {
        s.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let mut out = Vec::new();
    for r in rows {
        out.push(LogEntry {
            id: r.try_get(0)?,
            operation: r.try_get(1)?,
            backup_id: r.try_get(2)?,
            scope: r.try_get(3)?,
            status: Status::parse(&r.try_get::<String, _>(4)?),
            actor: r.try_get(5)?,
            started_at: time(Some(r.try_get(6)?)).unwrap_or_default(),
            finished_at: time(r.try_get(7)?),
            size: r.try_get::<Option<i64>, _>(8)?.map(|v| v as u64),
            rows: r.try_get::<Option<i64>, _>(9)?.map(|v| v as u64),
            duration_ms: r.try_get::<Option<i64>, _>(10)?.map(|v| v as u64),
            error: r.try_get(11)?,
        });
    }
    Ok(out)
}
