//! The shared vocabulary of the backup module: ids, kinds, scopes, the manifest, summaries and
//! errors. Everything here is plain data (serde) so that the scheduler, retention planner, CLI
//! and HTTP routes can use it without touching storage or databases.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The newest manifest format this build reads and writes; readers refuse newer formats.
/// Format 2 added [`ChunkInfo::groups`]; a backup without groups is still written as
/// format 1, which older tools read.
pub const MANIFEST_FORMAT: u32 = 2;

/// The format a manifest with these chunks is written in: the oldest that describes them.
pub(crate) fn format_for(chunks: &[ChunkInfo]) -> u32 {
    if chunks.iter().any(|c| !c.groups.is_empty()) {
        2
    } else {
        1
    }
}

/// A backup's identifier: `YYYYMMDDTHHMMSSZ-xxxxxxxx` (creation time in UTC, then 8 lowercase
/// hex digits). Ids sort by creation time, and the strict shape means an id can never name a
/// path outside the backup location (no `/`, `..`, `\`, or anything but `[0-9a-fT Z-]`).
///
/// ```
/// use rbac_admin::backup::BackupId;
/// let id: BackupId = "20261123T020000Z-0a1b2c3d".parse().unwrap();
/// assert_eq!(id.as_str(), "20261123T020000Z-0a1b2c3d");
/// assert!("../etc/passwd".parse::<BackupId>().is_err());
/// assert!("20261123T020000Z-0a1b2c3d/..".parse::<BackupId>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A fresh id for a backup starting at `at`, with a random suffix.
    pub fn generate(at: DateTime<Utc>) -> BackupId {
        let mut suffix = [0u8; 4];
        // A failing OS random source still yields a unique-enough id from the clock's nanos;
        // uniqueness, not secrecy, is what the suffix is for.
        if getrandom::fill(&mut suffix).is_err() {
            suffix = at.timestamp_subsec_nanos().to_le_bytes();
        }
        BackupId(format!(
            "{}-{}",
            at.format("%Y%m%dT%H%M%SZ"),
            hex::encode(suffix)
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The creation time encoded in the id (seconds precision).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        chrono::NaiveDateTime::parse_from_str(&self.0[..16], "%Y%m%dT%H%M%SZ")
            .ok()
            .map(|t| t.and_utc())
    }
}

impl FromStr for BackupId {
    type Err = BackupError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let well_formed = bytes.len() == 25
            && bytes[..8].iter().all(u8::is_ascii_digit)
            && bytes[8] == b'T'
            && bytes[9..15].iter().all(u8::is_ascii_digit)
            && bytes[15] == b'Z'
            && bytes[16] == b'-'
            && bytes[17..]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        if !well_formed {
            return Err(BackupError::InvalidId(s.chars().take(64).collect()));
        }
        let id = BackupId(s.to_owned());
        if id.timestamp().is_none() {
            return Err(BackupError::InvalidId(s.to_owned()));
        }
        Ok(id)
    }
}

impl TryFrom<String> for BackupId {
    type Error = BackupError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Full (every row in scope) or incremental (only what changed since the parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// Every row in scope.
    Full,
    /// Rows inserted, updated or deleted since the parent backup of the same scope.
    Incremental,
}

impl BackupKind {
    /// `full` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupKind {
    type Err = BackupError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(BackupKind::Full),
            "incremental" | "incr" => Ok(BackupKind::Incremental),
            other => Err(BackupError::InvalidInput(format!(
                "unknown backup kind `{other}`: use `full` or `incremental`"
            ))),
        }
    }
}

/// What a backup covers. The string form is stable (stored in manifests, logs, schedules):
/// `all`, `tenant:acme`, `modules:crm,finance` (module names sorted and deduplicated).
///
/// ```
/// use rbac_admin::backup::Scope;
/// let s: Scope = "modules:finance,crm".parse().unwrap();
/// assert_eq!(s.to_string(), "modules:crm,finance");
/// assert_eq!("tenant:acme".parse::<Scope>().unwrap(), Scope::Tenant("acme".into()));
/// assert_eq!("all".parse::<Scope>().unwrap(), Scope::All);
/// assert!("tenant:".parse::<Scope>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// The whole application database.
    All,
    /// Every row of one tenant (its rows in tenant tables, plus its own row in the tenant table).
    Tenant(String),
    /// The tables of the named modules (sorted, deduplicated).
    Modules(Vec<String>),
}

impl Scope {
    /// The tenant of a tenant scope.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Tenant(t) => Some(t),
            _ => None,
        }
    }
}

fn valid_scope_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

impl FromStr for Scope {
    type Err = BackupError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            BackupError::InvalidInput(format!(
                "invalid scope `{s}`: {why} (use `all`, `tenant:NAME` or `modules:A,B`)"
            ))
        };
        if s == "all" {
            return Ok(Scope::All);
        }
        if let Some(t) = s.strip_prefix("tenant:") {
            if !valid_scope_name(t) {
                return Err(bad("bad tenant name"));
            }
            return Ok(Scope::Tenant(t.to_owned()));
        }
        if let Some(list) = s.strip_prefix("modules:") {
            let mut modules: Vec<String> = list.split(',').map(|m| m.trim().to_owned()).collect();
            if modules.iter().any(|m| !valid_scope_name(m)) {
                return Err(bad("bad module name"));
            }
            modules.sort();
            modules.dedup();
            return Ok(Scope::Modules(modules));
        }
        Err(bad("unknown form"))
    }
}

impl TryFrom<String> for Scope {
    type Error = BackupError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Tenant(t) => write!(f, "tenant:{t}"),
            Scope::Modules(m) => {
                let mut m = m.clone();
                m.sort();
                m.dedup();
                write!(f, "modules:{}", m.join(","))
            }
        }
    }
}

/// One column of a backed-up table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// The column name.
    pub name: String,
    /// The declared type as the database reports it (informational; data is typed per value).
    pub decl_type: String,
}

/// One table in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableManifest {
    /// The table name.
    pub name: String,
    /// The columns written, in order (secret columns are left out).
    pub columns: Vec<ColumnInfo>,
    /// Columns configured as secret and therefore not in the backup.
    #[serde(default)]
    pub omitted_columns: Vec<String>,
    /// The primary key columns, in key order.
    pub primary_key: Vec<String>,
    /// The tenant column, when the table is filtered by tenant.
    #[serde(default)]
    pub tenant_column: Option<String>,
    /// Rows written (inserted or updated rows for an incremental).
    pub rows: u64,
    /// Rows deleted since the parent (incrementals only).
    #[serde(default)]
    pub deleted: u64,
    /// The `CREATE TABLE` statement, when the source can give one (SQLite), so a restore into
    /// an empty database can create the table.
    #[serde(default)]
    pub create_sql: Option<String>,
}

impl TableManifest {
    /// Where the tenant column sits among the backed-up columns, if the table has one.
    pub(crate) fn tenant_position(&self) -> Option<usize> {
        let column = self.tenant_column.as_ref()?;
        self.columns.iter().position(|c| &c.name == column)
    }

    /// Where each key column sits among the backed-up columns, in key order. A key column
    /// that is not among them (a manifest edited by hand) is an error: a partial key would
    /// match the wrong rows.
    pub(crate) fn key_positions(&self) -> Result<Vec<usize>, BackupError> {
        self.primary_key
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| &c.name == k)
                    .ok_or_else(|| {
                        BackupError::Schema(format!(
                            "table `{}`: key column `{k}` is not among the backed-up columns",
                            self.name
                        ))
                    })
            })
            .collect()
    }
}

/// One stored data chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// The object name relative to the backup, e.g. `chunks/000003.bin`.
    pub name: String,
    /// The table whose records it holds.
    pub table: String,
    /// Records in the chunk.
    pub records: u64,
    /// Bytes before compression.
    pub raw_size: u64,
    /// Bytes as stored (compressed, and encrypted when enabled).
    pub size: u64,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// The chunk's rows grouped by tenant, each group its own zstd frame, in stored order:
    /// a tenant restore decompresses only its tenant's groups and the mixed one, and skips a
    /// chunk that holds neither. Empty: one frame of rows of any tenant (tables without a
    /// tenant column, incrementals, and backups written before groups existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ChunkGroup>,
}

/// Rows of one chunk stored as one zstd frame (see [`ChunkInfo::groups`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkGroup {
    /// The tenant of every row in the group; `None` for the mixed group, which holds the rows
    /// of tenants with too few rows in the chunk for a group of their own (and rows with no
    /// tenant).
    pub tenant: Option<String>,
    /// Records in the group.
    pub records: u64,
    /// Bytes before compression.
    pub raw_size: u64,
    /// Bytes of its compressed frame (before encryption, which seals the whole chunk).
    pub compressed_size: u64,
}

impl ChunkInfo {
    /// Whether a restore of `tenant` needs anything from this chunk.
    pub(crate) fn may_hold(&self, tenant: &str) -> bool {
        self.groups.is_empty()
            || self
                .groups
                .iter()
                .any(|g| g.tenant.as_deref().is_none_or(|t| t == tenant))
    }
}

/// How chunks are compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always `zstd` for this format.
    pub codec: String,
    /// The zstd level used.
    pub level: i32,
}

/// The data key wrapped for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Who can unwrap it: an age X25519 public key (`age1...`) or `passphrase`.
    pub recipient: String,
    /// The data key encrypted with age, ASCII-armored.
    pub wrapped: String,
}

/// How chunks are encrypted. Holds only wrapped keys, never the data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Always `aes-256-gcm` for this format.
    pub algorithm: String,
    /// Plaintext bytes per authenticated segment.
    pub segment_size: u32,
    /// A non-secret identifier of the data key (a hash of it), to tell keys apart.
    pub key_id: String,
    /// The data key wrapped for each recipient.
    pub recipients: Vec<WrappedKey>,
}

/// Everything needed to read, verify and restore a backup. Stored as `manifest.json`, written
/// last: a backup without a manifest is incomplete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// The backup's id.
    pub id: BackupId,
    /// Full or incremental.
    pub kind: BackupKind,
    /// For an incremental, the backup it applies on top of.
    pub parent: Option<BackupId>,
    /// What it covers.
    pub scope: Scope,
    /// The source database kind: `sqlite` or `postgres`.
    pub backend: String,
    /// A fingerprint of the backed-up tables' schema (names, columns, keys).
    pub schema_version: String,
    /// The change-log position the backup is consistent with (next incremental starts after).
    pub change_seq: i64,
    /// PostgreSQL: the snapshot the backup read (`pg_current_snapshot()`); the next
    /// incremental takes the changes this snapshot did not see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_snapshot: Option<String>,
    /// PostgreSQL: the database the backup was read from (`system identifier:timeline:database
    /// oid`),
    /// so that a dry run against that same database can trust its change log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_database: Option<String>,
    /// The tables, in backup order.
    pub tables: Vec<TableManifest>,
    /// Who made it.
    pub creator: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When the data was fully stored (just before the manifest).
    pub finished_at: DateTime<Utc>,
    /// The `rbac-admin` version that wrote it.
    pub tool_version: String,
    /// The data chunks, in order.
    pub chunks: Vec<ChunkInfo>,
    /// How chunks are compressed.
    pub compression: Compression,
    /// How chunks are encrypted, if they are.
    pub encryption: Option<Encryption>,
    /// The files directory, in backups of scope `all` when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<super::files::FilesManifest>,
    /// How many incrementals its chain holds up to and including it: 0 for a full backup,
    /// the parent's plus one for an incremental. Absent from manifests of versions before it
    /// was recorded (the chain is then walked once to count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<u32>,
}

/// The most incrementals one chain takes unless configured otherwise
/// (`max_chain_links`): past that, an incremental is refused with
/// [`BackupError::NeedsFull`] (a scheduled one makes a full backup instead), so that a chain
/// of frequent incrementals never grows past what a restore reads back (at 1,000, a 5-minute
/// schedule starts a new chain about every three and a half days).
pub const DEFAULT_MAX_CHAIN_LINKS: u32 = 1_000;

impl Manifest {
    /// A full backup of scope `all` with these tables and chunks, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(
        id: BackupId,
        tables: Vec<TableManifest>,
        chunks: Vec<ChunkInfo>,
    ) -> Manifest {
        let now = Utc::now();
        Manifest {
            format: format_for(&chunks),
            id,
            kind: BackupKind::Full,
            parent: None,
            scope: Scope::All,
            backend: "sqlite".into(),
            schema_version: String::new(),
            change_seq: 0,
            change_snapshot: None,
            source_database: None,
            tables,
            creator: "test".into(),
            started_at: now,
            finished_at: now,
            tool_version: String::new(),
            chunks,
            compression: Compression {
                codec: "zstd".into(),
                level: 3,
            },
            encryption: None,
            files: None,
            links: Some(0),
        }
    }

    /// Chunk `index`, or a corrupt-manifest error naming it.
    pub(crate) fn chunk(&self, index: usize) -> Result<&ChunkInfo, BackupError> {
        self.chunks
            .get(index)
            .ok_or_else(|| BackupError::CorruptManifest {
                id: self.id.to_string(),
                reason: format!("no chunk {index}"),
            })
    }

    /// The chunks of `table`, in order, each with its index in [`Manifest::chunks`].
    pub(crate) fn chunks_of<'m>(
        &'m self,
        table: &'m str,
    ) -> impl Iterator<Item = (usize, &'m ChunkInfo)> + 'm {
        self.chunks
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.table == table)
    }

    /// Bytes stored in chunks.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| c.size).sum()
    }

    /// Rows written (plus deletes recorded).
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows + t.deleted).sum()
    }

    /// The summary used by listings and retention.
    pub fn summary(&self) -> BackupSummary {
        BackupSummary {
            id: self.id.clone(),
            kind: self.kind,
            parent: self.parent.clone(),
            scope: self.scope.clone(),
            created_at: self.started_at,
            finished_at: self.finished_at,
            size: self.size(),
            rows: self.rows(),
            encrypted: self.encryption.is_some(),
        }
    }
}

/// A complete backup as listed: what listing, retention and point-in-time selection need.
/// `created_at` is the snapshot time (a restore "at T" picks the latest with `created_at <= T`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// The id.
    pub id: BackupId,
    /// Full or incremental.
    pub kind: BackupKind,
    /// The parent of an incremental.
    pub parent: Option<BackupId>,
    /// What it covers.
    pub scope: Scope,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// When it completed.
    pub finished_at: DateTime<Utc>,
    /// Stored bytes.
    pub size: u64,
    /// Rows (and deletes) recorded.
    pub rows: u64,
    /// Whether the data is encrypted.
    pub encrypted: bool,
}

/// The permission each operation requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `system.backup.create`
    Create,
    /// `system.backup.read` (list, show, logs)
    Read,
    /// `system.backup.verify`
    Verify,
    /// `system.backup.download`
    Download,
    /// `system.backup.restore`
    Restore,
    /// `system.backup.delete` (delete, prune)
    Delete,
    /// `system.backup.schedule`
    Schedule,
    /// `system.backup.delete`: a new wrapping of an encrypted backup's data key (key
    /// rotation), which can lock out the holders of the old keys as a delete would.
    Rewrap,
}

impl Operation {
    /// The permission name, e.g. `system.backup.restore`.
    pub fn permission(self) -> &'static str {
        match self {
            Operation::Create => "system.backup.create",
            Operation::Read => "system.backup.read",
            Operation::Verify => "system.backup.verify",
            Operation::Download => "system.backup.download",
            Operation::Restore => "system.backup.restore",
            Operation::Delete => "system.backup.delete",
            Operation::Schedule => "system.backup.schedule",
            Operation::Rewrap => "system.backup.delete",
        }
    }

    /// The operation name used in the log: `create`, `restore`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Verify => "verify",
            Operation::Download => "download",
            Operation::Restore => "restore",
            Operation::Delete => "delete",
            Operation::Schedule => "schedule",
            Operation::Rewrap => "rewrap",
        }
    }
}

/// Why a backup operation failed. Messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A malformed backup id.
    #[error("invalid backup id `{0}`: expected YYYYMMDDTHHMMSSZ-xxxxxxxx")]
    InvalidId(String),
    /// Bad input (scope, kind, time, table name, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// The configuration is unusable.
    #[error("backup configuration: {0}")]
    Config(String),
    /// The actor lacks the permission (in the needed scope).
    #[error("denied: `{actor}` lacks `{permission}` for scope `{scope}`")]
    Denied {
        /// Who asked.
        actor: String,
        /// The permission required.
        permission: &'static str,
        /// The scope asked for.
        scope: String,
    },
    /// No complete backup with this id.
    #[error("no backup `{0}` (or it is incomplete)")]
    NotFound(BackupId),
    /// No backup matches the request (e.g. nothing at or before a time).
    #[error("no backup matches: {0}")]
    NoMatch(String),
    /// A chunk's bytes do not match the manifest (or cannot be decrypted or decompressed).
    #[error("backup {id}: chunk `{chunk}` is corrupt: {reason}")]
    CorruptChunk {
        /// The backup.
        id: BackupId,
        /// The chunk's name.
        chunk: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is unreadable or fails its checksum.
    #[error("backup {id}: manifest is corrupt: {reason}")]
    CorruptManifest {
        /// The backup.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Encrypted backup and no (matching) key, or a key that cannot be read.
    #[error("{0}")]
    Key(String),
    /// The storage location failed.
    #[error("backup storage error: {0}")]
    Storage(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// The backup does not fit the target database (missing table or column, no primary key).
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// An incremental cannot follow its scope's latest backup (there is none, the change log
    /// since it was pruned or is missing, the database was restored or its tables changed
    /// since): only a full backup can be made. A scheduled incremental makes one instead.
    #[error("{0}; make a full backup")]
    NeedsFull(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another backup of the same scope is running.
    #[error("another backup of scope `{0}` is running")]
    Busy(String),
    /// A failure injected by a test (see `FailPoint`).
    #[error("injected failure at `{0}`")]
    Injected(String),
}

impl BackupError {
    /// Whether this is a permission denial.
    pub fn is_denied(&self) -> bool {
        matches!(self, BackupError::Denied { .. })
    }
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Database(e.to_string())
    }
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Database(e.to_string())
    }
}

impl From<object_store::Error> for BackupError {
    fn from(e: object_store::Error) -> Self {
        BackupError::Storage(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_paths() {
        let id = BackupId::generate(Utc::now());
        assert_eq!(id.as_str().parse::<BackupId>().ok(), Some(id.clone()));
        for bad in [
            "",
            "..",
            "20261123T020000Z-0a1b2c3",
            "20261123T020000Z-0a1b2c3G",
            "20261123T020000Z/0a1b2c3d",
            "20261323T020000Z-0a1b2c3d",
            "../1123T020000Z-0a1b2c3d",
            "20261123T020000Z-0A1B2C3D",
        ] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_have_a_stable_text_form() {
        for s in ["all", "tenant:acme", "modules:crm,finance"] {
            assert_eq!(
                s.parse::<Scope>().map(|s| s.to_string()).ok(),
                Some(s.into())
            );
        }
        assert!("tenant:a/b".parse::<Scope>().is_err());
        assert!("modules:".parse::<Scope>().is_err());
        assert!("everything".parse::<Scope>().is_err());
    }

    #[test]
    fn key_positions_follow_the_key_and_refuse_a_missing_column() {
        let column = |name: &str| ColumnInfo {
            name: name.into(),
            decl_type: "TEXT".into(),
        };
        let mut t = TableManifest {
            name: "accounts".into(),
            columns: vec![column("balance"), column("code"), column("tenant_id")],
            omitted_columns: vec![],
            primary_key: vec!["tenant_id".into(), "code".into()],
            tenant_column: Some("tenant_id".into()),
            rows: 0,
            deleted: 0,
            create_sql: None,
        };
        assert_eq!(t.key_positions().ok(), Some(vec![2, 1]));
        t.primary_key.push("year".into());
        let err = t.key_positions().err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("`year`")),
            "{err:?}"
        );
    }
}
