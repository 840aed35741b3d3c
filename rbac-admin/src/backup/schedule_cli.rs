//! `rbac-admin backup schedule ...` and `rbac-admin backup scheduler`: the command-line face of
//! [`schedule`](super::schedule). Schedules live in the application database named by the
//! backup configuration (`database = ...`); changing them needs `system.backup.schedule` for
//! the schedule's scope (a tenant admin: only `tenant:T` of their tenant), listing needs
//! `system.backup.read` and shows only the scopes the actor may read.
//!
//! ```text
//! rbac-admin backup schedule add NAME --cron '0 2 * * *' [--tz Europe/Berlin]
//!                                [--kind full|incremental|prune] [--scope all|tenant:T|modules:A,B]
//!                                [--retention daily=7,weekly=4,monthly=12]
//! rbac-admin backup schedule list | runs NAME [--limit N]
//! rbac-admin backup schedule remove NAME [--yes] | enable NAME | disable NAME
//! rbac-admin backup scheduler [--once] [--poll SECONDS]    # until SIGINT/SIGTERM
//! ```
//!
//! Runs made by `backup scheduler` act as the subject that added the schedule, checked against
//! the live policy at each run.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rbac_core::Snapshot;
use rbac_core::store::LiveOptions;

use super::model::{Operation, Scope};
use super::retention::RetentionPolicy;
use super::schedule::{
    BackupJob, JobKind, NewSchedule, Schedule, ScheduleError, ScheduleStore, Scheduler,
    SchedulerOptions, SystemClock,
};
use super::{Actor, BackupConfig, BackupService};
use crate::cli::Format;
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// `backup schedule` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Add a schedule (`system.backup.schedule` for its scope). Runs act as you.
    Add {
        /// A unique name (letters, digits, `-`, `_`, `.`).
        name: String,
        /// A cron expression (`0 2 * * *`: daily at 02:00; `*/5 * * * *`; `@hourly`).
        #[arg(long)]
        cron: String,
        /// The IANA time zone the expression is read in.
        #[arg(long = "tz", default_value = "UTC", value_name = "ZONE")]
        time_zone: String,
        /// `full`, `incremental` or `prune` (retention only).
        #[arg(long, default_value = "full", value_parser = parse_kind)]
        kind: JobKind,
        /// `all`, `tenant:NAME` or `modules:A,B`.
        #[arg(long, default_value = "all")]
        scope: Scope,
        /// Retention applied after each run: `daily=N,weekly=N,monthly=N,max-age=90d`.
        #[arg(long, value_name = "POLICY")]
        retention: Option<RetentionPolicy>,
    },
    /// List schedules (`system.backup.read`).
    List,
    /// The recorded runs of a schedule, newest first (`system.backup.read`).
    Runs {
        /// The schedule's name or id.
        name: String,
        /// At most this many.
        #[arg(long, default_value = "20")]
        limit: u32,
    },
    /// Remove a schedule and its run records (`system.backup.schedule`).
    Remove {
        /// The schedule's name or id.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Enable a schedule; its next run is the next slot from now (no catch-up).
    Enable {
        /// The schedule's name or id.
        name: String,
    },
    /// Disable a schedule (a run in progress finishes).
    Disable {
        /// The schedule's name or id.
        name: String,
    },
}

/// `backup scheduler` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// Run what is due now, wait for it, and exit (for an external cron or a test).
    #[arg(long)]
    pub once: bool,
    /// The longest wait between looks at the schedule table, in seconds.
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    pub poll: u64,
}

fn parse_kind(s: &str) -> Result<JobKind, String> {
    s.parse().map_err(|e: ScheduleError| e.to_string())
}

impl From<ScheduleError> for CliError {
    fn from(e: ScheduleError) -> CliError {
        let exit = match &e {
            ScheduleError::Database(_) => Exit::Failure,
            ScheduleError::Scope(b) if b.is_denied() => Exit::Denied,
            _ => Exit::Invalid,
        };
        CliError::other(exit, e.to_string())
    }
}

fn row(s: &Schedule) -> Vec<String> {
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".into())
    };
    vec![
        s.id.to_string(),
        s.name.clone(),
        s.cron.clone(),
        s.time_zone.clone(),
        s.kind.to_string(),
        s.scope.to_string(),
        s.retention.map_or_else(|| "-".into(), |r| r.to_string()),
        if s.active { "yes" } else { "no" }.into(),
        time(s.next_run),
        time(s.last_run),
        s.last_status.clone().unwrap_or_else(|| "-".into()),
        s.created_by.clone(),
    ]
}

const HEADER: [&str; 12] = [
    "ID",
    "NAME",
    "CRON",
    "TZ",
    "KIND",
    "SCOPE",
    "RETENTION",
    "ACTIVE",
    "NEXT",
    "LAST",
    "STATUS",
    "BY",
];

fn print_one(
    out: &mut dyn Write,
    format: Format,
    verb: &str,
    s: &Schedule,
) -> Result<(), CliError> {
    match format {
        Format::Json => output::json(out, s)?,
        _ => {
            let next = s.next_run.map_or_else(
                || "not scheduled".into(),
                |t| format!("next run {}", t.to_rfc3339()),
            );
            writeln!(
                out,
                "{verb} schedule `{}` ({} {} of {}; {next})",
                s.name, s.cron, s.kind, s.scope
            )?;
        }
    }
    Ok(())
}

/// Runs a `backup schedule` subcommand with the backup configuration at `config`.
pub async fn run(
    ctx: &Context,
    config: &Path,
    command: &ScheduleCommand,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    let format = ctx.require_format("backup schedule", &[Format::Text, Format::Json])?;
    let config = BackupConfig::from_file(config)?;
    let subject = ctx.actor()?.to_owned();
    let policy_store = ctx.connect_existing().await?;
    let snapshot = Snapshot::compile(&policy_store.load().await?);
    let actor = Actor::new(&subject, &snapshot);
    let store = ScheduleStore::connect(&config.database).await?;
    let now = Utc::now();
    match command {
        ScheduleCommand::Add {
            name,
            cron,
            time_zone,
            kind,
            scope,
            retention,
        } => {
            actor.require(Operation::Schedule, scope)?;
            let new = NewSchedule {
                name: name.clone(),
                cron: cron.clone(),
                time_zone: time_zone.clone(),
                kind: *kind,
                scope: scope.clone(),
                retention: *retention,
                created_by: subject.clone(),
            };
            let s = store.add(&new, now).await?;
            print_one(out, format, "added", &s)?;
        }
        ScheduleCommand::List => {
            let global = actor.may(Operation::Read, &Scope::All);
            let all = store.list().await?;
            let visible: Vec<Schedule> = all
                .into_iter()
                .filter(|s| global || actor.may(Operation::Read, &s.scope))
                .collect();
            if !global && visible.is_empty() {
                // Nothing readable: say so as a denial rather than print an empty list.
                actor.require(Operation::Read, &Scope::All)?;
            }
            match format {
                Format::Json => output::json(out, &visible)?,
                _ => output::table(out, &HEADER, &visible.iter().map(row).collect::<Vec<_>>())?,
            }
        }
        ScheduleCommand::Runs { name, limit } => {
            let s = store.get(name).await?;
            actor.require(Operation::Read, &s.scope)?;
            let runs = store.runs(name, *limit).await?;
            match format {
                Format::Json => output::json(out, &runs)?,
                _ => {
                    let rows: Vec<Vec<String>> = runs
                        .iter()
                        .map(|r| {
                            vec![
                                r.slot.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                r.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                r.finished_at.map_or_else(
                                    || "-".into(),
                                    |f| {
                                        format!(
                                            "{:.1}s",
                                            (f - r.started_at).num_milliseconds() as f64 / 1000.0
                                        )
                                    },
                                ),
                                r.status.clone(),
                                r.backup_id.clone().unwrap_or_else(|| "-".into()),
                                r.error
                                    .clone()
                                    .or_else(|| r.message.clone())
                                    .unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &["SLOT", "STARTED", "TOOK", "STATUS", "BACKUP", "DETAIL"],
                        &rows,
                    )?;
                }
            }
        }
        ScheduleCommand::Remove { name, yes } => {
            let s = store.get(name).await?;
            actor.require(Operation::Schedule, &s.scope)?;
            ctx.confirm(&format!("remove schedule `{}`", s.name), *yes)?;
            let s = store.remove(&s.id.to_string()).await?;
            print_one(out, format, "removed", &s)?;
        }
        ScheduleCommand::Enable { name } => {
            let s = store.get(name).await?;
            actor.require(Operation::Schedule, &s.scope)?;
            let s = store.enable(&s.id.to_string(), now).await?;
            print_one(out, format, "enabled", &s)?;
        }
        ScheduleCommand::Disable { name } => {
            let s = store.get(name).await?;
            actor.require(Operation::Schedule, &s.scope)?;
            let s = store.disable(&s.id.to_string()).await?;
            print_one(out, format, "disabled", &s)?;
        }
    }
    store.close().await;
    Ok(Exit::Ok)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(target: "rbac::backup", error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!(target: "rbac::backup", "shutdown requested; finishing runs in progress");
}

/// Runs `backup scheduler`: the schedules of the configured database, until SIGINT/SIGTERM
/// (or, with `--once`, what is due now). Permissions are decided by a live view of the policy
/// database, so a revoked grant stops the schedules of its subject from the next run on.
pub async fn run_scheduler(
    ctx: &Context,
    config: &Path,
    args: &SchedulerArgs,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    let config = BackupConfig::from_file(config)?;
    let policy_store = ctx.connect_existing().await?;
    let live = policy_store.live_engine(LiveOptions::default()).await?;
    let store = ScheduleStore::connect(&config.database).await?;
    let service = BackupService::open(config)?;
    let job = BackupJob::new(Arc::new(service), Arc::new(live));
    let options = SchedulerOptions {
        poll: Duration::from_secs(args.poll.max(1)),
        ..SchedulerOptions::default()
    };
    let scheduler = Scheduler::new(store.clone(), Arc::new(job), Arc::new(SystemClock), options);
    let stats = if args.once {
        scheduler.run_due_once().await?
    } else {
        scheduler.run(shutdown_signal()).await
    };
    store.close().await;
    writeln!(
        out,
        "scheduler stopped: {} runs, {} failed",
        stats.runs, stats.failed
    )?;
    Ok(if stats.failed > 0 {
        Exit::Failure
    } else {
        Exit::Ok
    })
}
