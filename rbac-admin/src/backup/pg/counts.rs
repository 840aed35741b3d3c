//! The rows each table of a dry run holds in scope, counted on a second connection while the
//! first one compares.
//!
//! A dry run checks that the rows a table holds in scope (all of them, or a tenant's) add up
//! to what its comparison implies. Counting them scans the table, or the tenant's part of an
//! index, which on a large table takes as long as the comparison itself; and while the first
//! connection waits for the backup's rows to be decompressed, its server sits idle. So a
//! second connection counts every table of the full step, in order, reading the dry run's own
//! snapshot (`pg_export_snapshot`, then `SET TRANSACTION SNAPSHOT`): the same rows, counted
//! meanwhile. Anything that goes wrong on the second connection (none to be had, a snapshot
//! that cannot be imported, a lock not granted in time) only means the dry run counts the
//! rest on its own connection, as before.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{AssertSqlSafe, PgConnection};
use tokio::sync::oneshot;

use super::super::model::BackupError;
use super::super::plan::quote;
use super::connect;

/// A table to count: its name and, for a tenant's dry run, its tenant column.
pub(crate) struct Counted {
    pub(crate) table: String,
    pub(crate) tenant_column: Option<String>,
}

/// Counts under way; each table's is taken once. Dropped, it stops the counting.
pub(crate) struct ScopeCounts {
    counted: Mutex<HashMap<String, oneshot::Receiver<u64>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ScopeCounts {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// How long the second connection waits for a table's lock. The dry run's own connection
/// holds a share lock on each table from the start; if another session then queues for an
/// exclusive one (`ALTER TABLE`, `TRUNCATE`), the second connection's count would wait behind
/// it while the dry run waits for the count, a cycle PostgreSQL cannot see. Past this, the
/// second connection gives up and the dry run counts the rest itself, through the lock it
/// holds.
const LOCK_TIMEOUT: &str = "200ms";

impl ScopeCounts {
    /// None: every table is counted on the dry run's connection.
    pub(crate) fn none() -> ScopeCounts {
        ScopeCounts {
            counted: Mutex::new(HashMap::new()),
            task: None,
        }
    }

    /// Exports the snapshot of `tx` (a `REPEATABLE READ` transaction) and starts counting
    /// `tables`, in order, on a new connection to `url` that imports it. The transaction
    /// must stay open until the counts are taken.
    pub(crate) async fn start(
        tx: &mut PgConnection,
        url: &str,
        tables: Vec<Counted>,
        tenant: Option<&str>,
    ) -> Result<ScopeCounts, BackupError> {
        // Not in a savepoint: PostgreSQL exports no snapshot from a subtransaction. It
        // needs no privilege and works on a standby too; if it fails all the same, so does
        // the dry run, with the reason (its transaction is aborted).
        let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await?;
        let mut counted = HashMap::new();
        let mut work = Vec::new();
        for t in tables {
            let (send, receive) = oneshot::channel();
            counted.insert(t.table.clone(), receive);
            work.push((t, send));
        }
        let (url, tenant) = (url.to_owned(), tenant.map(str::to_owned));
        let task = tokio::spawn(async move {
            if let Err(e) = count_all(&url, &snapshot, work, tenant.as_deref()).await {
                // The tables not counted yet are counted by the dry run itself.
                tracing::debug!(target: "rbac::backup", error = %e, "counting on a second connection stopped");
            }
        });
        Ok(ScopeCounts {
            counted: Mutex::new(counted),
            task: Some(task),
        })
    }

    /// The count of `table`, once the second connection has it; None if it is not counting
    /// it (or stopped).
    pub(crate) async fn take(&self, table: &str) -> Option<u64> {
        // A poisoned lock only means counting here.
        let receiver = self.counted.lock().ok()?.remove(table)?;
        receiver.await.ok()
    }
}

async fn count_all(
    url: &str,
    snapshot: &str,
    work: Vec<(Counted, oneshot::Sender<u64>)>,
    tenant: Option<&str>,
) -> Result<(), BackupError> {
    // A snapshot id is hexadecimal digits and dashes; anything else is not put in SQL.
    if snapshot.is_empty() || !snapshot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(BackupError::Database(format!(
            "unexpected snapshot id `{snapshot}`"
        )));
    }
    let mut conn = connect(url).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET lock_timeout = '{LOCK_TIMEOUT}'; \
         BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
    )))
    .execute(&mut conn)
    .await?;
    for (t, send) in work {
        if send.is_closed() {
            // Nobody waits for this count (the dry run ended, or counted it itself).
            continue;
        }
        let n = count_in_scope(&mut conn, &t.table, t.tenant_column.as_deref(), tenant).await?;
        // The dry run may have stopped: then nobody waits.
        let _ = send.send(n);
    }
    sqlx::query("ROLLBACK").execute(&mut conn).await?;
    Ok(())
}

/// The rows of `table` in scope: all, or those whose `tenant_column` is `tenant`.
pub(crate) async fn count_in_scope(
    conn: &mut PgConnection,
    table: &str,
    tenant_column: Option<&str>,
    tenant: Option<&str>,
) -> Result<u64, BackupError> {
    let table = quote(table);
    let n: i64 = match (tenant_column, tenant) {
        (Some(c), Some(tn)) => {
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} WHERE {}::text = $1",
                quote(c)
            )))
            .bind(tn)
            .fetch_one(&mut *conn)
            .await?
        }
        _ => {
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *conn)
                .await?
        }
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    #[tokio::test]
    #[cfg_attr(
        not(rbac_pg_tests),
        ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
    )]
    async fn the_second_connection_counts_in_the_dry_runs_snapshot() {
        let url = std::env::var("RBAC_TEST_POSTGRES_URL").expect("RBAC_TEST_POSTGRES_URL");
        let table = format!("rbac_counts_test_{}", fastrand::u64(..));
        let mut writer = connect(&url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, tenant_id TEXT);
             INSERT INTO {table} SELECT i, CASE WHEN i % 3 = 0 THEN 'acme' END
               FROM generate_series(1, 30) i;"
        )))
        .execute(&mut writer)
        .await
        .unwrap();
        let mut conn = connect(&url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(
            count_in_scope(&mut tx, &table, Some("tenant_id"), Some("acme"))
                .await
                .unwrap(),
            10
        );
        // Committed after the dry run's snapshot: neither connection sees it.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO {table} VALUES (100, 'acme'), (101, NULL)"
        )))
        .execute(&mut writer)
        .await
        .unwrap();
        let counted = |tenant_column: Option<&str>| {
            vec![Counted {
                table: table.clone(),
                tenant_column: tenant_column.map(str::to_owned),
            }]
        };
        let counts = ScopeCounts::start(&mut tx, &url, counted(Some("tenant_id")), Some("acme"))
            .await
            .unwrap();
        assert_eq!(counts.take(&table).await, Some(10));
        assert_eq!(counts.take(&table).await, None, "taken once");
        let all = ScopeCounts::start(&mut tx, &url, counted(None), None)
            .await
            .unwrap();
        assert_eq!(all.take(&table).await, Some(30));
        assert_eq!(ScopeCounts::none().take(&table).await, None);
        // A table that is not there stops the counting: the dry run counts the rest itself.
        let missing = ScopeCounts::start(
            &mut tx,
            &url,
            vec![
                Counted {
                    table: format!("{table}_missing"),
                    tenant_column: None,
                },
                Counted {
                    table: table.clone(),
                    tenant_column: None,
                },
            ],
            None,
        )
        .await
        .unwrap();
        assert_eq!(missing.take(&table).await, None);
        tx.rollback().await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(&mut writer)
            .await
            .unwrap();
    }
}
