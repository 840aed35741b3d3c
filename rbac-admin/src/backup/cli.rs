//! `rbac-admin backup ...`: the command-line face of the backup module. Each subcommand
//! loads the backup configuration (`--config`, `RBAC_BACKUP_CONFIG`), decides the actor's
//! permissions against the policy database (`--db`), calls the library and prints text or
//! JSON. Progress goes to standard error: a bar on a terminal, log lines otherwise.
//!
//! ```text
//! rbac-admin backup create [--kind full|incremental] [--scope all|tenant:T|modules:A,B]
//! rbac-admin backup list | show ID | logs [--status S] [--operation OP]
//! rbac-admin backup verify ID [--deep]
//! rbac-admin backup restore [ID | --at TIME | --latest] [--tables T,..] [--module M]
//!                           [--tenant T] [--to URL] [--dry-run] [--yes]
//!                           [--files | --files-only] [--files-to DIR]
//! rbac-admin backup delete ID [--yes] | prune --keep daily=7,weekly=4 [--dry-run] [--yes]
//! rbac-admin backup download ID [--output FILE] | rewrap ID
//! rbac-admin backup schedule add|list|runs|remove|enable|disable ... | scheduler [--once]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rbac_core::Snapshot;

use super::{
    Actor, BackupError, BackupId, BackupKind, BackupService, CreateRequest, LogQuery, Progress,
    RestoreReport, RestoreRequest, Scope, Selector, Status,
};
use crate::cli::Format;
use crate::context::Context;
use crate::error::{CliError, Exit};
use crate::output;

/// `backup` arguments.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup configuration (TOML: database, storage, tenants, modules, secrets, keys).
    #[arg(
        long,
        global = true,
        env = "RBAC_BACKUP_CONFIG",
        default_value = "rbac-backup.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// `backup` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Make a backup (needs `system.backup.create`; a tenant admin only of `tenant:T`).
    Create {
        /// `full`, or `incremental` on top of the latest backup of the same scope.
        #[arg(long, default_value = "full")]
        kind: BackupKind,
        /// `all`, `tenant:NAME` or `modules:A,B`.
        #[arg(long, default_value = "all")]
        scope: Scope,
    },
    /// List complete backups (`system.backup.read`).
    List,
    /// Show a backup's manifest.
    Show {
        /// The backup id.
        id: BackupId,
    },
    /// Check hashes, decryption, decompression and row counts (`system.backup.verify`).
    Verify {
        /// The backup id.
        id: BackupId,
        /// Also restore it into a scratch SQLite file and compare.
        #[arg(long)]
        deep: bool,
    },
    /// Restore: shows the dry run first, then asks (or takes `--yes`) and restores in one
    /// transaction (`system.backup.restore`).
    Restore {
        /// The backup id (with its chain); or use `--at`/`--latest`.
        #[arg(required_unless_present_any = ["at", "latest"], conflicts_with_all = ["at", "latest"])]
        id: Option<BackupId>,
        /// The latest backup at or before this time (RFC 3339, e.g. 2026-11-23T02:00:00Z).
        #[arg(long, value_name = "TIME")]
        at: Option<DateTime<Utc>>,
        /// The latest backup.
        #[arg(long, conflicts_with = "at")]
        latest: bool,
        /// Only these tables (comma-separated).
        #[arg(long, value_delimiter = ',', value_name = "T,..")]
        tables: Vec<String>,
        /// Only the tables of this module (repeatable).
        #[arg(long = "module", value_name = "M")]
        modules: Vec<String>,
        /// Only this tenant's rows; other tenants are never touched.
        #[arg(long, value_name = "T")]
        tenant: Option<String>,
        /// Restore into this database instead of the configured one.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Also restore the files directory (backups of scope `all` made with `files_dir`).
        /// Files belong to no tenant or table: not with `--tenant`, `--tables` or `--module`,
        /// and with `--to` only with `--files-to` (the configured directory is the live one).
        #[arg(long, conflicts_with_all = ["tables", "modules", "tenant"])]
        files: bool,
        /// Restore only the files directory, not the database.
        #[arg(long, conflicts_with_all = ["files", "tables", "modules", "tenant", "to"])]
        files_only: bool,
        /// Restore the files into this directory instead of the configured `files_dir`.
        #[arg(long, value_name = "DIR")]
        files_to: Option<PathBuf>,
    },
    /// Delete a backup (`system.backup.delete`).
    Delete {
        /// The backup id.
        id: BackupId,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Delete what a retention policy does not keep (`system.backup.delete`).
    Prune {
        /// `daily=N,weekly=N,monthly=N,max-age=90d`.
        #[arg(long, value_name = "POLICY")]
        keep: super::retention::RetentionPolicy,
        /// Only backups of this scope.
        #[arg(long)]
        scope: Option<Scope>,
        /// Only show the plan.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Write a backup as one tar archive (`system.backup.download`).
    Download {
        /// The backup id.
        id: BackupId,
        /// The archive file (`-`: standard output).
        #[arg(long, short, default_value = "-")]
        output: PathBuf,
    },
    /// The operation log (`system.backup.read`).
    Logs {
        /// Only this status (pending, running, success, failed, denied).
        #[arg(long)]
        status: Option<String>,
        /// Only this operation (create, restore, verify, delete, download).
        #[arg(long)]
        operation: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value = "50")]
        limit: u32,
    },
    /// Manage backup schedules (`system.backup.schedule`).
    #[command(subcommand)]
    Schedule(super::schedule_cli::ScheduleCommand),
    /// Run the schedules until SIGINT/SIGTERM (or, with `--once`, what is due now).
    Scheduler(super::schedule_cli::SchedulerArgs),
    /// Key rotation: re-wrap a backup's data key for the configured recipients
    /// (`system.backup.delete`).
    Rewrap {
        /// The backup id.
        id: BackupId,
    },
}

impl From<BackupError> for CliError {
    fn from(e: BackupError) -> CliError {
        let exit = match &e {
            BackupError::Denied { .. } => Exit::Denied,
            BackupError::InvalidId(_)
            | BackupError::InvalidInput(_)
            | BackupError::Config(_)
            | BackupError::Key(_)
            | BackupError::NotFound(_)
            | BackupError::NoMatch(_)
            | BackupError::NeedsFull(_)
            | BackupError::Schema(_) => Exit::Invalid,
            _ => Exit::Failure,
        };
        CliError::other(exit, e.to_string())
    }
}

/// Progress on standard error: a bar on a terminal, `tracing` lines otherwise.
struct CliProgress {
    bar: Option<ProgressBar>,
}

impl CliProgress {
    fn new(ctx: &Context) -> CliProgress {
        let bar = ctx.progress_bars.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} rows ({per_sec}, {elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        CliProgress { bar }
    }
}

impl Progress for CliProgress {
    fn phase(&self, name: &str, total: Option<u64>) {
        match &self.bar {
            Some(bar) => bar.set_message(name.to_owned()),
            None => match total {
                Some(t) if t > 0 => tracing::info!(target: "rbac_admin::progress", "{name} ({t})"),
                _ => tracing::info!(target: "rbac_admin::progress", "{name}"),
            },
        }
    }
    fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn print_report(out: &mut dyn Write, report: &RestoreReport) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.insert.to_string(),
                t.replace.to_string(),
                t.unchanged.to_string(),
                t.delete.to_string(),
                t.conflicts.to_string(),
                if t.create { "yes" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let chain: Vec<String> = report.chain.iter().map(ToString::to_string).collect();
    writeln!(
        out,
        "{} from {}",
        if report.dry_run {
            "dry run"
        } else {
            "restored"
        },
        chain.join(" -> ")
    )?;
    let insert = if report.dry_run { "insert" } else { "written" };
    output::table(
        out,
        &[
            "TABLE",
            insert,
            "REPLACE",
            "UNCHANGED",
            "DELETE",
            "CONFLICTS",
            "CREATE",
        ],
        &rows,
    )?;
    let unread: u64 = report
        .tables
        .iter()
        .map(|t| t.unchanged_by_change_log)
        .sum();
    if unread > 0 {
        writeln!(
            out,
            "{unread} unchanged rows were not read: the change log shows their keys untouched since the backup (or its restore)"
        )?;
    }
    Ok(())
}

/// Runs a `backup` subcommand (synchronously, on its own runtime).
pub fn run(ctx: &Context, args: &BackupArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    ctx.block_on(run_async(ctx, args, out))?
}

/// Runs a `backup` subcommand.
pub async fn run_async(
    ctx: &Context,
    args: &BackupArgs,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    match &args.command {
        BackupCommand::Schedule(command) => {
            return super::schedule_cli::run(ctx, &args.config, command, out).await;
        }
        BackupCommand::Scheduler(scheduler) => {
            return super::schedule_cli::run_scheduler(ctx, &args.config, scheduler, out).await;
        }
        _ => {}
    }
    let format = ctx.require_format("backup", &[Format::Text, Format::Json])?;
    let config = super::BackupConfig::from_file(&args.config)?;
    let subject = ctx.actor()?.to_owned();
    let store = ctx.connect_existing().await?;
    let snapshot = Snapshot::compile(&store.load().await?);
    let actor = Actor::new(&subject, &snapshot);
    let service = BackupService::open(config)?;
    let progress = CliProgress::new(ctx);
    match &args.command {
        BackupCommand::Create { kind, scope } => {
            let request = CreateRequest {
                kind: *kind,
                scope: scope.clone(),
            };
            let m = super::create(&service, &request, &actor, &progress).await?;
            match format {
                Format::Json => output::json(out, &m.summary())?,
                _ => writeln!(
                    out,
                    "created {} ({} {}, {} rows, {}{})",
                    m.id,
                    m.kind,
                    m.scope,
                    m.rows(),
                    human(m.size()),
                    if m.encryption.is_some() {
                        ", encrypted"
                    } else {
                        ""
                    }
                )?,
            }
        }
        BackupCommand::List => {
            let list = service.list(&actor).await?;
            match format {
                Format::Json => output::json(out, &list)?,
                _ => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|s| {
                            vec![
                                s.id.to_string(),
                                s.kind.to_string(),
                                s.scope.to_string(),
                                s.parent
                                    .as_ref()
                                    .map(ToString::to_string)
                                    .unwrap_or_default(),
                                s.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                s.rows.to_string(),
                                human(s.size),
                                if s.encrypted { "yes" } else { "no" }.to_owned(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &[
                            "ID",
                            "KIND",
                            "SCOPE",
                            "PARENT",
                            "CREATED",
                            "ROWS",
                            "SIZE",
                            "ENCRYPTED",
                        ],
                        &rows,
                    )?;
                }
            }
        }
        BackupCommand::Show { id } => {
            let m = service.show(&actor, id).await?;
            match format {
                Format::Json => output::json(out, &m)?,
                _ => {
                    writeln!(out, "id:        {}", m.id)?;
                    writeln!(out, "kind:      {}", m.kind)?;
                    if let Some(p) = &m.parent {
                        writeln!(out, "parent:    {p}")?;
                    }
                    writeln!(out, "scope:     {}", m.scope)?;
                    writeln!(out, "creator:   {}", m.creator)?;
                    writeln!(out, "started:   {}", m.started_at.to_rfc3339())?;
                    writeln!(out, "finished:  {}", m.finished_at.to_rfc3339())?;
                    writeln!(out, "schema:    {} ({})", m.schema_version, m.backend)?;
                    writeln!(
                        out,
                        "size:      {} in {} chunks",
                        human(m.size()),
                        m.chunks.len()
                    )?;
                    match &m.encryption {
                        Some(e) => writeln!(
                            out,
                            "encrypted: {} key {} for {}",
                            e.algorithm,
                            e.key_id,
                            e.recipients
                                .iter()
                                .map(|r| r.recipient.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )?,
                        None => writeln!(out, "encrypted: no")?,
                    }
                    if let Some(f) = &m.files {
                        writeln!(
                            out,
                            "files:     {} files ({}), {} stored in this backup ({})",
                            f.entries.len(),
                            human(f.total_bytes()),
                            f.stored_files,
                            human(f.stored_bytes)
                        )?;
                    }
                    let rows: Vec<Vec<String>> = m
                        .tables
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                t.rows.to_string(),
                                t.deleted.to_string(),
                                t.columns.len().to_string(),
                                t.omitted_columns.join(","),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &["TABLE", "ROWS", "DELETED", "COLUMNS", "OMITTED"],
                        &rows,
                    )?;
                }
            }
        }
        BackupCommand::Verify { id, deep } => {
            let report = service.verify(&actor, id, *deep, &progress).await?;
            match format {
                Format::Json => output::json(out, &report)?,
                _ => writeln!(
                    out,
                    "{}: ok ({} chunks, {} records{})",
                    report.id,
                    report.chunks,
                    report.records,
                    if report.deep {
                        ", deep restore compared"
                    } else {
                        ""
                    }
                )?,
            }
        }
        BackupCommand::Restore {
            id,
            at,
            latest: _,
            tables,
            modules,
            tenant,
            to,
            dry_run,
            yes,
            files,
            files_only,
            files_to,
        } => {
            let from = match (id, at) {
                (Some(id), _) => Selector::Id(id.clone()),
                (None, Some(t)) => Selector::At(*t),
                (None, None) => Selector::Latest,
            };
            let files_to = files_to.as_deref();
            if *files && to.is_some() && files_to.is_none() {
                return Err(CliError::invalid(
                    "--files with --to would replace the configured files directory (the live \
                     one) while the database goes elsewhere: pass --files-to DIR too",
                ));
            }
            if *files_only {
                let plan = service
                    .restore_files(&actor, &from, files_to, true, &progress)
                    .await?;
                print_files(out, format, &plan)?;
                if *dry_run {
                    return Ok(Exit::Ok);
                }
                ctx.confirm(&format!("replace the files in {}", plan.target), *yes)?;
                // The backup the dry run showed, not whatever `--latest` names by now.
                let shown = Selector::Id(
                    plan.backup
                        .parse()
                        .map_err(|_| CliError::invalid("the dry run named no backup"))?,
                );
                let done = service
                    .restore_files(&actor, &shown, files_to, false, &progress)
                    .await?;
                print_files(out, format, &done)?;
                return Ok(Exit::Ok);
            }
            let mut request = RestoreRequest {
                from,
                tables: tables.clone(),
                modules: modules.clone(),
                tenant: tenant.clone(),
                to: to.clone(),
                dry_run: true,
            };
            // The dry run comes first, always.
            let report = service.restore(&request, &actor, &progress).await?;
            let files_plan = if *files {
                let from = Selector::Id(
                    report
                        .chain
                        .last()
                        .cloned()
                        .ok_or_else(|| CliError::invalid("the dry run named no backup"))?,
                );
                Some(
                    service
                        .restore_files(&actor, &from, files_to, true, &progress)
                        .await?,
                )
            } else {
                None
            };
            if *dry_run {
                match format {
                    Format::Json => output::json(out, &with_files(&report, files_plan.as_ref())?)?,
                    _ => {
                        print_report(out, &report)?;
                        if let Some(plan) = &files_plan {
                            print_files(out, format, plan)?;
                        }
                    }
                }
                return Ok(Exit::Ok);
            }
            if format == Format::Text {
                print_report(out, &report)?;
                if let Some(plan) = &files_plan {
                    print_files(out, format, plan)?;
                }
            }
            if report.conflicts() > 0 {
                return Err(CliError::invalid(format!(
                    "{} rows conflict with other tenants' rows; nothing was restored",
                    report.conflicts()
                )));
            }
            let target = to.as_deref().unwrap_or(&service.config().database);
            let target = target.split('@').next_back().unwrap_or(target);
            ctx.confirm(
                &format!(
                    "restore {} into {target}",
                    report
                        .chain
                        .last()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
                *yes,
            )?;
            request.from = Selector::Id(
                report
                    .chain
                    .last()
                    .cloned()
                    .ok_or_else(|| CliError::invalid("the dry run named no backup"))?,
            );
            request.dry_run = false;
            let done = service.restore(&request, &actor, &progress).await?;
            let files_done = match files_plan {
                Some(_) => Some(
                    service
                        .restore_files(&actor, &request.from, files_to, false, &progress)
                        .await?,
                ),
                None => None,
            };
            match format {
                Format::Json => output::json(out, &with_files(&done, files_done.as_ref())?)?,
                _ => {
                    print_report(out, &done)?;
                    if let Some(f) = &files_done {
                        print_files(out, format, f)?;
                    }
                }
            }
        }
        BackupCommand::Delete { id, yes } => {
            // Show first (this also checks that it exists and is readable).
            let m = service.show(&actor, id).await?;
            ctx.confirm(&format!("delete backup {} ({})", m.id, m.scope), *yes)?;
            service.delete(&actor, id).await?;
            match format {
                Format::Json => output::json(out, &serde_json::json!({ "deleted": id }))?,
                _ => writeln!(out, "deleted {id}")?,
            }
        }
        BackupCommand::Prune {
            keep,
            scope,
            dry_run,
            yes,
        } => {
            let now = Utc::now();
            let plan =
                super::retention::prune(&service, &actor, scope.as_ref(), keep, now, true).await?;
            let deletions = plan.deletions().count();
            if *dry_run || deletions == 0 {
                match format {
                    Format::Json => output::json(out, &plan)?,
                    _ => write!(out, "{plan}")?,
                }
                return Ok(Exit::Ok);
            }
            if format == Format::Text {
                write!(out, "{plan}")?;
            }
            ctx.confirm(&format!("delete {deletions} backups"), *yes)?;
            let plan =
                super::retention::prune(&service, &actor, scope.as_ref(), keep, now, false).await?;
            match format {
                Format::Json => output::json(out, &plan)?,
                _ => writeln!(
                    out,
                    "deleted {} backups, freed {}",
                    plan.deletions().count(),
                    human(plan.freed_bytes())
                )?,
            }
        }
        BackupCommand::Download { id, output: file } => {
            let bytes = if file.as_os_str() == "-" {
                let mut stdout = std::io::stdout();
                service.download(&actor, id, &mut stdout).await?
            } else {
                let tmp = file.with_extension("partial");
                let mut f = std::fs::File::create(&tmp).map_err(|source| CliError::Write {
                    path: tmp.display().to_string(),
                    source,
                })?;
                let n = service.download(&actor, id, &mut f).await;
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.into());
                    }
                };
                f.sync_all()?;
                std::fs::rename(&tmp, file).map_err(|source| CliError::Write {
                    path: file.display().to_string(),
                    source,
                })?;
                n
            };
            if file.as_os_str() != "-" {
                writeln!(out, "wrote {} ({})", file.display(), human(bytes))?;
            }
        }
        BackupCommand::Logs {
            status,
            operation,
            limit,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some("pending") => Some(Status::Pending),
                Some("running") => Some(Status::Running),
                Some("success") => Some(Status::Success),
                Some("failed") => Some(Status::Failed),
                Some("denied") => Some(Status::Denied),
                Some(other) => {
                    return Err(CliError::invalid(format!(
                        "unknown status `{other}`: use pending, running, success, failed or denied"
                    )));
                }
            };
            let query = LogQuery {
                operation: operation.clone(),
                status,
                backup_id: None,
                limit: Some(*limit),
                ..LogQuery::default()
            };
            let entries = service.logs(&actor, &query).await?;
            match format {
                Format::Json => output::json(out, &entries)?,
                _ => {
                    let rows: Vec<Vec<String>> = entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.id.to_string(),
                                e.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                e.operation.clone(),
                                e.status.as_str().to_owned(),
                                e.actor.clone(),
                                e.scope.clone(),
                                e.backup_id.clone().unwrap_or_default(),
                                e.rows.map(|r| r.to_string()).unwrap_or_default(),
                                e.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
                                e.error.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(
                        out,
                        &[
                            "#", "STARTED", "OP", "STATUS", "ACTOR", "SCOPE", "BACKUP", "ROWS",
                            "TIME", "ERROR",
                        ],
                        &rows,
                    )?;
                }
            }
        }
        // Dispatched above, before the backup service is opened.
        BackupCommand::Schedule(_) | BackupCommand::Scheduler(_) => {}
        BackupCommand::Rewrap { id } => {
            let m = service.rewrap(&actor, id).await?;
            match format {
                Format::Json => output::json(out, &m.encryption)?,
                _ => writeln!(out, "re-wrapped the data key of {}", m.id)?,
            }
        }
    }
    Ok(Exit::Ok)
}

/// A restore report as JSON, with a `files` member when the files directory was restored too
/// (the report's own members are unchanged).
fn with_files(
    report: &RestoreReport,
    files: Option<&super::FilesReport>,
) -> Result<serde_json::Value, CliError> {
    let mut value = serde_json::to_value(report)
        .map_err(|e| CliError::other(Exit::Failure, format!("cannot write JSON: {e}")))?;
    if let (Some(files), serde_json::Value::Object(map)) = (files, &mut value) {
        let files = serde_json::to_value(files)
            .map_err(|e| CliError::other(Exit::Failure, format!("cannot write JSON: {e}")))?;
        map.insert("files".into(), files);
    }
    Ok(value)
}

fn print_files(
    out: &mut dyn Write,
    format: Format,
    r: &super::FilesReport,
) -> Result<(), CliError> {
    if format == Format::Json {
        return Ok(output::json(out, r)?);
    }
    writeln!(
        out,
        "{}files into {}: {} files ({}), {} added, {} replaced, {} removed",
        if r.dry_run { "dry run: " } else { "" },
        r.target,
        r.files,
        human(r.bytes),
        r.added,
        r.replaced,
        r.removed
    )?;
    Ok(())
}
