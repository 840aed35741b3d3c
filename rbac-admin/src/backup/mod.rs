//! Backups of the application database: full and incremental, for everything, one tenant or a
//! set of modules; compressed, optionally encrypted, verified, restorable (with a dry run first)
//! in one transaction, and gated by permissions.
//!
//! # Model
//! - A backup is a set of **chunks** (records of one table, [zstd], SHA-256 each, optionally
//!   sealed with AES-256-GCM under a fresh per-backup data key wrapped for age recipients) and a
//!   [`Manifest`] written **last**, atomically: a backup without a manifest is incomplete, never
//!   listed, and removed by the next run ([`BackupService::clean_incomplete`]). In a full
//!   backup, each chunk's rows are grouped by tenant, one zstd frame per group
//!   ([`ChunkInfo::groups`]): a tenant restore decompresses only its own groups and the mixed
//!   one.
//! - [`Scope`]: `all`, `tenant:T` (rows whose tenant column is `T`, plus `T`'s row in the tenant
//!   table) or `modules:A,B` (the configured tables). Secret columns are never written.
//! - [`BackupKind::Incremental`]: rows inserted or updated since the parent, and deletes, from a
//!   change log (`rbac_backup_changes`) filled by triggers the first full backup installs (same
//!   design on both databases). Cost on writes: one extra indexed row insert per inserted,
//!   updated or deleted row (two when an update changes the key or the tenant). Restores
//!   bypass the triggers and leave a mark: the next incremental then asks for a full backup.
//! - Reads run in **one read transaction** (a consistent snapshot while writers go on), while a
//!   second thread compresses, seals and hashes the chunks (of about 4 MiB of records). Memory
//!   is bounded: the chunk being filled, one waiting, one being compressed (and its copy
//!   regrouped by tenant), two queued for upload.
//! - Every operation takes an [`Actor`] (subject + [`Authorizer`]) and requires its
//!   [`Operation::permission`]; a grant held only in tenant `T` covers only `tenant:T`. Every
//!   operation, denials included, is recorded in the log table [`LOG_TABLE`] ([`LogQuery`]).
//!
//! Databases: SQLite (read and written through rusqlite, on the same libsqlite3 as sqlx) and
//! PostgreSQL (sqlx; one `REPEATABLE READ` snapshot read with `COPY ... TO STDOUT`, values in
//! their exact text form; full restores with `COPY ... FROM STDIN`).
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rbac_admin::backup::*;
//! use rbac_core::{Engine, Policy};
//!
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("app.db");
//! let conn = rusqlite::Connection::open(&db)?;
//! conn.execute_batch("CREATE TABLE tenants (id TEXT PRIMARY KEY);
//!     CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT, amount REAL);
//!     INSERT INTO tenants VALUES ('acme'), ('globex');
//!     INSERT INTO invoices VALUES (1, 'acme', 10.5), (2, 'globex', 7);")?;
//!
//! let config = BackupConfig::from_toml_str(&format!(
//!     "database = 'sqlite://{}'\nstorage = '{}'\ntenant_table = 'tenants'\n",
//!     db.display(),
//!     dir.path().join("backups").display()
//! ))?;
//! let service = BackupService::open(config)?;
//! let engine = Engine::new(&Policy::from_toml_str(r#"
//!     [permissions.system.backup]
//!     create = ""
//!     restore = ""
//!     [roles.operator]
//!     grants = ["system.backup.*"]
//!     [subjects.ops]
//!     roles = ["operator"]
//! "#)?);
//! let ops = Actor::new("ops", &engine);
//!
//! let full = CreateRequest { kind: BackupKind::Full, scope: Scope::All };
//! let manifest = create(&service, &full, &ops, &NoProgress).await?;
//! assert_eq!(manifest.rows(), 4);
//!
//! conn.execute("DELETE FROM invoices", [])?;
//! let mut request = RestoreRequest::dry_run(manifest.id.clone());
//! let report = service.restore(&request, &ops, &NoProgress).await?;
//! assert_eq!(report.tables.iter().map(|t| t.insert).sum::<u64>(), 2); // nothing changed yet
//! request.dry_run = false;
//! service.restore(&request, &ops, &NoProgress).await?;
//! let n: i64 = conn.query_row("SELECT count(*) FROM invoices", [], |r| r.get(0))?;
//! assert_eq!(n, 2);
//!
//! // Someone without the permission is refused, and the refusal is logged.
//! let nobody = Actor::new("mallory", &engine);
//! assert!(create(&service, &full, &nobody, &NoProgress).await.unwrap_err().is_denied());
//! # Ok(()) }
//! ```

pub mod http;
mod model;
pub mod retention;
pub mod schedule;
pub mod schedule_cli;

pub use model::{
    BackupError, BackupId, BackupKind, BackupSummary, ChunkGroup, ChunkInfo, ColumnInfo,
    Compression, DEFAULT_MAX_CHAIN_LINKS, Encryption, MANIFEST_FORMAT, Manifest, Operation, Scope,
    TableManifest, WrappedKey,
};
mod affinity;
mod codec;
mod config;
mod crypto;
mod files;
mod storage;

pub use config::{BackupConfig, EncryptionConfig};
pub use files::{FILES_TABLE, FileEntry, FilesManifest, FilesReport};
mod changelog;
mod chunk;
mod gate;
mod keyset;
mod plan;
mod progress;
mod sqlite;

pub use gate::{Actor, Authorizer};
pub use plan::INTERNAL_PREFIX;
pub use progress::{NoProgress, Progress};
pub use sqlite::TableReport;
pub mod cli;
mod log;
mod pg;
mod service;

pub use log::{LOG_TABLE, LogEntry, LogQuery, Status};
pub use service::{
    BackupService, CreateRequest, FailPoint, RestoreReport, RestoreRequest, Selector, VerifyReport,
};

/// Makes a backup of `request.scope` as `actor` (who needs `system.backup.create` globally, or
/// in the tenant for a `tenant:T` scope), reporting progress; returns its manifest. An
/// incremental builds on the latest complete backup of the same scope.
///
/// It holds the scope's lease in `rbac_backup_leases` while it runs, the one scheduled runs
/// take: while another backup of the same scope runs, here, in a scheduler or in another
/// process, it fails with [`BackupError::Busy`] (HTTP 409) and changes nothing.
pub async fn create(
    service: &BackupService,
    request: &CreateRequest,
    actor: &Actor<'_>,
    progress: &dyn Progress,
) -> Result<Manifest, BackupError> {
    service.create(request, actor, progress).await
}
