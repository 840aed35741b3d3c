//! The backup configuration (TOML): which database, how tenants and modules map to tables,
//! which columns are secret, where backups go and where keys come from.
//!
//! ```toml
//! database = "sqlite:///var/lib/app/app.db"     # or postgres://user@host/db
//! storage = "/var/backups/app"                  # or s3://bucket/prefix, gs://…, az://…
//! # storage_endpoint = "http://127.0.0.1:9000"  # S3-compatible servers
//! tenant_table = "tenants"
//! tenant_column = "tenant_id"                   # the column naming a row's tenant
//! tenant_key = "id"                             # the tenant table's key holding the tenant name
//! secret_columns = ["users.password_hash", "api_keys.secret"]
//! exclude_tables = ["sessions"]
//! zstd_level = 3
//! # max_chain_links = 1000                      # incrementals per chain before a full one
//!
//! [modules]
//! finance = ["accounts", "journal_entries", "invoices", "payments"]
//! crm = ["customers", "contacts"]
//!
//! [encryption]
//! recipients = ["age1..."]                       # public keys: can create, cannot read
//! # passphrase_env = "RBAC_BACKUP_PASSPHRASE"    # or a passphrase (scrypt) from the environment
//! # identity_files = ["/etc/rbac/backup.key"]    # private keys, for verify/restore
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::BackupError;

/// The backup configuration. Keys are never stored here, only where to find them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The application database URL (`sqlite://FILE` or `postgres://...`).
    pub database: String,
    /// Where backups are stored: a local directory (default), `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `az://container/prefix`.
    pub storage: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`), for servers other than AWS; for
    /// Azure, the account URL. Refused for a directory, and for `gs://`: Google's client
    /// takes its endpoint from `gcs_base_url` in the service account key.
    #[serde(default)]
    pub storage_endpoint: Option<String>,
    /// Settings of the object store's client, by `object_store` config key (`aws_region`,
    /// `aws_virtual_hosted_style_request`, `google_service_account`,
    /// `azure_storage_account_name`, ...); they override the environment. Keep secrets in the
    /// environment rather than here.
    #[serde(default)]
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// The table holding one row per tenant.
    #[serde(default)]
    pub tenant_table: Option<String>,
    /// The column that names a row's tenant, in every tenant-owned table.
    #[serde(default = "default_tenant_column")]
    pub tenant_column: String,
    /// The tenant table's column holding the tenant name (defaults to its primary key).
    #[serde(default)]
    pub tenant_key: Option<String>,
    /// Module name → its tables.
    #[serde(default)]
    pub modules: BTreeMap<String, Vec<String>>,
    /// `table.column` entries never written to a backup.
    #[serde(default)]
    pub secret_columns: Vec<String>,
    /// Tables left out of every backup.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// A files directory (uploads) stored with full backups of scope `all`.
    #[serde(default)]
    pub files_dir: Option<PathBuf>,
    /// The zstd level (1–19; 3 by default).
    #[serde(default = "default_level")]
    pub zstd_level: i32,
    /// Encryption settings; absent means backups are not encrypted.
    #[serde(default)]
    pub encryption: Option<EncryptionConfig>,
    /// The most incrementals one chain takes (1–10,000; absent:
    /// [`DEFAULT_MAX_CHAIN_LINKS`](super::DEFAULT_MAX_CHAIN_LINKS)). Past it an incremental
    /// needs a full backup first; a scheduled one makes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chain_links: Option<u32>,
}

fn default_tenant_column() -> String {
    "tenant_id".into()
}

fn default_level() -> i32 {
    3
}

/// Where encryption keys come from. Keys are read when needed and never logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// age X25519 public keys (`age1...`) the data key is wrapped for.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Files holding age public keys, one a line (`#` comments allowed).
    #[serde(default)]
    pub recipient_files: Vec<PathBuf>,
    /// An environment variable holding a passphrase; the data key is also wrapped with it
    /// (scrypt), and it can unwrap.
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// A file holding a passphrase (first line), used like `passphrase_env`.
    #[serde(default)]
    pub passphrase_file: Option<PathBuf>,
    /// age identity files (private keys `AGE-SECRET-KEY-1...`), for reading backups.
    #[serde(default)]
    pub identity_files: Vec<PathBuf>,
    /// An environment variable holding an age identity, for reading backups.
    #[serde(default)]
    pub identity_env: Option<String>,
}

impl BackupConfig {
    /// Parses a TOML configuration and checks it.
    pub fn from_toml_str(text: &str) -> Result<BackupConfig, BackupError> {
        let config: BackupConfig =
            toml::from_str(text).map_err(|e| BackupError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<BackupConfig, BackupError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BackupError::Config(format!(
                    "the backup configuration `{}` does not exist: write one (see the README, \"Backups\") or pass --config FILE or RBAC_BACKUP_CONFIG",
                    path.display()
                ))
            } else {
                BackupError::Io {
                    context: format!("cannot read the backup configuration `{}`", path.display()),
                    source,
                }
            }
        })?;
        BackupConfig::from_toml_str(&text)
            .map_err(|e| BackupError::Config(format!("{}: {e}", path.display())))
    }

    /// Checks the parts that can be checked without a database.
    pub fn validate(&self) -> Result<(), BackupError> {
        if self.database.is_empty() {
            return Err(BackupError::Config("`database` is empty".into()));
        }
        if self.storage.is_empty() {
            return Err(BackupError::Config("`storage` is empty".into()));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(BackupError::Config(format!(
                "`zstd_level` {} is out of range 1..=19",
                self.zstd_level
            )));
        }
        if let Some(n) = self.max_chain_links
            && !(1..=10_000).contains(&n)
        {
            return Err(BackupError::Config(format!(
                "`max_chain_links` {n} is out of range 1..=10000"
            )));
        }
        for entry in &self.secret_columns {
            if entry
                .split_once('.')
                .is_none_or(|(t, c)| t.is_empty() || c.is_empty())
            {
                return Err(BackupError::Config(format!(
                    "secret column `{entry}` must be written `table.column`"
                )));
            }
        }
        for (module, tables) in &self.modules {
            if tables.is_empty() {
                return Err(BackupError::Config(format!(
                    "module `{module}` lists no tables"
                )));
            }
        }
        Ok(())
    }

    /// Whether `table.column` is secret.
    pub fn is_secret(&self, table: &str, column: &str) -> bool {
        self.secret_columns
            .iter()
            .any(|e| e.split_once('.') == Some((table, column)))
    }

    /// The tables of `modules`, or an error naming an unknown module.
    pub fn module_tables(&self, modules: &[String]) -> Result<Vec<String>, BackupError> {
        let mut out = Vec::new();
        for m in modules {
            let tables = self.modules.get(m).ok_or_else(|| {
                BackupError::InvalidInput(format!(
                    "unknown module `{m}`; configured: {}",
                    self.modules.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            out.extend(tables.iter().cloned());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let c = BackupConfig::from_toml_str(
            r#"
database = "sqlite://app.db"
storage = "/tmp/b"
tenant_table = "tenants"
secret_columns = ["users.password_hash"]
[modules]
finance = ["accounts", "invoices"]
"#,
        );
        let c = c.ok();
        assert!(
            c.as_ref()
                .is_some_and(|c| c.is_secret("users", "password_hash"))
        );
        assert!(c.is_some_and(|c| c.tenant_column == "tenant_id" && c.zstd_level == 3));
        assert!(
            BackupConfig::from_toml_str("database = \"x\"\nstorage = \"y\"\nbogus = 1").is_err()
        );
    }
}
