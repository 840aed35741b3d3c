//! Policies kept in a database: SQLite (embedded, the default) or PostgreSQL, through sqlx.
//!
//! A [`Store`] holds the whole policy in normalised tables (one schema for both databases,
//! migrations embedded and applied on [`Store::connect`]). Every change goes through
//! [`Store::apply`]: one transaction that takes the store's write lock, reads the current policy,
//! applies the [`Change`]s, validates the result with the same rules as the TOML loader, writes
//! only what changed, bumps the policy version, appends a hash-chained audit record and (on
//! PostgreSQL) notifies other instances. A rejected change leaves the store exactly as it was.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rbac_core::store::{Change, ChangeContext, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::connect(&format!("sqlite://{}/rbac.db", dir.path().display())).await?;
//! let admin = ChangeContext::new("root@example.com").comment("initial setup");
//! store
//!     .apply(&admin, &[
//!         Change::DeclarePermission { name: "finance.invoices.read".into(), description: "Read invoices".into() },
//!         Change::CreateTenant { name: "acme".into(), description: None },
//!         Change::CreateRole { tenant: None, name: "viewer".into(), description: None },
//!         Change::Grant { tenant: None, role: "viewer".into(), pattern: "finance.*".into() },
//!         Change::Assign { subject: "alice".into(), tenant: Some("acme".into()), role: "viewer".into() },
//!     ])
//!     .await?;
//! let live = store.live_engine(Default::default()).await?;
//! assert!(live.check("alice", "acme", "finance.invoices.read").is_allowed());
//!
//! store.apply_one(&admin, Change::Unassign { subject: "alice".into(), tenant: Some("acme".into()), role: "viewer".into() }).await?;
//! // This process's engine reflects a committed change before `apply` returns.
//! assert!(!live.check("alice", "acme", "finance.invoices.read").is_allowed());
//! live.shutdown().await;
//! # Ok(()) }
//! ```

mod audit;
mod change;
mod history;
mod live;
mod sql;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Transaction};

pub use audit::{AuditQuery, AuditRecord, ChainReport, DecisionAuditMode, DecisionRecord};
pub use change::{Change, ChangeContext, ChangeError};
pub use live::{Health, LiveEngine, LiveOptions};

use crate::policy::{Policy, ValidationErrors};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL channel on which committed versions are announced.
pub(crate) const NOTIFY_CHANNEL: &str = "rbac_policy";

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// An SQLite file (or `sqlite::memory:`).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL `{url}`: use `sqlite://FILE` or `postgres://USER@HOST/DB`")]
    UnsupportedUrl {
        /// The URL, password hidden.
        url: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to the policy database `{url}`: {source}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What the driver said.
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied.
    #[error("cannot apply the policy database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("policy database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The change would make the policy invalid; nothing was written.
    #[error("change rejected, nothing was written: {0}")]
    Invalid(#[from] ValidationErrors),
    /// The change does not fit the current policy (it removes something that is not there).
    #[error("change rejected, nothing was written: {0}")]
    Change(#[from] ChangeError),
    /// The policy could not be written as TOML.
    #[error("cannot write the policy as TOML: {0}")]
    Export(#[from] toml::ser::Error),
    /// Stored data that this version cannot read.
    #[error("the stored policy is unreadable: {0}")]
    Corrupt(String),
    /// A past policy version that the store cannot rebuild: it is newer than the current
    /// version, or older than the history kept (versions committed before the history
    /// migration).
    #[error(
        "policy version {version} is not available: the store can rebuild versions {earliest} to {current}"
    )]
    VersionUnavailable {
        /// The version asked for.
        version: i64,
        /// The oldest version the store can rebuild.
        earliest: i64,
        /// The current version.
        current: i64,
    },
    /// [`StoreOptions::existing_only`]: the database holds no policy store (no `rbac_meta`
    /// table), and nothing was written to it.
    #[error(
        "`{url}` holds no policy store: create one there first (`rbac-admin init`), or point at the right database"
    )]
    NotAPolicyDatabase {
        /// The URL, with any password hidden.
        url: String,
    },
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Refuse a database that holds no policy store yet ([`StoreError::NotAPolicyDatabase`])
    /// rather than create one in it: for tools that only read or change an existing policy,
    /// so that a mistyped URL never writes tables (or switches the journal mode) of another
    /// application's database. Default `false`: [`Store::connect`] creates the store.
    pub existing_only: bool,
    /// How long to wait for a connection (and, at start, for the database).
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            existing_only: false,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// What [`Store::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The policy version after the call.
    pub version: i64,
    /// Whether anything changed (a change that changes nothing writes nothing, not even audit).
    pub changed: bool,
}

/// A policy database. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// The URL connected to (it may hold a password).
    connect_url: String,
    /// The URL with the password hidden.
    url: String,
    /// Live engines of this process, updated before `apply` returns.
    attached: Mutex<Vec<Weak<live::Shared>>>,
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Store {
    /// Connects, creating an SQLite file if missing, and applies the embedded migrations
    /// (idempotent). Fails with a clear error when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    /// Like [`Store::connect`], with settings.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let shown_url = redact(url);
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl { url: shown_url });
        };
        let connect_err = |source| StoreError::Connect {
            url: shown_url.clone(),
            source,
        };
        let connect_options: AnyConnectOptions = url.parse().map_err(connect_err)?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let max = if in_memory {
            1
        } else {
            options.max_connections.max(2)
        };
        let mut pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(options.acquire_timeout);
        if in_memory {
            // An in-memory database lives as long as its one connection: the pool must never
            // close it as idle or old, or the policy (and its tables) would be gone.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(connect_options)
            .await
            .map_err(connect_err)?;
        if options.existing_only {
            let probe = match backend {
                Backend::Sqlite => {
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rbac_meta'"
                }
                Backend::Postgres => {
                    "SELECT count(*) FROM pg_class WHERE oid = to_regclass('rbac_meta')"
                }
            };
            let found: i64 = sqlx::query_scalar(probe).fetch_one(&pool).await?;
            if found == 0 {
                pool.close().await;
                return Err(StoreError::NotAPolicyDatabase { url: shown_url });
            }
        }
        if backend == Backend::Sqlite && !in_memory {
            // WAL lets checks and version polls read while a change is being written.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        let inner = Inner {
            pool,
            backend,
            connect_url: url,
            url: shown_url,
            attached: Mutex::new(Vec::new()),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The database kind.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The URL with any password hidden, for messages.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    #[cfg_attr(
        not(feature = "postgres"),
        expect(dead_code, reason = "only the listener needs it")
    )]
    pub(crate) fn raw_url(&self) -> &str {
        &self.inner.connect_url
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// The current policy version: 0 for an empty store, one more for every committed change.
    pub async fn version(&self) -> Result<i64, StoreError> {
        Ok(sql::version(&mut *self.inner.pool.acquire().await?).await?)
    }

    /// The current policy, validated.
    pub async fn load(&self) -> Result<Policy, StoreError> {
        Ok(self.load_versioned().await?.0)
    }

    /// The current policy and its version, read in one transaction.
    pub async fn load_versioned(&self) -> Result<(Policy, i64), StoreError> {
        let (policy, revision) = self.load_revision().await?;
        Ok((policy, revision.version))
    }

    /// The current policy and its revision, read in one transaction.
    pub(crate) async fn load_revision(&self) -> Result<(Policy, sql::Revision), StoreError> {
        let mut tx = self.begin_read().await?;
        let revision = sql::revision(&mut tx).await?;
        let document = sql::load_document(&mut tx).await?;
        tx.commit().await?;
        let policy = Policy::from_document(document).map_err(|e| {
            StoreError::Corrupt(format!("the stored policy does not validate: {e}"))
        })?;
        Ok((policy, revision))
    }

    /// The current version and the commit that made it.
    pub(crate) async fn revision(&self) -> Result<sql::Revision, StoreError> {
        Ok(sql::revision(&mut *self.inner.pool.acquire().await?).await?)
    }

    /// The policy as it was at `version` (0: the empty policy before the first change), rebuilt
    /// exactly from the current policy and the history of every version after it. Fails with
    /// [`StoreError::VersionUnavailable`] for a version newer than the current one or older
    /// than the history kept (it starts with the first change after the history migration).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rbac_core::store::{Change, ChangeContext, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::connect(&format!("sqlite://{}/rbac.db", dir.path().display())).await?;
    /// let admin = ChangeContext::new("root");
    /// let v1 = store
    ///     .apply_one(&admin, Change::CreateRole { tenant: None, name: "viewer".into(), description: None })
    ///     .await?
    ///     .version;
    /// store.apply_one(&admin, Change::DeleteRole { tenant: None, name: "viewer".into() }).await?;
    /// assert!(store.load().await?.document().roles.is_empty());
    /// assert!(store.policy_at(v1).await?.document().roles.contains_key("viewer"));
    /// # Ok(()) }
    /// ```
    pub async fn policy_at(&self, version: i64) -> Result<Policy, StoreError> {
        let mut tx = self.begin_read().await?;
        let current = sql::version(&mut tx).await?;
        let since = history::since(&mut tx).await?;
        if version < since || version > current {
            return Err(StoreError::VersionUnavailable {
                version,
                earliest: since,
                current,
            });
        }
        let mut document = sql::load_document(&mut tx).await?;
        let deltas = history::after(&mut tx, version).await?;
        tx.commit().await?;
        // Every version after the one asked for must have its delta, newest first.
        if deltas
            .iter()
            .map(|(v, _)| *v)
            .ne((version + 1..=current).rev())
        {
            return Err(StoreError::Corrupt(format!(
                "the policy history between versions {version} and {current} has gaps"
            )));
        }
        for (_, delta) in &deltas {
            delta.undo(&mut document);
        }
        Policy::from_document(document).map_err(|e| {
            StoreError::Corrupt(format!(
                "policy version {version} rebuilt from the history does not validate: {e}"
            ))
        })
    }

    /// The current policy as a TOML document; [`Store::import`] of it changes nothing.
    pub async fn export_toml(&self) -> Result<String, StoreError> {
        Ok(self.load().await?.to_toml_string()?)
    }

    /// Replaces the whole stored policy with `policy`, as one audited change.
    pub async fn import(
        &self,
        ctx: &ChangeContext,
        policy: &Policy,
    ) -> Result<Applied, StoreError> {
        self.apply(
            ctx,
            &[Change::ReplaceAll(Box::new(policy.document().clone()))],
        )
        .await
    }

    /// Applies one change; see [`Store::apply`].
    pub async fn apply_one(
        &self,
        ctx: &ChangeContext,
        change: Change,
    ) -> Result<Applied, StoreError> {
        self.apply(ctx, std::slice::from_ref(&change)).await
    }

    /// Applies `changes` in order as one transaction: all or nothing. The result is validated
    /// like a TOML policy; on success the version is bumped, an audit record is chained, other
    /// instances are notified, and this process's live engines are updated before returning.
    pub async fn apply(
        &self,
        ctx: &ChangeContext,
        changes: &[Change],
    ) -> Result<Applied, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = sql::load_document(&mut tx).await?;
        let mut after = before.clone();
        for change in changes {
            change.apply_to(&mut after)?;
        }
        let version = sql::version(&mut tx).await?;
        // Validated first: compared in the form the store keeps (what `before` was read in).
        let policy = Policy::from_document(after)?;
        if *policy.document() == before {
            tx.rollback().await?;
            return Ok(Applied {
                version,
                changed: false,
            });
        }
        let diff = sql::write_diff(&mut tx, &before, policy.document()).await?;
        let version = version + 1;
        let revision = sql::set_version(&mut tx, version).await?;
        history::record(
            &mut tx,
            version,
            &history::Reverse::between(&before, policy.document()),
        )
        .await?;
        let detail = serde_json::json!({
            "changes": changes.iter().map(Change::summary).collect::<Vec<_>>(),
            "before": diff.before,
            "after": diff.after,
        });
        let action = match changes {
            [one] => one.action(),
            _ => "batch",
        };
        audit::append_change(&mut tx, ctx, action, version, &detail).await?;
        if self.inner.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(version.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(target: "rbac::store", actor = %ctx.actor, action, version, "policy changed");
        self.publish(&policy, revision);
        Ok(Applied {
            version,
            changed: true,
        })
    }

    /// Begins a transaction whose reads all see one committed state. On PostgreSQL a plain
    /// `BEGIN` is READ COMMITTED, where each statement sees the commits made before it: the
    /// dozen reads of a policy could then mix two versions (a role's grants before a change,
    /// its assignments after), a policy that was never committed. SQLite's deferred
    /// transaction already reads one snapshot.
    pub(crate) async fn begin_read(&self) -> Result<Transaction<'static, sqlx::Any>, StoreError> {
        match self.inner.backend {
            Backend::Sqlite => Ok(self.inner.pool.begin().await?),
            Backend::Postgres => Ok(self
                .inner
                .pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?),
        }
    }

    /// Begins a transaction holding the store's write lock, so that concurrent writers (in this
    /// process or others) apply their changes one after another and none is lost.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Any>, StoreError> {
        match self.inner.backend {
            Backend::Sqlite => Ok(self.inner.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.inner.pool.begin().await?;
                // An arbitrary constant naming this store's lock ("rbac" in ASCII).
                sqlx::query("SELECT pg_advisory_xact_lock(1919050339)")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    fn publish(&self, policy: &Policy, revision: sql::Revision) {
        let engines: Vec<Arc<live::Shared>> = match self.inner.attached.lock() {
            Ok(mut list) => {
                list.retain(|w| w.strong_count() > 0);
                list.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => Vec::new(),
        };
        if engines.is_empty() {
            return;
        }
        let snapshot = Arc::new(crate::Snapshot::compile(policy));
        for shared in engines {
            shared.install(snapshot.clone(), revision);
        }
    }

    fn attach(&self, shared: &Arc<live::Shared>) {
        if let Ok(mut list) = self.inner.attached.lock() {
            list.push(Arc::downgrade(shared));
        }
    }

    /// Policy-change audit records matching `query`, oldest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        audit::query_changes(self.pool(), query).await
    }

    /// Decision records matching `query`, oldest first.
    pub async fn decisions(&self, query: &AuditQuery) -> Result<Vec<DecisionRecord>, StoreError> {
        audit::query_decisions(self.pool(), query).await
    }

    /// Writes the policy-change records matching `query` as JSON lines; returns how many.
    pub async fn export_audit_jsonl(
        &self,
        query: &AuditQuery,
        out: &mut dyn std::io::Write,
    ) -> Result<usize, StoreError> {
        let records = self.audit(query).await?;
        for record in &records {
            let line =
                serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writeln!(out, "{line}")
                .map_err(|e| StoreError::Corrupt(format!("cannot write: {e}")))?;
        }
        Ok(records.len())
    }

    /// Recomputes both hash chains (policy changes and decisions) and reports the first broken
    /// link of each, if any.
    pub async fn verify_audit(&self) -> Result<ChainReport, StoreError> {
        audit::verify(self.pool()).await
    }

    /// Builds a live engine from the store and keeps it current; see [`LiveEngine`].
    pub async fn live_engine(&self, options: LiveOptions) -> Result<LiveEngine, StoreError> {
        LiveEngine::start(self.clone(), options).await
    }
}

/// Adds `mode=rwc` to an SQLite URL without a mode, so the file is created on first use.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=rwc")
}

pub(crate) type Conn = AnyConnection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact("postgres://u:hunter2@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://rbac.db"), "sqlite://rbac.db");
    }

    #[test]
    fn sqlite_files_are_created_on_first_use() {
        assert_eq!(sqlite_url("sqlite://rbac.db"), "sqlite://rbac.db?mode=rwc");
        assert_eq!(
            sqlite_url("sqlite://rbac.db?mode=ro"),
            "sqlite://rbac.db?mode=ro"
        );
        assert_eq!(sqlite_url("sqlite::memory:"), "sqlite::memory:");
    }
}
