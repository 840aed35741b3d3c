//! Backup schedules stored in the database, and the scheduler that runs them.
//!
//! A [`Schedule`] is a cron expression (5 fields, or `@daily`-style aliases, via `croner`) read
//! in a time zone (UTC unless one is given), a job kind (full or incremental backup, or a
//! retention-only `prune`), a [`Scope`], an optional retention policy applied after each run,
//! an active flag, the next due time and the last run. Schedules live in the application
//! database (`rbac_backup_schedules`, created with `CREATE TABLE IF NOT EXISTS` on connect,
//! on SQLite and PostgreSQL alike), so every scheduler process and the CLI see the same ones.
//!
//! The [`Scheduler`] wakes for the next due schedule (and at least every
//! [`SchedulerOptions::poll`], to notice schedules added meanwhile) and runs what is due:
//! - **Catch-up once.** A due schedule's next run is computed from *now*, not from the missed
//!   slot, so after downtime spanning several slots it runs once, then resumes its rhythm.
//! - **One backup per scope at a time.** An in-process guard, and a lease row per scope in
//!   `rbac_backup_leases` (with an expiry renewed while the job runs, so a crashed process
//!   frees it), so two scheduler processes never run backups of one scope at once. A schedule
//!   whose scope is busy stays due and runs when the scope frees.
//! - **Exactly one runner per slot.** The slot is claimed by a compare-and-set on `next_run`,
//!   so two schedulers that both saw it due cannot both run it.
//! - **Daylight saving time.** Slots are computed in the schedule's zone: a daily `30 2 * * *`
//!   in `Europe/Berlin` runs at 03:00 on the spring-forward day (02:30 does not exist) and once,
//!   at the first 02:30, on the fall-back day.
//! - **Records.** Each run is a row of `rbac_backup_schedule_runs` (slot, start, end, status,
//!   backup id, error), and the schedule keeps its last run and status; failures also go to
//!   `tracing`.
//! - **Shutdown.** [`Scheduler::run`] returns when its shutdown future completes, after the
//!   runs in progress finish (a backup is never cut in half by a signal).
//!
//! Scheduled jobs act as the schedule's `created_by` subject: the permission check happens at
//! each run, so revoking that subject's grant stops its schedules (the run is recorded as
//! failed, denied).
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use rbac_admin::backup::schedule::CronSpec;
//!
//! let spec = CronSpec::parse("30 2 * * *", "Europe/Berlin").unwrap();
//! // 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin; the run happens at 03:00 CEST.
//! let after = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
//! assert_eq!(spec.next_after(after).unwrap(), Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, AssertSqlSafe, Row};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::model::{BackupError, BackupKind, Scope};
use super::retention::{RetentionError, RetentionPolicy};

/// Why a schedule operation failed. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse or never matches.
    #[error(
        "invalid cron expression `{expr}`: {reason} (e.g. `0 2 * * *` daily at 02:00, `*/5 * * * *`)"
    )]
    InvalidCron {
        /// The expression.
        expr: String,
        /// What croner said.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error(
        "unknown time zone `{0}`: use an IANA name such as `UTC`, `Europe/Berlin`, `America/New_York`"
    )]
    InvalidTimeZone(String),
    /// A bad schedule name.
    #[error(
        "invalid schedule name `{0}`: use 1-64 letters, digits, `-`, `_` or `.`, not only digits (a number is a schedule id)"
    )]
    InvalidName(String),
    /// A bad job kind.
    #[error("unknown schedule kind `{0}`: use `full`, `incremental` or `prune`")]
    InvalidKind(String),
    /// A `prune` schedule needs a retention policy.
    #[error("a `prune` schedule needs a retention policy (e.g. --retention daily=7,weekly=4)")]
    PruneWithoutRetention,
    /// The scope does not parse.
    #[error(transparent)]
    Scope(#[from] BackupError),
    /// The retention specification does not parse.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// No schedule with this name or id.
    #[error("no schedule `{0}` (see `rbac-admin backup schedule list`)")]
    NotFound(String),
    /// A schedule with this name exists.
    #[error("a schedule named `{0}` already exists; remove it first or pick another name")]
    Duplicate(String),
    /// The database URL is not one we support.
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("schedule database error: {0}")]
    Database(#[from] sqlx::Error),
}

// ---------------------------------------------------------------------------------------------
// Cron in a time zone
// ---------------------------------------------------------------------------------------------

/// A parsed cron expression with its time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    tz: Tz,
}

impl CronSpec {
    /// Parses `expr` (5 fields or an `@hourly`-style alias) in time zone `tz` (IANA name).
    pub fn parse(expr: &str, tz: &str) -> Result<CronSpec, ScheduleError> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| ScheduleError::InvalidTimeZone(tz.chars().take(64).collect()))?;
        let cron = Cron::from_str(expr.trim()).map_err(|e| ScheduleError::InvalidCron {
            expr: expr.chars().take(128).collect(),
            reason: e.to_string(),
        })?;
        let spec = CronSpec { cron, tz };
        // A pattern that never matches (`0 0 31 2 *`) is an input error, not a silent no-op.
        if spec.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::InvalidCron {
                expr: expr.chars().take(128).collect(),
                reason: "it never matches".into(),
            });
        }
        Ok(spec)
    }

    /// The first slot strictly after `after`, as a UTC instant; `None` if there is none.
    ///
    /// Computed on the wall clock of the zone: a slot inside a spring-forward gap moves to the
    /// first instant after the gap, and a fixed-time slot in a repeated fall-back hour happens
    /// once, at its first occurrence.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        let mut next = self.cron.find_next_occurrence(&local, false).ok()?;
        // A fixed-time job whose previous slot was the first pass of a repeated hour must not
        // run again in the second pass: skip a candidate whose wall time equals the wall
        // time of an earlier instant of the same day (a repeated local time).
        for _ in 0..4 {
            let wall = next.naive_local();
            let repeated = matches!(
                self.tz.from_local_datetime(&wall),
                chrono::LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) < next.with_timezone(&Utc)
            );
            if !(repeated && self.is_fixed_time()) {
                break;
            }
            next = self.cron.find_next_occurrence(&next, false).ok()?;
        }
        Some(next.with_timezone(&Utc))
    }

    fn is_fixed_time(&self) -> bool {
        matches!(self.cron.determine_job_type(), croner::JobType::FixedTime)
    }

    /// The zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }
}

// ---------------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------------

/// What a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A full backup (then retention, if set).
    Full,
    /// An incremental backup on the latest of the scope (then retention, if set).
    Incremental,
    /// Retention only: delete what the policy no longer keeps.
    Prune,
}

impl JobKind {
    /// `full`, `incremental` or `prune`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Full => "full",
            JobKind::Incremental => "incremental",
            JobKind::Prune => "prune",
        }
    }

    /// The backup kind this job creates, if it creates one.
    pub fn backup_kind(self) -> Option<BackupKind> {
        match self {
            JobKind::Full => Some(BackupKind::Full),
            JobKind::Incremental => Some(BackupKind::Incremental),
            JobKind::Prune => None,
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(JobKind::Full),
            "incremental" | "incr" => Ok(JobKind::Incremental),
            "prune" | "cleanup" => Ok(JobKind::Prune),
            other => Err(ScheduleError::InvalidKind(other.chars().take(32).collect())),
        }
    }
}

/// A schedule to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchedule {
    /// A unique name (`nightly-full`).
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in (`UTC` by default).
    pub time_zone: String,
    /// What to run.
    pub kind: JobKind,
    /// What to back up (or prune).
    pub scope: Scope,
    /// Retention applied after each run (required for `prune`).
    pub retention: Option<RetentionPolicy>,
    /// Who the runs act as (checked against the policy at each run).
    pub created_by: String,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The id.
    pub id: i64,
    /// The unique name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The time zone.
    pub time_zone: String,
    /// What it runs.
    pub kind: JobKind,
    /// What it covers.
    pub scope: Scope,
    /// Retention applied after each run, as text (`daily=7,weekly=4`).
    pub retention: Option<RetentionPolicy>,
    /// Whether the scheduler runs it.
    pub active: bool,
    /// The next due slot (absent while disabled).
    pub next_run: Option<DateTime<Utc>>,
    /// The last slot run.
    pub last_run: Option<DateTime<Utc>>,
    /// How the last run ended: `success`, `failed`.
    pub last_status: Option<String>,
    /// The last run's error, if it failed.
    pub last_error: Option<String>,
    /// Who the runs act as.
    pub created_by: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl Schedule {
    /// The parsed cron expression and zone.
    pub fn spec(&self) -> Result<CronSpec, ScheduleError> {
        CronSpec::parse(&self.cron, &self.time_zone)
    }
}

/// One recorded run of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// The run's id.
    pub id: i64,
    /// The schedule.
    pub schedule_id: i64,
    /// The scope it ran on.
    pub scope: String,
    /// The slot it ran for (the due time).
    pub slot: DateTime<Utc>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `success` or `failed`.
    pub status: String,
    /// The backup made, if any.
    pub backup_id: Option<String>,
    /// What the job reported (e.g. what retention deleted).
    pub message: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The scheduler instance that ran it.
    pub runner: String,
}

/// A schedule name: not all digits, since a number names a schedule by its id
/// (`schedule remove 2`).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.chars().all(|c| c.is_ascii_digit())
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The schedule tables in the application database.
#[derive(Debug, Clone)]
pub struct ScheduleStore {
    pool: AnyPool,
}

const SCHEDULES: &str = "rbac_backup_schedules";

fn ddl(backend: Backend) -> [String; 3] {
    let id = match backend {
        Backend::Sqlite => "id INTEGER PRIMARY KEY",
        Backend::Postgres => "id BIGSERIAL PRIMARY KEY",
    };
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEDULES} ({id}, name TEXT NOT NULL UNIQUE, \
             cron TEXT NOT NULL, time_zone TEXT NOT NULL DEFAULT 'UTC', kind TEXT NOT NULL, \
             scope TEXT NOT NULL, retention TEXT, active BIGINT NOT NULL DEFAULT 1, \
             next_run BIGINT, last_run BIGINT, last_status TEXT, last_error TEXT, \
             created_by TEXT NOT NULL, created_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS rbac_backup_schedule_runs ({id}, \
             schedule_id BIGINT NOT NULL, scope TEXT NOT NULL, slot BIGINT NOT NULL, \
             started_at BIGINT NOT NULL, finished_at BIGINT, status TEXT NOT NULL, \
             backup_id TEXT, message TEXT, error TEXT, runner TEXT NOT NULL)"
        ),
        "CREATE TABLE IF NOT EXISTS rbac_backup_leases (scope TEXT PRIMARY KEY, \
         owner TEXT NOT NULL, expires_at BIGINT NOT NULL)"
            .to_owned(),
    ]
}

const SCHEDULE_COLUMNS: &str = "id, name, cron, time_zone, kind, scope, retention, active, \
    next_run, last_run, last_status, last_error, created_by, created_at";

fn schedule_of(row: &sqlx::any::AnyRow) -> Result<Schedule, ScheduleError> {
    let text = |i: usize| row.try_get::<String, _>(i);
    let opt_ms = |i: usize| row.try_get::<Option<i64>, _>(i).map(|v| v.map(from_millis));
    let retention: Option<String> = row.try_get(6)?;
    Ok(Schedule {
        id: row.try_get(0)?,
        name: text(1)?,
        cron: text(2)?,
        time_zone: text(3)?,
        kind: text(4)?.parse()?,
        scope: text(5)?.parse()?,
        retention: retention.map(|r| r.parse()).transpose()?,
        active: row.try_get::<i64, _>(7)? != 0,
        next_run: opt_ms(8)?,
        last_run: opt_ms(9)?,
        last_status: row.try_get(10)?,
        last_error: row.try_get(11)?,
        created_by: text(12)?,
        created_at: from_millis(row.try_get(13)?),
    })
}

/// The owner a backup made by hand holds its scope's lease as: `PID IDENTITY BACKUP`, which
/// [`owner_is_gone`] can check.
pub(crate) fn owner_by_hand(backup: &str) -> String {
    let identity = super::storage::process_identity().unwrap_or_else(|| "-".into());
    format!("{} {identity} {backup}", std::process::id())
}

/// Whether `owner`, written by [`owner_by_hand`], is a process of this machine and pid
/// namespace that has ended. Any other owner (a scheduler's runner name, another machine's
/// process, or no `/proc`) is taken to be alive: its lease expires by itself.
fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.split(' ');
    let (Some(pid), Some(identity)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    identity != "-"
        && super::storage::process_identity().as_deref() == Some(identity)
        && super::storage::process_gone(pid)
}

/// A lease [`ScheduleStore::with_lease`] holds: released by a task of its own if dropped
/// armed (the future dropped, or its release failed), which then closes the connections.
struct HeldLease {
    store: ScheduleStore,
    scope: String,
    owner: String,
    armed: bool,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, scope, owner) = (
                self.store.clone(),
                std::mem::take(&mut self.scope),
                std::mem::take(&mut self.owner),
            );
            runtime.spawn(async move {
                // A busy SQLite file (each try waits 30 s) or a passing network failure:
                // a few tries, then the lease expires by itself.
                for attempt in 1..=3 {
                    match store.release(&scope, &owner).await {
                        Ok(()) => break,
                        Err(e) if attempt == 3 => {
                            tracing::warn!(target: "rbac::backup", scope = %scope, error = %e, "cannot release the scope lease; it expires by itself");
                        }
                        Err(_) => tokio::time::sleep(Duration::from_secs(5)).await,
                    }
                }
                store.close().await;
            });
        }
    }
}

impl ScheduleStore {
    /// Connects to the application database (`sqlite://FILE`, created if missing, or
    /// `postgres://...`) and creates the schedule tables if they are missing.
    pub async fn connect(url: &str) -> Result<ScheduleStore, ScheduleError> {
        ScheduleStore::open(url, false).await
    }

    /// [`ScheduleStore::connect`] for the lease of a backup made by hand: a SQLite file must
    /// already exist (the lease must not create the database it is about to back up) and
    /// keeps its journal mode, and only the lease table is created.
    pub(crate) async fn connect_for_lease(url: &str) -> Result<ScheduleStore, ScheduleError> {
        ScheduleStore::open(url, true).await
    }

    async fn open(url: &str, lease_only: bool) -> Result<ScheduleStore, ScheduleError> {
        let sqlite_mode = if lease_only { "rw" } else { "rwc" };
        sqlx::any::install_default_drivers();
        let shown = url.rsplit('@').next().unwrap_or_default().to_owned();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode={sqlite_mode}")
            } else {
                format!("{url}?mode={sqlite_mode}")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(ScheduleError::UnsupportedUrl(shown));
        };
        let options: AnyConnectOptions = url.parse()?;
        let sqlite = backend == Backend::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // As long as the backup's own connections wait for a busy file (30 s):
                    // the application's writes can keep it locked for seconds in a row.
                    if sqlite {
                        sqlx::query("PRAGMA busy_timeout = 30000")
                            .execute(conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite && !lease_only {
            // Readers (the CLI) and the scheduler's writes do not block each other in WAL.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let [schedules, runs, leases] = ddl(backend);
        let tables = if lease_only {
            vec![leases]
        } else {
            vec![schedules, runs, leases]
        };
        for statement in tables {
            sqlx::query(AssertSqlSafe(statement)).execute(&pool).await?;
        }
        Ok(ScheduleStore { pool })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Adds a schedule, validating everything first; its first run is the first slot after
    /// `now`.
    pub async fn add(
        &self,
        new: &NewSchedule,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        if !valid_name(&new.name) {
            return Err(ScheduleError::InvalidName(
                new.name.chars().take(64).collect(),
            ));
        }
        let spec = CronSpec::parse(&new.cron, &new.time_zone)?;
        if new.kind == JobKind::Prune && new.retention.is_none() {
            return Err(ScheduleError::PruneWithoutRetention);
        }
        if let Some(r) = &new.retention {
            r.validate()?;
        }
        if new.created_by.is_empty() {
            return Err(ScheduleError::InvalidName(String::new()));
        }
        if self.get(&new.name).await.is_ok() {
            return Err(ScheduleError::Duplicate(new.name.clone()));
        }
        let next = spec.next_after(now).map(millis);
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {SCHEDULES} (name, cron, time_zone, kind, scope, retention, active, \
             next_run, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9) \
             RETURNING id"
        )))
        .bind(&new.name)
        .bind(new.cron.trim())
        .bind(spec.time_zone().name())
        .bind(new.kind.as_str())
        .bind(new.scope.to_string())
        .bind(new.retention.map(|r| r.to_string()))
        .bind(next)
        .bind(&new.created_by)
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                ScheduleError::Duplicate(new.name.clone())
            }
            _ => ScheduleError::Database(e),
        })?;
        let id: i64 = row.try_get(0)?;
        self.get(&id.to_string()).await
    }

    /// Every schedule, by name.
    pub async fn list(&self) -> Result<Vec<Schedule>, ScheduleError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SCHEDULE_COLUMNS} FROM {SCHEDULES} ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schedule_of).collect()
    }

    /// One schedule by name, or by id when `key` is a number.
    pub async fn get(&self, key: &str) -> Result<Schedule, ScheduleError> {
        let row = match key.parse::<i64>() {
            Ok(id) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM {SCHEDULES} WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
            }
            Err(_) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM {SCHEDULES} WHERE name = $1"
                )))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        match row {
            Some(row) => schedule_of(&row),
            None => Err(ScheduleError::NotFound(key.chars().take(64).collect())),
        }
    }

    /// Removes a schedule (by name or id) and its run records.
    pub async fn remove(&self, key: &str) -> Result<Schedule, ScheduleError> {
        let schedule = self.get(key).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM rbac_backup_schedule_runs WHERE schedule_id = $1")
            .bind(schedule.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {SCHEDULES} WHERE id = $1"
        )))
        .bind(schedule.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(schedule)
    }

    /// Enables a schedule; its next run is the first slot after `now` (enabling never
    /// triggers a catch-up of the time it was disabled).
    pub async fn enable(&self, key: &str, now: DateTime<Utc>) -> Result<Schedule, ScheduleError> {
        let schedule = self.get(key).await?;
        let next = schedule.spec()?.next_after(now).map(millis);
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {SCHEDULES} SET active = 1, next_run = $2 WHERE id = $1"
        )))
        .bind(schedule.id)
        .bind(next)
        .execute(&self.pool)
        .await?;
        self.get(&schedule.id.to_string()).await
    }

    /// Disables a schedule: the scheduler stops running it (a run in progress finishes).
    pub async fn disable(&self, key: &str) -> Result<Schedule, ScheduleError> {
        let schedule = self.get(key).await?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {SCHEDULES} SET active = 0, next_run = NULL WHERE id = $1"
        )))
        .bind(schedule.id)
        .execute(&self.pool)
        .await?;
        self.get(&schedule.id.to_string()).await
    }

    /// The recorded runs of a schedule (by name or id), newest first, at most `limit`.
    pub async fn runs(&self, key: &str, limit: u32) -> Result<Vec<ScheduleRun>, ScheduleError> {
        let schedule = self.get(key).await?;
        let rows = sqlx::query(
            "SELECT id, schedule_id, scope, slot, started_at, finished_at, status, backup_id, \
             message, error, runner FROM rbac_backup_schedule_runs WHERE schedule_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(schedule.id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ScheduleRun {
                    id: r.try_get(0)?,
                    schedule_id: r.try_get(1)?,
                    scope: r.try_get(2)?,
                    slot: from_millis(r.try_get(3)?),
                    started_at: from_millis(r.try_get(4)?),
                    finished_at: r.try_get::<Option<i64>, _>(5)?.map(from_millis),
                    status: r.try_get(6)?,
                    backup_id: r.try_get(7)?,
                    message: r.try_get(8)?,
                    error: r.try_get(9)?,
                    runner: r.try_get(10)?,
                })
            })
            .collect()
    }

    /// Claims `slot` of a schedule: moves `next_run` from `slot` to `next` if nobody else did.
    async fn claim(
        &self,
        id: i64,
        slot: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, ScheduleError> {
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {SCHEDULES} SET next_run = $3, last_run = $2, last_status = 'running', \
             last_error = NULL WHERE id = $1 AND active = 1 AND next_run = $2"
        )))
        .bind(id)
        .bind(millis(slot))
        .bind(next.map(millis))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the lease of `scope` for `owner` until `expires`, if it is free, expired, or
    /// held by a backup by hand whose process has ended on this machine ([`owner_is_gone`]):
    /// a killed `backup create` must not hold up backups of its scope, scheduled ones
    /// included, until its lease expires.
    async fn lease(
        &self,
        scope: &str,
        owner: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<bool, ScheduleError> {
        if self.try_lease(scope, owner, now, expires).await? {
            return Ok(true);
        }
        // Taking over is a bonus: any error on the way leaves the lease to expire.
        match self.holder(scope).await {
            Ok(Some(holder)) if owner_is_gone(&holder) => {
                tracing::warn!(target: "rbac::backup", scope = %scope, holder = %holder,
                    "the lease of the scope was held by a process of this machine that has ended; taking it");
                if let Err(e) = self.release(scope, &holder).await {
                    tracing::warn!(target: "rbac::backup", scope = %scope, error = %e, "cannot take over the lease");
                    return Ok(false);
                }
                self.try_lease(scope, owner, now, expires).await
            }
            Ok(_) => Ok(false),
            Err(e) => {
                tracing::warn!(target: "rbac::backup", scope = %scope, error = %e, "cannot read the lease's holder");
                Ok(false)
            }
        }
    }

    /// [`ScheduleStore::lease`] if it is free or expired.
    async fn try_lease(
        &self,
        scope: &str,
        owner: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<bool, ScheduleError> {
        let done = sqlx::query(
            "INSERT INTO rbac_backup_leases (scope, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO UPDATE SET owner = excluded.owner, \
             expires_at = excluded.expires_at WHERE rbac_backup_leases.expires_at < $4",
        )
        .bind(scope)
        .bind(owner)
        .bind(millis(expires))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew(
        &self,
        scope: &str,
        owner: &str,
        expires: DateTime<Utc>,
    ) -> Result<bool, ScheduleError> {
        let done = sqlx::query(
            "UPDATE rbac_backup_leases SET expires_at = $3 WHERE scope = $1 AND owner = $2",
        )
        .bind(scope)
        .bind(owner)
        .bind(millis(expires))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Renews the lease of `scope` for `owner` every third of `ttl`, as long as it is kept;
    /// completes, with why, only once it is lost: taken by another owner, or, with
    /// `give_up_after`, that many renewals in a row failed.
    async fn keep_lease(
        &self,
        scope: &str,
        owner: &str,
        ttl: Duration,
        now: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
        give_up_after: Option<u32>,
    ) -> String {
        let mut failures = 0;
        loop {
            tokio::time::sleep(ttl / 3).await;
            let expires =
                now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
            match self.renew(scope, owner, expires).await {
                Ok(true) => failures = 0,
                Ok(false) => {
                    return format!("lost the lease of scope `{scope}` to another process");
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(target: "rbac::backup", scope = %scope, error = %e, "cannot renew the scope lease");
                    if give_up_after.is_some_and(|n| failures >= n) {
                        return format!("cannot renew the lease of scope `{scope}`: {e}");
                    }
                }
            }
        }
    }

    /// Runs `work` holding the lease of `scope` (as `owner`, for `ttl` at a time, renewed
    /// while it runs if `renew`), then releases it and closes this store's connections
    /// (it is the backup's own; it takes `self` so that nothing closes it before the lease
    /// is released). The lease is the one scheduled runs take, so a backup
    /// made this way and a scheduled one of the same scope never run at once, in this process
    /// or another. `Busy` if another owner holds the lease; if the lease is lost on the way,
    /// `work` is dropped where it stands and the result is `Busy` too.
    pub(crate) async fn with_lease<F: Future>(
        self,
        scope: &str,
        owner: &str,
        ttl: Duration,
        renew: bool,
        work: F,
    ) -> Result<F::Output, BackupError> {
        let failed =
            |e: ScheduleError| BackupError::Database(format!("cannot lease scope `{scope}`: {e}"));
        let now = Utc::now();
        let expires =
            now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
        let taken = self.lease(scope, owner, now, expires).await;
        if !matches!(taken, Ok(true)) {
            self.close().await;
            return Err(taken.map_or_else(failed, |_| BackupError::Busy(scope.to_owned())));
        }
        // Released below; if this future is dropped before (a client gone, a timeout), by
        // a task of its own, so that the scope is not refused until the lease expires.
        let mut held = HeldLease {
            store: self.clone(),
            scope: scope.to_owned(),
            owner: owner.to_owned(),
            armed: true,
        };
        let outcome = if renew {
            // Failed renewals are borne; only a lease taken by another owner (once it
            // expired) stops the backup.
            let keep = self.keep_lease(scope, owner, ttl, &Utc::now, None);
            tokio::pin!(work);
            tokio::pin!(keep);
            tokio::select! {
                done = &mut work => Ok(done),
                lost = &mut keep => {
                    tracing::error!(target: "rbac::backup", scope = %scope, reason = %lost, "backup abandoned");
                    Err(BackupError::Busy(scope.to_owned()))
                }
            }
        } else {
            Ok(work.await)
        };
        // Disarmed only once released: dropped during the release, or after it failed, the
        // guard tries again, then closes (the owner names this backup, so no later holder is
        // freed).
        match self.release(scope, owner).await {
            Ok(()) => {
                held.armed = false;
                drop(held);
                self.close().await;
            }
            Err(e) => {
                tracing::warn!(target: "rbac::backup", scope = %scope, error = %e, "cannot release the scope lease; trying again");
            }
        }
        outcome
    }

    /// Whether this SQLite file is in WAL mode (where a write never waits on readers).
    pub(crate) async fn sqlite_wal(&self) -> Result<bool, ScheduleError> {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?;
        Ok(mode.eq_ignore_ascii_case("wal"))
    }

    /// Who holds the lease of `scope`, expired or not.
    async fn holder(&self, scope: &str) -> Result<Option<String>, ScheduleError> {
        let row = sqlx::query("SELECT owner FROM rbac_backup_leases WHERE scope = $1")
            .bind(scope)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn release(&self, scope: &str, owner: &str) -> Result<(), ScheduleError> {
        sqlx::query("DELETE FROM rbac_backup_leases WHERE scope = $1 AND owner = $2")
            .bind(scope)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn start_run(
        &self,
        s: &Schedule,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
        runner: &str,
    ) -> Result<i64, ScheduleError> {
        let row = sqlx::query(
            "INSERT INTO rbac_backup_schedule_runs (schedule_id, scope, slot, started_at, status, \
             runner) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
        )
        .bind(s.id)
        .bind(s.scope.to_string())
        .bind(millis(slot))
        .bind(millis(now))
        .bind(runner)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn finish_run(
        &self,
        run: i64,
        schedule: i64,
        now: DateTime<Utc>,
        result: &Result<JobReport, String>,
    ) -> Result<(), ScheduleError> {
        let (status, backup, message, error) = match result {
            Ok(r) => ("success", r.backup_id.clone(), r.message.clone(), None),
            Err(e) => ("failed", None, None, Some(e.clone())),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE rbac_backup_schedule_runs SET finished_at = $2, status = $3, backup_id = $4, \
             message = $5, error = $6 WHERE id = $1",
        )
        .bind(run)
        .bind(millis(now))
        .bind(status)
        .bind(backup)
        .bind(message)
        .bind(error.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {SCHEDULES} SET last_status = $2, last_error = $3 WHERE id = $1"
        )))
        .bind(schedule)
        .bind(status)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs and clocks
// ---------------------------------------------------------------------------------------------

/// What a successful run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// The backup made, if any.
    pub backup_id: Option<String>,
    /// A short summary (e.g. `pruned 3 backups`).
    pub message: Option<String>,
}

/// A boxed future returned by [`ScheduledJob::run`].
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<JobReport, String>> + Send + 'a>>;

/// The work a schedule triggers. The real one makes a backup through the backup service
/// (`BackupJob`); tests plug in a recording job.
pub trait ScheduledJob: Send + Sync + 'static {
    /// Runs `schedule` for `slot`. An `Err` is recorded as a failed run with its message.
    fn run<'a>(&'a self, schedule: &'a Schedule, slot: DateTime<Utc>) -> JobFuture<'a>;
}

/// The real job: a backup through the [`BackupService`](super::BackupService) (for `full` and
/// `incremental` schedules), then the schedule's retention over its scope (for every kind that
/// has one). Runs act as the schedule's `created_by`, checked by `authorizer` at each run.
pub struct BackupJob {
    service: Arc<super::BackupService>,
    authorizer: Arc<dyn super::Authorizer>,
}

impl BackupJob {
    /// A job making backups with `service`, deciding permissions with `authorizer`.
    pub fn new(
        service: Arc<super::BackupService>,
        authorizer: Arc<dyn super::Authorizer>,
    ) -> BackupJob {
        BackupJob {
            service,
            authorizer,
        }
    }
}

impl fmt::Debug for BackupJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupJob").finish_non_exhaustive()
    }
}

impl ScheduledJob for BackupJob {
    fn run<'a>(&'a self, schedule: &'a Schedule, _slot: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(async move {
            let actor = super::Actor::new(&schedule.created_by, &*self.authorizer);
            let mut report = JobReport::default();
            let mut notes = Vec::new();
            if let Some(kind) = schedule.kind.backup_kind() {
                let request = super::CreateRequest {
                    kind,
                    scope: schedule.scope.clone(),
                };
                let made = self.service.create_scheduled(&request, &actor).await;
                let manifest = match made {
                    // The chain cannot go on (no backup yet, a restore, a pruned log, a schema
                    // change): rather than fail at every slot until the next full one, this
                    // run makes it.
                    Err(e @ super::BackupError::NeedsFull(_)) => {
                        tracing::warn!(
                            target: "rbac::backup",
                            schedule = %schedule.name,
                            reason = %e,
                            "the incremental cannot follow: making a full backup instead"
                        );
                        notes.push(format!("{e}: made a full backup instead"));
                        let full = super::CreateRequest {
                            kind: super::BackupKind::Full,
                            scope: schedule.scope.clone(),
                        };
                        self.service.create_scheduled(&full, &actor).await
                    }
                    other => other,
                }
                .map_err(|e| e.to_string())?;
                report.backup_id = Some(manifest.id.to_string());
            }
            if let Some(policy) = &schedule.retention {
                let plan = super::retention::prune(
                    &self.service,
                    &actor,
                    Some(&schedule.scope),
                    policy,
                    Utc::now(),
                    false,
                )
                .await
                .map_err(|e| match &report.backup_id {
                    Some(id) => format!("backup {id} made, then retention failed: {e}"),
                    None => format!("retention failed: {e}"),
                })?;
                let n = plan.deletions().count();
                notes.push(format!(
                    "retention {policy}: deleted {n} backup{}",
                    if n == 1 { "" } else { "s" }
                ));
            }
            report.message = (!notes.is_empty()).then(|| notes.join("; "));
            Ok(report)
        })
    }
}

/// A boxed future returned by [`Clock::sleep_until`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the scheduler reads the time; tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Completes at or after `t`.
    fn sleep_until(&self, t: DateTime<Utc>) -> SleepFuture;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep_until(&self, t: DateTime<Utc>) -> SleepFuture {
        let wait = (t - Utc::now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told: for tests of schedules over days in milliseconds.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(watch::Sender::new(t)),
        }
    }

    /// Moves the clock to `t` (never backwards), waking sleepers that are due.
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = t > *now;
            if later {
                *now = t;
            }
            later
        });
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::Duration) {
        let t = *self.now.borrow() + d;
        self.set(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }
    fn sleep_until(&self, t: DateTime<Utc>) -> SleepFuture {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // A closed channel cannot happen while `self` lives; stop waiting if it does.
            let _ = rx.wait_for(|now| *now >= t).await;
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The scheduler
// ---------------------------------------------------------------------------------------------

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The longest sleep between looks at the schedule table (picks up added schedules and
    /// retries schedules whose scope was busy). 30 s by default.
    pub poll: Duration,
    /// How long a scope lease lasts without renewal (renewed every third of it while a job
    /// runs). 60 s by default.
    pub lease_ttl: Duration,
    /// This scheduler's name in leases and run records (host and process id by default).
    pub runner: String,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        SchedulerOptions {
            poll: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(60),
            runner: format!("{host}:{}", std::process::id()),
        }
    }
}

/// What a scheduler did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Runs started (and finished: shutdown waits for them).
    pub runs: u64,
    /// Of which failed.
    pub failed: u64,
}

/// Runs due schedules with a [`ScheduledJob`]. See the module docs for its guarantees.
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: ScheduleStore,
    job: Arc<dyn ScheduledJob>,
    clock: Arc<dyn Clock>,
    options: SchedulerOptions,
    running: Mutex<HashSet<String>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("runner", &self.inner.options.runner)
            .finish()
    }
}

/// Frees the in-process guard of a scope when a run ends, however it ends.
struct ScopeGuard {
    inner: Arc<Inner>,
    scope: String,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        if let Ok(mut running) = self.inner.running.lock() {
            running.remove(&self.scope);
        }
    }
}

impl Scheduler {
    /// A scheduler over `store` running `job`, on `clock`.
    pub fn new(
        store: ScheduleStore,
        job: Arc<dyn ScheduledJob>,
        clock: Arc<dyn Clock>,
        options: SchedulerOptions,
    ) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                store,
                job,
                clock,
                options,
                running: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Runs schedules until `shutdown` completes, then waits for the runs in progress and
    /// returns what it did. Database errors are logged and retried at the next poll; they do
    /// not stop the scheduler.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> SchedulerStats {
        let mut stats = SchedulerStats::default();
        let mut tasks: JoinSet<bool> = JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(target: "rbac::backup", runner = %self.inner.options.runner, "scheduler started");
        loop {
            let wake = match self.start_due(&mut tasks).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(target: "rbac::backup", error = %e, "scheduler: cannot read schedules; retrying");
                    None
                }
            };
            let now = self.inner.clock.now();
            let poll = chrono::Duration::from_std(self.inner.options.poll)
                .unwrap_or(chrono::Duration::seconds(30));
            let until = wake.map_or(now + poll, |t| t.min(now + poll));
            let sleep = self.inner.clock.sleep_until(until);
            tokio::select! {
                () = &mut shutdown => break,
                () = sleep => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    stats.runs += 1;
                    if !matches!(done, Ok(true)) { stats.failed += 1; }
                }
            }
            while let Some(done) = tasks.try_join_next() {
                stats.runs += 1;
                if !matches!(done, Ok(true)) {
                    stats.failed += 1;
                }
            }
        }
        tracing::info!(target: "rbac::backup", running = tasks.len(), "scheduler stopping; waiting for runs in progress");
        while let Some(done) = tasks.join_next().await {
            stats.runs += 1;
            if !matches!(done, Ok(true)) {
                stats.failed += 1;
            }
        }
        tracing::info!(target: "rbac::backup", runs = stats.runs, failed = stats.failed, "scheduler stopped");
        stats
    }

    /// Runs what is due now and waits for it: one pass of the loop, for tests and cron-less
    /// use (`rbac-admin backup scheduler --once`). Returns the runs started.
    pub async fn run_due_once(&self) -> Result<SchedulerStats, ScheduleError> {
        let mut tasks = JoinSet::new();
        self.start_due(&mut tasks).await?;
        let mut stats = SchedulerStats::default();
        while let Some(done) = tasks.join_next().await {
            stats.runs += 1;
            if !matches!(done, Ok(true)) {
                stats.failed += 1;
            }
        }
        Ok(stats)
    }

    /// Starts every due schedule whose scope is free; returns the earliest future slot.
    async fn start_due(
        &self,
        tasks: &mut JoinSet<bool>,
    ) -> Result<Option<DateTime<Utc>>, ScheduleError> {
        let now = self.inner.clock.now();
        let mut earliest: Option<DateTime<Utc>> = None;
        for schedule in self.inner.store.list().await? {
            let Some(slot) = schedule.next_run.filter(|_| schedule.active) else {
                continue;
            };
            if slot > now {
                earliest = Some(earliest.map_or(slot, |e| e.min(slot)));
                continue;
            }
            let scope = schedule.scope.to_string();
            // In-process guard first: cheap, and covers two schedules of one scope here.
            let guard = {
                let Ok(mut running) = self.inner.running.lock() else {
                    continue;
                };
                if !running.insert(scope.clone()) {
                    tracing::debug!(target: "rbac::backup", schedule = %schedule.name, scope = %scope, "scope busy here; will retry");
                    continue;
                }
                ScopeGuard {
                    inner: Arc::clone(&self.inner),
                    scope: scope.clone(),
                }
            };
            let runner = &self.inner.options.runner;
            let ttl = chrono::Duration::from_std(self.inner.options.lease_ttl)
                .unwrap_or(chrono::Duration::seconds(60));
            if !self
                .inner
                .store
                .lease(&scope, runner, now, now + ttl)
                .await?
            {
                tracing::debug!(target: "rbac::backup", schedule = %schedule.name, scope = %scope, "scope leased by another scheduler; will retry");
                continue;
            }
            // Catch up once: the next slot counts from now, however many were missed.
            let next = match schedule.spec() {
                Ok(spec) => spec.next_after(now.max(slot)),
                Err(e) => {
                    tracing::error!(target: "rbac::backup", schedule = %schedule.name, error = %e, "schedule is unreadable; skipped");
                    self.inner.store.release(&scope, runner).await?;
                    continue;
                }
            };
            if !self.inner.store.claim(schedule.id, slot, next).await? {
                // Another scheduler ran this slot between our read and now.
                self.inner.store.release(&scope, runner).await?;
                continue;
            }
            if let Some(n) = next {
                earliest = Some(earliest.map_or(n, |e| e.min(n)));
            }
            let inner = Arc::clone(&self.inner);
            tasks.spawn(async move { inner.execute(schedule, slot, guard).await });
        }
        Ok(earliest)
    }
}

impl Inner {
    /// Runs one claimed slot with the scope leased; records it; releases the lease.
    async fn execute(
        self: Arc<Self>,
        schedule: Schedule,
        slot: DateTime<Utc>,
        guard: ScopeGuard,
    ) -> bool {
        let runner = self.options.runner.clone();
        let scope = guard.scope.clone();
        let started = self.clock.now();
        let run_id = match self
            .store
            .start_run(&schedule, slot, started, &runner)
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(target: "rbac::backup", schedule = %schedule.name, error = %e, "cannot record the run start");
                None
            }
        };
        tracing::info!(target: "rbac::backup", schedule = %schedule.name, scope = %scope, kind = %schedule.kind, slot = %slot, "scheduled run starting");
        let result = {
            let heartbeat = self.heartbeat(scope.clone(), runner.clone());
            let job = self.job.run(&schedule, slot);
            tokio::pin!(job);
            tokio::pin!(heartbeat);
            tokio::select! {
                result = &mut job => result,
                lost = &mut heartbeat => {
                    // The lease could not be kept: the job is abandoned rather than risk two
                    // backups of one scope.
                    Err(lost)
                }
            }
        };
        match &result {
            Ok(report) => {
                tracing::info!(target: "rbac::backup", schedule = %schedule.name, scope = %scope, backup = ?report.backup_id, "scheduled run succeeded")
            }
            Err(error) => {
                tracing::error!(target: "rbac::backup", schedule = %schedule.name, scope = %scope, %error, "scheduled run failed")
            }
        }
        if let Some(run) = run_id
            && let Err(e) = self
                .store
                .finish_run(run, schedule.id, self.clock.now(), &result)
                .await
        {
            tracing::error!(target: "rbac::backup", schedule = %schedule.name, error = %e, "cannot record the run end");
        }
        if let Err(e) = self.store.release(&scope, &runner).await {
            tracing::warn!(target: "rbac::backup", scope = %scope, error = %e, "cannot release the scope lease; it expires by itself");
        }
        drop(guard);
        result.is_ok()
    }

    /// Renews the lease every third of its lifetime; completes only if the lease is lost.
    async fn heartbeat(&self, scope: String, runner: String) -> String {
        let clock = Arc::clone(&self.clock);
        let now = move || clock.now();
        self.store
            .keep_lease(&scope, &runner, self.options.lease_ttl, &now, Some(2))
            .await
    }
}
