//! The operations: create, list, show, verify, restore, delete, download, logs. Each takes
//! the acting subject ([`Actor`]) and checks its permission first; each is logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use super::changelog;
use super::chunk::{self, ChunkWriter, Outgoing, UPLOAD_QUEUE};
use super::codec;
use super::config::BackupConfig;
use super::crypto::{DataKey, Keyring};
use super::files::{self, FilesManifest};
use super::gate::Actor;
use super::log::{self, LogEntry, LogQuery, Outcome, Status};
use super::model::{
    BackupError, BackupId, BackupKind, BackupSummary, Compression, DEFAULT_MAX_CHAIN_LINKS,
    Manifest, Operation, Scope, TableManifest,
};
use super::pg;
use super::plan;
use super::progress::Progress;
use super::schedule::{ScheduleError, ScheduleStore, owner_by_hand};
use super::sqlite::{self, Restorer, Step, TableReport};
use super::storage::Storage;

/// What to back up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Full or incremental (on top of the latest complete backup of the same scope).
    pub kind: BackupKind,
    /// What to cover.
    pub scope: Scope,
}

/// Which backup to restore from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// This backup (and, for an incremental, its chain).
    Id(BackupId),
    /// The latest complete backup created at or before this time.
    At(DateTime<Utc>),
    /// The latest complete backup.
    Latest,
}

/// What to restore, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// The backup.
    pub from: Selector,
    /// Only these tables (empty: every table in the backup, or of `modules`).
    pub tables: Vec<String>,
    /// Only the tables of these modules.
    pub modules: Vec<String>,
    /// Only this tenant's rows; other tenants' rows are never touched.
    pub tenant: Option<String>,
    /// Another database URL to restore into (default: the configured database).
    pub to: Option<String>,
    /// Report what would change, change nothing.
    pub dry_run: bool,
}

impl RestoreRequest {
    /// A dry run of the whole backup `id` into the configured database.
    pub fn dry_run(id: BackupId) -> RestoreRequest {
        RestoreRequest {
            from: Selector::Id(id),
            tables: Vec::new(),
            modules: Vec::new(),
            tenant: None,
            to: None,
            dry_run: true,
        }
    }
}

/// What a restore did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// The backups applied, full first.
    pub chain: Vec<BackupId>,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Per table and step, in order.
    pub tables: Vec<TableReport>,
}

impl RestoreReport {
    /// Rows with a conflict (a restore refuses them).
    pub fn conflicts(&self) -> u64 {
        self.tables.iter().map(|t| t.conflicts).sum()
    }
}

/// What verification checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The backup.
    pub id: BackupId,
    /// Chunks whose hash, decryption, decompression and record counts were checked.
    pub chunks: usize,
    /// Records decoded.
    pub records: u64,
    /// Whether a scratch restore was done and its row counts compared.
    pub deep: bool,
}

/// Test hooks that simulate failures and limits at chosen points.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Fail (as an error) after the chunks are stored, before the manifest. (A process
    /// killed there is tested for real: `rbac-admin` is sent SIGKILL while it writes chunks.)
    BeforeManifest,
    /// Hold none of the keys that the later steps of a tenant restore name in memory, as if
    /// there were too many: they go to a temporary table (and on PostgreSQL the full step
    /// through a staging table).
    LaterKeysOverflow,
    /// Let no PostgreSQL dry run take a shortcut (trust the change log, or count every row of
    /// an empty table as an insert): every row is compared, the reference the shortcuts are
    /// tested against.
    DryRunInFull,
    /// Let a PostgreSQL dry run hold none of the keys the change log names, as if each table
    /// had more of them than a dry run holds (250,000): a table with any change is compared
    /// in full, one without still takes the log's word.
    ChangedKeysOverflow,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The backup service for one configuration: the application database, the storage location
/// and the keys. Cheap to share behind an `Arc`; methods take `&self`.
#[derive(Debug)]
pub struct BackupService {
    config: BackupConfig,
    storage: Storage,
    keys: Keyring,
    db: Db,
    fail_point: Option<FailPoint>,
}

/// How long a backup made by hand holds its scope's lease without renewing it (renewed every
/// third of it while it runs): as long as a scheduler's, by default.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a backup made by hand of a SQLite file not in WAL mode holds its scope's lease
/// (not renewed: see [`BackupService::leased`]).
const SQLITE_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Whether [`BackupService::create`] takes the scope's lease itself.
#[derive(Clone, Copy)]
enum Leasing {
    /// It does (a backup made by hand, from the CLI, the HTTP API or a program).
    Take,
    /// A scheduler took it before starting the run.
    Held,
}

fn db_of(url: &str) -> Result<Db, BackupError> {
    if url.starts_with("sqlite:") {
        Ok(Db::Sqlite(sqlite::path_of(url)?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Db::Postgres(url.to_owned()))
    } else {
        Err(BackupError::Config(format!(
            "unsupported database URL `{}`: use sqlite://FILE or postgres://...",
            url.split('@').next_back().unwrap_or_default()
        )))
    }
}

fn join_err(e: tokio::task::JoinError) -> BackupError {
    BackupError::Database(format!("a backup worker stopped: {e}"))
}

impl BackupService {
    /// Opens the storage and loads the keys named by `config`.
    pub fn open(config: BackupConfig) -> Result<BackupService, BackupError> {
        config.validate()?;
        let storage = Storage::open(
            &config.storage,
            config.storage_endpoint.as_deref(),
            &config.storage_options,
        )?;
        let keys = Keyring::load(config.encryption.as_ref())?;
        let db = db_of(&config.database)?;
        Ok(BackupService {
            config,
            storage,
            keys,
            db,
            fail_point: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BackupConfig {
        &self.config
    }

    #[doc(hidden)]
    pub fn set_fail_point(&mut self, point: Option<FailPoint>) {
        self.fail_point = point;
    }

    async fn log_start(
        &self,
        op: Operation,
        id: Option<&BackupId>,
        scope: &Scope,
        actor: &Actor<'_>,
        status: Status,
    ) -> Option<i64> {
        self.log_row(op, id, scope, actor, status, None).await
    }

    async fn log_row(
        &self,
        op: Operation,
        id: Option<&BackupId>,
        scope: &Scope,
        actor: &Actor<'_>,
        status: Status,
        error: Option<String>,
    ) -> Option<i64> {
        let id = id.map(|i| i.to_string());
        let scope = scope.clone();
        let subject = actor.subject.to_owned();
        let r = match &self.db {
            Db::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let row = log::start(&path, op, id.as_deref(), &scope, &subject, status)?;
                    if let Some(error) = error {
                        let conn = sqlite::open(&path, false)?;
                        conn.execute(
                            "UPDATE rbac_backup_log SET finished_at = ?2, error = ?3, duration_ms = 0 WHERE id = ?1",
                            rusqlite::params![row, Utc::now().to_rfc3339(), error],
                        )?;
                    }
                    Ok(row)
                })
                .await
            }
            Db::Postgres(url) => Ok(pg::log_start(
                url,
                op,
                id.as_deref(),
                &scope,
                &subject,
                status,
                error.as_deref(),
            )
            .await),
        };
        match r {
            Ok(Ok(id)) => Some(id),
            Ok(Err(e)) => {
                tracing::warn!(target: "rbac::backup", error = %e, "cannot write the backup log");
                None
            }
            Err(e) => {
                tracing::warn!(target: "rbac::backup", error = %e, "cannot write the backup log");
                None
            }
        }
    }

    async fn log_finish(&self, row: Option<i64>, outcome: Outcome<'_>) {
        let Some(row) = row else {
            return;
        };
        let path = match &self.db {
            Db::Sqlite(path) => path.clone(),
            Db::Postgres(url) => {
                if let Err(e) = pg::log_finish(url, row, &outcome).await {
                    tracing::warn!(target: "rbac::backup", error = %e, "cannot update the backup log");
                }
                return;
            }
        };
        let backup_id = outcome.backup_id.map(str::to_owned);
        let (size, rows, error) = (outcome.size, outcome.rows, outcome.error);
        let r = tokio::task::spawn_blocking(move || {
            log::finish(
                &path,
                row,
                &Outcome {
                    backup_id: backup_id.as_deref(),
                    size,
                    rows,
                    error,
                },
            )
        })
        .await;
        if !matches!(r, Ok(Ok(()))) {
            tracing::warn!(target: "rbac::backup", "cannot update the backup log");
        }
    }

    /// Checks the permission; a denial is logged (table and tracing) and returned.
    async fn gate(
        &self,
        actor: &Actor<'_>,
        op: Operation,
        scope: &Scope,
        id: Option<&BackupId>,
    ) -> Result<(), BackupError> {
        if let Err(e) = actor.require(op, scope) {
            self.log_row(op, id, scope, actor, Status::Denied, Some(e.to_string()))
                .await;
            return Err(e);
        }
        Ok(())
    }

    /// Removes incomplete backups whose writer is gone (killed mid-backup), and marks their
    /// log rows failed. Returns their ids.
    pub async fn clean_incomplete(&self) -> Result<Vec<BackupId>, BackupError> {
        let dead = self.storage.abandoned().await?;
        for id in &dead {
            tracing::warn!(target: "rbac::backup", backup = %id, "removing an incomplete backup (no manifest)");
            self.storage.delete(id).await?;
            match &self.db {
                Db::Sqlite(path) => {
                    let (path, id) = (path.clone(), id.to_string());
                    let _ =
                        tokio::task::spawn_blocking(move || log::mark_abandoned(&path, &id)).await;
                }
                Db::Postgres(url) => {
                    let _ = pg::log_abandoned(url, id.as_str()).await;
                }
            }
        }
        Ok(dead)
    }

    /// Summaries of every complete backup, oldest first, without a permission check (for
    /// the scheduler and retention, which run as a configured system actor).
    pub async fn summaries(&self) -> Result<Vec<BackupSummary>, BackupError> {
        let (complete, _) = self.storage.ids().await?;
        let mut out = Vec::new();
        for id in complete {
            match self.storage.manifest(&id).await {
                Ok(m) => out.push(m.summary()),
                Err(e) => {
                    tracing::warn!(target: "rbac::backup", backup = %id, error = %e, "skipping an unreadable backup");
                }
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// The backups the actor may read (`system.backup.read`), oldest first.
    /// A reader of some tenants only sees their backups: none yet is an empty list, and a
    /// subject that may read nowhere is denied.
    pub async fn list(&self, actor: &Actor<'_>) -> Result<Vec<BackupSummary>, BackupError> {
        let global = actor.may(Operation::Read, &Scope::All);
        if !global && actor.tenants_for(Operation::Read).is_empty() {
            self.gate(actor, Operation::Read, &Scope::All, None).await?;
        }
        let all = self.summaries().await?;
        Ok(all
            .into_iter()
            .filter(|s| global || actor.may(Operation::Read, &s.scope))
            .collect())
    }

    /// A backup's manifest.
    pub async fn show(&self, actor: &Actor<'_>, id: &BackupId) -> Result<Manifest, BackupError> {
        let m = self.storage.manifest(id).await?;
        self.gate(actor, Operation::Read, &m.scope, Some(id))
            .await?;
        Ok(m)
    }

    /// The operation log (`system.backup.read`; a tenant-only reader sees its tenant's rows).
    pub async fn logs(
        &self,
        actor: &Actor<'_>,
        query: &LogQuery,
    ) -> Result<Vec<LogEntry>, BackupError> {
        let global = actor.may(Operation::Read, &Scope::All);
        let mut query = query.clone();
        if !global {
            // Filtered in the query, so that the limit counts the reader's own rows (filtered
            // after it, the newest rows of other scopes could leave none).
            let tenants = actor.tenants_for(Operation::Read);
            if tenants.is_empty() {
                self.gate(actor, Operation::Read, &Scope::All, None).await?;
            }
            let mine = tenants.into_iter().map(|t| Scope::Tenant(t).to_string());
            query.scopes = Some(match query.scopes.take() {
                Some(asked) => mine.filter(|s| asked.contains(s)).collect(),
                None => mine.collect(),
            });
        }
        let query = &query;
        let entries = match &self.db {
            Db::Sqlite(path) => {
                let (path, q) = (path.clone(), query.clone());
                tokio::task::spawn_blocking(move || log::query(&path, &q))
                    .await
                    .map_err(join_err)??
            }
            Db::Postgres(url) => pg::log_query(url, query).await?,
        };
        // Checked row by row too: the scopes asked for are the reader's, each allowed.
        Ok(entries
            .into_iter()
            .filter(|e| {
                global
                    || e.scope
                        .parse::<Scope>()
                        .is_ok_and(|s| actor.may(Operation::Read, &s))
            })
            .collect())
    }

    /// Makes a backup. See [`create`](super::create).
    pub async fn create(
        &self,
        request: &CreateRequest,
        actor: &Actor<'_>,
        progress: &dyn Progress,
    ) -> Result<Manifest, BackupError> {
        self.create_as(request, actor, progress, Leasing::Take)
            .await
    }

    /// [`BackupService::create`] for a [`ScheduledJob`](super::schedule::ScheduledJob): its
    /// [`Scheduler`](super::schedule::Scheduler) holds the scope's lease while the job runs,
    /// so this does not take it (`create` would find it held, and answer `Busy`). Anything
    /// else calls `create`.
    pub async fn create_scheduled(
        &self,
        request: &CreateRequest,
        actor: &Actor<'_>,
    ) -> Result<Manifest, BackupError> {
        self.create_as(request, actor, &super::NoProgress, Leasing::Held)
            .await
    }

    /// Runs `work` holding the lease of `scope` (see [`create`](super::create)). The
    /// connection is this backup's own, closed after it: held open, it would keep a SQLite
    /// file in use between backups.
    ///
    /// The lease lasts [`LEASE_TTL`] and is renewed while the backup runs, except in a
    /// SQLite file not in WAL mode (a scheduler puts the files it uses in WAL mode): there a
    /// renewal waits on the backup's own read, and while it waits no reader of the
    /// application can start. It then lasts [`SQLITE_LEASE_TTL`], unrenewed; a backup whose
    /// process ended without releasing it (on this machine, boot and pid namespace) is
    /// found out at once by the next one, scheduled or not.
    async fn leased<T>(
        &self,
        scope: &Scope,
        id: &BackupId,
        work: impl Future<Output = Result<T, BackupError>>,
    ) -> Result<T, BackupError> {
        let unreachable =
            |e: ScheduleError| BackupError::Database(format!("cannot reach the scope leases: {e}"));
        let leases = ScheduleStore::connect_for_lease(&self.config.database)
            .await
            .map_err(unreachable)?;
        let renew = match &self.db {
            Db::Sqlite(_) => leases.sqlite_wal().await.map_err(unreachable)?,
            Db::Postgres(_) => true,
        };
        let ttl = if renew { LEASE_TTL } else { SQLITE_LEASE_TTL };
        let owner = owner_by_hand(id.as_str());
        leases
            .with_lease(&scope.to_string(), &owner, ttl, renew, work)
            .await?
    }

    async fn create_as(
        &self,
        request: &CreateRequest,
        actor: &Actor<'_>,
        progress: &dyn Progress,
        leasing: Leasing,
    ) -> Result<Manifest, BackupError> {
        self.gate(actor, Operation::Create, &request.scope, None)
            .await?;
        let started_at = Utc::now();
        let id = BackupId::generate(started_at);
        let row = self
            .log_start(
                Operation::Create,
                Some(&id),
                &request.scope,
                actor,
                Status::Running,
            )
            .await;
        let begun = Instant::now();
        let work = self.create_inner(&id, started_at, request, actor, progress);
        let result = match leasing {
            Leasing::Held => work.await,
            Leasing::Take => self.leased(&request.scope, &id, work).await,
        };
        progress.finish();
        match &result {
            Ok(m) => {
                tracing::info!(target: "rbac::backup", backup = %id, kind = %m.kind, scope = %m.scope,
                    size = m.size(), rows = m.rows(), ms = begun.elapsed().as_millis() as u64, "backup created");
                self.log_finish(
                    row,
                    Outcome {
                        backup_id: Some(id.as_str()),
                        size: Some(m.size()),
                        rows: Some(m.rows()),
                        error: None,
                    },
                )
                .await;
                // Best effort: a log not cut now is cut after the next backup.
                match self.prune_change_log().await {
                    Ok(n) if n > 0 => {
                        tracing::info!(target: "rbac::backup", rows = n, "change log pruned")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(target: "rbac::backup", error = %e, "cannot prune the change log")
                    }
                }
            }
            Err(e) => {
                tracing::error!(target: "rbac::backup::failed", backup = %id, error = %e, "backup failed");
                if !matches!(e, BackupError::Injected(_)) {
                    // Best effort: whatever is left is incomplete and removed by the next run.
                    let _ = self.storage.delete(&id).await;
                }
                self.log_finish(
                    row,
                    Outcome {
                        backup_id: Some(id.as_str()),
                        error: Some(e.to_string()),
                        ..Outcome::default()
                    },
                )
                .await;
            }
        }
        result
    }

    /// Cuts the change log below the oldest of the newest complete backups of each scope
    /// (the `rbac_backup_changes` table); returns the rows removed.
    pub async fn prune_change_log(&self) -> Result<u64, BackupError> {
        let summaries = self.summaries().await?;
        // Oldest first: the last one seen of each scope is its newest.
        let mut heads: HashMap<String, BackupId> = HashMap::new();
        for s in &summaries {
            heads.insert(s.scope.to_string(), s.id.clone());
        }
        let mut manifests = Vec::new();
        for id in heads.values() {
            manifests.push(self.storage.manifest(id).await?);
        }
        if manifests.is_empty() {
            return Ok(0);
        }
        match &self.db {
            Db::Sqlite(path) => {
                if manifests.iter().any(|m| m.backend != "sqlite") {
                    return Ok(0);
                }
                let through = manifests.iter().map(|m| m.change_seq).min().unwrap_or(0);
                let path = path.clone();
                tokio::task::spawn_blocking(move || changelog::prune_sqlite(&path, through))
                    .await
                    .map_err(join_err)?
            }
            Db::Postgres(url) => {
                let snapshots: Option<Vec<String>> = manifests
                    .iter()
                    .map(|m| m.change_snapshot.clone())
                    .collect();
                match snapshots {
                    Some(s) => changelog::prune_pg(url, &s).await,
                    // A head without a snapshot: nothing is known to be safe to cut.
                    None => Ok(0),
                }
            }
        }
    }

    async fn parent_of(&self, scope: &Scope) -> Result<Manifest, BackupError> {
        let summaries = self.summaries().await?;
        let parent = summaries
            .iter()
            .rev()
            .find(|s| &s.scope == scope)
            .ok_or_else(|| {
                BackupError::NeedsFull(format!(
                    "an incremental needs an earlier backup of scope `{scope}`"
                ))
            })?;
        self.storage.manifest(&parent.id).await
    }

    async fn create_inner(
        &self,
        id: &BackupId,
        started_at: DateTime<Utc>,
        request: &CreateRequest,
        actor: &Actor<'_>,
        progress: &dyn Progress,
    ) -> Result<Manifest, BackupError> {
        self.clean_incomplete().await?;
        let parent = match request.kind {
            BackupKind::Full => None,
            BackupKind::Incremental => Some(self.parent_of(&request.scope).await?),
        };
        let links = match &parent {
            None => 0,
            Some(p) => {
                let before = match p.links {
                    Some(n) => n,
                    // A manifest written before links were recorded: count them once. A chain
                    // that cannot be read back (too long, a link missing) cannot be restored
                    // either: a full backup starts a new one.
                    None => match self.chain(&p.id).await {
                        Ok(chain) => {
                            u32::try_from(chain.len().saturating_sub(1)).unwrap_or(u32::MAX)
                        }
                        Err(BackupError::NoMatch(why)) => {
                            return Err(BackupError::NeedsFull(format!(
                                "the chain of {} cannot be restored: {why}",
                                p.id
                            )));
                        }
                        Err(e) => return Err(e),
                    },
                };
                let most = self
                    .config
                    .max_chain_links
                    .unwrap_or(DEFAULT_MAX_CHAIN_LINKS);
                if before >= most {
                    return Err(BackupError::NeedsFull(format!(
                        "the chain of {} already holds {before} incrementals (at most {most}, \
                         `max_chain_links`); a full backup starts a new one",
                        p.id
                    )));
                }
                before + 1
            }
        };
        let key = if self.keys.encrypts() {
            Some(Arc::new(DataKey::generate()?))
        } else {
            None
        };
        let encryption = match &key {
            Some(k) => Some(self.keys.wrap(k)?),
            None => None,
        };
        self.storage.put_lock(id).await?;
        let (
            backend,
            (tables, change_seq, schema_version, chunks),
            change_snapshot,
            source_database,
        ) = match &self.db {
            Db::Sqlite(path) => (
                "sqlite",
                self.create_sqlite(
                    path.clone(),
                    id,
                    request,
                    parent.as_ref(),
                    key.clone(),
                    progress,
                )
                .await?,
                None,
                None,
            ),
            Db::Postgres(url) => {
                let mut conn = pg::connect(url).await?;
                let defs = pg::tables(&mut conn).await?;
                let all = plan::all_tables(defs, &self.config)?;
                let mut tables = plan::for_scope(all, &self.config, &request.scope)?;
                let schema_version = plan::schema_version(&tables);
                let since = match &parent {
                    Some(p) => {
                        if p.schema_version != schema_version {
                            return Err(BackupError::NeedsFull(
                                "the tables changed since the parent backup".into(),
                            ));
                        }
                        let snapshot = p.change_snapshot.clone().ok_or_else(|| {
                            BackupError::NeedsFull("the parent backup records no snapshot".into())
                        })?;
                        // The parent's snapshot speaks of transaction ids of the database it
                        // was read from: on another one (a failover, a point-in-time
                        // recovery, `database` pointed at a copy) the changes since cannot be
                        // told, and some would be missed without a word.
                        let here = pg::database_identity(&mut conn).await;
                        if let (Some(then), Some(now)) = (&p.source_database, &here)
                            && then != now
                        {
                            return Err(BackupError::NeedsFull(format!(
                                "the database is not the one the parent backup was read from \
                                 ({then}, now {now}: a failover, a recovery or another server)"
                            )));
                        }
                        if !pg::has_change_log(&mut conn).await? {
                            return Err(BackupError::NeedsFull("the change log is missing".into()));
                        }
                        pg::add_image_columns(&mut conn).await?;
                        Some(snapshot)
                    }
                    None => {
                        pg::install_capture(&mut conn, &tables).await?;
                        None
                    }
                };
                let source_database = pg::database_identity(&mut conn).await;
                let sink = pg::ChunkSink {
                    backup: id,
                    level: self.config.zstd_level,
                    key: key.clone(),
                    storage: &self.storage,
                    progress,
                };
                let (chunks, snapshot) = pg::read_snapshot(
                    &mut conn,
                    &mut tables,
                    request.scope.tenant(),
                    since.as_deref(),
                    &sink,
                )
                .await?;
                if let Some(parent_snapshot) = &since {
                    changelog::check_pg(&mut conn, parent_snapshot).await?;
                }
                (
                    "postgres",
                    (tables, 0, schema_version, chunks),
                    Some(snapshot),
                    source_database,
                )
            }
        };
        let mut chunks = chunks;
        let files = match (&self.config.files_dir, &request.scope) {
            (Some(dir), Scope::All) => {
                let previous = parent.as_ref().and_then(|p| p.files.clone());
                let (files, more) = self
                    .create_files(dir.clone(), id, chunks.len(), previous, key, progress)
                    .await?;
                chunks.extend(more);
                Some(files)
            }
            _ => None,
        };
        let manifest = Manifest {
            format: super::model::format_for(&chunks),
            id: id.clone(),
            kind: request.kind,
            parent: parent.map(|p| p.id),
            scope: request.scope.clone(),
            backend: backend.into(),
            schema_version,
            change_seq,
            change_snapshot,
            source_database,
            tables,
            creator: actor.subject.to_owned(),
            started_at,
            finished_at: Utc::now(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            chunks,
            compression: Compression {
                codec: "zstd".into(),
                level: self.config.zstd_level,
            },
            encryption,
            files,
            links: Some(links),
        };
        if self.fail_point == Some(FailPoint::BeforeManifest) {
            return Err(BackupError::Injected("before-manifest".into()));
        }
        self.storage.put_manifest(&manifest).await?;
        self.storage.remove_lock(id).await?;
        Ok(manifest)
    }

    /// The SQLite reader: a blocking thread reads the snapshot into chunks, this task uploads
    /// them as they come.
    #[allow(
        clippy::type_complexity,
        reason = "a private tuple of the parts of a manifest"
    )]
    async fn create_sqlite(
        &self,
        path: PathBuf,
        id: &BackupId,
        request: &CreateRequest,
        parent: Option<&Manifest>,
        key: Option<Arc<DataKey>>,
        progress: &dyn Progress,
    ) -> Result<(Vec<TableManifest>, i64, String, Vec<super::ChunkInfo>), BackupError> {
        let config = self.config.clone();
        let scope = request.scope.clone();
        let since = parent.map(|p| (p.change_seq, p.schema_version.clone(), p.id.to_string()));
        let backup = id.clone();
        self.upload_from_blocking(id, progress, move |tx, relay| {
            let mut conn = sqlite::open(&path, false)?;
            let defs = sqlite::tables(&conn)?;
            let all = plan::all_tables(defs, &config)?;
            let mut tables = plan::for_scope(all, &config, &scope)?;
            let schema_version = plan::schema_version(&tables);
            if let Some((_, parent_schema, _)) = &since {
                if *parent_schema != schema_version {
                    return Err(BackupError::NeedsFull(
                        "the tables changed since the parent backup".into(),
                    ));
                }
            } else {
                sqlite::install_capture(&mut conn, &tables)?;
            }
            let mark = backup.to_string();
            let (seq, chunks) = ChunkWriter::pipelined(
                backup,
                config.zstd_level,
                key.as_deref(),
                tx,
                0,
                |writer| {
                    sqlite::read_snapshot(
                        &mut conn,
                        &mut tables,
                        scope.tenant(),
                        since.as_ref().map(|s| (s.0, s.2.as_str())),
                        writer,
                        &relay,
                    )
                },
            )?;
            sqlite::mark_backup(&conn, &mark);
            Ok::<_, BackupError>((tables, seq, schema_version, chunks))
        })
        .await
    }

    /// Runs `work` on a blocking thread with a channel for finished chunks, which this task
    /// uploads as they come (at most [`UPLOAD_QUEUE`] wait), and relays its progress.
    async fn upload_from_blocking<T, F>(
        &self,
        id: &BackupId,
        progress: &dyn Progress,
        work: F,
    ) -> Result<T, BackupError>
    where
        T: Send + 'static,
        F: FnOnce(mpsc::Sender<Outgoing>, Relay) -> Result<T, BackupError> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(UPLOAD_QUEUE);
        // Progress comes back through a channel so the trait object need not be 'static.
        let (ptx, mut prx) = mpsc::unbounded_channel::<(Option<String>, u64)>();
        let worker = tokio::task::spawn_blocking(move || work(tx, Relay(ptx)));
        let mut upload_error = None;
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(c) => {
                        if let Err(e) = self.storage.put(id, &c.name, c.data).await {
                            upload_error = Some(e);
                            break;
                        }
                    }
                    None => break,
                },
                Some((phase, n)) = prx.recv() => {
                    match phase {
                        Some(p) => progress.phase(&p, None),
                        None => progress.advance(n),
                    }
                }
            }
        }
        drop(rx);
        let result = worker.await.map_err(join_err)?;
        while let Ok((phase, n)) = prx.try_recv() {
            match phase {
                Some(p) => progress.phase(&p, None),
                None => progress.advance(n),
            }
        }
        if let Some(e) = upload_error {
            return Err(e);
        }
        result
    }

    /// Writes the files directory into chunks numbered after the database's `first_chunk`.
    async fn create_files(
        &self,
        dir: PathBuf,
        id: &BackupId,
        first_chunk: usize,
        previous: Option<FilesManifest>,
        key: Option<Arc<DataKey>>,
        progress: &dyn Progress,
    ) -> Result<(FilesManifest, Vec<super::ChunkInfo>), BackupError> {
        let backup = id.clone();
        let level = self.config.zstd_level;
        self.upload_from_blocking(id, progress, move |tx, relay| {
            ChunkWriter::pipelined(backup, level, key.as_deref(), tx, first_chunk, |writer| {
                files::write(&dir, previous.as_ref(), writer, &relay)
            })
        })
        .await
    }

    fn key_for(&self, m: &Manifest) -> Result<Option<Arc<DataKey>>, BackupError> {
        match &m.encryption {
            Some(enc) => Ok(Some(Arc::new(self.keys.unwrap(&m.id, enc)?))),
            None => Ok(None),
        }
    }

    /// The chain ending at `id`: the full backup first, then each incremental.
    async fn chain(&self, id: &BackupId) -> Result<Vec<Manifest>, BackupError> {
        let mut chain = vec![self.storage.manifest(id).await?];
        while let Some(parent) = chain.last().and_then(|m| m.parent.clone()) {
            // A chain is cut at `max_chain_links` incrementals; this bounds a forged one.
            if chain.len() > 10_000 {
                return Err(BackupError::NoMatch("the backup chain is too long".into()));
            }
            let m = self.storage.manifest(&parent).await.map_err(|e| match e {
                BackupError::NotFound(p) => BackupError::NoMatch(format!(
                    "backup {id} depends on {p}, which is missing or incomplete"
                )),
                other => other,
            })?;
            chain.push(m);
        }
        chain.reverse();
        if chain.first().map(|m| m.kind) != Some(BackupKind::Full) {
            return Err(BackupError::NoMatch(format!(
                "backup {id} has no full backup at the root of its chain"
            )));
        }
        Ok(chain)
    }

    /// The backup a selector names. `Latest` and `At` take the newest complete backup (at or
    /// before the time) that holds what the restore asks for: a backup of scope `all`; one of
    /// the asked tenant; or, for a restore of modules or tables only, one of modules that
    /// include them all.
    async fn select(
        &self,
        from: &Selector,
        request: Option<&RestoreRequest>,
    ) -> Result<BackupId, BackupError> {
        let limit = match from {
            Selector::Id(id) => return Ok(id.clone()),
            Selector::At(t) => Some(*t),
            Selector::Latest => None,
        };
        let tenant = request.and_then(|r| r.tenant.as_deref());
        // The tables the restore needs, when it names modules or tables (None: everything).
        let needed: Option<Vec<String>> = match request {
            Some(r) if !r.modules.is_empty() || !r.tables.is_empty() => {
                let mut tables = r.tables.clone();
                tables.extend(self.config.module_tables(&r.modules)?);
                Some(tables)
            }
            _ => None,
        };
        let holds = |scope: &Scope| -> bool {
            match scope {
                Scope::All => true,
                Scope::Tenant(x) => tenant == Some(x.as_str()),
                Scope::Modules(ms) => match (&needed, tenant) {
                    (Some(tables), None) => self
                        .config
                        .module_tables(ms)
                        .is_ok_and(|have| tables.iter().all(|t| have.contains(t))),
                    _ => false,
                },
            }
        };
        let summaries = self.summaries().await?;
        summaries
            .iter()
            .rev()
            .filter(|s| limit.is_none_or(|t| s.created_at <= t))
            .find(|s| holds(&s.scope))
            .map(|s| s.id.clone())
            .ok_or_else(|| {
                let what = match (tenant, &needed) {
                    (Some(t), _) => format!(" holding tenant `{t}`"),
                    (None, Some(tables)) => format!(" holding tables {}", tables.join(", ")),
                    (None, None) => String::new(),
                };
                BackupError::NoMatch(match limit {
                    Some(t) => format!("no complete backup{what} at or before {}", t.to_rfc3339()),
                    None => format!("there is no complete backup{what}"),
                })
            })
    }

    /// Restores (or, with `dry_run`, reports) a backup and its chain in one transaction.
    pub async fn restore(
        &self,
        request: &RestoreRequest,
        actor: &Actor<'_>,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, BackupError> {
        let id = self.select(&request.from, Some(request)).await?;
        let chain = self.chain(&id).await?;
        let backup_scope = chain.last().map(|m| m.scope.clone()).unwrap_or(Scope::All);
        let tenant = match (&backup_scope, &request.tenant) {
            (Scope::Tenant(b), Some(t)) if b != t => {
                return Err(BackupError::InvalidInput(format!(
                    "backup {id} holds tenant `{b}`, not `{t}`"
                )));
            }
            (Scope::Tenant(b), _) => Some(b.clone()),
            (_, t) => t.clone(),
        };
        let effective = match &tenant {
            Some(t) => Scope::Tenant(t.clone()),
            None => backup_scope.clone(),
        };
        self.gate(actor, Operation::Restore, &effective, Some(&id))
            .await?;
        // A dry run against the configured database must leave it byte-identical, its log
        // table included: such runs are reported to tracing only.
        let row = if request.dry_run && request.to.is_none() {
            tracing::info!(target: "rbac::backup", backup = %id, actor = actor.subject, scope = %effective, "restore dry run");
            None
        } else {
            self.log_start(
                Operation::Restore,
                Some(&id),
                &effective,
                actor,
                Status::Running,
            )
            .await
        };
        let result = self.restore_inner(&chain, request, tenant, progress).await;
        progress.finish();
        let rows = result
            .as_ref()
            .ok()
            .map(|r| r.tables.iter().map(|t| t.insert + t.delete).sum());
        if let Err(e) = &result {
            tracing::error!(target: "rbac::backup::failed", backup = %id, error = %e, "restore failed");
        }
        self.log_finish(
            row,
            Outcome {
                backup_id: Some(id.as_str()),
                rows,
                error: result.as_ref().err().map(|e| e.to_string()),
                ..Outcome::default()
            },
        )
        .await;
        result
    }

    async fn restore_inner(
        &self,
        chain: &[Manifest],
        request: &RestoreRequest,
        tenant: Option<String>,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, BackupError> {
        let target_db = match &request.to {
            Some(url) => db_of(url)?,
            None => self.db.clone(),
        };
        let create = request.to.is_some() && !request.dry_run;
        // A dry run into a new database (`--to` a file not made yet) previews the restore
        // into an empty one in memory, as the real restore will create it.
        let may_be_new = request.to.is_some();
        let root = chain
            .first()
            .ok_or_else(|| BackupError::NoMatch("empty chain".into()))?;
        let mut wanted: Vec<String> = request.tables.clone();
        if !request.modules.is_empty() {
            wanted.extend(self.config.module_tables(&request.modules)?);
        }
        let selected: Vec<TableManifest> = if wanted.is_empty() {
            root.tables.clone()
        } else {
            plan::select_tables(root.tables.clone(), &wanted)?
        };
        let keys: Vec<Option<Arc<DataKey>>> = chain
            .iter()
            .map(|m| self.key_for(m))
            .collect::<Result<_, _>>()?;
        let target = match target_db {
            Db::Sqlite(path) => path,
            Db::Postgres(url) => {
                let steps = pg::Chain {
                    manifests: chain,
                    keys: &keys,
                };
                let scope = pg::RestoreScope {
                    tables: &selected,
                    tenant: tenant.as_deref(),
                    dry_run: request.dry_run,
                    later_keys_in_memory: if self.fail_point == Some(FailPoint::LaterKeysOverflow) {
                        0
                    } else {
                        super::keyset::IN_MEMORY
                    },
                    shortcuts: self.fail_point != Some(FailPoint::DryRunInFull),
                    changed_keys_at_most: if self.fail_point == Some(FailPoint::ChangedKeysOverflow)
                    {
                        0
                    } else {
                        pg::MAX_CHANGED_KEYS
                    },
                };
                let tables = pg::restore(&url, steps, &scope, &self.storage, progress).await?;
                return Ok(RestoreReport {
                    chain: chain.iter().map(|m| m.id.clone()).collect(),
                    dry_run: request.dry_run,
                    tables,
                });
            }
        };
        // The plan both sides follow: (backup, table, chunk indexes).
        let mut steps: Vec<(usize, TableManifest, Vec<usize>)> = Vec::new();
        for (i, m) in chain.iter().enumerate() {
            for t in &selected {
                if tenant.is_some() && t.tenant_column.is_none() {
                    continue;
                }
                let Some(tm) = m.tables.iter().find(|x| x.name == t.name) else {
                    continue;
                };
                let chunks: Vec<usize> = m.chunks_of(&t.name).map(|(j, _)| j).collect();
                steps.push((i, tm.clone(), chunks));
            }
        }
        // A tenant restore of a chain reads the later steps' keys first (see
        // `Restorer::note_later_keys`).
        let later: Vec<(usize, TableManifest, Vec<usize>)> = if tenant.is_some() && chain.len() > 1
        {
            steps.iter().filter(|(i, _, _)| *i > 0).cloned().collect()
        } else {
            Vec::new()
        };
        // A tenant restore leaves out the chunks that hold none of the tenant's rows (see
        // `ChunkInfo::groups`); the later steps' keys, above, are read from every chunk.
        if let Some(tn) = tenant.as_deref() {
            for (i, _, chunks) in &mut steps {
                let m = &chain[*i];
                chunks.retain(|&j| m.chunks.get(j).is_none_or(|c| c.may_hold(tn)));
            }
        }
        let (tx, rx) = mpsc::channel::<Result<Bytes, BackupError>>(UPLOAD_QUEUE);
        let manifests: Arc<Vec<Manifest>> = Arc::new(chain.to_vec());
        let dry_run = request.dry_run;
        let hold_no_later_keys = self.fail_point == Some(FailPoint::LaterKeysOverflow);
        let worker_steps = steps.clone();
        let worker_later = later.clone();
        let worker_manifests = manifests.clone();
        let (ptx, mut prx) = mpsc::unbounded_channel::<(Option<String>, u64)>();
        let worker = tokio::task::spawn_blocking(move || {
            let relay = Relay(ptx);
            let mut rx = rx;
            let new_target = dry_run && !target.exists();
            if new_target && !may_be_new {
                return Err(BackupError::Config(format!(
                    "target database `{}` does not exist",
                    target.display()
                )));
            }
            let mut conn = if new_target {
                rusqlite::Connection::open_in_memory()?
            } else if dry_run {
                sqlite::open_read_only(&target)?
            } else {
                sqlite::open(&target, create)?
            };
            let mut restorer = Restorer::begin(&mut conn, dry_run)?;
            if new_target {
                restorer.in_scratch();
            }
            if hold_no_later_keys {
                restorer.hold_later_keys_up_to(0);
            }
            if !dry_run {
                let fulls: Vec<&TableManifest> = worker_steps
                    .iter()
                    .filter(|(i, _, _)| worker_manifests[*i].kind == BackupKind::Full)
                    .map(|(_, t, _)| t)
                    .collect();
                restorer.create_missing(&fulls)?;
            }
            for (i, table, chunks) in &worker_later {
                let key = keys.get(*i).cloned().flatten();
                let mut iter = received(&mut rx, &worker_manifests[*i], key, chunks, None);
                let step = u32::try_from(*i).unwrap_or(u32::MAX);
                restorer.note_later_keys(table, step, tenant.as_deref(), &mut iter)?;
                for _ in iter {}
            }
            for (i, table, chunks) in &worker_steps {
                let m = &worker_manifests[*i];
                relay.phase(
                    &format!("{} {}", m.id, table.name),
                    Some(table.rows + table.deleted),
                );
                let key = keys.get(*i).cloned().flatten();
                // Records of other tenants that are not read still count as done.
                let read = chunks
                    .iter()
                    .filter_map(|&j| m.chunks.get(j))
                    .fold(0u64, |n, c| n.saturating_add(c.records));
                let all = m
                    .chunks_of(&table.name)
                    .fold(0u64, |n, (_, c)| n.saturating_add(c.records));
                relay.advance(all.saturating_sub(read));
                let only = tenant.as_deref().map(|tn| (tn, &relay));
                let mut iter = received(&mut rx, m, key, chunks, only);
                let step = Step {
                    table,
                    index: u32::try_from(*i).unwrap_or(u32::MAX),
                    full: m.kind == BackupKind::Full,
                    tenant: tenant.as_deref(),
                };
                restorer.table(&step, &mut iter, &relay)?;
                // Drain what the iterator did not consume (a skipped table).
                for _ in iter {}
            }
            restorer.finish()
        });
        let storage = &self.storage;
        let fetch = async move {
            for (i, _, chunks) in later.iter().chain(&steps) {
                let m = &manifests[*i];
                for &j in chunks {
                    let name = &m.chunks[j].name;
                    let r = storage.get(&m.id, name).await;
                    let stop = r.is_err();
                    if tx.send(r).await.is_err() || stop {
                        return;
                    }
                }
            }
        };
        let relay_progress = async {
            while let Some((phase, n)) = prx.recv().await {
                match phase {
                    Some(p) => progress.phase(&p, Some(n)),
                    None => progress.advance(n),
                }
            }
        };
        let (_, _, result) = tokio::join!(fetch, relay_progress, worker);
        let tables = result.map_err(join_err)??;
        Ok(RestoreReport {
            chain: chain.iter().map(|m| m.id.clone()).collect(),
            dry_run: request.dry_run,
            tables,
        })
    }

    /// Checks every chunk of a backup (hash, decryption, decompression, record counts against
    /// the manifest); with `deep`, also restores its chain into a scratch SQLite file and
    /// compares row counts.
    pub async fn verify(
        &self,
        actor: &Actor<'_>,
        id: &BackupId,
        deep: bool,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, BackupError> {
        let m = match self.storage.manifest(id).await {
            Ok(m) => m,
            Err(e) => {
                // A corrupt manifest cannot tell the scope; only a global verifier learns more.
                self.gate(actor, Operation::Verify, &Scope::All, Some(id))
                    .await?;
                return Err(e);
            }
        };
        self.gate(actor, Operation::Verify, &m.scope, Some(id))
            .await?;
        let row = self
            .log_start(
                Operation::Verify,
                Some(id),
                &m.scope,
                actor,
                Status::Running,
            )
            .await;
        let result = self.verify_inner(&m, deep, progress).await;
        progress.finish();
        if let Err(e) = &result {
            tracing::error!(target: "rbac::backup::failed", backup = %id, error = %e, "verification failed");
        }
        self.log_finish(
            row,
            Outcome {
                backup_id: Some(id.as_str()),
                size: Some(m.size()),
                rows: result.as_ref().ok().map(|r| r.records),
                error: result.as_ref().err().map(|e| e.to_string()),
            },
        )
        .await;
        result
    }

    async fn verify_inner(
        &self,
        m: &Manifest,
        deep: bool,
        progress: &dyn Progress,
    ) -> Result<VerifyReport, BackupError> {
        // An incremental restores only with its whole chain: every manifest back to a full
        // backup must be there and sound (a parent removed by a bucket's lifecycle rule would
        // otherwise verify fine and fail the restore).
        if m.parent.is_some() {
            self.chain(&m.id).await?;
        }
        let key = self.key_for(m)?;
        let mut shapes: HashMap<&str, (usize, usize)> = m
            .tables
            .iter()
            .map(|t| (t.name.as_str(), (t.columns.len(), t.primary_key.len())))
            .collect();
        if m.files.is_some() {
            shapes.insert(files::FILES_TABLE, (files::FILE_RECORD_LEN, 2));
        }
        let mut per_table: HashMap<String, (u64, u64)> = HashMap::new();
        let mut records = 0u64;
        progress.phase(&format!("verify {}", m.id), Some(m.chunks.len() as u64));
        for (j, info) in m.chunks.iter().enumerate() {
            let stored = self.storage.get(&m.id, &info.name).await?;
            let manifest = m.clone();
            let key = key.clone();
            let &(row_len, key_len) =
                shapes
                    .get(info.table.as_str())
                    .ok_or_else(|| BackupError::CorruptManifest {
                        id: m.id.to_string(),
                        reason: format!(
                            "chunk `{}` names unknown table `{}`",
                            info.name, info.table
                        ),
                    })?;
            let (rows, dels) = tokio::task::spawn_blocking(move || {
                let raw = chunk::decode(&manifest, j, &stored, key.as_deref())?;
                let mut reader = codec::Reader::new(&raw);
                let mut values = Vec::new();
                let (mut rows, mut dels) = (0u64, 0u64);
                let corrupt = |reason: String| BackupError::CorruptChunk {
                    id: manifest.id.clone(),
                    chunk: manifest.chunks[j].name.clone(),
                    reason,
                };
                loop {
                    match reader.next(row_len, key_len, &mut values) {
                        Ok(Some(codec::ROW)) => rows += 1,
                        Ok(Some(_)) => dels += 1,
                        Ok(None) => break,
                        Err(e) => return Err(corrupt(e.to_string())),
                    }
                }
                if rows + dels != manifest.chunks[j].records {
                    return Err(corrupt(format!(
                        "{} records, the manifest says {}",
                        rows + dels,
                        manifest.chunks[j].records
                    )));
                }
                let info = &manifest.chunks[j];
                if !info.groups.is_empty() {
                    let tenant_column = manifest
                        .tables
                        .iter()
                        .find(|t| t.name == info.table)
                        .and_then(|t| t.tenant_position());
                    chunk::check_groups(info, &raw, (row_len, key_len), tenant_column)
                        .map_err(corrupt)?;
                }
                Ok((rows, dels))
            })
            .await
            .map_err(join_err)??;
            let e = per_table.entry(info.table.clone()).or_default();
            e.0 += rows;
            e.1 += dels;
            records += rows + dels;
            progress.advance(1);
        }
        for t in &m.tables {
            let (rows, dels) = per_table.get(&t.name).copied().unwrap_or_default();
            if rows != t.rows || dels != t.deleted {
                return Err(BackupError::CorruptManifest {
                    id: m.id.to_string(),
                    reason: format!(
                        "table `{}`: chunks hold {rows} rows and {dels} deletes, the manifest says {} and {}",
                        t.name, t.rows, t.deleted
                    ),
                });
            }
        }
        if let Some(f) = &m.files {
            let (rows, _) = per_table
                .get(files::FILES_TABLE)
                .copied()
                .unwrap_or_default();
            if rows != f.records {
                return Err(BackupError::CorruptManifest {
                    id: m.id.to_string(),
                    reason: format!(
                        "files: chunks hold {rows} records, the manifest says {}",
                        f.records
                    ),
                });
            }
        }
        if deep {
            self.deep_check(m, progress).await?;
        }
        Ok(VerifyReport {
            id: m.id.clone(),
            chunks: m.chunks.len(),
            records,
            deep,
        })
    }

    async fn deep_check(&self, m: &Manifest, progress: &dyn Progress) -> Result<(), BackupError> {
        let chain = self.chain(&m.id).await?;
        // A new directory of a name nobody can guess, readable by its owner only: it holds
        // the decrypted backup, and one made beforehand by someone else is never reused.
        let dir = tempfile::Builder::new()
            .prefix(&format!("rbac-verify-{}-", m.id))
            .tempdir()
            .map_err(|source| BackupError::Io {
                context: "cannot create a scratch directory".into(),
                source,
            })?
            .keep();
        let scratch = dir.join("scratch.db");
        let request = RestoreRequest {
            from: Selector::Id(m.id.clone()),
            tables: Vec::new(),
            modules: Vec::new(),
            tenant: None,
            to: Some(format!("sqlite://{}", scratch.display())),
            dry_run: false,
        };
        let result = async {
            // A tenant backup restores into an empty scratch file like any other.
            let tenant = m.scope.tenant().map(str::to_owned);
            self.restore_inner(&chain, &request, tenant, progress).await?;
            if chain.last().is_some_and(|m| m.files.is_some()) {
                self.restore_files_inner(&chain, &dir.join("files"), false, progress)
                    .await?;
            }
            if m.kind == BackupKind::Full {
                let tables = m.tables.clone();
                let path = scratch.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = sqlite::open_read_only(&path)?;
                    for t in &tables {
                        let n = sqlite::count_rows(&conn, &t.name)?;
                        if n != t.rows {
                            return Err(BackupError::CorruptManifest {
                                id: String::new(),
                                reason: format!(
                                    "deep check: table `{}` restored {n} rows, the manifest says {}",
                                    t.name, t.rows
                                ),
                            });
                        }
                    }
                    Ok(())
                })
                .await
                .map_err(join_err)??;
            }
            Ok::<_, BackupError>(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result.map_err(|e| match e {
            BackupError::CorruptManifest { id, reason } if id.is_empty() => {
                BackupError::CorruptManifest {
                    id: m.id.to_string(),
                    reason,
                }
            }
            other => other,
        })
    }

    /// Restores the files directory of a backup of scope `all` (and its chain) into `target`
    /// (default: the configured `files_dir`), or with `dry_run` only reports what would
    /// change. The files are staged beside the target, checked against their SHA-256, and
    /// swapped in with two renames: the target never holds a mix. Needs
    /// `system.backup.restore` for scope `all`.
    pub async fn restore_files(
        &self,
        actor: &Actor<'_>,
        from: &Selector,
        target: Option<&std::path::Path>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<files::FilesReport, BackupError> {
        let id = self.select(from, None).await?;
        self.gate(actor, Operation::Restore, &Scope::All, Some(&id))
            .await?;
        // Logged like a restore of the database (a dry run, which changes nothing, only to
        // tracing), failures included.
        let row = if dry_run {
            None
        } else {
            self.log_start(
                Operation::Restore,
                Some(&id),
                &Scope::All,
                actor,
                Status::Running,
            )
            .await
        };
        let result = async {
            let chain = self.chain(&id).await?;
            let target = match (target, &self.config.files_dir) {
                (Some(t), _) => t.to_path_buf(),
                (None, Some(dir)) => dir.clone(),
                (None, None) => {
                    return Err(BackupError::InvalidInput(
                        "no files directory: configure `files_dir` or give a target".into(),
                    ));
                }
            };
            self.restore_files_inner(&chain, &target, dry_run, progress)
                .await
        }
        .await
        .map(|report| files::FilesReport {
            backup: id.to_string(),
            ..report
        });
        match &result {
            Ok(r) => {
                tracing::info!(target: "rbac::backup", backup = %id, actor = actor.subject, files = r.files, dry_run, "files restored")
            }
            Err(e) => {
                tracing::error!(target: "rbac::backup::failed", backup = %id, error = %e, "files restore failed")
            }
        }
        self.log_finish(
            row,
            Outcome {
                backup_id: Some(id.as_str()),
                rows: result.as_ref().ok().map(|r| r.files),
                error: result.as_ref().err().map(|e| e.to_string()),
                ..Outcome::default()
            },
        )
        .await;
        result
    }

    async fn restore_files_inner(
        &self,
        chain: &[Manifest],
        target: &std::path::Path,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<files::FilesReport, BackupError> {
        let newest = chain
            .last()
            .ok_or_else(|| BackupError::NoMatch("empty chain".into()))?;
        let listing = newest.files.clone().ok_or_else(|| {
            BackupError::NoMatch(format!(
                "backup {} holds no files directory (only backups of scope `all` made with `files_dir` set do)",
                newest.id
            ))
        })?;
        let mut stager = files::Stager::new(target, dry_run)?;
        progress.phase("files", None);
        for m in chain {
            let key = self.key_for(m)?;
            for (j, info) in m.chunks.iter().enumerate() {
                if info.table != files::FILES_TABLE {
                    continue;
                }
                let stored = self.storage.get(&m.id, &info.name).await?;
                let manifest = m.clone();
                let key = key.clone();
                stager = tokio::task::spawn_blocking(move || {
                    let raw = chunk::decode(&manifest, j, &stored, key.as_deref())?;
                    stager.chunk(&raw, &manifest.chunks[j].name)?;
                    Ok::<_, BackupError>(stager)
                })
                .await
                .map_err(join_err)??;
                progress.advance(info.records);
            }
        }
        let target = target.to_path_buf();
        tokio::task::spawn_blocking(move || stager.finish(&listing.entries, &target, dry_run))
            .await
            .map_err(join_err)?
    }

    /// Key rotation: unwraps the data key with the configured identities and wraps it again
    /// for the currently configured recipients (and passphrase), replacing the manifest
    /// atomically. The data is not re-encrypted. Needs `system.backup.delete` (it can remove
    /// everyone else's access).
    pub async fn rewrap(&self, actor: &Actor<'_>, id: &BackupId) -> Result<Manifest, BackupError> {
        let mut m = self.storage.manifest(id).await?;
        self.gate(actor, Operation::Rewrap, &m.scope, Some(id))
            .await?;
        let scope = m.scope.clone();
        let work = async {
            let Some(enc) = &m.encryption else {
                return Err(BackupError::InvalidInput(format!(
                    "backup {id} is not encrypted"
                )));
            };
            let key = self.keys.unwrap(id, enc)?;
            if !self.keys.encrypts() {
                return Err(BackupError::Key(
                    "no recipients configured to wrap the key for: set `encryption.recipients`"
                        .into(),
                ));
            }
            m.encryption = Some(self.keys.wrap(&key)?);
            self.storage.put_manifest(&m).await
        };
        self.logged(Operation::Rewrap, id, &scope, actor, None, work)
            .await?;
        tracing::info!(target: "rbac::backup", backup = %id, actor = actor.subject, "data key re-wrapped");
        Ok(m)
    }

    /// Deletes a complete backup (`system.backup.delete`); refuses while a kept incremental
    /// depends on it.
    pub async fn delete(&self, actor: &Actor<'_>, id: &BackupId) -> Result<(), BackupError> {
        let m = self.storage.manifest(id).await?;
        self.gate(actor, Operation::Delete, &m.scope, Some(id))
            .await?;
        let work = async {
            let dependents: Vec<String> = self
                .summaries()
                .await?
                .into_iter()
                .filter(|s| s.parent.as_ref() == Some(id))
                .map(|s| s.id.to_string())
                .collect();
            if !dependents.is_empty() {
                return Err(BackupError::InvalidInput(format!(
                    "backup {id} has incrementals depending on it ({}); delete those first",
                    dependents.join(", ")
                )));
            }
            self.storage.delete(id).await
        };
        self.logged(Operation::Delete, id, &m.scope, actor, Some(m.size()), work)
            .await
    }

    /// Runs `work`, an operation on backup `id` that `actor` was allowed, as a row of the
    /// backup log: refusals after the permission check (a backup others depend on, one that
    /// is not encrypted) included.
    async fn logged<T>(
        &self,
        op: Operation,
        id: &BackupId,
        scope: &Scope,
        actor: &Actor<'_>,
        size: Option<u64>,
        work: impl Future<Output = Result<T, BackupError>>,
    ) -> Result<T, BackupError> {
        let row = self
            .log_start(op, Some(id), scope, actor, Status::Running)
            .await;
        let result = work.await;
        self.log_finish(
            row,
            Outcome {
                backup_id: Some(id.as_str()),
                size,
                error: result.as_ref().err().map(|e| e.to_string()),
                ..Outcome::default()
            },
        )
        .await;
        result
    }

    /// Writes a backup as one tar archive (`<id>/chunks/...`, `<id>/manifest.json`), exactly
    /// as stored (still encrypted if it is), one stored object in memory at a time. Returns the
    /// bytes of payload written. Needs `system.backup.download`.
    pub async fn download(
        &self,
        actor: &Actor<'_>,
        id: &BackupId,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, BackupError> {
        let (mut archive, row) = self.start_download(actor, id).await?;
        let result = async {
            while let Some(piece) = archive.next().await? {
                out.write_all(&piece).map_err(|source| BackupError::Io {
                    context: "cannot write the archive".into(),
                    source,
                })?;
            }
            Ok::<_, BackupError>(archive.stored)
        }
        .await;
        self.finish_download(id, row, &result).await;
        result
    }

    /// The archive of [`BackupService::download`] as a stream of pieces (for an HTTP body),
    /// with its exact length; memory stays at one stored object. The operation is logged when
    /// the stream ends.
    pub async fn download_stream(
        self: Arc<Self>,
        actor: &Actor<'_>,
        id: &BackupId,
    ) -> Result<
        (
            u64,
            futures::stream::BoxStream<'static, Result<Bytes, BackupError>>,
        ),
        BackupError,
    > {
        let (archive, row) = self.start_download(actor, id).await?;
        let length = archive.length;
        let id = id.clone();
        let stream = futures::stream::unfold(Some((self, archive, row, id)), |state| async move {
            let (service, mut archive, row, id) = state?;
            match archive.next().await {
                Ok(Some(piece)) => Some((Ok(piece), Some((service, archive, row, id)))),
                Ok(None) => {
                    service.finish_download(&id, row, &Ok(archive.stored)).await;
                    None
                }
                Err(e) => {
                    let failed = Err(BackupError::Storage(e.to_string()));
                    service.finish_download(&id, row, &failed).await;
                    Some((Err(e), None))
                }
            }
        });
        Ok((length, Box::pin(stream)))
    }

    async fn start_download(
        &self,
        actor: &Actor<'_>,
        id: &BackupId,
    ) -> Result<(Archive, Option<i64>), BackupError> {
        let m = self.storage.manifest(id).await?;
        self.gate(actor, Operation::Download, &m.scope, Some(id))
            .await?;
        let manifest_bytes = self.storage.get(id, super::storage::MANIFEST).await?;
        let row = self
            .log_start(
                Operation::Download,
                Some(id),
                &m.scope,
                actor,
                Status::Running,
            )
            .await;
        Ok((Archive::new(self.storage.clone(), &m, manifest_bytes)?, row))
    }

    async fn finish_download(
        &self,
        id: &BackupId,
        row: Option<i64>,
        result: &Result<u64, BackupError>,
    ) {
        self.log_finish(
            row,
            Outcome {
                backup_id: Some(id.as_str()),
                size: result.as_ref().ok().copied(),
                error: result.as_ref().err().map(|e| e.to_string()),
                ..Outcome::default()
            },
        )
        .await;
    }
}

/// A backup as a tar stream: per stored object a 512-byte header, its bytes and padding to
/// 512, then two zero blocks.
struct Archive {
    storage: Storage,
    id: BackupId,
    mtime: u64,
    /// Objects still to send (name, and the bytes when already fetched).
    objects: std::collections::VecDeque<(String, Option<Bytes>)>,
    trailer_sent: bool,
    /// The archive's length in bytes.
    length: u64,
    /// Bytes of stored objects sent.
    stored: u64,
}

const TAR_BLOCK: u64 = 512;

impl Archive {
    fn new(storage: Storage, m: &Manifest, manifest: Bytes) -> Result<Archive, BackupError> {
        let padded = |n: u64| n.div_ceil(TAR_BLOCK) * TAR_BLOCK;
        let mut length = 2 * TAR_BLOCK;
        let mut objects = std::collections::VecDeque::new();
        for c in &m.chunks {
            length += TAR_BLOCK + padded(c.size);
            objects.push_back((c.name.clone(), None));
        }
        length += TAR_BLOCK + padded(manifest.len() as u64);
        objects.push_back((super::storage::MANIFEST.to_owned(), Some(manifest)));
        Ok(Archive {
            storage,
            id: m.id.clone(),
            mtime: m.finished_at.timestamp().max(0) as u64,
            objects,
            trailer_sent: false,
            length,
            stored: 0,
        })
    }

    async fn next(&mut self) -> Result<Option<Bytes>, BackupError> {
        let Some((name, data)) = self.objects.pop_front() else {
            if self.trailer_sent {
                return Ok(None);
            }
            self.trailer_sent = true;
            return Ok(Some(Bytes::from(vec![0u8; 2 * TAR_BLOCK as usize])));
        };
        let data = match data {
            Some(d) => d,
            None => self.storage.get(&self.id, &name).await?,
        };
        let bad = |e: std::io::Error| BackupError::Io {
            context: "cannot write the archive".into(),
            source: e,
        };
        let mut header = tar::Header::new_gnu();
        header
            .set_path(format!("{}/{name}", self.id))
            .map_err(bad)?;
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        header.set_cksum();
        let padding = (TAR_BLOCK - data.len() as u64 % TAR_BLOCK) % TAR_BLOCK;
        let mut piece = Vec::with_capacity(TAR_BLOCK as usize + data.len() + padding as usize);
        piece.extend_from_slice(header.as_bytes());
        piece.extend_from_slice(&data);
        piece.resize(piece.len() + padding as usize, 0);
        self.stored += data.len() as u64;
        Ok(Some(Bytes::from(piece)))
    }
}

/// Forwards progress from a blocking worker to the caller's [`Progress`].
struct Relay(mpsc::UnboundedSender<(Option<String>, u64)>);

impl Progress for Relay {
    fn phase(&self, name: &str, total: Option<u64>) {
        let _ = self.0.send((Some(name.to_owned()), total.unwrap_or(0)));
    }
    fn advance(&self, n: u64) {
        let _ = self.0.send((None, n));
    }
}

/// The decoded `chunks` of `m`, in the order the fetcher sends them down `rx`. With a
/// tenant, only what its restore needs is decompressed ([`chunk::decode_for`]), and the
/// records left out advance the progress.
fn received<'a>(
    rx: &'a mut mpsc::Receiver<Result<Bytes, BackupError>>,
    m: &'a Manifest,
    key: Option<Arc<DataKey>>,
    chunks: &'a [usize],
    tenant: Option<(&'a str, &'a Relay)>,
) -> impl Iterator<Item = Result<Vec<u8>, BackupError>> + 'a {
    chunks.iter().map(move |&j| {
        let stored = rx
            .blocking_recv()
            .ok_or_else(|| BackupError::Storage("chunk download stopped".into()))??;
        let (raw, skipped) = chunk::decode_for(m, j, &stored, key.as_deref(), tenant.map(|t| t.0))?;
        if let Some((_, relay)) = tenant {
            relay.advance(skipped);
        }
        Ok(raw)
    })
}
