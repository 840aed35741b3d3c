//! `status`: schema version, counts, last backup, policy version and audit chain state.

use std::io::Write;

use sqlx::Row;

use crate::cli::Format;
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// The backup module's operation log table; `status` reports the newest successful backup in it
/// when the table is in the policy database.
pub const BACKUP_LOG_TABLE: &str = "rbac_backup_log";

/// Counts of what the policy holds.
#[derive(Debug, serde::Serialize)]
struct Counts {
    permissions: usize,
    roles: usize,
    tenant_role_layers: usize,
    tenants: usize,
    users: usize,
    assignments: usize,
    audit_records: i64,
    decision_records: i64,
}

/// The audit chains' state.
#[derive(Debug, serde::Serialize)]
struct Chains {
    intact: bool,
    first_broken_change: Option<i64>,
    first_broken_decision: Option<i64>,
}

/// `status`'s answer.
#[derive(Debug, serde::Serialize)]
struct Status {
    db: String,
    backend: &'static str,
    schema_version: Option<i64>,
    policy_version: i64,
    counts: Counts,
    last_backup: Option<String>,
    audit: Chains,
}

/// Runs `status`.
pub async fn run(ctx: &Context, out: &mut dyn Write) -> Result<Exit, CliError> {
    let format = ctx.require_format("status", &[Format::Text, Format::Json])?;
    let store = ctx.connect_existing().await?;
    let policy = ctx.authorize(&store, "system.status.read", None).await?;
    let version = store.version().await?;
    let chains = store.verify_audit().await?;
    let (schema_version, last_backup) = schema_and_backup(&ctx.db_url).await;
    let doc = policy.document();
    let status = Status {
        db: store.url().to_owned(),
        backend: match store.backend() {
            rbac_core::store::Backend::Postgres => "postgres",
            _ => "sqlite",
        },
        schema_version,
        policy_version: version,
        counts: Counts {
            permissions: doc.permissions.0.len(),
            roles: doc.roles.len(),
            tenant_role_layers: doc.tenants.values().map(|t| t.roles.len()).sum(),
            tenants: doc.tenants.len(),
            users: doc.subjects.len(),
            assignments: doc
                .subjects
                .values()
                .map(|s| s.roles.len() + s.tenants.values().map(Vec::len).sum::<usize>())
                .sum(),
            audit_records: chains.changes,
            decision_records: chains.decisions,
        },
        last_backup,
        audit: Chains {
            intact: chains.is_intact(),
            first_broken_change: chains.first_broken_change,
            first_broken_decision: chains.first_broken_decision,
        },
    };
    if format == Format::Json {
        output::json(out, &status)?;
        return Ok(Exit::Ok);
    }
    let c = &status.counts;
    let chain = match (chains.first_broken_change, chains.first_broken_decision) {
        (None, None) => format!(
            "intact ({} change records, {} decision records)",
            c.audit_records, c.decision_records
        ),
        (change, decision) => {
            let mut broken = Vec::new();
            if let Some(id) = change {
                broken.push(format!("change record {id}"));
            }
            if let Some(id) = decision {
                broken.push(format!("decision record {id}"));
            }
            format!(
                "BROKEN at {}; run `rbac-admin audit verify`",
                broken.join(" and ")
            )
        }
    };
    let rows = [
        ("database", format!("{} ({})", status.db, status.backend)),
        (
            "schema version",
            status
                .schema_version
                .map_or("unknown".to_owned(), |v| v.to_string()),
        ),
        ("policy version", status.policy_version.to_string()),
        ("permissions", c.permissions.to_string()),
        (
            "roles",
            format!("{} global, {} tenant layers", c.roles, c.tenant_role_layers),
        ),
        ("tenants", c.tenants.to_string()),
        (
            "users",
            format!("{} ({} assignments)", c.users, c.assignments),
        ),
        (
            "last backup",
            status
                .last_backup
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
        ),
        ("audit chain", chain),
    ];
    for (key, value) in rows {
        writeln!(out, "{:<15} {value}", format!("{key}:"))?;
    }
    Ok(Exit::Ok)
}

/// The newest applied migration, and the newest backup log entry if there is a backup log.
/// Either is `None` when it cannot be read: `status` reports, it does not fail on them.
async fn schema_and_backup(url: &str) -> (Option<i64>, Option<String>) {
    let Ok(pool) = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
    else {
        return (None, None);
    };
    let schema = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .ok()
        .and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten());
    // The backup module's operation log (`backup::log`, finished_at as RFC 3339 text), when it
    // lives in this database.
    let backup = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT MAX(finished_at) FROM {BACKUP_LOG_TABLE} \
         WHERE operation = 'create' AND status = 'success'"
    )))
    .fetch_one(&pool)
    .await
    .ok()
    .and_then(|row| row.try_get::<Option<String>, _>(0).ok().flatten());
    pool.close().await;
    (schema, backup)
}
