//! The `rbac-admin` command line, as a library: [`Cli`] is the clap definition, [`run`] carries
//! a parsed command out and returns an [`Exit`] code. `main.rs` only parses and dispatches.
//!
//! ```text
//! rbac-admin init --admin root@example.com               # sqlite://rbac.db in this directory
//! rbac-admin role create accountant -d "Books and invoices"
//! rbac-admin role grant accountant 'finance.*'
//! rbac-admin user assign alice accountant --tenant acme
//! rbac-admin check alice acme finance.invoices.read --explain
//! rbac-admin can-i system.roles.manage
//! rbac-admin matrix --tenant acme --format html > matrix.html
//! rbac-admin policy export -o policy.toml && rbac-admin diff policy.toml db
//! rbac-admin policy test expectations.txt --policy policy.toml
//! rbac-admin audit verify
//! rbac-admin check --policy policy.toml --batch queries.csv   # files need no database
//! rbac-admin coverage --src path/to/app/src --min 90
//! ```
//!
//! # Global options
//!
//! | option | environment | default | what |
//! |---|---|---|---|
//! | `--db URL` | `RBAC_DATABASE_URL` | `sqlite://rbac.db` | the policy database (`sqlite://FILE`, `postgres://USER@HOST/DB`) |
//! | `--actor NAME` | `RBAC_ACTOR` | `$USER` | who acts: checked against the policy, recorded in the audit trail |
//! | `--comment TEXT` | | | why: recorded with every change |
//! | `--format F` | | `text` | `text` or `json` everywhere data is printed; `csv`/`html` for `matrix`; `markdown`/`html` for `coverage` |
//!
//! `NO_COLOR` (set and not empty) turns colour off; colour is only ever used on a terminal.
//! `RBAC_LOG` sets the log filter (`tracing` targets, e.g. `info` or `rbac::store=debug`).
//!
//! # Exit codes ([`Exit`])
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `check` and `can-i`, allowed |
//! | 1 | runtime failure: unreachable or uninitialised database, I/O error, confirmation declined |
//! | 2 | denied: a check was denied, or the acting user lacks the command's permission |
//! | 3 | invalid input or policy: unknown names, bad files, a refused change, a failing `policy test`, a broken audit chain, a destructive command without `--yes` off a terminal |
//! | 4 | route coverage below `--min` |
//!
//! Usage errors (an unknown flag, a missing argument) print clap's message with the usage and
//! exit 3, so that 2 always means "denied"; `--help` and `--version` exit 0.
//!
//! # Permissions
//!
//! Every command that reads or changes the database checks the acting user against the stored
//! policy first; the built-in `system.*` permissions and roles are listed in [`builtin`]. The
//! actor is asserted, not authenticated: access to the database itself (file permissions,
//! PostgreSQL credentials) is the security boundary, and the actor check keeps honest operators
//! within their role and names them in the audit trail.
//!
//! # Adding a command
//!
//! Add a variant to [`Command`], a module under [`commands`] whose runner takes the
//! [`Context`], its arguments and the output stream and returns `Result<Exit, CliError>`, and
//! one arm in [`run_with`]. Synchronous runners use [`Context::block_on`] for database work.

use std::io::Write;

pub mod backup;
pub mod builtin;
pub mod check;
pub mod cli;
pub mod commands;
pub mod context;
pub mod coverage;
pub mod error;
pub mod output;
pub mod progress;
pub mod static_coverage;
pub mod time;

pub use cli::{
    CheckArgs, Cli, Command, CoverageArgs, DEFAULT_DB_URL, Format, GlobalArgs, PolicyCommand,
    PolicySource,
};
pub use context::Context;
pub use error::{CliError, Exit, ExitCode};

/// Carries out a parsed command, printing to standard output and standard error.
pub fn run(cli: Cli) -> Exit {
    init_logging();
    let stdout = std::io::stdout();
    // Standard error is not locked for the whole run: the progress bar's ticker thread and log
    // lines from other threads write to it too.
    run_with(cli, &mut stdout.lock(), &mut std::io::stderr())
}

/// Log lines (progress of long operations off a terminal, warnings) go to standard error through
/// `tracing`; `RBAC_LOG` sets the filter (default: this tool's and the backup module's info lines,
/// others' warnings).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = std::env::var("RBAC_LOG")
        .ok()
        .and_then(|f| f.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("rbac_admin", tracing::Level::INFO)
                // What backups, restores and the scheduler did (one line each).
                .with_target("rbac::backup", tracing::Level::INFO)
                // A denial or a failed operation is the command's one error line already (and
                // a backup log row); the scheduler logs its runs' failures itself.
                .with_target(
                    "rbac::backup::denied",
                    tracing_subscriber::filter::LevelFilter::OFF,
                )
                .with_target(
                    "rbac::backup::failed",
                    tracing_subscriber::filter::LevelFilter::OFF,
                )
        });
    let color = std::io::stderr().is_terminal() && !context::no_color();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .finish();
    use tracing_subscriber::layer::SubscriberExt;
    let _ = tracing::subscriber::set_global_default(subscriber.with(filter));
}

/// Prints a command-line parsing error (or the help or version text clap produced) and returns
/// its exit code: 0 for help and version, [`Exit::Invalid`] for a usage error.
pub fn usage_error(error: &clap::Error) -> Exit {
    use clap::error::ErrorKind;
    let _ = error.print();
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Exit::Ok,
        _ => Exit::Invalid,
    }
}

/// Like [`run`], writing to the given streams. Errors print as one line, `error: ...`.
pub fn run_with(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let ctx = Context::from_args(&cli.global);
    let result = dispatch(&ctx, cli.command, out, err);
    match result {
        Ok(exit) => exit,
        // A closed pipe (`| head`) is not an error worth a message, but the command did not
        // finish: its own exit code was never decided, and 0 would read as "allowed" or "the
        // chain holds". 1, as for any other failure.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Failure,
        Err(e) => {
            let color = ctx.interactive && !context::no_color();
            let _ = writeln!(err, "{} {e}", output::paint("error:", "31", color));
            e.exit()
        }
    }
}

fn dispatch(
    ctx: &Context,
    command: Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    use commands as c;
    match command {
        Command::Init(args) => ctx.block_on(c::init::run(ctx, &args, out))?,
        Command::Status => ctx.block_on(c::status::run(ctx, out))?,
        Command::Perm(cmd) => ctx.block_on(c::perm::run(ctx, &cmd, out))?,
        Command::Role(cmd) => ctx.block_on(c::role::run(ctx, &cmd, out))?,
        Command::User(cmd) => ctx.block_on(c::user::run(ctx, &cmd, out))?,
        Command::Tenant(cmd) => ctx.block_on(c::tenant::run(ctx, &cmd, out))?,
        Command::Check(args) => ctx.block_on(c::check::run(ctx, &args, out, err))?,
        Command::CanI(args) => ctx.block_on(c::check::can_i(ctx, &args, out))?,
        Command::Matrix(args) => ctx.block_on(c::matrix::run(ctx, &args, out))?,
        Command::Diff(args) => ctx.block_on(c::diff::run(ctx, &args, out))?,
        Command::Policy(cmd) => ctx.block_on(c::policy::run(ctx, &cmd, out, err))?,
        Command::Audit(cmd) => ctx.block_on(c::audit::run(ctx, &cmd, out))?,
        Command::Backup(args) => backup::cli::run(ctx, &args, out),
        Command::Coverage(args) => coverage_command(ctx, &args, out, err),
        Command::Completions(args) => c::docs::completions(&args, out),
        Command::Man(args) => c::docs::man(&args, out),
    }
}

fn coverage_command(
    ctx: &Context,
    args: &CoverageArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, CliError> {
    let format = match ctx.require_format(
        "coverage",
        &[Format::Text, Format::Json, Format::Markdown, Format::Html],
    )? {
        Format::Json => coverage::ReportFormat::Json,
        Format::Markdown => coverage::ReportFormat::Markdown,
        Format::Html => coverage::ReportFormat::Html,
        _ => coverage::ReportFormat::Text,
    };
    let (report, notes) = match (&args.src, &args.report) {
        (Some(dir), _) => coverage::report_from_source(dir)?,
        (None, Some(file)) => (coverage::load_report(file)?, Vec::new()),
        (None, None) => {
            return Err(CliError::invalid(
                "give REPORT.json or --src DIR to build the report from source",
            ));
        }
    };
    coverage::render(&report, &notes, format, out)?;
    if let Some(min) = args.min {
        let percent = report.totals.percent();
        if percent < min {
            writeln!(
                err,
                "coverage {percent:.1}% is below the required {min}%: {} unprotected, {} unresolved",
                report.totals.unprotected, report.totals.unresolved
            )?;
            return Ok(Exit::BelowMinimum);
        }
    }
    Ok(Exit::Ok)
}
