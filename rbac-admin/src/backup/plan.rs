//! Which tables and columns a backup of a scope covers, from the database's own catalogue.

use sha2::{Digest, Sha256};

use super::config::BackupConfig;
use super::model::{BackupError, ColumnInfo, Scope, TableManifest};

/// Tables whose names start with this belong to the backup module (log, change log,
/// schedules) and are never backed up or restored.
pub const INTERNAL_PREFIX: &str = "rbac_backup_";

/// A table as the catalogue describes it.
#[derive(Debug, Clone)]
pub(crate) struct TableDef {
    pub(crate) name: String,
    /// `(name, declared type)` in table order.
    pub(crate) columns: Vec<(String, String)>,
    /// Primary key columns in key order.
    pub(crate) primary_key: Vec<String>,
    pub(crate) create_sql: Option<String>,
}

/// The tables of every table the configuration allows, with secret columns left out, sorted
/// by name; an error for a table without a primary key.
pub(crate) fn all_tables(
    defs: Vec<TableDef>,
    config: &BackupConfig,
) -> Result<Vec<TableManifest>, BackupError> {
    let mut out = Vec::new();
    for def in defs {
        if def.name.starts_with(INTERNAL_PREFIX)
            || def.name.starts_with("sqlite_")
            || config.exclude_tables.contains(&def.name)
        {
            continue;
        }
        if def.primary_key.is_empty() {
            return Err(BackupError::Schema(format!(
                "table `{}` has no primary key: add one, or list it in `exclude_tables`",
                def.name
            )));
        }
        let mut columns = Vec::new();
        let mut omitted = Vec::new();
        for (name, decl_type) in &def.columns {
            if config.is_secret(&def.name, name) {
                if def.primary_key.contains(name) {
                    return Err(BackupError::Config(format!(
                        "secret column `{}.{name}` is part of the primary key",
                        def.name
                    )));
                }
                omitted.push(name.clone());
            } else {
                columns.push(ColumnInfo {
                    name: name.clone(),
                    decl_type: decl_type.clone(),
                });
            }
        }
        let tenant_column = if config.tenant_table.as_deref() == Some(def.name.as_str()) {
            match (&config.tenant_key, def.primary_key.as_slice()) {
                (Some(k), _) => Some(k.clone()),
                (None, [one]) => Some(one.clone()),
                (None, _) => {
                    return Err(BackupError::Config(format!(
                        "tenant table `{}` has a composite key: set `tenant_key`",
                        def.name
                    )));
                }
            }
        } else {
            def.columns
                .iter()
                .any(|(c, _)| *c == config.tenant_column)
                .then(|| config.tenant_column.clone())
        };
        if let Some(tc) = &tenant_column
            && !columns.iter().any(|c| &c.name == tc)
        {
            return Err(BackupError::Config(format!(
                "tenant column `{}.{tc}` is missing or secret",
                def.name
            )));
        }
        out.push(TableManifest {
            name: def.name,
            columns,
            omitted_columns: omitted,
            primary_key: def.primary_key,
            tenant_column,
            rows: 0,
            deleted: 0,
            create_sql: def.create_sql,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The subset of `tables` a scope covers.
pub(crate) fn for_scope(
    tables: Vec<TableManifest>,
    config: &BackupConfig,
    scope: &Scope,
) -> Result<Vec<TableManifest>, BackupError> {
    match scope {
        Scope::All => Ok(tables),
        Scope::Tenant(_) => {
            if config.tenant_table.is_none() && !tables.iter().any(|t| t.tenant_column.is_some()) {
                return Err(BackupError::Config(format!(
                    "no table has the tenant column `{}`: set `tenant_column`/`tenant_table`",
                    config.tenant_column
                )));
            }
            Ok(tables
                .into_iter()
                .filter(|t| t.tenant_column.is_some())
                .collect())
        }
        Scope::Modules(modules) => {
            let wanted = config.module_tables(modules)?;
            select_tables(tables, &wanted)
        }
    }
}

/// The named tables, each of which must exist.
pub(crate) fn select_tables(
    tables: Vec<TableManifest>,
    wanted: &[String],
) -> Result<Vec<TableManifest>, BackupError> {
    for w in wanted {
        if !tables.iter().any(|t| &t.name == w) {
            return Err(BackupError::InvalidInput(format!(
                "table `{w}` is not in the database (or not backed up)"
            )));
        }
    }
    Ok(tables
        .into_iter()
        .filter(|t| wanted.contains(&t.name))
        .collect())
}

/// A fingerprint of the tables' shape: names, columns, types, keys.
pub(crate) fn schema_version(tables: &[TableManifest]) -> String {
    let mut h = Sha256::new();
    for t in tables {
        h.update(t.name.as_bytes());
        h.update([0]);
        for c in &t.columns {
            h.update(c.name.as_bytes());
            h.update([1]);
            h.update(c.decl_type.as_bytes());
            h.update([2]);
        }
        for k in &t.primary_key {
            h.update(k.as_bytes());
            h.update([3]);
        }
    }
    hex::encode(&h.finalize()[..8])
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
